"""The fault proxy itself: forwarding, cut, black hole, delay, and the cut after COMMIT on a real PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.chaos.proxy import ProxyThread


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    server.close()


def _roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_forwards_and_cuts(echo_port: int) -> None:
    with ProxyThread("127.0.0.1", echo_port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            assert _roundtrip(sock, b"hello") == b"hello"
            assert proxy.cut_all() == 1
            sock.settimeout(5)
            with _eof_or_reset():
                assert sock.recv(10) == b""
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            assert _roundtrip(sock, b"again") == b"again"
        assert proxy.stats.cuts == 1 and proxy.stats.connections == 2


class _eof_or_reset:
    """recv after a cut returns b'' (FIN) or raises ECONNRESET (RST): both mean cut."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is None or (isinstance(exc_type, type) and issubclass(exc_type, ConnectionResetError))


def test_blackhole_holds_traffic_until_healed(echo_port: int) -> None:
    with ProxyThread("127.0.0.1", echo_port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as old:
            assert _roundtrip(old, b"x") == b"x"
            proxy.blackhole(True)
            new = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            for sock in (old, new):
                sock.settimeout(0.3)
                sock.sendall(b"ping")
                with pytest.raises(TimeoutError):
                    sock.recv(10)
            proxy.blackhole(False)
            for sock in (old, new):
                sock.settimeout(5)
                assert sock.recv(10) == b"ping"
            new.close()


def test_delay_holds_each_chunk(echo_port: int) -> None:
    with ProxyThread("127.0.0.1", echo_port) as proxy:
        proxy.delay(0.2)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            started = time.monotonic()
            assert _roundtrip(sock, b"slow") == b"slow"
            # Two hops (there and back), 0.2 s each: a lower bound only, never an upper one.
            assert time.monotonic() - started >= 0.4


@contextlib.contextmanager
def _pg_proxy(db_dsn: str) -> Iterator[tuple[ProxyThread, str]]:
    """A PostgreSQL-following proxy in front of the test database, and a DSN that goes through it."""
    parts = urlsplit(db_dsn)
    assert parts.hostname and parts.port
    with ProxyThread(parts.hostname, parts.port, postgres=True) as proxy:
        proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
        yield proxy, proxied + "?sslmode=disable&gssencmode=disable"


def test_cut_after_commit_commits_but_never_replies(db_dsn: str) -> None:
    with _pg_proxy(db_dsn) as (proxy, proxied):
        with psycopg.connect(db_dsn, autocommit=True) as direct:
            direct.execute("CREATE TABLE chaos_probe (n integer)")
        with psycopg.connect(proxied, autocommit=True) as conn:
            with conn.transaction():
                conn.execute("INSERT INTO chaos_probe VALUES (1)")
        proxy.cut_after_commit(probability=1.0, budget=1)
        with psycopg.connect(proxied, autocommit=True) as conn:
            with pytest.raises(psycopg.OperationalError):
                with conn.transaction():
                    conn.execute("INSERT INTO chaos_probe VALUES (2)")
        with psycopg.connect(proxied, autocommit=True) as conn:  # budget spent: no more cuts
            with conn.transaction():
                conn.execute("INSERT INTO chaos_probe VALUES (3)")
        with psycopg.connect(db_dsn) as direct:
            rows = [r[0] for r in direct.execute("SELECT n FROM chaos_probe ORDER BY n")]
        assert rows == [1, 2, 3], "the cut transaction must have committed"
        assert proxy.stats.commit_cuts == 1
        assert proxy.stats.commits_seen == 3


def test_cut_after_autocommitted_write_commits_but_never_replies(db_dsn: str) -> None:
    # Taskflow's hot writes are single statements in autocommit mode: no COMMIT is sent, the
    # server commits before its ReadyForQuery. Prepared statements (psycopg prepares a query
    # it has run a few times) carry no SQL in later executions; the proxy remembers it.
    with _pg_proxy(db_dsn) as (proxy, proxied):
        with psycopg.connect(db_dsn, autocommit=True) as direct:
            direct.execute("CREATE TABLE chaos_probe_auto (n integer)")
        with psycopg.connect(proxied, autocommit=True) as conn:
            conn.execute("INSERT INTO chaos_probe_auto VALUES (%s)", (1,), prepare=True)
            proxy.cut_after_commit(probability=1.0, budget=1)
            assert conn.execute("SELECT count(*) FROM chaos_probe_auto").fetchone() == (1,)  # reads pass
            with pytest.raises(psycopg.OperationalError):
                conn.execute("INSERT INTO chaos_probe_auto VALUES (%s)", (2,), prepare=True)
        with psycopg.connect(db_dsn) as direct:
            rows = [r[0] for r in direct.execute("SELECT n FROM chaos_probe_auto ORDER BY n")]
        assert rows == [1, 2], "the cut statement must have committed"
        assert proxy.stats.commit_cuts == 1
        assert proxy.stats.commits_seen == 2  # the two INSERTs; the SELECT commits nothing
