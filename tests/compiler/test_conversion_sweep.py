"""Weight bits x levels (time steps) grid of a converted digits MLP."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from snnc.compiler.analysis.conversion_sweep import conversion_grid, grid_pareto
from snnc.compiler.frontends.conversion.chip import quantize_model


def test_grid_rows_match_the_integer_network_and_time_grows_with_levels():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=torch.float64)
    y = digits.target
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:1000] / 16), torch.as_tensor(y[:1000])).backward()
        opt.step()
    with torch.no_grad():
        model[0].weight /= 16
    calib, test, labels = x[:1000], x[1000:1100], y[1000:1100]
    points = conversion_grid(model, (3, 8), (2, 4), calib, test, labels, input_shape=(64,)).points
    assert [(p.weight_bits, p.levels) for p in points] == [(3, 2), (3, 4), (8, 2), (8, 4)]
    for p in points:  # exact conversion: the chip's accuracy is the integer network's
        qnet = quantize_model(model, calib, levels=p.levels, weight_bits=p.weight_bits, input_range=(0, 16))
        assert p.accuracy == float(np.mean(qnet.predict(test) == labels))
        assert p.steps == 2 + p.levels + 1  # one hidden layer + readout
    # the width's own weight cost: (64 x 16 + 16 x 10) weights x bits
    assert [p.model_weight_bits for p in points] == [w * (64 * 16 + 16 * 10) for w in (3, 3, 8, 8)]
    # the chip's synapses are priced at the width: fewer bits, fewer bit ops per synaptic op
    assert points[0].memory_bits < points[2].memory_bits
    for p in points:
        assert 3 * p.synaptic_ops_per_sample < p.bit_ops_per_sample <= 8 * p.synaptic_ops_per_sample
    front = grid_pareto(points)
    assert front and all(not any(o.bit_ops_per_sample <= p.bit_ops_per_sample and o.accuracy > p.accuracy
                                 for o in points) for p in front)
