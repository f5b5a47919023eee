"""Programs are built once per graph and options and rebuilt whenever the graph changes
(`snnc.backends.program_cache`); a reused program gives what a fresh build gives."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from snnc.backends import program_cache
from snnc.backends.sim import SimBackend
from snnc.compiler.data import encoding
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection


def graph(seed: int = 0) -> ChipGraph:
    rng = np.random.default_rng(seed)
    g = ChipGraph()
    g.add(InputPopulation("x", (12,)))
    g.add(Population("n", (5,), du=200, dv=100, vth=400))
    g.add(Projection("w", "x", "n", rng.integers(-60, 120, (5, 12))))
    g.outputs["n"] = OutputPort("n", "s")
    return g


def spikes(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((2, 20, 12)) < 0.4


@pytest.fixture(autouse=True)
def _empty_cache():
    program_cache.clear()
    yield
    program_cache.clear()


def _fresh(g: ChipGraph, x: np.ndarray) -> dict:
    res = SimBackend().build(g).run(x, probes=("n/v",))
    return {"s": res.outputs["n"], "v": res.probes["n/v"]}


def _cached(g: ChipGraph, x: np.ndarray) -> dict:
    res = program_cache.build_cached(g, "sim").run(x, probes=("n/v",))
    return {"s": res.outputs["n"], "v": res.probes["n/v"]}


def _equal(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def test_same_graph_and_options_reuse_one_program():
    g = graph()
    first = program_cache.build_cached(g, "sim")
    assert program_cache.build_cached(g, "sim") is first
    assert program_cache.build_cached(g, "sim", chunk=3) is not first
    assert program_cache.build_cached(g, "sim", chunk=3) is program_cache.build_cached(g, "sim", chunk=3)
    assert program_cache.build_cached(graph(), "sim") is not first  # an equal but distinct graph object


@pytest.mark.parametrize("change", ["weight in place", "threshold", "new projection", "weight_exp", "output var"])
def test_any_change_of_the_graph_rebuilds(change):
    g, x = graph(), spikes()
    before = _cached(g, x)
    old = program_cache.build_cached(g, "sim")
    if change == "weight in place":
        g.projections["w"].weights[2, 3] += 50
    elif change == "threshold":
        g.populations["n"].vth = 7
    elif change == "new projection":
        g.add(Projection("w2", "x", "n", np.full((5, 12), 9)))
    elif change == "weight_exp":
        g.projections["w"].weight_exp = 2
    else:
        g.outputs["n"] = OutputPort("n", "v")
    assert program_cache.build_cached(g, "sim") is not old
    after = _cached(g, x)
    assert _equal(after, _fresh(g, x))
    assert not _equal(after, before)  # every change above changes this network's behaviour


def test_compiled_graph_runs_build_once(monkeypatch):
    builds = []
    real = SimBackend.build

    def counting(self, g, **options):
        builds.append(g)
        return real(self, g, **options)

    monkeypatch.setattr(SimBackend, "build", counting)
    g, x = graph(), spikes()
    a = encoding.run(g, x.astype(np.float64), raw=True)
    b = encoding.run(g, x.astype(np.float64), raw=True)
    assert len(builds) == 1
    assert np.array_equal(a.outputs["n"], b.outputs["n"])
    g.populations["n"].vth = 5
    encoding.run(g, x.astype(np.float64), raw=True)
    assert len(builds) == 2


def test_only_the_most_recent_graphs_are_kept():
    graphs = [graph(seed) for seed in range(program_cache.MAX_GRAPHS + 2)]
    programs = [program_cache.build_cached(g, "sim") for g in graphs]
    assert len(program_cache._programs) == program_cache.MAX_GRAPHS
    assert program_cache.build_cached(graphs[-1], "sim") is programs[-1]
    assert program_cache.build_cached(graphs[0], "sim") is not programs[0]  # pushed out, rebuilt


def test_the_digest_sees_every_kind_of_change():
    """Sparse weights edited in place, metadata, a tuple field, a dtype or a shape: each changes the digest."""
    import scipy.sparse as sp

    def sparse() -> ChipGraph:
        g = graph()
        g.projections["w"].weights = sp.csr_matrix(g.projections["w"].weights)
        return g

    edits = {
        "sparse data in place": lambda g: g.projections["w"].weights.data.__setitem__(0, 1000),
        "meta entry": lambda g: g.meta.__setitem__("dt", 2e-4),
        "nested meta": lambda g: g.meta.setdefault("input_scale", {}).__setitem__("x", 2.0),
        "population shape": lambda g: setattr(g.populations["n"], "shape", (5, 1)),
        "weight dtype": lambda g: setattr(g.projections["w"], "weights", g.projections["w"].weights.astype(np.int32)),
    }
    base = program_cache.graph_digest(sparse())
    assert program_cache.graph_digest(sparse()) == base  # equal content, equal digest
    for what, edit in edits.items():
        g = sparse()
        edit(g)
        assert program_cache.graph_digest(g) != base, what


def test_the_digest_ignores_what_a_build_caches_beside_the_content():
    """A build leaves caches beside a graph's content (ChipGraph's population order, scipy's flags
    on a sparse matrix): the digest, and so the cache, does not see them; something pickle cannot
    write makes a digest that equals no other (the graph is rebuilt, never served stale)."""
    import scipy.sparse as sp

    g = graph()
    w = g.projections["w"]
    g.projections["w"] = dataclasses.replace(w, kind="sparse", weights=sp.csr_matrix(w.weights))
    before = program_cache.graph_digest(g)
    program = program_cache.build_cached(g, "sim")
    assert "_population_order" in g.__dict__
    assert program_cache.graph_digest(g) == before
    assert program_cache.build_cached(g, "sim") is program
    g.meta["hook"] = lambda: None  # not picklable
    assert program_cache.graph_digest(g) != program_cache.graph_digest(g)
    assert program_cache.build_cached(g, "sim") is not program


def test_the_digest_reads_arrays_by_dtype_shape_and_bytes():
    """Equal arrays give equal digests whatever their memory layout; a changed dtype, shape or byte
    changes it; an object array (no buffer) is digested by its objects."""
    from snnc.ir.digest import graph_digest

    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert graph_digest({"w": a}) == graph_digest({"w": np.asfortranarray(a)}) == graph_digest({"w": a.T.copy().T})
    assert graph_digest({"w": a}) != graph_digest({"w": a.astype(np.int32)})
    assert graph_digest({"w": a}) != graph_digest({"w": a.reshape(4, 3)})
    b = a.copy()
    b[2, 3] += 1
    assert graph_digest({"w": a}) != graph_digest({"w": b})
    objects = np.array([1, "x"], dtype=object)
    assert graph_digest({"w": objects}) == graph_digest({"w": objects.copy()}) != graph_digest({"w": np.array([2, "x"], dtype=object)})
