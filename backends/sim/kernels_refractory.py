"""numba kernel of the sim backend for lif_refractory populations (Lava's `LIFRefractory`).

The arithmetic is `snnc.ir.fixed_point.refractory` and `arith` compiled inline (the whole
`refractory_update`): the function the numpy step `refractory_step` calls, which the tests compare
this kernel against. The state (u, v, steps still refractory) lives in an int32 array
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


def _make_scan_refractory(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_refractory(acc, steps, state, du, dv, bias, vth_e, period,
                        s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
        """Run `steps` steps for every sample, updating `state` in place. acc [B, >=steps, n] int32;
        s_out [B, steps, n] float32 (0/1); u_out/v_out get u and v when written; counters as
        `kernels.scan_ff` (unit = sample)."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        batch = state.shape[1]
        n = state.shape[2]
        for b in nb.prange(batch):
            for t in range(steps):
                n_spk = 0
                n_act = 0
                for j in range(n):
                    u, v, c, s = refractory_update(
                        np.int64(state[U, b, j]), np.int64(state[V, b, j]), np.int64(state[C, b, j]),
                        np.int64(acc[b, t, j]), du[j], dv[j], bias[j], vth_e[j], period,
                    )
                    state[U, b, j] = u
                    state[V, b, j] = v
                    state[C, b, j] = c
                    K.record_step(b, t, j, s, u, v, s_out, counts, u_out, v_out, write_u, write_v)
                    n_spk += s
                    n_act += (u != 0) | (v != 0)
                K.count_step(b, t, n_spk, n_act, s_out, fanout, spikes_t, active, ops_t)

    return scan_refractory


scan_refractory = _make_scan_refractory(K.spec_digest(arith, units, atrlif, spec))


def _signatures() -> dict[str, list[tuple]]:
    """The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
    from numba import types as T

    i64, flag = T.int64, T.boolean
    i32_3, f32_3, i64_1, i64_2, i64_3 = (T.Array(d, n, "C") for d, n in (
        (T.int32, 3), (T.float32, 3), (i64, 1), (i64, 2), (i64, 3)))
    return {"scan_refractory": [(i32_3, i64, i32_3, i64_1, i64_1, i64_1, i64_1, i64,
                                 f32_3, i32_3, i32_3, flag, flag, i64_2, i64_3, i64_2, i64_2, i64_3)]}


SIGNATURES = _signatures()
