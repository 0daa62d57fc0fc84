"""Task and DAG run statuses, and which transitions between them are legal.

The same table is enforced inside PostgreSQL by a trigger (see the schema migration);
the unit tests check that the two agree.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"  # a DAG step waiting for its parents
    QUEUED = "queued"  # ready (or delayed until scheduled_at), waiting for a worker
    RUNNING = "running"  # claimed by a worker that holds the current fence
    COMPLETED = "completed"
    FAILED = "failed"  # the last attempt failed; a retry is scheduled at scheduled_at
    DLQ = "dlq"  # out of retries (or a permanent error); waits for a manual retry
    CANCELLED = "cancelled"


class DagRunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.DLQ, TaskStatus.CANCELLED})
CLAIMABLE_TASK_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.FAILED})
TERMINAL_DAG_STATUSES = frozenset({DagRunStatus.COMPLETED, DagRunStatus.FAILED, DagRunStatus.CANCELLED})

ALLOWED_TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.QUEUED, TaskStatus.CANCELLED}),
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.DLQ,
            TaskStatus.CANCELLED,
            TaskStatus.QUEUED,  # handed back by a worker that shut down before starting it
        }
    ),
    TaskStatus.FAILED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.DLQ: frozenset({TaskStatus.QUEUED}),  # manual retry
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}
