"""The benchmark's own method (bench/): the exactly-once check and the per-trial ratios it reports."""

from __future__ import annotations

import pytest

from bench.report import METRICS, ratios
from bench.run import ExactlyOnceError, Rec, _pct, check_once


def _recs(*ids: str) -> list[Rec]:
    return [Rec(i, 0.0, 1.0, 2.0, 1) for i in ids]


def test_exactly_once_accepts_each_id_once() -> None:
    check_once(_recs("b0", "b1", "b2"), 3, "b")


@pytest.mark.parametrize(
    ("ids", "n", "what"),
    [
        (("b0", "b1", "b1"), 3, "distinct"),  # a duplicate execution
        (("b0", "b1"), 3, "executions"),  # a lost task
        (("b0", "b1", "q7"), 3, "other workloads"),  # a late record of another workload
    ],
)
def test_exactly_once_rejects(ids: tuple[str, ...], n: int, what: str) -> None:
    with pytest.raises(ExactlyOnceError, match=what):
        check_once(_recs(*ids), n, "b")


def test_ratios_pair_trials_and_point_the_same_way_for_rates_and_times() -> None:
    burn = next(m for m in METRICS if m[0] == "burn")
    chain = next(m for m in METRICS if m[0] == "chain")
    turns = [
        {"system": "taskflow", "profile": "p", "trial": 0, "errors": {}, "burn_per_s": 300.0, "chain_s": 1.0},
        {"system": "peer", "profile": "p", "trial": 0, "errors": {}, "burn_per_s": 100.0, "chain_s": 4.0},
        {"system": "taskflow", "profile": "p", "trial": 1, "errors": {}, "burn_per_s": 200.0, "chain_s": 2.0},
        {"system": "peer", "profile": "p", "trial": 1, "errors": {}, "burn_per_s": 100.0, "chain_s": 2.0},
        {"system": "peer", "profile": "p", "trial": 2, "errors": {"turn": "x"}, "burn_per_s": 1.0},
    ]
    results = {"turns": turns}
    assert ratios(results, "p", "peer", burn[2], burn[3]) == [3.0, 2.0]  # Taskflow / peer
    assert ratios(results, "p", "peer", chain[2], chain[3]) == [4.0, 1.0]  # peer / Taskflow


def test_percentile() -> None:
    assert _pct([5.0, 1.0, 3.0], 50) == 3.0
    assert _pct(list(map(float, range(101))), 99) == 99.0
