"""The checker on hand-made histories: a clean one passes, and each broken invariant is caught."""

from __future__ import annotations

import dataclasses
from uuid import UUID, uuid4

from tests.chaos.checker import Attempt, Execution, History, Task, Transition, check

RUN = uuid4()
A, B, C = uuid4(), uuid4(), uuid4()  # a -> b in RUN; c standalone, dead-lettered


def _clean() -> History:
    h = History(acknowledged_tasks={C}, acknowledged_runs={RUN}, runs={RUN: "completed"}, edges=[(A, B)])
    h.tasks = {
        A: Task(A, "completed", fence=3, max_retries=1, result={"fence": 3}, dag_run_id=RUN),
        B: Task(B, "completed", fence=4, max_retries=1, result={"fence": 4}, dag_run_id=RUN),
        C: Task(C, "dlq", fence=6, max_retries=1),
    }
    h.attempts = [
        Attempt(A, 1, 1, "w1", "lease_expired"),  # w1 was killed
        Attempt(A, 2, 3, "w2", "completed"),
        Attempt(B, 1, 4, "w2", "completed"),
        Attempt(C, 1, 2, "w1", "failed", "RuntimeError: boom"),
        Attempt(C, 2, 6, "w2", "dead_lettered", "RuntimeError: boom"),
    ]
    seq = iter(range(1, 100))
    h.transitions = [
        Transition(next(seq), A, None, "queued", 0),
        Transition(next(seq), B, None, "pending", 0),
        Transition(next(seq), C, None, "queued", 0),
        Transition(next(seq), A, "queued", "running", 1),
        Transition(next(seq), C, "queued", "running", 2),
        Transition(next(seq), A, "running", "failed", 1),
        Transition(next(seq), C, "running", "failed", 2),
        Transition(next(seq), A, "failed", "running", 3),
        Transition(next(seq), A, "running", "completed", 3),
        Transition(next(seq), B, "pending", "queued", 0),
        Transition(next(seq), B, "queued", "running", 4),
        Transition(next(seq), C, "failed", "running", 6),
        Transition(next(seq), B, "running", "completed", 4),
        Transition(next(seq), C, "running", "dlq", 6),
    ]
    h.executions = [
        Execution(A, 1, 1, "w1", "start"),
        Execution(A, 3, 2, "w2", "start"),
        Execution(A, 3, 2, "w2", "ok"),
        Execution(B, 4, 1, "w2", "start"),
        Execution(B, 4, 1, "w2", "ok"),
        Execution(C, 2, 1, "w1", "start"),
        Execution(C, 2, 1, "w1", "fail"),
        Execution(C, 6, 2, "w2", "start"),
        Execution(C, 6, 2, "w2", "fail"),
    ]
    return h


def _only(report_violations: dict[str, list[str]], name: str) -> None:
    broken = {k for k, found in report_violations.items() if found}
    assert broken == {name}, report_violations


def test_clean_history_passes() -> None:
    report = check(_clean())
    assert report.ok, report.summary()
    assert report.figures["duplicate_executions"] == 1  # A ran on w1 (killed) and again on w2
    assert report.figures["double_completed"] == 0 and report.figures["lost"] == 0


def test_lost_task_detected() -> None:
    h = _clean()
    h.acknowledged_tasks.add(uuid4())
    report = check(h)
    _only(report.violations, "lost")
    assert report.figures["lost"] == 1


def test_unfinished_task_detected() -> None:
    h = _clean()
    h.tasks[C] = dataclasses.replace(h.tasks[C], status="failed")
    h.transitions = [t for t in h.transitions if not (t.task_id == C and t.new in ("running", "dlq") and t.fence == 6)]
    h.attempts = [a for a in h.attempts if not (a.task_id == C and a.attempt == 2)]
    h.redis_due = {C}
    assert check(h).violations["lost"]


def test_double_completion_detected() -> None:
    h = _clean()
    h.attempts.append(Attempt(B, 2, 5, "w1", "completed"))
    report = check(h)
    assert report.violations["completed_once"] and report.figures["double_completed"] == 1


def test_stale_fence_write_detected() -> None:
    h = _clean()
    # The paused holder of fence 1 wrote its result after fence 3 had been issued.
    h.tasks[A] = dataclasses.replace(h.tasks[A], result={"fence": 1})
    _only(check(h).violations, "completed_once")


