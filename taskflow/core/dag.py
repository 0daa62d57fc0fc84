"""DAG validation: everything is checked before anything is written."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

from taskflow.core.errors import InvalidInput
from taskflow.core.models import DagEdge, DagStep


def validate_dag(
    steps: Sequence[DagStep], edges: Sequence[DagEdge], *, max_steps: int, max_edges: int
) -> list[str]:
    """Check a DAG and return its step ids in a topological order.

    Raises `InvalidInput` naming the first problem found: empty, too large, duplicate ids,
    self-edges, edges to unknown steps, duplicate edges, or a cycle (the cycle is spelled out).
    """
    if not steps:
        raise InvalidInput("a DAG needs at least one step")
    if len(steps) > max_steps:
        raise InvalidInput(f"a DAG may have at most {max_steps} steps (this one has {len(steps)}); split it")
    if len(edges) > max_edges:
        raise InvalidInput(f"a DAG may have at most {max_edges} edges (this one has {len(edges)}); split it")

    ids: list[str] = []
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise InvalidInput(f"step id {step.id!r} is used twice; step ids must be unique", details={"step": step.id})
        seen.add(step.id)
        ids.append(step.id)

    children: dict[str, list[str]] = defaultdict(list)
    indegree = dict.fromkeys(ids, 0)
    pairs: set[tuple[str, str]] = set()
    for edge in edges:
        for end in (edge.from_, edge.to):
            if end not in seen:
                raise InvalidInput(
                    f"edge {edge.from_!r} -> {edge.to!r} names unknown step {end!r}; every edge must join two steps",
                    details={"edge": {"from": edge.from_, "to": edge.to}},
                )
        if edge.from_ == edge.to:
            raise InvalidInput(f"step {edge.from_!r} depends on itself; remove the self-edge", details={"step": edge.to})
        if (edge.from_, edge.to) in pairs:
            raise InvalidInput(f"edge {edge.from_!r} -> {edge.to!r} is listed twice")
        pairs.add((edge.from_, edge.to))
        children[edge.from_].append(edge.to)
        indegree[edge.to] += 1

    order: list[str] = []
    ready = deque(step_id for step_id in ids if indegree[step_id] == 0)
    remaining = dict(indegree)
    while ready:
        step_id = ready.popleft()
        order.append(step_id)
        for child in children[step_id]:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    if len(order) != len(ids):
        cycle = find_cycle({s for s in ids if remaining[s] > 0}, children)
        raise InvalidInput(
            "the steps form a cycle: " + " -> ".join(cycle) + "; a DAG must not loop back on itself",
            details={"cycle": cycle},
        )
    return order


def find_cycle(candidates: set[str], children: dict[str, list[str]]) -> list[str]:
    """Return one cycle (first step repeated at the end) among steps that Kahn's algorithm could not order."""
    # Every step left unordered still has an unordered parent, so walking parent links
    # backwards from any of them must come back to a step already on the path.
    parents: dict[str, str] = {}
    for parent, kids in children.items():
        if parent in candidates:
            for kid in kids:
                if kid in candidates:
                    parents.setdefault(kid, parent)
    position: dict[str, int] = {}
    path: list[str] = []
    node = min(candidates)
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = parents[node]
    backwards = path[position[node] :]
    forwards = list(reversed(backwards))
    return forwards + [forwards[0]]
