"""A small asyncio TCP proxy that injects network faults between Taskflow processes and a server.

Processes connect to the proxy's port instead of PostgreSQL's or Redis's; the proxy forwards
bytes both ways and, on command, injects one of these faults:

- `cut_all()`: close every open connection at once (both sides), like a dropped link;
- `blackhole(True)`: forward nothing and answer nothing, on open and new connections alike,
  until `blackhole(False)`; bytes are held, not dropped, so a connection that outlives the
  black hole resumes intact (as TCP would after retransmission) and one whose client gave
  up is closed;
- `delay(seconds)`: hold every chunk this long before forwarding it;
- `cut_after_commit(probability, budget)` (PostgreSQL only): when a client commits -- it sends
  `COMMIT`, or a statement that writes outside a transaction block (autocommit: the statement
  is its own transaction, committed before the server's `ReadyForQuery`) -- let the server
  commit, then close the connection instead of delivering the reply, so the client cannot
  know whether its write committed.

The proxy runs on its own event loop in a daemon thread (`ProxyThread`) so the test code may
block (subprocess waits, sleeps) without stalling the traffic; the fault switches are plain
attributes read by the pumps, set from the test thread.

For the COMMIT cut, the proxy follows the PostgreSQL wire protocol (v3) just enough: the first
client message is untyped (length, code), every later message in both directions is a type
byte and a length. Each simple `Query` and each extended-protocol `Sync` gets exactly one
`ReadyForQuery` (which carries the transaction status); a statement "writes" if its SQL (sent
in `Parse`, or a prepared statement's earlier `Parse`) matches `_WRITES`. Use `sslmode=disable` and `gssencmode=disable` in DSNs that go through it:
an encrypted stream cannot be followed (the proxy then forwards it untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

_CHUNK = 65536
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_COMMIT_QUERIES = {b"COMMIT", b"COMMIT;", b"END", b"END;"}
# SQL that changes data, Taskflow's write functions included.
_WRITES = re.compile(rb"\b(insert|update|delete|copy)\b|\btaskflow_(complete|fail|cancel_tasks)\(", re.IGNORECASE)


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0  # connections closed by cut_all
    commits_seen: int = 0  # COMMITs and autocommitted writes
    commit_cuts: int = 0  # connections closed between a commit and its reply


class _PgFollower:
    """Frames one PostgreSQL connection's messages and decides where to cut after a commit."""

    def __init__(self, should_cut: Callable[[], bool]) -> None:
        self._should_cut = should_cut
        self._client_buf = b""
        self._server_buf = b""
        self._client_started = False  # past the untyped start-up messages
        self._server_raw_bytes = 0  # single-byte answers to SSL/GSS requests still expected
        self.opaque = False  # encrypted: cannot follow, forward as is
        self._idle = True  # no transaction block open, as of the server's last ReadyForQuery
        self._writes: dict[bytes, bool] = {}  # prepared statement name -> its SQL writes
        self._batch_writes = False  # an extended-protocol batch (up to Sync) binds a write
        self._replies: deque[bool] = deque()  # per ReadyForQuery still to come: swallow and cut?

    def from_client(self, data: bytes) -> None:
        if self.opaque:
            return
        self._client_buf += data
        while True:
            buf = self._client_buf
            if not self._client_started:
                if len(buf) < 8:
                    return
                length, code = struct.unpack("!II", buf[:8])
                if len(buf) < length:
                    return
                self._client_buf = buf[length:]
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    self._server_raw_bytes += 1
                else:
                    self._client_started = True
                continue
            if len(buf) < 5:
                return
            kind = buf[:1]
            (length,) = struct.unpack("!I", buf[1:5])
            if len(buf) < 1 + length:
                return
            body = buf[5 : 1 + length]
            self._client_buf = buf[1 + length :]
            self._client_message(kind, body)

    def _client_message(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":  # simple query: one ReadyForQuery follows
            sql = body.rstrip(b"\x00").strip()
            commits = sql.upper() in _COMMIT_QUERIES or (self._idle and bool(_WRITES.search(sql)))
            self._replies.append(commits and self._should_cut())
        elif kind == b"P":  # Parse: statement name, SQL, ...
            name, sql = body.split(b"\x00", 2)[:2]
            self._writes[name] = bool(_WRITES.search(sql))
        elif kind == b"B":  # Bind: portal name, statement name, ...
            statement = body.split(b"\x00", 2)[1]
            self._batch_writes |= self._writes.get(statement, False)
        elif kind == b"S":  # Sync: ends the batch, commits it when no transaction block is open
            commits = self._idle and self._batch_writes
            self._batch_writes = False
            self._replies.append(commits and self._should_cut())

    def from_server(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes to forward now, and whether to cut the connection after them."""
        if self.opaque:
            return data, False
        self._server_buf += data
        return self._scan_server()

    def _scan_server(self) -> tuple[bytes, bool]:
        out = bytearray()
        while True:
            buf = self._server_buf
            if self._server_raw_bytes:
                if not buf:
                    break
                answer = buf[:1]
                self._server_raw_bytes -= 1
                self._server_buf = buf[1:]
                out += answer
                if answer in (b"S", b"G"):  # encryption accepted: nothing more to follow
                    self.opaque = True
                    out += self._server_buf
                    self._server_buf = b""
                    break
                continue
            if len(buf) < 5:
                break
            kind = buf[:1]
            (length,) = struct.unpack("!I", buf[1:5])
            if len(buf) < 1 + length:
                break
            self._server_buf = buf[1 + length :]
            swallow = bool(self._replies) and self._replies[0]
            if kind == b"Z":  # ReadyForQuery: the batch is over (committed, if it was to commit)
                self._idle = buf[5:6] == b"I"
                if self._replies:
                    self._replies.popleft()
                if swallow:
                    return bytes(out), True  # the server committed; the client never hears of it
            if not swallow:
                out += buf[: 1 + length]
        return bytes(out), False


class _Conn:
    """One proxied connection: the client's side and, once connected, the server's."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.cut = False

    def abort(self) -> None:
        self.cut = True
        for writer in (self.client, self.upstream):
            if writer is not None and not writer.transport.is_closing():
                writer.transport.abort()


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1:`port` (0 = pick one) and forwards to `target_host`:`target_port`."""

    target_host: str
    target_port: int
    port: int = 0
    postgres: bool = False
    stats: ProxyStats = field(default_factory=ProxyStats)
    delay_s: float = 0.0
    _commit_cut_probability: float = 0.0
    _commit_cut_budget: int = 0
    _server: asyncio.base_events.Server | None = None
    _conns: set[_Conn] = field(default_factory=set)
    _healed: asyncio.Event | None = None
    _rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def start(self) -> None:
        self._healed = asyncio.Event()
        self._healed.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut_all(count=False)
        if self._server is not None:
            await self._server.wait_closed()

    # --- fault switches (call on the proxy's loop) -------------------------------------------------

    def cut_all(self, *, count: bool = True) -> int:
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        self._conns.clear()
        if count:
            self.stats.cuts += len(conns)
        return len(conns)

    def blackhole(self, on: bool) -> None:
        assert self._healed is not None
        if on:
            self._healed.clear()
        else:
            self._healed.set()

    def cut_after_commit(self, probability: float, budget: int) -> None:
        self._commit_cut_probability = probability
        self._commit_cut_budget = budget

    # --- forwarding --------------------------------------------------------------------------------

    def _take_commit_cut(self) -> bool:
        self.stats.commits_seen += 1
        if self._commit_cut_budget <= 0 or self._rng.random() >= self._commit_cut_probability:
            return False
        self._commit_cut_budget -= 1
        return True

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        conn = _Conn(client_w)
        self._conns.add(conn)
        try:
            assert self._healed is not None
            # A real black hole would not even answer the SYN; here the TCP connect succeeds
            # but nothing ever comes back, which clients see the same way: a timeout.
            while not self._healed.is_set() and not conn.cut:
                if client_r.at_eof() or client_w.is_closing():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._healed.wait(), 0.2)
            if conn.cut:
                return
            try:
                up_r, conn.upstream = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                return
            if conn.cut:  # cut while connecting
                return
            follower = _PgFollower(self._take_commit_cut) if self.postgres else None
            pumps = [
                asyncio.create_task(self._pump(client_r, conn.upstream, follower, to_server=True)),
                asyncio.create_task(self._pump(up_r, client_w, follower, to_server=False)),
            ]
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._conns.discard(conn)
            conn.abort()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, follower: _PgFollower | None, *, to_server: bool
    ) -> None:
        assert self._healed is not None
        while True:
            try:
                data = await src.read(_CHUNK)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            if not self._healed.is_set():
                await self._healed.wait()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            cut = False
            if follower is not None:
                if to_server:
                    follower.from_client(data)
                else:
                    data, cut = follower.from_server(data)
            try:
                if data:
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                return
            if cut:
                self.stats.commit_cuts += 1
                return


class ProxyThread:
    """A FaultProxy on its own event loop in a daemon thread; the methods are thread-safe."""

    def __init__(self, target_host: str, target_port: int, *, postgres: bool = False) -> None:
        self.proxy = FaultProxy(target_host, target_port, postgres=postgres)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        self._call(self.proxy.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    def _sync(self, fn: Callable[[], object]) -> object:
        async def run() -> object:
            return fn()

        return self._call(run())

    def cut_all(self) -> int:
        return int(self._sync(self.proxy.cut_all))  # type: ignore[call-overload]

    def blackhole(self, on: bool) -> None:
        self._sync(lambda: self.proxy.blackhole(on))

    def delay(self, seconds: float) -> None:
        self._sync(lambda: setattr(self.proxy, "delay_s", seconds))

    def cut_after_commit(self, probability: float, budget: int) -> None:
        self._sync(lambda: self.proxy.cut_after_commit(probability, budget))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
