"""numba kernel of the sim backend for product populations (Lava's `ProdNeuron`, fixed_pt).

The arithmetic is `snnc.ir.fixed_point.prodneuron` compiled inline (`product_value`,
`product_spike`): the definition the numpy step `product_step` uses, which the tests compare this
kernel against; the loop over [batch, time, neuron] and the counters are `kernels_scan.scan`, which
runs this module's `step`. The component's int32 input buffer is twice the population wide: columns
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
from . import arg_types as A
from . import kernels_scan as S

product_value = K.inline(spec.product_value, wrap32=K.wrap32)
product_spike = K.inline(spec.product_spike, wrap32=K.wrap32)


def population_params(pop: Population) -> dict:
    """The kernel's parameters of a product population."""
    return {"exp": int(pop.prod_exp), "vth": int(pop.vth)}


@nb.njit(inline="always")
def step(state, acc, b, t, j, n, params):
    """Neuron j of sample b at step t (see `kernels_scan`): a_in1 at column j, a_in2 at n + j; no state,
    no probed values; active when either input is nonzero."""
    exp, vth = params
    a1 = np.int64(acc[b, t, j])
    a2 = np.int64(acc[b, t, n + j])
    return product_spike(product_value(a1, a2, np.int64(exp)), np.int64(vth)), 0, 0, (a1 != 0) | (a2 != 0)


def _make_scan_product(digest: str):
    @nb.njit(cache=True, parallel=True)
    def scan_product(acc, steps, exp, vth, s_out, fanout, spikes_t, counts, active, ops_t):
        """`kernels_scan.scan` of `step`. acc [B, >=steps, 2n] int32; s_out [B, steps, n] float64
        (payloads are int32, exact in float64)."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        none = np.empty((0, 0, 0), np.int32)  # no state, no probes
        S.scan(step, acc, steps, none, (exp, vth), s_out, none, none, False, False, fanout, spikes_t, counts, active, ops_t)

    return scan_product


scan_product = _make_scan_product(S.digest(arith, units, spec))
SIGNATURES = {"scan_product": [(A.ACC, A.I64, A.I64, A.I64, A.GRADED_OUT, *A.COUNTERS)]}
"""The argument types `program` calls the kernel with (see `kernels.SIGNATURES`)."""
