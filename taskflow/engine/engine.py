"""Submissions, operations and worker-side state changes.

Every change is committed in PostgreSQL first; only then is it mirrored into Redis and
announced on pub/sub. If the process dies between the two, or Redis is down, the reconciler
(`taskflow.engine.reconciler`) finds the task claimable in PostgreSQL and enqueues it again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from taskflow.core.dag import validate_dag
from taskflow.core.errors import Conflict, InvalidInput, PayloadTooLarge, Unavailable
from taskflow.core.ids import uuid7
from taskflow.core.models import DagRunView, DagSubmission, TaskPage, TaskSubmission, TaskView
from taskflow.core.settings import Settings
from taskflow.core.status import TaskStatus
from taskflow.engine.views import dag_run_view, task_view
from taskflow.queue import RedisQueue, connect_redis
from taskflow.queue.keys import member
from taskflow.store import Change, StartedTask, Store
from taskflow.store.store import NewStep, NewTask

log = logging.getLogger(__name__)


class Engine:
    """One per process; shares a PostgreSQL pool and a Redis client between its callers."""

    def __init__(self, store: Store, queue: RedisQueue, settings: Settings) -> None:
        self.store = store
        self.queue = queue
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings, *, pool_size: int | None = None) -> Engine:
        store = await Store.open(settings.postgres_dsn.get_secret_value(), max_size=pool_size or settings.postgres_pool_size)
        client = connect_redis(
            settings.redis_addr,
            db=settings.redis_db,
            password=settings.redis_password.get_secret_value() if settings.redis_password else None,
            tls=settings.redis_tls,
        )
        return cls(store, RedisQueue(client), settings)

    async def close(self) -> None:
        await self.queue.close()
        await self.store.close()

    # --- submissions ---------------------------------------------------------------------------------

    def _payload_json(self, payload: Any, where: str) -> str:
        encoded = orjson.dumps(payload)
        if len(encoded) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"{where}payload is {len(encoded)} bytes; the limit is {self.settings.max_payload_bytes} "
                "(TASKFLOW_MAX_PAYLOAD_BYTES): store large data elsewhere and pass a reference"
            )
        return encoded.decode()

    def _retries(self, value: int | None) -> int:
        return self.settings.default_max_retries if value is None else value

    async def submit_tasks(self, submissions: Sequence[TaskSubmission]) -> list[UUID]:
        """Commit tasks in PostgreSQL, then enqueue them; returns their ids (existing ids for repeated keys)."""
        now = datetime.now(UTC)
        new = [
            NewTask(
                id=uuid7(),
                type=s.type,
                queue=s.queue,
                payload_json=self._payload_json(s.payload, f"task {i}: " if len(submissions) > 1 else ""),
                priority=s.priority,
                scheduled_at=s.scheduled_at or now,
                max_retries=self._retries(s.max_retries),
                idempotency_key=s.idempotency_key,
            )
            for i, s in enumerate(submissions)
        ]
        ids = await self.store.insert_tasks(new)
        inserted = [t for t, final_id in zip(new, ids, strict=True) if t.id == final_id]
        await self._enqueue_new([(t.id, t.queue, t.priority, t.scheduled_at) for t in inserted])
        return ids

    async def submit_task(self, submission: TaskSubmission) -> UUID:
        return (await self.submit_tasks([submission]))[0]

    async def submit_dag(self, submission: DagSubmission) -> UUID:
        """Validate the whole DAG, commit it in one transaction, then enqueue its root steps."""
        validate_dag(
            submission.steps,
            submission.edges,
            max_steps=self.settings.max_dag_steps,
            max_edges=self.settings.max_dag_edges,
        )
        now = datetime.now(UTC)
        task_ids = {step.id: uuid7() for step in submission.steps}
        parents = defaultdict(int)
        for edge in submission.edges:
            parents[edge.to] += 1
        steps = [
            NewStep(
                id=task_ids[s.id],
                step_id=s.id,
                type=s.type,
                queue=s.queue,
                payload_json=self._payload_json(s.payload, f"step {s.id!r}: "),
                priority=s.priority,
                scheduled_at=now,
                max_retries=self._retries(s.max_retries),
                pending_parents=parents[s.id],
            )
            for s in submission.steps
        ]
        edges = [(task_ids[e.from_], task_ids[e.to]) for e in submission.edges]
        run_id, created = await self.store.insert_dag(uuid7(), submission.idempotency_key, steps, edges)
        if created:
            await self._enqueue_new([(s.id, s.queue, s.priority, s.scheduled_at) for s in steps if s.pending_parents == 0])
        return run_id

    async def _enqueue_new(self, tasks: Sequence[tuple[UUID, str, int, datetime]]) -> None:
        by_queue: dict[str, list[str]] = defaultdict(list)
        for task_id, queue, priority, scheduled_at in tasks:
            by_queue[queue].append(member(task_id, scheduled_at, priority))
        try:
            for queue, members in by_queue.items():
                await self.queue.enqueue(queue, members)
        except Unavailable as exc:
            # Already committed: the reconciler enqueues these once Redis is back.
            log.warning("enqueue deferred to the reconciler: %s", exc)

    # --- mirroring committed changes into Redis ---------------------------------------------------------

    async def apply(self, changes: Sequence[Change], *, release_from: str | None = None) -> None:
        """Mirror committed changes into Redis and announce them. Never raises for Redis trouble."""
        ready: dict[str, list[str]] = defaultdict(list)
        removed: dict[str, list[tuple[UUID, str]]] = defaultdict(list)
        finished: dict[str, list[UUID]] = defaultdict(list)
        task_events: list[dict[str, Any]] = []
        run_events: list[dict[str, Any]] = []
        for c in changes:
            if c.kind == "ready":
                assert c.task_id and c.queue and c.scheduled_at is not None and c.priority is not None
                ready[c.queue].append(member(c.task_id, c.scheduled_at, c.priority))
            elif c.kind == "removed":
                assert c.task_id and c.queue and c.scheduled_at is not None and c.priority is not None
                removed[c.queue].append((c.task_id, member(c.task_id, c.scheduled_at, c.priority)))
            elif c.kind == "accepted" and c.status != TaskStatus.FAILED:
                assert c.task_id and c.queue
                finished[c.queue].append(c.task_id)
            if c.kind in ("accepted", "removed") and c.task_id:
                task_events.append({"id": str(c.task_id), "status": c.status, "dag_run_id": _str(c.dag_run_id)})
            elif c.kind == "run":
                run_events.append({"id": str(c.dag_run_id), "status": c.status})
        try:
            # One round trip for the whole batch (it sits between a completion's COMMIT and the
            # start of the children it released, so it is on every DAG step's critical path).
            await self.queue.apply_changes(
                finished=finished,
                ready=ready,
                removed=removed,
                event={"tasks": task_events, "dag_runs": run_events} if task_events or run_events else None,
            )
        except Unavailable as exc:
            log.warning("Redis update deferred to the reconciler: %s", exc)

    # --- the worker's path ------------------------------------------------------------------------------

    async def start(self, task_ids: Sequence[UUID], worker_id: str) -> list[StartedTask]:
        return await self.store.start_tasks(task_ids, worker_id, self.settings.lock_ttl)

    async def extend_leases(self, held: Sequence[tuple[UUID, int]]) -> set[UUID]:
        return await self.store.extend_leases(held, self.settings.lock_ttl)

    async def record(
        self,
        completed: Sequence[tuple[UUID, int, str]],
        failed: Sequence[tuple[UUID, int, str, bool]],
    ) -> set[UUID]:
        """Record a worker's outcomes; return the ids whose write was accepted (current fence)."""
        changes: list[Change] = []
        if completed:
            changes += await self.store.complete(completed)
        if failed:
            changes += await self.store.fail(
                failed,
                outcome="failed",
                backoff_base=self.settings.backoff_base,
                backoff_cap=self.settings.backoff_cap,
            )
        await self.apply(changes)
        return {c.task_id for c in changes if c.kind == "accepted" and c.task_id is not None}

    async def hand_back(self, held: Sequence[tuple[UUID, int]]) -> None:
        await self.apply(await self.store.hand_back(held))

    async def put_back_unstarted(self, queue: str, members: Sequence[str]) -> None:
        """Return claimed-but-not-started tasks to Redis (Postgres never saw them leave)."""
        try:
            await self.queue.enqueue(queue, members, repair=False)
        except Unavailable as exc:
            log.warning("could not put back %d claimed tasks; the reconciler will: %s", len(members), exc)

    # --- operations -----------------------------------------------------------------------------------

    async def get_task(self, task_id: UUID) -> TaskView:
        return task_view(await self.store.get_task(task_id))

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        queue: str | None = None,
        dag_run_id: UUID | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> TaskPage:
        before = None
        if cursor:
            try:
                before = UUID(cursor)
            except ValueError:
                raise InvalidInput("cursor is not one this API returned; pass next_cursor unchanged") from None
        rows = await self.store.list_tasks(
            status=status, type=type, queue=queue, dag_run_id=dag_run_id, before=before, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return TaskPage(tasks=[task_view(r) for r in rows], next_cursor=str(rows[-1]["id"]) if more else None)

    async def get_dag_run(self, run_id: UUID) -> DagRunView:
        return dag_run_view(await self.store.get_dag_run(run_id))

    async def cancel_task(self, task_id: UUID) -> TaskView:
        changes = await self.store.cancel_tasks([task_id], "cancelled by request")
        await self.apply(changes)
        task = await self.get_task(task_id)
        if not any(c.task_id == task_id for c in changes if c.kind == "removed"):
            raise Conflict(f"the task already finished ({task.status.value}); there is nothing to cancel")
        return task

    async def cancel_dag_run(self, run_id: UUID) -> DagRunView:
        await self.apply(await self.store.cancel_dag_run(run_id))
        return await self.get_dag_run(run_id)

    async def retry_dead_letter(self, task_id: UUID) -> TaskView:
        retried = await self.store.retry_dead_letter(task_id)
        if retried is None:
            task = await self.get_task(task_id)  # raises NotFound
            if task.status != TaskStatus.DLQ:
                raise Conflict(f"the task is {task.status.value}, not in the dead-letter queue")
            raise Conflict(
                "this task is a step of DAG run "
                f"{task.dag_run_id}; its downstream steps were cancelled, so submit the DAG again instead"
            )
        await self._enqueue_new([(retried.id, retried.queue, retried.priority, retried.scheduled_at)])
        return await self.get_task(task_id)

    async def health(self) -> dict[str, str]:
        """`ok` or the error of each backing service."""
        status: dict[str, str] = {}
        for name, check in (("postgres", self.store.now), ("redis", self.queue.ping)):
            try:
                await check()
                status[name] = "ok"
            except Unavailable as exc:
                status[name] = exc.message
        return status

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """For open probe endpoints: `ok`/`unavailable` per service; the errors themselves go to the log only."""
        checks = await self.health()
        for name, problem in checks.items():
            if problem != "ok":
                log.warning("not ready: %s: %s", name, problem)
        public = {name: "ok" if problem == "ok" else "unavailable" for name, problem in checks.items()}
        return all(v == "ok" for v in public.values()), public


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)

