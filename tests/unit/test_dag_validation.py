from __future__ import annotations

import pytest

from taskflow.core.dag import validate_dag
from taskflow.core.durations import parse_duration
from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagEdge, DagStep


def _dag(n: int, edges: list[tuple[str, str]]) -> tuple[list[DagStep], list[DagEdge]]:
    return [DagStep(id=f"s{i}", type="noop") for i in range(n)], [DagEdge(**{"from": f, "to": t}) for f, t in edges]


def test_topological_order() -> None:
    steps, edges = _dag(4, [("s0", "s1"), ("s0", "s2"), ("s1", "s3"), ("s2", "s3")])
    order = validate_dag(steps, edges, max_steps=100, max_edges=100)
    assert order.index("s0") < order.index("s1") < order.index("s3") and order.index("s2") < order.index("s3")


def test_cycle_is_spelled_out() -> None:
    steps, edges = _dag(4, [("s0", "s1"), ("s1", "s2"), ("s2", "s1"), ("s2", "s3")])
    with pytest.raises(InvalidInput) as info:
        validate_dag(steps, edges, max_steps=100, max_edges=100)
    cycle = info.value.details["cycle"]
    assert cycle[0] == cycle[-1] and set(cycle) == {"s1", "s2"}


def test_ten_thousand_steps_accepted() -> None:
    steps, edges = _dag(10_000, [(f"s{i}", f"s{i + 1}") for i in range(9_999)])
    assert len(validate_dag(steps, edges, max_steps=20_000, max_edges=100_000)) == 10_000


def test_limits() -> None:
    steps, edges = _dag(3, [])
    with pytest.raises(InvalidInput, match="at most 2 steps"):
        validate_dag(steps, edges, max_steps=2, max_edges=10)


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60.0), ("100ms", 0.1), ("1m30s", 90.0), ("2.5", 2.5), (3, 3.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="Go-style"):
        parse_duration("soon")
