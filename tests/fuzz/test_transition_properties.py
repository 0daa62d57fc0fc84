"""Property tests of task state changes against real PostgreSQL.

1. Random sequences of engine operations (start, complete, fail, hand back, cancel, expire the lease,
   retry from the DLQ), with current, stale and made-up fences: every status change observed is in
   the allowed-transition table, and a write with a fence other than the current one is never accepted.
2. Random status updates straight in SQL: PostgreSQL refuses exactly the illegal ones.

Hypothesis drives a synchronous function; it runs in a thread and sends each database call to the
test's event loop (where the engine's pool lives).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskflow.core.errors import Conflict
from taskflow.core.models import TaskSubmission
from taskflow.core.status import ALLOWED_TASK_TRANSITIONS, TaskStatus
from taskflow.engine import Engine

T = TypeVar("T")
EXAMPLES = int(os.environ.get("TASKFLOW_FUZZ_EXAMPLES", "300")) // 5  # raise for a longer (nightly) run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

OPERATIONS = ["start", "complete", "fail", "fail_permanent", "hand_back", "cancel", "expire_lease", "retry_dlq"]
FENCE_CHOICES = ["current", "stale", "made_up"]


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)


async def _status_and_fence(engine: Engine, task_id: UUID) -> tuple[str, int]:
    async with engine.store._pool.connection() as conn:
        cur = await conn.execute("SELECT status, fence FROM taskflow_tasks WHERE id = %s", (task_id,))
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


async def _expire_lease(engine: Engine, task_id: UUID) -> None:
    async with engine.store._pool.connection() as conn:
        await conn.execute(
            "UPDATE taskflow_tasks SET lease_expires_at = clock_timestamp() - interval '1 second' "
            "WHERE id = %s AND status = 'running'",
            (task_id,),
        )
    await engine.apply(await engine.store.expire_leases(limit=100, backoff_base=0, backoff_cap=0))


async def _apply(engine: Engine, task_id: UUID, op: str, fence: int) -> bool:
    """Run one operation; return True if it was a fenced write that the database accepted."""
    if op == "start":
        await engine.start([task_id], "fuzz-worker")
    elif op == "complete":
        return task_id in await engine.record([(task_id, fence, "null")], [])
    elif op in ("fail", "fail_permanent"):
        return task_id in await engine.record([], [(task_id, fence, "boom", op == "fail_permanent")])
    elif op == "hand_back":
        await engine.hand_back([(task_id, fence)])
    elif op == "cancel":
        try:
            await engine.cancel_task(task_id)
        except Conflict:
            pass
    elif op == "expire_lease":
        await _expire_lease(engine, task_id)
    elif op == "retry_dlq":
        try:
            await engine.retry_dead_letter(task_id)
        except Conflict:
            pass
    return False


async def test_random_operation_sequences_follow_the_transition_table(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    allowed = {(a.value, b.value) for a, targets in ALLOWED_TASK_TRANSITIONS.items() for b in targets}
    # Failed tasks are due again at once, so "start" can pick them up within the same sequence.
    engine.settings = engine.settings.model_copy(update={"backoff_base": 0.0, "backoff_cap": 0.0})

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(OPERATIONS), st.sampled_from(FENCE_CHOICES)), min_size=1, max_size=25),
           st.integers(min_value=0, max_value=3))
    def check(ops: list[tuple[str, str]], max_retries: int) -> None:
        task_id = on_loop(loop, engine.submit_task(TaskSubmission(type="noop", max_retries=max_retries)))
        fences_seen: list[int] = []
        completions = 0
        for op, which in ops:
            before, current = on_loop(loop, _status_and_fence(engine, task_id))
            if which == "current" or not fences_seen:
                fence = current
            elif which == "stale":
                fence = fences_seen[0] if fences_seen[0] != current else current - 1
            else:
                fence = current + 1_000_000
            accepted = on_loop(loop, _apply(engine, task_id, op, fence))
            after, new_fence = on_loop(loop, _status_and_fence(engine, task_id))
            if new_fence != current:
                fences_seen.append(current)
            assert before == after or (before, after) in allowed, f"{op}: {before} -> {after}"
            if accepted:
                assert fence == current and before == "running", f"{op} with fence {fence} (current {current})"
            if op == "complete" and accepted:
                completions += 1
        assert completions <= 1

    await asyncio.to_thread(check)


async def test_the_database_refuses_exactly_the_illegal_transitions(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    statuses = [s.value for s in TaskStatus]

    async def try_update(task_id: UUID, target: str) -> bool:
        try:
            async with engine.store._pool.connection() as conn:
                await conn.execute("UPDATE taskflow_tasks SET status = %s WHERE id = %s", (target, task_id))
            return True
        except psycopg.errors.CheckViolation as exc:
            assert "illegal task status transition" in str(exc)
            return False

    @FUZZ
    @given(st.lists(st.sampled_from(statuses), min_size=1, max_size=15))
    def check(targets: list[str]) -> None:
        task_id = on_loop(loop, engine.submit_task(TaskSubmission(type="noop")))
        for target in targets:
            before, _ = on_loop(loop, _status_and_fence(engine, task_id))
            legal = target == before or TaskStatus(target) in ALLOWED_TASK_TRANSITIONS[TaskStatus(before)]
            assert on_loop(loop, try_update(task_id, target)) == legal, f"{before} -> {target}"
            after, _ = on_loop(loop, _status_and_fence(engine, task_id))
            assert after == (target if legal else before)

    await asyncio.to_thread(check)
