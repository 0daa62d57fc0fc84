"""Worker autoscaling decisions as pure functions: annotations and queue counts in, replicas out.

The policy mirrors the HorizontalPodAutoscaler's: scale up at once to what the work needs; scale down
only to the highest recommendation of the last stabilisation window, so a queue that empties for
a moment does not make workers flap. Only work that can run now counts (ready + leased), plus
delayed tasks that fall due within the pre-warm horizon, so workers are up when they come due.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskflow.core.errors import InvalidInput
from taskflow.core.names import QUEUE_NAME_PATTERN

COMPONENT_LABEL = "taskflow.io/component"
WORKER_COMPONENT = "worker"
QUEUES_ANNOTATION = "taskflow.io/queues"
MIN_ANNOTATION = "taskflow.io/min-replicas"
MAX_ANNOTATION = "taskflow.io/max-replicas"
TARGET_ANNOTATION = "taskflow.io/target-per-replica"
PREWARM_ANNOTATION = "taskflow.io/prewarm-seconds"
STABILISATION_ANNOTATION = "taskflow.io/scale-down-stabilisation-seconds"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

# pod-deletion-cost values: lower is removed first by the ReplicaSet controller.
COST_IDLE = -100  # heartbeat says no task in flight: remove these first
COST_UNKNOWN = 0  # no heartbeat yet (starting) or it expired
COST_BUSY_BASE = 100  # busy pods: 100 + tasks in flight, so the busiest stays longest


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    queues: tuple[str, ...]
    min_replicas: int
    max_replicas: int
    target_per_replica: int
    prewarm_s: float
    stabilisation_s: float


def _int(annotations: Mapping[str, str], key: str, default: int | None, *, low: int) -> int:
    raw = annotations.get(key)
    if raw is None:
        if default is None:
            raise InvalidInput(f"annotation {key} is missing; set it to a whole number >= {low}")
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise InvalidInput(f"annotation {key}={raw!r} is not a whole number") from None
    if value < low:
        raise InvalidInput(f"annotation {key}={value} must be >= {low}")
    return value


def _seconds(annotations: Mapping[str, str], key: str, default: float) -> float:
    raw = annotations.get(key)
    if raw is None:
        return default
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise InvalidInput(f"annotation {key}={raw!r} is not a number of seconds") from None
    if value < 0 or math.isnan(value):
        raise InvalidInput(f"annotation {key}={raw!r} must be >= 0")
    return value


def policy_from_annotations(
    annotations: Mapping[str, str], *, default_prewarm_s: float, default_stabilisation_s: float
) -> ScalingPolicy:
    """Read a worker Deployment's scaling annotations; `InvalidInput` names the bad one."""
    raw_queues = annotations.get(QUEUES_ANNOTATION, "")
    queues = tuple(q.strip() for q in raw_queues.split(",") if q.strip())
    if not queues:
        raise InvalidInput(f'annotation {QUEUES_ANNOTATION} is missing or empty; set it to the queues, e.g. "default"')
    for q in queues:
        if not QUEUE_NAME_PATTERN.fullmatch(q):
            raise InvalidInput(f"annotation {QUEUES_ANNOTATION}: queue name {q!r} must match {QUEUE_NAME_PATTERN.pattern}")
    low = _int(annotations, MIN_ANNOTATION, 0, low=0)
    high = _int(annotations, MAX_ANNOTATION, None, low=0)
    if high < low:
        raise InvalidInput(f"annotation {MAX_ANNOTATION}={high} is below {MIN_ANNOTATION}={low}")
    return ScalingPolicy(
        queues=queues,
        min_replicas=low,
        max_replicas=high,
        target_per_replica=_int(annotations, TARGET_ANNOTATION, 1, low=1),
        prewarm_s=_seconds(annotations, PREWARM_ANNOTATION, default_prewarm_s),
        stabilisation_s=_seconds(annotations, STABILISATION_ANNOTATION, default_stabilisation_s),
    )


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """Counts of one queue at one moment (see `RedisQueue.load`)."""

    ready: int  # claimable now
    leased: int  # claimed by a worker (running or about to)
    due_soon: int  # delayed, due within the pre-warm horizon


def runnable_work(loads: Sequence[QueueLoad]) -> int:
    return sum(load.ready + load.leased + load.due_soon for load in loads)


def desired_replicas(work: int, policy: ScalingPolicy) -> int:
    """ceil(work / target), clamped to [min, max]; `min` when there is no work (zero scales to zero)."""
    wanted = math.ceil(work / policy.target_per_replica) if work > 0 else 0
    return max(policy.min_replicas, min(policy.max_replicas, wanted))


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: float  # monotonic seconds
    replicas: int


def stabilise(
    current: int, desired: int, history: Sequence[Recommendation], *, now: float, window_s: float
) -> tuple[int, list[Recommendation]]:
    """The replicas to set now, and the recommendation history to keep for the next call.

    Up: `desired` at once. Down: the highest recommendation of the last `window_s` seconds (never
    below `desired`, never above `current`), so the count steps down only after the work stayed low
    for the whole window. A new leader starts with history [(now, current)], so it waits a full
    window before its first scale-down.
    """
    kept = [r for r in history if now - r.at < window_s]
    kept.append(Recommendation(now, desired))
    if desired >= current:
        return desired, kept
    return min(current, max(r.replicas for r in kept)), kept


def deletion_cost(busy_slots: int | None) -> int:
    """pod-deletion-cost of a worker pod from its heartbeat's busy count (None: no heartbeat)."""
    if busy_slots is None:
        return COST_UNKNOWN
    if busy_slots <= 0:
        return COST_IDLE
    return COST_BUSY_BASE + busy_slots


def deletion_cost_patches(
    pods: Mapping[str, Mapping[str, str]], busy_by_pod: Mapping[str, int | None]
) -> dict[str, int]:
    """Pods (name -> current annotations) whose deletion cost must change, with the new cost."""
    out: dict[str, int] = {}
    for name, annotations in pods.items():
        cost = deletion_cost(busy_by_pod.get(name))
        if annotations.get(DELETION_COST_ANNOTATION) != str(cost):
            out[name] = cost
    return out
