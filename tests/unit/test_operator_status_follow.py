"""The status follower with in-memory fakes of the engine and the Kubernetes API: debouncing and Events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from taskflow.core.models import DagRunView, DagStepView
from taskflow.core.status import DagRunStatus, TaskStatus
from taskflow.operator.builders import KubeEvent
from taskflow.operator.config import OperatorSettings
from taskflow.operator.kube import ObjectRef
from taskflow.operator.status_follow import StatusFollower
from tests.helpers import eventually

RUN = uuid.uuid4()
STEPS = 2000


class FakeQueue:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.inbox.get()


class FakeEngine:
    def __init__(self) -> None:
        self.queue = FakeQueue()
        self.done = 0
        self.reads = 0

    async def get_dag_run(self, run_id: uuid.UUID) -> DagRunView:
        self.reads += 1
        now = datetime.now(UTC)
        steps = [
            DagStepView(step_id=f"s{i}", task_id=uuid.UUID(int=i), type="noop", queue="default",
                        status=TaskStatus.COMPLETED if i < self.done else TaskStatus.QUEUED, attempts=int(i < self.done),
                        retry_count=0, error_message=None, started_at=None, finished_at=None)  # fmt: skip
            for i in range(STEPS)
        ]
        status = DagRunStatus.COMPLETED if self.done == STEPS else DagRunStatus.RUNNING
        return DagRunView(id=run_id, status=status, total_steps=STEPS, counts={"completed": self.done,
                          "queued": STEPS - self.done}, error_message=None, created_at=now, started_at=now,
                          finished_at=now if status == DagRunStatus.COMPLETED else None, steps=steps)  # fmt: skip


class FakeKube:
    def __init__(self) -> None:
        self.body: dict[str, Any] = {
            "metadata": {"name": "big", "namespace": "ns", "uid": "u-1", "generation": 1, "resourceVersion": "1"},
            "status": {"dagRunId": str(RUN), "phase": "Pending"},
        }
        self.patches: list[dict[str, Any]] = []
        self.events: list[KubeEvent] = []

    async def get_taskdag(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body

    async def patch_taskdag_status(self, namespace: str, name: str, status: dict[str, Any], *,
                                   resource_version: str | None = None) -> None:  # fmt: skip
        assert resource_version == self.body["metadata"]["resourceVersion"]
        self.patches.append(status)
        self.body = {**self.body, "status": {**self.body["status"], **status}}
        self.body["metadata"] = {**self.body["metadata"], "resourceVersion": str(len(self.patches) + 1)}

    async def post_event(self, ref: ObjectRef, event: KubeEvent) -> None:
        self.events.append(event)


async def test_a_burst_of_notifications_gives_few_patches_and_one_completion_event() -> None:
    engine, kube = FakeEngine(), FakeKube()
    settings = OperatorSettings(status_min_interval=0.5)
    follower = StatusFollower(engine, kube, settings)  # type: ignore[arg-type]
    follower.follow(RUN, "ns", "big", "u-1", kube.body["status"])
    follower.seed_new_run(RUN, [f"s{i}" for i in range(STEPS)])
    runner = asyncio.create_task(follower.run())
    try:
        # One notification per finished step, as the engine publishes them (2,000 of them).
        for i in range(STEPS):
            engine.done = i + 1
            await engine.queue.inbox.put({"tasks": [{"id": str(uuid.UUID(int=i)), "status": "completed",
                                                     "dag_run_id": str(RUN)}], "dag_runs": []})  # fmt: skip
            if i % 200 == 0:
                await asyncio.sleep(0.05)
        await engine.queue.inbox.put({"tasks": [], "dag_runs": [{"id": str(RUN), "status": "completed"}]})
        await eventually(lambda: _phase(kube), lambda p: p == "Succeeded", what="Succeeded")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert kube.body["status"]["progress"] == f"{STEPS}/{STEPS}"
    # Debounced: a handful of reads and patches, not one per notification.
    assert 1 <= len(kube.patches) <= 10 and engine.reads <= 10, (len(kube.patches), engine.reads)
    assert [e.reason for e in kube.events] == ["RunSucceeded"]
    assert not follower.following(RUN)  # finished runs are no longer followed


async def test_unrelated_runs_and_bad_ids_are_ignored() -> None:
    engine, kube = FakeEngine(), FakeKube()
    follower = StatusFollower(engine, kube, OperatorSettings())  # type: ignore[arg-type]
    follower._on_event({"tasks": [{"dag_run_id": "not-a-uuid"}, {"dag_run_id": str(uuid.uuid4())}], "dag_runs": []})
    for garbage in ([1, 2], "x", {"tasks": [None, 3], "dag_runs": [{"id": 7}]}, {"tasks": "nope"}):
        follower._on_event(garbage)  # malformed notifications are ignored, never raised
    assert not follower.following(RUN)


async def _phase(kube: FakeKube) -> str | None:
    return kube.body["status"].get("phase")
