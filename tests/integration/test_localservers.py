"""Real PostgreSQL and Redis servers from the project's wheels (taskflow.localservers).

CI runs these as root, which exercises the run-as-nobody path; pytest's tmp_path is out of
nobody's reach, which exercises the relocated cluster.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import redis

from taskflow.localservers import free_port, start_postgres, start_redis


@pytest.fixture
def cleanup() -> Iterator[ExitStack]:
    """Register each server's stop/destroy here right after starting it; runs even on failure."""
    with ExitStack() as stack:
        yield stack


def _redis(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def test_postgres_accepts_connections(tmp_path: Path, cleanup: ExitStack) -> None:
    server = start_postgres(tmp_path / "pg")
    cleanup.callback(server.destroy)

    assert server.dsn == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        encoding = conn.execute("show server_encoding").fetchone()
    assert encoding == ("UTF8",)
    assert server.is_running()


def test_postgres_keeps_committed_rows_across_immediate_stop(
    tmp_path: Path, cleanup: ExitStack
) -> None:
    server = start_postgres(tmp_path / "pg")
    cleanup.callback(server.destroy)
    with psycopg.connect(server.dsn) as conn:
        conn.execute("create table t (v text)")
        conn.execute("insert into t values ('committed')")

    server.stop(mode="immediate")
    assert not server.is_running()
    server.stop(mode="immediate")  # idempotent
    port = server.port
    server.start()

    assert server.port == port
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("select v from t").fetchall() == [("committed",)]


def test_postgres_create_database_from_template(tmp_path: Path, cleanup: ExitStack) -> None:
    server = start_postgres(tmp_path / "pg", fsync=False)
    cleanup.callback(server.destroy)

    template_dsn = server.create_database("tf template")
    with psycopg.connect(template_dsn) as conn:
        conn.execute("create table marker (id int)")
    copy_dsn = server.create_database("tf_copy", template="tf template")

    assert copy_dsn.endswith("/tf_copy")
    with psycopg.connect(copy_dsn) as conn:
        assert conn.execute("select current_database()").fetchone() == ("tf_copy",)
        assert conn.execute("select count(*) from marker").fetchone() == (0,)
    with pytest.raises(RuntimeError, match="already exists"):
        server.create_database("tf_copy")


def test_postgres_in_a_data_dir_everyone_can_reach(cleanup: ExitStack) -> None:
    # Unlike tmp_path, this directory is reachable by nobody: the cluster stays in place.
    data_dir = Path(tempfile.mkdtemp(prefix="taskflow-test-"))
    cleanup.callback(shutil.rmtree, data_dir)
    data_dir.chmod(0o755)
    server = start_postgres(data_dir, fsync=False)
    cleanup.callback(server.destroy)

    assert not (data_dir / "pgdata").is_symlink()
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_postgres_start_adopts_a_server_left_running(tmp_path: Path, cleanup: ExitStack) -> None:
    server = start_postgres(tmp_path / "pg", fsync=False)
    cleanup.callback(server.destroy)

    again = start_postgres(tmp_path / "pg", fsync=False)  # e.g. `taskflow dev` after a crash

    assert again.port == server.port
    with pytest.raises(RuntimeError, match=f"use port {server.port}"):
        start_postgres(tmp_path / "pg", port=free_port(), fsync=False)


def test_postgres_destroy_removes_the_cluster(tmp_path: Path, cleanup: ExitStack) -> None:
    server = start_postgres(tmp_path / "pg", fsync=False)
    cleanup.callback(server.destroy)
    pgdata = server.pgdata

    server.destroy()

    assert not server.is_running()
    assert not pgdata.exists()
    assert not os.path.lexists(tmp_path / "pg" / "pgdata")


def test_postgres_start_failure_shows_the_log(tmp_path: Path, cleanup: ExitStack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="(?s)did not start.*postgres.log.*another one"):
            server = start_postgres(tmp_path / "pg", port=port, fsync=False)
            cleanup.callback(server.destroy)
    # The cluster was created before the start failed; remove it (and its relocated copy).
    server = start_postgres(tmp_path / "pg", fsync=False)
    cleanup.callback(server.destroy)


def test_redis_answers_ping(tmp_path: Path, cleanup: ExitStack) -> None:
    server = start_redis(tmp_path / "redis")
    cleanup.callback(server.stop)

    assert server.addr == f"127.0.0.1:{server.port}"
    with _redis(server.port) as client:
        assert client.ping() is True
    server.stop()
    assert not server.is_running()
    server.stop()  # idempotent


def test_redis_without_persistence_forgets_after_kill(tmp_path: Path, cleanup: ExitStack) -> None:
    server = start_redis(tmp_path / "redis")
    cleanup.callback(server.stop)
    with _redis(server.port) as client:
        client.set("k", "v")

    server.kill()
    assert not server.is_running()
    server.start()

    with _redis(server.port) as client:
        assert client.get("k") is None
        assert client.ping() is True


def test_redis_appendfsync_always_keeps_a_key_across_kill(
    tmp_path: Path, cleanup: ExitStack
) -> None:
    server = start_redis(tmp_path / "redis", persistence=True, appendfsync="always")
    cleanup.callback(server.stop)
    with _redis(server.port) as client:
        client.set("k", "v")

    server.kill()
    server.start()

    with _redis(server.port) as client:
        assert client.get("k") == b"v"


def test_redis_start_failure_shows_the_log(tmp_path: Path, cleanup: ExitStack) -> None:
    first = start_redis(tmp_path / "first")
    cleanup.callback(first.stop)

    with pytest.raises(RuntimeError, match="(?s)exited during start-up.*redis.log"):
        second = start_redis(tmp_path / "second", port=first.port)
        cleanup.callback(second.stop)


def test_free_port_is_bindable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
