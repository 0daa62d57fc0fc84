"""The Redis queue's hot paths on a real Redis: the idle wait that claims in the same round trip,
and pipelines that call our Lua scripts after Redis forgot them (a restart)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from taskflow.core.models import DagEdge, DagStep, DagSubmission, TaskSubmission
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.queue.keys import QueueKeys, task_id_of
from taskflow.worker.registry import Registry
from taskflow.worker.runner import Worker
from tests.helpers import eventually, running_worker


async def test_wait_and_claim_claims_work_that_arrives_while_it_waits(engine: Engine) -> None:
    waiting = asyncio.create_task(engine.queue.wait_and_claim("default", 5.0, 10, 60_000))
    await asyncio.sleep(0.2)
    assert not waiting.done(), "it returned before any work arrived"
    task_id = await engine.submit_task(TaskSubmission(type="noop"))
    claim = await asyncio.wait_for(waiting, timeout=2.0)
    assert [task_id_of(m) for m in claim.members] == [task_id]
    leases = await engine.queue.client.zrange(QueueKeys.of("default").leases, 0, -1)
    assert leases == [str(task_id)]


async def test_wait_and_claim_times_out_empty_and_reports_the_next_delayed_task(engine: Engine) -> None:
    later = await engine.submit_task(TaskSubmission(type="noop", scheduled_at=datetime.now(UTC) + timedelta(hours=1)))
    started = time.monotonic()
    claim = await engine.queue.wait_and_claim("default", 0.2, 10, 60_000)
    assert time.monotonic() - started >= 0.15
    assert claim.members == []
    assert claim.next_delayed_ms is not None and claim.next_delayed_ms > claim.redis_now_ms
    assert (await engine.get_task(later)).status == "queued"


async def test_scripts_are_reloaded_after_redis_forgets_them(engine: Engine, settings: Settings) -> None:
    # A restarted Redis has no scripts: the first pipelined EVALSHA gets NOSCRIPT. Both pipelines
    # (the worker's idle claim and the completion's enqueue of a released child) must recover.
    run_id = await engine.submit_dag(DagSubmission(
        steps=[DagStep(id="a", type="noop"), DagStep(id="b", type="noop"), DagStep(id="c", type="noop")],
        edges=[DagEdge(**{"from": "a", "to": "b"}), DagEdge(**{"from": "b", "to": "c"})],
    ))
    await engine.queue.client.script_flush()
    claim = await engine.queue.wait_and_claim("default", 0.1, 10, 60_000)
    [a] = await engine.start([task_id_of(m) for m in claim.members], "test-worker")
    await engine.queue.client.script_flush()
    assert await engine.record([(a.id, a.fence, "null")], []) == {a.id}
    assert await engine.queue.depth("default") == {"ready": 1, "delayed": 0, "leased": 0}
    async with running_worker(engine, settings):
        await eventually(lambda: engine.get_dag_run(run_id), lambda r: r.status == "completed")


async def test_an_idle_worker_stops_promptly_and_leaves_nothing_leased(engine: Engine, settings: Settings) -> None:
    stop = asyncio.Event()
    worker = Worker(engine, settings.model_copy(update={"poll_interval": 0.5}), Registry())
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)  # it is blocked in its idle wait
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(running, timeout=10)
    assert time.monotonic() - started < 3.0
    depth = await engine.queue.depth("default")
    assert depth["leased"] == 0
