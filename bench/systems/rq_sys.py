"""RQ: 2 `rq worker -w rq.worker.SimpleWorker` processes (RQ has no in-process concurrency; the
default Worker forks a child per job, SimpleWorker runs jobs in the worker process — the faster
documented choice for short jobs). result_ttl=0: no results kept. Bulk: Queue.enqueue_many."""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from typing import Any

from redis import Redis
from rq import Queue

from bench.record import fan_in, record
from bench.systems.base import QUEUE, Env, System

_queue: Queue | None = None


def _q() -> Queue:
    global _queue
    if _queue is None:
        _queue = Queue(QUEUE, connection=Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    return _queue


def noop(payload: dict[str, Any]) -> None:
    record(payload, time.monotonic())


def chain(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    i, n = payload["i"], payload["n"]
    if i + 1 < n:
        _q().enqueue(chain, {"id": f"c{i + 1}", "t": payload["t"], "i": i + 1, "n": n}, result_ttl=0)
    record(payload, start)


def fan_root(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    q = _q()
    jobs = [Queue.prepare_data(fan_mid, ({"id": f"m{i}", "t": payload["t"], "n": payload["n"]},), result_ttl=0)
            for i in range(payload["n"])]
    for k in range(0, len(jobs), 1000):
        q.enqueue_many(jobs[k : k + 1000])
    record(payload, start)


def fan_mid(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    if fan_in() == payload["n"]:
        _q().enqueue(noop, {"id": "s", "t": payload["t"]}, result_ttl=0)
    record(payload, start)


class Rq(System):
    name = "rq"
    notes = {
        "enqueue_one": "Queue.enqueue",
        "enqueue_bulk": "Queue.enqueue_many, 1,000 per call",
        "chain": "emulated: each handler enqueues the next",
        "fanout": "emulated: root enqueue_many N, INCR counter, last enqueues the sink",
    }

    def worker_commands(self, env: Env) -> list[list[str]]:
        cmd = [env.python, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker", "-u", env.redis_url,
               "--logging_level", "WARNING", "--disable-job-desc-logging", QUEUE]
        return [cmd, cmd]

    async def enqueue_one(self, payload: dict[str, Any]) -> None:
        _q().enqueue(noop, payload, result_ttl=0)

    async def enqueue_bulk(self, payloads: list[dict[str, Any]]) -> None:
        q = _q()
        for k in range(0, len(payloads), 1000):
            q.enqueue_many([Queue.prepare_data(noop, (p,), result_ttl=0) for p in payloads[k : k + 1000]])

    async def start_chain(self, n: int, t: float) -> None:
        _q().enqueue(chain, {"id": "c0", "t": t, "i": 0, "n": n}, result_ttl=0)

    async def start_fanout(self, n: int, t: float) -> None:
        _q().enqueue(fan_root, {"id": "r", "t": t, "n": n}, result_ttl=0)

    def version(self) -> str:
        return version("rq")
