"""The OpenAPI 3 document, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from taskflow.core.models import (
    DagAccepted,
    DagRunView,
    DagSubmission,
    ErrorBody,
    TaskAccepted,
    TaskPage,
    TaskSubmission,
    TaskView,
)
from taskflow.api.batch import TaskBatch, TaskBatchAccepted

_MODELS: list[type[BaseModel]] = [
    TaskSubmission, TaskAccepted, TaskView, TaskPage, DagSubmission, DagAccepted, DagRunView, ErrorBody,
    TaskBatch, TaskBatchAccepted,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _responses(ok: int, model: type[BaseModel], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": "OK", "content": _json(model)}}
    for code in errors:
        out[str(code)] = {"description": "error", "content": _json(ErrorBody)}
    return out


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def build_openapi() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    page_params = [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        _query("cursor", {"type": "string"}),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Taskflow", "version": "1", "description": "Durable tasks and DAGs."},
        "paths": {
            "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/ready": {"get": {"summary": "Readiness: PostgreSQL and Redis reachable",
                               "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/api/v1/tasks": {
                "post": {"summary": "Enqueue a task", "requestBody": {"required": True, "content": _json(TaskSubmission)},
                         "responses": _responses(202, TaskAccepted, 400, 413, 503)},
                "get": {"summary": "List tasks, newest first",
                        "parameters": [_query("status", {"type": "string"}), _query("type", {"type": "string"}),
                                       _query("queue", {"type": "string"}),
                                       _query("dag_run_id", {"type": "string", "format": "uuid"}), *page_params],
                        "responses": _responses(200, TaskPage, 400)},
            },
            "/api/v1/tasks/batch": {
                "post": {"summary": "Enqueue many tasks in one transaction",
                         "requestBody": {"required": True, "content": _json(TaskBatch)},
                         "responses": _responses(202, TaskBatchAccepted, 400, 413, 503)},
            },
            "/api/v1/tasks/{id}": {"get": {"summary": "A task with its attempts", "parameters": [_id_param("id")],
                                           "responses": _responses(200, TaskView, 400, 404)}},
            "/api/v1/tasks/{id}/cancel": {"post": {"summary": "Cancel a task", "parameters": [_id_param("id")],
                                                   "responses": _responses(200, TaskView, 400, 404, 409)}},
            "/api/v1/dags": {"post": {"summary": "Submit a DAG",
                                      "requestBody": {"required": True, "content": _json(DagSubmission)},
                                      "responses": _responses(202, DagAccepted, 400, 413, 503)}},
            "/api/v1/dags/{id}": {"get": {"summary": "A DAG run with every step", "parameters": [_id_param("id")],
                                          "responses": _responses(200, DagRunView, 400, 404)}},
            "/api/v1/dags/{id}/cancel": {"post": {"summary": "Cancel a DAG run", "parameters": [_id_param("id")],
                                                  "responses": _responses(200, DagRunView, 400, 404, 409)}},
            "/api/v1/dlq": {"get": {"summary": "Dead-lettered tasks", "parameters": page_params,
                                    "responses": _responses(200, TaskPage, 400)}},
            "/api/v1/dlq/{task_id}/retry": {"post": {"summary": "Retry a dead-lettered task",
                                                     "parameters": [_id_param("task_id")],
                                                     "responses": _responses(200, TaskView, 400, 404, 409)}},
        },
        "components": {"schemas": schemas},
    }
