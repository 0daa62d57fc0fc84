"""Checks a recorded run against the invariants of Taskflow's promise (issue 4).

Pure functions over a `History`: what the submitter was acknowledged, what every handler
execution recorded, and what PostgreSQL and Redis hold after the run drained (collected by
`tests/chaos/harness.py`). Nothing here talks to a server, so `test_checker.py` feeds it
hand-made histories that break each invariant and proves each one is detected.

Invariants (names are the keys of `Report.violations`):
- `lost`: every acknowledged task and DAG run exists and is terminal;
- `completed_once`: at most one recorded completion per task, and the completion that was
  recorded came from the current fence: the stored result carries the fence of the handler
  execution that produced it, which must be the task's last fence and a real execution; every
  worker-written outcome (completed, failed) matches a handler that ended that way under that fence;
- `transitions`: each task's recorded status changes start at `queued`/`pending`, follow the
  allowed table, chain without gaps and end at the status the task has;
- `dag_order`: every run terminal and consistent with its steps; no step started (or any of its
  handlers ran) before all its parents completed;
- `attempts`: counted attempts (failed, lease expired, dead-lettered) never exceed
  max_retries + 1, and the DLQ holds exactly the tasks that ran out (or failed permanently);
- `redis_in_step`: after a reconciler pass Redis holds exactly the tasks PostgreSQL says are
  due, and no unexpired Redis lease for a task that is not running.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from taskflow.core.status import ALLOWED_TASK_TRANSITIONS, TaskStatus

TERMINAL = {"completed", "dlq", "cancelled"}
TERMINAL_RUNS = {"completed", "failed", "cancelled"}
COUNTED_OUTCOMES = {"failed", "lease_expired", "dead_lettered"}
INVARIANTS = ("lost", "completed_once", "transitions", "dag_order", "attempts", "redis_in_step")


@dataclass(frozen=True, slots=True)
class Task:
    id: UUID
    status: str
    fence: int
    max_retries: int
    result: Any = None
    dag_run_id: UUID | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    task_id: UUID
    attempt: int
    fence: int
    worker_id: str | None
    outcome: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded status change, in commit-compatible order (`seq` from a sequence)."""

    seq: int
    task_id: UUID
    old: str | None  # None: the row was inserted
    new: str
    fence: int


@dataclass(frozen=True, slots=True)
class Execution:
    """One line of a handler's log: an execution started, or ended ok / by failing."""

    task_id: UUID
    fence: int
    attempt: int
    worker_id: str
    event: str  # start | ok | fail


@dataclass
class History:
    acknowledged_tasks: set[UUID] = field(default_factory=set)
    acknowledged_runs: set[UUID] = field(default_factory=set)
    tasks: dict[UUID, Task] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    edges: list[tuple[UUID, UUID]] = field(default_factory=list)
    runs: dict[UUID, str] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    redis_due: set[UUID] = field(default_factory=set)  # ready and delayed members
    redis_live_leases: set[UUID] = field(default_factory=set)  # lease entries not yet expired


@dataclass
class Report:
    violations: dict[str, list[str]]
    figures: dict[str, int]

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def summary(self, limit: int = 5) -> str:
        lines = []
        for name, found in self.violations.items():
            if found:
                lines.append(f"{name}: {len(found)} violations, e.g. " + "; ".join(found[:limit]))
        return "\n".join(lines) or "all invariants hold"


