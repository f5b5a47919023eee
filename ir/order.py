"""Orders of the small graphs snnc sorts: a network's nodes, its populations, its loops.

Why not networkx: these graphs have tens of nodes, and building a networkx graph to sort one costs
more than sorting it (~40-100 us a call, several calls per compile and per fidelity guard). The
orders are networkx's lexicographical topological sort (ties broken by position in the node list),
tests/ir/test_order.py compares them on random graphs.
"""
from __future__ import annotations

import heapq
from typing import Hashable, Iterable, Sequence, TypeVar

H = TypeVar("H", bound=Hashable)


class CycleError(ValueError):
    """The graph has a cycle: no topological order exists."""


def topological_order(nodes: Sequence[H], edges: Iterable[tuple[H, H]]) -> list[H]:
    """`nodes` ordered so that every edge points forward; of the nodes free at one time the earliest
    in `nodes` comes first (networkx.lexicographical_topological_sort keyed by position). A repeated
    edge counts once; a cycle (a self-loop too) raises CycleError."""
    rank = {n: i for i, n in enumerate(nodes)}
    succ: dict[H, set[H]] = {n: set() for n in nodes}
    for a, b in edges:
        succ[a].add(b)
    indegree = dict.fromkeys(nodes, 0)
    for targets in succ.values():
        for b in targets:
            indegree[b] += 1
    free = [rank[n] for n in nodes if indegree[n] == 0]
    heapq.heapify(free)
    out: list[H] = []
    while free:
        n = nodes[heapq.heappop(free)]
        out.append(n)
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(free, rank[m])
    if len(out) != len(nodes):
        raise CycleError(f"a cycle through {sorted((n for n in nodes if indegree[n]), key=rank.__getitem__)}")
    return out


def component_order(nodes: Sequence[H], edges: Iterable[tuple[H, H]]) -> list[list[H]]:
    """The strongly connected components, each in `nodes` order, ordered so that every edge between
    two components points forward; ties by the position of a component's first member
    (networkx's condensation, lexicographically sorted by that key)."""
    succ: dict[H, list[H]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    index: dict[H, int] = {}
    low: dict[H, int] = {}
    on_stack: set[H] = set()
    stack: list[H] = []
    comp_of: dict[H, int] = {}
    comps: list[list[H]] = []
    for root in nodes:  # Tarjan's algorithm, iterative
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp_of[m] = len(comps)
                    members.append(m)
                    if m == node:
                        break
                comps.append(members)
    rank = {n: i for i, n in enumerate(nodes)}
    comps = [sorted(c, key=rank.__getitem__) for c in comps]
    first = sorted(range(len(comps)), key=lambda c: rank[comps[c][0]])  # components by their first member
    between = [(comp_of[a], comp_of[b]) for a in nodes for b in succ[a] if comp_of[a] != comp_of[b]]
    return [comps[c] for c in topological_order(first, between)]
