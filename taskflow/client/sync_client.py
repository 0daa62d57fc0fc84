"""Blocking client: every `AsyncClient` method, run on a private event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from taskflow.client.async_client import AsyncClient


class Client:
    """`Client(url).get_task(id)` etc.: the same methods as `AsyncClient`, without `await`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="taskflow-client", daemon=True)
        self._thread.start()
        self._async = AsyncClient(base_url, **options)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._async, name)
        if not callable(method) or name.startswith("_"):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop).result()

        return call

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._async.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
