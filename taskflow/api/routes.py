"""Handlers of the REST API. Parsing and serialising only: the engine does the work."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from taskflow.api.batch import TaskBatch, TaskBatchAccepted
from taskflow.api.limits import parse_json_object
from taskflow.api.openapi import build_openapi
from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagAccepted, DagSubmission, TaskAccepted, TaskSubmission
from taskflow.core.names import QUEUE_NAME_PATTERN, TASK_TYPE_PATTERN
from taskflow.core.settings import Settings
from taskflow.core.status import TaskStatus
from taskflow.engine import Engine

M = TypeVar("M", bound=BaseModel)
ENGINE = web.AppKey("engine", Engine)
SETTINGS = web.AppKey("settings", Settings)
routes = web.RouteTableDef()


def _model_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.__pydantic_serializer__.to_json(model, by_alias=True), status=status,
                        content_type="application/json")


async def _body(request: web.Request, model: type[M]) -> M:
    try:
        # At most TASKFLOW_MAX_BODY_BYTES after decompression (aiohttp raises 413 beyond, so a gzip bomb stops there).
        raw = await request.read()
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip over bytes that are not gzip
        raise InvalidInput(f"the request body could not be read ({exc}); send JSON, plain or gzip-compressed") from None
    data = parse_json_object(raw, max_depth=request.app[SETTINGS].max_json_depth)
    return model.model_validate(data)


def _uuid(request: web.Request, name: str, what: str) -> UUID:
    raw = request.match_info[name]
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(f"{what} id {raw!r} is not a UUID") from None


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:  # isdigit alone takes "٣"
        raise InvalidInput("limit must be a whole number from 1 to 1000")
    return int(raw)


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    # Open without a token (probes), so the answer names no hosts or errors; the log has the details.
    ok, checks = await request.app[ENGINE].readiness()
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


@routes.post("/api/v1/tasks")
async def submit_task(request: web.Request) -> web.Response:
    submission = await _body(request, TaskSubmission)
    task_id = await request.app[ENGINE].submit_task(submission)
    return _model_response(TaskAccepted(task_id=task_id), status=202)


@routes.post("/api/v1/tasks/batch")
async def submit_task_batch(request: web.Request) -> web.Response:
    batch = await _body(request, TaskBatch)
    ids = await request.app[ENGINE].submit_tasks(batch.tasks)
    return _model_response(TaskBatchAccepted(task_ids=ids), status=202)


@routes.get("/api/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status")
    if status is not None and status not in TaskStatus.__members__.values():
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in TaskStatus)}")
    dag_run_id = None
    if q.get("dag_run_id"):
        try:
            dag_run_id = UUID(q["dag_run_id"])
        except ValueError:
            raise InvalidInput("dag_run_id is not a UUID") from None
    for name, pattern in (("type", TASK_TYPE_PATTERN), ("queue", QUEUE_NAME_PATTERN)):
        value = q.get(name)
        if value is not None and not pattern.fullmatch(value):
            raise InvalidInput(f"{name} must match {pattern.pattern}")
    page = await request.app[ENGINE].list_tasks(
        status=status, type=q.get("type"), queue=q.get("queue"), dag_run_id=dag_run_id,
        cursor=q.get("cursor"), limit=_limit(request),
    )
    return _model_response(page)


@routes.get("/api/v1/tasks/{id}")
async def get_task(request: web.Request) -> web.Response:
    return _model_response(await request.app[ENGINE].get_task(_uuid(request, "id", "task")))


@routes.post("/api/v1/tasks/{id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    return _model_response(await request.app[ENGINE].cancel_task(_uuid(request, "id", "task")))


@routes.post("/api/v1/dags")
async def submit_dag(request: web.Request) -> web.Response:
    submission = await _body(request, DagSubmission)
    run_id = await request.app[ENGINE].submit_dag(submission)
    return _model_response(DagAccepted(dag_run_id=run_id), status=202)


@routes.get("/api/v1/dags/{id}")
async def get_dag(request: web.Request) -> web.Response:
    return _model_response(await request.app[ENGINE].get_dag_run(_uuid(request, "id", "DAG run")))


@routes.post("/api/v1/dags/{id}/cancel")
async def cancel_dag(request: web.Request) -> web.Response:
    return _model_response(await request.app[ENGINE].cancel_dag_run(_uuid(request, "id", "DAG run")))


@routes.get("/api/v1/dlq")
async def list_dlq(request: web.Request) -> web.Response:
    page = await request.app[ENGINE].list_tasks(
        status=TaskStatus.DLQ.value, cursor=request.query.get("cursor"), limit=_limit(request)
    )
    return _model_response(page)


@routes.post("/api/v1/dlq/{task_id}/retry")
async def retry_dlq(request: web.Request) -> web.Response:
    return _model_response(await request.app[ENGINE].retry_dead_letter(_uuid(request, "task_id", "task")))
