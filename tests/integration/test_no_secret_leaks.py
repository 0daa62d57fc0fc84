"""No DSN password, Redis password or bearer token in error answers or logs, even when the backends fail.

The engine reaches PostgreSQL and Redis through fault proxies (tests/chaos/proxy.py) with passwords in
its connection settings (PostgreSQL trusts local connections, so its password is carried but unused;
Redis has an ACL user with that password). Then both proxies go away and the API is asked everything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from taskflow.api.app import create_app
from taskflow.core.errors import Unavailable
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.queue import RedisQueue, connect_redis
from taskflow.store import Store
from tests.chaos.proxy import FaultProxy

PG_PASSWORD = "pg-S3cret-" + uuid.uuid4().hex[:8]
REDIS_PASSWORD = "redis-S3cret-" + uuid.uuid4().hex[:8]
TOKEN = "leak-test-token-" + uuid.uuid4().hex
SECRETS = (PG_PASSWORD, REDIS_PASSWORD, TOKEN)


def _with_password(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"postgres:{PG_PASSWORD}@127.0.0.1:{port}"))


@pytest.fixture
async def redis_user(settings: Settings) -> AsyncIterator[str]:
    name = f"leaktest{uuid.uuid4().hex[:6]}"
    host, _, port = settings.redis_addr.rpartition(":")
    admin = aioredis.Redis(host=host, port=int(port))
    await admin.execute_command("ACL", "SETUSER", name, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all")
    yield name
    await admin.execute_command("ACL", "DELUSER", name)
    await admin.aclose()


async def test_backend_failures_leak_no_secret(
    settings: Settings, redis_user: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pg_host_port = urlsplit(settings.postgres_dsn.get_secret_value()).port
    redis_port = int(settings.redis_addr.rpartition(":")[2])
    pg_proxy, redis_proxy = FaultProxy("127.0.0.1", pg_host_port or 5432), FaultProxy("127.0.0.1", redis_port)
    await pg_proxy.start()
    await redis_proxy.start()
    dsn = _with_password(settings.postgres_dsn.get_secret_value(), pg_proxy.port)
    redis_url = f"redis://{redis_user}:{REDIS_PASSWORD}@127.0.0.1:{redis_proxy.port}/0"
    secret_settings = settings.model_copy(update={"postgres_dsn": dsn, "redis_addr": redis_url,
                                                  "auth_tokens_file": tmp_path / "tokens"})
    (tmp_path / "tokens").write_text(f"{TOKEN} leak-test\n")
    # A short pool timeout, so that each failing request answers within seconds.
    engine = Engine(await Store.open(dsn, max_size=2, timeout=2), RedisQueue(connect_redis(redis_url)), secret_settings)
    server = TestServer(create_app(engine, secret_settings))
    await server.start_server()
    answers: list[str] = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            url = str(server.make_url("")).rstrip("/")
            async with session.post(url + "/api/v1/tasks", json={"type": "noop"}) as resp:
                assert resp.status == 202  # everything works through the proxies
                task_id = (await resp.json())["task_id"]

            await pg_proxy.close()
            await redis_proxy.close()
            calls = [
                ("POST", "/api/v1/tasks", {"type": "noop"}),
                ("POST", "/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}]}),
                ("GET", f"/api/v1/tasks/{task_id}", None),
                ("GET", "/api/v1/tasks", None),
                ("POST", f"/api/v1/tasks/{task_id}/cancel", None),
                ("GET", "/ready", None),
            ]
            for method, path, body in calls:
                async with session.request(method, url + path, json=body) as resp:
                    text = await resp.text()
                    answers.append(f"{resp.status} {text}")
                    assert resp.status == 503, (path, text)
            async with session.get(url + "/api/v1/tasks", headers={"Authorization": "Bearer " + TOKEN + "x"}) as resp:
                answers.append(await resp.text())
    finally:
        await server.close()
        await engine.close()
    for secret in SECRETS:
        assert not any(secret in answer for answer in answers), secret
        assert secret not in caplog.text, secret
    assert "unavailable" in caplog.text.lower()  # the failures were logged, just without secrets


async def test_connect_failure_message_has_no_password(settings: Settings) -> None:
    dsn = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:1/taskflow"
    with pytest.raises(Unavailable) as caught:
        await Store.open(dsn, max_size=1, timeout=1)
    assert PG_PASSWORD not in caught.value.message and "TASKFLOW_POSTGRES_DSN" in caught.value.message
    assert PG_PASSWORD not in repr(Settings(postgres_dsn=dsn, redis_password=REDIS_PASSWORD))
