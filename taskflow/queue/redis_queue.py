"""Queue operations on Redis: enqueue, claim, lease bookkeeping, wake-ups and events."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from taskflow.core.errors import Unavailable
from taskflow.queue import keys

P = ParamSpec("P")
R = TypeVar("R")

_PROMOTE_LIMIT = 1000  # delayed tasks moved to ready per claim call; keeps each script call short
_ENQUEUE_CHUNK = 1000  # members per enqueue call; keeps Redis responsive during a 10,000-step DAG


def _lua(name: str) -> str:
    return (resources.files("taskflow.queue") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _redis_errors_as_unavailable(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc

    return wrapper


def connect_redis(addr: str, *, db: int = 0, password: str | None = None, tls: bool = False) -> aioredis.Redis:
    """A client for `host:port` or a `redis://` / `rediss://` URL."""
    common: dict[str, Any] = dict(
        socket_timeout=10.0, socket_connect_timeout=5.0, health_check_interval=15, decode_responses=True,
        # One quick retry when a connection broke (a pooled one that died with a Redis restart),
        # none on timeouts: redis-py's default (10 retries, timeouts included) turns one unanswered
        # call into minutes of blocking, which would stall the worker's heartbeat and the
        # reconciler for a whole Redis outage. Callers handle `Unavailable` themselves.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1, supported_errors=(RedisConnectionError,)),
    )
    if "://" in addr:
        return aioredis.Redis.from_url(addr, db=db, password=password, **common)
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"TASKFLOW_REDIS_ADDR must be host:port or a redis:// URL, got {addr!r}")
    return aioredis.Redis(host=host, port=int(port), db=db, password=password, ssl=tls, **common)


@dataclass(frozen=True, slots=True)
class ClaimResult:
    members: list[str]
    redis_now_ms: int
    next_delayed_ms: int | None


class RedisQueue:
    """All Redis traffic of Taskflow. Methods raise `Unavailable` when Redis cannot be reached."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._claim = client.register_script(_lua("claim"))
        self._enqueue = client.register_script(_lua("enqueue"))
        self._announced: set[str] = set()  # queues this process already added to QUEUES_KEY

    async def close(self) -> None:
        await self.client.aclose()

    @_redis_errors_as_unavailable
    async def ping(self) -> None:
        await self.client.ping()

    @_redis_errors_as_unavailable
    async def enqueue(self, queue: str, members: Sequence[str], *, repair: bool = False) -> int:
        """Make tasks claimable (ready now or delayed until their time); returns how many were added."""
        if not members:
            return 0
        qk = keys.QueueKeys.of(queue)
        added = 0
        for start in range(0, len(members), _ENQUEUE_CHUNK):
            chunk = members[start : start + _ENQUEUE_CHUNK]
            added += int(await self._enqueue(keys=qk.all(), args=["repair" if repair else "new", *chunk]))
        if queue not in self._announced:
            # Off the hot path: one SADD per queue per process (the set only guides lease pruning).
            await self.client.sadd(keys.QUEUES_KEY, queue)
            self._announced.add(queue)
        return added

    @_redis_errors_as_unavailable
    async def apply_changes(
        self,
        *,
        finished: Mapping[str, Sequence[UUID]],
        ready: Mapping[str, Sequence[str]],
        removed: Mapping[str, Sequence[tuple[UUID, str]]],
        event: dict[str, Any] | None,
    ) -> None:
        """Mirror one batch of committed changes in one round trip: drop the leases of finished
        tasks, enqueue ready ones (enqueue.lua, 'new' mode), take removed ones out, publish the event.

        A non-transactional pipeline: each command still runs on its own, in this order, as the
        separate calls did. If Redis fails part-way, PostgreSQL already holds the truth and the
        reconciler repairs what is missing (the caller logs and carries on).
        """
        async with self.client.pipeline(transaction=False) as pipe:
            for queue, ids in finished.items():
                if ids:
                    pipe.zrem(keys.QueueKeys.of(queue).leases, *[str(t) for t in ids])
            for queue, members in ready.items():
                qk = keys.QueueKeys.of(queue)
                for start in range(0, len(members), _ENQUEUE_CHUNK):
                    chunk = members[start : start + _ENQUEUE_CHUNK]
                    pipe.evalsha(self._enqueue.sha, len(qk.all()), *qk.all(), "new", *chunk)
                if members and queue not in self._announced:
                    pipe.sadd(keys.QUEUES_KEY, queue)
            for queue, entries in removed.items():
                if entries:
                    qk = keys.QueueKeys.of(queue)
                    members = [m for _, m in entries]
                    pipe.zrem(qk.ready, *members)
                    pipe.zrem(qk.delayed, *members)
                    pipe.zrem(qk.leases, *[str(t) for t, _ in entries])
            if event is not None:
                pipe.publish(keys.EVENTS_CHANNEL, orjson.dumps(event))
            if pipe.command_stack:
                await self._execute(pipe)
        self._announced.update(q for q, members in ready.items() if members)

    async def _execute(self, pipe: Any) -> list[Any]:
        """Run a pipeline that calls our scripts by EVALSHA.

        redis-py's own script support asks Redis `SCRIPT EXISTS` before every such pipeline: one
        more round trip on the hot paths. Here a script Redis does not know (after a restart) is
        loaded and its call repeated, only then.
        """
        commands = [args for args, _ in pipe.command_stack]
        results = await pipe.execute(raise_on_error=False)
        for i, (args, result) in enumerate(zip(commands, results, strict=True)):
            if isinstance(result, NoScriptError):
                for script in (self._claim, self._enqueue):
                    await self.client.script_load(script.script)
                results[i] = await self.client.execute_command(*args)
            elif isinstance(result, Exception):
                raise result
        return results

    @_redis_errors_as_unavailable
    async def claim(self, queue: str, count: int, lease_ms: int) -> ClaimResult:
        qk = keys.QueueKeys.of(queue)
        out = await self._claim(keys=[qk.ready, qk.delayed, qk.leases], args=[count, lease_ms, _PROMOTE_LIMIT])
        return _claim_result(out)

    @_redis_errors_as_unavailable
    async def wait_and_claim(self, queue: str, timeout_s: float, count: int, lease_ms: int) -> ClaimResult:
        """Block until a wake-up arrives or the timeout passes, then claim: one round trip.

        The claim is pipelined behind the BLPOP, so Redis runs it the moment the BLPOP returns
        instead of after a reply to the worker and its next request.
        """
        qk = keys.QueueKeys.of(queue)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.blpop([qk.wake], timeout=max(timeout_s, 0.01))
            pipe.evalsha(self._claim.sha, 3, qk.ready, qk.delayed, qk.leases, count, lease_ms, _PROMOTE_LIMIT)
            _, out = await self._execute(pipe)
        return _claim_result(out)

    @_redis_errors_as_unavailable
    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until a wake-up arrives on one of the queues or the timeout passes; True if woken."""
        timeout_s = max(timeout_s, 0.01)
        wake_keys = [keys.QueueKeys.of(q).wake for q in queues]
        if len(wake_keys) == 1:
            return await self.client.blpop(wake_keys, timeout=timeout_s) is not None
        # One BLPOP over several hash tags is refused by Redis Cluster: wait on each queue at once.
        waits = [asyncio.ensure_future(self.client.blpop([k], timeout=timeout_s)) for k in wake_keys]
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return any(d.result() is not None for d in done)

    @_redis_errors_as_unavailable
    async def extend_leases(self, queue: str, task_ids: Iterable[UUID], deadline_ms: int) -> None:
        mapping = {str(t): deadline_ms for t in task_ids}
        if mapping:
            await self.client.zadd(keys.QueueKeys.of(queue).leases, mapping, xx=True)

    @_redis_errors_as_unavailable
    async def remove(self, queue: str, entries: Iterable[tuple[UUID, str]]) -> None:
        """Take tasks out of the queue entirely (cancelled): entries are (task id, member)."""
        entries = list(entries)
        if not entries:
            return
        qk = keys.QueueKeys.of(queue)
        members = [m for _, m in entries]
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(qk.ready, *members)
            pipe.zrem(qk.delayed, *members)
            pipe.zrem(qk.leases, *[str(t) for t, _ in entries])
            await pipe.execute()

    @_redis_errors_as_unavailable
    async def prune_leases(self, queue: str, older_than_ms: int) -> int:
        """Drop lease entries whose deadline passed long ago (their tasks were handled through Postgres)."""
        return int(await self.client.zremrangebyscore(keys.QueueKeys.of(queue).leases, "-inf", older_than_ms))

    @_redis_errors_as_unavailable
    async def known_queues(self) -> set[str]:
        return set(await self.client.smembers(keys.QUEUES_KEY))

    @_redis_errors_as_unavailable
    async def depth(self, queue: str) -> dict[str, int]:
        """Ready, delayed and leased counts of one queue."""
        qk = keys.QueueKeys.of(queue)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(qk.ready)
            pipe.zcard(qk.delayed)
            pipe.zcard(qk.leases)
            ready, delayed, leased = await pipe.execute()
        return {"ready": int(ready), "delayed": int(delayed), "leased": int(leased)}

    @_redis_errors_as_unavailable
    async def load(self, queue: str, horizon_ms: int) -> dict[str, int]:
        """Depth plus `due_soon`: delayed tasks whose time comes within `horizon_ms` (autoscaler pre-warm)."""
        qk = keys.QueueKeys.of(queue)
        now_s, now_us = await self.client.time()
        until = int(now_s) * 1000 + int(now_us) // 1000 + horizon_ms
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(qk.ready)
            pipe.zcard(qk.delayed)
            pipe.zcard(qk.leases)
            pipe.zcount(qk.delayed, "-inf", until)
            ready, delayed, leased, due_soon = await pipe.execute()
        return {"ready": int(ready), "delayed": int(delayed), "leased": int(leased), "due_soon": int(due_soon)}

    @_redis_errors_as_unavailable
    async def worker_states(self, worker_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Last heartbeat of each named worker (queues, concurrency, busy, seen_ms); absent if it expired."""
        if not worker_ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.hgetall(keys.worker_key(worker_id))
            states = await pipe.execute()
        return {w: dict(s) for w, s in zip(worker_ids, states, strict=True) if s}

    async def events(self, poll_s: float = 1.0) -> AsyncIterator[dict[str, Any]]:
        """Yield the notifications published on the events channel until cancelled.

        Notifications published while not subscribed are lost: callers repair from PostgreSQL.
        Raises `Unavailable` when the subscription breaks; subscribe again after a pause.
        """
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.EVENTS_CHANNEL)
            while True:
                # A bounded wait, not listen(): the client's socket timeout would end an idle listen().
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll_s)
                if message is not None and message.get("type") == "message":
                    yield orjson.loads(message["data"])
        except RedisError as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc
        finally:
            await pubsub.aclose()

    @_redis_errors_as_unavailable
    async def ensure_epoch(self, candidate: str) -> str:
        """Return the dataset's epoch, setting it to `candidate` if Redis has none (it lost its data)."""
        await self.client.set(keys.EPOCH_KEY, candidate, nx=True)
        return str(await self.client.get(keys.EPOCH_KEY))

    @_redis_errors_as_unavailable
    async def publish(self, event: dict[str, Any]) -> None:
        await self.client.publish(keys.EVENTS_CHANNEL, orjson.dumps(event))

    @_redis_errors_as_unavailable
    async def heartbeat_worker(self, worker_id: str, state: dict[str, str | int], ttl_s: int) -> None:
        key = keys.worker_key(worker_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=state)
            pipe.expire(key, ttl_s)
            await pipe.execute()

    @_redis_errors_as_unavailable
    async def forget_worker(self, worker_id: str) -> None:
        await self.client.delete(keys.worker_key(worker_id))


def _claim_result(out: list[Any]) -> ClaimResult:
    """claim.lua's reply: {now_ms, next_delayed_ms or -1, member, ...}."""
    next_delayed = int(out[1])
    return ClaimResult(
        members=[str(m) for m in out[2:]],
        redis_now_ms=int(out[0]),
        next_delayed_ms=None if next_delayed < 0 else next_delayed,
    )
