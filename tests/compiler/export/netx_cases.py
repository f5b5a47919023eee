"""What the `.net` writer tests share: snnc's sim on a chip graph, and "the same network" between a
chip graph and what snnc's netx reader reads back from the written file."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snnc.backends.base import get_backend
from snnc.ir.chip import ChipGraph


def sim_outputs(graph: ChipGraph, x: np.ndarray, **run) -> dict[str, np.ndarray]:
    """The sim's outputs [1, T, ...] of `graph` for one input [T, ...] on every input port."""
    return get_backend("sim").build(graph).run({name: x[None] for name in graph.inputs}, **run).outputs


def applied(proj) -> np.ndarray:
    """The integer matrix a dense/sparse projection applies to binary spikes."""
    w = proj.effective_weights()
    w = np.asarray(w.toarray() if sp.issparse(w) else w, np.int64)
    return w << proj.weight_exp if proj.weight_exp >= 0 else w >> -proj.weight_exp


def assert_same_network(a: ChipGraph, b: ChipGraph) -> None:
    """Same chain, same neuron integers, same applied weights and delays (names and Lava's weight
    format may differ)."""
    assert [p.shape for p in a.populations.values()] == [p.shape for p in b.populations.values()]
    for pa, pb in zip(a.populations.values(), b.populations.values()):
        for k in ("du", "dv", "vth", "model", "reset_interval", "reset_offset"):
            assert np.array_equal(getattr(pa, k), getattr(pb, k)), (pa.name, k)
        ba = np.broadcast_to(np.asarray(pa.bias_mant) << np.asarray(pa.bias_exp), pa.shape)
        bb = np.broadcast_to(np.asarray(pb.bias_mant) << np.asarray(pb.bias_exp), pb.shape)
        np.testing.assert_array_equal(ba, bb)
    assert len(a.projections) == len(b.projections)
    for qa, qb in zip(_by_place(a), _by_place(b)):
        assert (qa.kind == "conv") == (qb.kind == "conv") and qa.direct == qb.direct
        if qa.kind == "conv":
            np.testing.assert_array_equal(qa.weights, qb.weights)
            assert qa.conv == qb.conv
        else:
            np.testing.assert_array_equal(applied(qa), applied(qb))
            da = np.where(applied(qa) != 0, np.broadcast_to(qa.delay, applied(qa).shape), 0)
            db = np.where(applied(qb) != 0, np.broadcast_to(qb.delay, applied(qb).shape), 0)
            np.testing.assert_array_equal(da, db)


def _by_place(g: ChipGraph) -> list:
    """Projections in chain order: by target population, the feed-forward one before a recurrent one."""
    order = {name: i for i, name in enumerate(g.populations)}
    return sorted(g.projections.values(), key=lambda q: (order[q.dst], q.src == q.dst))
