"""Sigma-delta neurons (SDNN), one step: the specification of Lava 0.10.0's `lava.proc.sdn` fixed_pt.

Three kinds, as lava-dl netx builds them from a `.net` file's SDNN layers (input, hidden, output):

- "delta" (Lava `Delta`, netx's input layer): the input itself is the activation,
      act_new = wrap32(a << (spike_exp + state_exp))
- "sigma_delta" (Lava `SigmaDelta`, hidden layers): a sigma dendrite, a bias and an activation,
      sigma   = wrap32(sigma + a)
      act_new = wrap32(sigma + bias_e), then max(act_new, 0) for act_mode "relu" ("unit": as is)
- "sigma" (Lava `Sigma`, netx's output layer with `sigma_output`): sigma = wrap32(sigma + a),
  and the output message is sigma itself (its activation `act`, too).

"delta" and "sigma_delta" then delta-encode the activation (Lava's `delta_dynamics`):
      delta   = wrap32(act_new - act + residue)
      cum_error off: s = delta where |delta| >= vth_e, else 0
      cum_error on:  error = wrap32(error + delta); s = delta where |error| >= vth_e, else 0;
                     error = 0 where s != 0
      residue = wrap32(delta - s); act = act_new
and send the graded message s >> state_exp (arithmetic shift). vth_e = vth << (spike_exp +
state_exp) and bias_e = wrap32(bias << (spike_exp + state_exp)) are what Lava's processes store.
Every state is an int32 in Lava (numpy int32 arithmetic wraps), so each sum here wraps to int32;
|x| is taken in int32 too (|-2**31| stays negative, as np.abs does on int32).

The element functions below use plain operators only, so that the numpy step and the sim's numba
kernel (`backends/sim/kernels_sdn.py`, which compiles them inline) run one definition.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import wrap32

SIGMA_DELTA_KINDS = ("delta", "sigma_delta", "sigma")
ACT_MODES = ("relu", "unit")
"""Lava's `ActivationMode` (RELU = 1, UNIT = 0)."""


def abs32(x):
    """|x| as numpy computes it on int32: wraps, so |-2**31| = -2**31."""
    return wrap32(abs(x))


def scaled(value, spike_exp, state_exp):
    """value << (spike_exp + state_exp), wrapped to int32: how Lava's Delta/SigmaDelta store vth and bias."""
    return wrap32(value << (spike_exp + state_exp))


def activation(sigma, bias_e, relu):
    """act_new of a sigma-delta neuron: sigma + bias (int32), clipped at 0 when `relu` (0/1)."""
    x = wrap32(sigma + bias_e)
    return x - relu * (x < 0) * x


def delta_encode(act_new, act, residue, error, vth_e, cum_error):
    """Lava's `delta_dynamics`: (scaled message s, new residue, new error); `cum_error` is 0/1."""
    delta = wrap32(act_new - act + residue)
    err = wrap32(error + cum_error * delta)
    magnitude = cum_error * abs32(err) + (1 - cum_error) * abs32(delta)
    s = delta * (magnitude >= vth_e)
    err = err - cum_error * err * (abs32(s) > 0)
    return s, wrap32(delta - s), err


@dataclass
class SigmaDeltaState:
    """sigma, act, residue and error of every neuron, [batch, n] int64 holding int32 values."""

    sigma: np.ndarray
    act: np.ndarray
    residue: np.ndarray
    error: np.ndarray

    @classmethod
    def zeros(cls, batch: int, n: int) -> "SigmaDeltaState":
        return cls(*(np.zeros((batch, n), np.int64) for _ in range(4)))


def sigma_delta_step(
    state: SigmaDeltaState,
    a: np.ndarray,
    *,
    kind: str,
    vth=0,
    bias=0,
    act_mode: str = "relu",
    cum_error: bool = False,
    spike_exp: int = 0,
    state_exp: int = 0,
) -> np.ndarray:
    """Advance `state` in place by one Lava step with int32 input `a`; return the graded message.

    `vth` (per layer) and `bias` (scalar or per neuron) are the process arguments netx passes
    (vThMant and the layer bias), before Lava's scaling by 2**(spike_exp + state_exp).
    """
    if kind not in SIGMA_DELTA_KINDS:
        raise ValueError(f"unknown sigma-delta kind {kind!r}; expected one of {SIGMA_DELTA_KINDS}")
    if act_mode not in ACT_MODES:
        raise ValueError(f"unknown activation mode {act_mode!r}; expected one of {ACT_MODES}")
    a = wrap32(np.asarray(a, np.int64))
    if kind == "sigma":
        state.sigma = wrap32(state.sigma + a)
        state.act = state.sigma.copy()  # a Sigma's activation is its sum (Lava's Sigma has no act Var)
        return state.sigma.copy()
    spike_exp, state_exp = int(spike_exp), int(state_exp)
    if kind == "delta":
        act_new = scaled(a, spike_exp, state_exp)
    else:
        state.sigma = wrap32(state.sigma + a)
        bias_e = scaled(np.asarray(bias, np.int64), spike_exp, state_exp)
        act_new = activation(state.sigma, bias_e, int(act_mode == "relu"))
    vth_e = scaled(np.int64(vth), spike_exp, state_exp)
    s, state.residue, state.error = delta_encode(act_new, state.act, state.residue, state.error, vth_e, int(bool(cum_error)))
    state.act = act_new
    return s >> state_exp
