"""numba kernel of the sim backend for adaptive-threshold LIF populations (Lava's `ATRLIF`, fixed_pt).

The arithmetic is `snnc.ir.fixed_point.atrlif` and `arith` compiled inline (`current_update`,
`decay`, `saturate_v`, `wrap32`, and the whole `atrlif_update`): the function the numpy step
`atrlif_step` calls, which the tests compare this kernel against; the loop over [batch, time,
neuron] and the counters are `kernels_scan.scan`, which runs this module's `step`. The state
(i, v, theta, r) lives in an int32 array [4, batch, n] that persists across chunks; theta starts at
theta_0 (`initial_state`).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from snnc.ir.chip import Population
from snnc.ir.fixed_point import arith, units
from snnc.ir.fixed_point import atrlif as spec
from snnc.ir.fixed_point.units import bias_value, threshold_value

from . import kernels as K
from . import arg_types as A
from . import kernels_scan as S

current_update = K.inline(spec.current_update, wrap32=K.wrap32, decay=K.decay, wrap_u=K.wrap_u)
atrlif_update = K.inline(spec.atrlif_update, wrap32=K.wrap32, decay=K.decay, saturate_v=K.saturate_v,
                         current_update=current_update)

I, V, THETA, R = 0, 1, 2, 3
"""Rows of the state array [4, batch, n] (int32)."""


def population_params(pop: Population) -> dict:
    """The kernel's parameters of an atrlif population (thresholds already << 6)."""
    shape = pop.shape
    bias = bias_value(np.broadcast_to(pop.bias_mant, shape).reshape(-1), np.broadcast_to(pop.bias_exp, shape).reshape(-1))
    return {
        "du": int(pop.du), "dv": int(pop.dv), "bias": np.ascontiguousarray(bias, np.int64),
        "theta_0": int(threshold_value(int(pop.vth))), "theta_step": int(threshold_value(int(pop.theta_step))),
        "d_theta": int(pop.d_theta), "d_r": int(pop.d_r),
    }


def initial_state(batch: int, n: int, theta_0: int) -> np.ndarray:
    """Lava's state before the first step: theta = theta_0, i = v = r = 0."""
    state = np.zeros((4, batch, n), np.int32)
    state[THETA] = theta_0
    return state


@nb.njit(inline="always")
def step(state, acc, b, t, j, n, params):
    """Neuron j of sample b at step t (see `kernels_scan`)."""
    du, dv, bias, theta_0, theta_step, d_theta, d_r = params
    i, v, theta, r, s = atrlif_update(
        np.int64(state[I, b, j]), np.int64(state[V, b, j]), np.int64(state[THETA, b, j]), np.int64(state[R, b, j]),
        np.int64(acc[b, t, j]), du, dv, bias[j], theta_0, theta_step, d_theta, d_r,
    )
    state[I, b, j], state[V, b, j], state[THETA, b, j], state[R, b, j] = i, v, theta, r
    return s, i, v, (i != 0) | (v != 0)


def _make_scan_atrlif(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_atrlif(acc, steps, state, du, dv, bias, theta_0, theta_step, d_theta, d_r,
                    s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
        """`kernels_scan.scan` of `step`. acc [B, >=steps, n] int32; s_out [B, steps, n] float32
        (0/1); u_out/v_out get i and v when written."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        S.scan(step, acc, steps, state, (du, dv, bias, theta_0, theta_step, d_theta, d_r),
               s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t)

    return scan_atrlif


scan_atrlif = _make_scan_atrlif(S.digest(arith, units, spec))
SIGNATURES = {"scan_atrlif": [S.signature(A.I64, A.I64, A.VEC, A.I64, A.I64, A.I64, A.I64)]}
"""The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
