"""Every input limit answers with a clear 400/413 and writes nothing (PostgreSQL rows, Redis keys)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from taskflow.api.app import create_app
from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagSubmission, TaskSubmission
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from tests.writes import written

LIMITS = {"auth_mode": "none", "max_body_bytes": 64 * 1024, "max_payload_bytes": 2048, "max_dag_steps": 5,
          "max_dag_edges": 4, "max_json_depth": 16}


def nested(depth: int) -> Any:
    """A payload whose request body nests `depth` levels (the body object and the payload count)."""
    value: Any = 1
    for i in range(depth - 1):
        value = [value] if i % 2 else {"k": value}
    return value


def steps(n: int) -> list[dict[str, str]]:
    return [{"id": f"s{i}", "type": "noop"} for i in range(n)]


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Engine]:
    """An engine (and so an API) with small limits; the size limits live in the engine's settings."""
    engine = await Engine.connect(settings.model_copy(update=LIMITS), pool_size=2)
    yield engine
    await engine.close()


@pytest.fixture
async def api(limited: Engine) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    server = TestServer(create_app(limited, limited.settings))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield session, str(server.make_url(""))
    await server.close()


def task(**fields: Any) -> dict[str, Any]:
    return {"type": "noop", **fields}


SOON = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
FAR = (datetime.now(UTC) + timedelta(days=400)).isoformat()

REJECTED: list[tuple[str, str, Any, int, str]] = [
    # (id, path, body, status, words the error must contain)
    ("body-size", "/api/v1/tasks", task(payload="x" * 70_000), 413, "too large"),
    ("payload-size", "/api/v1/tasks", task(payload="x" * 3000), 413, "TASKFLOW_MAX_PAYLOAD_BYTES"),
    ("payload-size-in-batch", "/api/v1/tasks/batch", {"tasks": [task(), task(payload="x" * 3000)]}, 413, "task 1"),
    ("payload-size-in-dag", "/api/v1/dags", {"steps": [{"id": "a", "type": "noop", "payload": "x" * 3000}]}, 413,
     "step 'a'"),
    ("depth", "/api/v1/tasks", task(payload=nested(17)), 400, "TASKFLOW_MAX_JSON_DEPTH"),
    ("depth-beyond-parser", "/api/v1/tasks", None, 400, "TASKFLOW_MAX_JSON_DEPTH"),  # body built below
    ("dag-steps", "/api/v1/dags", {"steps": steps(6)}, 400, "at most 5 steps"),
    ("dag-edges", "/api/v1/dags", {"steps": steps(5), "edges": [{"from": "s0", "to": f"s{i}"} for i in range(1, 5)]
                                   + [{"from": "s1", "to": "s2"}]}, 400, "at most 4 edges"),
    ("step-id", "/api/v1/dags", {"steps": [{"id": "a b", "type": "noop"}]}, 400, "steps.0.id"),
    ("step-id-length", "/api/v1/dags", {"steps": [{"id": "a" * 64, "type": "noop"}]}, 400, "steps.0.id"),
    ("edge-end", "/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}], "edges": [{"from": "a", "to": "x" * 64}]},
     400, "edges.0.to"),
    ("queue-upper", "/api/v1/tasks", task(queue="Default"), 400, "queue"),
    ("queue-key-injection", "/api/v1/tasks", task(queue="a}:{b"), 400, "queue"),
    ("queue-length", "/api/v1/tasks", task(queue="q" * 64), 400, "queue"),
    ("type", "/api/v1/tasks", task(type="no spaces"), 400, "type"),
    ("type-empty", "/api/v1/tasks", task(type=""), 400, "type"),
    ("priority-high", "/api/v1/tasks", task(priority=1_000_001), 400, "priority"),
    ("priority-low", "/api/v1/tasks", task(priority=-1_000_001), 400, "priority"),
    ("priority-float", "/api/v1/tasks", task(priority=1.5), 400, "priority"),
    ("max-retries-high", "/api/v1/tasks", task(max_retries=101), 400, "max_retries"),
    ("max-retries-negative", "/api/v1/dags", {"steps": [{"id": "a", "type": "noop", "max_retries": -1}]}, 400,
     "max_retries"),
    ("scheduled-before-2000", "/api/v1/tasks", task(scheduled_at="1999-12-31T23:59:59Z"), 400, "before 2000"),
    ("scheduled-far-ahead", "/api/v1/tasks", task(scheduled_at=FAR), 400, "more than a year ahead"),
    ("scheduled-garbage", "/api/v1/tasks", task(scheduled_at="tomorrow"), 400, "scheduled_at"),
    ("unknown-field", "/api/v1/tasks", task(priorty=3), 400, "priorty"),
    ("unknown-step-field", "/api/v1/dags", {"steps": [{"id": "a", "type": "noop", "deps": ["b"]}]}, 400, "deps"),
    ("nul-in-payload", "/api/v1/tasks", task(payload={"a": "x\u0000y"}), 400, "NUL"),
    ("nul-in-key", "/api/v1/tasks", task(payload={"a\u0000": 1}), 400, "NUL"),
    ("nul-in-idempotency-key", "/api/v1/tasks", task(idempotency_key="k\u0000"), 400, "NUL"),
    ("control-in-idempotency-key", "/api/v1/tasks", task(idempotency_key="k\n"), 400, "idempotency_key"),
    ("idempotency-key-length", "/api/v1/tasks", task(idempotency_key="k" * 201), 400, "idempotency_key"),
    ("batch-empty", "/api/v1/tasks/batch", {"tasks": []}, 400, "tasks"),
    ("not-an-object", "/api/v1/tasks", [task()], 400, "JSON object"),
    ("huge-integer", "/api/v1/tasks", None, 400, "priority"),  # body built below
]


