"""Load through the REST API of a running Taskflow, e.g. `taskflow dev --workers 2`.

    source .taskflow/dev/dev.env          # TASKFLOW_API_URL and TASKFLOW_API_TOKEN
    .venv/bin/python -m bench.api_load    # or: make load (starts its own taskflow dev)

Three measurements, every one end to end through HTTP, PostgreSQL, Redis and the workers:
  singles  `POST /api/v1/tasks` one task a request, `--concurrency` requests in flight
  batch    `POST /api/v1/tasks/batch` of `--batch` noops each, `--tasks` in all; throughput is
           tasks / (last finished_at - first created_at), from the tasks' own timestamps
  chain    a `--chain`-step line DAG; step-to-step = child started_at - parent finished_at
Timestamps come from PostgreSQL (the API's task and DAG views), so the client's polling does
not blur them. Every task is checked to have completed with exactly one completed attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import datetime
from typing import Any

from taskflow.client import AsyncClient
from taskflow.core.errors import Unavailable
from taskflow.core.models import TaskView


async def _all_tasks(tf: AsyncClient, status: str) -> list[TaskView]:
    tasks: list[TaskView] = []
    cursor: str | None = None
    while True:
        filters: dict[str, str | int] = {"status": status, "type": "noop", "limit": 1000}
        if cursor:
            filters["cursor"] = cursor
        page = await tf.list_tasks(**filters)
        tasks += page.tasks
        if page.next_cursor is None:
            return tasks
        cursor = page.next_cursor


async def _wait_idle(tf: AsyncClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [await tf.list_tasks(status=s, type="noop", limit=1) for s in ("queued", "running", "failed")]
        if not any(page.tasks for page in busy):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"api_load: noop tasks still unfinished after {timeout:.0f}s")


def _check_once(tasks: list[TaskView], expected: set[Any]) -> None:
    ids = {t.id for t in tasks}
    missing = expected - ids
    twice = [t.id for t in tasks if sum(a.outcome == "completed" for a in t.attempts) != 1]
    if missing or twice:
        raise SystemExit(f"api_load: {len(missing)} tasks not completed, {len(twice)} without exactly one completed attempt")


def _span(tasks: list[TaskView]) -> float:
    first: datetime = min(t.created_at for t in tasks)
    last: datetime = max(t.finished_at for t in tasks if t.finished_at is not None)
    return (last - first).total_seconds()


async def singles(tf: AsyncClient, n: int, concurrency: int) -> dict[str, float]:
    ids: set[Any] = set()
    todo = iter(range(n))

    async def submitter() -> None:
        for _ in todo:
            ids.add(await tf.enqueue_task("noop", {}))

    started = time.monotonic()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    submit_s = time.monotonic() - started
    await _wait_idle(tf, 300)
    done = [t for t in await _all_tasks(tf, "completed") if t.id in ids]
    _check_once(done, ids)
    return {"submitted_per_s": n / submit_s, "completed_per_s": n / _span(done)}


async def batch(tf: AsyncClient, n: int, size: int) -> dict[str, float]:
    ids: set[Any] = set()
    started = time.monotonic()
    for start in range(0, n, size):
        ids.update(await tf.enqueue_tasks([{"type": "noop"} for _ in range(min(size, n - start))]))
    submit_s = time.monotonic() - started
    await _wait_idle(tf, 600)
    done = [t for t in await _all_tasks(tf, "completed") if t.id in ids]
    _check_once(done, ids)
    return {"submitted_per_s": n / submit_s, "completed_per_s": n / _span(done)}


async def chain(tf: AsyncClient, n: int) -> dict[str, float]:
    steps = [{"id": f"s{i}", "type": "noop"} for i in range(n)]
    edges = [{"from": f"s{i}", "to": f"s{i + 1}"} for i in range(n - 1)]
    run = await tf.wait_dag(await tf.submit_dag({"steps": steps, "edges": edges}), timeout=600)
    if run.status != "completed":
        raise SystemExit(f"api_load: the chain ended {run.status.value}")
    by_id = {s.step_id: s for s in run.steps}
    gaps = []
    for i in range(n - 1):
        parent_done, child_start = by_id[f"s{i}"].finished_at, by_id[f"s{i + 1}"].started_at
        assert parent_done is not None and child_start is not None
        gaps.append((child_start - parent_done).total_seconds() * 1000)
    assert run.finished_at is not None
    return {
        "total_s": (run.finished_at - run.created_at).total_seconds(),
        "step_to_step_p50_ms": statistics.median(gaps),
        "step_to_step_p99_ms": sorted(gaps)[int(len(gaps) * 0.99)],
    }


async def main(args: argparse.Namespace) -> None:
    async with AsyncClient(args.url) as tf:
        deadline = time.monotonic() + 60
        while True:  # the API may still be starting (scripts/api-load.sh runs this beside `taskflow dev`)
            try:
                await tf.health()
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        print(f"singles  {args.singles} tasks, {args.concurrency} in flight: {await singles(tf, args.singles, args.concurrency)}")
        print(f"batch    {args.tasks} tasks in batches of {args.batch}: {await batch(tf, args.tasks, args.batch)}")
        print(f"chain    {args.chain} steps: {await chain(tf, args.chain)}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("TASKFLOW_API_URL", "http://127.0.0.1:8080"))
    p.add_argument("--singles", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--chain", type=int, default=200)
    return p


if __name__ == "__main__":
    try:
        asyncio.run(main(_parser().parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)
