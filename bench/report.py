"""Turn a run's raw results into bench/results/latest.md (tables) and latest.png (chart).

`python -m bench.report bench/results/<stamp>.json` redraws them from a saved run.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

from bench.systems.base import REPO

RESULTS = REPO / "bench" / "results"

# (label, getter, higher is better, format)
Getter = Callable[[dict[str, Any]], float | None]


def _get(*path: Any) -> Getter:
    def get(turn: dict[str, Any]) -> float | None:
        v: Any = turn
        for k in path:
            if not isinstance(v, dict):
                return None
            v = v.get(k, v.get(str(k)))
        return float(v) if isinstance(v, (int, float)) else None

    return get


def _steady_max(turn: dict[str, Any]) -> float | None:
    steps = turn.get("steady")
    if not steps:
        return None
    ok = [s["rate"] for s in steps
          if s["start_ms"].get(99, s["start_ms"].get("99")) <= 100 and s["achieved"] >= 0.9 * s["rate"]]
    return float(max(ok)) if ok else 0.0


def _rss_growth(turn: dict[str, Any]) -> float | None:
    rss = turn.get("rss_mb") or {}
    a, b = rss.get("after_warmup"), rss.get("after_burn")
    if not a or not b:
        return None
    return (b - a) / a * 100


METRICS: list[tuple[str, str, Getter, bool, str]] = [
    ("enq1", "enqueue, 1 per call (tasks/s)", _get("enqueue_single_per_s"), True, "{:,.0f}"),
    ("enqN", "enqueue, bulk (tasks/s)", _get("enqueue_bulk_per_s"), True, "{:,.0f}"),
    ("burn", "burn-down (tasks/s)", _get("burn_per_s"), True, "{:,.0f}"),
    ("rt50", "idle enqueue→start p50 (ms)", _get("rt_start_ms", 50), False, "{:.2f}"),
    ("rt99", "idle enqueue→start p99 (ms)", _get("rt_start_ms", 99), False, "{:.2f}"),
    ("rtd50", "idle enqueue→done p50 (ms)", _get("rt_done_ms", 50), False, "{:.2f}"),
    ("chain", "chain total (s)", _get("chain_s"), False, "{:.2f}"),
    ("hand50", "chain parent done→child start p50 (ms)", _get("chain_handoff_ms", 50), False, "{:.2f}"),
    ("fan", "fan-out 1→N→1 (s)", _get("fanout_s"), False, "{:.2f}"),
    ("dag", "10k-step DAG committed (s)", _get("dag_submit_s"), False, "{:.3f}"),
    ("steady", "steady: highest rate with p99 start ≤100 ms (tasks/s)", _steady_max, True, "{:,.0f}"),
    ("rss", "worker RSS change over burn-down (%)", _rss_growth, False, "{:+.1f}"),
]


def _fmt(fmt: str, v: float | None) -> str:
    return "–" if v is None else fmt.format(v)


def _turns(results: dict[str, Any], profile: str, system: str) -> list[dict[str, Any]]:
    return [t for t in results["turns"] if t["profile"] == profile and t["system"] == system]


def _systems(results: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for t in results["turns"]:
        if t["system"] not in seen:
            seen.append(t["system"])
    return seen


def ratios(results: dict[str, Any], profile: str, peer: str, getter: Getter, higher: bool) -> list[float]:
    """Taskflow's advantage per trial: TF/peer for rates, peer/TF for times (> 1: Taskflow better)."""
    out = []
    ours = {t["trial"]: getter(t) for t in _turns(results, profile, "taskflow") if not t["errors"]}
    for t in _turns(results, profile, peer):
        a, b = ours.get(t["trial"]), getter(t) if not t["errors"] else None
        if a and b:
            out.append(a / b if higher else b / a)
    return out


