"""arq: 2 `arq` worker processes with max_jobs=64 (asyncio), keep_result=0 (no results kept),
poll_delay=10 ms (arq has no blocking wake-up; its default poll is 0.5 s).
Bulk: concurrent enqueue_job calls, 1,000 at a time (arq has no bulk API)."""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import version
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from bench.record import fan_in, record
from bench.systems.base import QUEUE, Env, System

MAX_JOBS = 64


def _settings() -> RedisSettings:
    return RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


async def noop(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    record(payload, time.monotonic())


async def chain(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    start = time.monotonic()
    i, n = payload["i"], payload["n"]
    if i + 1 < n:
        await ctx["redis"].enqueue_job("chain", {"id": f"c{i + 1}", "t": payload["t"], "i": i + 1, "n": n}, _queue_name=QUEUE)
    record(payload, start)


async def fan_root(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    start = time.monotonic()
    n = payload["n"]
    for k in range(0, n, 100):
        await asyncio.gather(*(ctx["redis"].enqueue_job("fan_mid", {"id": f"m{i}", "t": payload["t"], "n": n}, _queue_name=QUEUE)
                               for i in range(k, min(n, k + 100))))
    record(payload, start)


async def fan_mid(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    start = time.monotonic()
    if fan_in() == payload["n"]:  # a sync INCR: one short round trip on the loop
        await ctx["redis"].enqueue_job("noop", {"id": "s", "t": payload["t"]}, _queue_name=QUEUE)
    record(payload, start)


class WorkerSettings:
    functions = [noop, chain, fan_root, fan_mid]
    redis_settings = _settings()
    queue_name = QUEUE
    max_jobs = MAX_JOBS
    keep_result = 0
    poll_delay = 0.01  # arq polls for new jobs (default every 0.5 s); 10 ms is fairer for latency
    log_results = False


class Arq(System):
    name = "arq"
    notes = {
        "enqueue_one": "ArqRedis.enqueue_job",
        "enqueue_bulk": "enqueue_job, 100 concurrent (no bulk API)",
        "chain": "emulated: each handler enqueues the next",
        "fanout": "emulated: root enqueues N, INCR counter, last enqueues the sink",
    }

    def worker_commands(self, env: Env) -> list[list[str]]:
        cmd = [env.python, "-m", "arq", "bench.systems.arq_sys.WorkerSettings"]
        return [cmd, cmd]

    async def open(self, env: Env) -> None:
        self.env = env
        self.pool = await create_pool(_settings(), default_queue_name=QUEUE)

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue_one(self, payload: dict[str, Any]) -> None:
        await self.pool.enqueue_job("noop", payload)

    async def enqueue_bulk(self, payloads: list[dict[str, Any]]) -> None:
        for k in range(0, len(payloads), 100):
            await asyncio.gather(*(self.pool.enqueue_job("noop", p) for p in payloads[k : k + 100]))

    async def start_chain(self, n: int, t: float) -> None:
        await self.pool.enqueue_job("chain", {"id": "c0", "t": t, "i": 0, "n": n})

    async def start_fanout(self, n: int, t: float) -> None:
        await self.pool.enqueue_job("fan_root", {"id": "r", "t": t, "n": n})

    def version(self) -> str:
        return version("arq")
