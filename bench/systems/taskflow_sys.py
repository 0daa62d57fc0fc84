"""Taskflow: 2 `taskflow worker` processes, async handlers; the driver uses the Engine (Python API)."""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

import taskflow.worker.registry as tf
from bench.record import record
from bench.systems.base import QUEUE, Env, System

CONCURRENCY = 64


@tf.task("bench.noop")
async def noop(ctx: Any, payload: dict[str, Any]) -> None:
    record(payload, time.monotonic())


class Taskflow(System):
    name = "taskflow"
    notes = {
        "enqueue_one": "Engine.submit_task (PG commit, then Redis)",
        "enqueue_bulk": "Engine.submit_tasks, 1,000 per call",
        "chain": "native DAG (1,000-step line)",
        "fanout": "native DAG (1→N→1)",
        "dag": "native DAG submit",
    }

    def __init__(self, *, synchronous_commit: str = "on") -> None:
        self.synchronous_commit = synchronous_commit

    def _dsn(self, env: Env) -> str:
        sep = "&" if "?" in env.pg_dsn else "?"
        return f"{env.pg_dsn}{sep}options=-csynchronous_commit%3D{self.synchronous_commit}"

    def worker_commands(self, env: Env) -> list[list[str]]:
        cmd = [
            env.python, "-c", "import sys; from taskflow.cli.main import main; sys.exit(main())",
            "--log-level", "warning", "worker", "--import", "bench.systems.taskflow_sys",
            "--queue", QUEUE, "--concurrency", str(CONCURRENCY),
        ]
        return [cmd, cmd]

    def worker_env(self, env: Env) -> dict[str, str]:
        redis_addr = env.redis_url.removeprefix("redis://").split("/")[0]
        return {
            "TASKFLOW_POSTGRES_DSN": self._dsn(env),
            "TASKFLOW_REDIS_ADDR": redis_addr,
            "TASKFLOW_CLAIM_BATCH": str(CONCURRENCY),
        }

    async def open(self, env: Env) -> None:
        from taskflow.core.settings import Settings
        from taskflow.engine import Engine

        self.env = env
        settings = Settings(
            postgres_dsn=self._dsn(env), redis_addr=env.redis_url.removeprefix("redis://").split("/")[0],
            default_max_retries=0,
        )
        self.engine = await Engine.connect(settings, pool_size=4)

    async def close(self) -> None:
        await self.engine.close()

    async def enqueue_one(self, payload: dict[str, Any]) -> None:
        from taskflow.core.models import TaskSubmission

        await self.engine.submit_task(TaskSubmission(type="bench.noop", payload=payload, queue=QUEUE))

    async def enqueue_bulk(self, payloads: list[dict[str, Any]]) -> None:
        from taskflow.core.models import TaskSubmission

        for i in range(0, len(payloads), 1000):
            await self.engine.submit_tasks(
                [TaskSubmission(type="bench.noop", payload=p, queue=QUEUE) for p in payloads[i : i + 1000]]
            )

    async def _dag(self, steps: list[dict[str, Any]], edges: list[tuple[str, str]]) -> None:
        from taskflow.core.models import DagSubmission

        await self.engine.submit_dag(
            DagSubmission.model_validate({"steps": steps, "edges": [{"from": a, "to": b} for a, b in edges]})
        )

    async def start_chain(self, n: int, t: float) -> None:
        steps = [{"id": f"c{i}", "type": "bench.noop", "queue": QUEUE, "payload": {"id": f"c{i}", "t": t}} for i in range(n)]
        await self._dag(steps, [(f"c{i}", f"c{i + 1}") for i in range(n - 1)])

    async def start_fanout(self, n: int, t: float) -> None:
        mids = [f"m{i}" for i in range(n)]
        steps = [{"id": s, "type": "bench.noop", "queue": QUEUE, "payload": {"id": s, "t": t}} for s in ["r", *mids, "s"]]
        await self._dag(steps, [("r", m) for m in mids] + [(m, "s") for m in mids])

    async def submit_dag(self, n: int) -> float | None:
        # A tree (step i's parent is (i-1)//2) on a queue no worker takes: only the commit is timed.
        steps = [{"id": f"d{i}", "type": "bench.noop", "queue": "bench-dag", "payload": {"id": f"d{i}", "t": 0}} for i in range(n)]
        edges = [(f"d{(i - 1) // 2}", f"d{i}") for i in range(1, n)]
        t0 = time.perf_counter()
        await self._dag(steps, edges)
        return time.perf_counter() - t0

    def version(self) -> str:
        return version("taskflow")
