"""The fault-injection suite: real processes, real faults, a recorded history, six invariants.

Each test starts the API and workers as processes, submits through the REST API, injects one
kind of fault while the work runs, drains, and hands the history to `tests/chaos/checker.py`.
Sizes follow TASKFLOW_CHAOS_SCALE (`ci`, the default, run by `make test`; `nightly`, run by
`make chaos-nightly`). Figures go to stdout (`pytest -s`) and tests/chaos/results/<test>.json.
See docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from taskflow.localservers import RedisServer
from tests.chaos.checker import check
from tests.chaos.harness import (
    CHAOS_TIMINGS,
    SCALE,
    ChaosCluster,
    Submitter,
    collect,
    drain,
    random_dag,
    reconcile_once,
    write_results,
)

SIZES: dict[str, Any] = {
    "ci": {
        "kill_tasks": int(__import__("os").environ.get("CHAOS_DEV_TASKS", 20_000)), "pauses": 200, "redis_kills": 3, "pg_restarts": 2, "commit_cuts": 500,
        "blackhole_s": 60.0, "random_dags": 1_000,
    },
    "nightly": {
        "kill_tasks": 200_000, "pauses": 2_000, "redis_kills": 10, "pg_restarts": 6, "commit_cuts": 5_000,
        "blackhole_s": 180.0, "random_dags": 10_000,
    },
}[SCALE]
TIMEOUT_S = 600 if SCALE == "ci" else 6 * 3600
LOCK_TTL = float(CHAOS_TIMINGS["TASKFLOW_LOCK_TTL"])

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT_S)]


def _standalone_payloads(rng: random.Random, n: int, *, max_sleep: float = 0.01) -> list[dict[str, Any]]:
    payloads = []
    for _ in range(n):
        p: dict[str, Any] = {"sleep": round(rng.random() * max_sleep, 3)}
        roll = rng.random()
        if roll < 0.005:
            p["fail"] = "always"
        elif roll < 0.025:
            p["fail"] = 2
        payloads.append(p)
    return payloads


async def _submit_mix(sub: Submitter, rng: random.Random, total: int, *, dag_share: float, batch: int = 500,
                      parallel: int = 4) -> int:
    """Submit `total` tasks, `dag_share` of them as steps of random DAGs; return the task count."""
    jobs: list[Any] = []
    dag_steps = 0
    while dag_steps < total * dag_share:
        steps, edges = random_dag(rng)
        dag_steps += len(steps)
        jobs.append(("dag", steps, edges, f"dag-{len(jobs)}"))
    standalone = total - dag_steps
    for start in range(0, standalone, batch):
        jobs.append(("tasks", _standalone_payloads(rng, min(batch, standalone - start)), f"batch-{start}"))
    rng.shuffle(jobs)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def run() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            if job[0] == "dag":
                await sub.dag(job[1], job[2], job[3])
            else:
                await sub.tasks(job[1], job[2])

    await asyncio.gather(*(run() for _ in range(parallel)))
    return total


async def _finish(name: str, cluster: ChaosCluster, sub: Submitter, pg_dsn: str, redis_addr: str,
                  expected_tasks: int, started: float, figures: dict[str, Any], drain_timeout: float = 300) -> None:
    """Drain, stop the processes, run one reconciler pass, collect the history, check it, report."""
    figures["drain_s"] = round(await drain(pg_dsn, expected_tasks, timeout=drain_timeout), 2)
    codes = cluster.stop()
    figures["stale_writes_refused"] = cluster.refused_writes()
    await asyncio.sleep(LOCK_TTL + 0.2)  # let Redis leases of the stopped workers run out
    await reconcile_once(pg_dsn, redis_addr)
    report = check(await collect(pg_dsn, redis_addr, cluster.logs, sub))
    figures.update(report.figures)
    figures["submit_retries"] = sub.retries
    figures["wall_s"] = round(time.monotonic() - started, 1)
    write_results(name, figures)
    assert report.ok, report.summary()
    assert codes.get("api") == 0, f"the API did not stop cleanly: {codes}"


async def _killer(cluster: ChaosCluster, names: list[str], every: float, stop: asyncio.Event) -> int:
    kills = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            cluster.kill_and_restart(names[kills % len(names)])
            kills += 1
    return kills


async def test_worker_sigkilled_every_2s(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    started = time.monotonic()
    cluster = ChaosCluster(tmp_path, chaos_db, chaos_redis.addr)
    cluster.start_api()
    names = cluster.start_workers(2)
    await cluster.wait_api()
    stop = asyncio.Event()
    killer = asyncio.create_task(_killer(cluster, names, 2.0, stop))
    try:
        async with Submitter(cluster.url, cluster.token) as sub:
            total = await _submit_mix(sub, random.Random(1), SIZES["kill_tasks"], dag_share=0.2)
            figures: dict[str, Any] = {}
            await drain(chaos_db, total, timeout=TIMEOUT_S / 2)
            stop.set()
            figures["faults_injected"] = await killer
            figures["fault"] = "worker SIGKILL every 2 s, restarted at once"
            await _finish("worker_sigkill", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
    finally:
        stop.set()
        cluster.stop()
