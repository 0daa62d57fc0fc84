"""The TaskDag operator's pure functions: spec -> submission, run -> status, changes -> Events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagRunView, DagStepView
from taskflow.core.status import DagRunStatus, TaskStatus
from taskflow.operator import builders as b

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def _spec(steps: list[dict[str, Any]], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {"steps": steps, "edges": [{"from": f, "to": t} for f, t in edges]}


def _run(statuses: dict[str, tuple[TaskStatus, int]], status: DagRunStatus, error: str | None = None) -> DagRunView:
    steps = [
        DagStepView(
            step_id=sid, task_id=uuid.uuid4(), type="noop", queue="default", status=st,
            attempts=retries + (1 if st not in (TaskStatus.PENDING, TaskStatus.QUEUED) else 0), retry_count=retries,
            error_message=error if st in (TaskStatus.FAILED, TaskStatus.DLQ) else None, started_at=None, finished_at=None,
        )  # fmt: skip
        for sid, (st, retries) in statuses.items()
    ]
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1
    return DagRunView(
        id=uuid.uuid4(), status=status, total_steps=len(steps), counts=counts, error_message=None,
        created_at=NOW, started_at=NOW, finished_at=NOW + timedelta(seconds=3) if status in (
            DagRunStatus.COMPLETED, DagRunStatus.FAILED, DagRunStatus.CANCELLED) else None, steps=steps,
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")) or ["diamond.yaml"])
def test_examples_are_valid_submissions(name: str) -> None:
    manifest = yaml.safe_load((EXAMPLES / name).read_text())
    assert manifest["apiVersion"] == f"{b.GROUP}/{b.VERSION}" and manifest["kind"] == b.KIND
    submission = b.submission_from_spec(manifest["spec"], "uid-1", max_steps=100, max_edges=100)
    assert submission.idempotency_key == "taskdag:uid-1"


def test_cycle_is_invalid_with_the_cycle_named() -> None:
    spec = _spec([{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}], [("a", "b"), ("b", "a")])
    with pytest.raises(InvalidInput, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        b.submission_from_spec(spec, "u", max_steps=10, max_edges=10)


def test_schema_bypass_is_invalid_with_a_path() -> None:
    spec = _spec([{"id": "a", "type": "noop", "priority": 10**9}], [])
    with pytest.raises(InvalidInput, match=r"spec\.steps\.0\.priority"):
        b.submission_from_spec(spec, "u", max_steps=10, max_edges=10)


def test_unknown_edge_end_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="unknown step 'z'"):
        b.submission_from_spec(_spec([{"id": "a", "type": "noop"}], [("a", "z")]), "u", max_steps=10, max_edges=10)


def test_set_condition_keeps_transition_time_unless_status_flips() -> None:
    first = b.set_condition([], "Completed", False, "Running", "m", generation=1, now=NOW)
    later = NOW + timedelta(minutes=1)
    same = b.set_condition(first, "Completed", False, "Running", "m2", generation=1, now=later)
    assert same[0]["lastTransitionTime"] == "2026-11-29T02:00:00Z" and same[0]["message"] == "m2"
    flipped = b.set_condition(same, "Completed", True, "Succeeded", "done", generation=1, now=later)
    assert flipped[0] | {} == {
        "type": "Completed", "status": "True", "reason": "Succeeded", "message": "done",
        "lastTransitionTime": "2026-11-29T02:01:00Z", "observedGeneration": 1,
    }  # fmt: skip
    other = b.set_condition(flipped, "Valid", True, "Validated", "ok", generation=1, now=later)
    assert [c["type"] for c in other] == ["Completed", "Valid"]


def test_invalid_status() -> None:
    status = b.invalid_status("the steps form a cycle", total_steps=3, generation=2, conditions=[], now=NOW)
    assert status["phase"] == "Invalid" and status["progress"] == "0/3" and status["observedGeneration"] == 2
    (valid,) = status["conditions"]
    assert (valid["type"], valid["status"], valid["reason"]) == ("Valid", "False", "InvalidDag")


def test_submitted_status_has_run_id_and_conditions() -> None:
    status = b.submitted_status("r-1", total_steps=4, generation=1, conditions=[], now=NOW)
    assert status["phase"] == "Pending" and status["dagRunId"] == "r-1" and status["submittedGeneration"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Valid": "True", "Submitted": "True", "SpecApplied": "True"}  # fmt: skip


def test_status_from_succeeded_run() -> None:
    run = _run({s: (TaskStatus.COMPLETED, 0) for s in "abcd"}, DagRunStatus.COMPLETED)
    status = b.status_from_run(run, conditions=[], generation=1, now=NOW, max_listed_steps=500)
    assert status["phase"] == "Succeeded" and status["progress"] == "4/4"
    assert status["counts"] == {"total": 4, "succeeded": 4, "failed": 0, "running": 0, "pending": 0, "cancelled": 0}
    assert [s["state"] for s in status["steps"]] == ["Succeeded"] * 4 and status["stepsTruncated"] is False
    assert status["finishedAt"] == "2026-11-29T02:00:03Z"
    (completed,) = status["conditions"]
    assert (completed["status"], completed["reason"]) == ("True", "Succeeded")


def test_status_from_failed_run_names_the_step() -> None:
    run = _run(
        {"a": (TaskStatus.COMPLETED, 0), "b": (TaskStatus.DLQ, 1), "c": (TaskStatus.CANCELLED, 0)},
        DagRunStatus.FAILED,
        error="RuntimeError: simulated failure",
    )
    status = b.status_from_run(run, conditions=[], generation=1, now=NOW, max_listed_steps=500)
    assert status["phase"] == "Failed" and status["progress"] == "1/3"
    assert status["message"] == "step 'b' failed: RuntimeError: simulated failure"
    assert status["counts"]["failed"] == 1 and status["counts"]["cancelled"] == 1
    assert status["steps"][1] == {
        "id": "b", "state": "DeadLettered", "attempts": 2, "retries": 1,
        "taskId": str(run.steps[1].task_id), "message": "RuntimeError: simulated failure",
    }  # fmt: skip


def test_large_run_lists_only_some_steps() -> None:
    run = _run({f"s{i}": (TaskStatus.QUEUED, 0) for i in range(1200)}, DagRunStatus.RUNNING)
    status = b.status_from_run(run, conditions=[], generation=1, now=NOW, max_listed_steps=500)
    assert len(status["steps"]) == 500 and status["stepsTruncated"] is True
    assert status["counts"]["pending"] == 1200 and status["progress"] == "0/1200"


def test_status_changed_ignores_transition_times() -> None:
    run = _run({"a": (TaskStatus.RUNNING, 0)}, DagRunStatus.RUNNING)
    first = b.status_from_run(run, conditions=[], generation=1, now=NOW, max_listed_steps=5)
    again = b.status_from_run(run, conditions=[], generation=1, now=NOW + timedelta(seconds=9), max_listed_steps=5)
    assert not b.status_changed(first, again)
    done = _run({"a": (TaskStatus.COMPLETED, 0)}, DagRunStatus.COMPLETED)
    assert b.status_changed(first, b.status_from_run(done, conditions=[], generation=1, now=NOW, max_listed_steps=5))


def test_events_for_retry_dead_letter_and_completion() -> None:
    before = {"a": b.StepSeen("Succeeded", 0), "b": b.StepSeen("Running", 0), "c": b.StepSeen("Pending", 0)}
    retrying = _run(
        {"a": (TaskStatus.COMPLETED, 0), "b": (TaskStatus.FAILED, 1), "c": (TaskStatus.PENDING, 0)},
        DagRunStatus.RUNNING, error="boom",
    )  # fmt: skip
    events = b.events_for_change(before, retrying, "Running", max_step_events=10)
    assert [(e.type, e.reason) for e in events] == [("Warning", "StepRetrying")]
    assert "'b'" in events[0].message and "boom" in events[0].message

    dead = _run(
        {"a": (TaskStatus.COMPLETED, 0), "b": (TaskStatus.DLQ, 1), "c": (TaskStatus.CANCELLED, 0)},
        DagRunStatus.FAILED, error="boom",
    )  # fmt: skip
    events = b.events_for_change(b.seen_from_run(retrying), dead, "Running", max_step_events=10)
    assert [(e.type, e.reason) for e in events] == [("Warning", "StepDeadLettered"), ("Warning", "RunFailed")]
    # Seen again (a re-delivered notification, or a restart seeded from the CR): nothing new.
    assert b.events_for_change(b.seen_from_run(dead), dead, "Failed", max_step_events=10) == []


def test_retry_seen_late_still_posts_one_event() -> None:
    # The step already runs its second attempt when the operator looks: the retry count tells.
    run = _run({"a": (TaskStatus.RUNNING, 1)}, DagRunStatus.RUNNING)
    events = b.events_for_change({"a": b.StepSeen("Running", 0)}, run, "Running", max_step_events=10)
    assert [e.reason for e in events] == ["StepRetrying"]


def test_retry_and_dead_letter_between_two_looks_give_both_events() -> None:
    run = _run({"a": (TaskStatus.DLQ, 1)}, DagRunStatus.FAILED, error="boom")
    events = b.events_for_change({"a": b.StepSeen("Queued", 0)}, run, "Running", max_step_events=10)
    assert [e.reason for e in events] == ["StepRetrying", "StepDeadLettered", "RunFailed"]


def test_unknown_steps_get_no_events_and_step_events_are_capped() -> None:
    run = _run({f"s{i}": (TaskStatus.DLQ, 0) for i in range(30)}, DagRunStatus.FAILED, error="x")
    assert [e.reason for e in b.events_for_change(None, run, "Failed", max_step_events=10)] == []
    before = {f"s{i}": b.StepSeen("Running", 0) for i in range(30)}
    reasons = [e.reason for e in b.events_for_change(before, run, "Running", max_step_events=10)]
    assert reasons == ["StepDeadLettered"] * 10 + ["StepEventsSuppressed", "RunFailed"]


def test_seen_from_status_round_trips() -> None:
    run = _run({"a": (TaskStatus.FAILED, 2)}, DagRunStatus.RUNNING, error="e")
    status = b.status_from_run(run, conditions=[], generation=1, now=NOW, max_listed_steps=5)
    assert b.seen_from_status(status) == b.seen_from_run(run) == {"a": b.StepSeen("Retrying", 2)}


def test_spec_rejected_status_keeps_other_conditions() -> None:
    submitted = b.submitted_status("r", total_steps=1, generation=1, conditions=[], now=NOW)
    status = b.spec_rejected_status(generation=2, submitted_generation=1, conditions=submitted["conditions"], now=NOW)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["SpecApplied"]["status"] == "False" and by_type["SpecApplied"]["reason"] == "SpecImmutable"
    assert by_type["SpecApplied"]["observedGeneration"] == 2 and by_type["Submitted"]["status"] == "True"
    assert "generation 1" in by_type["SpecApplied"]["message"]


def test_patch_interval_grows_with_size() -> None:
    assert b.status_patch_interval(4, 1.0) == pytest.approx(1.0008)
    assert b.status_patch_interval(10_000, 1.0) == pytest.approx(3.0)


def test_kopf_diff_base_keeps_a_digest_not_the_spec() -> None:
    import kopf

    from taskflow.operator.main import DigestDiffBaseStorage

    storage = DigestDiffBaseStorage(prefix="taskflow.io", key="last-handled-configuration")
    spec = _spec([{"id": f"s{i}", "type": "noop"} for i in range(10_000)], [])
    body = kopf.Body({"apiVersion": "taskflow.io/v1alpha1", "kind": "TaskDag",
                      "metadata": {"name": "x", "labels": {"team": "a"}}, "spec": spec, "status": {"phase": "Running"}})  # fmt: skip
    essence = storage.build(body=body)
    assert set(essence["spec"]) == {"sha256"} and essence["metadata"]["labels"] == {"team": "a"}  # type: ignore[index]
    assert "status" not in essence
    edited = kopf.Body({**body, "spec": {**spec, "edges": [{"from": "s0", "to": "s1"}]}})
    assert storage.build(body=edited)["spec"] != essence["spec"]  # type: ignore[index]
    reordered = kopf.Body({**body, "spec": {"edges": [], "steps": spec["steps"]}})
    assert storage.build(body=reordered)["spec"] == essence["spec"]  # type: ignore[index]
