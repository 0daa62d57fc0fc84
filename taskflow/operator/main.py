"""`taskflow operator`: HTTP (health, optionally the REST API), the reconciler, and kopf under a Lease.

Process layout:
- every replica: migrations (advisory-locked), the HTTP server on TASKFLOW_HTTP_PORT (`/health`,
  `/ready`, and the whole REST API with `--api`) and the engine reconciler (safe with replicas);
- the leader only (or the single replica without `--leader-elect`): kopf with the TaskDag handlers,
  the status follower and the worker autoscaler, in standalone mode (no kopf peering objects).
A leader that loses its Lease stops kopf and exits with status 1, so Kubernetes restarts it as a
follower; nothing in memory is needed by the next leader (its resume handlers rebuild it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import kopf
from aiohttp import web

from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.engine.reconciler import Reconciler
from taskflow.operator.builders import GROUP
from taskflow.operator.config import OperatorSettings
from taskflow.operator.kube import KubeApi, default_identity, load_config
from taskflow.operator.leader import LeaderElector, LeadershipLost
from taskflow.operator.status_follow import StatusFollower
from taskflow.operator.taskdags import TaskDagHandlers
from taskflow.operator.workers import WorkerAutoscaler

log = logging.getLogger(__name__)

WebAppFactory = Callable[[Engine], web.Application]
FINALIZER = f"{GROUP}/cancel-run"
_KOPF_STOP_GRACE_S = 20.0


def health_app(engine: Engine) -> web.Application:
    """What a replica serves without `--api`: liveness and readiness only."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        ok, checks = await engine.readiness()
        return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    return app


class _QuietTimers(logging.Filter):
    """Drop kopf's "Timer 'autoscale' succeeded." line: it would repeat every few seconds per Deployment."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and str(record.msg).startswith("Timer ") and "succeeded" in str(record.msg))


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled-configuration, with the spec replaced by its SHA-256.

    kopf keeps the whole handled spec in an annotation to detect changes; a 10,000-step spec would
    exceed the 256 KiB limit on all annotations of an object. A digest detects spec edits just as
    well (the handlers never look at the old spec), and stays 90 bytes whatever the DAG's size.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        if "spec" in essence:
            canonical = json.dumps(essence["spec"], sort_keys=True, separators=(",", ":")).encode()
            essence["spec"] = {"sha256": hashlib.sha256(canonical).hexdigest()}  # type: ignore[index]
        return essence


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    # Handler progress and the diff base live in annotations under our prefix; .status is ours.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # handler failures become Events; routine logs do not
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


async def run_operator(
    settings: Settings,
    op: OperatorSettings,
    *,
    web_app: WebAppFactory | None = None,
    reconcile: bool = True,
    migrate: bool = True,
) -> int:
    """Run until SIGTERM/SIGINT; return the process exit status."""
    engine = await Engine.connect(settings)
    identity = op.identity or default_identity()
    kube = KubeApi(load_config(), identity)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    side: list[asyncio.Task[None]] = []
    try:
        if migrate:
            await engine.store.migrate()
        runner = web.AppRunner((web_app or health_app)(engine), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        log.info("serving %s on http://%s:%d", "the API" if web_app else "health", settings.http_host, settings.http_port)
        if reconcile:
            side.append(asyncio.create_task(Reconciler(engine).run(stop), name="reconciler"))

        elector: LeaderElector | None = None
        if op.leader_elect:
            elector = LeaderElector(
                kube,
                name=op.lease_name,
                namespace=op.lease_namespace or os.environ.get("POD_NAMESPACE") or "default",
                identity=identity,
                duration_s=op.lease_duration,
            )
            if not await elector.acquire(stop):
                return 0
        return await _lead(engine, kube, op, stop, elector)
    finally:
        stop.set()
        await asyncio.gather(*side, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        await engine.close()
        kube.close()


async def _lead(
    engine: Engine, kube: KubeApi, op: OperatorSettings, stop: asyncio.Event, elector: LeaderElector | None
) -> int:
    registry = kopf.OperatorRegistry()
    logging.getLogger("kopf.objects").addFilter(_QuietTimers())

    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    kopf.on.login(registry=registry)(login)
    follower = StatusFollower(engine, kube, op)
    TaskDagHandlers(engine, kube, follower, op).register(registry)
    WorkerAutoscaler(engine, kube, op).register(registry)

    kopf_stop = asyncio.Event()
    kopf_task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf_settings(),
            standalone=True,
            clusterwide=not op.namespaces,
            namespaces=op.namespaces,
            stop_flag=kopf_stop,
        ),
        name="kopf",
    )
    # kopf replaces our SIGTERM/SIGINT handlers with its own: when it returns, we stop too.
    watched: dict[asyncio.Task[Any], str] = {
        kopf_task: "kopf",
        asyncio.create_task(follower.run(), name="status-follower"): "status follower",
        asyncio.create_task(stop.wait(), name="stop"): "stop",
    }
    if elector is not None:
        watched[asyncio.create_task(elector.hold(), name="lease")] = "lease"
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in done:
        what = watched[task]
        error = None if task.cancelled() else task.exception()
        if error is None and (what in ("stop", "kopf") or task.cancelled()):
            continue  # a normal stop (kopf also cancels our tasks when it handles SIGTERM)
        if isinstance(error, LeadershipLost):
            log.error("%s; stopping so this replica restarts as a follower", error)
        else:
            log.error("%s stopped unexpectedly; exiting", what, exc_info=error)
        code = 1
    kopf_stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(kopf_task), timeout=_KOPF_STOP_GRACE_S)
    except Exception:  # a timeout, or kopf failed (logged above)
        kopf_task.cancel()
    for task in watched:
        if task is not kopf_task:
            task.cancel()
    await asyncio.gather(*watched, return_exceptions=True)
    if elector is not None and code == 0:
        await elector.release()
    log.info("operator stopped (follower: %d status patches, %d refreshes)", follower.patches, follower.refreshes)
    return code
