"""`on_weight_grid` (the sim plan's test that a projection's stored weights are what the chip applies)
agrees with `truncate_weights` itself, for every width and sign mode, on and off the grid."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from snnc.ir.bits import on_weight_grid, truncate_weights


@settings(max_examples=300, deadline=None)
@given(bits=st.integers(1, 8), snap=st.booleans(),
       w=arrays(np.int64, st.integers(0, 12), elements=st.integers(-300, 300)))
def test_on_weight_grid_is_truncation_leaving_the_weights_unchanged(bits, snap, w):
    if snap:  # half the draws start on the grid, where a wrong True/False matters most
        w = truncate_weights(w, bits)
    assert on_weight_grid(w, bits) == np.array_equal(truncate_weights(w, bits), w)


def test_on_weight_grid_by_hand():
    assert on_weight_grid(np.array([2, 4, 254]), 7) and not on_weight_grid(np.array([2, 3]), 7)  # excitatory: step 2
    assert on_weight_grid(np.array([-4, 0, 8]), 7) and not on_weight_grid(np.array([-2, 8]), 7)  # mixed: step 4
    assert not on_weight_grid(np.array([256]), 8) and on_weight_grid(np.array([-255]), 8)  # 8-bit ranges by sign
    assert not on_weight_grid(np.array([-256]), 8) and on_weight_grid(np.array([-256, 2]), 8)  # mixed: step 2
    assert on_weight_grid(np.zeros(0, np.int64), 3)
