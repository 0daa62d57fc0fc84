"""Celery with the Redis broker, no result backend (task_ignore_result). Two rows: prefork
(`-P prefork -c 2`: two child processes) and threads (2 worker processes, `-P threads -c 8`).
Chain and fan-out are emulated like the other Redis queues (a native chord needs a result backend)."""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from typing import Any

from celery import Celery

from bench.record import fan_in, record
from bench.systems.base import QUEUE, Env, System

THREADS = 8

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=16,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)


@app.task(name="noop")
def noop(payload: dict[str, Any]) -> None:
    record(payload, time.monotonic())


@app.task(name="chain")
def chain(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    i, n = payload["i"], payload["n"]
    if i + 1 < n:
        chain.delay({"id": f"c{i + 1}", "t": payload["t"], "i": i + 1, "n": n})
    record(payload, start)


@app.task(name="fan_root")
def fan_root(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    with app.producer_or_acquire() as producer:
        for i in range(payload["n"]):
            fan_mid.apply_async(({"id": f"m{i}", "t": payload["t"], "n": payload["n"]},), producer=producer)
    record(payload, start)


@app.task(name="fan_mid")
def fan_mid(payload: dict[str, Any]) -> None:
    start = time.monotonic()
    if fan_in() == payload["n"]:
        noop.delay({"id": "s", "t": payload["t"]})
    record(payload, start)


class Celery_(System):
    notes = {
        "enqueue_one": "task.delay",
        "enqueue_bulk": "apply_async in a loop on one producer (no bulk API)",
        "chain": "emulated: each handler sends the next",
        "fanout": "emulated: root sends N, INCR counter, last sends the sink",
    }

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.name = f"celery-{pool}"

    def worker_commands(self, env: Env) -> list[list[str]]:
        base = [env.python, "-m", "celery", "-A", "bench.systems.celery_sys", "worker", "-Q", QUEUE, "-l", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]
        if self.pool == "prefork":
            return [[*base, "-P", "prefork", "-c", "2", "-n", "w1@%h"]]
        return [[*base, "-P", "threads", "-c", str(THREADS), "-n", f"w{i}@%h"] for i in (1, 2)]

    async def open(self, env: Env) -> None:
        self.env = env
        self._producer_cm = app.producer_or_acquire()
        self.producer = self._producer_cm.__enter__()

    async def close(self) -> None:
        self._producer_cm.__exit__(None, None, None)

    async def enqueue_one(self, payload: dict[str, Any]) -> None:
        noop.delay(payload)

    async def enqueue_bulk(self, payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            noop.apply_async((p,), producer=self.producer)

    async def start_chain(self, n: int, t: float) -> None:
        chain.delay({"id": "c0", "t": t, "i": 0, "n": n})

    async def start_fanout(self, n: int, t: float) -> None:
        fan_root.delay({"id": "r", "t": t, "n": n})

    def version(self) -> str:
        return version("celery")
