"""Bulk submission bodies (beyond the seed): many tasks in one request and one transaction."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from taskflow.core.models import TaskSubmission

MAX_BATCH = 10_000


class TaskBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: list[TaskSubmission] = Field(min_length=1, max_length=MAX_BATCH)


class TaskBatchAccepted(BaseModel):
    task_ids: list[UUID]
