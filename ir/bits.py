"""Bit widths of every chip-level quantity, and the checks that keep values inside them.

One table (`SPECS`) says how many bits each field costs and what range it holds, so that the IR's
validation, the bit budget and the error messages all read the same numbers. Where the hardware
wraps (the 24-bit current `u`, Conv outputs) the helpers here wrap; everywhere else an
out-of-range value is an error at build time, never a silent clip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError


@dataclass(frozen=True)
class IntSpec:
    """An integer field: its name, bit width, and inclusive range."""

    name: str
    bits: int
    lo: int
    hi: int
    meaning: str

    def check(self, value, where: str) -> np.ndarray | int:
        """Return `value` as int64 (scalar int or array) or raise naming `where` and the range."""
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ParameterError(
                f"{self.name} must be an integer or an integer array",
                where=where,
                got=type(value).__name__,
                hint=f"{self.name} is {self.meaning}",
            )
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                bad = arr[~np.isfinite(arr) | (arr != np.round(arr))].ravel()[:3]
                raise ParameterError(
                    f"{self.name} must hold integers",
                    where=where,
                    got=bad.tolist(),
                    hint="quantize the value first (snnc compile does this)",
                )
        arr = arr.astype(np.int64, copy=False)  # no copy of an int64 array: it is only read
        if arr.size and (arr.min() < self.lo or arr.max() > self.hi):
            worst = arr.min() if arr.min() < self.lo else arr.max()
            raise ParameterError(
                f"{self.name} out of its {self.bits}-bit range",
                where=where,
                expected=f"{self.lo}..{self.hi} ({self.meaning})",
                got=int(worst),
                hint="rescale the layer or pick another exponent; the chip cannot store this value",
            )
        return int(arr) if arr.ndim == 0 else arr


SPECS: dict[str, IntSpec] = {
    spec.name: spec
    for spec in [
        IntSpec("du", 12, 0, 4095, "current decay, 4096 = one (du=4095 clears u every step)"),
        IntSpec("dv", 12, 0, 4095, "voltage decay, 4096 = one (dv=0: no leak)"),
        IntSpec("vth", 17, 0, 2**17 - 1, "threshold mantissa; the neuron compares v > vth << 6"),
        IntSpec("bias_mant", 13, -(2**12), 2**12 - 1, "signed bias mantissa"),
        IntSpec("bias_exp", 3, 0, 7, "bias exponent: bias = bias_mant << bias_exp"),
        IntSpec("weight", 9, -256, 255, "8-bit weight mantissa plus sign"),
        IntSpec("weight_exp", 4, -8, 7, "shared weight exponent of a projection"),
        IntSpec("num_weight_bits", 4, 1, 8, "weight precision in bits (without sign)"),
        IntSpec("num_message_bits", 5, 0, 24, "spike payload bits; 0 = binary spikes"),
        IntSpec("delay", 6, 0, 62, "synaptic delay in time steps"),
        IntSpec("reset_interval", 16, 1, 2**16 - 1, "LIFReset period in time steps"),
        IntSpec("reset_offset", 16, 0, 2**16 - 1, "LIFReset phase in time steps"),
        IntSpec("v_reset", 24, -(2**23 - 1), 2**23 - 1, "voltage a spiking neuron resets to (reset_mode zero), in v units"),
        IntSpec("relay_shift", 5, 0, 23, "right shift from a relay's v to its graded payload"),
        IntSpec("prod_exp", 5, 0, 23, "product neuron: right shift of the int32 product a1 * a2"),
        IntSpec("theta_step", 12, 0, 4095, "atrlif threshold increase per spike (mantissa; Lava shifts it left by 6)"),
        IntSpec("d_theta", 12, 0, 4095, "atrlif decay of theta towards theta_0, 4096 = one"),
        IntSpec("d_r", 12, 0, 4095, "atrlif decay of the refractory state r, 4096 = one"),
        IntSpec("refractory_period", 6, 0, 62, "lif_refractory: steps v is held after a spike (lava-dl refDelay - 1)"),
        IntSpec("sin_decay", 12, 0, 4095, "rf/rf_iz: (1 - alpha) sin(2 pi / period) in units of 2**-decay_bits (Lava's 12-bit sin_decay)"),
        IntSpec("cos_decay", 12, 0, 4095, "rf/rf_iz: (1 - alpha) cos(2 pi / period) in units of 2**-decay_bits (Lava's 12-bit cos_decay)"),
        IntSpec("decay_bits", 4, 1, 12, "rf/rf_iz: fraction bits of sin_decay/cos_decay (the rotated state is shifted right by it, toward zero)"),
        IntSpec("act_bias", 16, -(2**15), 2**15 - 1, "sigma-delta activation bias (Lava SigmaDelta bias), scaled by 2**(spike_exp + state_exp)"),
        IntSpec("spike_exp", 3, 0, 7, "sigma-delta message exponent: messages carry 2**spike_exp per unit of activation"),
        IntSpec("state_exp", 3, 0, 7, "sigma-delta state exponent: extra fraction bits of sigma/act/residue, shifted off each message; rf/rf_iz: left shift of both inputs and of vth"),
        IntSpec("u", 24, -(2**23), 2**23 - 1, "synaptic current state (wraps)"),
        IntSpec("v", 24, -(2**23 - 1), 2**23 - 1, "membrane voltage state (saturates)"),
    ]
}

STATE_BITS = SPECS["u"].bits + SPECS["v"].bits
"""Bits of state one CUBA compartment keeps (u and v)."""


def wrap_u(x: np.ndarray) -> np.ndarray:
    """Wrap the current the way Lava's fixed-point LIF does (`snnc.ir.fixed_point.wrap_u`)."""
    from .fixed_point.arith import wrap_u as _wrap_u

    return _wrap_u(np.asarray(x, np.int64))


