"""Handlers for the fault-injection suite; they record every execution (the history's handler side).

Imported by worker processes (`taskflow worker --import tests.chaos.handlers`). Each execution
appends lines to `$TASKFLOW_CHAOS_LOG_DIR/<worker id>-<pid>.log`: one when the handler starts
and one when it ends (`ok` or `fail`), each with the task id, the fence, the attempt and the
worker id. Every line is one `os.write` on an O_APPEND descriptor, so a SIGKILL never leaves
half a line, and a line written is on its way to the file even if the process dies next.

`chaos.work` payload (all optional):
- `sleep`: seconds to take;
- `fail`: `"always"` to fail every attempt (the task must end in the DLQ), or a number n to
  fail while the attempt number is below n (deterministic by payload, not by chance).
The result carries the fence, so the checker can tell which execution's write was accepted.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from taskflow.worker.context import TaskContext
from taskflow.worker.registry import task

_fd: int | None = None


class ChaosFailure(Exception):
    """A failure the payload asked for."""


def _record(event: str, ctx: TaskContext) -> None:
    global _fd
    if _fd is None:
        directory = os.environ["TASKFLOW_CHAOS_LOG_DIR"]
        path = os.path.join(directory, f"{ctx.worker_id}-{os.getpid()}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{event}\t{ctx.task_id}\t{ctx.fence}\t{ctx.attempt}\t{ctx.worker_id}\n".encode())


@task("chaos.work")
async def work(ctx: TaskContext, payload: Any) -> dict[str, Any]:
    _record("start", ctx)
    payload = payload if isinstance(payload, dict) else {}
    seconds = float(payload.get("sleep", 0))
    if seconds:
        await asyncio.sleep(seconds)
    fail = payload.get("fail")
    if fail == "always" or (isinstance(fail, int) and ctx.attempt < fail):
        _record("fail", ctx)
        raise ChaosFailure(f"failing on purpose at attempt {ctx.attempt} (payload fail={fail!r})")
    _record("ok", ctx)
    return {"fence": ctx.fence, "worker": ctx.worker_id, "attempt": ctx.attempt}
