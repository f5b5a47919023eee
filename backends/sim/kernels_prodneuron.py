"""numba kernel of the sim backend for product populations (Lava's `ProdNeuron`, fixed_pt).

The arithmetic is `snnc.ir.fixed_point.prodneuron` compiled inline (`product_value`,
`product_spike`): the definition the numpy step `product_step` uses, which the tests compare this
kernel against. The component's int32 input buffer is twice the population wide: columns
[0, n) are what arrives on port `a_in1`, [n, 2n) what arrives on `a_in2` (the plan puts a link
into `a_in2` at offset n). A product neuron keeps no state, so there is nothing to carry between
chunks; its graded output is "a spike" for the counters when it is nonzero.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from snnc.ir.chip import Population
from snnc.ir.fixed_point import arith, units
from snnc.ir.fixed_point import prodneuron as spec

from . import kernels as K

product_value = K.inline(spec.product_value, wrap32=K.wrap32)
product_spike = K.inline(spec.product_spike, wrap32=K.wrap32)


def population_params(pop: Population) -> dict:
    """The kernel's parameters of a product population."""
    return {"exp": int(pop.prod_exp), "vth": int(pop.vth)}


def _make_scan_product(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_product(acc, steps, exp, vth, s_out, fanout, spikes_t, counts, active, ops_t):
        """Run `steps` steps for every sample. acc [B, >=steps, 2n] int32; s_out [B, steps, n]
        float64 (payloads are int32, exact in float64); counters as `kernels.scan_ff` (unit = sample)."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        batch = acc.shape[0]
        n = s_out.shape[2]
        e = np.int64(exp)
        th = np.int64(vth)
        for b in nb.prange(batch):
            for t in range(steps):
                n_spk = 0
                n_act = 0
                for j in range(n):
                    a1 = np.int64(acc[b, t, j])
                    a2 = np.int64(acc[b, t, n + j])
                    s = product_spike(product_value(a1, a2, e), th)
                    s_out[b, t, j] = s
                    fired = np.int64(s != 0)
                    counts[b, j] += fired
                    n_spk += fired
                    n_act += (a1 != 0) | (a2 != 0)
                K.count_step(b, t, n_spk, n_act, s_out, fanout, spikes_t, active, ops_t)

    return scan_product


scan_product = _make_scan_product(K.spec_digest(arith, units, spec))


def _signatures() -> dict[str, list[tuple]]:
    """The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
    from numba import types as T

    i64 = T.int64
    i32_3, f64_3, i64_2, i64_3 = (T.Array(d, n, "C") for d, n in ((T.int32, 3), (T.float64, 3), (i64, 2), (i64, 3)))
    return {"scan_product": [(i32_3, i64, i64, i64, f64_3, i64_2, i64_3, i64_2, i64_2, i64_3)]}


SIGNATURES = _signatures()
