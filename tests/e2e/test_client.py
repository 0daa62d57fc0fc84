"""The Python client (sync and async) against a real API process and a real worker process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskflow.client import AsyncClient, Client
from taskflow.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from taskflow.localservers import free_port


def test_sync_client_enqueue_and_wait(api_url: str, api_token: str) -> None:
    with Client(api_url, token=api_token) as tf:
        assert tf.health() == {"status": "ok"}
        task_id = tf.enqueue_task("echo", {"n": 1}, priority=5, max_retries=1)
        task = tf.wait_task(task_id, timeout=30)
        assert task.status == "completed" and task.result == {"n": 1} and task.priority == 5
        assert [attempt.outcome for attempt in task.attempts] == ["completed"]


async def test_async_client_batch_dag_pagination_and_cancel(api_url: str, api_token: str) -> None:
    async with AsyncClient(api_url, token=api_token) as tf:
        ids = await tf.enqueue_tasks([{"type": "noop"} for _ in range(5)])
        assert len(set(ids)) == 5
        for task_id in ids:
            assert (await tf.wait_task(task_id, timeout=30)).status == "completed"

        run_id = await tf.submit_dag({
            "steps": [{"id": "a", "type": "echo", "payload": 1}, {"id": "b", "type": "echo", "payload": 2},
                      {"id": "c", "type": "noop"}],
            "edges": [{"from": "a", "to": "c"}, {"from": "b", "to": "c"}],
        })
        run = await tf.wait_dag(run_id, timeout=30)
        assert run.status == "completed" and {step.step_id for step in run.steps} == {"a", "b", "c"}

        seen: list[str] = []
        page = await tf.list_tasks(dag_run_id=str(run_id), limit=2)
        while True:
            seen += [str(task.id) for task in page.tasks]
            if page.next_cursor is None:
                break
            page = await tf.list_tasks(dag_run_id=str(run_id), limit=2, cursor=page.next_cursor)
        assert sorted(seen) == sorted(str(step.task_id) for step in run.steps)

        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        waiting = await tf.submit_dag({"steps": [{"id": "x", "type": "sleep", "payload": {"seconds": 30}},
                                                 {"id": "y", "type": "noop"}],
                                       "edges": [{"from": "x", "to": "y"}]})
        delayed = await tf.enqueue_task("noop", scheduled_at=later)
        assert (await tf.cancel_task(delayed)).status == "cancelled"
        cancelled = await tf.cancel_dag(waiting)
        assert cancelled.status == "cancelled"
        assert {step.step_id: step.status for step in cancelled.steps}["y"] == "cancelled"
        with pytest.raises(Conflict, match="already finished"):
            await tf.cancel_dag(waiting)


async def test_client_errors_are_typed_and_readable(api_url: str, api_token: str) -> None:
    async with AsyncClient(api_url, token=api_token) as tf:
        with pytest.raises(NotFound, match="task not found"):
            await tf.get_task("0190b0a4-0000-7000-8000-000000000000")
        with pytest.raises(InvalidInput, match="depends on itself"):
            await tf.submit_dag({"steps": [{"id": "a", "type": "noop"}], "edges": [{"from": "a", "to": "a"}]})
        done = await tf.enqueue_task("noop")
        await tf.wait_task(done, timeout=30)
        with pytest.raises(Conflict):
            await tf.retry_dlq(done)
        with pytest.raises(TimeoutError, match="still queued"):
            await tf.wait_task(await tf.enqueue_task("noop", scheduled_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()),
                               timeout=0.2)

    async with AsyncClient(f"http://127.0.0.1:{free_port()}") as nobody:
        with pytest.raises(Unavailable, match="cannot reach the Taskflow API"):
            await nobody.health()
