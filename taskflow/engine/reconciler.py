"""Keeps Redis in step with PostgreSQL, and reclaims tasks whose worker vanished.

Runs in every API/scheduler process; several replicas are safe because every step is
idempotent (re-enqueueing uses the `repair` mode of enqueue.lua, which adds only what Redis
does not hold) and lease expiry takes rows with `FOR UPDATE SKIP LOCKED`.

Each tick:
1. Expired PostgreSQL leases: the attempt is recorded as `lease_expired`, the task retried
   or dead-lettered, and a new fence will be issued, so the old holder can no longer write.
2. If Redis lost its data (the epoch key is gone or changed): enqueue every claimable task.
3. The window sweep: claimable tasks whose status changed in (last sweep, now - grace] are
   re-enqueued if Redis lacks them; this covers a crash between COMMIT and the enqueue.
4. Every `full_resync_interval`: a full sweep, which also covers tasks claimed in Redis by a
   worker that died before it started them in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from uuid import UUID

from taskflow.core.errors import Unavailable
from taskflow.engine.engine import Engine
from taskflow.queue.keys import member
from taskflow.store.store import Claimable

log = logging.getLogger(__name__)

_PAGE = 2000
_EXPIRE_BATCH = 500
_WINDOW_OVERLAP = timedelta(seconds=2)


class Reconciler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._epoch: str | None = None
        self._window_end: datetime | None = None
        self._last_full = 0.0
        self.full_resyncs = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every `reconcile_interval` until `stop` is set; outages are logged and retried."""
        while not stop.is_set():
            try:
                await self.tick()
            except Unavailable as exc:
                log.warning("reconciler waiting for a backing service: %s", exc)
            except Exception:
                log.exception("reconciler tick failed; trying again next interval")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.reconcile_interval)
            except TimeoutError:
                pass

    async def tick(self) -> None:
        await self.expire_leases()
        epoch = await self.engine.queue.ensure_epoch(uuid.uuid4().hex)
        db_now = await self.engine.store.now()
        if epoch != self._epoch or time.monotonic() - self._last_full >= self.settings.full_resync_interval:
            if self._epoch is not None and epoch != self._epoch:
                log.warning("Redis lost its data (epoch changed); re-enqueueing every claimable task")
            await self.full_resync()
            self._epoch = epoch
            self._last_full = time.monotonic()
        else:
            await self.window_sweep(db_now)
        self._window_end = db_now - timedelta(seconds=self.settings.requeue_grace)
        await self.prune_leases()

    async def expire_leases(self) -> int:
        expired = 0
        while True:
            changes = await self.engine.store.expire_leases(
                limit=_EXPIRE_BATCH,
                backoff_base=self.settings.backoff_base,
                backoff_cap=self.settings.backoff_cap,
            )
            await self.engine.apply(changes)
            batch = sum(1 for c in changes if c.kind == "accepted")
            expired += batch
            if batch < _EXPIRE_BATCH:
                break
        if expired:
            log.info("reclaimed %d tasks whose lease expired", expired)
        return expired

    async def window_sweep(self, db_now: datetime) -> int:
        until = db_now - timedelta(seconds=self.settings.requeue_grace)
        since = (self._window_end or until) - _WINDOW_OVERLAP
        if since >= until:
            return 0
        return await self._repair(await self.engine.store.claimable_changed_between(since, until))

    async def full_resync(self) -> int:
        repaired = 0
        after = UUID(int=0)
        while True:
            page = await self.engine.store.claimable_after(after, _PAGE)
            repaired += await self._repair(page)
            if len(page) < _PAGE:
                break
            after = page[-1].id
        self.full_resyncs += 1
        return repaired

    async def _repair(self, tasks: list[Claimable]) -> int:
        by_queue: dict[str, list[str]] = defaultdict(list)
        for t in tasks:
            by_queue[t.queue].append(member(t.id, t.scheduled_at, t.priority))
        added = 0
        for queue, members in by_queue.items():
            added += await self.engine.queue.enqueue(queue, members, repair=True)
        if added:
            log.info("re-enqueued %d tasks that PostgreSQL holds claimable but Redis did not", added)
        return added

    async def prune_leases(self) -> None:
        horizon_ms = int((time.time() - 2 * self.settings.lock_ttl) * 1000)
        for queue in await self.engine.queue.known_queues():
            await self.engine.queue.prune_leases(queue, horizon_ms)