def _median_spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med) + "×"
    return f"{fmt.format(med)}× [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def write_report(results: dict[str, Any]) -> Path:
    systems = _systems(results)
    lines = [f"# Taskflow benchmark — {results['stamp']} ({results['mode']})", ""]
    sz = results["sizes"]
    lines += [
        f"Trials: {results['trials']} per profile, systems in rotating order. Sizes: enqueue {sz['single']:,} one per call "
        f"+ {sz['bulk']:,} bulk, burn-down of those {sz['single'] + sz['bulk']:,} (first {sz['warmup']:,} by start time "
        f"excluded as warm-up), {sz['roundtrips']:,} idle round trips, chain of {sz['chain']:,}, fan-out 1→{sz['fanout']:,}→1, "
        f"one {sz['dag']:,}-step DAG. 2 worker processes per system on 2 shared cores; one Redis and one PostgreSQL "
        "server for all. Every workload of every trial checked each id ran exactly once.",
        "",
        "Profiles: **as-shipped** — Redis without AOF; Taskflow's PostgreSQL with `synchronous_commit=off` (fsync on). "
        "**durable** — Redis `appendonly yes, appendfsync everysec` for the peers; Taskflow with `synchronous_commit=on`.",
        "",
    ]
    for profile in results["profiles"]:
        lines += [f"## {profile}: medians over trials", ""]
        header = "| metric | " + " | ".join(systems) + " |"
        lines += [header, "|---" * (len(systems) + 1) + "|"]
        for _, label, getter, _, fmt in METRICS:
            cells = []
            for s in systems:
                vals = [v for t in _turns(results, profile, s) if not t["errors"] and (v := getter(t)) is not None]
                cells.append(_fmt(fmt, statistics.median(vals)) if vals else "–")
            if any(c != "–" for c in cells):
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        errs = [(t["system"], t["trial"], e) for t in results["turns"] if t["profile"] == profile for e in t["errors"].values()]
        lines.append("")
        peers = [s for s in systems if s != "taskflow"]
        if "taskflow" in systems and peers:
            lines += [f"### {profile}: Taskflow's advantage per trial, median [min–max] (> 1× means Taskflow is better)", ""]
            lines += ["| metric | " + " | ".join(peers) + " |", "|---" * (len(peers) + 1) + "|"]
            for key, label, getter, higher, _ in METRICS:
                if key in ("dag", "rss"):
                    continue
                cells = [_median_spread(ratios(results, profile, p, getter, higher)) for p in peers]
                if any(c != "–" for c in cells):
                    lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
        if errs:
            lines += ["Failed turns (no numbers taken from them):", ""]
            lines += [f"- {s} trial {k + 1}: {e}" for s, k, e in errs]
            lines.append("")
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"- {name}: {reason}")
    lines += ["", "## How each system does each workload", ""]
    for s, notes in results.get("notes", {}).items():
        lines.append(f"- **{s}**: " + "; ".join(f"{k}: {v}" for k, v in notes.items()))
    versions = {t["system"]: t.get("version") for t in results["turns"]}
    lines += ["", "## Versions and machine", ""]
    lines.append("- " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    fp = results.get("fingerprint", {})
    for k, v in fp.items():
        if isinstance(v, float):
            v = f"{v:,.0f}"
        lines.append(f"- {k}: {v}")
    lines += ["", f"Raw data: `bench/results/{results['stamp']}-{results['mode']}.json`.", ""]
    lines += _targets(results)
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / f"{results['stamp']}-{results['mode']}.md").write_text(text)
    try:
        _chart(results, systems)
    except ImportError as exc:
        print(f"no chart: {exc}", file=sys.stderr)
    return RESULTS / "latest.md"


