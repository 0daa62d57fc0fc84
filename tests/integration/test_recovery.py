"""Leases, fences and Redis loss: the recovery paths, on real servers."""

from __future__ import annotations

import asyncio

from taskflow.core.models import TaskSubmission
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.engine.reconciler import Reconciler
from taskflow.queue.keys import task_id_of
from tests.helpers import eventually, running_worker


async def test_stale_fence_cannot_complete_after_lease_expiry(engine: Engine, settings: Settings) -> None:
    short = Engine(engine.store, engine.queue, settings.model_copy(update={"lock_ttl": 0.2}))
    task_id = await engine.submit_task(TaskSubmission(type="noop", max_retries=3))
    claim = await engine.queue.claim("default", 1, 200)
    [paused] = await short.start([task_id_of(m) for m in claim.members], "paused-worker")
    await asyncio.sleep(0.4)  # the paused worker misses its lease
    await Reconciler(engine).expire_leases()
    async with running_worker(engine, settings):
        await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "completed")
    # The paused worker wakes up and reports: refused, the completion stays the new holder's.
    accepted = await engine.record([(paused.id, paused.fence, '"late"')], [])
    assert accepted == set()
    final = await engine.get_task(task_id)
    assert final.result is None and final.fence > paused.fence
    assert [a.outcome for a in final.attempts] == ["lease_expired", "completed"]


async def test_everything_completes_after_redis_is_flushed_mid_run(engine: Engine, settings: Settings) -> None:
    ids = await engine.submit_tasks([TaskSubmission(type="sleep", payload={"seconds": 0.01}) for _ in range(300)])
    stop = asyncio.Event()
    reconciler = asyncio.create_task(Reconciler(engine).run(stop))
    try:
        async with running_worker(engine, settings, concurrency=4):
            await eventually(lambda: engine.list_tasks(status="completed", limit=1000),
                             lambda p: len(p.tasks) >= 20, what="some progress")
            await engine.queue.client.flushall()
            await eventually(lambda: engine.list_tasks(status="completed", limit=1000),
                             lambda p: len(p.tasks) == 300, timeout=60, what="all 300 to complete")
    finally:
        stop.set()
        await reconciler
    for task_id in ids[:10]:
        assert len([a for a in (await engine.get_task(task_id)).attempts if a.outcome == "completed"]) == 1


async def test_cancel_running_task_discards_result(engine: Engine, settings: Settings) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="sleep", payload={"seconds": 1.0}))
    async with running_worker(engine, settings, lock_ttl=0.6):
        await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "running")
        cancelled = await engine.cancel_task(task_id)
        assert cancelled.status == "cancelled"
        await asyncio.sleep(1.2)
    task = await engine.get_task(task_id)
    assert task.status == "cancelled" and task.result is None


async def test_cancel_dag_run_cancels_unfinished_steps(engine: Engine) -> None:
    from taskflow.core.models import DagEdge, DagStep, DagSubmission

    run_id = await engine.submit_dag(DagSubmission(
        steps=[DagStep(id="a", type="noop"), DagStep(id="b", type="noop")], edges=[DagEdge(**{"from": "a", "to": "b"})]
    ))
    run = await engine.cancel_dag_run(run_id)
    assert run.status == "cancelled" and run.counts == {"cancelled": 2} and run.finished_at is not None
    depth = await engine.queue.depth("default")
    assert depth["ready"] == 0
