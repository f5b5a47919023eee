"""numba kernel of the sim backend for sigma-delta populations (Lava's Delta, SigmaDelta, Sigma).

The arithmetic is `snnc.ir.fixed_point.sigma_delta` compiled inline (`activation`, `delta_encode`,
`wrap32`): the same definition as the numpy step `sigma_delta_step`, which the tests compare this
kernel against. What is here is the loop over [batch, time, neuron] and the activity counters,
laid out like `kernels.scan_ff` so that the program treats a sigma-delta component like any other
feed-forward one: a message is "a spike" for the counters when it is nonzero.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from snnc.ir.fixed_point import arith, units
from snnc.ir.fixed_point import sigma_delta as sd

from . import kernels as K
from . import arg_types as A

wrap32 = K.wrap32
abs32 = K.inline(sd.abs32, wrap32=wrap32)
activation = K.inline(sd.activation, wrap32=wrap32)
delta_encode = K.inline(sd.delta_encode, wrap32=wrap32, abs32=abs32)

KIND_DELTA = 0
KIND_SIGMA_DELTA = 1
KIND_SIGMA = 2
KIND_CODES = {"delta": KIND_DELTA, "sigma_delta": KIND_SIGMA_DELTA, "sigma": KIND_SIGMA}

SIGMA, ACT, RESIDUE, ERROR = 0, 1, 2, 3
"""Rows of the state array [4, batch, n] (int32)."""


def population_params(pop) -> dict:
    """The kernel's scalar and per-neuron arguments for a sigma-delta `Population`."""
    exps = int(pop.spike_exp) + int(pop.state_exp)
    bias = np.broadcast_to(np.asarray(pop.act_bias, np.int64), pop.shape).reshape(-1)
    return dict(
        kind=KIND_CODES[pop.model],
        vth_e=int(sd.scaled(np.int64(pop.vth), pop.spike_exp, pop.state_exp)),
        bias_e=np.ascontiguousarray(sd.scaled(bias, pop.spike_exp, pop.state_exp), np.int64),
        relu=int(pop.act_mode == "relu"),
        cum_error=int(pop.cum_error),
        in_shift=exps,
        state_exp=int(pop.state_exp),
    )


def _make_scan_sdn(digest: str):
    @nb.njit(parallel=True, cache=True)
    def scan_sdn(
        acc, t0, steps, state, kind, vth_e, bias_e, relu, cum_error, in_shift, state_exp,
        s_out, u_out, v_out, write_u, write_v,
        fanout, block, spikes_t, counts, active, ops_t, peak,
    ):
        """Run one sigma-delta population over a chunk of `steps` steps.

        acc [B, >=steps, n] int32: what arrives at each step; state [4, B, n] int32 (sigma, act,
        residue, error), updated in place; vth_e, in_shift (= spike_exp + state_exp for a Delta, else
        unused) and state_exp are scalars, bias_e [n] is bias << (spike_exp + state_exp) wrapped.
        s_out [B, steps, n] receives the messages; u_out/v_out sigma and act when write_u/write_v.
        Counters as `kernels.scan_ff`: nonzero messages per step, per neuron, synaptic ops per
        outgoing projection (fanout of each neuron that sent), and neuron-steps with nonzero state;
        peak [units] receives the largest |message| of each work unit (the float paths' exactness
        bound), so that nobody reads the messages again for it. The first projection's synaptic ops
        are summed in the neuron loop itself (a sigma-delta layer usually feeds one). The rows of acc
        it has read are cleared, as `kernels.scan_ff` does.
        """
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        batch = state.shape[1]
        n = state.shape[2]
        n_blocks = (n + block - 1) // block
        for unit in nb.prange(batch * n_blocks):
            b, lo, hi = K.tile(unit, n_blocks, block, n)
            m = hi - lo
            sigma = np.empty(m, np.int64)
            act = np.empty(m, np.int64)
            residue = np.empty(m, np.int64)
            error = np.empty(m, np.int64)
            for j in range(m):
                sigma[j] = state[SIGMA, b, lo + j]
                act[j] = state[ACT, b, lo + j]
                residue[j] = state[RESIDUE, b, lo + j]
                error[j] = state[ERROR, b, lo + j]
            bs = bias_e[lo:hi]
            cnt = counts[unit, lo:hi]
            n_proj = fanout.shape[0]
            fan0 = fanout[0, lo:hi] if n_proj > 0 else np.zeros(m, np.int64)
            n_active = 0
            pk = 0
            for t in range(steps):
                a = acc[b, t, lo:hi]
                s_row = s_out[b, t, lo:hi]
                n_msg = 0
                ops0 = 0
                # one branch-free loop per kind, so that the compiler can vectorize it
                if kind == KIND_SIGMA:
                    for j in range(m):
                        msg = wrap32(sigma[j] + np.int64(a[j]))
                        sigma[j] = msg
                        act[j] = msg
                        s_row[j] = msg
                        sent = np.int64(msg != 0)
                        cnt[j] += sent
                        n_msg += sent
                        n_active += sent
                        ops0 += fan0[j] * sent
                        pk = max(pk, abs(msg))
                else:
                    for j in range(m):
                        x = np.int64(a[j])
                        if kind == KIND_DELTA:
                            new = wrap32(x << in_shift)
                        else:
                            sigma[j] = wrap32(sigma[j] + x)
                            new = activation(sigma[j], np.int64(bs[j]), relu)
                        enc, residue[j], error[j] = delta_encode(new, act[j], residue[j], error[j], vth_e, cum_error)
                        act[j] = new
                        msg = enc >> state_exp
                        s_row[j] = msg
                        sent = np.int64(msg != 0)
                        cnt[j] += sent
                        n_msg += sent
                        n_active += np.int64((sigma[j] != 0) | (new != 0) | (residue[j] != 0) | (msg != 0))
                        ops0 += fan0[j] * sent
                        pk = max(pk, abs(msg))
                for j in range(m):  # read: cleared while in cache, so the program need not clear the buffer
                    a[j] = 0
                spikes_t[unit, 0, t] += n_msg
                if n_proj > 0:
                    ops_t[unit, 0, t] += ops0
                if n_msg > 0:  # the other outgoing projections (as `kernels.count_tile_step`)
                    for p in range(1, n_proj):
                        total = 0
                        for j in range(m):
                            total += fanout[p, lo + j] * (s_row[j] != 0)
                        ops_t[unit, p, t] += total
                K.record_tile_step(b, t, lo, sigma, act, u_out, v_out, write_u, write_v)
            active[unit, 0] += n_active
            peak[unit] = pk
            for j in range(m):
                state[SIGMA, b, lo + j] = sigma[j]
                state[ACT, b, lo + j] = act[j]
                state[RESIDUE, b, lo + j] = residue[j]
                state[ERROR, b, lo + j] = error[j]

    return scan_sdn


scan_sdn = _make_scan_sdn(K.spec_digest(arith, units, sd))


SIGNATURES = {"scan_sdn": [(A.ACC, A.I64, A.I64, A.ACC, A.I64, A.I64, A.VEC, A.I64, A.I64, A.I64, A.I64,
                            A.GRADED_OUT, *A.PROBES, A.COUNTERS[0], A.I64, *A.COUNTERS[1:], A.VEC)]}
"""The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
