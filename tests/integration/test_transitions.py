"""The legal status transitions: the same table in Python and in PostgreSQL, and enforced there."""

from __future__ import annotations

import psycopg
import pytest

from taskflow.core.models import TaskSubmission
from taskflow.core.status import ALLOWED_TASK_TRANSITIONS
from taskflow.engine import Engine


async def test_transition_table_matches_database(engine: Engine) -> None:
    async with engine.store._pool.connection() as conn:
        rows = await (await conn.execute("SELECT from_status, to_status FROM taskflow_task_transitions")).fetchall()
    db = {(a, b) for a, b in rows}
    py = {(a.value, b.value) for a, targets in ALLOWED_TASK_TRANSITIONS.items() for b in targets}
    assert db == py


async def test_illegal_transition_is_refused_by_the_database(engine: Engine) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="noop"))
    async with engine.store._pool.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="illegal task status transition queued -> completed"):
            await conn.execute("UPDATE taskflow_tasks SET status = 'completed' WHERE id = %s", (task_id,))
    assert (await engine.get_task(task_id)).status == "queued"
