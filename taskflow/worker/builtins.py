"""Built-in task types for trying Taskflow out and for tests: noop, echo, sleep, fail."""

from __future__ import annotations

import asyncio
from typing import Any

from taskflow.worker.context import TaskContext
from taskflow.worker.registry import Registry, default_registry


class HandlerFailure(Exception):
    """The `fail` built-in failing on purpose."""


def register_builtins(registry: Registry) -> None:
    @registry.task("noop")
    async def noop(ctx: TaskContext, payload: Any) -> None:
        return None

    @registry.task("echo")
    async def echo(ctx: TaskContext, payload: Any) -> Any:
        return payload

    @registry.task("sleep")
    async def sleep(ctx: TaskContext, payload: Any) -> dict[str, float]:
        seconds = float(payload.get("seconds", 1.0)) if isinstance(payload, dict) else float(payload or 0)
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @registry.task("fail")
    async def fail(ctx: TaskContext, payload: Any) -> dict[str, int]:
        payload = payload if isinstance(payload, dict) else {}
        message = str(payload.get("message", "failing on purpose (built-in 'fail' task)"))
        until = payload.get("until_attempt")
        if until is None or ctx.attempt < int(until):
            raise HandlerFailure(message)
        return {"succeeded_on_attempt": ctx.attempt}


register_builtins(default_registry)
