"""Units of the chip's state and the conversions from the float model's parameters.

u and v are signed 24-bit integers. Synaptic input enters u shifted left by `STATE_SHIFT` (6), and
the threshold mantissa is compared as `vth << STATE_SHIFT`: so weights and thresholds share one
unit, and the x64 factor is the same for both. Decays are 12-bit fractions of `DECAY_ONE` (4096):
u keeps (4096 - (du + 1)) / 4096 per step (du = 4095 clears it), v keeps (4096 - dv) / 4096.
"""
from __future__ import annotations

import numpy as np

STATE_SHIFT = 6
"""Left shift applied to synaptic input (into u) and to the threshold mantissa (vs v)."""
STATE_UNIT = 1 << STATE_SHIFT
DECAY_SHIFT = 12
DECAY_ONE = 1 << DECAY_SHIFT
STATE_BITS = 24
U_WRAP = 1 << STATE_BITS
U_HALF = 1 << (STATE_BITS - 1)
V_MAX = U_HALF - 1
"""v saturates at +-V_MAX; u wraps by U_WRAP when it leaves (-U_HALF, U_HALF]."""


def alpha_from_du(du) -> np.ndarray | float:
    """Fraction of u kept per step: (4096 - (du + 1)) / 4096 (Lava adds 1 to du)."""
    return (DECAY_ONE - (np.asarray(du, np.float64) + 1)) / DECAY_ONE


def beta_from_dv(dv) -> np.ndarray | float:
    """Fraction of v kept per step: (4096 - dv) / 4096."""
    return (DECAY_ONE - np.asarray(dv, np.float64)) / DECAY_ONE


def du_from_alpha(alpha) -> np.ndarray:
    """The du whose kept fraction is nearest `alpha` (0 <= alpha <= 4095/4096)."""
    return np.clip(np.rint(DECAY_ONE * (1.0 - np.asarray(alpha, np.float64))) - 1, 0, DECAY_ONE - 1).astype(np.int64)


def dv_from_beta(beta) -> np.ndarray:
    """The dv whose kept fraction is nearest `beta` (0 < beta <= 1)."""
    return np.clip(np.rint(DECAY_ONE * (1.0 - np.asarray(beta, np.float64))), 0, DECAY_ONE - 1).astype(np.int64)


def threshold_value(vth) -> np.ndarray | int:
    """What v is compared against: the threshold mantissa in v units (vth << 6); an int for an int."""
    if isinstance(vth, (int, np.integer)):
        return int(vth) << STATE_SHIFT
    return np.asarray(vth, np.int64) << STATE_SHIFT if np.ndim(vth) else int(vth) << STATE_SHIFT


def bias_value(bias_mant, bias_exp) -> np.ndarray | int:
    """bias_mant << bias_exp (>> -bias_exp when negative), added to v every step; not shifted by 6.
    An int for ints (a right shift floors in Python as in numpy)."""
    if isinstance(bias_mant, (int, np.integer)) and isinstance(bias_exp, (int, np.integer)):
        m_, e_ = int(bias_mant), int(bias_exp)
        return m_ << e_ if e_ >= 0 else m_ >> -e_
    m, e = np.asarray(bias_mant, np.int64), np.asarray(bias_exp, np.int64)
    return np.where(e >= 0, m << np.maximum(e, 0), m >> np.maximum(-e, 0))