def _targets(results: dict[str, Any]) -> list[str]:
    profile = "durable" if "durable" in results["profiles"] else results["profiles"][0]
    tf = [t for t in _turns(results, profile, "taskflow") if not t["errors"]]
    if not tf:
        return []
    sz = results["sizes"]

    def med(getter: Getter) -> float | None:
        vals = [v for t in tf if (v := getter(t)) is not None]
        return statistics.median(vals) if vals else None

    rows = [f"## Issue 5 targets ({profile} profile, this run)", "", "| target | measured | met |", "|---|---|---|"]

    def row(label: str, value: float | None, fmt: str, ok: bool | None) -> None:
        rows.append(f"| {label} | {_fmt(fmt, value)} | {'–' if ok is None or value is None else ('yes' if ok else 'no')} |")

    burn = METRICS[2][2]
    for peer, want in (("dramatiq", 1.5), ("celery-prefork", 3.0), ("celery-threads", 3.0)):
        r = ratios(results, profile, peer, burn, True)
        m = statistics.median(r) if r else None
        row(f"burn-down of {sz['single'] + sz['bulk']:,} ≥ {want}× {peer}", m, "{:.2f}×", None if m is None else m >= want)
    v = med(_get("rt_start_ms", 50)); row("idle enqueue→start p50 ≤ 2 ms", v, "{:.2f} ms", v is not None and v <= 2)
    v = med(_get("rt_start_ms", 99)); row("idle enqueue→start p99 ≤ 10 ms", v, "{:.2f} ms", v is not None and v <= 10)
    v = med(_get("chain_handoff_ms", 50)); row("DAG parent done→child start p50 ≤ 3 ms", v, "{:.2f} ms", v is not None and v <= 3)
    v = med(_get("chain_s")); row(f"{sz['chain']:,}-step chain ≤ 5 s (target is for 1,000)", v, "{:.2f} s", v is not None and v <= 5)
    v = med(_get("fanout_s")); row(f"fan-out 1→{sz['fanout']:,}→1 ≤ 5 s (target is for 10,000)", v, "{:.2f} s", v is not None and v <= 5)
    v = med(_get("dag_submit_s")); row(f"{sz['dag']:,}-step DAG committed ≤ 1 s", v, "{:.3f} s", v is not None and v <= 1)
    v = med(_rss_growth)
    burned = sz["single"] + sz["bulk"]
    row(f"worker RSS flat ±10 % (over a {burned:,}-task burn-down{'' if burned >= 1_000_000 else ', not 1M'})", v, "{:+.1f} %",
        v is not None and abs(v) <= 10)
    return rows + [""]


def _chart(results: dict[str, Any], systems: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = results["profiles"]
    panels = [("burn", "burn-down (tasks/s, higher is better)"), ("rt50", "idle enqueue→start p50 (ms, lower is better)"),
              ("chain", "chain (s, lower is better)"), ("fan", "fan-out 1→N→1 (s, lower is better)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    width = 0.8 / max(1, len(profiles))
    for ax, (key, title) in zip(axes, panels, strict=True):
        getter = next(m[2] for m in METRICS if m[0] == key)
        for k, profile in enumerate(profiles):
            meds, lo, hi = [], [], []
            for s in systems:
                vals = [v for t in _turns(results, profile, s) if not t["errors"] and (v := getter(t)) is not None]
                m = statistics.median(vals) if vals else 0.0
                meds.append(m)
                lo.append(m - min(vals) if vals else 0.0)
                hi.append(max(vals) - m if vals else 0.0)
            xs = [i + k * width for i in range(len(systems))]
            ax.bar(xs, meds, width, yerr=[lo, hi], label=profile, capsize=3)
        ax.set_xticks([i + width * (len(profiles) - 1) / 2 for i in range(len(systems))])
        ax.set_xticklabels(systems, rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
    axes[0].legend()
    fig.suptitle(f"Taskflow vs peers — {results['stamp']} ({results['mode']}); bars: median, whiskers: min–max over trials", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "latest.png", dpi=110)
    fig.savefig(RESULTS / f"{results['stamp']}-{results['mode']}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    print(write_report(json.loads(path.read_text())))
