"""The one place that knows Redis key names.

Every key of one queue carries the hash tag `{taskflow:<queue>}`, so each Lua script touches
a single Redis Cluster slot (ElastiCache cluster mode). Queue names are validated before they
get here (`taskflow.core.names.QUEUE_NAME_PATTERN`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

EVENTS_CHANNEL = "taskflow:events"
"""Pub/sub channel of task and DAG run status changes: a notification, never the only record."""
EPOCH_KEY = "taskflow:epoch"
"""Set once per Redis dataset; when it disappears Redis lost its data and the reconciler resyncs."""
QUEUES_KEY = "taskflow:queues"
"""Set of queue names that have ever held a task."""
WORKERS_KEY = "taskflow:workers"
"""Sorted set: worker id -> last heartbeat (ms)."""


def worker_key(worker_id: str) -> str:
    """Hash of one worker's state (queues, busy slots), expiring when heartbeats stop."""
    return f"taskflow:worker:{worker_id}"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    ready: str
    delayed: str
    leases: str
    wake: str

    @classmethod
    def of(cls, queue: str) -> QueueKeys:
        tag = f"{{taskflow:{queue}}}"
        return cls(ready=f"{tag}:ready", delayed=f"{tag}:delayed", leases=f"{tag}:leases", wake=f"{tag}:wake")

    def all(self) -> list[str]:
        return [self.ready, self.delayed, self.leases, self.wake]


def member(task_id: UUID, scheduled_at: datetime, priority: int) -> str:
    """The sorted-set member of a task: sorts by time, then id, and carries the priority."""
    scheduled_ms = int(scheduled_at.timestamp() * 1000)
    return f"{scheduled_ms:013d}:{task_id}:{priority}"


def task_id_of(member_: str) -> UUID:
    return UUID(member_.split(":", 2)[1])
