"""Real worker processes, really killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from taskflow.core.models import TaskSubmission
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.engine.reconciler import Reconciler
from tests.helpers import eventually


def _worker_env(settings: Settings, worker_id: str, **extra_env: str) -> dict[str, str]:
    return {
        **os.environ,
        "TASKFLOW_POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "TASKFLOW_REDIS_ADDR": settings.redis_addr,
        "TASKFLOW_WORKER_ID": worker_id,
        "TASKFLOW_LOCK_TTL": "1s",
        "TASKFLOW_POLL_INTERVAL": "50ms",
        **extra_env,
    }


def _worker(settings: Settings, worker_id: str, **extra_env: str) -> subprocess.Popen[bytes]:
    env = _worker_env(settings, worker_id, **extra_env)
    return subprocess.Popen([sys.executable, "-m", "taskflow", "--log-level", "WARNING", "worker"], env=env)


async def test_sigkilled_worker_task_is_reclaimed_and_completes_once(engine: Engine, settings: Settings) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="sleep", payload={"seconds": 1.5}, max_retries=3))
    doomed = _worker(settings, "doomed")
    try:
        await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "running", what="the task to start")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    survivor = _worker(settings, "survivor")
    reconciler = Reconciler(engine)
    try:
        async def probe():  # type: ignore[no-untyped-def]
            await reconciler.tick()
            return await engine.get_task(task_id)

        task = await eventually(probe, lambda t: t.status == "completed", timeout=30, what="reclaim and completion")
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(20) == 0
    outcomes = [(a.worker_id, a.outcome) for a in task.attempts]
    assert outcomes == [("doomed", "lease_expired"), ("survivor", "completed")]
    assert task.retry_count == 1


async def test_sigterm_hands_back_unfinished_tasks(engine: Engine, settings: Settings) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="sleep", payload={"seconds": 30}))
    worker = _worker(settings, "leaving", TASKFLOW_SHUTDOWN_GRACE="0.5")
    try:
        await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "running", what="the task to start")
    finally:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    task = await engine.get_task(task_id)
    assert task.status == "queued" and task.retry_count == 0
    assert [a.outcome for a in task.attempts] == ["handed_back"]


async def test_worker_paused_past_its_lease_cannot_record_late_completion(
    engine: Engine, settings: Settings
) -> None:
    task_id = await engine.submit_task(TaskSubmission(type="sleep", payload={"seconds": 2.0}, max_retries=3))
    paused = subprocess.Popen(
        [sys.executable, "-m", "taskflow", "--log-level", "INFO", "worker"],
        env=_worker_env(settings, "paused"),
        stderr=subprocess.PIPE,
    )
    survivor: subprocess.Popen[bytes] | None = None
    try:
        await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "running", what="the task to start")
        paused.send_signal(signal.SIGSTOP)
        survivor = _worker(settings, "survivor")
        reconciler = Reconciler(engine)

        async def probe():  # type: ignore[no-untyped-def]
            await reconciler.tick()
            return await engine.get_task(task_id)

        done = await eventually(probe, lambda t: t.status == "completed", timeout=30, what="reclaim and completion")
        paused.send_signal(signal.SIGCONT)
        paused.send_signal(signal.SIGTERM)
        _, stderr = paused.communicate(timeout=30)
    finally:
        for process in (paused, survivor):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                process.wait(20)
    log = stderr.decode()
    assert f"lost the lease of task {task_id}" in log or ", 1 refused" in log, log
    after = await engine.get_task(task_id)
    assert after.status == "completed" and after.finished_at == done.finished_at
    assert [(a.worker_id, a.outcome) for a in after.attempts] == [("paused", "lease_expired"), ("survivor", "completed")]
