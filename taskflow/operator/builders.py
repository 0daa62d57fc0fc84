"""Pure functions of the TaskDag operator: spec in, status / condition / Event dicts out.

Nothing here talks to Kubernetes, PostgreSQL or Redis, so all of it is unit-tested without a cluster.
The kopf handlers (`taskdags.py`, `status_follow.py`) only fetch, call these, and patch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from taskflow.core.dag import validate_dag
from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagRunView, DagSubmission
from taskflow.core.status import DagRunStatus, TaskStatus

GROUP = "taskflow.io"
VERSION = "v1alpha1"
PLURAL = "taskdags"
KIND = "TaskDag"
IDEMPOTENCY_PREFIX = "taskdag:"

# Condition types (positive polarity, as the Kubernetes API conventions ask).
VALID = "Valid"  # the spec is a DAG the engine accepts
SUBMITTED = "Submitted"  # a run exists in the engine
COMPLETED = "Completed"  # the run reached a terminal state (reason says which)
SPEC_APPLIED = "SpecApplied"  # False when the spec was edited after submission (edits are not applied)

PHASE_BY_RUN_STATUS = {
    DagRunStatus.PENDING: "Pending",
    DagRunStatus.RUNNING: "Running",
    DagRunStatus.COMPLETED: "Succeeded",
    DagRunStatus.FAILED: "Failed",
    DagRunStatus.CANCELLED: "Cancelled",
}
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled", "Invalid"})

STATE_BY_TASK_STATUS = {
    TaskStatus.PENDING: "Pending",
    TaskStatus.QUEUED: "Queued",
    TaskStatus.RUNNING: "Running",
    TaskStatus.FAILED: "Retrying",  # the last attempt failed and a retry is scheduled
    TaskStatus.COMPLETED: "Succeeded",
    TaskStatus.DLQ: "DeadLettered",
    TaskStatus.CANCELLED: "Cancelled",
}

_MESSAGE_LIMIT = 1024  # Events truncate longer messages anyway; keeps status small


def idempotency_key(uid: str) -> str:
    """The engine key of a TaskDag: one run per CR uid, however often it is submitted."""
    return f"{IDEMPOTENCY_PREFIX}{uid}"


def rfc3339(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


# --- spec -----------------------------------------------------------------------------------------


def submission_from_spec(spec: Mapping[str, Any], uid: str, *, max_steps: int, max_edges: int) -> DagSubmission:
    """The engine submission of a TaskDag spec, validated as a whole.

    Raises `InvalidInput` saying what is wrong: what the CRD schema cannot catch (cycles, edges to
    unknown steps) and anything that bypassed the schema.
    """
    body = {"steps": spec.get("steps") or [], "edges": spec.get("edges") or []}
    try:
        submission = DagSubmission.model_validate({**body, "idempotency_key": idempotency_key(uid)})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"spec.{where}: {first['msg']}", details={"errors": len(exc.errors())}) from None
    validate_dag(submission.steps, submission.edges, max_steps=max_steps, max_edges=max_edges)
    return submission


# --- conditions -------------------------------------------------------------------------------------


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return `conditions` with `type_` set; lastTransitionTime changes only when the status flips."""
    value = "True" if status else "False"
    out: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type_:
            out.append(dict(condition))
            continue
        found = True
        same = condition.get("status") == value
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": _clip(message),
                "lastTransitionTime": condition.get("lastTransitionTime") if same else rfc3339(now),
                **({"observedGeneration": generation} if generation is not None else {}),
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": _clip(message),
                "lastTransitionTime": rfc3339(now),
                **({"observedGeneration": generation} if generation is not None else {}),
            }
        )
    return out


