"""One step of a LIF with a refractory period (Lava 0.10.0 `lava.proc.lif.LIFRefractory`): the specification.

Lava 0.10.0 has only a floating-point model of LIFRefractory (`PyLifRefractoryModelFloat`); this
is its behaviour in the chip's integers (the LIF's u/v arithmetic of `neuron.py`). Lava's model,
step by step: u decays and integrates the input on every step, refractory or not; v integrates
only where the neuron is not refractory (`refractory_period_end < time_step`), and is otherwise
held (at its reset value 0); s = v > vth is evaluated on every neuron; a spike resets v to 0 and
makes the neuron refractory for the next `refractory_period` steps. With a down-counter `c`
(steps still to hold, 0 at start):

    u = wrap_u(wrap32(decay(u, 4095 - du) + wrap32(a << 6)))          as the LIF's u
    v = saturate_v(decay(v, 4096 - dv) + u + bias)   where c == 0, else v held and c -= 1
    s = v > vth_e;  where s: v = 0, c = refractory_period

refractory_period 0 is the plain LIF. A lava-dl `.net` layer's `refDelay` r is
refractory_period r - 1 (refDelay 1: no refractory period).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import decay, saturate_v
from .atrlif import current_update
from .units import DECAY_ONE


@dataclass
class RefractoryState:
    """u, v and the steps each neuron still stays refractory: [batch, n] int64."""

    u: np.ndarray
    v: np.ndarray
    c: np.ndarray

    @classmethod
    def zeros(cls, batch: int, n: int) -> "RefractoryState":
        z = np.zeros((batch, n), np.int64)
        return cls(z.copy(), z.copy(), z.copy())


def refractory_update(u, v, c, a, du, dv, bias, vth_e, period):
    """One step of one neuron or of arrays of them, plain operators only (numba compiles it inline
    for the sim kernel): returns the new (u, v, c) and s (0/1)."""
    u = current_update(u, a, du)
    held = (c > 0) * 1
    v = held * v + (1 - held) * saturate_v(decay(v, DECAY_ONE - dv) + u + bias)
    c = c - held
    s = (v > vth_e) * 1
    v = (1 - s) * v
    c = (1 - s) * c + s * period
    return u, v, c, s


def refractory_step(state: RefractoryState, a: np.ndarray, *, du, dv, bias, vth_e, refractory_period) -> np.ndarray:
    """Advance `state` in place by one step with int32 input `a`; return s (0/1 int64).

    `bias` is bias_mant << bias_exp and `vth_e` is vth << 6 (scalars or per neuron); du, dv are
    12-bit decays (4096 = one)."""
    i64 = np.int64
    state.u, state.v, state.c, s = refractory_update(
        np.asarray(state.u, i64), np.asarray(state.v, i64), np.asarray(state.c, i64), np.asarray(a, i64),
        np.asarray(du, i64), np.asarray(dv, i64), np.asarray(bias, i64), np.asarray(vth_e, i64), i64(refractory_period),
    )
    return np.asarray(s, i64)
