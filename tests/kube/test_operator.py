"""The operator end to end: real kube-apiserver, real PostgreSQL/Redis, operator and worker processes.

One operator process (`taskflow operator --api --leader-elect`) serves the whole module, run as a
ServiceAccount bound to exactly the RBAC rules the Helm chart grants (so a missing permission
fails here), and one worker process runs the `default` queue. Tests use their own namespaces.
Order matters only for the last two tests (restart, hand-over), which replace the operator process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import redis
import yaml

from taskflow.localservers import PostgresServer, RedisServer
from taskflow.queue.keys import worker_key
from tests.kube.cluster import KubeTestCluster

pytestmark = [pytest.mark.kube, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "taskflow.io_taskdags.yaml"
EXAMPLES = REPO / "deploy" / "examples"
TASKFLOW = str(Path(sys.executable).parent / "taskflow")
SYSTEM_NS = "taskflow-system"
SERVICE_ACCOUNT = "taskflow-operator"
WAIT_S = 60.0  # upper bound before a wait fails; never a timing assertion

# The operator's RBAC, as promised to the Helm chart (docs/operator.md lists the same rules).
OPERATOR_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["taskflow.io"], "resources": ["taskdags"], "verbs": ["get", "list", "watch", "patch", "update"]},
    {"apiGroups": ["taskflow.io"], "resources": ["taskdags/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["get", "list", "watch"]},
]  # fmt: skip

T = TypeVar("T")


def wait_for(probe: Callable[[], T], accept: Callable[[T], bool], what: str, timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The operator and worker processes of the module, with their logs."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.operators: list[tuple[subprocess.Popen[bytes], int, Path]] = []
        self.others: list[subprocess.Popen[bytes]] = []

    def start_operator(self, name: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        log = self.logs / f"{name}.log"
        env = {**self.env, "TASKFLOW_HTTP_PORT": str(port), "POD_NAME": name}
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [TASKFLOW, "operator", "--api", "--leader-elect", "--lease-namespace", SYSTEM_NS],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.operators.append((proc, port, log))
        wait_for(lambda: http_status(port, "/health"), lambda s: s == 200 or proc.poll() is not None, "operator HTTP")
        assert proc.poll() is None, log.read_text()[-3000:]
        return proc, port

    def start_worker(self, *queues: str) -> subprocess.Popen[bytes]:
        args = [TASKFLOW, "worker", "--concurrency", "4"]
        for q in queues:
            args += ["--queue", q]
        with (self.logs / f"worker-{'-'.join(queues)}.log").open("wb") as out:
            proc = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.others.append(proc)
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return next(log.read_text() for p, _, log in self.operators if p is proc)

    def stop_all(self) -> None:
        for proc in [p for p, _, _ in self.operators] + self.others:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [p for p, _, _ in self.operators] + self.others:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def http_json(port: int, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Env:
    def __init__(self, cluster: KubeTestCluster, dsn: str, redis_port: int, procs: Processes) -> None:
        self.cluster = cluster
        self.dsn = dsn
        self.redis = redis.Redis(host="127.0.0.1", port=redis_port, decode_responses=True)
        self.procs = procs
        self.operator, self.port = procs.start_operator("operator-0")

    def namespace(self) -> str:
        name = f"op-{uuid.uuid4().hex[:8]}"
        self.cluster.kubectl("create", "namespace", name)
        return name

    def apply(self, namespace: str, manifest: dict[str, Any] | Path) -> None:
        text = manifest.read_text() if isinstance(manifest, Path) else json.dumps(manifest)
        self.cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        result = self.cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        body = self.get(namespace, "taskdag", name)
        return (body or {}).get("status") or {}

    def wait_phase(self, namespace: str, name: str, *phases: str) -> dict[str, Any]:
        return wait_for(
            lambda: self.status(namespace, name), lambda s: s.get("phase") in phases, f"{name} in phase {phases}"
        )

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items = json.loads(self.cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        return [e for e in items if e["involvedObject"]["name"] == name]

    def reasons(self, namespace: str, name: str) -> list[str]:
        return [e["reason"] for e in self.events(namespace, name)]

    def runs_with_key(self, key: str) -> list[tuple[Any, str]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(
                "SELECT id, status FROM taskflow_dag_runs WHERE idempotency_key = %s", (key,)
            ).fetchall()


def _dag(name: str, steps: list[dict[str, Any]], edges: list[tuple[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "apiVersion": "taskflow.io/v1alpha1",
        "kind": "TaskDag",
        "metadata": {"name": name},
        "spec": {"steps": steps, "edges": [{"from": a, "to": b} for a, b in edges]},
    }


@pytest.fixture(scope="module")
def env(
    cluster: KubeTestCluster, pg_server: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/taskdags.taskflow.io", "--timeout=60s")
    # The operator's identity: a ServiceAccount with the chart's rules and nothing else.
    if cluster.kubectl("get", "namespace", SYSTEM_NS, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", SYSTEM_NS)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "taskflow-operator-e2e"}, "rules": OPERATOR_RULES}  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "taskflow-operator-e2e"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "taskflow-operator-e2e"},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": SYSTEM_NS}],
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]}))
    token = cluster.token_for_service_account(SYSTEM_NS, SERVICE_ACCOUNT)
    kubeconfig = cluster.kubeconfig_for_token(token, user=SERVICE_ACCOUNT)
    wait_for(  # the RBAC authorizer learns new bindings through an informer
        lambda: cluster.kubectl("get", "taskdags", "-A", kubeconfig=kubeconfig, check=False).returncode,
        lambda rc: rc == 0, "RBAC binding to take effect",
    )  # fmt: skip

    dsn = pg_server.create_database(f"op_{uuid.uuid4().hex[:10]}")
    flush = redis.Redis(host="127.0.0.1", port=redis_server.port)
    flush.flushall()  # nothing left over from earlier tests' queues
    flush.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_") and k != "KUBECONFIG"}
    procs = Processes(
        {
            **base,
            "KUBECONFIG": str(kubeconfig),
            "TASKFLOW_POSTGRES_DSN": dsn,
            "TASKFLOW_REDIS_ADDR": redis_server.addr,
            "TASKFLOW_AUTH_MODE": "none",
            "TASKFLOW_HTTP_HOST": "127.0.0.1",
            "TASKFLOW_BACKOFF_BASE": "0.05",
            "TASKFLOW_OPERATOR_STATUS_MIN_INTERVAL": "0.3",
            "TASKFLOW_OPERATOR_RESYNC_INTERVAL": "2",
            "TASKFLOW_OPERATOR_SCALE_INTERVAL": "0.5",
            "TASKFLOW_OPERATOR_LEASE_DURATION": "3",
        },
        tmp_path_factory.mktemp("operator-logs"),
    )
    try:
        environment = Env(cluster, dsn, redis_server.port, procs)
        procs.start_worker("default")
        yield environment
    finally:
        procs.stop_all()
        for proc, _, log in procs.operators:
            if proc.returncode not in (0, -signal.SIGKILL):
                print(f"--- {log.name} (exit {proc.returncode}) ---\n{log.read_text()[-5000:]}")


# --- TaskDag lifecycle ------------------------------------------------------------------------------


def test_diamond_succeeds_with_counts_and_one_run(env: Env) -> None:
    ns = env.namespace()
    env.apply(ns, EXAMPLES / "diamond.yaml")
    status = env.wait_phase(ns, "diamond", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded" and status["progress"] == "4/4"
    assert status["counts"] == {"total": 4, "succeeded": 4, "failed": 0, "running": 0, "pending": 0, "cancelled": 0}
    assert {s["id"]: s["state"] for s in status["steps"]} == dict.fromkeys("abcd", "Succeeded")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Completed"] == ("True", "Succeeded") and conditions["Submitted"] == ("True", "RunCreated")
    assert status["startedAt"] and status["finishedAt"]

    uid = env.get(ns, "taskdag", "diamond")["metadata"]["uid"]  # type: ignore[index]
    assert env.runs_with_key(f"taskdag:{uid}") == [(uuid.UUID(status["dagRunId"]), "completed")]
    run = http_json(env.port, f"/api/v1/dags/{status['dagRunId']}")
    assert run["status"] == "completed" and run["idempotency_key"] == f"taskdag:{uid}"
    wait_for(lambda: env.reasons(ns, "diamond"), lambda r: "RunSucceeded" in r, "a RunSucceeded Event")
    # kubectl's printer columns show the phase and progress.
    table = env.cluster.kubectl("get", "tdag", "-n", ns, "-o", "wide").stdout
    assert "Succeeded" in table and "4/4" in table and status["dagRunId"] in table


def test_failing_step_fails_with_events(env: Env) -> None:
    ns = env.namespace()
    env.apply(ns, EXAMPLES / "failing-step.yaml")
    status = env.wait_phase(ns, "failing-step", "Succeeded", "Failed")
    assert status["phase"] == "Failed" and status["progress"] == "1/3"
    assert status["counts"]["failed"] == 1 and status["counts"]["cancelled"] == 1
    assert "step 'b' failed" in status["message"]
    reasons = wait_for(
        lambda: env.reasons(ns, "failing-step"), lambda r: "RunFailed" in r, "a RunFailed Event"
    )
    assert reasons.count("StepDeadLettered") == 1 and reasons.count("RunFailed") == 1
    assert "StepRetrying" in reasons  # max_retries: 1, so one retry before the dead-letter


def test_cycle_is_invalid_and_nothing_is_written(env: Env) -> None:
    ns = env.namespace()
    env.apply(ns, _dag("cycle", [{"id": s, "type": "noop"} for s in "abc"], [("a", "b"), ("b", "c"), ("c", "a")]))
    status = env.wait_phase(ns, "cycle", "Invalid", "Pending", "Running")
    assert status["phase"] == "Invalid" and "cycle" in status["message"] and "dagRunId" not in status
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidDag")
    events = wait_for(lambda: env.events(ns, "cycle"), lambda e: bool(e), "an InvalidDag Event")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "InvalidDag")]
    assert "a DAG must not loop back" in events[0]["message"]
    uid = env.get(ns, "taskdag", "cycle")["metadata"]["uid"]  # type: ignore[index]
    assert env.runs_with_key(f"taskdag:{uid}") == []

    # An Invalid TaskDag never ran, so fixing its spec submits it (the immutability rule does not apply).
    env.cluster.kubectl("patch", "tdag", "cycle", "-n", ns, "--type=merge",
                        "-p", json.dumps({"spec": {"edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}}))  # fmt: skip
    fixed = env.wait_phase(ns, "cycle", "Succeeded", "Failed")
    assert fixed["phase"] == "Succeeded" and fixed["submittedGeneration"] == 2
    assert {c["type"]: c["status"] for c in fixed["conditions"]}["Valid"] == "True"
    assert len(env.runs_with_key(f"taskdag:{uid}")) == 1


def test_schema_rejects_what_it_can_catch(env: Env) -> None:
    ns = env.namespace()
    bad = _dag("bad", [{"id": "-x", "type": "noop", "priority": 10**7}, {"id": "y", "type": "noop", "queue": "Up"}])
    result = env.cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    for field in ("spec.steps[0].id", "spec.steps[0].priority", "spec.steps[1].queue"):
        assert field in result.stderr
    dup = _dag("dup", [{"id": "a", "type": "noop"}, {"id": "a", "type": "noop"}])
    result = env.cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(dup), check=False)
    assert result.returncode != 0 and "Duplicate value" in result.stderr


def test_spec_edit_is_rejected_and_not_applied(env: Env) -> None:
    ns = env.namespace()
    env.apply(ns, _dag("edit-me", [{"id": "a", "type": "sleep", "payload": {"seconds": 1.5}}, {"id": "b", "type": "noop"}],
                       [("a", "b")]))  # fmt: skip
    before = wait_for(lambda: env.status(ns, "edit-me"), lambda s: "dagRunId" in s, "submission")
    env.cluster.kubectl("patch", "tdag", "edit-me", "-n", ns, "--type=merge",
                        "-p", json.dumps({"spec": {"steps": [{"id": "z", "type": "noop"}], "edges": []}}))  # fmt: skip
    status = wait_for(
        lambda: env.status(ns, "edit-me"),
        lambda s: any(c["type"] == "SpecApplied" and c["status"] == "False" for c in s.get("conditions", [])),
        "the SpecApplied=False condition",
    )
    applied = next(c for c in status["conditions"] if c["type"] == "SpecApplied")
    assert applied["reason"] == "SpecImmutable" and applied["observedGeneration"] == 2
    assert status["dagRunId"] == before["dagRunId"] and status["submittedGeneration"] == 1
    warning = wait_for(lambda: env.events(ns, "edit-me"), lambda e: any(x["reason"] == "SpecImmutable" for x in e), "Event")
    assert any(e["type"] == "Warning" for e in warning if e["reason"] == "SpecImmutable")
    # The original two-step run finishes; the edit was not applied.
    final = env.wait_phase(ns, "edit-me", "Succeeded", "Failed")
    assert final["progress"] == "2/2" and {s["id"] for s in final["steps"]} == {"a", "b"}
    # The follower's later patches kept the SpecApplied condition.
    assert any(c["type"] == "SpecApplied" and c["status"] == "False" for c in final["conditions"])


def test_delete_cancels_the_run(env: Env) -> None:
    ns = env.namespace()
    env.apply(ns, _dag("long", [{"id": "a", "type": "sleep", "payload": {"seconds": 30}}, {"id": "b", "type": "noop"}],
                       [("a", "b")]))  # fmt: skip
    status = env.wait_phase(ns, "long", "Running")
    body = env.get(ns, "taskdag", "long")
    assert body is not None and "taskflow.io/cancel-run" in body["metadata"]["finalizers"]
    env.cluster.kubectl("delete", "tdag", "long", "-n", ns, "--wait=true", "--timeout=60s")
    assert env.get(ns, "taskdag", "long") is None
    run = http_json(env.port, f"/api/v1/dags/{status['dagRunId']}")
    assert run["status"] == "cancelled"
    assert {s["step_id"]: s["status"] for s in run["steps"]}["b"] == "cancelled"


def test_rest_submissions_are_not_mirrored(env: Env) -> None:
    before = json.loads(env.cluster.kubectl("get", "tdag", "-A", "-o", "json").stdout)["items"]
    accepted = http_json(env.port, "/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}], "edges": []})
    wait_for(lambda: http_json(env.port, f"/api/v1/dags/{accepted['dag_run_id']}")["status"],
             lambda s: s == "completed", "REST run to complete")  # fmt: skip
    after = json.loads(env.cluster.kubectl("get", "tdag", "-A", "-o", "json").stdout)["items"]
    assert len(after) == len(before)


def test_health_and_ready(env: Env) -> None:
    assert http_status(env.port, "/health") == 200
    assert http_status(env.port, "/ready") == 200


def test_engine_returns_the_same_run_for_the_same_key(env: Env) -> None:
    body = {"steps": [{"id": "a", "type": "noop"}], "edges": [], "idempotency_key": f"taskdag:{uuid.uuid4()}"}
    first = http_json(env.port, "/api/v1/dags", body)
    second = http_json(env.port, "/api/v1/dags", body)
    assert first == second and len(env.runs_with_key(body["idempotency_key"])) == 1


# --- worker autoscaling -----------------------------------------------------------------------------


def _deployment(name: str, queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {"taskflow.io/component": "worker"},
            "annotations": {
                "taskflow.io/queues": queue,
                "taskflow.io/min-replicas": "0",
                "taskflow.io/max-replicas": "3",
                "taskflow.io/target-per-replica": "2",
                "taskflow.io/scale-down-stabilisation-seconds": "1",
            },
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "registry.invalid/taskflow-worker:1"}]},
            },
        },
    }


def _pod(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "worker", "image": "registry.invalid/taskflow-worker:1"}]},
    }


def test_backlog_scales_up_idle_pods_are_cheapest_and_empty_queue_scales_to_zero(env: Env) -> None:
    ns = env.namespace()
    queue = f"scale-{uuid.uuid4().hex[:6]}"
    env.apply(ns, _deployment("burst", queue))
    for _ in range(5):
        http_json(env.port, "/api/v1/tasks", {"type": "noop", "queue": queue})
    replicas = wait_for(
        lambda: env.get(ns, "deployment", "burst")["spec"]["replicas"], lambda r: r == 3, "scale-up to 3"  # type: ignore[index]
    )
    assert replicas == 3  # ceil(5 / 2) = 3, within max 3
    # The operator may see the first submissions before the last (0 -> 1 or 2 first); the Event of
    # the step that reached 3 replicas names the whole backlog.
    scaled = wait_for(
        lambda: env.events(ns, "burst"),
        lambda e: any(x["reason"] == "ScaledUp" and " to 3:" in x["message"] for x in e),
        "ScaledUp Event to 3",
    )
    assert "5 runnable task(s)" in next(e["message"] for e in scaled if e["reason"] == "ScaledUp" and " to 3:" in e["message"])

    # Worker pods (made by hand: no controller-manager here); worker id = pod name.
    # Heartbeats as the workers write them: "burst-new" has not sent its first one yet.
    env.redis.hset(worker_key("burst-idle"), mapping={"queues": queue, "concurrency": 4, "busy": 0, "seen_ms": 1})
    env.redis.hset(worker_key("burst-busy"), mapping={"queues": queue, "concurrency": 4, "busy": 2, "seen_ms": 1})
    for pod in ("burst-idle", "burst-busy", "burst-new"):
        env.apply(ns, _pod(pod, "burst"))

    def costs() -> dict[str, str | None]:
        return {
            p: ((env.get(ns, "pod", p) or {})["metadata"].get("annotations") or {}).get(
                "controller.kubernetes.io/pod-deletion-cost"
            )
            for p in ("burst-idle", "burst-busy", "burst-new")
        }

    expected = {"burst-idle": "-100", "burst-busy": "102", "burst-new": "0"}  # idle pods go first
    assert wait_for(costs, lambda c: c == expected, "deletion costs") == expected

    # Drain the queue with a real worker: the Deployment goes back to zero.
    worker = env.procs.start_worker(queue)
    try:
        wait_for(lambda: env.get(ns, "deployment", "burst")["spec"]["replicas"], lambda r: r == 0, "scale to 0")  # type: ignore[index]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert any(e["reason"] == "ScaledDown" for e in env.events(ns, "burst"))


def test_delayed_tasks_prewarm_workers(env: Env) -> None:
    ns = env.namespace()
    queue = f"later-{uuid.uuid4().hex[:6]}"
    deployment = _deployment("later", queue)
    deployment["metadata"]["annotations"]["taskflow.io/prewarm-seconds"] = "600"
    env.apply(ns, deployment)
    # Due in 5 minutes: inside the 10-minute pre-warm horizon, so it counts.
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
    http_json(env.port, "/api/v1/tasks", {"type": "noop", "queue": queue, "scheduled_at": soon})
    wait_for(lambda: env.get(ns, "deployment", "later")["spec"]["replicas"], lambda r: r == 1, "pre-warm to 1")  # type: ignore[index]


def test_bad_annotations_give_one_warning(env: Env) -> None:
    ns = env.namespace()
    deployment = _deployment("broken", "q")
    deployment["metadata"]["annotations"]["taskflow.io/max-replicas"] = "lots"
    env.apply(ns, deployment)
    events = wait_for(lambda: env.events(ns, "broken"), lambda e: bool(e), "a BadScalingAnnotation Event")
    assert events[0]["reason"] == "BadScalingAnnotation" and "not a whole number" in events[0]["message"]
    assert env.get(ns, "deployment", "broken")["spec"]["replicas"] == 0  # type: ignore[index]


# --- restarts and HA (these replace the operator process) --------------------------------------------


def test_operator_killed_mid_run_neither_duplicates_nor_loses_status(env: Env) -> None:
    ns = env.namespace()
    env.apply(ns, _dag("restart", [{"id": "a", "type": "sleep", "payload": {"seconds": 2}}, {"id": "b", "type": "noop"}],
                       [("a", "b")]))  # fmt: skip
    submitted = env.wait_phase(ns, "restart", "Running")
    env.operator.kill()  # SIGKILL: no Lease release, no cleanup
    env.operator.wait()
    # While no operator runs, the run finishes; the next operator must notice on resume.
    uid = env.get(ns, "taskdag", "restart")["metadata"]["uid"]  # type: ignore[index]
    wait_for(lambda: env.runs_with_key(f"taskdag:{uid}"), lambda r: r and r[0][1] == "completed", "run to finish")
    env.operator, env.port = env.procs.start_operator("operator-1")
    status = env.wait_phase(ns, "restart", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded" and status["dagRunId"] == submitted["dagRunId"]
    assert len(env.runs_with_key(f"taskdag:{uid}")) == 1
    reasons = wait_for(lambda: env.reasons(ns, "restart"), lambda r: "RunSucceeded" in r, "RunSucceeded")
    assert reasons.count("Submitted") == 1 and reasons.count("RunSucceeded") == 1


def test_second_replica_waits_then_takes_over(env: Env) -> None:
    follower, follower_port = env.procs.start_operator("operator-2")
    assert http_status(follower_port, "/ready") == 200  # followers serve HTTP too
    lease = json.loads(env.cluster.kubectl("get", "lease", "taskflow-operator", "-n", SYSTEM_NS, "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == "operator-1"
    env.operator.send_signal(signal.SIGTERM)  # a clean stop releases the Lease
    assert env.operator.wait(timeout=30) == 0
    env.operator, env.port = follower, follower_port
    wait_for(
        lambda: json.loads(env.cluster.kubectl("get", "lease", "taskflow-operator", "-n", SYSTEM_NS, "-o", "json")
                           .stdout)["spec"].get("holderIdentity"),
        lambda holder: holder == "operator-2", "the follower to take the Lease",
    )  # fmt: skip
    ns = env.namespace()
    env.apply(ns, yaml.safe_load((EXAMPLES / "diamond.yaml").read_text()))
    assert env.wait_phase(ns, "diamond", "Succeeded", "Failed")["phase"] == "Succeeded"


def test_leader_that_loses_its_lease_stops(env: Env) -> None:
    # Another holder appears (e.g. this replica was partitioned away and its Lease expired).
    env.cluster.kubectl("patch", "lease", "taskflow-operator", "-n", SYSTEM_NS, "--type=merge",
                        "-p", json.dumps({"spec": {"holderIdentity": "intruder"}}))  # fmt: skip
    assert env.operator.wait(timeout=30) == 1
    assert "another replica took the Lease" in env.procs.log_of(env.operator)
