"""The one float evaluator (snnc.ir.float_model): evaluated a block of steps at a time it gives every
bit that stepping each node through each step gives, and the calibration it feeds the quantizer
(netlist.simulate: NIR's forward Euler, the defined semantics) equals the canonical recurrence the
quantizer's docs state (i = alpha i + x, v = beta v + i) in every spike, and in every state to
float64 rounding."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest

from snnc.backends.reference import ReferenceBackend
from snnc.compiler.passes.netlist import lower, simulate
from snnc.compiler.pipeline import compile
from snnc.ir import float_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compiler"))
from test_fidelity import REFDATA, net, readout_net  # noqa: E402
from test_relays import N_IN, graph as relay_graph  # noqa: E402


def delayed() -> nir.NIRGraph:
    """Per-neuron and uniform Delay nodes between LIF layers, and a recurrent Affine."""
    rng = np.random.default_rng(3)
    lif = lambda n: nir.LIF(tau=np.full(n, 2e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),  # noqa: E731
                            metadata={"reset_mode": "subtract"})
    nodes = {"in": nir.Input(np.array([6])), "fc": nir.Affine(rng.random((5, 6)) * 2, np.zeros(5)), "a": lif(5),
             "d": nir.Delay(np.array([1, 2, 3, 1, 2]) * 1e-4), "fc2": nir.Affine(rng.random((4, 5)) * 2, np.full(4, 0.1)),
             "b": lif(4), "rec": nir.Affine(rng.normal(0, 0.5, (4, 4)), np.zeros(4)), "d2": nir.Delay(np.full(4, 2e-4)),
             "out": nir.Output(np.array([4]))}
    edges = [("in", "fc"), ("fc", "a"), ("a", "d"), ("d", "fc2"), ("fc2", "b"), ("b", "rec"), ("rec", "b"), ("b", "d2"),
             ("d2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _models():
    rng = np.random.default_rng(0)
    yield "cnn", REFDATA / "cnn" / "cnn_sinabs.nir", (rng.random((2, 12, 2, 34, 34)) < 0.2).astype(float)
    yield "braille", REFDATA / "braille" / "braille_noDelay_bias_zero.nir", np.load(REFDATA / "braille" / "sample0_input.npy")[None, :60]
    yield "delays", delayed(), (rng.random((3, 30, 6)) < 0.4).astype(float)


@pytest.mark.parametrize("label, model, x", list(_models()), ids=[c[0] for c in _models()])
@pytest.mark.filterwarnings("ignore:.*cannot state how spiking neurons reset")
def test_blocks_of_steps_equal_single_steps(monkeypatch, label, model, x):
    """Whole-run blocks (feed-forward nodes in one call each) and one-step blocks give the same
    outputs, probes and activity, bit for bit."""
    prog = ReferenceBackend().build(model)
    probes = [n for n, k in prog.kernels.items() if k.spiking] + [f"{n}/v" for n, k in prog.kernels.items() if "v" in k.state_vars]
    whole = prog.run(x, probes=probes)
    assert prog.model.block_steps(x.shape[0], x.shape[1]) == x.shape[1]
    monkeypatch.setattr(float_model, "MAX_BLOCK_BYTES", 1)
    assert prog.model.block_steps(x.shape[0], x.shape[1]) == 1
    stepped = prog.run(x, probes=probes)
    for key in whole.outputs:
        assert np.array_equal(whole.outputs[key], stepped.outputs[key]), (label, key)
    for key in probes:
        assert np.array_equal(whole.probes[key], stepped.probes[key]), (label, key)
    for name, act in whole.activity.populations.items():
        other = stepped.activity.populations[name]
        assert (act.spikes, act.active_updates) == (other.spikes, other.active_updates), (label, name)
    assert sum(a.spikes for a in whole.activity.populations.values()) > 0, label


def _canonical_recurrence(net_, inputs):
    """The canonical form written out (canonicalize's docstring): i = alpha i + x, v = beta v + i on
    the lowered projections, a step at a time; returns (outputs [T, B, n], i_absmax, v_max, v_min)."""
    first = next(iter(inputs.values()))
    batch, steps = first.shape[:2]
    out = {n: np.zeros((steps, batch, p.size)) for n, p in net_.pops.items()}
    for n, p in net_.pops.items():
        if p.kind == "input":
            out[n] = np.moveaxis(np.asarray(inputs[n], np.float64).reshape(batch, steps, -1), 1, 0)
    order = net_.neuron_order()
    i = {n: np.zeros((batch, net_.pops[n].size)) for n in order}
    v = {n: np.zeros((batch, net_.pops[n].size)) for n in order}
    fired = {n: np.zeros((batch, net_.pops[n].size), bool) for n in order}
    i_abs = {n: np.zeros(net_.pops[n].size) for n in order}
    v_hi = {n: np.full(net_.pops[n].size, -np.inf) for n in order}
    v_lo = {n: np.full(net_.pops[n].size, np.inf) for n in order}
    for t in range(steps):
        for n in order:
            c = net_.pops[n].cuba
            x = np.zeros((batch, net_.pops[n].size))
            for p in net_.incoming(n):
                delays = np.broadcast_to(np.asarray(p.delay), (p.op.n_out, p.op.n_in)) if np.ndim(p.delay) else None
                for d in (np.unique(delays) if delays is not None else [int(p.delay)]):
                    if t - d >= 0:
                        w = p.op.dense() if delays is None else np.where(delays == d, p.op.dense(), 0.0)
                        x += out[p.src][t - d] @ w.T
            for start, vec in net_.biases.get(n, {}).items():
                if t >= start:
                    x += vec
            i[n] = c.alpha.ravel() * i[n] + x
            v[n] = c.beta.ravel() * v[n] + i[n]
            i_abs[n] = np.maximum(i_abs[n], np.abs(i[n]).max(axis=0))
            v_hi[n], v_lo[n] = np.maximum(v_hi[n], v[n].max(axis=0)), np.minimum(v_lo[n], v[n].min(axis=0))
            if c.thr is None:
                out[n][t] = v[n]
                continue
            thr = c.thr.ravel()
            if c.reset_mode == "subtract":
                v[n] = v[n] - thr * fired[n]
            fired[n] = v[n] > thr
            if c.reset_mode == "zero":
                v[n] = np.where(fired[n], np.broadcast_to(np.asarray(c.v_reset, np.float64), c.shape).ravel(), v[n])
            out[n][t] = fired[n]
    return out, i_abs, v_hi, v_lo


def _calibrated():
    rng = np.random.default_rng(1)
    spikes = (rng.random((2, 50, 10)) < 0.3).astype(float)
    yield "subtract", net(mode="subtract"), spikes
    yield "readout (LI with v_leak)", readout_net(), spikes
    for kind in ("li", "cubali", "i", "lmu"):
        yield f"relay {kind}", relay_graph(kind), (rng.random((2, 80, N_IN)) < 0.3).astype(float)
    yield "delays", delayed(), (rng.random((2, 30, 6)) < 0.4).astype(float)
    yield "braille", REFDATA / "braille" / "braille_noDelay_bias_zero.nir", np.load(REFDATA / "braille" / "sample0_input.npy")[None, :80]


@pytest.mark.parametrize("label, model, x", list(_calibrated()), ids=[c[0] for c in _calibrated()])
def test_calibration_run_equals_the_canonical_recurrence(label, model, x):
    """What the quantizer calibrates on (and the guard compares against): the float model's Euler
    step on the canonical graph. The canonical recurrence rounds differently (alpha i + x against
    i + (1 - alpha)(w_in x - i)), never enough to move a spike on these models; states agree to
    1e-12 of their range. (On 48 calibrated compiles, these included, the chip graphs' integers came out
    identical with either; only float metadata such as meta.scale moved in the last bits.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compile(model, calibrate=x, guard=False)
    net_ = lower(result.graph)
    data = {next(n for n, p in net_.pops.items() if p.kind == "input"): x}
    run = simulate(net_, data)
    out, i_abs, v_hi, v_lo = _canonical_recurrence(net_, data)
    spiking = [n for n in net_.neuron_order() if net_.pops[n].cuba.spiking]
    assert spiking and sum(out[n].sum() for n in spiking) > 0, label
    for n in net_.neuron_order():
        if n in spiking:
            assert np.array_equal(run.outputs[n], out[n]), (label, n)
        scale = max(np.abs(out[n]).max(), np.abs(v_hi[n]).max(), np.abs(v_lo[n]).max(), 1e-300)
        np.testing.assert_allclose(run.outputs[n], out[n], rtol=0, atol=1e-12 * scale, err_msg=f"{label} {n}")
        for got, want in ((run.i_absmax[n], i_abs[n]), (run.v_max[n], v_hi[n]), (run.v_min[n], v_lo[n])):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(scale, np.abs(want).max()), err_msg=f"{label} {n}")
