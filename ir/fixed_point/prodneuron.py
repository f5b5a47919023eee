"""One step of a product neuron (Lava 0.10.0 `lava.proc.prodneuron`, fixed_pt): the specification.

Lava's `PyProdNeuronModelFixed.run_spk` receives two int32 inputs (ports `a_in1`, `a_in2`, each
the int32 sum of what its projections send this step) and sends a graded spike:

    v = (a1 * a2) >> exp          int32 product (wraps mod 2**32), arithmetic (floor) shift
    s = v if |v| > vth else 0     |v| taken in int32 (|-2**31| stays negative: no spike)

The neuron keeps no state: Lava's `v` Var is never written (the product is a local), so a
product population has nothing to probe but its output. `vth` is compared as given (not shifted
by 6 like a LIF threshold). This is how Q.K^T-style products of two spiking or graded signals
run on Loihi 2's programmable neurons.
"""
from __future__ import annotations

import numpy as np

from .arith import wrap32

PRODUCT_PORTS = ("a_in1", "a_in2")
"""The two input ports of a product neuron, by Lava's names."""


def product_value(a1, a2, exp):
    """(a1 * a2) >> exp in int32, elementwise; plain operators so numba compiles it too."""
    return wrap32(wrap32(a1) * wrap32(a2)) >> exp


def product_spike(v, vth):
    """v where int32 |v| > vth, else 0 (Lava sends v * is_spike)."""
    return v * (wrap32(np.abs(v)) > vth)


def product_step(a1: np.ndarray, a2: np.ndarray, *, exp: int, vth: int) -> np.ndarray:
    """One step of a product population for the int32 inputs of both ports: the graded output."""
    v = product_value(np.asarray(a1, np.int64), np.asarray(a2, np.int64), np.int64(exp))
    return product_spike(v, np.int64(vth))
