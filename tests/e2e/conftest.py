"""Fixtures of the end-to-end tier: a real `taskflow api` process and a real worker process."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskflow.core.settings import Settings
from taskflow.localservers import free_port


def _server_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "TASKFLOW_POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "TASKFLOW_REDIS_ADDR": settings.redis_addr,
        "TASKFLOW_LOCK_TTL": "2s",
        "TASKFLOW_POLL_INTERVAL": "50ms",
        "TASKFLOW_BACKOFF_BASE": "0.05",
        "TASKFLOW_BACKOFF_CAP": "0.2",
        "TASKFLOW_RECONCILE_INTERVAL": "0.2",
        "TASKFLOW_SHUTDOWN_GRACE": "1",
    }


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the API process exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not become ready within {timeout}s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def _api_and_worker(settings: Settings, auth_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {**_server_env(settings), **auth_env}
    quiet = [sys.executable, "-m", "taskflow", "--log-level", "WARNING"]
    api = subprocess.Popen([*quiet, "api", "--port", str(port)], env=env)
    worker = subprocess.Popen([*quiet, "worker", "--concurrency", "4"], env={**env, "TASKFLOW_WORKER_ID": "e2e-worker"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, api)
        yield url
    finally:
        _stop(worker)
        _stop(api)


@pytest.fixture
def api_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def api_url(settings: Settings, api_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An API that requires a bearer token; CLI subprocesses get it from TASKFLOW_API_TOKEN."""
    tokens = tmp_path / "api-tokens"
    tokens.write_text(f"{api_token} e2e-tests\n")
    monkeypatch.setenv("TASKFLOW_API_TOKEN", api_token)
    auth_env = {"TASKFLOW_AUTH_MODE": "tokens", "TASKFLOW_AUTH_TOKENS_FILE": str(tokens)}
    with _api_and_worker(settings, auth_env) as url:
        yield url


@pytest.fixture
def open_api_url(settings: Settings) -> Iterator[str]:
    """An API with authentication explicitly turned off, as a trusted network (or `taskflow dev`) runs it."""
    with _api_and_worker(settings, {"TASKFLOW_AUTH_MODE": "none"}) as url:
        yield url
