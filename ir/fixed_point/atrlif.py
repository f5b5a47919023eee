"""One step of an adaptive-threshold LIF (Lava 0.10.0 `lava.proc.atrlif`, fixed_pt): the specification.

Lava's `PyATRLIFModelFixed` (bit-accurate Loihi) keeps four 24-bit states per neuron: current
`i`, voltage `v`, threshold `theta` and refractory state `r`. In snnc's integers (decays as
12-bit fractions of 4096 as for the LIF; Lava takes `delta_x = d_x / 4096`, which is exact in
float64, so its float products are exact integers):

    i     = wrap_u(wrap32(decay(i, 4095 - du) + wrap32(a << 6)))      as the LIF's u
    v     = saturate_v(decay(v, 4096 - dv) + i + bias)                as the LIF's v (no reset)
    theta = wrap32(decay(theta - theta_0, 4096 - d_theta) + theta_0)  decays back to theta_0
    r     = wrap32(decay(r, 4096 - d_r))
    s     = (v - r) >= theta                                          note: >=, not >
    where s: r += 2 * theta, then theta += theta_step

`theta_0 = vth << 6` and `theta_step = theta_step_mant << 6` (Lava's `scale_threshold`); theta
starts at theta_0 (Lava overwrites the initial theta at its first step), i = v = r = 0. v is never
reset: the refractory state r, raised by twice the threshold at each spike, holds the neuron
below threshold while it decays. Lava keeps theta and r in int32 without clipping (its own
TODO), so they wrap like int32 here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import decay, saturate_v, wrap32, wrap_u
from .units import DECAY_ONE, STATE_SHIFT


@dataclass
class ATRLIFState:
    """i, v, theta, r of every neuron: [batch, n] int64."""

    i: np.ndarray
    v: np.ndarray
    theta: np.ndarray
    r: np.ndarray

    @classmethod
    def initial(cls, batch: int, n: int, theta_0: int) -> "ATRLIFState":
        """Lava's state before its first step: theta = theta_0 (already << 6), the rest 0."""
        z = np.zeros((batch, n), np.int64)
        return cls(z.copy(), z.copy(), np.full((batch, n), int(theta_0), np.int64), z.copy())


def current_update(i, a, du):
    """The current update, shared with the LIF (`neuron_step`): Lava's i/u arithmetic."""
    return wrap_u(wrap32(decay(i, DECAY_ONE - 1 - du) + wrap32(wrap32(a) << STATE_SHIFT)))


def atrlif_update(i, v, theta, r, a, du, dv, bias, theta_0, theta_step, d_theta, d_r):
    """One step of one neuron or of arrays of them, plain operators only (numba compiles it inline
    for the sim kernel): returns the new (i, v, theta, r) and s (0/1)."""
    i = current_update(i, a, du)
    v = saturate_v(decay(v, DECAY_ONE - dv) + i + bias)
    theta = wrap32(decay(wrap32(theta - theta_0), DECAY_ONE - d_theta) + theta_0)
    r = wrap32(decay(r, DECAY_ONE - d_r))
    s = (wrap32(v - r) >= theta) * 1
    r = wrap32(r + s * wrap32(2 * theta))
    theta = wrap32(theta + s * theta_step)
    return i, v, theta, r, s


def atrlif_step(state: ATRLIFState, a: np.ndarray, *, du, dv, bias, theta_0, theta_step, d_theta, d_r) -> np.ndarray:
    """Advance `state` in place by one step with int32 input `a`; return s (0/1 int64).

    `bias` is bias_mant << bias_exp (scalar or per neuron); `theta_0` and `theta_step` are already
    shifted left by 6; du, dv, d_theta, d_r are 12-bit decays (4096 = one).
    """
    i64 = np.int64
    state.i, state.v, state.theta, state.r, s = atrlif_update(
        np.asarray(state.i, i64), np.asarray(state.v, i64), np.asarray(state.theta, i64), np.asarray(state.r, i64),
        np.asarray(a, i64), i64(du), i64(dv), np.asarray(bias, i64), i64(theta_0), i64(theta_step), i64(d_theta), i64(d_r),
    )
    return np.asarray(s, i64)
