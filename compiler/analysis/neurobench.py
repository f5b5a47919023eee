"""NeuroBench metrics (neurobench 2.3.0 definitions) on plain arrays, so reports can state them.

The neurobench package computes these through torch hooks on a wrapped model; snnc has the
weights and the recorded activity already, so this module applies the same definitions to
arrays (checked against the package in tests/compiler/test_neurobench.py):

* footprint: bytes of a torch model's parameters + buffers (``numel * element_size``);
* connection sparsity: zero weights / all weights of the connection layers, rounded to 4 digits;
* activation sparsity: 1 - nonzero activations / all activations, over layers, steps, samples;
* synaptic operations per sample: for each layer call, inputs and weights are binarised
  (nonzero -> 1, bias ignored); ``Effective`` = sum of binary(W) @ binary(x); it counts as ACs
  when every input is in {-1, 0, 1} (spikes), else as MACs; ``Dense`` = the same with every
  weight and input set to 1 (for a sparse matrix, e.g. a conv written as a matrix, only its
  stored entries are connections, as a conv's taps are);
* membrane updates per sample: all neurons on a layer's first step, then every neuron whose
  membrane potential changed during a step.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from snnc.ir.chip import ConvProjection, Projection, SparseProjection
from snnc.ir.errors import ShapeError


def footprint(model) -> int:
    """Bytes of a torch model's parameters and buffers (neurobench Footprint)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return int(params + buffers)


def connection_sparsity(weights: Iterable) -> float:
    """Zero weights over all weights, rounded to 4 digits (neurobench ConnectionSparsity)."""
    zeros = total = 0
    for w in weights:
        w = w.toarray() if sp.issparse(w) else np.asarray(w)
        zeros += int(np.count_nonzero(w == 0))
        total += w.size
    return round(zeros / total, 4) if total else 0.0


def activation_sparsity(activations: Iterable) -> float:
    """1 - nonzero / all over every given activation array (neurobench ActivationSparsity)."""
    nonzero = total = 0
    for a in activations:
        a = np.asarray(a)
        nonzero += int(np.count_nonzero(a))
        total += a.size
    return (total - nonzero) / total if total else 0.0


def _binary(w):
    """(binary W: nonzero -> 1, all-ones W: every connection -> 1)."""
    if sp.issparse(w):
        coo = sp.coo_matrix(w)
        ones = np.ones(coo.nnz)
        return (sp.csr_matrix(((coo.data != 0).astype(np.float64), (coo.row, coo.col)), shape=w.shape),
                sp.csr_matrix((ones, (coo.row, coo.col)), shape=w.shape))
    w = np.asarray(w)
    return (w != 0).astype(np.float64), np.ones(w.shape)


def synaptic_operations(calls: Iterable[tuple], samples: int) -> dict[str, float]:
    """Per-sample synaptic operations (neurobench SynapticOperations).

    `calls`: (W, x) per layer call, W [out, in] (dense or scipy sparse), x [batch, in] the
    layer's input on that call (one call per time step for a spiking layer)."""
    mac = ac = dense = 0.0
    for w, x in calls:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1) if np.ndim(x) > 1 else np.asarray(x, float)[None]
        if x.shape[-1] != w.shape[1]:
            raise ShapeError("layer input does not match the weight matrix", where="synaptic_operations",
                             expected=w.shape[1], got=x.shape[-1])
        spiking = bool(np.all(np.isin(x, (-1.0, 0.0, 1.0))))
        wb, wall = _binary(w)
        xb = (x != 0).astype(np.float64)
        eff = float(np.asarray(wb @ xb.T).sum())
        dense += float(np.asarray(wall @ np.ones_like(xb).T).sum())
        if spiking:
            ac += eff
        else:
            mac += eff
    if samples <= 0:
        return {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0}
    return {"Effective_MACs": mac / samples, "Effective_ACs": ac / samples, "Dense": dense / samples}


def membrane_updates(traces: Sequence, samples: int) -> float:
    """Per-sample membrane updates (neurobench MembraneUpdates) from per-layer traces v [T, ...]:
    the first step updates every neuron, later steps those whose v changed."""
    total = 0
    for v in traces:
        v = np.asarray(v)
        if len(v) == 0:
            continue
        total += v[0].size + int(np.count_nonzero(np.diff(v, axis=0)))
    return total / samples if samples > 0 else 0.0


