"""Fuzzing the running API, driven by the OpenAPI document it serves.

Every operation in `/api/v1/openapi.json` gets requests built from its schema: valid bodies, mutated
ones, raw bytes, odd path and query values, and a good, wrong or missing bearer token. The API runs on
real PostgreSQL and Redis. Properties:
- no response is a 5xx, and every error answer is JSON `{"error": ...}`;
- a rejected request (any 4xx) writes nothing: the rows of taskflow_tasks and taskflow_dag_runs and
  the number of Redis keys are the same before and after it;
- without the right token every protected call is 401.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from yarl import URL

from taskflow.api.app import create_app
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from tests.fuzz.openapi_strategies import odd_text, request_bodies, valid
from tests.fuzz.test_transition_properties import on_loop
from tests.writes import written

TOKEN = "fuzz-token-0123456789abcdefghij"
EXAMPLES = int(os.environ.get("TASKFLOW_FUZZ_EXAMPLES", "300"))  # raise for a longer (nightly) run


async def test_fuzzed_requests_never_fail_with_5xx_and_rejections_write_nothing(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} fuzzer\n")
    app = create_app(engine, settings.model_copy(update={"auth_mode": "tokens", "auth_tokens_file": tokens}))
    server = TestServer(app)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    session = aiohttp.ClientSession()
    loop = asyncio.get_running_loop()
    try:
        async with session.get(base + "/api/v1/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            doc = await resp.json()
        defs: dict[str, Any] = doc["components"]["schemas"]
        # Operations that take a body are where the input surface is: draw them three times as often.
        operations = [(path, method.upper(), op) for path, methods in doc["paths"].items()
                      for method, op in methods.items() for _ in range(3 if "requestBody" in op else 1)]
        known_ids: list[str] = []
        seen: dict[int, int] = {}

        async def send(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes, Any]:
            async with session.request(method, URL(url, encoded=True), data=body, headers=headers) as r:
                return r.status, await r.read(), r.headers.get("WWW-Authenticate")

        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.data())
        def fuzz(data: st.DataObject) -> None:
            path, method, op = data.draw(st.sampled_from(operations), label="operation")
            if data.draw(st.integers(0, 19)) == 0:
                method = data.draw(st.sampled_from(["PUT", "DELETE", "PATCH", "GET", "POST"]), label="other method")
            url_path = path
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    # Draw the same choices whatever known_ids holds, so Hypothesis can replay and shrink.
                    use_known = data.draw(st.booleans(), label="existing id")
                    index = data.draw(st.integers(0, 10_000))
                    value = data.draw(valid(p["schema"], defs) | odd_text, label=p["name"])
                    if use_known and known_ids:
                        value = known_ids[index % len(known_ids)]
                    url_path = url_path.replace("{" + p["name"] + "}", quote(value, safe=""))
            query = []
            for p in op.get("parameters", []):
                if p["in"] == "query" and data.draw(st.booleans()):
                    value = data.draw(valid(p["schema"], defs).map(str) | odd_text, label=p["name"])
                    query.append(f"{quote(p['name'])}={quote(value, safe='')}")
            url = base + url_path + ("?" + "&".join(query) if query else "")
            body = None
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                body = data.draw(request_bodies(schema, defs), label="body")
            auth = data.draw(st.sampled_from(["good"] * 5 + ["missing", "wrong", "basic", "random"]), label="auth")
            junk = data.draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=60))
            headers = {"Content-Type": "application/json",
                       **({"Authorization": f"Bearer {TOKEN}"} if auth == "good" else {}),
                       **({"Authorization": f"Bearer {TOKEN[:-1]}?"} if auth == "wrong" else {}),
                       **({"Authorization": f"Basic {TOKEN}"} if auth == "basic" else {}),
                       **({"Authorization": f"Bearer {junk}"} if auth == "random" else {})}
            encoding = data.draw(st.sampled_from([None] * 6 + ["gzip", "deflate", "identity", "x-unknown"]))
            if encoding is not None and body is not None:
                headers["Content-Encoding"] = encoding  # the body is not compressed: must be a clean 400

            before = on_loop(loop, written(engine))
            status, raw, challenge = on_loop(loop, send(method, url, body, headers))
            seen[status] = seen.get(status, 0) + 1
            assert status < 500, (method, url, body, raw)
            # aiohttp's HTTP parser refuses a body it cannot decompress (deflate) before our code runs, even
            # before authentication, with a plain-text 400; everything that reaches the app answers JSON.
            parser_refused = status == 400 and "Content-Encoding" in headers and not raw.startswith(b"{")
            if status >= 400:
                if not parser_refused:
                    answer = orjson.loads(raw)
                    assert isinstance(answer, dict) and isinstance(answer.get("error"), str), raw
                assert on_loop(loop, written(engine)) == before, (method, url, body, status, raw)
            open_path = url_path in ("/health", "/ready")
            if auth != "good" and not open_path and not parser_refused:
                assert status == 401 and challenge and challenge.startswith("Bearer"), (method, url, status)
            if status == 401:
                assert auth != "good" and not open_path
            if status == 202:
                answer = orjson.loads(raw)
                known_ids.extend(str(v) for k, v in answer.items() if k in ("task_id", "dag_run_id"))
                known_ids.extend(str(v) for v in answer.get("task_ids", [])[:3])

        await asyncio.to_thread(fuzz)
        # The run must have reached the engine, not only the validators.
        assert seen.get(202, 0) > 0 and seen.get(400, 0) > 0 and seen.get(401, 0) > 0, seen
    finally:
        await session.close()
        await server.close()
