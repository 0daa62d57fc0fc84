"""Smoke test of the Kubernetes test environment: real etcd + kube-apiserver + kubectl."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kube.cluster import KubeTestCluster
from tests.kube.conftest import BUILD_TIMEOUT, pinned_kube_version

pytestmark = [pytest.mark.kube, pytest.mark.timeout(BUILD_TIMEOUT + 300)]


def _json(cluster: KubeTestCluster, *args: str, kubeconfig: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        cluster.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout
    )
    return data


def test_server_reports_pinned_version(cluster: KubeTestCluster) -> None:
    version = _json(cluster, "version")["serverVersion"]
    pinned = pinned_kube_version()
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
