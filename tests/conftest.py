"""Session-wide real servers: PostgreSQL and Redis from the project's own dependencies.

Every test that asks for `settings` gets a fresh database cloned from a migrated template and
a flushed Redis, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.localservers import PostgresServer, RedisServer, start_postgres, start_redis
from taskflow.store.store import Store

TEMPLATE_DB = "taskflow_template"


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="taskflow-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(servers_dir: Path) -> Iterator[PostgresServer]:
    server = start_postgres(servers_dir / "pg", fsync=False)
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server(servers_dir: Path) -> Iterator[RedisServer]:
    server = start_redis(servers_dir / "redis")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_dsn(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_database(TEMPLATE_DB)

    async def migrate() -> None:
        store = await Store.open(dsn, max_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(migrate())
    return dsn


@pytest.fixture
def db_dsn(pg_server: PostgresServer, template_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    yield dsn
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_addr(redis_server: RedisServer) -> str:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    client.script_flush()
    client.close()
    return redis_server.addr


@pytest.fixture
def settings(db_dsn: str, redis_addr: str) -> Settings:
    return Settings(
        postgres_dsn=db_dsn,
        redis_addr=redis_addr,
        worker_id=f"test-{os.getpid()}",
        lock_ttl=3.0,
        poll_interval=0.05,
        backoff_base=0.05,
        backoff_cap=0.2,
        reconcile_interval=0.2,
        requeue_grace=0.5,
        full_resync_interval=2.0,
        shutdown_grace=2.0,
        concurrency=8,
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    engine = await Engine.connect(settings, pool_size=4)
    yield engine
    await engine.close()
