"""Dramatiq with its Redis broker: `dramatiq --processes 2 --threads 8` (its documented defaults are
one process per core and 8 threads). No result backend. Chain and fan-out are emulated by handlers
that enqueue the next message (Dramatiq's pipelines nest every later message inside the first)."""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.record import fan_in, record
from bench.systems.base import QUEUE, Env, System

THREADS = 8

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(payload: dict[str, Any]) -> None:
    record(payload, time.monotonic())


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def chain(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    i, n = payload["i"], payload["n"]
    if i + 1 < n:
        chain.send({"id": f"c{i + 1}", "t": payload["t"], "i": i + 1, "n": n})
    record(payload, start)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def fan_root(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    for i in range(payload["n"]):
        fan_mid.send({"id": f"m{i}", "t": payload["t"], "n": payload["n"]})
    record(payload, start)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def fan_mid(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    if fan_in() == payload["n"]:
        noop.send({"id": "s", "t": payload["t"]})
    record(payload, start)


class Dramatiq(System):
    name = "dramatiq"
    notes = {
        "enqueue_one": "actor.send",
        "enqueue_bulk": "actor.send in a loop (no bulk API)",
        "chain": "emulated: each handler sends the next",
        "fanout": "emulated: root sends N, INCR counter, last sends the sink",
    }

    def worker_commands(self, env: Env) -> list[list[str]]:
        return [[env.python, "-m", "dramatiq", "bench.systems.dramatiq_sys", "--processes", "2", "--threads", str(THREADS)]]

    async def enqueue_one(self, payload: dict[str, Any]) -> None:
        noop.send(payload)

    async def enqueue_bulk(self, payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            noop.send(p)

    async def start_chain(self, n: int, t: float) -> None:
        chain.send({"id": "c0", "t": t, "i": 0, "n": n})

    async def start_fanout(self, n: int, t: float) -> None:
        fan_root.send({"id": "r", "t": t, "n": n})

    def version(self) -> str:
        return version("dramatiq")
