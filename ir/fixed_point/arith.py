"""The chip's integer operations, with plain operators only.

Each function works elementwise on numpy int64 arrays and on int64 scalars, so the numpy neuron
step (`neuron.py`) and the simulator's numba kernels (which compile these same functions with
`numba.njit(inline="always")`) run one definition. Branch-free on purpose: a comparison is used as
0/1, which vectorizes in both worlds.
"""
from __future__ import annotations

import numpy as np

from .units import DECAY_SHIFT, U_HALF, U_WRAP, V_MAX

_INT32_OFF = 1 << 31
_INT32_MASK = (1 << 32) - 1
_DECAY_MASK = (1 << DECAY_SHIFT) - 1


def wrap32(x):
    """Two's-complement wrap of an int64 to int32 range (what storing into an int32 does)."""
    return ((x + _INT32_OFF) & _INT32_MASK) - _INT32_OFF


def decay(x, factor):
    """sign(x * factor) * (|x * factor| >> 12): Lava's decay, truncating toward zero."""
    p = x * factor
    return (p + ((p >> 63) & _DECAY_MASK)) >> DECAY_SHIFT


def wrap_u(x):
    """Lava's one-time wrap of the current: > 2**23 loses 2**24, <= -2**23 gains 2**24."""
    return x - U_WRAP * (x > U_HALF) + U_WRAP * (x <= -U_HALF)


def saturate_v(x):
    """v is clipped to +-(2**23 - 1)."""
    return np.minimum(np.maximum(x, -V_MAX), V_MAX)
