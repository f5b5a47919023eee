"""One step of resonate-and-fire neurons (Lava 0.10.0 `lava.proc.rf` RF and `lava.proc.rf_iz`
RF_IZ, fixed_pt): the specification.

Both keep a complex state z = real + i imag (two int32 Vars) and take TWO input ports, `a_real_in`
and `a_imag_in` (each the int32 sum of what its projections send this step). Lava's
`PyRFModelFixed` / `PyRF_IZModelFixed.run_spk`, in snnc's integers:

    ar, ai = wrap32(a_real << state_exp), wrap32(a_imag << state_exp)      (int32 left shift)
    re' = clip(scale(cos_decay * re) - scale(sin_decay * im) + ar)
    im' = clip(scale(sin_decay * re) + scale(cos_decay * im) + ai)
    scale(x) = sign(x) * (|x| >> decay_bits)                               (toward zero)
    clip     = +-(2**23 - 1)          (Lava's ri_bitwidth = 2 * 12: the same bound as the LIF's v)
    rf:      s = (re' >= vth_e) & (im' >= 0) & (im < 0)    (the phase crosses 0 from below; im is
             the state before this step)
    rf_iz:   s = im' >= vth_e; where s: re' = 0, im' = vth_e - 1

`vth_e = vth << state_exp` (Lava: `int(vth * 2**state_exp)`); `sin_decay`, `cos_decay` are
(1 - alpha) sin / cos(2 pi / period) as integer fractions of 2**decay_bits, which Lava's process
computes from period and alpha by truncation toward zero (`lava_decays`). Spikes are binary. snnc's
`u`/`v` probes of a resonator population read `real`/`imag`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import saturate_v, wrap32

RF_PORTS = ("a_real_in", "a_imag_in")
"""The two input ports of a resonator, by Lava's names."""
RF_KINDS = ("rf", "rf_iz")
"""Lava's RF (spikes at the phase's zero crossing) and RF_IZ (spikes on the imaginary part, Izhikevich reset)."""


@dataclass
class ResonatorState:
    """real and imag of every neuron: [batch, n] int64."""

    real: np.ndarray
    imag: np.ndarray

    @classmethod
    def zeros(cls, batch: int, n: int) -> "ResonatorState":
        return cls(np.zeros((batch, n), np.int64), np.zeros((batch, n), np.int64))


def scale_volt(x, decay_bits):
    """Lava's `scale_volt`: sign(x) * (|x| >> decay_bits), truncating toward zero."""
    return np.sign(x) * (np.abs(x) >> decay_bits)


def resonate(real, imag, a_real, a_imag, sin_decay, cos_decay, decay_bits, state_exp):
    """The rotated, decayed and driven state, clipped (before any spike or reset)."""
    ar = wrap32(wrap32(a_real) << state_exp)
    ai = wrap32(wrap32(a_imag) << state_exp)
    re = saturate_v(scale_volt(cos_decay * real, decay_bits) - scale_volt(sin_decay * imag, decay_bits) + ar)
    im = saturate_v(scale_volt(sin_decay * real, decay_bits) + scale_volt(cos_decay * imag, decay_bits) + ai)
    return re, im


def resonator_update(real, imag, a_real, a_imag, sin_decay, cos_decay, decay_bits, state_exp, vth_e, iz):
    """One step of one neuron or of arrays of them, plain operators only (numba compiles it inline
    for the sim kernel). `iz` is 1 for rf_iz, 0 for rf. Returns the new (real, imag) and s (0/1)."""
    re, im = resonate(real, imag, a_real, a_imag, sin_decay, cos_decay, decay_bits, state_exp)
    phase = (re >= vth_e) * (im >= 0) * (imag < 0) * 1
    s = iz * ((im >= vth_e) * 1) + (1 - iz) * phase
    reset = iz * s
    return re * (1 - reset), im + reset * (vth_e - 1 - im), s


def resonator_threshold(vth, state_exp) -> int:
    """What the state is compared against: Lava's `int(vth * (1 << state_exp))` for an integer vth."""
    return int(vth) << int(state_exp)


def resonator_step(state: ResonatorState, a_real: np.ndarray, a_imag: np.ndarray, *, kind: str, sin_decay, cos_decay,
                   decay_bits: int, state_exp: int, vth: int) -> np.ndarray:
    """Advance `state` in place by one step with the int32 inputs of both ports; return s (0/1 int64).

    `vth` is the threshold mantissa (compared as vth << state_exp); sin_decay/cos_decay are scalars
    or per-neuron arrays.
    """
    if kind not in RF_KINDS:
        raise ValueError(f"unknown resonator kind {kind!r}; expected one of {RF_KINDS}")
    i64 = np.int64
    state.real, state.imag, s = resonator_update(
        np.asarray(state.real, i64), np.asarray(state.imag, i64), np.asarray(a_real, i64), np.asarray(a_imag, i64),
        np.asarray(sin_decay, i64), np.asarray(cos_decay, i64), i64(decay_bits), i64(state_exp),
        i64(resonator_threshold(vth, state_exp)), i64(kind == "rf_iz"),
    )
    return np.asarray(s, i64)


def lava_decays(period, alpha, decay_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(sin_decay, cos_decay) as Lava's RF process computes them from period and alpha (float64,
    same operations in the same order, then np.int32: truncation toward zero)."""
    sin_decay = (1 - alpha) * np.sin(np.pi * 2 * 1 / period)
    cos_decay = (1 - alpha) * np.cos(np.pi * 2 * 1 / period)
    return np.asarray(np.int32(sin_decay * (1 << decay_bits))), np.asarray(np.int32(cos_decay * (1 << decay_bits)))


def period_alpha(sin_decay, cos_decay, decay_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """A (period, alpha) from which `lava_decays` gives back exactly the integers (sin_decay,
    cos_decay): the middle of each truncation interval (k + 0.5 for k > 0, k - 0.5 for k < 0, 0 for
    0), whose float error (~1e-16) is far inside the interval's half width."""
    def middle(k):
        k = np.asarray(k, np.float64)
        return k + 0.5 * np.sign(k)

    s, c = middle(sin_decay), middle(cos_decay)
    angle = np.arctan2(s, c)
    with np.errstate(divide="ignore"):
        period = np.where(angle == 0, np.inf, 2 * np.pi / np.where(angle == 0, 1.0, angle))
    alpha = 1 - np.hypot(s, c) / (1 << decay_bits)
    return period, alpha
