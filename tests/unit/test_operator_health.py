"""What an operator replica serves without --api: /health always, /ready from the backing services."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from taskflow.engine import Engine
from taskflow.operator.main import health_app


class FakeEngine:
    def __init__(self, checks: dict[str, str]) -> None:
        self.checks = checks

    async def health(self) -> dict[str, str]:
        return self.checks

    readiness = Engine.readiness  # the real summary over the fake checks


async def test_health_and_ready() -> None:
    engine = FakeEngine({"postgres": "ok", "redis": "ok"})
    async with TestClient(TestServer(health_app(engine))) as client:  # type: ignore[arg-type]
        assert (await client.get("/health")).status == 200
        ready = await client.get("/ready")
        assert ready.status == 200 and (await ready.json())["status"] == "ok"
        engine.checks = {"postgres": "ok", "redis": "Redis is unavailable: refused"}
        assert (await client.get("/health")).status == 200  # liveness does not depend on Redis
        not_ready = await client.get("/ready")
        assert not_ready.status == 503
        assert (await not_ready.json())["checks"] == {"postgres": "ok", "redis": "unavailable"}, "open endpoint: no details"
