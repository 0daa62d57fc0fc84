"""`taskflow dev`: the whole system on this machine, on real PostgreSQL and Redis from wheels.

Uses TASKFLOW_POSTGRES_DSN / TASKFLOW_REDIS_ADDR when they are set, otherwise starts its own
servers in --data-dir. The API (with the reconciler) and the workers run as child processes;
Ctrl-C stops them, then the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from taskflow.localservers import PostgresServer, RedisServer, start_postgres, start_redis


def _wait_http(url: str, timeout: float, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit(f"taskflow dev: the API process exited with code {api.returncode}; see its log above")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"taskflow dev: the API did not answer at {url} within {timeout:.0f}s")


def _show_progress(url: str, file: Path, token: str | None) -> int:
    from taskflow.cli.main import load_submission
    from taskflow.client import AsyncClient

    async def go() -> int:
        async with AsyncClient(url, token=token) as tf:
            body = load_submission(file)
            if "steps" not in body:
                task = await tf.wait_task(await tf.enqueue_task(**body))
                print(f"task {task.id}: {task.status.value} result={task.result!r}")
                return 0 if task.status == "completed" else 1
            run_id = await tf.submit_dag(body)
            print(f"submitted {file} as DAG run {run_id}")
            last = ""
            started = time.monotonic()
            while True:
                run = await tf.get_dag(run_id)
                line = f"  {run.status.value:<9} " + " ".join(f"{s.step_id}={s.status.value}" for s in run.steps)
                if line != last:
                    print(f"[{time.monotonic() - started:6.2f}s]{line}")
                    last = line
                if run.finished_at is not None:
                    return 0 if run.status == "completed" else 1
                await asyncio.sleep(0.05)

    return asyncio.run(go())


def _dev_token(env: dict[str, str], data_dir: Path) -> str | None:
    """Unless the caller configured API auth, generate a token for this run (the API stays protected in dev).

    The token goes to <data-dir>/api-tokens (mode 0600) for the API process, to our own client, and into
    dev.env as TASKFLOW_API_TOKEN for the CLI in other shells. Returns the client's token (None: auth off).
    """
    if "TASKFLOW_AUTH_TOKENS_FILE" in env or env.get("TASKFLOW_AUTH_MODE", "tokens") != "tokens":
        return env.get("TASKFLOW_API_TOKEN") or None
    token = secrets.token_urlsafe(32)
    path = data_dir / "api-tokens"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"{token} taskflow-dev\n")
    env["TASKFLOW_AUTH_MODE"] = "tokens"
    env["TASKFLOW_AUTH_TOKENS_FILE"] = str(path)
    env["TASKFLOW_API_TOKEN"] = token
    return token


def run_dev(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pg: PostgresServer | None = None
    rs: RedisServer | None = None
    children: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    try:
        if "TASKFLOW_POSTGRES_DSN" not in env:
            pg = start_postgres(data_dir / "postgres")
            env["TASKFLOW_POSTGRES_DSN"] = pg.create_database("taskflow", exist_ok=True)
        if "TASKFLOW_REDIS_ADDR" not in env:
            rs = start_redis(data_dir / "redis")
            env["TASKFLOW_REDIS_ADDR"] = rs.addr
        token = _dev_token(env, data_dir)
        env["TASKFLOW_HTTP_PORT"] = str(args.port)
        env.setdefault("TASKFLOW_HTTP_HOST", "127.0.0.1")
        url = f"http://127.0.0.1:{args.port}"
        env_file = data_dir / "dev.env"
        env_file.write_text(
            "".join(f"export {k}={env[k]}\n" for k in ("TASKFLOW_POSTGRES_DSN", "TASKFLOW_REDIS_ADDR"))
            + f"export TASKFLOW_API_URL={url}\n"
            + (f"export TASKFLOW_API_TOKEN={token}\n" if token else "")
        )
        env_file.chmod(0o600)
        print(f"PostgreSQL: {env['TASKFLOW_POSTGRES_DSN']}\nRedis:      {env['TASKFLOW_REDIS_ADDR']}")
        me = [sys.executable, "-m", "taskflow", "--log-level", "WARNING"]
        children.append(subprocess.Popen([*me, "api"], env=env))
        for i in range(args.workers):  # started beside the API: their start-up overlaps its migrations
            children.append(subprocess.Popen([*me, "worker"], env={**env, "TASKFLOW_WORKER_ID": f"dev-worker-{i}"}))
        _wait_http(url + "/health", 60, children[0])
        print(f"API:        {url}   ({args.workers} workers; `source {env_file}` in another shell)")
        if args.submit:
            code = _show_progress(url, args.submit, token)
            if args.exit_when_done:
                return code
        print("Ctrl-C stops everything.")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()
        if rs is not None:
            rs.stop()
        if pg is not None:
            pg.stop()
