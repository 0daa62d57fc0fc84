"""REST API authentication with bearer tokens from a file, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from taskflow.api.app import create_app
from taskflow.api.auth import AuthConfigError, parse_token_lines
from taskflow.client import AsyncClient, Unauthenticated, token_from_environment
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from tests.writes import written

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
TASK = {"type": "noop", "payload": {"x": 1}}


@dataclass
class Api:
    url: str
    session: aiohttp.ClientSession
    tokens: Path

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(engine: Engine, settings: Settings, tmp_path: Path) -> AsyncIterator[Api]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# accepted API tokens\n{ALICE} alice\n\n{BOB}\n")
    app = create_app(engine, settings.model_copy(update={"auth_mode": "tokens", "auth_tokens_file": tokens}))
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(str(server.make_url("")), session, tokens)
    await server.close()


@pytest.mark.parametrize(
    ("headers", "invalid"),
    [
        ({}, False),
        ({"Authorization": "Bearer"}, False),
        ({"Authorization": f"Basic {ALICE}"}, False),
        ({"Authorization": "Bearer not-a-token-we-know-of"}, True),
        ({"Authorization": f"Bearer {ALICE}x"}, True),
        ({"Authorization": f"Bearer {ALICE[:-1]}"}, True),
    ],
)
async def test_missing_or_wrong_token_is_401_and_writes_nothing(
    api: Api, engine: Engine, headers: dict[str, str], invalid: bool
) -> None:
    before = await written(engine)
    for method, path, body in [
        ("POST", "/api/v1/tasks", TASK),
        ("POST", "/api/v1/tasks/batch", {"tasks": [TASK]}),
        ("POST", "/api/v1/dags", {"steps": [{"id": "a", "type": "noop"}]}),
        ("GET", "/api/v1/tasks", None),
        ("GET", "/api/v1/openapi.json", None),
        ("GET", "/api/v1/no-such-endpoint", None),  # no endpoint discovery without a token
        ("POST", "/api/v1/dlq/00000000-0000-0000-0000-000000000000/retry", None),
    ]:
        async with api.session.request(method, api.url + path, json=body, headers=headers) as resp:
            assert resp.status == 401, (method, path)
            error = await resp.json()
            challenge = resp.headers["WWW-Authenticate"]
        assert set(error) == {"error"} and error["error"]
        assert challenge.startswith('Bearer realm="taskflow"')
        assert ('error="invalid_token"' in challenge) == invalid
        assert ALICE not in str(error) and ALICE[:-1] not in str(error)
    assert await written(engine) == before


async def test_probes_are_open(api: Api) -> None:
    async with api.session.get(api.url + "/health") as resp:
        assert resp.status == 200
    async with api.session.get(api.url + "/ready") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_each_listed_token_is_accepted(api: Api) -> None:
    for token in (ALICE, BOB):
        async with api.session.post(api.url + "/api/v1/tasks", json=TASK, headers=api.auth(token)) as resp:
            assert resp.status == 202
        async with api.session.get(api.url + "/api/v1/tasks", headers=api.auth(token)) as resp:
            assert resp.status == 200


async def test_rotation_without_restart(api: Api, engine: Engine) -> None:
    carol = "carol-token-0123456789abcdef"
    # Rotate the way kubelet updates a mounted Secret: write a new file, then rename it into place.
    replacement = api.tokens.with_suffix(".new")
    replacement.write_text(f"{carol} carol\n")
    replacement.replace(api.tokens)
    async with api.session.post(api.url + "/api/v1/tasks", json=TASK, headers=api.auth(ALICE)) as resp:
        assert resp.status == 401
    async with api.session.post(api.url + "/api/v1/tasks", json=TASK, headers=api.auth(carol)) as resp:
        assert resp.status == 202
    # Rewritten in place (same inode) also counts.
    api.tokens.write_text(f"{carol} carol\n{ALICE} alice-again\n")
    async with api.session.post(api.url + "/api/v1/tasks", json=TASK, headers=api.auth(ALICE)) as resp:
        assert resp.status == 202
    assert (await written(engine)).tasks == 2


async def test_unreadable_token_file_fails_closed(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    api.tokens.unlink()
    with caplog.at_level(logging.INFO, logger="taskflow.api.auth"):
        async with api.session.get(api.url + "/api/v1/tasks", headers=api.auth(ALICE)) as resp:
            assert resp.status == 401
    assert "no file token is accepted" in caplog.text and ALICE not in caplog.text
    api.tokens.write_text(f"{ALICE}\n")
    async with api.session.get(api.url + "/api/v1/tasks", headers=api.auth(ALICE)) as resp:
        assert resp.status == 200


async def test_bad_lines_are_skipped_on_reload_and_never_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    api.tokens.write_text(f"short-secret\n{BOB} bob\n")
    with caplog.at_level(logging.INFO, logger="taskflow.api.auth"):
        async with api.session.get(api.url + "/api/v1/tasks", headers=api.auth(BOB)) as resp:
            assert resp.status == 200
        async with api.session.get(api.url + "/api/v1/tasks", headers=api.auth("short-secret")) as resp:
            assert resp.status == 401
    assert "line 1" in caplog.text and "short-secret" not in caplog.text


def test_parse_token_lines() -> None:
    entries, problems = parse_token_lines(f"# c\n{ALICE} alice # comment\n  \n{BOB}\ntiny name\n")
    assert [e.name for e in entries] == ["alice", "token-line-4"]
    assert problems == ["line 5: the token is shorter than 16 characters"]


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"auth_mode": "tokens"}, "TASKFLOW_AUTH_TOKENS_FILE"),
        ({"auth_mode": "tokens+kubernetes"}, "TASKFLOW_AUTH_TOKENS_FILE"),
        ({"auth_mode": "tokens", "auth_tokens_file": Path("/nonexistent/tokens")}, "cannot read"),
        ({"auth_mode": "kubernetes", "auth_kube_kubeconfig": Path("/nonexistent/kubeconfig")}, "KUBECONFIG"),
        ({"auth_mode": "kubernetes"}, "TASKFLOW_AUTH_KUBE_KUBECONFIG"),  # not in a pod
    ],
)
def test_server_refuses_to_start_without_usable_auth(
    engine: Engine, settings: Settings, update: dict[str, object], needle: str
) -> None:
    with pytest.raises(AuthConfigError, match=needle):
        create_app(engine, settings.model_copy(update=update))


@pytest.mark.parametrize(("content", "needle"), [("", "holds no token"), ("# only a comment\n", "holds no token"),
                                                 ("short\n", "line 1: the token is shorter")])
def test_server_refuses_an_empty_or_weak_token_file(
    engine: Engine, settings: Settings, tmp_path: Path, content: str, needle: str
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(content)
    with pytest.raises(AuthConfigError, match=needle):
        create_app(engine, settings.model_copy(update={"auth_tokens_file": tokens}))


def test_taskflow_api_without_tokens_exits_with_what_to_set(settings: Settings, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TASKFLOW_REDIS_ADDR": settings.redis_addr,
           "TASKFLOW_POSTGRES_DSN": settings.postgres_dsn.get_secret_value()}
    result = subprocess.run([sys.executable, "-m", "taskflow", "api", "--port", "0"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "TASKFLOW_AUTH_TOKENS_FILE" in result.stderr and "TASKFLOW_AUTH_MODE=none" in result.stderr


async def test_auth_mode_none_needs_no_token(engine: Engine, settings: Settings) -> None:
    server = TestServer(create_app(engine, settings.model_copy(update={"auth_mode": "none"})))
    await server.start_server()
    try:
        async with AsyncClient(str(server.make_url("")), token="") as tf:
            assert (await tf.list_tasks()).tasks == []
    finally:
        await server.close()


async def test_client_reads_the_token_from_the_environment(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKFLOW_API_TOKEN", raising=False)
    token_file = tmp_path / "client-token"
    token_file.write_text(f"# mine\n{BOB} bob\n")
    monkeypatch.setenv("TASKFLOW_API_TOKEN_FILE", str(token_file))
    assert token_from_environment() == BOB
    async with AsyncClient(api.url) as tf:
        assert await tf.enqueue_task("noop")
    monkeypatch.setenv("TASKFLOW_API_TOKEN", "an-old-revoked-token-123456")
    async with AsyncClient(api.url) as tf:
        with pytest.raises(Unauthenticated, match="not valid"):
            await tf.enqueue_task("noop")


@pytest.mark.parametrize("raw_token", [b"\xff\xfe\xed", "ä-token-0123456789abcdef".encode(), b"a" * 8000])
async def test_odd_header_bytes_are_401_not_500(api: Api, raw_token: bytes) -> None:
    """Header bytes that are not UTF-8 (aiohttp hands them over as surrogates) are just a wrong token."""
    host, port = api.url.split("//")[1].rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + raw_token
                 + b"\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
