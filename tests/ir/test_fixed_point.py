"""ir.fixed_point: the chip's arithmetic, checked against Lava's own formulas and hand values."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from snnc.ir.fixed_point import (
    DECAY_ONE, STATE_SHIFT, U_HALF, V_MAX, NeuronState, alpha_from_du, beta_from_dv, decay, du_from_alpha,
    dv_from_beta, neuron_step, saturate_v, wrap32, wrap_u,
)

ints = hnp.arrays(np.int64, st.integers(1, 64), elements=st.integers(-(2**24), 2**24))


@settings(max_examples=200, deadline=None)
@given(ints, st.integers(0, DECAY_ONE))
def test_decay_is_lavas_sign_times_shifted_magnitude(x, factor):
    # lava/proc/lif/models.py: np.sign(p) * np.right_shift(np.abs(p), 12)
    p = x * factor
    assert np.array_equal(decay(x, factor), np.sign(p) * np.right_shift(np.abs(p), 12))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 64), elements=st.integers(-(2**25), 2**25)))
def test_wrap_u_is_lavas_one_time_wrap_and_saturation_clips(x):
    # Lava: np.where(x > 2**23, x - 2**24, x), then np.where(... <= -2**23, x + 2**24, ...)
    expect = np.where(x > U_HALF, x - 2 * U_HALF, x)
    expect = np.where(expect <= -U_HALF, x + 2 * U_HALF, expect)
    assert np.array_equal(wrap_u(x), expect)
    assert np.array_equal(saturate_v(x), np.clip(x, -V_MAX, V_MAX))
    assert np.array_equal(wrap32(x << 10), (x << 10).astype(np.int32).astype(np.int64))


def test_wrap_and_saturation_bounds_by_hand():
    assert wrap_u(np.int64(2**23)) == 2**23 and wrap_u(np.int64(2**23 + 1)) == -(2**23) + 1
    assert wrap_u(np.int64(-(2**23))) == 2**23 and wrap_u(np.int64(-(2**23) + 1)) == -(2**23) + 1
    assert saturate_v(np.int64(2**23)) == 2**23 - 1 and saturate_v(np.int64(-(2**23))) == -(2**23) + 1
    assert decay(np.int64(-7), 4095) == -6 and decay(np.int64(7), 4095) == 6  # toward zero, not floor


def test_decay_conversions_round_trip():
    du = np.arange(4096)
    assert np.array_equal(du_from_alpha(alpha_from_du(du)), du)
    dv = np.arange(4096)
    assert np.array_equal(dv_from_beta(beta_from_dv(dv)), dv)
    assert alpha_from_du(4095) == 0.0 and beta_from_dv(0) == 1.0


def test_lif_step_by_hand():
    """du=4095 (u = this step's input), dv=0 (no leak): u = a << 6, v accumulates, strict threshold."""
    st_ = NeuronState.zeros(1, 1)
    vth_e = 2 << STATE_SHIFT
    got = [int(neuron_step(st_, np.array([[1]]), du=4095, dv=0, bias=0, vth_e=vth_e)[0, 0]) for _ in range(6)]
    # v: 64, 128 (not > 128), 192 -> spike, reset 0, 64, 128, 192 -> spike
    assert got == [0, 0, 1, 0, 0, 1]


def test_subtract_reset_matches_snntorch_arithmetic():
    """snnTorch (reset_delay default): mem_t = beta mem_{t-1} + x_t - thr * [mem_{t-1} > thr].
    With beta = 1 (dv = 0) the chip's integers follow that recurrence exactly."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 40, (50, 4))
    thr = np.array([30, 50, 70, 10])
    st_ = NeuronState.zeros(1, 4)
    mem = np.zeros(4)
    for t in range(50):
        s = neuron_step(st_, x[t][None], du=4095, dv=0, bias=0, vth_e=thr << STATE_SHIFT, reset_mode="subtract")[0]
        reset = (mem > thr).astype(float)
        mem = mem + x[t] - reset * thr
        assert np.array_equal(s, (mem > thr).astype(np.int64))
        assert np.array_equal(st_.v[0], (mem * 64).astype(np.int64))


def test_none_reset_and_reset_voltage_and_relay():
    st_ = NeuronState.zeros(1, 3)
    for _ in range(3):
        s = neuron_step(st_, np.array([[10, 10, 10]]), du=4095, dv=0, bias=0, vth_e=640, reset_mode="none")
    assert s.tolist() == [[1, 1, 1]] and st_.v.tolist() == [[1920, 1920, 1920]]  # keeps integrating
    st_ = NeuronState.zeros(1, 2)
    neuron_step(st_, np.array([[11, 11]]), du=4095, dv=0, bias=0, vth_e=640, v_reset=np.array([-100, 300]))
    assert st_.v.tolist() == [[-100, 300]]
    st_ = NeuronState.zeros(1, 2)
    s = neuron_step(st_, np.array([[5, -5]]), du=4095, dv=0, bias=0, vth_e=0, kind="relay", relay_shift=3)
    assert s.tolist() == [[40, -40]] and not st_.spiked.any()  # v = +-320, >> 3 (floor)


@settings(max_examples=200, deadline=None)
@given(mant=st.integers(-(2**12), 2**12), exp=st.integers(-7, 7), vth=st.integers(0, 2**17))
def test_bias_and_threshold_values_of_ints_equal_the_array_arithmetic(mant, exp, vth):
    """bias_value and threshold_value take a fast path for Python ints: the same integers as int64 arrays."""
    from snnc.ir.fixed_point.units import bias_value, threshold_value

    assert bias_value(mant, exp) == int(bias_value(np.array([mant]), np.array([exp]))[0])
    assert bias_value(np.int64(mant), exp) == bias_value(mant, np.int16(exp))
    assert threshold_value(vth) == int(threshold_value(np.array([vth]))[0]) == vth * 64
