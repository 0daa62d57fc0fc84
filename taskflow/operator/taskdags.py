"""kopf handlers of TaskDag objects: submit, follow, reject spec edits, cancel on delete, resync.

Every handler is safe to run twice (a re-delivered event, an operator restart, two replicas during
a leader hand-over): submission uses the idempotency key "taskdag:<uid>", so the engine returns
the existing run instead of creating a second one; status is written with merge patches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import kopf

from taskflow.core.errors import Conflict, InvalidInput, NotFound, TaskflowError
from taskflow.engine import Engine
from taskflow.operator import builders
from taskflow.operator.builders import GROUP, PLURAL, VERSION, KubeEvent
from taskflow.operator.config import OperatorSettings
from taskflow.operator.kube import KubeApi, KubeError, taskdag_ref
from taskflow.operator.status_follow import StatusFollower

log = logging.getLogger(__name__)

_RETRY_DELAY_S = 5.0


class TaskDagHandlers:
    def __init__(self, engine: Engine, kube: KubeApi, follower: StatusFollower, settings: OperatorSettings) -> None:
        self.engine = engine
        self.kube = kube
        self.follower = follower
        self.settings = settings

    def register(self, registry: kopf.OperatorRegistry) -> None:
        on = dict(registry=registry)
        kopf.on.create(GROUP, VERSION, PLURAL, id="submit", **on)(self.on_create)
        kopf.on.resume(GROUP, VERSION, PLURAL, id="resume", **on)(self.on_resume)
        kopf.on.update(GROUP, VERSION, PLURAL, id="spec-changed", field="spec", **on)(self.on_spec_change)
        kopf.on.delete(GROUP, VERSION, PLURAL, id="cancel-run", **on)(self.on_delete)
        kopf.timer(
            GROUP, VERSION, PLURAL, id="resync", interval=self.settings.resync_interval,
            initial_delay=self.settings.resync_interval, when=_unfinished, **on,
        )(self.on_timer)  # fmt: skip

    # --- handlers -----------------------------------------------------------------------------------

    async def on_create(self, body: kopf.Body, **_: Any) -> None:
        await self._submit(body)

    async def on_resume(self, body: kopf.Body, status: kopf.Status, **_: Any) -> None:
        """Operator (re)start: follow runs already submitted; submit those a crash left unsubmitted."""
        run_id = status.get("dagRunId")
        if run_id:
            if status.get("phase") not in builders.TERMINAL_PHASES:
                self.follower.follow(UUID(run_id), body.metadata.namespace or "", body.metadata.name or "",
                                     body.metadata.uid or "", status)  # fmt: skip
        elif status.get("phase") != "Invalid":
            await self._submit(body)

    async def on_spec_change(self, body: kopf.Body, status: kopf.Status, **_: Any) -> None:
        if not status.get("dagRunId"):
            # Never submitted (Invalid): nothing ran, so the corrected spec is validated and submitted.
            await self._submit(body)
            return
        meta = body.metadata
        generation, submitted = meta.get("generation"), status.get("submittedGeneration")
        if generation is not None and submitted is not None and generation <= submitted:
            return  # not an edit of the spec: e.g. kopf's stored diff base changed format on upgrade
        patch = builders.spec_rejected_status(
            generation=meta.get("generation"),
            submitted_generation=status.get("submittedGeneration"),
            conditions=status.get("conditions") or [],
            now=datetime.now(UTC),
        )
        await self.kube.patch_taskdag_status(meta.namespace or "", meta.name or "", patch)
        await self.kube.post_event(
            _ref(body),
            KubeEvent("Warning", "SpecImmutable", builders.spec_immutable_message(status.get("submittedGeneration"))),
        )

    async def on_delete(self, body: kopf.Body, status: kopf.Status, **_: Any) -> None:
        """The finalizer: cancel the run in the engine before the object goes away."""
        run_id = status.get("dagRunId")
        if not run_id:
            return
        self.follower.forget(UUID(run_id))
        try:
            await self.engine.cancel_dag_run(UUID(run_id))
        except (NotFound, Conflict):
            return  # gone, or already finished: nothing to cancel
        except TaskflowError as exc:
            raise kopf.TemporaryError(f"cannot cancel DAG run {run_id} yet: {exc.message}", delay=_RETRY_DELAY_S)
        log.info("cancelled DAG run %s of deleted TaskDag %s/%s", run_id, body.metadata.namespace, body.metadata.name)

    async def on_timer(self, body: kopf.Body, status: kopf.Status, **_: Any) -> None:
        """Periodic repair: re-read the run even if every notification was missed."""
        run_id = status.get("dagRunId")
        if not run_id:
            if status.get("phase") != "Invalid":
                await self._submit(body)
            return
        run = UUID(run_id)
        if not self.follower.following(run):
            self.follower.follow(run, body.metadata.namespace or "", body.metadata.name or "",
                                 body.metadata.uid or "", status)  # fmt: skip
        self.follower.mark_dirty(run)

    # --- submission ---------------------------------------------------------------------------------

    async def _submit(self, body: kopf.Body) -> None:
        meta = body.metadata
        namespace, name, uid = meta.namespace or "", meta.name or "", meta.uid or ""
        generation = meta.get("generation")
        status: Mapping[str, Any] = body.status
        spec = body.spec
        now = datetime.now(UTC)
        total = len(spec.get("steps") or [])
        try:
            submission = builders.submission_from_spec(
                spec, uid, max_steps=self.engine.settings.max_dag_steps, max_edges=self.engine.settings.max_dag_edges
            )
            run_id = await self.engine.submit_dag(submission)
        except InvalidInput as exc:
            # Nothing was written to PostgreSQL (validation happens before any write).
            await self._patch(namespace, name, builders.invalid_status(
                exc.message, total_steps=total, generation=generation,
                conditions=status.get("conditions") or [], now=now,
            ))  # fmt: skip
            await self.kube.post_event(_ref(body), KubeEvent("Warning", "InvalidDag", exc.message))
            log.info("TaskDag %s/%s is invalid: %s", namespace, name, exc.message)
            return
        except TaskflowError as exc:
            raise kopf.TemporaryError(f"cannot submit the DAG yet: {exc.message}", delay=_RETRY_DELAY_S) from exc
        # Crash here: the run exists but the CR does not say so. The handler runs again (kopf has
        # not marked it done) and the same idempotency key returns the same run id.
        already = status.get("dagRunId") == str(run_id)
        if not already:
            await self._patch(namespace, name, builders.submitted_status(
                str(run_id), total_steps=total, generation=generation,
                conditions=status.get("conditions") or [], now=now,
            ))  # fmt: skip
            await self.kube.post_event(
                _ref(body), KubeEvent("Normal", "Submitted", f"submitted as DAG run {run_id} ({total} steps)")
            )
        self.follower.follow(run_id, namespace, name, uid, {} if not already else status)
        if not already:
            self.follower.seed_new_run(run_id, [s.id for s in submission.steps])

    async def _patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            await self.kube.patch_taskdag_status(namespace, name, status)
        except KubeError as exc:
            raise kopf.TemporaryError(f"cannot write status: {exc}", delay=_RETRY_DELAY_S) from exc


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in builders.TERMINAL_PHASES


def _ref(body: kopf.Body) -> Any:
    meta = body.metadata
    return taskdag_ref(meta.namespace or "", meta.name or "", meta.uid or "")
