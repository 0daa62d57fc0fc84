"""Regression: an unanswering Redis costs one socket timeout per call, not redis-py's default retry storm.

Found by the black-hole fault test: with redis-py's default retry policy (10 retries, timeouts
included, around the handshake and again around the command) one call to a black-holed Redis
blocked for minutes, freezing the worker's lease heartbeat and the reconciler.
"""

from __future__ import annotations

import asyncio

import pytest

from taskflow.core.errors import Unavailable
from taskflow.queue import RedisQueue, connect_redis


async def test_black_holed_redis_fails_once_without_retrying_timeouts() -> None:
    accepted = 0
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        held.append(writer)  # never answer

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect_redis(f"127.0.0.1:{port}")
    client.connection_pool.connection_kwargs["socket_timeout"] = 0.2  # keep the test short
    queue = RedisQueue(client)
    try:
        with pytest.raises(Unavailable):
            await queue.ping()
        assert accepted == 1, f"the client connected {accepted} times: timeouts must not be retried"
    finally:
        await queue.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