def probed_membrane_updates(chip, probes) -> float | None:
    """`membrane_updates` of a chip run from its v probes ("<population>/v", [batch, T, ...]) of
    every population; None when any population's v was not probed (counters cannot give it)."""
    pops = list(getattr(chip, "populations", {}))
    if not pops or not probes or any(f"{n}/v" not in probes for n in pops):
        return None
    traces = [np.moveaxis(np.asarray(probes[f"{n}/v"]), 1, 0) for n in pops]
    return membrane_updates(traces, samples=int(traces[0].shape[1]))


def _connections(proj: Projection) -> int:
    """Connections of one projection as neurobench's Dense counts them (see `chip_metrics`)."""
    if isinstance(proj, ConvProjection):
        from snnc.ir.conv import conv_matrix

        return int(conv_matrix(np.ones(proj.weights.shape, np.int64), proj.conv).nnz)
    return int(proj.weights.nnz if isinstance(proj, SparseProjection) else proj.weights.size)


def chip_metrics(chip, activity) -> dict[str, float | None]:
    """The workload metrics of a chip run from its activity counters, per sample.

    Synaptic operations: the sim counts one per (arriving spike, stored synapse), which is
    neurobench's effective count for binary inputs (ACs); a projection carrying graded payloads
    (num_message_bits > 0) counts as MACs. Dense = connections x steps per projection (dense:
    every matrix entry, zeros included, as neurobench; sparse: stored entries; conv: every
    in-bounds (output, input) tap, zero weights included, as neurobench's all-ones conv). Activation
    sparsity over the populations' spikes. Membrane updates are not derivable from counters
    alone (they need v traces: `probed_membrane_updates`)."""
    batch, steps = int(activity.batch), int(activity.steps)
    mac = ac = dense = 0
    for name, proj in chip.projections.items():
        ops = activity.projections[name].synaptic_ops if name in activity.projections else 0
        if int(proj.num_message_bits) > 0:
            mac += ops
        else:
            ac += ops
        dense += _connections(proj) * steps * batch
    spikes = sum(activity.populations[n].spikes for n in chip.populations if n in activity.populations)
    slots = sum(p.size for p in chip.populations.values()) * steps * batch
    return {
        "Effective_MACs": mac / batch,
        "Effective_ACs": ac / batch,
        "Dense": dense / batch,
        "activation_sparsity": 1 - spikes / slots if slots else 0.0,
        "connection_sparsity": connection_sparsity(p.weights for p in chip.projections.values()),
    }


def report_metrics(chip, activity, probes=None) -> dict | None:
    """What reports state: `chip_metrics` plus the chip's footprint, and membrane updates when the
    run probed every population's v (`probes`: RunResult.probes), with the definitions used.
    None without a chip graph and the activity of a run of it."""
    if chip is None or activity is None or not hasattr(chip, "projections"):
        return None
    from .budget import bit_budget

    out: dict = dict(chip_metrics(chip, activity))
    out["footprint_bytes"] = bit_budget(chip, warn=False).memory_bits / 8
    updates = probed_membrane_updates(chip, probes)
    if updates is not None:
        out["membrane_updates"] = updates
    out["definitions"] = {
        "Effective_ACs/Effective_MACs": "per sample: one per (nonzero input, nonzero synapse); binary spikes "
        "are ACs, graded payloads MACs (neurobench SynapticOperations)",
        "Dense": "per sample: every connection on every step, zero weights included (neurobench Dense)",
        "activation_sparsity": "1 - spikes / (neurons x steps x samples) (neurobench ActivationSparsity)",
        "connection_sparsity": "zero weights / stored weights of every projection (neurobench ConnectionSparsity)",
        "footprint_bytes": "the chip's memory (bit budget: weights + state + parameters) / 8; neurobench's "
        "Footprint counts a torch model's parameters at their dtype size instead",
        "membrane_updates": "per sample: every neuron on the first step, then every neuron whose v changed "
        "during a step (neurobench MembraneUpdates, on the v probes; stated only when the run probed "
        "every population's v: snnc run --probe POP/v ...)" if updates is not None else
        "not stated: the run did not probe every population's v (neurobench MembraneUpdates needs them)",
    }
    return out
