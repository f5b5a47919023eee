"""One way for the conversion tests to build an integer layer holding exactly given integers."""
from __future__ import annotations

import torch

from snnc.compiler.frontends.conversion.chip import IntGridLayer


def int_layer(op, q, b, step, levels, act=True, *, signed=False, bits=8):
    """An IntGridLayer on the unit grid (s_w = s_in = 1) whose integer weights are q and bias b."""
    op = op.double()
    with torch.no_grad():
        op.weight.copy_(torch.as_tensor(q, dtype=torch.float64))
        op.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return IntGridLayer(op, in_scale=1.0, weight_scale=1.0, step=step, levels=levels, act=act, signed=signed,
                        weight_bits=bits)