def wrap_signed24(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap to 24 bits, as Lava's fixed-point Conv does on its output."""
    return ((x + 2**23) % 2**24) - 2**23


def sign_mode(weights) -> str:
    """Lava's sign mode of a weight matrix: 'excitatory', 'inhibitory' or 'mixed'."""
    w = weights.data if hasattr(weights, "tocsr") else np.asarray(weights)
    if w.size == 0 or np.all(w >= 0):
        return "excitatory"
    if np.all(w <= 0):
        return "inhibitory"
    return "mixed"


def truncate_weights(weights: np.ndarray, num_weight_bits: int, mode: str | None = None) -> np.ndarray:
    """The weights Lava's bit-accurate Dense/Sparse actually use (lava.utils.weightutils).

    Clip to 8 bits for the sign mode, then drop `8 - num_weight_bits (+1 if mixed)` low bits with an
    arithmetic shift; inhibitory weights are negated, truncated and negated back.
    """
    w = np.asarray(weights, dtype=np.int64)
    mode = mode or sign_mode(w)
    mixed = mode == "mixed"
    if mixed:
        w = np.clip(w, -256, 255)
    elif mode == "excitatory":
        w = np.clip(w, 0, 255)
    else:
        w = np.clip(w, -255, 0)
    shift = 8 - num_weight_bits + (1 if mixed else 0)
    if shift:  # in place on the clipped copy: one array of the weights' size, not one per step
        if mode == "inhibitory":
            np.negative(w, out=w)
        w >>= shift
        w <<= shift
        if mode == "inhibitory":
            np.negative(w, out=w)
    return w


def on_weight_grid(weights: np.ndarray, num_weight_bits: int) -> bool:
    """Whether `truncate_weights(weights, num_weight_bits)` would return `weights` unchanged (in
    their own sign mode): from the extremes and the low bits, without making the truncated copy."""
    w = np.asarray(weights)
    if w.size == 0:
        return True
    lo, hi = int(w.min()), int(w.max())
    mode = "excitatory" if lo >= 0 else "inhibitory" if hi <= 0 else "mixed"
    low, high, step = representable_weight_range(num_weight_bits, mode)
    return low <= lo and hi <= high and (step == 1 or not np.any(np.bitwise_and(w, step - 1)))


def representable_weight_range(num_weight_bits: int, mode: str) -> tuple[int, int, int]:
    """(lo, hi, step) of weights that survive `truncate_weights` unchanged."""
    step = 1 << (8 - num_weight_bits + (1 if mode == "mixed" else 0))
    if mode == "mixed":
        return -256, 256 - step, step
    if mode == "excitatory":
        return 0, 256 - step, step
    return -(256 - step), 0, step
