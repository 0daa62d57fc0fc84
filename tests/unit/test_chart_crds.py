"""Static checks of the Helm chart: the CRDs of crds/ byte for byte (scripts/sync-chart-crds.sh copies
them), and the appVersion the images are tagged with."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_chart_crds_are_identical_to_crds_dir() -> None:
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (REPO / "charts" / "taskflow" / "crds").glob("*.yaml")}
    assert source, "no CRDs in crds/"
    assert sorted(chart) == sorted(source), "charts/taskflow/crds/ and crds/ hold different files: make sync-crds"
    for name, content in source.items():
        assert chart[name] == content, f"charts/taskflow/crds/{name} differs from crds/{name}: make sync-crds"


def test_chart_app_version_is_the_package_version() -> None:
    """The images are tagged with the chart's appVersion by default: it must be the package's."""
    chart = yaml.safe_load((REPO / "charts" / "taskflow" / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"], "bump charts/taskflow/Chart.yaml appVersion with pyproject.toml"