def test_result_from_no_execution_detected() -> None:
    h = _clean()
    h.executions = [e for e in h.executions if e.task_id != B]
    assert check(h).violations["completed_once"]


def test_illegal_transition_detected() -> None:
    h = _clean()
    h.transitions.append(Transition(99, C, "dlq", "completed", 6))
    h.tasks[C] = dataclasses.replace(h.tasks[C], status="completed", result={"fence": 6})
    assert check(h).violations["transitions"]


def test_transition_gap_detected() -> None:
    h = _clean()
    h.transitions = [t for t in h.transitions if not (t.task_id == A and t.new == "failed")]
    _only(check(h).violations, "transitions")


def test_step_started_before_parent_completed_detected() -> None:
    h = _clean()
    moved = []
    for t in h.transitions:
        if t.task_id == B and t.old == "pending":
            t = dataclasses.replace(t, seq=4)  # B became queued and ran before A completed
        elif t.task_id == B and t.new == "running":
            t = dataclasses.replace(t, seq=5)
        moved.append(dataclasses.replace(t, seq=t.seq * 10) if t.task_id != B else t)
    h.transitions = moved
    _only(check(h).violations, "dag_order")


def test_unfinished_run_detected() -> None:
    h = _clean()
    h.runs[RUN] = "running"
    _only(check(h).violations, "dag_order")


def test_completed_run_with_unfinished_steps_detected() -> None:
    h = _clean()
    h.runs[RUN] = "failed"  # no step of RUN is in the DLQ
    _only(check(h).violations, "dag_order")


def test_too_many_attempts_detected() -> None:
    h = _clean()
    h.attempts.append(Attempt(C, 3, 7, "w1", "dead_lettered", "RuntimeError: boom"))
    h.executions += [Execution(C, 7, 3, "w1", "start"), Execution(C, 7, 3, "w1", "fail")]
    _only(check(h).violations, "attempts")


def test_dlq_before_running_out_detected() -> None:
    h = _clean()
    h.attempts = [a for a in h.attempts if not (a.task_id == C and a.attempt == 1)]
    _only(check(h).violations, "attempts")


def test_ran_out_but_not_dlq_detected() -> None:
    h = _clean()
    h.attempts.insert(0, Attempt(B, 0, 0, "w1", "lease_expired"))
    h.attempts.insert(0, Attempt(B, -1, 0, "w1", "lease_expired"))
    _only(check(h).violations, "attempts")


def test_permanent_error_may_dead_letter_early() -> None:
    h = _clean()
    h.attempts = [a for a in h.attempts if not (a.task_id == C and a.attempt == 1)]
    h.attempts = [
        dataclasses.replace(a, error="PermanentTaskError: bad input") if a.task_id == C else a for a in h.attempts
    ]
    assert check(h).ok


def test_redis_missing_a_due_task_detected() -> None:
    h = _clean()
    h.tasks[C] = dataclasses.replace(h.tasks[C], status="queued")
    h.transitions.append(Transition(100, C, "dlq", "queued", 6))  # a manual DLQ retry
    h.acknowledged_tasks.discard(C)
    report = check(h)
    assert report.violations["redis_in_step"]
    h.redis_due = {C}
    assert not check(h).violations["redis_in_step"]


def test_redis_holding_a_finished_task_detected() -> None:
    h = _clean()
    h.redis_due = {A}
    _only(check(h).violations, "redis_in_step")
    h.redis_due = set()
    h.redis_live_leases = {B}
    _only(check(h).violations, "redis_in_step")
    h.redis_live_leases = {UUID(int=1)}
    _only(check(h).violations, "redis_in_step")


def test_failure_written_without_a_failing_handler_detected() -> None:
    h = _clean()
    # Fence 1 of A was lost to a kill; a write of `failed` under it would be a stale write.
    h.attempts = [dataclasses.replace(a, outcome="failed") if (a.task_id, a.fence) == (A, 1) else a for a in h.attempts]
    _only(check(h).violations, "completed_once")


def test_completion_without_a_finished_handler_detected() -> None:
    h = _clean()
    h.executions = [e for e in h.executions if not (e.task_id == B and e.event == "ok")]
    _only(check(h).violations, "completed_once")
