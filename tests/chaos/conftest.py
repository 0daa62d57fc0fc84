"""Fixtures of the fault-injection suite: a dedicated Redis and a recorded database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskflow.localservers import RedisServer, start_redis
from tests.chaos.harness import install_recorder


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, without persistence (killing it loses everything it held)."""
    server = start_redis(tmp_path / "redis", persistence=False)
    yield server
    server.kill()


@pytest.fixture
def chaos_db(db_dsn: str) -> str:
    """A fresh migrated database on the session PostgreSQL, with the transition recorder installed."""
    install_recorder(db_dsn)
    return db_dsn