def check(h: History) -> Report:
    attempts_by_task: dict[UUID, list[Attempt]] = defaultdict(list)
    for a in h.attempts:
        attempts_by_task[a.task_id].append(a)
    for rows in attempts_by_task.values():
        rows.sort(key=lambda a: a.attempt)
    transitions_by_task: dict[UUID, list[Transition]] = defaultdict(list)
    for t in sorted(h.transitions, key=lambda t: t.seq):
        transitions_by_task[t.task_id].append(t)
    executions_by_task: dict[UUID, list[Execution]] = defaultdict(list)
    for e in h.executions:
        executions_by_task[e.task_id].append(e)

    v: dict[str, list[str]] = {name: [] for name in INVARIANTS}
    lost = _check_lost(h, v["lost"])
    double = _check_completed_once(h, attempts_by_task, transitions_by_task, executions_by_task, v["completed_once"])
    _check_transitions(h, transitions_by_task, v["transitions"])
    _check_dag_order(h, transitions_by_task, executions_by_task, v["dag_order"])
    _check_attempts(h, attempts_by_task, v["attempts"])
    _check_redis(h, v["redis_in_step"])

    executions = [e for e in h.executions if e.event == "start"]
    failed_fences = {(e.task_id, e.fence) for e in h.executions if e.event == "fail"}
    duplicates = 0
    for task_id, rows in executions_by_task.items():
        useful = {e.fence for e in rows if e.event == "start" and (task_id, e.fence) not in failed_fences}
        duplicates += max(0, len(useful) - 1)
    statuses = Counter(t.status for t in h.tasks.values())
    figures = {
        "tasks": len(h.tasks),
        "acknowledged_tasks": len(h.acknowledged_tasks),
        "dag_runs": len(h.runs),
        "completed": statuses["completed"],
        "dlq": statuses["dlq"],
        "cancelled": statuses["cancelled"],
        "lost": lost,
        "double_completed": double,
        "executions": len(executions),
        "duplicate_executions": duplicates,
        "lease_expired_attempts": sum(1 for a in h.attempts if a.outcome == "lease_expired"),
        # Ran out of retries through lost leases (kills, pauses, cut starts), not handler failures.
        "dlq_by_lease_expiry": sum(
            1 for t in h.tasks.values()
            if t.status == "dlq" and attempts_by_task.get(t.id) and attempts_by_task[t.id][-1].outcome == "lease_expired"
        ),
        "violations": sum(len(found) for found in v.values()),
    }
    return Report(violations=v, figures=figures)


def _check_lost(h: History, out: list[str]) -> int:
    lost = 0
    for task_id in sorted(h.acknowledged_tasks):
        task = h.tasks.get(task_id)
        if task is None:
            out.append(f"acknowledged task {task_id} is not in PostgreSQL")
            lost += 1
        elif task.status not in TERMINAL:
            out.append(f"task {task_id} never finished: {task.status}")
            lost += 1
    for run_id in sorted(h.acknowledged_runs):
        if run_id not in h.runs:
            out.append(f"acknowledged DAG run {run_id} is not in PostgreSQL")
            lost += 1
    for task in h.tasks.values():
        if task.id not in h.acknowledged_tasks and task.status not in TERMINAL:
            out.append(f"task {task.id} (step of run {task.dag_run_id}) never finished: {task.status}")
            lost += 1
    return lost


def _check_completed_once(
    h: History,
    attempts_by_task: dict[UUID, list[Attempt]],
    transitions_by_task: dict[UUID, list[Transition]],
    executions_by_task: dict[UUID, list[Execution]],
    out: list[str],
) -> int:
    double = 0
    ended = {(e.task_id, e.fence, e.event) for e in h.executions if e.event in ("ok", "fail")}
    for a in h.attempts:
        # A worker's write must come from a handler that really ended that way under that fence
        # (the suite's handlers fail only on purpose, and log it before raising).
        if a.outcome == "completed" and (a.task_id, a.fence, "ok") not in ended:
            out.append(f"task {a.task_id}: attempt {a.attempt} recorded completed, but no handler finished under fence {a.fence}")
        elif a.outcome in ("failed", "dead_lettered") and (a.task_id, a.fence, "fail") not in ended:
            out.append(f"task {a.task_id}: attempt {a.attempt} recorded {a.outcome}, but no handler failed under fence {a.fence}")
    for task in h.tasks.values():
        attempts = attempts_by_task.get(task.id, [])
        completed = [a for a in attempts if a.outcome == "completed"]
        to_completed = [t for t in transitions_by_task.get(task.id, []) if t.new == "completed"]
        if len(completed) > 1 or len(to_completed) > 1:
            double += 1
            out.append(f"task {task.id} completed {max(len(completed), len(to_completed))} times")
            continue
        if task.status != "completed":
            if completed:
                out.append(f"task {task.id} is {task.status} but attempt {completed[0].attempt} is recorded completed")
            continue
        if not completed:
            out.append(f"task {task.id} is completed but no attempt is")
            continue
        done = completed[0]
        if done.attempt != attempts[-1].attempt:
            out.append(f"task {task.id}: attempt {done.attempt} completed but attempt {attempts[-1].attempt} came later")
        if done.fence != task.fence:
            out.append(f"task {task.id}: completion by fence {done.fence} accepted while the fence is {task.fence}")
        result_fence = task.result.get("fence") if isinstance(task.result, dict) else None
        if result_fence != task.fence:
            out.append(
                f"task {task.id}: stale write accepted: the stored result comes from fence {result_fence}, "
                f"the current fence is {task.fence}"
            )
        ran = {e.fence for e in executions_by_task.get(task.id, []) if e.event == "start"}
        if result_fence not in ran:
            out.append(f"task {task.id}: the stored result names fence {result_fence}, which no handler ran under")
    return double


