"""The engine and an in-process worker against real PostgreSQL and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagEdge, DagStep, DagSubmission, TaskSubmission
from taskflow.engine import Engine
from taskflow.core.settings import Settings
from tests.helpers import eventually, running_worker


def diamond(fail_step: str | None = None, max_retries: int = 0) -> DagSubmission:
    steps = []
    for sid in "abcd":
        if sid == fail_step:
            steps.append(DagStep(id=sid, type="fail", payload={"message": "boom"}, max_retries=max_retries))
        else:
            steps.append(DagStep(id=sid, type="echo", payload={"step": sid}))
    edges = [DagEdge(**{"from": f, "to": t}) for f, t in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]]
    return DagSubmission(steps=steps, edges=edges)


async def test_single_task_completes_with_result(engine: Engine, settings: Settings) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="echo", payload={"hello": "world"}))
    async with running_worker(engine, settings):
        task = await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "completed")
    assert task.result == {"hello": "world"}
    assert task.retry_count == 0
    assert [a.outcome for a in task.attempts] == ["completed"]
    assert task.attempts[0].fence == task.fence > 0


async def test_diamond_runs_d_once_after_b_and_c(engine: Engine, settings: Settings) -> None:
    run_id = await engine.submit_dag(diamond())
    async with running_worker(engine, settings):
        run = await eventually(lambda: engine.get_dag_run(run_id), lambda r: r.status == "completed")
    steps = {s.step_id: s for s in run.steps}
    assert run.counts == {"completed": 4}
    assert steps["d"].attempts == 1
    assert steps["d"].started_at >= max(steps["b"].finished_at, steps["c"].finished_at)
    assert steps["b"].started_at >= steps["a"].finished_at
    assert run.finished_at is not None


async def test_failing_step_dead_letters_fails_run_and_cancels_downstream(engine: Engine, settings: Settings) -> None:
    run_id = await engine.submit_dag(diamond(fail_step="b", max_retries=2))
    async with running_worker(engine, settings):
        run = await eventually(
            lambda: engine.get_dag_run(run_id), lambda r: r.finished_at is not None, what="run to finish"
        )
    steps = {s.step_id: s for s in run.steps}
    assert run.status == "failed"
    assert "b" in (run.error_message or "")
    assert steps["b"].status == "dlq" and steps["b"].attempts == 3
    assert steps["c"].status == "completed"
    assert steps["d"].status == "cancelled"
    task = await engine.get_task(steps["b"].task_id)
    assert [a.outcome for a in task.attempts] == ["failed", "failed", "dead_lettered"]
    assert task.error_message == "HandlerFailure: boom"


async def test_priority_order(engine: Engine, settings: Settings) -> None:
    ids = {}
    for prio in [0, 5, -3, 10, 1]:
        ids[prio] = await engine.submit_task(TaskSubmission(type="noop", priority=prio))
    async with running_worker(engine, settings, concurrency=1, claim_batch=1):
        await eventually(
            lambda: engine.list_tasks(status="completed"), lambda p: len(p.tasks) == 5, what="all five to complete"
        )
    started = {prio: (await engine.get_task(tid)).started_at for prio, tid in ids.items()}
    assert sorted(started, key=lambda p: started[p]) == [10, 5, 1, 0, -3]


async def test_delayed_task_does_not_start_early(engine: Engine, settings: Settings) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1.0)
    task_id = await engine.submit_task(TaskSubmission(type="noop", scheduled_at=at))
    async with running_worker(engine, settings):
        task = await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "completed")
    assert task.started_at is not None and task.started_at >= at
    assert (task.started_at - at).total_seconds() < 1.0


async def test_retry_then_success(engine: Engine, settings: Settings) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="fail", payload={"until_attempt": 3}, max_retries=3))
    async with running_worker(engine, settings):
        task = await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "completed")
    assert task.retry_count == 2
    assert [a.outcome for a in task.attempts] == ["failed", "failed", "completed"]
    assert task.result == {"succeeded_on_attempt": 3}


async def test_invalid_dag_writes_nothing(engine: Engine) -> None:
    bad = DagSubmission(
        steps=[DagStep(id="a", type="noop"), DagStep(id="b", type="noop")],
        edges=[DagEdge(**{"from": "a", "to": "b"}), DagEdge(**{"from": "b", "to": "a"})],
    )
    with pytest.raises(InvalidInput, match="cycle"):
        await engine.submit_dag(bad)
    page = await engine.list_tasks()
    assert page.tasks == []
