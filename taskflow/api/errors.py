"""The one place that maps Taskflow errors to HTTP responses: always JSON `{"error": ...}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from taskflow.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, TaskflowError, Unavailable

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[TaskflowError], int]] = [
    (PayloadTooLarge, 413),
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
]


def error_response(status: int, message: str, details: object = None) -> web.Response:
    body: dict[str, object] = {"error": message}
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=status)


def describe_validation_error(exc: ValidationError) -> tuple[str, list[dict[str, object]]]:
    details = [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]} for e in exc.errors()
    ]
    first = details[0]
    more = f" (and {len(details) - 1} more problems)" if len(details) > 1 else ""
    return f"invalid request: {first['field']}: {first['problem']}{more}", details


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except TaskflowError as exc:
        status = next(code for cls, code in _STATUS + [(TaskflowError, 500)] if isinstance(exc, cls))
        if status == 503:
            log.warning("%s %s: %s", request.method, request.path, exc.message)
        return error_response(status, exc.message, exc.details)
    except ValidationError as exc:
        message, details = describe_validation_error(exc)
        return error_response(400, message, details)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"request body is too large: {exc.text}; send smaller batches")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason if exc.status != 404 else "no such endpoint: " + request.path)
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error; the server log has the details")