def _check_transitions(h: History, by_task: dict[UUID, list[Transition]], out: list[str]) -> None:
    for task in h.tasks.values():
        chain = by_task.get(task.id, [])
        if not chain:
            out.append(f"task {task.id}: no recorded transitions")
            continue
        first = chain[0]
        if first.old is not None or first.new not in ("queued", "pending"):
            out.append(f"task {task.id}: history starts with {first.old} -> {first.new}, not an insert as queued/pending")
        for prev, cur in zip(chain, chain[1:]):
            if cur.old != prev.new:
                out.append(f"task {task.id}: went {prev.old} -> {prev.new}, then {cur.old} -> {cur.new} (a gap)")
            elif TaskStatus(cur.new) not in ALLOWED_TASK_TRANSITIONS[TaskStatus(cur.old)]:
                out.append(f"task {task.id}: illegal transition {cur.old} -> {cur.new}")
        if chain[-1].new != task.status:
            out.append(f"task {task.id}: history ends at {chain[-1].new} but the task is {task.status}")


def _check_dag_order(
    h: History,
    transitions_by_task: dict[UUID, list[Transition]],
    executions_by_task: dict[UUID, list[Execution]],
    out: list[str],
) -> None:
    for run_id, status in h.runs.items():
        steps = [t for t in h.tasks.values() if t.dag_run_id == run_id]
        if status not in TERMINAL_RUNS:
            out.append(f"DAG run {run_id} never finished: {status}")
        elif status == "completed" and any(s.status != "completed" for s in steps):
            out.append(f"DAG run {run_id} is completed but not all its steps are")
        elif status == "failed" and not any(s.status == "dlq" for s in steps):
            out.append(f"DAG run {run_id} failed with no dead-lettered step")
    for parent, child in h.edges:
        completed_at = [t.seq for t in transitions_by_task.get(parent, []) if t.new == "completed"]
        started_at = [t.seq for t in transitions_by_task.get(child, []) if t.new == "running"]
        if started_at and (not completed_at or min(started_at) < completed_at[0]):
            out.append(f"step {child} started before its parent {parent} completed")
        elif executions_by_task.get(child) and h.tasks.get(parent, None) is not None and not completed_at:
            out.append(f"a handler of step {child} ran although its parent {parent} never completed")


def _check_attempts(h: History, by_task: dict[UUID, list[Attempt]], out: list[str]) -> None:
    for task in h.tasks.values():
        attempts = by_task.get(task.id, [])
        counted = sum(1 for a in attempts if a.outcome in COUNTED_OUTCOMES)
        if counted > task.max_retries + 1:
            out.append(f"task {task.id}: {counted} counted attempts, max_retries is {task.max_retries}")
        permanent = bool(attempts) and "PermanentTaskError" in (attempts[-1].error or "")
        if task.status == "dlq" and counted != task.max_retries + 1 and not permanent:
            out.append(
                f"task {task.id} is in the DLQ after {counted} counted attempts (max_retries {task.max_retries})"
            )
        if task.status != "dlq" and counted > task.max_retries:
            out.append(f"task {task.id} ran out of retries ({counted} counted attempts) but is {task.status}, not dlq")


def _check_redis(h: History, out: list[str]) -> None:
    due = {t.id for t in h.tasks.values() if t.status in ("queued", "failed")}
    for task_id in sorted(due - h.redis_due):
        out.append(f"task {task_id} is due in PostgreSQL but Redis does not hold it")
    for task_id in sorted(h.redis_due - due):
        status = h.tasks[task_id].status if task_id in h.tasks else "unknown to PostgreSQL"
        out.append(f"Redis holds task {task_id} as due but PostgreSQL says {status}")
    for task_id in sorted(h.redis_live_leases):
        task = h.tasks.get(task_id)
        if task is None or task.status != "running":
            out.append(f"Redis holds a live lease on task {task_id}, which is {task.status if task else 'unknown'}")
