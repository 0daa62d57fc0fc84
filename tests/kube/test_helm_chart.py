"""The Helm chart against the real helm binary and a real kube-apiserver.

- `helm lint --strict` / `helm template` with the default values and every charts/taskflow/ci/*.yaml,
  and what the rendered objects must say (restricted security contexts, worker annotations and
  grace periods, no wildcard or Secrets in RBAC, no plain-text passwords);
- the values schema (and the templates' own checks) refusing bad values;
- the rendered chart accepted by the API server (`kubectl apply --dry-run=server`), and every pod
  admitted by its PodSecurity admission enforcing "restricted";
- `helm install` creating what the operator needs; `helm upgrade` keeping the autoscaler's replica
  counts and the generated database password;
- least privilege, asked of the API server with real tokens of the chart's ServiceAccounts
  (SelfSubjectAccessReviews, as `kubectl auth can-i`), for all-namespaces and restricted installs;
- the real `taskflow operator --api` running with only the chart's operator token: a TaskDag
  reaches Succeeded, the Lease is held, Events are posted, TokenReview-based API auth works.

There is no controller-manager: Deployments get no pods; the operator and a worker run as local
processes against the test PostgreSQL and Redis.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskflow.core.settings import Settings
from tests.kube.cluster import KubeTestCluster, free_port

pytestmark = [pytest.mark.kube]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "taskflow"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# The defaults leave the databases to the user; the smallest working set of values.
MINIMAL = [
    "--set", "postgresql.external.host=db.example",
    "--set", "redis.external.addr=redis.example:6379",
    "--set", "api.auth.tokensSecret.name=taskflow-api-tokens",
]

Manifest = dict[str, Any]
Helm = Callable[..., subprocess.CompletedProcess[str]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def helm(kube_binaries: Path, cluster: KubeTestCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Run the cached helm against the test cluster, with its state dirs in a temp dir."""
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(kube_binaries / "helm"), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result

    return run


def render(helm: Helm, *values: str, namespace: str = "taskflow") -> list[Manifest]:
    out = helm("template", "tf", str(CHART), "--namespace", namespace, *values).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def values_args(path: Path | None) -> list[str]:
    return MINIMAL if path is None else ["-f", str(path)]


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def workers(manifests: list[Manifest]) -> list[Manifest]:
    return [
        d for d in by_kind(manifests, "Deployment") if d["metadata"]["labels"].get("taskflow.io/component") == "worker"
    ]


# --- lint and template -----------------------------------------------------------------------
@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "defaults" if v is None else v.stem)
def test_lint_and_template(helm: Helm, values: Path | None) -> None:
    helm("lint", "--strict", str(CHART), *values_args(values))
    manifests = render(helm, *values_args(values))
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole"} <= kinds
    if values is None:
        assert {"PodDisruptionBudget", "Role"} <= kinds  # PDBs and the leader-election Role by default
    assert "HorizontalPodAutoscaler" not in kinds, "the operator scales workers; an HPA would fight it"
    check_pod_security(manifests)
    check_rbac(manifests)
    check_workers(manifests)
    check_no_literal_secrets(manifests)
    (hook,) = by_kind(manifests, "Pod")  # `helm test`: GET /ready through the Service
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    compile(hook["spec"]["containers"][0]["command"][2], "helm-test-ready", "exec")


