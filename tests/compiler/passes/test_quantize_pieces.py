"""The quantizer works on long weight arrays a piece at a time (`quantize.CHUNK` elements) and
builds the chip projections a piece of rows at a time. Both must give exactly what the
straightforward whole-array computation gives: the same integer weights and exponents, the same
errors to the last bit (they choose the chip factor K), and parts holding each weight once, in
row-major order. The reference here is that computation written out in plain numpy."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from snnc.compiler.passes import quantize
from snnc.compiler.passes.netlist import DenseOp, FloatProj, SparseOp
from snnc.compiler.passes.quantize import Quantize, _Weights
from snnc.ir.bits import representable_weight_range


def whole_array(values, scale, bits, groups, split, e_min, e_max, ratio):
    """Block-exponent quantization of one projection in whole arrays: q, e and the squared errors
    (as the chip applies the weights relative to its threshold, and of the weights alone)."""
    mode = "excitatory" if np.all(values >= 0) else "inhibitory" if np.all(values <= 0) else "mixed"
    split = split and mode == "mixed"
    lo, hi, step = representable_weight_range(bits, "excitatory" if split else mode)
    top = max(abs(lo), abs(hi))
    need = np.ceil(np.log2(np.maximum(np.abs(values) * scale / 64.0, 1e-300) / top))
    e = np.zeros(values.shape)
    for mask in ([values > 0, values < 0] if split else [values != 0]):
        if mask.any():
            e_top = int(np.clip(need[mask].max(), e_min, e_max))
            e[mask] = np.clip(need[mask], max(e_top - groups + 1, e_min), e_top)
    if split:
        lo = -hi
    shift = step.bit_length() - 1
    q = np.clip(np.rint(values * scale * np.exp2(-(6 + e) - shift)) * step, lo, hi)
    deq = q * np.exp2(6 + e) / scale
    return q, e, float(np.sum((deq * ratio - values) ** 2)), float(np.sum((deq - values) ** 2))


def weights(rng, shape, kind):
    v = rng.normal(0, 0.02, shape) * (rng.random(shape) < 0.7)
    v[0, :3] = [0.05, 2.0**-6, -2.0**-7]  # a large weight and exact powers of two: rounding edges
    return {"mixed": v, "excitatory": np.abs(v), "inhibitory": -np.abs(v)}[kind]


@pytest.mark.parametrize("kind", ["mixed", "excitatory", "inhibitory"])
@pytest.mark.parametrize("options", [{}, {"weight_bits": 4, "exponent_groups": 2}, {"split_sign": False}, {"min_weight_exp": -3}])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_piecewise_quantization_equals_the_whole_array(monkeypatch, kind, options, per_neuron):
    monkeypatch.setattr(quantize, "CHUNK", 16384)  # a 120 x 400 layer in pieces of two summation blocks, across rows
    rng = np.random.default_rng(len(kind) + len(options))
    values = weights(rng, (120, 400), kind)
    n = values.shape[0]
    q = Quantize(**options)
    w = _Weights(None, values, np.broadcast_to(np.arange(n)[:, None], values.shape), "dense", 1.0, q.weight_bits)
    assert len(w.spans()) == 3
    thr = rng.uniform(0.5, 2.0, n) if per_neuron else np.ones(n)
    k = rng.uniform(5e5, 1.5e6, n) if per_neuron else 1.1e6  # exponents 0..3 in use
    trial = q._evaluate(k, [w], thr)
    searched = q._evaluate(k, [w], thr, keep=False)

    vth = np.maximum(np.rint(k * thr / 64.0), 1)
    ratio = thr * k / (vth * 64.0)
    scale, r = (k[:, None], ratio[:, None]) if per_neuron else (k, float(ratio[0]))
    q_ref, e_ref, err2, werr2 = whole_array(values, scale, q.weight_bits, q.exponent_groups, q.split_sign, q.min_weight_exp, q.e_max, r)
    assert np.array_equal(trial["q"][0], q_ref) and np.array_equal(trial["e"][0], e_ref)
    assert len(np.unique(e_ref[values != 0])) >= 2
    norm2 = float(np.sum(values**2))
    assert w.norm2 == norm2
    assert trial["error"] == searched["error"] == np.sqrt(err2 / norm2)  # bit for bit: it chooses K
    assert trial["weight_error2"] == [werr2] and trial["weight_error"] == np.sqrt(werr2 / norm2)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_projection_parts_hold_each_weight_once_in_row_major_order(monkeypatch, layout):
    monkeypatch.setattr(quantize, "CHUNK", 8192)
    rng = np.random.default_rng(3)
    values = weights(rng, (70, 400), "mixed")
    if layout == "sparse":
        values[rng.random(values.shape) < 0.8] = 0.0
    m = sp.csr_matrix(values) if layout == "sparse" else values
    op = SparseOp(400, 70, m) if layout == "sparse" else DenseOp(400, 70, values)
    proj = FloatProj("fc", "in", "lif", op, 0, ["fc"])
    q = Quantize()
    w = q._weights(proj, {})
    assert w.kind == layout
    trial = q._evaluate(2e6, [w], np.ones(70))
    q_w, e_w = trial["q"][0], trial["e"][0]
    parts = q._projections(proj, w, q_w, e_w, 0, 0)

    q_full = np.zeros(values.shape)
    e_full = np.zeros(values.shape)
    if layout == "sparse":
        q_full[m.nonzero()], e_full[m.nonzero()] = q_w, e_w
    else:
        q_full, e_full = q_w, e_w
    groups = sorted({(int(np.sign(a)), int(b)) for a, b in zip(q_full[q_full != 0], e_full[q_full != 0])}, key=lambda t: (-t[0], -t[1]))
    assert len(groups) > 2
    top = max(g[1] for g in groups)
    assert [p.name for p in parts] == [f"fc.{'exc' if s > 0 else 'inh'}{top - e}" for s, e in groups]
    total = np.zeros(values.shape)
    for part, (s, e) in zip(parts, groups):
        expect = sp.csr_matrix(np.where((np.sign(q_full) == s) & (e_full == e), q_full, 0).astype(np.int64))
        got = part.weights
        assert part.kind == "sparse" and part.weight_exp == e and got.dtype == np.int64
        assert np.array_equal(got.indptr, expect.indptr) and np.array_equal(got.indices, expect.indices)
        assert np.array_equal(got.data, expect.data)
        total += got.toarray() * 2.0**e
    assert np.array_equal(total, q_full * np.exp2(e_full))  # every weight once
