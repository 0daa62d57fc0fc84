"""Test helpers: an in-process worker, and waiting on conditions without fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.worker.builtins import register_builtins
from taskflow.worker.registry import Registry
from taskflow.worker.runner import Worker

T = TypeVar("T")


def builtin_registry() -> Registry:
    registry = Registry()
    register_builtins(registry)
    return registry


@contextlib.asynccontextmanager
async def running_worker(
    engine: Engine, settings: Settings, registry: Registry | None = None, **overrides: object
) -> AsyncIterator[Worker]:
    worker_settings = settings.model_copy(update=overrides)
    worker = Worker(engine, worker_settings, registry or builtin_registry())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], *, timeout: float = 20.0, what: str = "condition"
) -> T:
    """Poll `probe` until `accept` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.05)
