"""Async client; errors from the API come back as Taskflow errors carrying the HTTP status."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import orjson

from taskflow.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, TaskflowError, Unavailable
from taskflow.core.models import DagRunView, TaskPage, TaskView
from taskflow.core.status import TERMINAL_DAG_STATUSES, TERMINAL_TASK_STATUSES


class ApiError(TaskflowError):
    """An error answer of the API that maps to no more specific class."""


class Unauthenticated(TaskflowError):
    """The API wants a valid bearer token (HTTP 401): set TASKFLOW_API_TOKEN or TASKFLOW_API_TOKEN_FILE."""


_BY_STATUS: dict[int, type[TaskflowError]] = {
    400: InvalidInput, 401: Unauthenticated, 404: NotFound, 409: Conflict, 413: PayloadTooLarge, 422: InvalidInput,
    503: Unavailable,
}


def _error(status: int, body: bytes) -> TaskflowError:
    try:
        data = orjson.loads(body)
        message, details = str(data.get("error", body[:200])), data.get("details")
    except (orjson.JSONDecodeError, AttributeError):
        message, details = body[:200].decode(errors="replace") or f"HTTP {status}", None
    error = _BY_STATUS.get(status, ApiError)(message, details=details)
    error.status = status  # type: ignore[attr-defined]
    return error


def token_from_environment() -> str | None:
    """`TASKFLOW_API_TOKEN`, else the first token in the file named by `TASKFLOW_API_TOKEN_FILE`, else None."""
    token = os.environ.get("TASKFLOW_API_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("TASKFLOW_API_TOKEN_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read TASKFLOW_API_TOKEN_FILE {path}: {exc.strerror}") from None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line.split()[0]  # the same format as the server's token file: `<token> [name]`
    raise InvalidInput(f"TASKFLOW_API_TOKEN_FILE {path} holds no token")


class AsyncClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8080", *, token: str | None = None, timeout: float = 30.0):
        """`token` is sent as `Authorization: Bearer`; when not given it comes from `token_from_environment()`."""
        self.base_url = base_url.rstrip("/")
        token = token if token is not None else token_from_environment()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._session.request(
                method, self.base_url + path, data=data, params=params, headers=headers
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return orjson.loads(raw) if raw else None
        except aiohttp.ClientConnectionError as exc:
            raise Unavailable(f"cannot reach the Taskflow API at {self.base_url}: {exc}") from exc

    # --- the seed's calls ---------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/health")

    async def enqueue_task(self, type: str, payload: Any = None, **options: Any) -> UUID:
        """Options: priority, scheduled_at (RFC 3339 str), max_retries, queue, idempotency_key."""
        body = {"type": type, "payload": {} if payload is None else payload, **options}
        return UUID((await self._request("POST", "/api/v1/tasks", body))["task_id"])

    async def enqueue_tasks(self, tasks: list[dict[str, Any]]) -> list[UUID]:
        data = await self._request("POST", "/api/v1/tasks/batch", {"tasks": tasks})
        return [UUID(i) for i in data["task_ids"]]

    async def submit_dag(self, spec: dict[str, Any]) -> UUID:
        """`spec` is `{"steps": [...], "edges": [...]}`, the same shape as a TaskDag's spec."""
        return UUID((await self._request("POST", "/api/v1/dags", spec))["dag_run_id"])

    async def get_task(self, task_id: UUID | str) -> TaskView:
        return TaskView.model_validate(await self._request("GET", f"/api/v1/tasks/{task_id}"))

    # --- beyond the seed ----------------------------------------------------------------------------

    async def list_tasks(self, **filters: str | int) -> TaskPage:
        params = {k: str(v) for k, v in filters.items() if v is not None}
        return TaskPage.model_validate(await self._request("GET", "/api/v1/tasks", params=params))

    async def get_dag(self, run_id: UUID | str) -> DagRunView:
        return DagRunView.model_validate(await self._request("GET", f"/api/v1/dags/{run_id}"))

    async def cancel_task(self, task_id: UUID | str) -> TaskView:
        return TaskView.model_validate(await self._request("POST", f"/api/v1/tasks/{task_id}/cancel"))

    async def cancel_dag(self, run_id: UUID | str) -> DagRunView:
        return DagRunView.model_validate(await self._request("POST", f"/api/v1/dags/{run_id}/cancel"))

    async def list_dlq(self, *, limit: int = 100, cursor: str | None = None) -> TaskPage:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        return TaskPage.model_validate(await self._request("GET", "/api/v1/dlq", params=params))

    async def retry_dlq(self, task_id: UUID | str) -> TaskView:
        return TaskView.model_validate(await self._request("POST", f"/api/v1/dlq/{task_id}/retry"))

    async def wait_task(self, task_id: UUID | str, *, timeout: float = 60.0, interval: float = 0.1) -> TaskView:
        """Poll until the task is completed, dead-lettered or cancelled."""
        deadline = time.monotonic() + timeout
        while True:
            task = await self.get_task(task_id)
            if task.status in TERMINAL_TASK_STATUSES:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} is still {task.status.value} after {timeout}s")
            await asyncio.sleep(interval)

    async def wait_dag(self, run_id: UUID | str, *, timeout: float = 300.0, interval: float = 0.2) -> DagRunView:
        """Poll until the run and all its steps have finished."""
        deadline = time.monotonic() + timeout
        while True:
            run = await self.get_dag(run_id)
            if run.status in TERMINAL_DAG_STATUSES and run.finished_at is not None:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG run {run_id} is still {run.status.value} after {timeout}s")
            await asyncio.sleep(interval)
