"""The Helm chart ships the CRDs of crds/ byte for byte (scripts/sync-chart-crds.sh copies them)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_chart_crds_are_identical_to_crds_dir() -> None:
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (REPO / "charts" / "taskflow" / "crds").glob("*.yaml")}
    assert source, "no CRDs in crds/"
    assert sorted(chart) == sorted(source), "charts/taskflow/crds/ and crds/ hold different files: make sync-crds"
    for name, content in source.items():
        assert chart[name] == content, f"charts/taskflow/crds/{name} differs from crds/{name}: make sync-crds"
