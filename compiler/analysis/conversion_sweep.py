"""Bit budget over weight bits x time steps for a lossless conversion (Shen et al.'s trade-off).

For a converted network the time axis is the number of activation levels L: a hidden layer fires
in a window of L steps, so T = 2 + N L (+1 with a readout). Each grid point is an independent pure
function of (model, point, data) -> row (`conversion_point`), so a distributed engine can farm
the points out; `conversion_grid` simply maps it over the grid. Accuracy is the chip's (sim);
conversion is exact, so it equals the quantized network's accuracy at that point.

`convert_to_chip` programs each projection at the width its integers need (`exact_weights`), so
`memory_bits` and `bit_ops_per_sample` (the chip as built: data synapses at the network's width,
clock synapses at theirs) shrink with weight bits; `model_weight_bits` (the integer network's
weights x width) is the width's cost without the conversion's clocks and neuron state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .budget import bit_budget
from .sweep import pareto_front


@dataclass
class ConversionPoint:
    """One (weight bits, levels) point: its chip run's accuracy and costs."""

    weight_bits: int
    levels: int
    steps: int
    accuracy: float
    memory_bits: int  # weights + state of the chip as built
    model_weight_bits: int  # the quantized network's weights x weight_bits
    bit_ops_per_sample: float
    synaptic_ops_per_sample: float


def conversion_point(model: Any, weight_bits: int, levels: int, calib, x, labels, *, input_shape: Sequence[int],
                     input_range=(0, 16), input_scale: float = 1.0) -> ConversionPoint:
    """Quantize `model` at this point, convert it for the chip, run it on the sim and price it."""
    from snnc.compiler.frontends.conversion.chip import convert_to_chip, quantize_model

    qnet = quantize_model(model, calib, levels=levels, weight_bits=weight_bits, input_range=input_range,
                          input_scale=input_scale)
    conv = convert_to_chip(qnet, input_shape)
    result = conv.run(x, backend="sim", probes=False)
    pred = conv.decode(result)
    budget = bit_budget(conv.chip, result.activity, warn=False)
    batch = result.activity.batch
    return ConversionPoint(
        weight_bits=int(weight_bits), levels=int(levels), steps=int(conv.steps),
        accuracy=float(np.mean(np.asarray(pred) == np.asarray(labels))),
        memory_bits=int(budget.weight_memory_bits + budget.state_bits),
        model_weight_bits=int(sum(m.int_weight().numel() for m in qnet.layers if hasattr(m, "int_weight")) * weight_bits),
        bit_ops_per_sample=float(budget.bit_ops_per_sample),
        synaptic_ops_per_sample=result.activity.total_synaptic_ops / batch,
    )


def conversion_grid(model: Any, weight_bits: Sequence[int], levels: Sequence[int], calib, x, labels,
                    **kwargs) -> list[ConversionPoint]:
    """Every (weight bits, levels) point, weight bits outer."""
    return [conversion_point(model, wb, L, calib, x, labels, **kwargs) for wb in weight_bits for L in levels]


def grid_pareto(points: Sequence[ConversionPoint], cost: str = "bit_ops_per_sample") -> list[ConversionPoint]:
    """Points no other beats in both `cost` (lower) and accuracy (higher)."""
    return [points[i] for i in pareto_front([(getattr(p, cost), p.accuracy) for p in points])]
