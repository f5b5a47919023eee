"""snnc.ir.order's orders are networkx's (lexicographical topological sort, condensation sorted by
first member) on random graphs, including repeated edges, self-loops and isolated nodes."""
from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.ir.order import CycleError, component_order, topological_order

graphs = st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.permutations([f"n{i}" for i in range(n)]),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n)))


def _nx(nodes, edges) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g


@settings(max_examples=300, deadline=None)
@given(graph=graphs, acyclic=st.booleans())
def test_topological_order_is_networkx_lexicographical_sort(graph, acyclic):
    nodes, pairs = graph
    edges = [(nodes[a], nodes[b]) for a, b in pairs if not acyclic or a < b]
    rank = {n: i for i, n in enumerate(nodes)}
    try:
        want = list(nx.lexicographical_topological_sort(_nx(nodes, edges), key=rank.__getitem__))
    except nx.NetworkXUnfeasible:
        with pytest.raises(CycleError):
            topological_order(nodes, edges)
        return
    assert topological_order(nodes, edges) == want


@settings(max_examples=300, deadline=None)
@given(graph=graphs)
def test_component_order_is_networkx_condensation_sorted_by_first_member(graph):
    nodes, pairs = graph
    edges = [(nodes[a], nodes[b]) for a, b in pairs]
    rank = {n: i for i, n in enumerate(nodes)}
    cond = nx.condensation(_nx(nodes, edges))
    members = {c: sorted(cond.nodes[c]["members"], key=rank.__getitem__) for c in cond.nodes}
    want = [members[c] for c in nx.lexicographical_topological_sort(cond, key=lambda c: rank[members[c][0]])]
    assert component_order(nodes, edges) == want
