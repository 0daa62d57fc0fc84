"""The worker loop: claim, start under a fence, run, record, renew leases, drain on SIGTERM.

Three side tasks run beside the handlers and the worker stops if one of them dies:
- fetch: claims batches from Redis (blocking on the queues' wake lists when idle, never
  longer than `poll_interval`, so delayed tasks start on time) and starts them in PostgreSQL,
  which hands out the fences;
- flush: records outcomes in batches, one transaction per batch, retrying through outages;
- heartbeat: renews the PostgreSQL leases of everything in flight every `lock_ttl / 3`, and
  cancels handlers whose lease was lost (their result would be refused anyway).
A task stays "in flight" until its outcome is recorded, so its lease is renewed while the
record waits for PostgreSQL to come back.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from taskflow.core.errors import LeaseLost, PermanentTaskError, Unavailable
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.queue import ClaimResult
from taskflow.queue.keys import task_id_of
from taskflow.store import StartedTask
from taskflow.worker.context import TaskContext
from taskflow.worker.registry import Registry

log = logging.getLogger(__name__)

_FLUSH_BATCH = 512
_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass(slots=True)
class _Outcome:
    task: StartedTask
    kind: str  # completed | failed | handed_back
    result_json: str = "null"
    error: str = ""
    permanent: bool = False


@dataclass(slots=True)
class _InFlight:
    task: StartedTask
    runner: asyncio.Task[None] | None = None
    lost: bool = False


class Worker:
    def __init__(self, engine: Engine, settings: Settings, registry: Registry) -> None:
        self.engine = engine
        self.settings = settings
        self.registry = registry
        self.worker_id = settings.worker_id
        self._inflight: dict[UUID, _InFlight] = {}
        self._outcomes: asyncio.Queue[_Outcome] = asyncio.Queue()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._redis_beat: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="taskflow-handler")
        self.recorded = 0
        self.refused = 0

    # --- lifecycle ------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then drain within `shutdown_grace` and hand back the rest."""
        log.info(
            "worker %s taking %s with concurrency %d; handlers: %s",
            self.worker_id, ",".join(self.settings.queues), self.settings.concurrency, ", ".join(self.registry.names()),
        )
        side = {
            asyncio.create_task(self._fetch_loop(), name="fetch"),
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        }
        stop_wait = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait(side | {stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_wait and not task.cancelled() and task.exception() is not None:
                log.error("worker side task %s died; stopping", task.get_name(), exc_info=task.exception())
        stop_wait.cancel()
        await self._shutdown(side)

    async def _shutdown(self, side: set[asyncio.Task[None]]) -> None:
        self._stopping.set()
        fetch = next(t for t in side if t.get_name() == "fetch")
        await asyncio.gather(fetch, return_exceptions=True)
        runners = [f.runner for f in self._inflight.values() if f.runner is not None and not f.runner.done()]
        if runners:
            log.info("waiting up to %.1fs for %d running tasks", self.settings.shutdown_grace, len(runners))
            _, still = await asyncio.wait(runners, timeout=self.settings.shutdown_grace or None)
            for runner in still:
                runner.cancel()  # its handler records a hand-back
            await asyncio.gather(*still, return_exceptions=True)
        deadline = time.monotonic() + max(10.0, self.settings.lock_ttl / 2)
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._inflight:
            log.warning("%d outcomes not recorded; their leases will expire and they will run again", len(self._inflight))
        if self._redis_beat is not None:
            side.add(self._redis_beat)
        for task in side:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        try:
            await self.engine.queue.forget_worker(self.worker_id)
        except Unavailable:
            pass
        self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("worker %s stopped: %d outcomes recorded, %d refused", self.worker_id, self.recorded, self.refused)

    # --- fetch ----------------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        queues = list(self.settings.queues)
        lease_ms = int(self.settings.lock_ttl * 1000)
        turn = 0
        failures = 0
        idle_wait: float | None = None  # set after a round found nothing: wait for work before the next
        while not self._stopping.is_set():
            if len(self._inflight) >= self.settings.concurrency:
                self._slot_freed.clear()
                await _first(self._slot_freed.wait(), self._stopping.wait())
                continue
            try:
                if idle_wait is not None and len(queues) == 1:
                    claimed, wait_s = await self._wait_and_claim(queues[0], idle_wait, lease_ms)
                else:
                    if idle_wait is not None:
                        await _first(self.engine.queue.wait_for_work(queues, idle_wait), self._stopping.wait())
                    claimed, wait_s = await self._claim_round(queues[turn:] + queues[:turn], lease_ms)
                    turn = (turn + 1) % len(queues)
                failures = 0
            except Unavailable as exc:
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("cannot claim (%s); retrying in %.2fs", exc, delay)
                await _first(asyncio.sleep(delay), self._stopping.wait())
                idle_wait = None
                continue
            idle_wait = None if claimed else wait_s

    async def _claim_round(self, queues: Sequence[str], lease_ms: int) -> tuple[int, float]:
        """Claim from each queue while slots are free; return (tasks started, seconds to wait if none)."""
        started_total = 0
        wait_s = self.settings.poll_interval
        for queue in queues:
            free = self.settings.concurrency - len(self._inflight)
            if free <= 0 or self._stopping.is_set():
                break
            claim = await self.engine.queue.claim(queue, min(free, self.settings.claim_batch), lease_ms)
            wait_s = _wait_after(claim, wait_s)
            started_total += await self._start_claimed(queue, claim)
        return started_total, wait_s

    async def _wait_and_claim(self, queue: str, wait_s: float, lease_ms: int) -> tuple[int, float]:
        """Idle on one queue: block for a wake-up and claim in the same round trip."""
        free = self.settings.concurrency - len(self._inflight)
        claiming = asyncio.ensure_future(
            self.engine.queue.wait_and_claim(queue, wait_s, min(free, self.settings.claim_batch), lease_ms)
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({claiming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not claiming.done():
                # Stopping. Redis runs the claim when the wait ends, so take its answer (at most one
                # wait away) and put what it claimed back rather than leave it leased in Redis.
                await asyncio.wait({claiming}, timeout=wait_s + 1.0)
        finally:
            stopping.cancel()
            if not claiming.done():
                claiming.cancel()  # Redis does not answer: the reconciler repairs what it claimed
        if claiming.cancelled():
            return 0, wait_s
        claim = claiming.result()
        return await self._start_claimed(queue, claim), _wait_after(claim, self.settings.poll_interval)

    async def _start_claimed(self, queue: str, claim: ClaimResult) -> int:
        """Start claimed tasks in PostgreSQL (which hands out the fences) and run them."""
        if not claim.members:
            return 0
        if self._stopping.is_set():
            await self.engine.put_back_unstarted(queue, claim.members)
            return 0
        ids = [task_id_of(m) for m in claim.members]
        try:
            started = await self.engine.start(ids, self.worker_id)
        except Unavailable:
            # Postgres never saw these leave; give them back so nobody waits for the reconciler.
            await self.engine.put_back_unstarted(queue, claim.members)
            raise
        for task in started:
            entry = _InFlight(task)
            self._inflight[task.id] = entry
            entry.runner = asyncio.create_task(self._execute(entry), name=f"task-{task.id}")
        return len(started)

    # --- execute --------------------------------------------------------------------------------------

    async def _execute(self, entry: _InFlight) -> None:
        task = entry.task
        handler = self.registry.get(task.type)
        ctx = TaskContext(
            task_id=task.id, type=task.type, queue=task.queue, attempt=task.attempt, fence=task.fence,
            retry_count=task.retry_count, max_retries=task.max_retries, dag_run_id=task.dag_run_id,
            step_id=task.step_id, worker_id=self.worker_id, log=logging.getLogger(f"taskflow.task.{task.type}"),
            _heartbeat=functools.partial(self._heartbeat_one, task),
        )
        try:
            if handler is None:
                raise LookupError(
                    f"no handler for task type {task.type!r} on worker {self.worker_id} "
                    f"(it has: {', '.join(self.registry.names())}); start a worker with --import for the module "
                    "that registers it, on this task's queue"
                )
            if inspect.iscoroutinefunction(handler):
                result = await handler(ctx, task.payload)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._executor, functools.partial(handler, ctx, task.payload))
            try:
                outcome = _Outcome(task, "completed", result_json=orjson.dumps(result).decode())
            except TypeError as exc:
                outcome = _Outcome(task, "failed", error=f"the handler's result is not JSON: {exc}", permanent=True)
        except asyncio.CancelledError:
            if entry.lost:
                self._forget(task.id)
                return
            outcome = _Outcome(task, "handed_back")
        except PermanentTaskError as exc:
            outcome = _Outcome(task, "failed", error=_describe(exc), permanent=True)
        except LeaseLost:
            self._forget(task.id)
            return
        except Exception as exc:
            outcome = _Outcome(task, "failed", error=_describe(exc))
        self._outcomes.put_nowait(outcome)

    def _forget(self, task_id: UUID) -> None:
        self._inflight.pop(task_id, None)
        self._slot_freed.set()

    # --- record ---------------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            batch = [await self._outcomes.get()]
            while len(batch) < _FLUSH_BATCH and not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            await self._record(batch)
            for outcome in batch:
                self._forget(outcome.task.id)

    async def _record(self, batch: list[_Outcome]) -> None:
        completed = [(o.task.id, o.task.fence, o.result_json) for o in batch if o.kind == "completed"]
        failed = [(o.task.id, o.task.fence, o.error, o.permanent) for o in batch if o.kind == "failed"]
        handed_back = [(o.task.id, o.task.fence) for o in batch if o.kind == "handed_back"]
        failures = 0
        while True:
            try:
                accepted = await self.engine.record(completed, failed) if completed or failed else set()
                if handed_back:
                    await self.engine.hand_back(handed_back)
                break
            except Unavailable as exc:
                # Safe to repeat: a write that did commit is refused the second time (status
                # and fence no longer match), so nothing is recorded twice.
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("cannot record %d outcomes (%s); retrying in %.2fs", len(batch), exc, delay)
                await asyncio.sleep(delay)
        self.recorded += len(accepted)
        self.refused += len(completed) + len(failed) - len(accepted)

    # --- leases -----------------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = max(self.settings.lock_ttl / 3, 0.05)
        while True:  # beat first: the operator sees a new worker (and its idle slots) at once
            try:
                await self._renew_all()
            except Unavailable as exc:
                log.warning("cannot renew leases: %s", exc)
            await asyncio.sleep(interval)

    async def _renew_all(self) -> None:
        held = [(i, f.task.fence) for i, f in self._inflight.items() if not f.lost]
        alive: set[UUID] = set()
        if held:
            alive = await self.engine.extend_leases(held)
            for task_id, _ in held:
                if task_id not in alive:
                    self._lose(task_id)
        # The Redis side runs beside, one at a time: while Redis does not answer, each call waits
        # for the socket timeout, longer than a lease, and must not hold up the next PostgreSQL
        # renewal (PostgreSQL's lease is the one that decides who may record a result).
        if self._redis_beat is None or self._redis_beat.done():
            self._redis_beat = asyncio.create_task(self._mirror_leases(alive), name="redis-heartbeat")

    async def _mirror_leases(self, alive: set[UUID]) -> None:
        try:
            by_queue: dict[str, list[UUID]] = {}
            for task_id in alive:
                entry = self._inflight.get(task_id)
                if entry is not None:
                    by_queue.setdefault(entry.task.queue, []).append(task_id)
            deadline_ms = int((time.time() + self.settings.lock_ttl) * 1000)
            for queue, ids in by_queue.items():
                await self.engine.queue.extend_leases(queue, ids, deadline_ms)
            await self.engine.queue.heartbeat_worker(
                self.worker_id,
                {
                    "queues": ",".join(self.settings.queues),
                    "concurrency": self.settings.concurrency,
                    "busy": len(self._inflight),
                    "seen_ms": int(time.time() * 1000),
                },
                ttl_s=max(int(self.settings.lock_ttl), 5),
            )
        except Unavailable as exc:
            log.warning("cannot mirror leases into Redis: %s", exc)

    def _lose(self, task_id: UUID) -> None:
        """The lease is gone (expired or cancelled): stop the handler; its result would be refused."""
        entry = self._inflight.get(task_id)
        if entry is None or entry.lost:
            return
        entry.lost = True
        if entry.runner is not None and not entry.runner.done():
            log.warning("lost the lease of task %s; cancelling its handler", task_id)
            entry.runner.cancel()

    async def _heartbeat_one(self, task: StartedTask) -> None:
        if not await self.engine.extend_leases([(task.id, task.fence)]):
            entry = self._inflight.get(task.id)
            if entry is not None:
                entry.lost = True
            raise LeaseLost(f"task {task.id} is no longer held by this worker (lease expired or task cancelled)")


def _wait_after(claim: ClaimResult, wait_s: float) -> float:
    """How long an idle worker may wait: until the next delayed task falls due, at most `wait_s`."""
    if claim.next_delayed_ms is None:
        return wait_s
    return min(wait_s, max(0.0, (claim.next_delayed_ms - claim.redis_now_ms) / 1000))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _first(*aws: Any) -> None:
    """Wait until the first awaitable finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