def raw_body(case: str, body: Any) -> bytes | None:
    if case == "depth-beyond-parser":
        return b'{"type": "noop", "payload": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if case == "huge-integer":
        return b'{"type": "noop", "priority": 123456789012345678901234567890}'
    return None


@pytest.mark.parametrize(("case", "path", "body", "status", "needle"), REJECTED, ids=[r[0] for r in REJECTED])
async def test_limit_is_enforced_and_nothing_written(
    api: tuple[aiohttp.ClientSession, str], limited: Engine, case: str, path: str, body: Any, status: int, needle: str
) -> None:
    session, url = api
    before = await written(limited)
    raw = raw_body(case, body)
    kwargs: dict[str, Any] = {"data": raw, "headers": {"Content-Type": "application/json"}} if raw else {"json": body}
    async with session.post(url + path, **kwargs) as resp:
        answer = await resp.json()
        assert resp.status == status, answer
    assert needle in answer["error"], answer
    assert await written(limited) == before


async def test_values_at_the_limits_are_accepted(api: tuple[aiohttp.ClientSession, str], limited: Engine) -> None:
    session, url = api
    accepted = [
        ("/api/v1/tasks", task(payload=nested(16))),  # exactly the limit
        ("/api/v1/tasks", task(payload={"s": "brackets in strings do not nest: " + "[{" * 500})),
        ("/api/v1/tasks", task(payload="x" * 2000)),
        ("/api/v1/tasks", task(payload={"a": "x\\u0000y"})),  # a backslash and "u0000", not NUL
        ("/api/v1/tasks", task(priority=1_000_000, max_retries=100, queue="q" * 63, type="T" + "t" * 127)),
        ("/api/v1/tasks", task(priority=-1_000_000, max_retries=0, idempotency_key="k" * 200)),
        ("/api/v1/tasks", task(scheduled_at=SOON)),
        ("/api/v1/tasks", task(scheduled_at="2000-01-01T00:00:00Z")),
        ("/api/v1/dags", {"steps": steps(5), "edges": [{"from": "s0", "to": f"s{i}"} for i in range(1, 5)]}),
        ("/api/v1/dags", {"steps": [{"id": "A" + "b" * 62, "type": "noop"}]}),
    ]
    for path, body in accepted:
        async with session.post(url + path, json=body) as resp:
            assert resp.status == 202, (body, await resp.json())
    assert (await written(limited)).tasks == 8 + 5 + 1