def condition_of(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


# --- status -----------------------------------------------------------------------------------------


def invalid_status(
    message: str, *, total_steps: int, generation: int | None, conditions: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """Status of a TaskDag the engine refused: nothing was written to PostgreSQL."""
    return {
        "phase": "Invalid",
        "message": _clip(message),
        "progress": f"0/{total_steps}",
        "observedGeneration": generation,
        "conditions": set_condition(conditions, VALID, False, "InvalidDag", message, generation=generation, now=now),
    }


def submitted_status(
    run_id: str, *, total_steps: int, generation: int | None, conditions: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """Status right after submission (the follower fills in the rest from the run)."""
    conditions = set_condition(conditions, VALID, True, "Validated", "the DAG is valid", generation=generation, now=now)
    conditions = set_condition(
        conditions, SUBMITTED, True, "RunCreated", f"DAG run {run_id}", generation=generation, now=now
    )
    conditions = set_condition(
        conditions, SPEC_APPLIED, True, "Submitted", "the spec was submitted", generation=generation, now=now
    )
    return {
        "phase": "Pending",
        "message": f"submitted as DAG run {run_id}",
        "dagRunId": run_id,
        "progress": f"0/{total_steps}",
        "observedGeneration": generation,
        "submittedGeneration": generation,
        "conditions": conditions,
    }


def spec_rejected_status(
    *, generation: int | None, submitted_generation: int | None, conditions: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """Status after a spec edit of a submitted TaskDag: the edit is recorded as not applied."""
    message = spec_immutable_message(submitted_generation)
    return {
        "observedGeneration": generation,
        "conditions": set_condition(
            conditions, SPEC_APPLIED, False, "SpecImmutable", message, generation=generation, now=now
        ),
    }


def spec_immutable_message(submitted_generation: int | None) -> str:
    which = f"generation {submitted_generation}" if submitted_generation else "the first spec"
    return (
        f"spec changes after submission are not applied; the run keeps {which}. "
        "To run a changed DAG, create a new TaskDag (or delete this one and apply it again)"
    )


def counts_of(run: DagRunView) -> dict[str, int]:
    by = run.counts
    return {
        "total": run.total_steps,
        "succeeded": by.get(TaskStatus.COMPLETED.value, 0),
        "failed": by.get(TaskStatus.DLQ.value, 0),
        "running": by.get(TaskStatus.RUNNING.value, 0),
        "pending": by.get(TaskStatus.PENDING.value, 0)
        + by.get(TaskStatus.QUEUED.value, 0)
        + by.get(TaskStatus.FAILED.value, 0),
        "cancelled": by.get(TaskStatus.CANCELLED.value, 0),
    }


def _run_message(run: DagRunView, phase: str) -> str:
    if phase == "Failed":
        dead = [s for s in run.steps if s.status == TaskStatus.DLQ]
        if dead:
            return _clip(f"step {dead[0].step_id!r} failed: {dead[0].error_message or 'no error message'}")
        return _clip(run.error_message or "the run failed")
    if phase == "Cancelled":
        return _clip(run.error_message or "the run was cancelled")
    counts = counts_of(run)
    return f"{counts['succeeded']} of {counts['total']} steps succeeded"


def status_from_run(
    run: DagRunView,
    *,
    conditions: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: datetime,
    max_listed_steps: int,
) -> dict[str, Any]:
    """The TaskDag status that mirrors a run read from PostgreSQL (a merge patch of `.status`)."""
    phase = PHASE_BY_RUN_STATUS[run.status]
    counts = counts_of(run)
    listed = run.steps[:max_listed_steps]
    steps = []
    for s in listed:
        entry: dict[str, Any] = {
            "id": s.step_id,
            "state": STATE_BY_TASK_STATUS[s.status],
            "attempts": s.attempts,
            "retries": s.retry_count,
            "taskId": str(s.task_id),
        }
        if s.error_message and s.status in (TaskStatus.FAILED, TaskStatus.DLQ):
            entry["message"] = _clip(s.error_message)
        steps.append(entry)
    message = _run_message(run, phase)
    conditions = set_condition(
        conditions, COMPLETED, phase in TERMINAL_PHASES, phase, message, generation=generation, now=now
    )
    return {
        "phase": phase,
        "message": message,
        "dagRunId": str(run.id),
        "progress": f"{counts['succeeded']}/{counts['total']}",
        "counts": counts,
        "steps": steps,
        "stepsTruncated": len(listed) < len(run.steps),
        "startedAt": rfc3339(run.started_at) if run.started_at else None,
        "finishedAt": rfc3339(run.finished_at) if run.finished_at else None,
        "conditions": conditions,
    }


def status_changed(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether patching `wanted` into `current` would change anything (ignoring transition times)."""
    for key, value in wanted.items():
        if key == "conditions":
            if _strip_times(current.get("conditions") or []) != _strip_times(value or []):
                return True
        elif current.get(key) != value:
            return True
    return False


def _strip_times(conditions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions), key=lambda c: c["type"]
    )


# --- events -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KubeEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class StepSeen:
    """What the operator last saw of one step: enough to notice a retry or a dead-letter once."""

    state: str
    retries: int


def seen_from_run(run: DagRunView) -> dict[str, StepSeen]:
    return {s.step_id: StepSeen(STATE_BY_TASK_STATUS[s.status], s.retry_count) for s in run.steps}


def seen_from_status(status: Mapping[str, Any]) -> dict[str, StepSeen]:
    """Seed after an operator restart from what the CR already shows, so Events are not posted twice."""
    return {
        s["id"]: StepSeen(s.get("state", "Pending"), int(s.get("retries", 0)))
        for s in status.get("steps") or []
        if "id" in s
    }


def events_for_change(
    before: Mapping[str, StepSeen] | None,
    run: DagRunView,
    previous_phase: str | None,
    *,
    max_step_events: int,
) -> list[KubeEvent]:
    """Events for what changed since `before`: step retries, dead-letters, and the run's completion.

    Steps absent from `before` (unknown after a restart of a truncated status) get no step Events,
    so a restart never repeats them. When `before` is None every step is unknown.
    """
    before = before or {}
    step_events: list[KubeEvent] = []
    for s in run.steps:
        seen = before.get(s.step_id)
        if seen is None:
            continue
        state = STATE_BY_TASK_STATUS[s.status]
        error = s.error_message or "no error message"
        # Both checks, not either: a step can be retried and then dead-lettered between two looks.
        if s.retry_count > seen.retries:
            step_events.append(
                KubeEvent(
                    "Warning",
                    "StepRetrying",
                    _clip(f"step {s.step_id!r} failed and is retried (retry {s.retry_count}): {error}"),
                )
            )
        if state == "DeadLettered" and seen.state != "DeadLettered":
            step_events.append(
                KubeEvent(
                    "Warning",
                    "StepDeadLettered",
                    _clip(f"step {s.step_id!r} failed after {s.attempts} attempt(s) and was dead-lettered: {error}"),
                )
            )
    events: list[KubeEvent] = step_events[:max_step_events]
    if len(step_events) > max_step_events:
        events.append(
            KubeEvent("Warning", "StepEventsSuppressed", f"{len(step_events) - max_step_events} more step Events not posted")
        )
    phase = PHASE_BY_RUN_STATUS[run.status]
    if phase != previous_phase and phase in TERMINAL_PHASES:
        counts = counts_of(run)
        message = _run_message(run, phase)
        if phase == "Succeeded":
            events.append(KubeEvent("Normal", "RunSucceeded", f"all {counts['total']} steps succeeded"))
        elif phase == "Failed":
            events.append(KubeEvent("Warning", "RunFailed", message))
        else:
            events.append(KubeEvent("Normal", "RunCancelled", message))
    return events


def status_patch_interval(total_steps: int, base_s: float) -> float:
    """Least time between two status patches of one TaskDag: large DAGs are read less often."""
    return base_s + total_steps / 5000.0
