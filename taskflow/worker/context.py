"""What a handler gets besides its payload."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Identity of one attempt of one task.

    `fence` grows with every start of the task; write it next to your side effects (or use
    `idempotency_key`, unique per attempt) so a retried or duplicated attempt can be recognised.
    A paused worker whose lease ran out keeps running its handler, but its result is refused:
    see README, "What we promise".
    """

    task_id: UUID
    type: str
    queue: str
    attempt: int
    fence: int
    retry_count: int
    max_retries: int
    dag_run_id: UUID | None
    step_id: str | None
    worker_id: str
    log: logging.Logger
    _heartbeat: Callable[[], Awaitable[None]] = field(repr=False)

    @property
    def idempotency_key(self) -> str:
        """`<task id>:<attempt>`: the same for every write of this attempt, different for the next."""
        return f"{self.task_id}:{self.attempt}"

    async def heartbeat(self) -> None:
        """Renew this task's lease now; raises `LeaseLost` if the worker no longer holds it."""
        await self._heartbeat()
