"""Running a worker process: import handler modules, connect, work until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal

from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.worker.registry import Registry, default_registry
from taskflow.worker.runner import Worker

log = logging.getLogger(__name__)


def import_handler_modules(modules: list[str]) -> None:
    import taskflow.worker.builtins  # noqa: F401  (registers noop, echo, sleep, fail)

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise SystemExit(
                f"cannot import handler module {name!r}: {exc}. Check --import / TASKFLOW_IMPORTS and PYTHONPATH."
            ) from exc


async def serve_worker(settings: Settings, registry: Registry = default_registry) -> None:
    import_handler_modules(settings.imports)
    engine = await Engine.connect(settings, pool_size=min(settings.postgres_pool_size, 4))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Worker(engine, settings, registry).run(stop)
    finally:
        await engine.close()
