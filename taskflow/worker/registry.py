"""Handler registration: `@taskflow.task("resize")` over `async def resize(ctx, payload)`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from taskflow.core.names import TASK_TYPE_PATTERN

Handler = Callable[[Any, Any], Awaitable[Any] | Any]
H = TypeVar("H", bound=Handler)


class Registry:
    """Task type name -> handler. Async handlers run on the event loop, sync ones in a thread pool."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def task(self, name: str) -> Callable[[H], H]:
        if not re.fullmatch(TASK_TYPE_PATTERN, name):
            raise ValueError(f"task type {name!r} must match {TASK_TYPE_PATTERN.pattern}")

        def register(handler: H) -> H:
            existing = self._handlers.get(name)
            if existing is not None and existing is not handler:
                raise ValueError(f"task type {name!r} is already registered to {existing.__qualname__}")
            self._handlers[name] = handler
            return handler

        return register

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)


default_registry = Registry()


def task(name: str) -> Callable[[H], H]:
    """Register a handler for tasks of type `name` in the default registry."""
    return default_registry.task(name)