def check_pod_security(manifests: list[Manifest]) -> None:
    """Pod security standard "restricted" for every workload, /tmp writable on a read-only root."""
    for workload in by_kind(manifests, "Deployment") + by_kind(manifests, "StatefulSet"):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert "resources" in container and container["resources"].get("requests"), name
        if workload["kind"] == "Deployment":  # ours: uid 10001 and an emptyDir on /tmp
            assert pod["securityContext"]["runAsUser"] == 10001, name
            (container,) = pod["containers"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
            assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"]), name


def check_rbac(manifests: list[Manifest]) -> None:
    """No wildcard anywhere, no Secrets, only the operator's ServiceAccount bound to anything."""
    for role in by_kind(manifests, "ClusterRole") + by_kind(manifests, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: wildcard in {rule}"
            assert "secrets" not in rule["resources"], f"{role['metadata']['name']} grants Secrets: {rule}"
            assert not {"create", "delete", "deletecollection"} & set(rule["verbs"]) or rule["resources"] in (
                ["events"],
                ["leases"],
                ["tokenreviews"],
            ), f"{role['metadata']['name']}: the operator creates nothing but Events, Leases, TokenReviews: {rule}"
            assert "nonResourceURLs" not in rule and "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
    bound = {
        s["name"]
        for b in by_kind(manifests, "ClusterRoleBinding") + by_kind(manifests, "RoleBinding")
        for s in b["subjects"]
    }
    accounts = {sa["metadata"]["name"]: sa for sa in by_kind(manifests, "ServiceAccount")}
    assert bound == {"tf-taskflow-operator"}, bound
    assert accounts["tf-taskflow-worker"]["automountServiceAccountToken"] is False


def check_workers(manifests: list[Manifest]) -> None:
    deployments = workers(manifests)
    assert deployments, "no worker Deployment rendered"
    for deployment in deployments:
        annotations = deployment["metadata"]["annotations"]
        queues = annotations["taskflow.io/queues"].split(",")
        low, high = int(annotations["taskflow.io/min-replicas"]), int(annotations["taskflow.io/max-replicas"])
        assert 0 <= low <= high and int(annotations["taskflow.io/target-per-replica"]) >= 1
        assert deployment["spec"]["replicas"] == low  # fresh install: nothing live to keep
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "tf-taskflow-worker"
        (container,) = pod["containers"]
        args = container["args"]
        assert args[0] == "worker"
        assert [args[i + 1] for i, a in enumerate(args) if a == "--queue"] == queues
        assert "--concurrency" in args
        env = env_of(container)
        assert env["TASKFLOW_WORKER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        grace = int(env["TASKFLOW_SHUTDOWN_GRACE"]["value"])
        # The pod is killed only after the worker's own drain grace plus a margin to hand back.
        assert pod["terminationGracePeriodSeconds"] >= grace + 5


def check_no_literal_secrets(manifests: list[Manifest]) -> None:
    for workload in by_kind(manifests, "Deployment") + by_kind(manifests, "StatefulSet"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for name, entry in env_of(container).items():
                if "PASSWORD" in name or (name == "TASKFLOW_POSTGRES_DSN" and "value" not in entry):
                    assert set(entry["valueFrom"]) == {"secretKeyRef"}, f"{name} must come from a Secret"
                value = entry.get("value", "")
                if "://" in value and "@" in value:  # a URL with user info: no password in it
                    userinfo = value.split("://", 1)[1].split("@", 1)[0]
                    assert ":" not in userinfo, f"{name} carries a password in plain text: {value}"


# Read by the CLI itself (`--log-level` default), not by a settings class.
CLI_ENV = {"TASKFLOW_LOG_LEVEL"}


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "defaults" if v is None else v.stem)
def test_rendered_env_is_understood_by_taskflow(
    helm: Helm, values: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every TASKFLOW_* variable the chart sets is a real setting (pydantic-settings ignores unknown
    ones, so a typo would silently do nothing) and the values parse, as the containers would."""
    from taskflow.operator.config import OperatorSettings

    known = {f"TASKFLOW_{name.upper()}" for name in Settings.model_fields} | CLI_ENV
    known |= {f"TASKFLOW_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    manifests = render(helm, *values_args(values))
    for deployment in by_kind(manifests, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        unknown = {name for name in env if name.startswith("TASKFLOW_")} - known
        assert not unknown, f"{deployment['metadata']['name']} sets unknown settings {unknown}"
        for name in list(os.environ):
            if name.startswith("TASKFLOW_"):
                monkeypatch.delenv(name)
        for name, entry in env.items():
            # secretKeyRef / fieldRef values exist only in a pod: a stand-in of the right shape.
            value = entry.get("value", "postgresql://u@h/db" if name.endswith("_DSN") else "from-the-pod")
            monkeypatch.setenv(name, value)
        settings = Settings()
        OperatorSettings()
        assert settings.http_port == 8080
        if container["args"][0] == "worker":
            assert settings.shutdown_grace == float(env["TASKFLOW_SHUTDOWN_GRACE"]["value"])


def test_eks_values_use_tls_for_rds_and_elasticache(helm: Helm) -> None:
    manifests = render(helm, "-f", str(CHART / "ci" / "eks-values.yaml"))
    for deployment in by_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = env_of(container)
        assert env["PGSSLMODE"]["value"] == "verify-full"
        ca = env["PGSSLROOTCERT"]["value"]
        mount = next(m for m in container["volumeMounts"] if ca.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == "rds-ca-bundle" and ca.endswith("/global-bundle.pem")
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "taskflow-db", "key": "password"}
        assert env["TASKFLOW_REDIS_TLS"]["value"] == "true"
        assert env["TASKFLOW_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "taskflow-redis"
    operator = next(d for d in by_kind(manifests, "Deployment") if d["metadata"]["name"] == "tf-taskflow-operator")
    pod = operator["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["TASKFLOW_AUTH_MODE"]["value"] == "tokens+kubernetes"
    assert env["TASKFLOW_AUTH_TOKENS_FILE"]["value"] == "/etc/taskflow/api-tokens/tokens"
    (tokens,) = [v for v in pod["volumes"] if v["name"] == "api-tokens"]
    assert tokens["secret"]["secretName"] == "taskflow-api-tokens"
    assert {"name": "api-tokens", "mountPath": "/etc/taskflow/api-tokens", "readOnly": True} in pod["containers"][
        0
    ]["volumeMounts"], "mounted whole (no subPath) so a rotated Secret reaches the pod"
    (cluster_role,) = by_kind(manifests, "ClusterRole")
    assert {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]} in cluster_role[
        "rules"
    ]
    for deployment in workers(manifests):  # workers serve no API: no auth settings, no tokens
        assert not any(k.startswith("TASKFLOW_AUTH") for k in env_of(deployment["spec"]["template"]["spec"]["containers"][0]))
    etl = next(d for d in workers(manifests) if d["metadata"]["name"].endswith("-etl"))
    (container,) = etl["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("/acme-etl-worker:2.3.1")
    assert container["args"][-2:] == ["--import", "acme_etl.handlers"]
    assert etl["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120 + 15
    assert env_of(container)["TASKFLOW_SHUTDOWN_GRACE"]["value"] == "120"
    assert etl["metadata"]["annotations"]["taskflow.io/queues"] == "etl,etl-high"


def test_restricted_values_use_roles_in_the_watched_namespaces(helm: Helm) -> None:
    manifests = render(helm, "-f", str(CHART / "ci" / "restricted-values.yaml"))
    (cluster_role,) = by_kind(manifests, "ClusterRole")
    assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {
        "namespaces",
        "customresourcedefinitions",
    }, "restricted to namespaces, the ClusterRole keeps only the cluster-scoped reads"
    role_namespaces = {r["metadata"]["namespace"] for r in by_kind(manifests, "Role") if "taskdags" in str(r)}
    assert role_namespaces == {"team-a", "team-b", "taskflow"}
    operator = next(d for d in by_kind(manifests, "Deployment") if d["metadata"]["name"] == "tf-taskflow-operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["operator", "--api"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == ["team-a", "team-b", "taskflow"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set-json", 'workers=[{"name": "w", "queues": []}]'], "minItems"),
        (["--set-json", 'workers=[{"name": "Bad_Name", "queues": ["q"]}]'], "does not match pattern"),
        (["--set-json", 'workers=[{"name": "w", "queues": ["bad queue"]}]'], "does not match pattern"),
        (["--set-json", 'workers=[{"name": "w", "queues": ["q"], "imports": ["not a module"]}]'], "does not match"),
        (["--set-json", 'workers=[{"name": "w", "queues": ["q"], "replicas": 3}]'], "additional properties"),
        (["--set", "workerDefaults.concurrency=0"], "minimum"),
        (["--set", "postgresql.sslmode=maybe"], "value must be one of"),
        (["--set", "postgresql.sslmode=verify-full"], "postgresql/caBundle"),
        (["--set", "image.operator.pullPolicy=Sometimes"], "value must be one of"),
        (["--set", "redis.external.addr=just-a-host"], "does not match pattern"),
        (["--set", "operatr.replicas=2"], "additional properties 'operatr' not allowed"),
        (["--set-json", 'workers=[{"name": "w", "queues": ["q"], "minReplicas": 9, "maxReplicas": 2}]'],
         "minReplicas (9) is above maxReplicas (2)"),
        (["--set-json", 'workers=[{"name": "w", "queues": ["q"]}, {"name": "w", "queues": ["r"]}]'],
         'the name "w" is used twice'),
        (["--set", "operator.leaderElection=false"], "needs operator.leaderElection=true"),
        (["--set", "api.auth.mode=maybe"], "value must be one of"),
        (["--set", "api.auth.tokensSecret.name="], "set api.auth.tokensSecret.name"),
        ([], "set postgresql.external.host"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_values_are_refused(helm: Helm, values: list[str], message: str) -> None:
    base = [] if not values else MINIMAL
    result = helm("template", "tf", str(CHART), *base, *values, check=False)
    assert result.returncode != 0, f"helm accepted {values}"
    assert message in result.stderr, result.stderr


# --- against the API server ------------------------------------------------------------------
@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "defaults" if v is None else v.stem)
def test_rendered_chart_passes_server_side_dry_run(helm: Helm, cluster: KubeTestCluster, values: Path | None) -> None:
    namespace = unique("tf-dry")
    cluster.kubectl("create", "namespace", namespace)
    for team in ("team-a", "team-b"):  # restricted-values.yaml binds Roles there
        cluster.kubectl("create", "namespace", team, check=False)
    out = helm("template", "tf", str(CHART), "--namespace", namespace, "--include-crds", *values_args(values)).stdout
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=out)
    assert "(server dry run)" in result.stdout


@pytest.fixture(scope="module")
def restricted_namespace(cluster: KubeTestCluster) -> str:
    """A namespace where the API server's PodSecurity admission enforces "restricted"."""
    namespace = unique("tf-psa")
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl(
        "label", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest",
    )
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
    }
    refused = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(privileged), check=False)
    assert refused.returncode != 0 and "PodSecurity" in refused.stderr, "PodSecurity admission is not enforcing"
    return namespace


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "defaults" if v is None else v.stem)
def test_every_pod_is_admitted_under_restricted_pod_security(
    helm: Helm, cluster: KubeTestCluster, restricted_namespace: str, values: Path | None
) -> None:
    """The pod of every Deployment/StatefulSet, created (dry run) where "restricted" is enforced."""
    manifests = render(helm, *values_args(values))
    pods = []
    for workload in by_kind(manifests, "Deployment") + by_kind(manifests, "StatefulSet"):
        name = workload["metadata"]["name"]
        spec = json.loads(json.dumps(workload["spec"]["template"]["spec"]))
        # As the StatefulSet controller does: one PVC volume per volumeClaimTemplate.
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            claim_name = f"{claim['metadata']['name']}-{name}-0"
            spec.setdefault("volumes", []).append(
                {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}
            )
        pods.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"psa-{name}"[:63], "namespace": restricted_namespace},
            "spec": spec,
        })
    # The `helm test` hook pod, as it is.
    pods += [{**pod, "metadata": {"name": pod["metadata"]["name"], "namespace": restricted_namespace}}
             for pod in by_kind(manifests, "Pod")]
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods})
    )
    assert result.stdout.count("(server dry run)") == len(pods), result.stdout + result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def installed(helm: Helm, cluster: KubeTestCluster) -> Iterator[tuple[str, str]]:
    """The chart installed by `helm install` (in-cluster databases), watching all namespaces."""
    namespace = unique("tf-all")
    cluster.kubectl("create", "namespace", namespace)
    result = helm("install", "tf", str(CHART), "--namespace", namespace, "-f", str(CHART / "ci" / "in-cluster-values.yaml"))
    yield namespace, result.stdout
    helm("uninstall", "tf", "--namespace", namespace, check=False)


