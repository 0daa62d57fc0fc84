"""Turn store rows into the API's pydantic views."""

from __future__ import annotations

from collections import Counter
from typing import Any

from taskflow.core.models import AttemptView, DagRunView, DagStepView, TaskView


def task_view(row: dict[str, Any]) -> TaskView:
    return TaskView(
        id=row["id"],
        type=row["type"],
        queue=row["queue"],
        payload=row["payload"],
        status=row["status"],
        priority=row["priority"],
        scheduled_at=row["scheduled_at"],
        retry_count=row["retry_count"],
        max_retries=row["max_retries"],
        error_message=row["error_message"],
        result=row["result"],
        dag_run_id=row["dag_run_id"],
        step_id=row["step_id"],
        fence=row["fence"],
        worker_id=row["worker_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=[
            AttemptView(
                attempt=a["attempt"],
                worker_id=a["worker_id"],
                fence=a["fence"],
                started_at=a["started_at"],
                finished_at=a["finished_at"],
                outcome=a["outcome"],
                error=a["error"],
            )
            for a in row.get("attempt_rows", [])
        ],
    )


def dag_run_view(row: dict[str, Any]) -> DagRunView:
    steps = [DagStepView(**s) for s in row["steps"]]
    return DagRunView(
        id=row["id"],
        status=row["status"],
        total_steps=row["total_steps"],
        counts=dict(Counter(s.status.value for s in steps)),
        error_message=row["error_message"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        steps=steps,
    )
