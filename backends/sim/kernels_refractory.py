"""numba kernel of the sim backend for lif_refractory populations (Lava's `LIFRefractory`).

The arithmetic is `snnc.ir.fixed_point.refractory` and `arith` compiled inline (the whole
`refractory_update`): the function the numpy step `refractory_step` calls, which the tests compare
this kernel against; the loop over [batch, time, neuron] and the counters are `kernels_scan.scan`,
which runs this module's `step`. The state (u, v, steps still refractory) lives in an int32 array
[3, batch, n] that persists across chunks.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from snnc.ir.chip import Population
from snnc.ir.fixed_point import arith, units
from snnc.ir.fixed_point import atrlif, refractory as spec
from snnc.ir.fixed_point.units import bias_value, threshold_value

from . import kernels as K
from . import arg_types as A
from . import kernels_scan as S
from .kernels_atrlif import current_update

refractory_update = K.inline(spec.refractory_update, saturate_v=K.saturate_v, decay=K.decay, current_update=current_update)

U, V, C = 0, 1, 2
"""Rows of the state array [3, batch, n] (int32)."""


def population_params(pop: Population) -> dict:
    """The kernel's per-neuron parameters of a lif_refractory population (threshold already << 6)."""
    shape = pop.shape

    def flat(x):
        return np.ascontiguousarray(np.broadcast_to(x, shape).reshape(-1), np.int64)

    return {
        "du": flat(pop.du), "dv": flat(pop.dv), "bias": flat(bias_value(flat(pop.bias_mant), flat(pop.bias_exp))),
        "vth_e": flat(threshold_value(np.asarray(pop.vth, np.int64))), "period": int(pop.refractory_period),
    }


def initial_state(batch: int, n: int) -> np.ndarray:
    """Lava's state before the first step: u = v = 0, nobody refractory."""
    return np.zeros((3, batch, n), np.int32)


@nb.njit(inline="always")
def step(state, acc, b, t, j, n, params):
    """Neuron j of sample b at step t (see `kernels_scan`)."""
    du, dv, bias, vth_e, period = params
    u, v, c, s = refractory_update(
        np.int64(state[U, b, j]), np.int64(state[V, b, j]), np.int64(state[C, b, j]), np.int64(acc[b, t, j]),
        du[j], dv[j], bias[j], vth_e[j], period,
    )
    state[U, b, j], state[V, b, j], state[C, b, j] = u, v, c
    return s, u, v, (u != 0) | (v != 0)


def _make_scan_refractory(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_refractory(acc, steps, state, du, dv, bias, vth_e, period,
                        s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
        """`kernels_scan.scan` of `step`. acc [B, >=steps, n] int32; s_out [B, steps, n] float32
        (0/1); u_out/v_out get u and v when written."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        S.scan(step, acc, steps, state, (du, dv, bias, vth_e, period),
               s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t)

    return scan_refractory


scan_refractory = _make_scan_refractory(S.digest(arith, units, atrlif, spec))
SIGNATURES = {"scan_refractory": [S.signature(A.VEC, A.VEC, A.VEC, A.VEC, A.I64)]}
"""The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
