"""Async access to PostgreSQL. Every statement comes from `sql/`; driver errors become Taskflow errors here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from taskflow.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from taskflow.store.migrate import migrate
from taskflow.store.queries import QUERIES

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors after which running the whole transaction again is safe and may succeed.
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


@dataclass(frozen=True, slots=True)
class Change:
    """One consequence of a state change, for the caller to mirror into Redis (see 0002_engine_functions.sql)."""

    kind: str
    task_id: UUID | None
    queue: str | None
    priority: int | None
    scheduled_at: datetime | None
    dag_run_id: UUID | None
    status: str | None


@dataclass(frozen=True, slots=True)
class StartedTask:
    """A task this worker now holds, with the fence every later write must present."""

    id: UUID
    type: str
    queue: str
    payload: Any
    fence: int
    attempt: int
    retry_count: int
    max_retries: int
    dag_run_id: UUID | None
    step_id: str | None
    priority: int
    scheduled_at: datetime


@dataclass(frozen=True, slots=True)
class NewTask:
    id: UUID
    type: str
    queue: str
    payload_json: str
    priority: int
    scheduled_at: datetime
    max_retries: int
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class NewStep:
    id: UUID
    step_id: str
    type: str
    queue: str
    payload_json: str
    priority: int
    scheduled_at: datetime
    max_retries: int
    pending_parents: int


@dataclass(frozen=True, slots=True)
class Claimable:
    id: UUID
    queue: str
    priority: int
    scheduled_at: datetime


async def _configure(conn: psycopg.AsyncConnection) -> None:
    set_json_loads(orjson.loads, conn)


class Store:
    """The PostgreSQL side of the engine. Methods are small transactions; batches wherever a caller has many."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0) -> Store:
        pool = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            timeout=timeout,
            reconnect_timeout=300,
            name="taskflow",
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:  # PoolTimeout included
            await pool.close()
            raise Unavailable(
                f"cannot connect to PostgreSQL within {timeout:.0f}s ({_safe(exc)}); "
                "check TASKFLOW_POSTGRES_DSN and that the server is up"
            ) from exc
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def migrate(self) -> list[str]:
        async with self._pool.connection() as conn:
            return await migrate(conn)

    # --- plumbing -------------------------------------------------------------------------------

    async def _run(
        self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]], *, transaction: bool = True, attempts: int = 5
    ) -> T:
        """Run `work` in a transaction; run it again after a deadlock; map driver errors.

        `transaction=False` is for work that sends one statement: PostgreSQL runs it atomically on
        its own, and skipping BEGIN and COMMIT saves two round trips on the hot paths.
        """
        for attempt in range(1, attempts + 1):
            try:
                async with self._pool.connection() as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        return await work(conn)
            except _RETRYABLE:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.01 * attempt)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # PoolTimeout included
                raise Unavailable(f"PostgreSQL is unavailable: {_safe(exc)}") from exc
            except psycopg.DataError as exc:
                # A value PostgreSQL cannot store (e.g. NUL in text or jsonb) that got past validation:
                # the caller's input, not our failure; the transaction was rolled back.
                raise InvalidInput(f"PostgreSQL cannot store this input: {_safe(exc)}") from exc
        raise AssertionError("unreachable")

    async def _fetch(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async def work(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                return await cur.fetchall()

        return await self._run(work, transaction=False)

    async def _changes(self, query: str, params: dict[str, Any]) -> list[Change]:
        async def work(conn: psycopg.AsyncConnection) -> list[Change]:
            cur = await conn.execute(query, params)
            return [Change(*row) for row in await cur.fetchall()]

        return await self._run(work, transaction=False)

    # --- submissions ------------------------------------------------------------------------------

    async def insert_tasks(self, tasks: Sequence[NewTask]) -> list[UUID]:
        """Insert tasks; return each one's id, the existing one's where its idempotency key was taken."""

        async def work(conn: psycopg.AsyncConnection) -> list[UUID]:
            await conn.execute(
                QUERIES["insert_tasks"],
                {
                    "ids": [t.id for t in tasks],
                    "types": [t.type for t in tasks],
                    "queues": [t.queue for t in tasks],
                    "payloads": [t.payload_json for t in tasks],
                    "priorities": [t.priority for t in tasks],
                    "scheduled_ats": [t.scheduled_at for t in tasks],
                    "max_retries": [t.max_retries for t in tasks],
                    "idempotency_keys": [t.idempotency_key for t in tasks],
                },
            )
            keys = [t.idempotency_key for t in tasks if t.idempotency_key is not None]
            if not keys:
                return [t.id for t in tasks]
            cur = await conn.execute(QUERIES["tasks_by_idempotency_keys"], {"keys": keys})
            existing = dict(await cur.fetchall())
            return [existing.get(t.idempotency_key, t.id) if t.idempotency_key else t.id for t in tasks]

        return await self._run(work, transaction=any(t.idempotency_key is not None for t in tasks))

    async def insert_dag(
        self, run_id: UUID, idempotency_key: str | None, steps: Sequence[NewStep], edges: Iterable[tuple[UUID, UUID]]
    ) -> tuple[UUID, bool]:
        """Insert a run with its steps and edges; return (run id, created). A repeated key returns the first run."""

        async def work(conn: psycopg.AsyncConnection) -> tuple[UUID, bool]:
            cur = await conn.execute(
                QUERIES["insert_dag_run"],
                {"id": run_id, "idempotency_key": idempotency_key, "total_steps": len(steps)},
            )
            if await cur.fetchone() is None:
                cur = await conn.execute(QUERIES["dag_run_by_idempotency_key"], {"key": idempotency_key})
                row = await cur.fetchone()
                assert row is not None
                return row[0], False
            async with conn.cursor() as copy_cur:
                async with copy_cur.copy(QUERIES["copy_dag_tasks"]) as copy:
                    for s in steps:
                        status = "queued" if s.pending_parents == 0 else "pending"
                        await copy.write_row(
                            (s.id, s.type, s.queue, s.payload_json, status, s.priority, s.scheduled_at,
                             s.max_retries, run_id, s.step_id, s.pending_parents)
                        )
                async with copy_cur.copy(QUERIES["copy_dag_edges"]) as copy:
                    for parent, child in edges:
                        await copy.write_row((run_id, parent, child))
            return run_id, True

        return await self._run(work)

    # --- the worker's path --------------------------------------------------------------------------

    async def start_tasks(self, ids: Sequence[UUID], worker_id: str, lease_s: float) -> list[StartedTask]:
        async def work(conn: psycopg.AsyncConnection) -> list[StartedTask]:
            cur = await conn.execute(
                QUERIES["start_tasks"], {"ids": list(ids), "worker_id": worker_id, "lease_s": lease_s}
            )
            return [
                StartedTask(
                    id=r[0], type=r[1], queue=r[2], payload=r[3], fence=r[4], attempt=r[5], retry_count=r[6],
                    max_retries=r[7], dag_run_id=r[8], step_id=r[9], priority=r[10], scheduled_at=r[11],
                )
                for r in await cur.fetchall()
            ]

        return await self._run(work, transaction=False)

    async def extend_leases(self, held: Sequence[tuple[UUID, int]], lease_s: float) -> set[UUID]:
        """Renew leases; return the ids still held (a missing id was lost or cancelled)."""
        rows = await self._fetch(
            QUERIES["extend_leases"],
            {"ids": [i for i, _ in held], "fences": [f for _, f in held], "lease_s": lease_s},
        )
        return {r["id"] for r in rows}

    async def complete(self, done: Sequence[tuple[UUID, int, str]]) -> list[Change]:
        """Record completions given as (task id, fence, result JSON)."""
        return await self._changes(
            QUERIES["complete_tasks"],
            {"ids": [d[0] for d in done], "fences": [d[1] for d in done], "results": [d[2] for d in done]},
        )

    async def fail(
        self,
        failed: Sequence[tuple[UUID, int, str, bool]],
        *,
        outcome: str,
        backoff_base: float,
        backoff_cap: float,
    ) -> list[Change]:
        """Record failed attempts given as (task id, fence, error, permanent)."""
        return await self._changes(QUERIES["fail_tasks"], _fail_params(failed, outcome, backoff_base, backoff_cap))

    async def hand_back(self, held: Sequence[tuple[UUID, int]]) -> list[Change]:
        """Return started tasks to the queue without counting a failed attempt (worker shutdown)."""
        return await self._changes(
            QUERIES["hand_back"], {"ids": [i for i, _ in held], "fences": [f for _, f in held]}
        )

    # --- operations ------------------------------------------------------------------------------------

    async def cancel_tasks(self, ids: Sequence[UUID], reason: str) -> list[Change]:
        return await self._changes(QUERIES["cancel_tasks"], {"ids": list(ids), "reason": reason})

    async def cancel_dag_run(self, run_id: UUID) -> list[Change]:
        async def work(conn: psycopg.AsyncConnection) -> list[Change]:
            cur = await conn.execute(QUERIES["lock_dag_run"], {"id": run_id})
            run = await cur.fetchone()
            if run is None:
                raise NotFound("DAG run not found")
            _, status, unfinished = run
            if unfinished == 0:
                raise Conflict(f"the DAG run already finished ({status}); there is nothing to cancel")
            await conn.execute(QUERIES["mark_dag_run_cancelled"], {"id": run_id})
            cur = await conn.execute(QUERIES["unfinished_dag_steps"], {"id": run_id})
            ids = [r[0] for r in await cur.fetchall()]
            cur = await conn.execute(
                QUERIES["cancel_tasks"], {"ids": ids, "reason": "cancelled: the DAG run was cancelled"}
            )
            return [Change(*row) for row in await cur.fetchall()]

        return await self._run(work)

    async def retry_dead_letter(self, task_id: UUID) -> Claimable | None:
        rows = await self._fetch(QUERIES["retry_dead_letter"], {"id": task_id})
        return Claimable(**rows[0]) if rows else None

    async def expire_leases(self, *, limit: int, backoff_base: float, backoff_cap: float) -> list[Change]:
        """Fail the attempts of running tasks whose lease ran out (their worker died or stalled)."""

        async def work(conn: psycopg.AsyncConnection) -> list[Change]:
            cur = await conn.execute(QUERIES["expired_leases"], {"limit": limit})
            expired = [(r[0], r[1], "the worker's lease expired before it reported", False) for r in await cur.fetchall()]
            if not expired:
                return []
            cur = await conn.execute(
                QUERIES["fail_tasks"], _fail_params(expired, "lease_expired", backoff_base, backoff_cap)
            )
            return [Change(*row) for row in await cur.fetchall()]

        return await self._run(work)

    # --- reconciler reads -------------------------------------------------------------------------------

    async def claimable_changed_between(self, since: datetime, until: datetime) -> list[Claimable]:
        rows = await self._fetch(QUERIES["claimable_changed_between"], {"since": since, "until": until})
        return [Claimable(**r) for r in rows]

    async def claimable_after(self, after: UUID, limit: int) -> list[Claimable]:
        rows = await self._fetch(QUERIES["claimable_after"], {"after": after, "limit": limit})
        return [Claimable(**r) for r in rows]

    async def now(self) -> datetime:
        """The database's clock, which stamps every updated_at the reconciler compares against."""
        rows = await self._fetch(QUERIES["db_now"], {})
        return rows[0]["clock_timestamp"]

    async def queue_depths(self) -> list[dict[str, Any]]:
        return await self._fetch(QUERIES["queue_depths"], {})

    # --- reads for the API --------------------------------------------------------------------------------

    async def get_task(self, task_id: UUID) -> dict[str, Any]:
        rows = await self._fetch(QUERIES["get_task"], {"id": task_id})
        if not rows:
            raise NotFound("task not found")
        task = rows[0]
        task["attempt_rows"] = await self._fetch(QUERIES["get_attempts"], {"ids": [task_id]})
        return task

    async def list_tasks(
        self,
        *,
        status: str | None,
        type: str | None,
        queue: str | None,
        dag_run_id: UUID | None,
        before: UUID | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        tasks = await self._fetch(
            QUERIES["list_tasks"],
            {"status": status, "type": type, "queue": queue, "dag_run_id": dag_run_id, "before": before, "limit": limit},
        )
        if tasks:
            attempts = await self._fetch(QUERIES["get_attempts"], {"ids": [t["id"] for t in tasks]})
            by_task: dict[UUID, list[dict[str, Any]]] = {}
            for a in attempts:
                by_task.setdefault(a["task_id"], []).append(a)
            for t in tasks:
                t["attempt_rows"] = by_task.get(t["id"], [])
        return tasks

    async def get_dag_run(self, run_id: UUID) -> dict[str, Any]:
        rows = await self._fetch(QUERIES["get_dag_run"], {"id": run_id})
        if not rows:
            raise NotFound("DAG run not found")
        run = rows[0]
        run["steps"] = await self._fetch(QUERIES["get_dag_steps"], {"id": run_id})
        return run


def _fail_params(
    failed: Sequence[tuple[UUID, int, str, bool]], outcome: str, backoff_base: float, backoff_cap: float
) -> dict[str, Any]:
    return {
        "ids": [f[0] for f in failed],
        "fences": [f[1] for f in failed],
        "errors": [f[2] for f in failed],
        "permanent": [f[3] for f in failed],
        "outcome": outcome,
        "backoff_base": backoff_base,
        "backoff_cap": backoff_cap,
    }


def _safe(exc: BaseException) -> str:
    """The first line of a driver error, which names the problem without echoing the DSN's password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split("password=")[0].rstrip(" ,(")
