"""One root error; subclasses say what the caller should do next.

The HTTP layer maps these classes to status codes in exactly one place
(`taskflow.api.errors`), the CLI maps them to exit codes, the operator to CR conditions.
"""

from __future__ import annotations

from typing import Any


class TaskflowError(Exception):
    """Root of every error Taskflow raises on purpose."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(TaskflowError):
    """The request is wrong; fix it and send it again (HTTP 400/422, CR condition `Invalid`)."""


class PayloadTooLarge(InvalidInput):
    """The request is larger than the configured limit (HTTP 413)."""


class NotFound(TaskflowError):
    """The named task or DAG run does not exist (HTTP 404)."""


class Conflict(TaskflowError):
    """The request clashes with the current state, e.g. retrying a task that is not in the DLQ (HTTP 409)."""


class Unavailable(TaskflowError):
    """A backing service (PostgreSQL, Redis) is unreachable right now; retry later (HTTP 503)."""


class PermanentTaskError(Exception):
    """Raise from a handler to send the task straight to the dead-letter queue, without retries."""


class LeaseLost(TaskflowError):
    """This worker no longer holds the task (its lease expired or the task was cancelled); stop working on it."""
