"""One time step of a population, for every neuron kind the chip has (the specification).

Order within a step (Lava's `run_spk`): optional periodic reset (LIFReset), then
    u = wrap_u(wrap32(decay(u, 4095 - du) + wrap32(a << 6)))
    v = saturate_v(decay(v, 4096 - dv) + u + bias [- vth_e if subtract-reset and spiked last step])
then the output and the reset:
- "lif":     s = v > vth_e;  reset_mode "zero": v = v_reset where s; "subtract": vth_e is taken off
             v at the next step (after its decay, as snnTorch's default `reset_mechanism="subtract"`
             does); "none": v is left alone.
- "lif_reset": "lif" plus u = v = 0 whenever step % reset_interval == reset_offset (Lava LIFReset).
- "ternary": s = +1 if v > vth_hi_e, -1 if v < vth_lo_e, else 0; v = v_reset where s != 0
             (Lava TernaryLIF with v_reset = 0).
- "relay":   never spikes; sends its voltage every step as a graded payload s = v >> relay_shift
             (floor), a Loihi 2 graded spike: how a leaky integrator's state feeds the next layer.
Lava's LIF, LIFReset and TernaryLIF are the cases reset_mode="zero", v_reset=0; the other modes
and "relay" are run on Lava by snnc's own process (`backends/lava/procs/cuba.py`).
The kinds with more state have their own modules: "lif_refractory" (Lava LIFRefractory: this
LIF with v held for a refractory period after each spike) is `refractory.py`, "atrlif" `atrlif.py`.
`a` is the int32 sum of the synapse values arriving this step.
`step_overflows` says where the same arithmetic wrapped u or clipped v (the fidelity guard's exact
overflow counts).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .arith import decay, saturate_v, wrap32, wrap_u
from .units import DECAY_ONE, STATE_SHIFT, V_MAX

NEURON_KINDS = ("lif", "lif_reset", "ternary", "relay")
ResetMode = Literal["zero", "subtract", "none"]
RESET_MODES: tuple[ResetMode, ...] = ("zero", "subtract", "none")
"""What a neuron does to v after a spike (the one definition; `snnc.ir.reset_mode` reads it from NIR files)."""


@dataclass
class NeuronState:
    """u, v and whether each neuron spiked at the previous step (for subtract reset): [batch, n]."""

    u: np.ndarray
    v: np.ndarray
    spiked: np.ndarray

    @classmethod
    def zeros(cls, batch: int, n: int) -> "NeuronState":
        return cls(np.zeros((batch, n), np.int64), np.zeros((batch, n), np.int64), np.zeros((batch, n), bool))


def neuron_step(
    state: NeuronState,
    a: np.ndarray,
    *,
    du,
    dv,
    bias,
    vth_e,
    kind: str = "lif",
    reset_mode: str = "zero",
    v_reset=0,
    step: int = 1,
    reset_interval: int = 1,
    reset_offset: int = 0,
    vth_hi_e=0,
    vth_lo_e=0,
    relay_shift=0,
) -> np.ndarray:
    """Advance `state` in place by one step (1-based Lava `step`) with input `a`; return s.

    du, dv, bias (already bias_mant << bias_exp), vth_e (already vth << 6), v_reset,
    vth_hi_e/vth_lo_e and relay_shift are scalars or per-neuron arrays.
    """
    if kind not in NEURON_KINDS:
        raise ValueError(f"unknown neuron kind {kind!r}; expected one of {NEURON_KINDS}")
    if reset_mode not in RESET_MODES:
        raise ValueError(f"unknown reset mode {reset_mode!r}; expected one of {RESET_MODES}")
    _, u, v_exact, spiked = _integrate(state, a, du, dv, bias, vth_e, kind, reset_mode, step, reset_interval, reset_offset)
    v = saturate_v(v_exact)
    if kind == "relay":
        s = v >> np.asarray(relay_shift, np.int64)
        fired = np.zeros_like(spiked)
    else:
        if kind == "ternary":
            s = (v > np.asarray(vth_hi_e, np.int64)).astype(np.int64) - (v < np.asarray(vth_lo_e, np.int64))
        else:
            s = (v > np.asarray(vth_e, np.int64)).astype(np.int64)
        fired = s != 0
        if reset_mode == "zero":
            v = np.where(fired, np.asarray(v_reset, np.int64), v)
    state.u, state.v, state.spiked = u, v, fired
    return s


def _integrate(state: NeuronState, a, du, dv, bias, vth_e, kind: str, reset_mode: str, step, reset_interval, reset_offset):
    """The step's arithmetic before v saturates: (u as exact integers, u as the chip holds it,
    v before saturation, spiked after the periodic reset). Elementwise; `step` may be an array."""
    u = np.asarray(state.u, np.int64)
    v = np.asarray(state.v, np.int64)
    spiked = np.asarray(state.spiked, bool)
    if kind == "lif_reset":
        periodic = np.asarray(step) % reset_interval == reset_offset % reset_interval
        u, v, spiked = np.where(periodic, 0, u), np.where(periodic, 0, v), spiked & ~periodic
    du, dv = np.asarray(du, np.int64), np.asarray(dv, np.int64)
    kept, shifted = decay(u, DECAY_ONE - 1 - du), wrap32(np.asarray(a, np.int64)) << STATE_SHIFT
    u_exact = kept + shifted
    u = wrap_u(wrap32(kept + wrap32(shifted)))
    v = decay(v, DECAY_ONE - dv) + u + np.asarray(bias, np.int64)
    if reset_mode == "subtract":
        v = v - spiked * np.asarray(vth_e, np.int64)
    return u_exact, u, v, spiked


def step_overflows(state: NeuronState, a, *, du, dv, bias, vth_e, kind: str = "lif", reset_mode: str = "zero", step=1,
                   reset_interval: int = 1, reset_offset: int = 0, **_) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where `neuron_step(state, a, ...)` leaves exact integer arithmetic: (u wrapped, v clipped at
    +V_MAX, v clipped at -V_MAX), boolean arrays shaped like `a`.

    u wraps where the current it keeps differs from decay(u) + (a << 6) computed exactly (the int32
    wrap of the shifted input or of the sum, or the 24-bit wrap); `a` is the int32 input sum the
    neuron takes (how that sum was accumulated is the synapses' business). Elementwise, so a whole
    recorded run can be checked at once: the state arrays hold each step's previous state and
    `step` the 1-based step numbers."""
    u_exact, u, v, _ = _integrate(state, a, du, dv, bias, vth_e, kind, reset_mode, step, reset_interval, reset_offset)
    return u != u_exact, v > V_MAX, v < -V_MAX
