"""Both sim neuron kernels (`scan_ff` for feed-forward layers, `scan` for recurrent ones) against
the numpy specification `snnc.ir.fixed_point.neuron_step`, on random states that reach the 24-bit
wrap of u and the saturation of v, for every neuron kind and reset mode."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.backends.sim import SimBackend
from snnc.ir.bits import truncate_weights
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.fixed_point import U_HALF, V_MAX, NeuronState, neuron_step, wrap32
from snnc.ir.fixed_point.units import bias_value, threshold_value


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["lif", "lif_reset", "ternary", "relay"]))
    reset = draw(st.sampled_from(["zero", "none"] if kind == "ternary" else ["zero", "subtract", "none"]))
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    steps = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**31 - 1))
    big = draw(st.booleans())  # drive u past 2**23 and v into saturation
    recurrent = draw(st.booleans())
    return kind, reset, n, m, steps, seed, big, recurrent, draw(st.integers(1, 12))


def build(kind, reset, n, m, steps, seed, big, recurrent):
    rng = np.random.default_rng(seed)
    per_neuron = lambda lo, hi: rng.integers(lo, hi + 1, n) if rng.random() < 0.5 else int(rng.integers(lo, hi + 1))  # noqa: E731
    kw = dict(du=per_neuron(0, 4095), dv=per_neuron(0, 4095), vth=per_neuron(0, 2**17 - 1 if big else 300),
              bias_mant=per_neuron(-4096, 4095), bias_exp=per_neuron(0, 7), model=kind, reset_mode=reset,
              v_reset=per_neuron(-V_MAX, V_MAX) if reset == "zero" and rng.random() < 0.5 else 0)
    if kind == "lif_reset":
        kw.update(reset_interval=int(rng.integers(1, 10)), reset_offset=int(rng.integers(0, 10)))
    if kind == "ternary":
        hi = int(rng.integers(-2000, 2**16))
        kw.update(vth_hi=hi, vth_lo=int(rng.integers(-(2**16), hi + 1)))
    if kind == "relay":
        kw.update(relay_shift=int(rng.integers(0, 24)))
    g = ChipGraph()
    nmb = 24 if big else 8
    g.add(InputPopulation("x", (m,), num_message_bits=nmb))
    g.add(Population("p", (n,), **kw))
    w_in = rng.integers(-256, 256, (n, m))
    g.add(Projection("in", "x", "p", w_in, num_message_bits=nmb))
    w_rec = rng.integers(-256, 256, (n, n)) if recurrent else None
    if recurrent:
        g.add(Projection("rec", "p", "p", w_rec, num_message_bits=24 if kind == "relay" else 0))
    g.outputs["p"] = OutputPort("p")
    limit = (1 << nmb) - 1
    x = rng.integers(-limit, limit + 1, (2, steps, m))
    return g, x


def reference(g: ChipGraph, x: np.ndarray):
    """Step the population with the numpy specification; synapse values as Lava's Dense sends them
    (graded: int32 dot product; several projections summed in the int32 channel)."""
    p = g.populations["p"]
    batch, steps, _ = x.shape
    st_ = NeuronState.zeros(batch, p.size)
    w_in = truncate_weights(g.projections["in"].weights, 8)
    w_rec = truncate_weights(g.projections["rec"].weights, 8) if "rec" in g.projections else None
    s_prev = np.zeros((batch, p.size), np.int64)
    out = {k: np.zeros((batch, steps, p.size), np.int64) for k in "suv"}
    for t in range(steps):
        a = wrap32(x[:, t - 1] @ w_in.T) if t > 0 else np.zeros((batch, p.size), np.int64)
        if w_rec is not None:
            graded = g.projections["rec"].num_message_bits > 0
            msg = s_prev if graded else (s_prev != 0)  # a binary Dense adds the weight for any nonzero message (-1 too)
            a = wrap32(a + wrap32(msg @ w_rec.T))
        s = neuron_step(
            st_, a, du=p.du, dv=p.dv, bias=bias_value(p.bias_mant, p.bias_exp), vth_e=threshold_value(p.vth),
            kind=p.model, reset_mode=p.reset_mode, v_reset=p.v_reset, step=t + 1, reset_interval=p.reset_interval,
            reset_offset=p.reset_offset, vth_hi_e=threshold_value(p.vth_hi), vth_lo_e=threshold_value(p.vth_lo),
            relay_shift=p.relay_shift,
        )
        out["s"][:, t], out["u"][:, t], out["v"][:, t] = s, st_.u, st_.v
        s_prev = s
    return out


@settings(max_examples=300, deadline=None)
@given(cases())
def test_kernels_follow_the_numpy_step(case):
    kind, reset, n, m, steps, seed, big, recurrent, chunk = case
    g, x = build(kind, reset, n, m, steps, seed, big, recurrent)
    run = SimBackend().build(g, chunk=chunk).run(x, probes=["p/u", "p/v", "p/s"])
    ref = reference(g, x)
    for var in "suv":
        assert np.array_equal(run.probes[f"p/{var}"], ref[var]), (var, kind, reset, recurrent)


def test_the_extremes_are_reached():
    """The property test above is only worth something if its networks wrap u and saturate v."""
    wrapped = saturated = 0
    for seed in range(40):
        for recurrent in (False, True):
            g, x = build("lif", "none", 4, 3, 20, seed, True, recurrent)
            ref = reference(g, x)
            wrapped += int(np.any(np.abs(ref["u"]) >= U_HALF - 2**16))
            saturated += int(np.any(np.abs(ref["v"]) == V_MAX))
    assert wrapped > 10 and saturated > 10


def test_both_kernels_at_the_wrap_boundary():
    """u = +2**23 exactly is kept and -2**23 wraps to +2**23 (Lava: x > 2**23 loses 2**24,
    x <= -2**23 gains it), in the feed-forward and in the recurrent kernel. Random states almost
    never land on the boundary itself, so a kernel that wrapped at >= 2**23 passed the test above."""
    h = U_HALF
    for recurrent in (False, True):
        g = ChipGraph()
        g.add(InputPopulation("x", (1,), num_message_bits=24))
        g.add(Population("p", (3,), du=4095, dv=4095, vth=2**17 - 1, reset_mode="none"))
        g.add(Projection("in", "x", "p", np.array([[2], [-2], [4]]), num_message_bits=24))
        if recurrent:
            g.add(Projection("rec", "p", "p", np.zeros((3, 3), np.int64)))
        g.outputs["p"] = OutputPort("p")
        x = np.array([[[2**16], [2**16 + 1], [-(2**16)], [0]]])  # arrives one step later
        prog = SimBackend().build(g)
        assert [c.recurrent for c in prog.plan.components] == [recurrent]
        run = prog.run(x, probes=["p/u", "p/v", "p/s"])
        u = run.probes["p/u"][0]
        # a << 6 with a = x * (2, -2, 4): (2**23, -2**23, 2**24) -> kept, +2**23, 0
        assert u[1].tolist() == [h, h, 0]
        # (2**23 + 128, -2**23 - 128, 2**24 + 256) -> each wraps once
        assert u[2].tolist() == [128 - h, h - 128, 256]
        # (-2**23, 2**23, -2**24) -> +2**23, kept, 0
        assert u[3].tolist() == [h, h, 0]
        ref = reference(g, x)
        for var in "suv":
            assert np.array_equal(run.probes[f"p/{var}"], ref[var]), (var, recurrent)
