"""The seed's REST contract, over real HTTP against real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from taskflow.api.app import create_app
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from tests.helpers import eventually, running_worker


TOKEN = "contract-test-token-0123456789"


@pytest.fixture
async def api(engine: Engine, settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} contract-tests\n")
    server = TestServer(create_app(engine, settings.model_copy(update={"auth_tokens_file": tokens})))
    await server.start_server()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session, str(server.make_url(""))
    await server.close()


async def test_health(api: tuple[aiohttp.ClientSession, str]) -> None:
    session, url = api
    async with session.get(url + "/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_enqueue_and_get_task(api: tuple[aiohttp.ClientSession, str], engine: Engine, settings: Settings) -> None:
    session, url = api
    body = {"type": "echo", "payload": {"key": "value"}, "priority": 1, "max_retries": 2}
    async with session.post(url + "/api/v1/tasks", json=body) as resp:
        assert resp.status == 202
        data = await resp.json()
    assert list(data) == ["task_id"]
    task_id = UUID(data["task_id"])
    async with running_worker(engine, settings):
        await eventually(lambda: engine.get_task(task_id), lambda t: t.status == "completed")
    async with session.get(f"{url}/api/v1/tasks/{task_id}") as resp:
        assert resp.status == 200
        task = await resp.json()
    for field in ("id", "type", "payload", "status", "priority", "scheduled_at", "retry_count", "max_retries",
                  "error_message", "created_at"):
        assert field in task
    assert task["status"] == "completed" and task["payload"] == {"key": "value"} and task["max_retries"] == 2
    assert task["attempts"][0]["outcome"] == "completed"


async def test_dag_submit_and_view(api: tuple[aiohttp.ClientSession, str]) -> None:
    session, url = api
    body = {"steps": [{"id": "a", "type": "noop", "payload": "e30="}, {"id": "b", "type": "noop", "payload": {}}],
            "edges": [{"from": "a", "to": "b"}]}
    async with session.post(url + "/api/v1/dags", json=body) as resp:
        assert resp.status == 202
        run_id = (await resp.json())["dag_run_id"]
    async with session.get(f"{url}/api/v1/dags/{run_id}") as resp:
        run = await resp.json()
    assert run["status"] == "pending" and {s["step_id"]: s["status"] for s in run["steps"]} == {"a": "queued", "b": "pending"}


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}], "edges": [{"from": "a", "to": "a"}]}, "itself"),
        ("/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}], "edges": [{"from": "a", "to": "x"}]}, "unknown step"),
        ("/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}, {"id": "a", "type": "noop"}]}, "twice"),
        ("/api/v1/dags", {"steps": []}, "at least one step"),
        ("/api/v1/tasks", {"payload": {}}, "type"),
        ("/api/v1/tasks", {"type": "noop", "max_retries": -1}, "max_retries"),
    ],
)
async def test_bad_input_is_400_and_writes_nothing(
    api: tuple[aiohttp.ClientSession, str], engine: Engine, path: str, body: dict, needle: str
) -> None:
    session, url = api
    async with session.post(url + path, json=body) as resp:
        assert resp.status == 400
        error = await resp.json()
    assert needle in error["error"]
    assert (await engine.list_tasks()).tasks == []


async def test_malformed_json_and_ids(api: tuple[aiohttp.ClientSession, str]) -> None:
    session, url = api
    async with session.post(url + "/api/v1/tasks", data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]
    async with session.get(url + "/api/v1/tasks/not-a-uuid") as resp:
        assert resp.status == 400 and "error" in await resp.json()
    async with session.get(url + "/api/v1/tasks/00000000-0000-0000-0000-000000000000") as resp:
        assert resp.status == 404 and await resp.json() == {"error": "task not found"}
