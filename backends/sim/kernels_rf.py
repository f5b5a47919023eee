"""numba kernel of the sim backend for resonate-and-fire populations (Lava's `RF` / `RF_IZ`, fixed_pt).

The arithmetic is `snnc.ir.fixed_point.resonator` and `arith` compiled inline (the whole
`resonator_update`): the function the numpy step `resonator_step` calls, which the tests compare
this kernel against. The component's int32 input buffer is twice the population wide: columns
[0, n) are what arrives on port `a_real_in`, [n, 2n) what arrives on `a_imag_in` (the plan puts a
link into the second port at offset n). The state (real, imag) lives in an int32 array
[2, batch, n] that persists across chunks; the `u`/`v` probes read real/imag.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from snnc.ir.chip import Population
from snnc.ir.fixed_point import arith, units
from snnc.ir.fixed_point import resonator as spec

from . import kernels as K

scale_volt = K.inline(spec.scale_volt)
resonate = K.inline(spec.resonate, wrap32=K.wrap32, saturate_v=K.saturate_v, scale_volt=scale_volt)
resonator_update = K.inline(spec.resonator_update, resonate=resonate)

REAL, IMAG = 0, 1
"""Rows of the state array [2, batch, n] (int32)."""


def population_params(pop: Population) -> dict:
    """The kernel's parameters of an rf / rf_iz population (per-neuron decays, threshold << state_exp)."""

    def flat(x):  # a writable copy: the declared signatures are of writable arrays
        return np.array(np.broadcast_to(np.asarray(x, np.int64), pop.shape).reshape(-1))

    return {
        "sin_decay": flat(pop.sin_decay), "cos_decay": flat(pop.cos_decay), "decay_bits": int(pop.decay_bits),
        "state_exp": int(pop.state_exp), "vth_e": spec.resonator_threshold(pop.vth, pop.state_exp),
        "iz": int(pop.model == "rf_iz"),
    }


def initial_state(batch: int, n: int) -> np.ndarray:
    """Lava's state before the first step: real = imag = 0."""
    return np.zeros((2, batch, n), np.int32)


def _make_scan_rf(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_rf(acc, steps, state, sin_decay, cos_decay, decay_bits, state_exp, vth_e, iz,
                s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
        """Run `steps` steps for every sample, updating `state` in place. acc [B, >=steps, 2n] int32
        (a_real_in, then a_imag_in); s_out [B, steps, n] float32 (0/1); u_out/v_out get real and
        imag when written; counters as `kernels.scan_ff` (unit = sample)."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        batch = state.shape[1]
        n = state.shape[2]
        for b in nb.prange(batch):
            for t in range(steps):
                n_spk = 0
                n_act = 0
                for j in range(n):
                    re, im, s = resonator_update(
                        np.int64(state[REAL, b, j]), np.int64(state[IMAG, b, j]), np.int64(acc[b, t, j]),
                        np.int64(acc[b, t, n + j]), sin_decay[j], cos_decay[j], decay_bits, state_exp, vth_e, iz,
                    )
                    state[REAL, b, j] = re
                    state[IMAG, b, j] = im
                    K.record_step(b, t, j, s, re, im, s_out, counts, u_out, v_out, write_u, write_v)
                    n_spk += s
                    n_act += (re != 0) | (im != 0)
                K.count_step(b, t, n_spk, n_act, s_out, fanout, spikes_t, active, ops_t)

    return scan_rf


scan_rf = _make_scan_rf(K.spec_digest(arith, units, spec))


def _signatures() -> dict[str, list[tuple]]:
    """The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
    from numba import types as T

    i64, flag = T.int64, T.boolean
    i32_3, f32_3, i64_1, i64_2, i64_3 = (T.Array(d, n, "C") for d, n in (
        (T.int32, 3), (T.float32, 3), (i64, 1), (i64, 2), (i64, 3)))
    return {"scan_rf": [(i32_3, i64, i32_3, i64_1, i64_1, i64, i64, i64, i64,
                         f32_3, i32_3, i32_3, flag, flag, i64_2, i64_3, i64_2, i64_2, i64_3)]}


SIGNATURES = _signatures()