def test_install_creates_what_the_operator_needs(cluster: KubeTestCluster, installed: tuple[str, str]) -> None:
    namespace, output = installed
    assert "STATUS: deployed" in output and "kubectl get tdag" in output  # NOTES.txt
    crd = json.loads(cluster.kubectl("get", "crd", "taskdags.taskflow.io", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert crd["spec"]["names"]["shortNames"] == ["tdag"]

    deployments = json.loads(cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    names = {d["metadata"]["name"]: d for d in deployments}
    assert set(names) == {"tf-taskflow-operator", "tf-taskflow-worker-default"}
    worker = names["tf-taskflow-worker-default"]
    assert worker["metadata"]["labels"]["taskflow.io/component"] == "worker"
    assert worker["metadata"]["annotations"]["taskflow.io/queues"] == "default"
    pod = worker["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["automountServiceAccountToken"] is False

    for kind in ("statefulset", "service", "secret", "poddisruptionbudget", "serviceaccount", "role", "rolebinding"):
        assert cluster.kubectl("get", kind, "-n", namespace, "-o", "name").stdout.strip(), f"no {kind} installed"
    cluster.kubectl("get", "clusterrole", f"tf-taskflow-operator-{namespace}")


def test_upgrade_keeps_autoscaled_replicas_and_the_generated_password(
    helm: Helm, cluster: KubeTestCluster, installed: tuple[str, str]
) -> None:
    namespace, _ = installed

    def password() -> str:
        out = cluster.kubectl("get", "secret", "tf-taskflow-postgresql", "-n", namespace, "-o", "json").stdout
        return base64.b64decode(json.loads(out)["data"]["password"]).decode()

    before = password()
    assert len(before) == 32
    # What the operator's autoscaler does: set spec.replicas through the scale subresource.
    cluster.kubectl("scale", "deployment", "tf-taskflow-worker-default", "-n", namespace, "--replicas=4")
    helm("upgrade", "tf", str(CHART), "--namespace", namespace, "--reuse-values", "--set", "operator.replicas=2")
    worker = json.loads(
        cluster.kubectl("get", "deployment", "tf-taskflow-worker-default", "-n", namespace, "-o", "json").stdout
    )
    assert worker["spec"]["replicas"] == 4, "helm upgrade must not undo the operator's scaling"
    operator = json.loads(
        cluster.kubectl("get", "deployment", "tf-taskflow-operator", "-n", namespace, "-o", "json").stdout
    )
    assert operator["spec"]["replicas"] == 2
    assert password() == before, "helm upgrade must not change the in-cluster PostgreSQL password"


# --- least privilege, with the chart's own ServiceAccount ----------------------------------------
OPERATOR_NEEDS = [
    *[(verb, "taskdags.taskflow.io") for verb in ("get", "list", "watch", "patch", "update")],
    *[(verb, "taskdags.taskflow.io/status") for verb in ("get", "patch", "update")],
    *[(verb, "events") for verb in ("create", "patch")],
    *[(verb, "events.events.k8s.io") for verb in ("create", "patch")],
    *[(verb, "deployments.apps") for verb in ("get", "list", "watch", "patch")],
    *[(verb, "deployments.apps/scale") for verb in ("get", "patch", "update")],
    *[(verb, "pods") for verb in ("get", "list", "watch", "patch")],
]
OPERATOR_MUST_NOT = [
    *[(verb, "secrets") for verb in ("get", "list", "watch", "create", "update", "patch", "delete")],
    ("create", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("delete", "pods"),
    ("create", "pods"),
    ("create", "pods/exec"),
    ("get", "configmaps"),
    ("delete", "taskdags.taskflow.io"),
    ("create", "taskdags.taskflow.io"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts/token"),
    ("impersonate", "users"),
]
LEASES = [(verb, "leases.coordination.k8s.io") for verb in ("get", "list", "watch", "create", "update", "patch")]
CLUSTER_READS = [
    ("list", "namespaces"),
    ("watch", "namespaces"),
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io") for verb in ("get", "list", "watch")],
]
CLUSTER_MUST_NOT = [("get", "secrets"), ("delete", "namespaces"), ("create", "customresourcedefinitions.apiextensions.k8s.io"),
                    ("create", "clusterroles.rbac.authorization.k8s.io"), ("get", "nodes")]


def can_i(
    cluster: KubeTestCluster, kubeconfig: Path, checks: list[tuple[str, str, str | None]]
) -> dict[tuple[str, str, str | None], bool]:
    """Ask the API server, as the kubeconfig's identity, whether it may do each (verb, resource, ns).

    This is what `kubectl auth can-i` does (a SelfSubjectAccessReview per question), batched into
    one `kubectl create` of a List so that a hundred questions cost one process;
    `test_access_reviews_agree_with_kubectl_auth_can_i` shows both give the same answers.
    """
    reviews = []
    for verb, resource, namespace in checks:
        resource, _, subresource = resource.partition("/")
        name, _, group = resource.partition(".")
        attributes = {"verb": verb, "resource": name, "group": group, "subresource": subresource}
        if namespace:
            attributes["namespace"] = namespace
        reviews.append({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        })
    result = cluster.kubectl(
        "create", "-o", "json", "-f", "-", kubeconfig=kubeconfig,
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
    )
    # One JSON document per review, one after the other.
    items: list[Manifest] = []
    decoder, text, at = json.JSONDecoder(), result.stdout, 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        item, at = decoder.raw_decode(text, at)
        items.extend(item["items"] if item.get("kind") == "List" else [item])
    assert len(items) == len(checks), result.stdout[:2000]
    return {check: bool(item["status"].get("allowed")) for check, item in zip(checks, items, strict=True)}


def kubectl_auth_can_i(cluster: KubeTestCluster, kubeconfig: Path, check: tuple[str, str, str | None]) -> bool:
    verb, resource, namespace = check
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    # `can-i get pods/x` would ask about the pod named x: subresources go in --subresource.
    resource, _, subresource = resource.partition("/")
    if subresource:
        scope.append(f"--subresource={subresource}")
    result = cluster.kubectl("auth", "can-i", verb, resource, *scope, kubeconfig=kubeconfig, check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i {verb} {resource}: {result.stderr}{answer}"
    return answer == "yes"


def assert_answers(answers: dict[tuple[str, str, str | None], bool], expected: bool) -> None:
    wrong = [check for check, answer in answers.items() if answer != expected]
    assert not wrong, f"kubectl auth can-i should say {'yes' if expected else 'no'} for: {wrong}"


def test_operator_service_account_has_exactly_what_it_needs(
    cluster: KubeTestCluster, installed: tuple[str, str]
) -> None:
    namespace, _ = installed
    token = cluster.token_for_service_account(namespace, "tf-taskflow-operator", create=False)
    kubeconfig = cluster.kubeconfig_for_token(token, user="taskflow-operator")
    elsewhere = unique("tf-other")  # all-namespaces mode: any namespace works, existing or not
    yes = [(v, r, ns) for v, r in OPERATOR_NEEDS for ns in (namespace, elsewhere)]
    yes += [(v, r, namespace) for v, r in LEASES] + [(v, r, None) for v, r in CLUSTER_READS]
    yes += [("create", "tokenreviews.authentication.k8s.io", None)]  # api.auth.mode=kubernetes
    no = [(v, r, ns) for v, r in OPERATOR_MUST_NOT for ns in (namespace, elsewhere)]
    no += [(v, r, elsewhere) for v, r in LEASES] + [(v, r, None) for v, r in CLUSTER_MUST_NOT]
    assert_answers(can_i(cluster, kubeconfig, yes), True)
    assert_answers(can_i(cluster, kubeconfig, no), False)

    worker_token = cluster.token_for_service_account(namespace, "tf-taskflow-worker", create=False)
    worker_config = cluster.kubeconfig_for_token(worker_token, user="taskflow-worker")
    worker_checks = [(v, r, namespace) for v, r in OPERATOR_NEEDS + LEASES + [("get", "secrets")]]
    assert_answers(can_i(cluster, worker_config, worker_checks), False)


def test_access_reviews_agree_with_kubectl_auth_can_i(cluster: KubeTestCluster, installed: tuple[str, str]) -> None:
    namespace, _ = installed
    token = cluster.token_for_service_account(namespace, "tf-taskflow-operator", create=False)
    kubeconfig = cluster.kubeconfig_for_token(token, user="taskflow-operator-can-i")
    sample = [
        ("patch", "taskdags.taskflow.io/status", namespace),
        ("update", "deployments.apps/scale", namespace),
        ("create", "events.events.k8s.io", namespace),
        ("watch", "namespaces", None),
        ("get", "secrets", namespace),
        ("create", "pods/exec", namespace),
        ("delete", "deployments.apps", namespace),
    ]
    batched = can_i(cluster, kubeconfig, sample)
    assert [batched[c] for c in sample] == [True, True, True, True, False, False, False]
    assert {c: kubectl_auth_can_i(cluster, kubeconfig, c) for c in sample} == batched


def test_restricted_install_grants_only_the_watched_namespaces(helm: Helm, cluster: KubeTestCluster) -> None:
    namespace, team_a, team_b, outside = (unique(p) for p in ("tf-ns", "team-a", "team-b", "outside"))
    for ns in (namespace, team_a, team_b):
        cluster.kubectl("create", "namespace", ns)
    helm(
        "install", "tf", str(CHART), "--namespace", namespace, *MINIMAL,
        "--set", f"watchNamespaces={{{team_a},{team_b}}}", "--set", "operator.replicas=1",
    )
    try:
        token = cluster.token_for_service_account(namespace, "tf-taskflow-operator", create=False)
        kubeconfig = cluster.kubeconfig_for_token(token, user="taskflow-operator-restricted")
        yes = [(v, r, ns) for v, r in OPERATOR_NEEDS for ns in (team_a, team_b, namespace)]
        yes += [(v, r, None) for v, r in CLUSTER_READS]
        no = [(v, r, outside) for v, r in OPERATOR_NEEDS] + [(v, r, None) for v, r in OPERATOR_NEEDS]
        no += [("create", "tokenreviews.authentication.k8s.io", None)]  # api.auth.mode=tokens
        no += [(v, r, ns) for v, r in OPERATOR_MUST_NOT for ns in (team_a, namespace)]
        assert_answers(can_i(cluster, kubeconfig, yes), True)
        assert_answers(can_i(cluster, kubeconfig, no), False)
    finally:
        helm("uninstall", "tf", "--namespace", namespace, check=False)


# --- the real operator, as the chart's ServiceAccount ---------------------------------------------
def test_operator_runs_with_only_the_charts_rbac(
    cluster: KubeTestCluster, installed: tuple[str, str], settings: Settings, tmp_path: Path
) -> None:
    """`taskflow operator --api` and a worker as local processes, the operator authenticated with a
    token of the chart's operator ServiceAccount (not as admin): a TaskDag applied with kubectl
    reaches Succeeded, the leader Lease is taken, Events are posted, nothing is Forbidden, and the
    REST API (api.auth.mode=kubernetes, as installed) checks a caller's token with TokenReview."""
    namespace, _ = installed
    token = cluster.token_for_service_account(namespace, "tf-taskflow-operator", create=False)
    kubeconfig = cluster.kubeconfig_for_token(token, user="taskflow-operator-process")
    dags = unique("tf-dags")
    cluster.kubectl("create", "namespace", dags)

    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TASKFLOW_", "KUBE"))},
        "TASKFLOW_POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "TASKFLOW_REDIS_ADDR": settings.redis_addr,
        "TASKFLOW_POLL_INTERVAL": "0.05",
        "TASKFLOW_RECONCILE_INTERVAL": "0.2",
        "TASKFLOW_SHUTDOWN_GRACE": "1",
    }
    operator_env = {
        **base,
        "KUBECONFIG": str(kubeconfig),
        "POD_NAME": "tf-taskflow-operator-test-0",  # what the chart's downward API gives
        "POD_NAMESPACE": namespace,
        "TASKFLOW_HTTP_PORT": str(free_port()),
        "TASKFLOW_OPERATOR_STATUS_MIN_INTERVAL": "0.2",
        # What the installed release sets (in-cluster-values.yaml: api.auth.mode=kubernetes); in a
        # pod the TokenReview identity is the in-cluster ServiceAccount, here its kubeconfig.
        "TASKFLOW_AUTH_MODE": "kubernetes",
        "TASKFLOW_AUTH_KUBE_AUDIENCE": "taskflow",
        "TASKFLOW_AUTH_KUBE_KUBECONFIG": str(kubeconfig),
    }
    command = [sys.executable, "-m", "taskflow", "--log-level", "INFO"]
    # The chart's operator arguments: all namespaces, leader election on the release's Lease.
    args = ["operator", "--api", "--leader-elect", "--lease-name", "tf-taskflow-operator"]
    operator_log = tmp_path / "operator.log"
    with operator_log.open("wb") as log, running(command + args, operator_env, log) as operator, running(
        command + ["worker", "--queue", "default", "--concurrency", "4"],
        {**base, "TASKFLOW_WORKER_ID": "tf-taskflow-worker-default-test"},
        subprocess.DEVNULL,
    ) as worker:
        cluster.kubectl("apply", "-n", dags, "-f", str(REPO / "deploy" / "examples" / "diamond.yaml"))
        status = wait_for(
            lambda: json.loads(cluster.kubectl("get", "tdag", "diamond", "-n", dags, "-o", "json").stdout).get(
                "status", {}
            ),
            lambda s: s.get("phase") in {"Succeeded", "Failed", "Invalid"},
            processes=(operator, worker),
            what="the TaskDag to finish",
            log=operator_log,
        )
        # A caller with a ServiceAccount token for our audience reads the run through the API.
        caller = cluster.token_for_service_account(dags, "submitter")
        audience_token = cluster.kubectl("create", "token", "submitter", "-n", dags, "--audience", "taskflow")
        url = f"http://127.0.0.1:{operator_env['TASKFLOW_HTTP_PORT']}/api/v1/dags/{status['dagRunId']}"
        assert http_status(url, audience_token.stdout.strip()) == 200
        assert http_status(url, caller) == 401  # a token for the apiserver's audience is refused
        assert http_status(url, None) == 401
        # Held while the operator runs (released on a clean stop).
        lease = json.loads(cluster.kubectl("get", "lease", "tf-taskflow-operator", "-n", namespace, "-o", "json").stdout)
        assert lease["spec"].get("holderIdentity") == "tf-taskflow-operator-test-0", lease
    text = operator_log.read_text(errors="replace")
    assert status["phase"] == "Succeeded", f"{status}\n{text[-4000:]}"
    assert status.get("dagRunId")
    assert "forbidden" not in text.lower(), f"the chart's RBAC refused the operator something:\n{text[-4000:]}"
    events = json.loads(cluster.kubectl("get", "events", "-n", dags, "-o", "json").stdout)["items"]
    assert any(e["involvedObject"]["name"] == "diamond" for e in events), "the operator posted no Event"


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], output: Any) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_for(
    probe: Callable[[], Any],
    accept: Callable[[Any], bool],
    *,
    processes: tuple[subprocess.Popen[bytes], ...],
    what: str,
    log: Path,
    timeout: float = 90.0,
) -> Any:
    """Poll until `accept(probe())`; fail early if a process died. The timeout only stops a hang."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        refused = [line for line in log.read_text(errors="replace").splitlines() if "403" in line]
        assert not refused, "the chart's RBAC refused the operator:\n" + "\n".join(refused[:5])
        for process in processes:
            assert process.poll() is None, f"{process.args} exited {process.returncode}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout}s: {value}\n{log.read_text()[-4000:]}"
        time.sleep(0.3)


def http_status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)