async def test_go_zero_time_means_now(api: tuple[aiohttp.ClientSession, str], limited: Engine) -> None:
    session, url = api
    async with session.post(url + "/api/v1/tasks", json=task(scheduled_at="0001-01-01T00:00:00Z")) as resp:
        assert resp.status == 202
        task_id = (await resp.json())["task_id"]
    async with session.get(f"{url}/api/v1/tasks/{task_id}") as resp:
        scheduled = datetime.fromisoformat((await resp.json())["scheduled_at"])
    assert abs(scheduled - datetime.now(UTC)) < timedelta(hours=1)


@pytest.mark.parametrize("query", ["type=a%20b", "queue=UPPER", "queue=a%00", "type=x%00", "status=done",
                                   "limit=0", "limit=1001", "limit=%D9%A3", "cursor=not-a-uuid", "dag_run_id=zzz"])
async def test_bad_list_filters_are_400(api: tuple[aiohttp.ClientSession, str], query: str) -> None:
    session, url = api
    async with session.get(f"{url}/api/v1/tasks?{query}") as resp:
        assert resp.status == 400, await resp.text()
        assert "error" in await resp.json()


async def test_batch_size_limit(engine: Engine, settings: Settings) -> None:
    server = TestServer(create_app(engine, settings.model_copy(update={"auth_mode": "none"})))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            before = await written(engine)
            async with session.post(str(server.make_url("/api/v1/tasks/batch")),
                                    json={"tasks": [{"type": "n"}] * 10_001}) as resp:
                assert resp.status == 400
                assert "10000" in (await resp.json())["error"]
            assert await written(engine) == before
    finally:
        await server.close()


@pytest.mark.parametrize(
    "submission",
    [{"type": "noop", "payload": {"a": "x\u0000"}}, {"type": "noop", "idempotency_key": "k"},
     {"steps": [{"id": "a", "type": "noop", "payload": ["\u0000"]}]}],
)
async def test_values_postgres_cannot_store_are_invalid_input_below_the_api_too(
    engine: Engine, submission: dict[str, Any]
) -> None:
    """The engine path (used by the operator) gets the same answer as the API, from the store boundary."""
    before = await written(engine)
    if "steps" in submission:
        call = engine.submit_dag(DagSubmission.model_validate(submission))
    else:
        model = TaskSubmission.model_validate(submission)
        if model.idempotency_key:  # the model refuses NUL here, so bypass it the way buggy code could
            model = model.model_copy(update={"idempotency_key": "k\u0000"})
        call = engine.submit_task(model)
    with pytest.raises(InvalidInput, match="PostgreSQL cannot store this input"):
        await call
    assert await written(engine) == before


async def test_compressed_bodies(api: tuple[aiohttp.ClientSession, str], limited: Engine) -> None:
    """gzip is read, a gzip bomb stops at the body limit (counted after decompression), broken gzip is a 400."""
    session, url = api
    before = await written(limited)
    bomb = gzip.compress(b'{"type": "noop", "payload": "' + b"0" * 20_000_000 + b'"}', 9)  # ~20 KB -> 20 MB
    for body, status in [(bomb, 413), (b"this is not gzip", 400)]:
        async with session.post(url + "/api/v1/tasks", data=body,
                                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}) as resp:
            assert resp.status == status, await resp.text()
            assert "error" in await resp.json()
    assert await written(limited) == before
    async with session.post(url + "/api/v1/tasks", data=gzip.compress(b'{"type": "noop"}'),
                            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}) as resp:
        assert resp.status == 202
