"""Runs Taskflow as real processes for the fault-injection suite, submits work, drains, collects history.

A `ChaosCluster` starts the API (`taskflow api`, which also runs the reconciler) and worker
processes (`taskflow worker --import tests.chaos.handlers`) against the PostgreSQL and Redis
addresses it is given (a fault proxy's, where a fault needs one) with short timings
(`CHAOS_TIMINGS`) so faults heal within seconds. The `Submitter` posts through the REST API
and keeps every acknowledged id; it retries on 503 and on connection errors with the same
idempotency key, as a careful client would. `collect` reads the history back from
PostgreSQL (directly, never through a proxy), the handler logs and Redis, for the checker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
import psycopg
import redis.asyncio as aioredis

from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.engine.reconciler import Reconciler
from taskflow.localservers import free_port
from taskflow.queue.keys import QUEUES_KEY, QueueKeys
from tests.chaos.checker import Attempt, Execution, History, Task, Transition

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
SCALE = os.environ.get("TASKFLOW_CHAOS_SCALE", "ci")
if SCALE not in ("ci", "nightly"):
    raise RuntimeError(f"TASKFLOW_CHAOS_SCALE must be ci or nightly, not {SCALE!r}")

# Short leases and a fast reconciler so every fault heals in seconds on 2 shared cores.
CHAOS_TIMINGS: dict[str, str] = {
    "TASKFLOW_LOCK_TTL": "1.0",
    "TASKFLOW_POLL_INTERVAL": "0.05",
    "TASKFLOW_RECONCILE_INTERVAL": "0.5",
    "TASKFLOW_REQUEUE_GRACE": "1.0",
    "TASKFLOW_FULL_RESYNC_INTERVAL": "5.0",
    "TASKFLOW_BACKOFF_BASE": "0.05",
    "TASKFLOW_BACKOFF_CAP": "0.5",
    "TASKFLOW_SHUTDOWN_GRACE": "2.0",
    "TASKFLOW_CONCURRENCY": "16",
}


def proxied_dsn(dsn: str, port: int) -> str:
    """The same database through a proxy on `port`; plaintext, so the proxy can follow the protocol."""
    parts = urlsplit(dsn)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl() + "?sslmode=disable&gssencmode=disable"


def install_recorder(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((Path(__file__).parent / "history.sql").read_text())  # type: ignore[arg-type]


@dataclass
class ChaosCluster:
    """API and worker processes of one run; `pg_dsn`/`redis_addr` are what the processes dial."""

    workdir: Path
    pg_dsn: str
    redis_addr: str
    timings: dict[str, str] = field(default_factory=lambda: dict(CHAOS_TIMINGS))
    api_redis_addr: str | None = None  # the API's own way to Redis, if not `redis_addr`
    api_port: int = 0
    api: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: int = 0

    def __post_init__(self) -> None:
        self.logs = self.workdir / "handler-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.api_port = self.api_port or free_port()
        self.token = secrets.token_urlsafe(24)
        self.tokens_file = self.workdir / "api-tokens"
        self.tokens_file.write_text(self.token + "\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.timings,
            "PYTHONPATH": str(REPO),
            "TASKFLOW_POSTGRES_DSN": self.pg_dsn,
            "TASKFLOW_REDIS_ADDR": self.redis_addr,
            "TASKFLOW_CHAOS_LOG_DIR": str(self.logs),
            "TASKFLOW_IMPORTS": "tests.chaos.handlers",
            "TASKFLOW_AUTH_TOKENS_FILE": str(self.tokens_file),
            **extra,
        }

    def _spawn(self, name: str, args: list[str], **extra: str) -> subprocess.Popen[bytes]:
        out = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (lives as long as the process)
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "taskflow", "--log-level", "INFO", *args],
                env=self._env(**extra), cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        finally:
            out.close()

    def start_api(self) -> None:
        self.api = self._spawn(
            "api", ["api"], TASKFLOW_HTTP_PORT=str(self.api_port), TASKFLOW_HTTP_HOST="127.0.0.1",
            TASKFLOW_WORKER_ID="api", TASKFLOW_REDIS_ADDR=self.api_redis_addr or self.redis_addr,
        )

    def start_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(name, ["worker"], TASKFLOW_WORKER_ID=name)

    def start_workers(self, n: int) -> list[str]:
        names = [f"w{i}" for i in range(n)]
        for name in names:
            self.start_worker(name)
        return names

    def signal_worker(self, name: str, sig: int) -> None:
        self.workers[name].send_signal(sig)

    def kill_and_restart(self, name: str) -> None:
        proc = self.workers[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.restarts += 1
        self.start_worker(name)

    async def wait_api(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.api is not None and self.api.poll() is None, self._tail("api")
                try:
                    async with session.get(f"{self.url}/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("the API did not come up\n" + self._tail("api"))
                await asyncio.sleep(0.1)

    def _tail(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> dict[str, int]:
        """SIGTERM everything (SIGCONT first, a paused process cannot stop); return exit codes."""
        procs = {**self.workers, **({"api": self.api} if self.api else {})}
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in procs.items():
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(10)
        return codes

    def refused_writes(self) -> int:
        """Stale writes refused by PostgreSQL, as the workers that stopped cleanly logged them."""
        total = 0
        for path in self.workdir.glob("w*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if "outcomes recorded," in line and "refused" in line:
                    total += int(line.rsplit(" refused", 1)[0].rsplit(", ", 1)[1])
        return total


class Submitter:
    """Posts work through the REST API and remembers what was acknowledged (202)."""

    def __init__(self, url: str, token: str, *, give_up_after: float = 120.0) -> None:
        self.url = url
        self.token = token
        self.give_up_after = give_up_after
        self.acked_tasks: set[UUID] = set()
        self.acked_runs: set[UUID] = set()
        self.retries = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Submitter:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), headers={"Authorization": f"Bearer {self.token}"}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        deadline = time.monotonic() + self.give_up_after
        while True:
            try:
                async with self._session.post(self.url + path, json=body) as resp:
                    if resp.status == 202:
                        return dict(await resp.json())
                    text = await resp.text()
                    if resp.status != 503:
                        raise AssertionError(f"POST {path} answered {resp.status}: {text}")
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"POST {path} was not accepted within {self.give_up_after}s")
            await asyncio.sleep(0.2)

    async def tasks(self, payloads: Sequence[dict[str, Any]], key: str, *, max_retries: int = 3) -> None:
        body = {
            "tasks": [
                {"type": "chaos.work", "payload": p, "max_retries": max_retries, "idempotency_key": f"{key}-{i}"}
                for i, p in enumerate(payloads)
            ]
        }
        reply = await self._post("/api/v1/tasks/batch", body)
        self.acked_tasks.update(UUID(i) for i in reply["task_ids"])

    async def dag(self, steps: list[dict[str, Any]], edges: list[dict[str, str]], key: str) -> None:
        reply = await self._post("/api/v1/dags", {"steps": steps, "edges": edges, "idempotency_key": key})
        self.acked_runs.add(UUID(reply["dag_run_id"]))


def random_dag(rng: random.Random, *, max_steps: int = 8, fail_always: float = 0.03, fail_once: float = 0.1,
               max_sleep: float = 0.02) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """A random DAG shape (chains, fans, diamonds all arise), some steps failing by payload."""
    n = rng.randint(1, max_steps)
    steps = []
    for i in range(n):
        payload: dict[str, Any] = {"sleep": round(rng.random() * max_sleep, 3)}
        roll = rng.random()
        if roll < fail_always:
            payload["fail"] = "always"
        elif roll < fail_always + fail_once:
            payload["fail"] = 2
        steps.append({"id": f"s{i}", "type": "chaos.work", "payload": payload, "max_retries": 3})
    edges = []
    for child in range(1, n):
        for parent in rng.sample(range(child), k=min(child, rng.choice((0, 1, 1, 2, 3)))):
            edges.append({"from": f"s{parent}", "to": f"s{child}"})
    return steps, edges


async def drain(dsn: str, expected_tasks: int, *, timeout: float, what: str = "the run") -> float:
    """Wait until PostgreSQL holds at least `expected_tasks` tasks and every task and run is terminal."""
    started = time.monotonic()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status NOT IN ('completed', 'dlq', 'cancelled')),"
                " (SELECT count(*) FROM taskflow_dag_runs WHERE status NOT IN ('completed', 'failed', 'cancelled'))"
                " FROM taskflow_tasks"
            )
            total, open_tasks, open_runs = await cur.fetchone()  # type: ignore[misc]
            if total >= expected_tasks and open_tasks == 0 and open_runs == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                cur = await conn.execute(
                    "SELECT status, count(*) FROM taskflow_tasks GROUP BY status ORDER BY status"
                )
                raise AssertionError(
                    f"{what} did not drain within {timeout:.0f}s: {total} tasks (expected {expected_tasks}), "
                    f"{open_tasks} unfinished, {open_runs} runs unfinished; by status {await cur.fetchall()}"
                )
            await asyncio.sleep(0.25)


def reconciler_settings(pg_dsn: str, redis_addr: str) -> Settings:
    env = {k.removeprefix("TASKFLOW_").lower(): v for k, v in CHAOS_TIMINGS.items()}
    return Settings(postgres_dsn=pg_dsn, redis_addr=redis_addr, worker_id="chaos-checker", **env)  # type: ignore[arg-type]


async def reconcile_once(pg_dsn: str, redis_addr: str) -> None:
    """One reconciler pass from a fresh reconciler (its first tick is a full resync)."""
    engine = await Engine.connect(reconciler_settings(pg_dsn, redis_addr), pool_size=2)
    try:
        await Reconciler(engine).tick()
    finally:
        await engine.close()


async def redis_view(redis_addr: str, *, all_leases: bool = False) -> tuple[set[UUID], set[UUID]]:
    """(task ids Redis holds as due: ready or delayed, task ids with an unexpired Redis lease, or any)."""
    host, _, port = redis_addr.rpartition(":")
    client = aioredis.Redis(host=host, port=int(port), decode_responses=True)
    try:
        seconds, micros = await client.time()
        now_ms = seconds * 1000 + micros // 1000
        due: set[UUID] = set()
        leased: set[UUID] = set()
        for queue in await client.smembers(QUEUES_KEY) or {"default"}:
            qk = QueueKeys.of(queue)
            for key in (qk.ready, qk.delayed):
                due.update(UUID(m.split(":", 2)[1]) for m in await client.zrange(key, 0, -1))
            low = "-inf" if all_leases else now_ms + 1
            leased.update(UUID(m) for m in await client.zrangebyscore(qk.leases, low, "+inf"))
        return due, leased
    finally:
        await client.aclose()


async def collect(pg_dsn: str, redis_addr: str, logs: Path, submitter: Submitter) -> History:
    h = History(acknowledged_tasks=set(submitter.acked_tasks), acknowledged_runs=set(submitter.acked_runs))
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT id, status, fence, max_retries, result, dag_run_id, error_message FROM taskflow_tasks"
        )
        h.tasks = {r[0]: Task(*r) for r in await cur.fetchall()}
        cur = await conn.execute("SELECT task_id, attempt, fence, worker_id, outcome, error FROM taskflow_attempts")
        h.attempts = [Attempt(*r) for r in await cur.fetchall()]
        cur = await conn.execute("SELECT seq, task_id, old_status, new_status, fence FROM chaos_transitions")
        h.transitions = [Transition(*r) for r in await cur.fetchall()]
        cur = await conn.execute("SELECT parent_id, child_id FROM taskflow_dag_edges")
        h.edges = [(r[0], r[1]) for r in await cur.fetchall()]
        cur = await conn.execute("SELECT id, status FROM taskflow_dag_runs")
        h.runs = {r[0]: r[1] for r in await cur.fetchall()}
    for path in logs.glob("*.log"):
        for line in path.read_text().splitlines():
            event, task_id, fence, attempt, worker = line.split("\t")
            h.executions.append(Execution(UUID(task_id), int(fence), int(attempt), worker, event))
    h.redis_due, h.redis_live_leases = await redis_view(redis_addr)
    return h


def write_results(name: str, figures: dict[str, Any]) -> None:
    figures = {"test": name, "scale": SCALE, **figures}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nCHAOS {name}: " + json.dumps(figures, default=str))
