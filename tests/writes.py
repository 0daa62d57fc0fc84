"""What a request wrote: rows in the task and DAG run tables, and keys in Redis."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from taskflow.engine import Engine


@dataclass(frozen=True)
class Written:
    tasks: int
    dag_runs: int
    redis_keys: int


async def written(engine: Engine) -> Written:
    """Counts taken straight from PostgreSQL and Redis (not through the API under test)."""
    async with engine.store._pool.connection() as conn:
        row = await (
            await conn.execute("SELECT (SELECT count(*) FROM taskflow_tasks), (SELECT count(*) FROM taskflow_dag_runs)")
        ).fetchone()
    assert row is not None
    client: aioredis.Redis = engine.queue.client
    return Written(tasks=row[0], dag_runs=row[1], redis_keys=await client.dbsize())
