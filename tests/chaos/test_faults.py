"""The fault-injection suite: real processes, real faults, a recorded history, six invariants.

Each test starts the API and workers as processes, submits through the REST API, injects one
kind of fault while the work runs, drains, and hands the history to `tests/chaos/checker.py`.
Sizes follow TASKFLOW_CHAOS_SCALE (`ci`, the default, run by `make test`; `nightly`, run by
`make chaos-nightly`). Figures go to stdout (`pytest -s`) and tests/chaos/results/<test>.json.
See docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from taskflow.localservers import RedisServer, start_postgres
from taskflow.store.store import Store
from tests.chaos.checker import check
from tests.chaos.harness import (
    CHAOS_TIMINGS,
    SCALE,
    ChaosCluster,
    Submitter,
    collect,
    drain,
    install_recorder,
    proxied_dsn,
    random_dag,
    reconcile_once,
    redis_view,
    write_results,
)
from tests.chaos.proxy import ProxyThread

SIZES: dict[str, Any] = {
    "ci": {
        "kill_tasks": 20_000, "kill_spread_s": 40.0, "pauses": 200, "redis_kills": 3, "pg_restarts": 2, "commit_cuts": 500,
        "blackhole_s": 60.0, "random_dags": 1_000, "random_dags_spread_s": 20.0,
    },
    "nightly": {
        "kill_tasks": 200_000, "kill_spread_s": 400.0, "pauses": 2_000, "redis_kills": 10, "pg_restarts": 6, "commit_cuts": 5_000,
        "blackhole_s": 180.0, "random_dags": 10_000, "random_dags_spread_s": 200.0,
    },
}[SCALE]
TIMEOUT_S = 600 if SCALE == "ci" else 6 * 3600

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT_S)]


def _standalone_payloads(rng: random.Random, n: int, *, max_sleep: float = 0.01) -> list[dict[str, Any]]:
    payloads = []
    for _ in range(n):
        p: dict[str, Any] = {"sleep": round(rng.random() * max_sleep, 3)}
        roll = rng.random()
        if roll < 0.005:
            p["fail"] = "always"
        elif roll < 0.025:
            p["fail"] = 2
        payloads.append(p)
    return payloads


async def _submit_mix(sub: Submitter, rng: random.Random, total: int, *, dag_share: float, batch: int = 500,
                      parallel: int = 4, spread_s: float = 0.0) -> int:
    """Submit `total` tasks, `dag_share` of them as steps of random DAGs; return the task count.

    With `spread_s`, the submissions are spread evenly over that many seconds (at the most), so
    that faults injected at a fixed pace keep hitting work in flight however fast it drains.
    """
    jobs: list[Any] = []
    dag_steps = 0
    while dag_steps < total * dag_share:
        steps, edges = random_dag(rng)
        dag_steps += len(steps)
        jobs.append(("dag", steps, edges, f"dag-{len(jobs)}"))
    standalone = total - dag_steps
    for start in range(0, standalone, batch):
        jobs.append(("tasks", _standalone_payloads(rng, min(batch, standalone - start)), f"batch-{start}"))
    rng.shuffle(jobs)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    started, gap = time.monotonic(), spread_s / max(len(jobs), 1)
    taken = [0]

    async def run() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            taken[0] += 1
            await asyncio.sleep(max(0.0, started + (taken[0] - 1) * gap - time.monotonic()))
            if job[0] == "dag":
                await sub.dag(job[1], job[2], job[3])
            else:
                await sub.tasks(job[1], job[2])

    await asyncio.gather(*(run() for _ in range(parallel)))
    return total


class _Feeder:
    """Submits a steady stream of tasks (and DAGs) until stopped; counts what it submitted."""

    def __init__(self, sub: Submitter, rng: random.Random, *, batch: int, every: float, max_sleep: float = 0.01,
                 dags_per_round: int = 1) -> None:
        self.sub, self.rng, self.batch, self.every = sub, rng, batch, every
        self.max_sleep, self.dags_per_round = max_sleep, dags_per_round
        self.tasks = 0
        self.rounds = 0
        self.stop = asyncio.Event()

    async def run(self) -> int:
        while not self.stop.is_set():
            started = time.monotonic()
            key = f"feed-{self.rounds}"
            jobs = [self.sub.tasks(_standalone_payloads(self.rng, self.batch, max_sleep=self.max_sleep), key)]
            for d in range(self.dags_per_round):
                steps, edges = random_dag(self.rng, max_sleep=self.max_sleep)
                self.tasks += len(steps)
                jobs.append(self.sub.dag(steps, edges, f"{key}-dag-{d}"))
            self.tasks += self.batch
            self.rounds += 1
            await asyncio.gather(*jobs)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, self.every - (time.monotonic() - started)))
            except TimeoutError:
                pass
        return self.tasks


async def _finish(name: str, cluster: ChaosCluster, sub: Submitter, pg_dsn: str, redis_addr: str,
                  expected_tasks: int, started: float, figures: dict[str, Any], drain_timeout: float = 300) -> None:
    """Drain, stop the processes, run one reconciler pass, collect the history, check it, report."""
    figures["drain_s"] = round(await drain(pg_dsn, expected_tasks, timeout=drain_timeout), 2)
    codes = cluster.stop()
    figures["stale_writes_refused"] = cluster.refused_writes()
    figures["worker_restarts"] = cluster.restarts
    # Let Redis leases of the stopped workers run out.
    await asyncio.sleep(float(cluster.timings["TASKFLOW_LOCK_TTL"]) + 0.2)
    await reconcile_once(pg_dsn, redis_addr)
    report = check(await collect(pg_dsn, redis_addr, cluster.logs, sub))
    figures.update(report.figures)
    figures["submit_retries"] = sub.retries
    figures["wall_s"] = round(time.monotonic() - started, 1)
    write_results(name, figures)
    assert report.ok, report.summary()
    assert codes.get("api") == 0, f"the API did not stop cleanly: {codes}"


async def _killer(cluster: ChaosCluster, names: list[str], every: float, stop: asyncio.Event) -> int:
    kills = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            cluster.kill_and_restart(names[kills % len(names)])
            kills += 1
    return kills


async def test_worker_sigkilled_every_2s(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    started = time.monotonic()
    cluster = ChaosCluster(tmp_path, chaos_db, chaos_redis.addr)
    cluster.start_api()
    names = cluster.start_workers(2)
    await cluster.wait_api()
    stop = asyncio.Event()
    killer = asyncio.create_task(_killer(cluster, names, 2.0, stop))
    try:
        async with Submitter(cluster.url, cluster.token) as sub:
            total = await _submit_mix(sub, random.Random(1), SIZES["kill_tasks"], dag_share=0.2,
                                      spread_s=SIZES["kill_spread_s"])
            figures: dict[str, Any] = {}
            await drain(chaos_db, total, timeout=TIMEOUT_S / 2)
            stop.set()
            figures["faults_injected"] = await killer
            figures["fault"] = "worker SIGKILL every 2 s, restarted at once"
            await _finish("worker_sigkill", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
    finally:
        stop.set()
        cluster.stop()


async def test_worker_sigstopped_past_its_lease(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    """Workers frozen for 3x the lease: their late completions must all be refused by PostgreSQL."""
    started = time.monotonic()
    ttl = 0.4
    timings = {**CHAOS_TIMINGS, "TASKFLOW_LOCK_TTL": str(ttl), "TASKFLOW_RECONCILE_INTERVAL": "0.2",
               "TASKFLOW_CONCURRENCY": "8"}
    cluster = ChaosCluster(tmp_path, chaos_db, chaos_redis.addr, timings=timings)
    cluster.start_api()
    names = cluster.start_workers(8)
    await cluster.wait_api()
    budget = [SIZES["pauses"]]
    rng = random.Random(2)

    async def pauser(name: str, offset: float) -> int:
        done = 0
        await asyncio.sleep(offset)
        while budget[0] > 0:
            await asyncio.sleep(0.2 + rng.random() * 0.15)  # run long enough to claim work
            if budget[0] <= 0:
                break
            budget[0] -= 1
            cluster.signal_worker(name, signal.SIGSTOP)
            await asyncio.sleep(3 * ttl)
            cluster.signal_worker(name, signal.SIGCONT)
            done += 1
        return done

    async with Submitter(cluster.url, cluster.token) as sub:
        feeder = _Feeder(sub, rng, batch=40, every=0.5, max_sleep=0.25)
        feeding = asyncio.create_task(feeder.run())
        try:
            pauses = sum(await asyncio.gather(*(pauser(n, i * 0.2) for i, n in enumerate(names))))
        finally:
            feeder.stop.set()
            total = await feeding
        figures: dict[str, Any] = {
            "fault": f"worker SIGSTOP for 3x lease TTL ({3 * ttl:.1f} s), then SIGCONT; 8 workers, up to 8 paused",
            "faults_injected": pauses,
            "lock_ttl_s": ttl,
        }
        try:
            await _finish("worker_sigstop", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
        finally:
            cluster.stop()


async def _redis_in_step_after(pg_dsn: str, redis_addr: str, since_db: Any, timeout: float) -> float:
    """Seconds until every task PostgreSQL held due from before `since_db` is back in Redis."""
    started = time.monotonic()
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        while True:
            query = ("SELECT id FROM taskflow_tasks WHERE status IN ('queued', 'failed') AND updated_at < %s"
                     " AND (%s::uuid[] IS NULL OR id = ANY(%s::uuid[]))")
            cur = await conn.execute(query, (since_db, None, None))
            due = {r[0] for r in await cur.fetchall()}
            try:
                held, leased = await redis_view(redis_addr, all_leases=True)
                missing = due - held - leased
            except Exception:  # Redis still coming up
                missing = due or {None}
            if missing and None not in missing:
                # Re-ask PostgreSQL: a task may have been claimed and finished between the two reads.
                cur = await conn.execute(query, (since_db, list(missing), list(missing)))
                missing = {r[0] for r in await cur.fetchall()}
            if not missing:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"Redis still lacks {len(missing)} due tasks after {timeout}s")
            await asyncio.sleep(0.05)


async def test_redis_killed_and_restarted(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    """Redis without persistence SIGKILLed mid-run: nothing lost; the reconciler rebuilds it from PostgreSQL."""
    started = time.monotonic()
    cluster = ChaosCluster(tmp_path, chaos_db, chaos_redis.addr)
    cluster.start_api()
    cluster.start_workers(2)
    await cluster.wait_api()
    sweep = float(CHAOS_TIMINGS["TASKFLOW_RECONCILE_INTERVAL"])
    recoveries = []
    async with Submitter(cluster.url, cluster.token) as sub:
        # A backlog larger than the workers clear between kills, so Redis holds work when it dies.
        feeder = _Feeder(sub, random.Random(3), batch=150, every=0.5, max_sleep=0.02, dags_per_round=2)
        feeding = asyncio.create_task(feeder.run())
        try:
            for _ in range(SIZES["redis_kills"]):
                await asyncio.sleep(3.0)
                chaos_redis.kill()
                await asyncio.sleep(1.0)
                async with await psycopg.AsyncConnection.connect(chaos_db, autocommit=True) as conn:
                    restarted_db = (await (await conn.execute("SELECT clock_timestamp()")).fetchone())[0]  # type: ignore[index]
                chaos_redis.start()
                recoveries.append(round(await _redis_in_step_after(chaos_db, chaos_redis.addr, restarted_db, 60), 2))
        finally:
            feeder.stop.set()
            total = await feeding
        figures: dict[str, Any] = {
            "fault": "Redis (no persistence) SIGKILLed, down 1 s, restarted empty",
            "faults_injected": len(recoveries),
            "sweep_interval_s": sweep,
            "redis_in_step_after_restart_s": recoveries,
            "within_2x_sweep": all(r <= 2 * sweep for r in recoveries),
        }
        try:
            await _finish("redis_kill", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
        finally:
            cluster.stop()


async def _until(probe: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not await probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)
    return round(time.monotonic() - started, 2)


async def test_postgres_stopped_immediate_and_restarted(tmp_path: Path, chaos_redis: RedisServer) -> None:
    """PostgreSQL crashes (`-m immediate`) mid-run: no acknowledged submission lost; everyone reconnects alone."""
    started = time.monotonic()
    pg = start_postgres(tmp_path / "pg", fsync=False)
    try:
        dsn = pg.create_database("chaos")
        store = await Store.open(dsn, max_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()
        install_recorder(dsn)
        cluster = ChaosCluster(tmp_path, dsn, chaos_redis.addr)
        cluster.start_api()
        cluster.start_workers(2)
        await cluster.wait_api()
        api_back, workers_back = [], []

        async def completed() -> int:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                cur = await conn.execute("SELECT count(*) FROM taskflow_tasks WHERE status = 'completed'")
                return int((await cur.fetchone())[0])  # type: ignore[index]

        async with Submitter(cluster.url, cluster.token) as sub:
            feeder = _Feeder(sub, random.Random(4), batch=100, every=0.5, max_sleep=0.05)
            feeding = asyncio.create_task(feeder.run())
            try:
                for _ in range(SIZES["pg_restarts"]):
                    await asyncio.sleep(3.0)
                    pg.stop(mode="immediate")
                    await asyncio.sleep(1.0)
                    acked_before = len(sub.acked_tasks)
                    pg.start()
                    done_before = await completed()
                    api_back.append(await _until(lambda: _true(len(sub.acked_tasks) > acked_before), 60,
                                                 "an acknowledged submission after the restart"))
                    workers_back.append(await _until(lambda: _gt(completed(), done_before), 60,
                                                     "a completion after the restart"))
            finally:
                feeder.stop.set()
                total = await feeding
            alive = {name: proc.poll() is None for name, proc in cluster.workers.items()}
            assert all(alive.values()) and cluster.api is not None and cluster.api.poll() is None, alive
            figures: dict[str, Any] = {
                "fault": "PostgreSQL pg_ctl stop -m immediate, down 1 s, restarted (WAL recovery)",
                "faults_injected": len(api_back),
                "api_acknowledging_again_s": api_back,
                "workers_completing_again_s": workers_back,
            }
            try:
                await _finish("postgres_restart", cluster, sub, dsn, chaos_redis.addr, total, started, figures)
            finally:
                cluster.stop()
    finally:
        pg.destroy()


async def _true(value: bool) -> bool:
    return value


async def _gt(count: Any, floor: int) -> bool:
    return int(await count) > floor


async def test_connection_cut_after_commit(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    """The reply to a commit never arrives (500 times): retried writes must not complete anything twice.

    A commit is a COMMIT or, for the single-statement writes Taskflow sends in autocommit mode
    (a worker's start, complete, fail, lease renewal), the statement itself.
    """
    started = time.monotonic()
    target = urlsplit(chaos_db)
    assert target.hostname and target.port
    with ProxyThread(target.hostname, target.port, postgres=True) as proxy:
        cluster = ChaosCluster(tmp_path, proxied_dsn(chaos_db, proxy.port), chaos_redis.addr)
        cluster.start_api()
        cluster.start_workers(2)
        await cluster.wait_api()
        budget = SIZES["commit_cuts"]
        proxy.cut_after_commit(probability=0.2, budget=budget)
        async with Submitter(cluster.url, cluster.token) as sub:
            # Small batches: many API transactions to cut, besides the workers' start/complete ones.
            feeder = _Feeder(sub, random.Random(5), batch=20, every=0.1, max_sleep=0.01)
            feeding = asyncio.create_task(feeder.run())
            try:
                await _until(lambda: _true(proxy.stats.commit_cuts >= budget), TIMEOUT_S / 2, f"{budget} cuts")
            finally:
                feeder.stop.set()
                total = await feeding
            figures: dict[str, Any] = {
                "fault": "proxy closes the connection after the server committed (COMMIT or an autocommitted write), "
                "before the client sees the reply",
                "faults_injected": proxy.stats.commit_cuts,
                "commits_seen": proxy.stats.commits_seen,
                "proxied_connections": proxy.stats.connections,
            }
            try:
                await _finish("commit_cut", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
            finally:
                cluster.stop()


async def _db_now(dsn: str) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return (await (await conn.execute("SELECT clock_timestamp()")).fetchone())[0]  # type: ignore[index]


async def test_redis_blackholed(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    """Redis answers nothing for a minute: PostgreSQL leases decide who may record; nothing completes twice.

    The API (with the reconciler) and the workers reach Redis through two proxies whose black
    holes start and end 3 s apart, as a partition reaches clients at different moments; this
    also keeps the reconciler's lease sweeps out of step with the workers' renewals.
    """
    started = time.monotonic()
    with ProxyThread("127.0.0.1", chaos_redis.port) as api_proxy, \
            ProxyThread("127.0.0.1", chaos_redis.port) as worker_proxy:
        # A 2 s lease: renewals every 0.67 s leave room for a loaded machine, and one renewal
        # held up by a Redis call (10 s socket timeout) still loses it, which the test must catch.
        timings = {**CHAOS_TIMINGS, "TASKFLOW_LOCK_TTL": "2.0"}
        cluster = ChaosCluster(tmp_path, chaos_db, worker_proxy.addr, api_redis_addr=api_proxy.addr, timings=timings)
        cluster.start_api()
        cluster.start_workers(2)
        await cluster.wait_api()
        async with Submitter(cluster.url, cluster.token) as sub:
            feeder = _Feeder(sub, random.Random(6), batch=50, every=0.5, max_sleep=0.3)
            feeding = asyncio.create_task(feeder.run())
            try:
                await asyncio.sleep(2.0)
                # Long tasks running while Redis is dark: their leases live in PostgreSQL, and a worker
                # that still reaches PostgreSQL must keep them (no lease expiry, one attempt each).
                long_s = min(20.0, SIZES["blackhole_s"] / 2)  # longer than Redis's socket timeout (10 s)
                await sub.tasks([{"sleep": long_s + i / 20, "long": True} for i in range(20)], "long")
                feeder.tasks += 20
                await asyncio.sleep(1.0)
                hole_from = await _db_now(chaos_db)
                api_proxy.blackhole(True)
                await asyncio.sleep(3.0)
                worker_proxy.blackhole(True)
                await asyncio.sleep(SIZES["blackhole_s"] - 3.0)
                api_proxy.blackhole(False)
                await asyncio.sleep(3.0)
                worker_proxy.blackhole(False)
                hole_to = await _db_now(chaos_db)
                healed = round(await _redis_in_step_after(chaos_db, chaos_redis.addr, hole_to, 60), 2)
                await asyncio.sleep(2.0)
            finally:
                feeder.stop.set()
                total = await feeding
            async with await psycopg.AsyncConnection.connect(chaos_db, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE new_status = 'completed'),"
                    " count(*) FILTER (WHERE new_status = 'failed' AND old_status = 'running')"
                    " FROM chaos_transitions WHERE at BETWEEN %s AND %s",
                    (hole_from, hole_to),
                )
                completed_in_hole, expired_in_hole = await cur.fetchone()  # type: ignore[misc]
                cur = await conn.execute(
                    "SELECT t.id, t.attempts, array_agg(a.outcome ORDER BY a.attempt) FROM taskflow_tasks t"
                    " JOIN taskflow_attempts a ON a.task_id = t.id WHERE t.payload ? 'long' GROUP BY t.id"
                )
                long_tasks = await cur.fetchall()
            figures: dict[str, Any] = {
                "fault": f"Redis black-holed (nothing forwarded, nothing answered) for {SIZES['blackhole_s']:.0f} s "
                "(API first, workers 3 s later)",
                "faults_injected": 1,
                "completions_recorded_during_blackhole": completed_in_hole,
                "attempts_failed_or_expired_during_blackhole": expired_in_hole,
                "redis_in_step_after_heal_s": healed,
                "long_tasks_reattempted": sum(1 for _, attempts, _ in long_tasks if attempts > 1),
            }
            try:
                await _finish("redis_blackhole", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
            finally:
                cluster.stop()
            # PostgreSQL leases decide: workers that still reach PostgreSQL keep their leases through
            # the Redis outage, so the long tasks ran once and completed under their first fence.
            async with await psycopg.AsyncConnection.connect(chaos_db, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT t.id, array_agg(a.outcome ORDER BY a.attempt) FROM taskflow_tasks t"
                    " JOIN taskflow_attempts a ON a.task_id = t.id WHERE t.payload ? 'long' GROUP BY t.id"
                )
                outcomes = await cur.fetchall()
            assert len(outcomes) == 20 and all(o == ["completed"] for _, o in outcomes), outcomes


async def test_random_dags_under_kills(tmp_path: Path, chaos_db: str, chaos_redis: RedisServer) -> None:
    """1,000 random DAGs with failing steps, while workers are SIGKILLed every 2 s and Redis is killed once."""
    started = time.monotonic()
    cluster = ChaosCluster(tmp_path, chaos_db, chaos_redis.addr)
    cluster.start_api()
    names = cluster.start_workers(2)
    await cluster.wait_api()
    stop = asyncio.Event()
    killer = asyncio.create_task(_killer(cluster, names, 2.0, stop))
    rng = random.Random(7)
    dags = [random_dag(rng, fail_always=0.03, fail_once=0.1) for _ in range(SIZES["random_dags"])]
    total = sum(len(steps) for steps, _ in dags)
    try:
        async with Submitter(cluster.url, cluster.token) as sub:
            pending = list(enumerate(dags))
            gap = SIZES["random_dags_spread_s"] / len(dags)  # spread out, so the kills meet running DAGs

            async def submit() -> None:
                while pending:
                    i, (steps, edges) = pending.pop()
                    await asyncio.sleep(max(0.0, started + (len(dags) - 1 - i) * gap - time.monotonic()))
                    await sub.dag(steps, edges, f"random-{i}")

            submitting = asyncio.gather(*(submit() for _ in range(8)))
            await asyncio.sleep(3.0)
            chaos_redis.kill()  # once, mid-run: the reconciler rebuilds Redis from PostgreSQL
            await asyncio.sleep(0.5)
            chaos_redis.start()
            await submitting
            await drain(chaos_db, total, timeout=TIMEOUT_S / 2)
            stop.set()
            figures: dict[str, Any] = {
                "fault": "random DAGs; worker SIGKILL every 2 s and restart; Redis SIGKILLed once",
                "faults_injected": await killer + 1,
            }
            async with await psycopg.AsyncConnection.connect(chaos_db, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT r.status, bool_or(t.payload->>'fail' = 'always') FROM taskflow_dag_runs r"
                    " JOIN taskflow_tasks t ON t.dag_run_id = r.id GROUP BY r.id"
                )
                runs = await cur.fetchall()
            # A run holding an always-failing step must fail (it, or an ancestor, ends in the DLQ).
            assert all(status == "failed" for status, doomed in runs if doomed), "a doomed run did not fail"
            figures["runs"] = len(runs)
            figures["runs_completed"] = sum(1 for status, _ in runs if status == "completed")
            figures["runs_failed_by_payload"] = sum(1 for _, doomed in runs if doomed)
            figures["runs_failed_by_kills"] = sum(1 for status, doomed in runs if status != "completed" and not doomed)
            await _finish("random_dags", cluster, sub, chaos_db, chaos_redis.addr, total, started, figures)
    finally:
        stop.set()
        cluster.stop()
