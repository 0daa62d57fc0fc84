"""Property tests of DAG validation and of the request models' name patterns (pure, no servers)."""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskflow.core.dag import validate_dag
from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagEdge, DagStep, TaskSubmission
from taskflow.core.names import QUEUE_NAME_PATTERN, STEP_ID_PATTERN, TASK_TYPE_PATTERN

EXAMPLES = int(os.environ.get("TASKFLOW_FUZZ_EXAMPLES", "300")) // 3  # raise for a longer (nightly) run
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = {"max_steps": 1000, "max_edges": 5000}

step_ids = st.from_regex(STEP_ID_PATTERN, fullmatch=True)


@st.composite
def acyclic_dags(draw: st.DrawFn, max_steps: int = 25) -> tuple[list[str], list[tuple[str, str]]]:
    """Distinct step ids in a hidden topological order; edges only go forward in that order."""
    ids = draw(st.lists(step_ids, min_size=1, max_size=max_steps, unique=True))
    n = len(ids)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=min(len(pairs), 60))) if pairs else []
    edges = [(ids[i], ids[j]) for i, j in chosen]
    return ids, draw(st.permutations(edges))


Dag = tuple[list[str], list[tuple[str, str]]]


def build(
    ids: list[str], edges: list[tuple[str, str]], shuffle: list[int] | None = None
) -> tuple[list[DagStep], list[DagEdge]]:
    order = shuffle if shuffle is not None else range(len(ids))
    steps = [DagStep(id=ids[i], type="noop") for i in order]
    return steps, [DagEdge.model_validate({"from": a, "to": b}) for a, b in edges]


def reachable(edges: list[tuple[str, str]], start: str) -> set[str]:
    children: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        children[a].append(b)
    seen: set[str] = set()
    todo = [start]
    while todo:
        for child in children[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@FAST
@given(acyclic_dags(), st.randoms(use_true_random=False))
def test_acyclic_dags_are_accepted_in_a_topological_order(dag: Dag, rnd: random.Random) -> None:
    ids, edges = dag
    shuffle = list(range(len(ids)))
    rnd.shuffle(shuffle)  # the order steps are listed in does not matter
    order = validate_dag(*build(ids, edges, shuffle), **LIMITS)
    assert sorted(order) == sorted(ids)
    position = {step: i for i, step in enumerate(order)}
    assert all(position[a] < position[b] for a, b in edges)


@FAST
@given(acyclic_dags(), st.data())
def test_any_back_edge_is_rejected_with_the_cycle_spelled_out(
    dag: tuple[list[str], list[tuple[str, str]]], data: st.DataObject
) -> None:
    ids, edges = dag
    # A back-edge: from some step to one of its ancestors (a step it is reachable from).
    candidates = [(b, a) for a in ids for b in reachable(edges, a)]
    if not candidates:
        return
    back = data.draw(st.sampled_from(candidates))
    cyclic = data.draw(st.permutations(edges + [back]))
    with pytest.raises(InvalidInput) as caught:
        validate_dag(*build(ids, cyclic), **LIMITS)
    cycle = caught.value.details["cycle"]
    assert cycle[0] == cycle[-1] and len(cycle) >= 3
    assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle
    edge_set = set(cyclic)
    assert all((a, b) in edge_set for a, b in zip(cycle, cycle[1:]))  # made of real edges
    assert " -> ".join(cycle) in caught.value.message


@FAST
@given(acyclic_dags(), step_ids, st.booleans(), st.data())
def test_edges_to_unknown_steps_are_rejected(
    dag: tuple[list[str], list[tuple[str, str]]], ghost: str, ghost_is_source: bool, data: st.DataObject
) -> None:
    ids, edges = dag
    if ghost in ids:
        return
    known = data.draw(st.sampled_from(ids))
    bad = (ghost, known) if ghost_is_source else (known, ghost)
    with pytest.raises(InvalidInput, match=f"unknown step {re.escape(repr(ghost))}"):
        validate_dag(*build(ids, data.draw(st.permutations(edges + [bad]))), **LIMITS)


@FAST
@given(acyclic_dags(), st.data())
def test_self_edges_duplicate_edges_and_duplicate_ids_are_rejected(
    dag: tuple[list[str], list[tuple[str, str]]], data: st.DataObject
) -> None:
    ids, edges = dag
    step = data.draw(st.sampled_from(ids))
    with pytest.raises(InvalidInput, match="itself"):
        validate_dag(*build(ids, edges + [(step, step)]), **LIMITS)
    with pytest.raises(InvalidInput, match="twice"):
        validate_dag(*build(ids + [step], edges), **LIMITS)
    if edges:
        with pytest.raises(InvalidInput, match="listed twice"):
            validate_dag(*build(ids, edges + [data.draw(st.sampled_from(edges))]), **LIMITS)


@FAST
@given(st.text(max_size=70) | st.from_regex(STEP_ID_PATTERN, fullmatch=True))
def test_step_ids_are_accepted_exactly_when_they_match_the_pattern(text: str) -> None:
    ok = STEP_ID_PATTERN.fullmatch(text) is not None
    try:
        DagStep(id=text, type="noop")
    except ValidationError:
        assert not ok
    else:
        assert ok


@FAST
@given(st.text(max_size=140) | st.from_regex(QUEUE_NAME_PATTERN, fullmatch=True)
       | st.from_regex(TASK_TYPE_PATTERN, fullmatch=True))
def test_queue_and_type_names_are_accepted_exactly_when_they_match(text: str) -> None:
    for field, pattern in (("queue", QUEUE_NAME_PATTERN), ("type", TASK_TYPE_PATTERN)):
        body = {"type": "noop", field: text}
        ok = pattern.fullmatch(text) is not None
        try:
            TaskSubmission.model_validate(body)
        except ValidationError:
            assert not ok, (field, text)
        else:
            assert ok, (field, text)
