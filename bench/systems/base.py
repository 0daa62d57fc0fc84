"""What the driver needs from each system, and where its servers are."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
QUEUE = "bench"


@dataclass
class Env:
    redis_url: str  # broker database (db 0), flushed before each system's turn
    record_url: str  # where handlers push their records (db 15)
    pg_dsn: str  # a fresh migrated database per Taskflow turn
    python: str = sys.executable
    extra: dict[str, Any] = field(default_factory=dict)

    def process_env(self) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env.update(
            BENCH_REDIS_URL=self.redis_url,
            BENCH_RECORD_URL=self.record_url,
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
        )
        return env


class System:
    """Adapter interface. `notes` say how each workload is done on this system (shown in the table)."""

    name = "?"
    notes: dict[str, str] = {}

    def worker_commands(self, env: Env) -> list[list[str]]:
        raise NotImplementedError

    async def open(self, env: Env) -> None:
        self.env = env

    async def close(self) -> None:
        pass

    async def enqueue_one(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    async def enqueue_bulk(self, payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def start_chain(self, n: int, t: float) -> None:
        raise NotImplementedError

    async def start_fanout(self, n: int, t: float) -> None:
        raise NotImplementedError

    async def submit_dag(self, n: int) -> float | None:
        """Seconds to have one n-step DAG accepted (committed); None where there is no DAG to submit."""
        return None

    def version(self) -> str:
        raise NotImplementedError
