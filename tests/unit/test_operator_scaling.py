"""Worker autoscaling decisions: annotations, desired replicas, stabilisation, pod-deletion-cost."""

from __future__ import annotations

import pytest

from taskflow.core.errors import InvalidInput
from taskflow.operator import scaling as s

POLICY = s.ScalingPolicy(
    queues=("default",), min_replicas=0, max_replicas=5, target_per_replica=4, prewarm_s=30, stabilisation_s=60
)


def _policy(**annotations: str) -> s.ScalingPolicy:
    return s.policy_from_annotations(annotations, default_prewarm_s=30, default_stabilisation_s=120)


def test_policy_from_annotations() -> None:
    policy = s.policy_from_annotations(
        {s.QUEUES_ANNOTATION: "a, b", s.MIN_ANNOTATION: "1", s.MAX_ANNOTATION: "7", s.TARGET_ANNOTATION: "16",
         s.PREWARM_ANNOTATION: "10"},
        default_prewarm_s=30, default_stabilisation_s=120,
    )  # fmt: skip
    assert policy == s.ScalingPolicy(("a", "b"), 1, 7, 16, 10.0, 120.0)


@pytest.mark.parametrize(
    ("annotations", "complaint"),
    [
        ({s.MAX_ANNOTATION: "3"}, "queues is missing"),
        ({s.QUEUES_ANNOTATION: "Bad Queue", s.MAX_ANNOTATION: "3"}, "must match"),
        ({s.QUEUES_ANNOTATION: "q"}, "max-replicas is missing"),
        ({s.QUEUES_ANNOTATION: "q", s.MAX_ANNOTATION: "x"}, "not a whole number"),
        ({s.QUEUES_ANNOTATION: "q", s.MAX_ANNOTATION: "1", s.MIN_ANNOTATION: "2"}, "below"),
        ({s.QUEUES_ANNOTATION: "q", s.MAX_ANNOTATION: "1", s.TARGET_ANNOTATION: "0"}, "must be >= 1"),
        ({s.QUEUES_ANNOTATION: "q", s.MAX_ANNOTATION: "1", s.PREWARM_ANNOTATION: "-1"}, "must be >= 0"),
    ],
)
def test_bad_annotations_are_named(annotations: dict[str, str], complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        _policy(**annotations)


def test_runnable_work_counts_ready_leased_and_due_soon() -> None:
    loads = [s.QueueLoad(ready=3, leased=2, due_soon=1), s.QueueLoad(ready=0, leased=0, due_soon=4)]
    assert s.runnable_work(loads) == 10


@pytest.mark.parametrize(("work", "replicas"), [(0, 0), (1, 1), (4, 1), (5, 2), (19, 5), (10_000, 5)])
def test_desired_replicas(work: int, replicas: int) -> None:
    assert s.desired_replicas(work, POLICY) == replicas


def test_desired_replicas_respects_min() -> None:
    policy = s.ScalingPolicy(("q",), 2, 5, 4, 0, 0)
    assert s.desired_replicas(0, policy) == 2 and s.desired_replicas(1, policy) == 2


def test_scale_up_is_immediate() -> None:
    replicas, history = s.stabilise(0, 3, [], now=100.0, window_s=60)
    assert replicas == 3 and history == [s.Recommendation(100.0, 3)]


def test_scale_down_waits_for_the_window_and_does_not_flap() -> None:
    history = [s.Recommendation(0.0, 4)]  # a new leader seeds its history with the current count
    replicas, history = s.stabilise(4, 0, history, now=10.0, window_s=60)
    assert replicas == 4  # the queue emptied a moment ago: keep the workers
    replicas, history = s.stabilise(4, 2, history, now=30.0, window_s=60)
    assert replicas == 4
    replicas, history = s.stabilise(4, 0, history, now=65.0, window_s=60)
    assert replicas == 2  # the highest recommendation of the last 60 s
    replicas, history = s.stabilise(2, 0, history, now=95.0, window_s=60)
    assert replicas == 0  # idle for a whole window: scale to zero
    assert all(95.0 - r.at < 60 for r in history)


def test_zero_window_scales_down_at_once() -> None:
    assert s.stabilise(5, 1, [s.Recommendation(0.0, 5)], now=0.0, window_s=0)[0] == 1


def test_deletion_costs_put_idle_pods_first() -> None:
    assert s.deletion_cost(None) == s.COST_UNKNOWN
    assert s.deletion_cost(0) < s.deletion_cost(None) < s.deletion_cost(1) < s.deletion_cost(5)
    pods = {"idle": {}, "busy": {s.DELETION_COST_ANNOTATION: "103"}, "new": {}}
    patches = s.deletion_cost_patches(pods, {"idle": 0, "busy": 3})
    assert patches == {"idle": s.COST_IDLE, "new": s.COST_UNKNOWN}  # "busy" already carries its cost
