"""Pydantic models at the edges: what clients send and what the API returns.

Field names follow the seed's JSON contract (`type`, `payload`, `priority`, `scheduled_at`, `max_retries`,
`steps`, `edges`, `from`, `to`, `task_id`, `dag_run_id`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from taskflow.core.names import QUEUE_NAME_PATTERN, STEP_ID_PATTERN, TASK_TYPE_PATTERN
from taskflow.core.status import DagRunStatus, TaskStatus

PRIORITY_MIN, PRIORITY_MAX = -1_000_000, 1_000_000
MAX_RETRIES_LIMIT = 100
MAX_SCHEDULE_AHEAD = timedelta(days=366)
EARLIEST_SCHEDULE = datetime(2000, 1, 1, tzinfo=UTC)
IDEMPOTENCY_KEY_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters (PostgreSQL text cannot hold NUL)
_GO_ZERO_TIME_YEAR = 1  # Go's zero time.Time marshals as 0001-01-01T00:00:00Z: treat it as "not set"


# pydantic's `pattern` *searches* the string, so every name pattern is anchored here: without the
# anchors "a b", "Default" or "a}:{b" (a Redis hash-tag break-out) would pass.
_TYPE = f"^{TASK_TYPE_PATTERN.pattern}$"
_QUEUE = f"^{QUEUE_NAME_PATTERN.pattern}$"
_STEP_ID = f"^{STEP_ID_PATTERN.pattern}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.year == _GO_ZERO_TIME_YEAR:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value < EARLIEST_SCHEDULE:
        raise ValueError("scheduled_at is before 2000-01-01; send a real time, or leave it out to run now")
    if value - datetime.now(UTC) > MAX_SCHEDULE_AHEAD:
        raise ValueError("scheduled_at is more than a year ahead; send a nearer time")
    return value


class TaskSubmission(_Request):
    """Body of `POST /api/v1/tasks`."""

    type: str = Field(pattern=_TYPE, description="Name of the registered handler.")
    payload: JsonValue = Field(default_factory=dict, description="Any JSON value, given to the handler.")
    priority: int = Field(0, ge=PRIORITY_MIN, le=PRIORITY_MAX, description="Higher runs first.")
    scheduled_at: datetime | None = Field(None, description="Do not start before this time (RFC 3339).")
    max_retries: int | None = Field(None, ge=0, le=MAX_RETRIES_LIMIT, description="Retries after the first attempt.")
    queue: str = Field("default", pattern=_QUEUE)
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="A second submission with the same key returns the first task.",
    )

    _scheduled = field_validator("scheduled_at")(_aware)


class DagStep(_Request):
    id: str = Field(pattern=_STEP_ID)
    type: str = Field(pattern=_TYPE)
    payload: JsonValue = Field(default_factory=dict)
    priority: int = Field(0, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    queue: str = Field("default", pattern=_QUEUE)
    max_retries: int | None = Field(None, ge=0, le=MAX_RETRIES_LIMIT)


class DagEdge(_Request):
    from_: str = Field(alias="from", serialization_alias="from", pattern=_STEP_ID)
    to: str = Field(pattern=_STEP_ID)


class DagSubmission(_Request):
    """Body of `POST /api/v1/dags`; also the `spec` of a `TaskDag` custom resource."""

    steps: list[DagStep]
    edges: list[DagEdge] = Field(default_factory=list)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200, pattern=IDEMPOTENCY_KEY_PATTERN)


class TaskAccepted(BaseModel):
    task_id: UUID


class DagAccepted(BaseModel):
    dag_run_id: UUID


class AttemptView(BaseModel):
    attempt: int
    worker_id: str | None
    fence: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None = Field(description="completed, failed, lease_expired, cancelled, handed_back, or null while running")
    error: str | None


class TaskView(BaseModel):
    id: UUID
    type: str
    queue: str
    payload: Any
    status: TaskStatus
    priority: int
    scheduled_at: datetime
    retry_count: int
    max_retries: int
    error_message: str | None
    result: Any = None
    dag_run_id: UUID | None = None
    step_id: str | None = None
    fence: int
    worker_id: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[AttemptView] = Field(default_factory=list)


class TaskPage(BaseModel):
    tasks: list[TaskView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null on the last page.")


class DagStepView(BaseModel):
    step_id: str
    task_id: UUID
    type: str
    queue: str
    status: TaskStatus
    attempts: int
    retry_count: int
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None


class DagRunView(BaseModel):
    id: UUID
    status: DagRunStatus
    total_steps: int
    counts: dict[str, int] = Field(description="Number of steps in each task status.")
    error_message: str | None
    idempotency_key: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[DagStepView]


class ErrorBody(BaseModel):
    error: str
    details: Any = None
