"""What every benchmark handler calls: record (id, enqueue time, start, end, pid) for the driver.

Handlers of every system call `record(payload, start)`. Records go to a Redis list on a
database of their own (`BENCH_RECORD_URL`), pushed by one background thread per process so
that a handler pays a queue.put, not a round trip: when work is flowing the thread pushes
hundreds per RPUSH; on an idle system it pushes each record at once, so round trips are not
delayed. Timestamps are `time.monotonic()`, one clock for every process on a Linux machine.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

import redis

DONE_KEY = "bench:done"
COUNTER_KEY = "bench:fanin"

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None}


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["BENCH_RECORD_URL"])


def _pusher(q: queue.SimpleQueue[str], client: redis.Redis) -> None:
    while True:
        batch = [q.get()]
        while True:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
            if len(batch) >= 2000:
                break
        client.rpush(DONE_KEY, *batch)


def _queue() -> queue.SimpleQueue[str]:
    pid = os.getpid()
    if _state["pid"] != pid:  # first use in this process (or after a fork): own thread, own client
        with _lock:
            if _state["pid"] != pid:
                q: queue.SimpleQueue[str] = queue.SimpleQueue()
                threading.Thread(target=_pusher, args=(q, _client()), daemon=True, name="bench-record").start()
                _state["q"] = q
                _state["pid"] = pid
    return _state["q"]


def record(payload: dict[str, Any], start: float) -> None:
    """Record one execution: `payload` carries "id" (unique per task) and "t" (enqueue time)."""
    end = time.monotonic()
    _queue().put(f"{payload['id']} {payload['t']!r} {start!r} {end!r} {os.getpid()}")


_counter: dict[str, Any] = {}


def fan_in() -> int:
    """INCR the fan-in counter (peers' emulated 1→N→1 join); returns the new count."""
    pid = os.getpid()
    if _counter.get("pid") != pid:
        _counter["client"] = _client()
        _counter["pid"] = pid
    return int(_counter["client"].incr(COUNTER_KEY))
