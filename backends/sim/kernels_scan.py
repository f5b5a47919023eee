"""The scan loop of the sim's per-kind neuron kernels (`kernels_rf`, `_atrlif`, `_refractory`,
`_prodneuron`), written once.

A kind supplies a *step*: an ``nb.njit(inline="always")`` function

    step(state, acc, b, t, j, n, params) -> (message, u, v, active)

that updates neuron j of sample b at step t: it reads its input from acc[b, t, ...] (columns j and,
for two-port kinds, n + j) and its state from state[:, b, j] (writing the new state back), with
`params` the tuple of the kind's parameters; it returns its message (0/1 spike or graded payload),
the two values the `u`/`v` probes record, and whether it counts as active. Its kernel is then a
few lines that name its arguments and call `scan` with the step and the parameter tuple::

    @nb.njit(cache=True, parallel=True)
    def scan_rf(acc, steps, state, sin_decay, ..., s_out, u_out, v_out, write_u, write_v, fanout, ...):
        digest  # noqa: B018
        S.scan(step, acc, steps, state, (sin_decay, ...), s_out, u_out, v_out, write_u, write_v, fanout, ...)

`scan` is compiled inline into that kernel (numba inlines it before it parallelizes, so its `prange`
becomes the kernel's), and so is the step: the compiled loop is the same as a hand-written one.

Why each kind writes its kernel out instead of a factory making it from the step: numba's on-disk
cache keys a kernel on its bytecode and on the pickled values it closes over, and a compiled
function closed over pickles with a per-process id, so such a kernel compiles again in every
process; the kernels one factory makes also share one name and source line, hence one cache index
(numba 0.68, NUMBA_DEBUG_CACHE=1: a factory-made kernel saved a new entry in every fresh process,
two kinds' in the same index file). A kernel defined in its kind's module, at its own line, closing
over nothing but a digest string, loads from the cache like any other. Its cache key does not see
what it inlines, so its digest covers this module too (`digest`): an edit of the loop recompiles it.
"""
from __future__ import annotations

import sys

import numba as nb
import numpy as np

from . import arg_types as A
from . import kernels as K


@nb.njit(inline="always")
def scan(step, acc, steps, state, params, s_out, u_out, v_out, write_u, write_v, fanout, spikes_t, counts, active, ops_t):
    """Run `steps` steps of every sample through `step`, updating `state` in place. acc [B, >=steps,
    n or 2n] int32; s_out [B, steps, n] gets the messages, u_out/v_out the probed values when
    write_u/write_v; counters as `kernels.scan_ff` (unit = sample): a nonzero message counts as a spike."""
    batch = s_out.shape[0]
    n = s_out.shape[2]
    for b in nb.prange(batch):
        for t in range(steps):
            n_spk = 0
            n_act = 0
            for j in range(n):
                s, u, v, act = step(state, acc, b, t, j, n, params)
                s_out[b, t, j] = s
                fired = np.int64(s != 0)
                counts[b, j] += fired
                n_spk += fired
                n_act += act
                if write_u:
                    u_out[b, t, j] = u
                if write_v:
                    v_out[b, t, j] = v
            K.count_step(b, t, n_spk, n_act, s_out, fanout, spikes_t, active, ops_t)


def digest(*spec_modules) -> str:
    """The cache digest of a kind's kernel: `kernels.spec_digest` of the spec modules it inlines and
    of this module (the loop it inlines)."""
    return K.spec_digest(*spec_modules, sys.modules[__name__])


# -- argument types (the kernels' `SIGNATURES`) --------------------------------------------------------


def signature(*params) -> tuple:
    """The argument types of a stateful kind's kernel (acc, steps, state, params..., s_out float32,
    probes, counters) whose parameters have the types `params`."""
    return (A.ACC, A.I64, A.ACC, *params, A.SPIKES_OUT, *A.PROBES, *A.COUNTERS)
