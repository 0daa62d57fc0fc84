"""Mirror DAG runs into TaskDag `.status`, debounced, with Events for retries, dead-letters and completion.

Design:
- Notifications on the engine's Redis channel only mark a followed run *dirty*; they carry no
  state. The state is always read from PostgreSQL (`Engine.get_dag_run`), so a lost, duplicated or
  reordered notification can delay the status but never make it wrong.
- A flush loop patches each dirty run at most once per `status_patch_interval` (1 s, plus 1 s per
  5,000 steps): a 10,000-step DAG whose steps finish over a minute gets about 20 patches, not 10,000.
- Patches carry the resourceVersion read just before, so a concurrent handler patch (e.g. the
  SpecApplied condition) is never overwritten: the patch fails with 409 and is retried next round.
- After an operator restart, runs are followed again from kopf's resume handler and seeded with
  what the CR shows (`seen_from_status`), so Events already posted are not posted again.
- A periodic resync (the TaskDag timer) marks every unfinished run dirty, which repairs status after
  notifications were missed (Redis down, operator restarted mid-run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from taskflow.core.errors import NotFound, TaskflowError, Unavailable
from taskflow.engine import Engine
from taskflow.operator import builders
from taskflow.operator.config import OperatorSettings
from taskflow.operator.kube import KubeApi, KubeError, taskdag_ref

log = logging.getLogger(__name__)

_FLUSH_TICK_S = 0.2
_RESUBSCRIBE_S = 2.0
_CONCURRENT_REFRESHES = 4


@dataclass
class Followed:
    namespace: str
    name: str
    uid: str
    seen: dict[str, builders.StepSeen] | None
    phase: str | None
    total_steps: int = 0
    dirty: bool = True
    last_patch: float = field(default=float("-inf"))
    busy: bool = False


class StatusFollower:
    def __init__(self, engine: Engine, kube: KubeApi, settings: OperatorSettings) -> None:
        self.engine = engine
        self.kube = kube
        self.settings = settings
        self._runs: dict[UUID, Followed] = {}
        self._wake = asyncio.Event()
        self.patches = 0  # status patches sent (for tests and logs)
        self.refreshes = 0

    # --- what to follow -----------------------------------------------------------------------------

    def follow(self, run_id: UUID, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> None:
        """Follow a run; `status` is the CR's current status (seeds what was already reported)."""
        existing = self._runs.get(run_id)
        if existing is not None and existing.uid == uid:
            self.mark_dirty(run_id)
            return
        seen = builders.seen_from_status(status) if status.get("steps") else None
        self._runs[run_id] = Followed(namespace, name, uid, seen, status.get("phase"))
        self._wake.set()

    def following(self, run_id: UUID) -> bool:
        return run_id in self._runs

    def mark_dirty(self, run_id: UUID) -> None:
        followed = self._runs.get(run_id)
        if followed is not None:
            followed.dirty = True
            self._wake.set()

    def forget(self, run_id: UUID) -> None:
        self._runs.pop(run_id, None)

    def seed_new_run(self, run_id: UUID, step_ids: list[str]) -> None:
        """A run this operator just submitted: every step is known to be Pending, so all Events count."""
        followed = self._runs.get(run_id)
        if followed is not None and followed.seen is None:
            followed.seen = {s: builders.StepSeen("Pending", 0) for s in step_ids}

    # --- loops --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen and flush until cancelled."""
        listener = asyncio.create_task(self._listen(), name="status-listen")
        flusher = asyncio.create_task(self._flush_loop(), name="status-flush")
        try:
            await asyncio.gather(listener, flusher)
        finally:
            for task in (listener, flusher):
                task.cancel()
            await asyncio.gather(listener, flusher, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.engine.queue.events():
                    self._on_event(event)
            except Unavailable as exc:
                log.warning("status notifications interrupted (%s); resubscribing", exc)
            except Exception:  # e.g. a message that is not JSON: never let it stop the operator
                log.exception("status notifications failed; resubscribing")
            # Anything published while not subscribed is lost: read every followed run again.
            for run_id in list(self._runs):
                self.mark_dirty(run_id)
            await asyncio.sleep(_RESUBSCRIBE_S)

    def _on_event(self, event: Any) -> None:
        if not isinstance(event, Mapping):
            return
        ids: set[str] = set()
        for task in event.get("tasks") or []:
            if isinstance(task, Mapping) and isinstance(task.get("dag_run_id"), str):
                ids.add(task["dag_run_id"])
        for run in event.get("dag_runs") or []:
            if isinstance(run, Mapping) and isinstance(run.get("id"), str):
                ids.add(run["id"])
        for raw in ids:
            try:
                self.mark_dirty(UUID(raw))
            except ValueError:
                continue

    async def _flush_loop(self) -> None:
        limit = asyncio.Semaphore(_CONCURRENT_REFRESHES)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                now = time.monotonic()
                for run_id, followed in list(self._runs.items()):
                    interval = builders.status_patch_interval(followed.total_steps, self.settings.status_min_interval)
                    if followed.dirty and not followed.busy and now - followed.last_patch >= interval:
                        followed.busy = True
                        followed.dirty = False
                        task = asyncio.create_task(self._guarded_refresh(run_id, followed, limit))
                        running.add(task)
                        task.add_done_callback(running.discard)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=_FLUSH_TICK_S)
                except TimeoutError:
                    pass
                # Debounce: let a burst of notifications accumulate before the next pass.
                await asyncio.sleep(_FLUSH_TICK_S)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _guarded_refresh(self, run_id: UUID, followed: Followed, limit: asyncio.Semaphore) -> None:
        async with limit:
            try:
                await self.refresh(run_id)
            except (TaskflowError, KubeError) as exc:
                log.warning("status of %s/%s not updated (%s); retrying", followed.namespace, followed.name, exc)
                followed.dirty = True
            except Exception:
                log.exception("status of %s/%s not updated; retrying", followed.namespace, followed.name)
                followed.dirty = True
            finally:
                followed.busy = False
                followed.last_patch = time.monotonic()

    async def refresh(self, run_id: UUID) -> None:
        """Read the run from PostgreSQL and the CR from Kubernetes; patch status and post Events if changed."""
        followed = self._runs.get(run_id)
        if followed is None:
            return
        self.refreshes += 1
        try:
            run = await self.engine.get_dag_run(run_id)
        except NotFound:
            log.warning("run %s of %s/%s is gone from PostgreSQL", run_id, followed.namespace, followed.name)
            self.forget(run_id)
            return
        followed.total_steps = run.total_steps
        body = await self.kube.get_taskdag(followed.namespace, followed.name)
        if body is None or body["metadata"]["uid"] != followed.uid:
            self.forget(run_id)  # deleted (or replaced by a new object of the same name)
            return
        current = body.get("status") or {}
        if current.get("dagRunId") != str(run_id):
            followed.dirty = True  # the create handler has not recorded the run yet: look again next round
            return
        wanted = builders.status_from_run(
            run,
            conditions=current.get("conditions") or [],
            generation=body["metadata"].get("generation"),
            now=datetime.now(UTC),
            max_listed_steps=self.settings.max_listed_steps,
        )
        previous_phase = followed.phase if followed.phase is not None else current.get("phase")
        events = builders.events_for_change(
            followed.seen, run, previous_phase, max_step_events=self.settings.max_step_events
        )
        if builders.status_changed(current, wanted):
            await self.kube.patch_taskdag_status(
                followed.namespace, followed.name, wanted, resource_version=body["metadata"]["resourceVersion"]
            )
            self.patches += 1
        # Events only after the status that explains them is stored: a crash in between repeats
        # no Event (the next operator seeds `seen` from this status) but may lose one, never both.
        ref = taskdag_ref(followed.namespace, followed.name, followed.uid)
        for event in events:
            await self.kube.post_event(ref, event)
        followed.seen = builders.seen_from_run(run)
        followed.phase = wanted["phase"]
        if wanted["phase"] in builders.TERMINAL_PHASES:
            self.forget(run_id)
