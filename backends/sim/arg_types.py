"""The argument types the sim's numba kernels are compiled for, named once.

Every kernel module declares `SIGNATURES` ({kernel: [argument type tuples]}, compiled ahead by
`warmup`) from these names: C-contiguous arrays, Python ints as int64, bools as boolean. Messages
reach the kernels in the three dtypes of MESSAGE_DTYPES only, so each kernel has a fixed list of
signatures and no call compiles at run time.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import types as T

MESSAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64))


def array(dtype, ndim: int):
    """A C-contiguous numba array type."""
    return T.Array(dtype, ndim, "C")


I64, F64, FLAG = T.int64, T.float64, T.boolean
VEC = array(T.int64, 1)
I32_VEC = array(T.int32, 1)
EVENTS = I32_VEC  # events: sources and values (`kernels.fill_events`)
MASK = array(T.uint8, 1)  # per sample: 1 where BLAS already took it (the event kernels skip it)
ACC = array(T.int32, 3)  # the int32 input sums [batch, steps, n], and a kind's int32 state
MESSAGES = tuple(array(nb.from_dtype(d), 2) for d in MESSAGE_DTYPES)  # one chunk's messages [rows, n]
SPIKES_OUT = array(T.float32, 3)  # a population's messages [batch, steps, n]: spikes, relays' payloads
GRADED_OUT = array(T.float64, 3)  # a graded kind's messages (product, sigma-delta)
PROBES = (array(T.int32, 3), array(T.int32, 3), FLAG, FLAG)  # u_out, v_out, write_u, write_v
COUNTERS = (array(T.int64, 2), array(T.int64, 3), array(T.int64, 2), array(T.int64, 2), array(T.int64, 3))
"""fanout, spikes_t, counts, active, ops_t."""
