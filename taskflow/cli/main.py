"""`taskflow` command line: dev, api, worker, migrate, operator, submit, get, cancel, dlq."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taskflow.cli.loop import run_service
from taskflow.core.errors import TaskflowError
from taskflow.core.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080"


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SystemExit(f"taskflow: bad setting: {exc}") from None


def load_submission(path: Path) -> dict[str, Any]:
    """A DAG spec, a single task, or a whole TaskDag manifest (its `.spec` is taken), in YAML or JSON."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"taskflow: cannot read {path}: {exc}") from None
    if isinstance(data, dict) and data.get("kind") == "TaskDag":
        data = data.get("spec")
    if not isinstance(data, dict) or not ("steps" in data or "type" in data):
        raise SystemExit(f"taskflow: {path} holds neither a DAG (steps, edges) nor a task (type, payload)")
    return data


def _print(model: Any) -> None:
    print(model.model_dump_json(indent=2, by_alias=True) if hasattr(model, "model_dump_json") else json.dumps(model))


async def _client_call(args: argparse.Namespace) -> int:
    from taskflow.client import AsyncClient

    async with AsyncClient(args.url) as tf:
        if args.command == "submit":
            body = load_submission(Path(args.file))
            if "steps" in body:
                run_id = await tf.submit_dag(body)
                print(run_id)
                if args.wait:
                    run = await tf.wait_dag(run_id, timeout=args.timeout)
                    _print(run)
                    return 0 if run.status == "completed" else 1
            else:
                task_id = await tf.enqueue_task(**body)
                print(task_id)
                if args.wait:
                    task = await tf.wait_task(task_id, timeout=args.timeout)
                    _print(task)
                    return 0 if task.status == "completed" else 1
        elif args.command == "get":
            _print(await (tf.get_task(args.id) if args.kind == "task" else tf.get_dag(args.id)))
        elif args.command == "cancel":
            _print(await (tf.cancel_task(args.id) if args.kind == "task" else tf.cancel_dag(args.id)))
        elif args.command == "dlq":
            if args.action == "list":
                _print(await tf.list_dlq())
            else:
                if not args.id:
                    raise SystemExit("taskflow: dlq retry needs a task id")
                _print(await tf.retry_dlq(args.id))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="taskflow", description="Durable tasks and DAGs on PostgreSQL + Redis.")
    p.add_argument("--log-level", default=os.environ.get("TASKFLOW_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run everything locally: PostgreSQL, Redis, API, workers")
    dev.add_argument("--workers", type=int, default=2)
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--data-dir", type=Path, default=Path(".taskflow/dev"))
    dev.add_argument("--submit", type=Path, help="submit this DAG/task file once everything is up, and show progress")
    dev.add_argument("--exit-when-done", action="store_true", help="stop everything once --submit finished")

    api = sub.add_parser("api", help="serve the REST API and the reconciler")
    api.add_argument("--port", type=int)
    api.add_argument("--no-reconcile", action="store_true")

    worker = sub.add_parser("worker", help="run a worker process")
    worker.add_argument("--queue", action="append", dest="queues")
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--import", action="append", dest="imports", default=None)

    sub.add_parser("migrate", help="apply database migrations (safe with several replicas)")

    op = sub.add_parser("operator", help="run the Kubernetes operator (TaskDag resources, worker autoscaling)")
    op.add_argument("--api", action="store_true", help="also serve the REST API (else only /health and /ready)")
    op.add_argument("--port", type=int, help="HTTP port (default TASKFLOW_HTTP_PORT)")
    op.add_argument("--namespace", action="append", dest="namespaces", help="watch this namespace (repeat); default all")
    op.add_argument("--leader-elect", action="store_true", default=None, help="HA: lead through a Lease")
    op.add_argument("--lease-name")
    op.add_argument("--lease-namespace", help="default: env POD_NAMESPACE, else 'default'")
    op.add_argument("--no-reconcile", action="store_true")

    for name, helptext in (("submit", "submit a DAG or task file"), ("get", "show a task or DAG run"),
                           ("cancel", "cancel a task or DAG run"), ("dlq", "list or retry dead-lettered tasks")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--url", default=os.environ.get("TASKFLOW_API_URL", DEFAULT_URL))
        if name == "submit":
            c.add_argument("file")
            c.add_argument("--wait", action="store_true")
            c.add_argument("--timeout", type=float, default=300.0)
        elif name == "dlq":
            c.add_argument("action", choices=["list", "retry"])
            c.add_argument("id", nargs="?")
        else:
            c.add_argument("kind", choices=["task", "dag"])
            c.add_argument("id")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "dev":
            from taskflow.cli.dev import run_dev

            return run_dev(args)
        if args.command == "api":
            from taskflow.api.app import serve_api

            run_service(serve_api(_settings(http_port=args.port), reconcile=not args.no_reconcile))
            return 0
        if args.command == "worker":
            from taskflow.worker.process import serve_worker

            run_service(serve_worker(_settings(queues=args.queues, concurrency=args.concurrency, imports=args.imports)))
            return 0
        if args.command == "operator":
            return _operator(args)
        if args.command == "migrate":
            return asyncio.run(_migrate(_settings()))
        return asyncio.run(_client_call(args))
    except TaskflowError as exc:
        print(f"taskflow: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _operator(args: argparse.Namespace) -> int:
    from taskflow.operator.config import OperatorSettings
    from taskflow.operator.main import run_operator

    settings = _settings(http_port=args.port)
    overrides = {"namespaces": args.namespaces, "leader_elect": args.leader_elect,
                 "lease_name": args.lease_name, "lease_namespace": args.lease_namespace}
    try:
        op = OperatorSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SystemExit(f"taskflow: bad operator setting: {exc}") from None
    web_app = None
    if args.api:
        from taskflow.api.app import create_app

        web_app = functools.partial(create_app, settings=settings)
    return run_service(run_operator(settings, op, web_app=web_app, reconcile=not args.no_reconcile))


async def _migrate(settings: Settings) -> int:
    from taskflow.store import Store

    store = await Store.open(settings.postgres_dsn.get_secret_value(), max_size=1)
    try:
        applied = await store.migrate()
    finally:
        await store.close()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0
