"""Building and serving the API application, with the reconciler beside it."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from taskflow.api.auth import Authenticator, auth_middleware
from taskflow.api.errors import errors_as_json
from taskflow.api.routes import ENGINE, SETTINGS, routes
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from taskflow.engine.reconciler import Reconciler

log = logging.getLogger(__name__)


def create_app(engine: Engine, settings: Settings) -> web.Application:
    """The API application. Raises `AuthConfigError` if authentication is on but not configured."""
    authenticator = Authenticator.from_settings(settings)
    middlewares = [errors_as_json]
    if authenticator is not None:
        middlewares.append(auth_middleware(authenticator))
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[ENGINE] = engine
    app[SETTINGS] = settings
    app.add_routes(routes)
    if authenticator is not None:
        async def close_authenticator(_: web.Application) -> None:
            authenticator.close()

        app.on_cleanup.append(close_authenticator)
    return app


async def serve_api(settings: Settings, *, reconcile: bool = True, migrate: bool = True) -> None:
    """Serve until SIGTERM/SIGINT. Runs migrations first (safe with several replicas) and the reconciler."""
    # Refuse to start with unusable auth settings before connecting to anything.
    probe = Authenticator.from_settings(settings)
    if probe is not None:
        probe.close()
    engine = await Engine.connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if migrate:
            await engine.store.migrate()
        runner = web.AppRunner(create_app(engine, settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        log.info("API listening on http://%s:%d", settings.http_host, settings.http_port)
        side: list[asyncio.Task[None]] = []
        if reconcile:
            side.append(asyncio.create_task(Reconciler(engine).run(stop), name="reconciler"))
        await stop.wait()
        await runner.cleanup()
        await asyncio.gather(*side, return_exceptions=True)
    finally:
        await engine.close()
