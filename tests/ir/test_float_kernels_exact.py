"""The CUBA kernels skip operations that change no bit (x 1, and 0 - v + r i computed as r i - v):
every step gives bit for bit what NIR's Euler formula, evaluated in full, gives - signed zeros
included - for trivial and non-trivial parameters alike."""
from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest

from snnc.ir.float_kernels import make_kernel

SHAPE = (6,)


def _values(rng, n: int) -> np.ndarray:
    """Random values with +0, -0 and small and large magnitudes mixed in."""
    x = rng.normal(0, 1, n) * 10.0 ** rng.integers(-3, 3, n)
    x[rng.random(n) < 0.2] = 0.0
    x[rng.random(n) < 0.2] = -0.0
    return x


def _bits(x) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, np.float64)).view(np.int64)


@pytest.mark.parametrize("unit_w, unit_syn, unit_r, no_leak, spiking", list(itertools.product([True, False], repeat=5)))
def test_cuba_step_equals_the_full_formula_bit_for_bit(unit_w, unit_syn, unit_r, no_leak, spiking):
    rng = np.random.default_rng([unit_w, unit_syn, unit_r, no_leak, spiking])
    dt = 1e-4
    tau_syn = np.full(SHAPE, dt) if unit_syn else rng.uniform(1.5e-4, 5e-3, SHAPE)
    w_in = np.ones(SHAPE) if unit_w else rng.uniform(0.5, 3, SHAPE)
    r = np.ones(SHAPE) if unit_r else rng.uniform(0.5, 30, SHAPE)
    v_leak = np.where(rng.random(SHAPE) < 0.5, 0.0, -0.0) if no_leak else rng.normal(0, 0.3, SHAPE)
    params = dict(tau_syn=tau_syn, tau_mem=rng.uniform(1e-4, 5e-3, SHAPE), r=r, v_leak=v_leak, w_in=w_in)
    node = (nir.CubaLIF(**params, v_threshold=np.full(SHAPE, 0.5), v_reset=np.zeros(SHAPE), metadata={"reset_mode": "zero"})
            if spiking else nir.CubaLI(**params))
    kernel = make_kernel(node, SHAPE, SHAPE, dt, "test")
    assert kernel._unit == (unit_w, unit_syn, unit_r) and kernel._no_leak == no_leak
    a_syn, a_mem = dt / tau_syn, dt / params["tau_mem"]
    state = kernel.init(3)
    i, v = state["i"].copy(), state["v"].copy()
    for _ in range(40):
        x = _values(rng, 3 * SHAPE[0]).reshape(3, *SHAPE)
        if rng.random() < 0.3:  # states at signed zeros too
            state["v"] = v = _values(rng, v.size).reshape(v.shape)
            state["i"] = i = _values(rng, i.size).reshape(i.shape)
        out = kernel.step(x, state)
        i = i + a_syn * (w_in * x - i)
        v = v + a_mem * (v_leak - v + r * i)
        assert np.array_equal(_bits(state["i"]), _bits(i))
        if spiking:
            assert np.array_equal(_bits(state["v_in"]), _bits(v))
            z = v > 0.5
            v = np.where(z, 0.0, v)
            assert np.array_equal(out, z.astype(np.float64))
        assert np.array_equal(_bits(state["v"]), _bits(v))
        if not spiking:
            assert np.array_equal(_bits(out), _bits(v))
