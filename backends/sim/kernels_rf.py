"""numba kernel of the sim backend for resonate-and-fire populations (Lava's `RF` / `RF_IZ`, fixed_pt).

The arithmetic is `snnc.ir.fixed_point.resonator` and `arith` compiled inline (the whole
`resonator_update`): the function the numpy step `resonator_step` calls, which the tests compare
this kernel against; the loop over [batch, time, neuron] and the counters are `kernels_scan.scan`,
which runs this module's `step`. The component's int32 input buffer is twice the population wide: columns
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
from . import arg_types as A
from . import kernels_scan as S

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


@nb.njit(inline="always")
def step(state, acc, b, t, j, n, params):
    """Neuron j of sample b at step t (see `kernels_scan`): a_real_in at column j, a_imag_in at n + j."""
    sin_decay, cos_decay, decay_bits, state_exp, vth_e, iz = params
    re, im, s = resonator_update(
        np.int64(state[REAL, b, j]), np.int64(state[IMAG, b, j]), np.int64(acc[b, t, j]), np.int64(acc[b, t, n + j]),
        sin_decay[j], cos_decay[j], decay_bits, state_exp, vth_e, iz,
    )
    state[REAL, b, j], state[IMAG, b, j] = re, im
    return s, re, im, (re != 0) | (im != 0)


def _make_scan_rf(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_rf(acc, steps, state, sin_decay, cos_decay, decay_bits, state_exp, vth_e, iz,
                s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
        """`kernels_scan.scan` of `step`. acc [B, >=steps, 2n] int32 (a_real_in, then a_imag_in);
        s_out [B, steps, n] float32 (0/1); u_out/v_out get real and imag when written."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        S.scan(step, acc, steps, state, (sin_decay, cos_decay, decay_bits, state_exp, vth_e, iz),
               s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t)

    return scan_rf


scan_rf = _make_scan_rf(S.digest(arith, units, spec))
SIGNATURES = {"scan_rf": [S.signature(A.VEC, A.VEC, A.I64, A.I64, A.I64, A.I64)]}
"""The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
