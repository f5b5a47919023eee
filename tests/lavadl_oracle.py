"""lava-dl 0.6.0 as the oracle for `.net` files: written by lava-dl, run by lava-dl.

`export` builds the file with lava-dl slayer's own blocks (CPU, the weights they were given) and
their `export_hdf5`, exactly as a lava-dl user saves a trained network; `run_netx` loads it with
lava-dl's `netx.hdf5.Network` and runs it in Lava 0.10.0 under `Loihi2SimCfg(select_tag="fixed_pt")`,
recording the output block's spikes. Nothing here reads snnc.

Time convention (the same as the sim backend and `tests/lava_oracle.py`): input index t is what the
RingBuffer sends at Lava step t+1, record index t is the output after Lava step t+1.
Layout: lava-dl's (W, H, C) order for image inputs; the output must be flat (a dense layer).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import lava_oracle  # noqa: F401 - imports Lava's runtime with the 'fork' start method fixed
import numpy as np


def _slayer():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lava.lib.dl import slayer
    return slayer


def export(blocks: Sequence, path: str | Path, input_shape: Sequence[int], seed: int = 0) -> Path:
    """Write lava-dl blocks as a netx `.net` file (one forward pass first: slayer sets shapes there)."""
    import h5py
    import torch

    torch.manual_seed(seed)
    x = (torch.rand(1, *input_shape, 4) < 0.5).float()
    with torch.no_grad():
        for block in blocks:
            x = block(x)
        for block in blocks:
            if getattr(block, "random_delay", 0):
                d = block.delay.delay
                d.data = torch.randint(0, block.random_delay, d.shape, generator=torch.Generator().manual_seed(seed)).float()
    path = Path(path)
    with h5py.File(path, "w") as handle:
        layers = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layers.create_group(str(i)))
    return path


def cuba_dense(n_in: int, n_out: int, *, threshold=1.0, current_decay=0.25, voltage_decay=0.03,
               weight_scale=2, delay=False, recurrent=False, seed=0, graded_spike=False):
    """A slayer CUBA dense (or recurrent dense) block with random weights (seeded)."""
    import torch

    slayer = _slayer()
    torch.manual_seed(seed)
    params = dict(threshold=threshold, current_decay=current_decay, voltage_decay=voltage_decay, requires_grad=False,
                  graded_spike=graded_spike)
    cls = slayer.block.cuba.Recurrent if recurrent else slayer.block.cuba.Dense
    kw = dict(weight_scale=weight_scale, weight_norm=False)
    if not recurrent:
        kw["delay"] = delay
    block = cls(params, n_in, n_out, **kw)
    block.random_delay = 4 if delay else 0  # set by `export` once the forward pass sized them
    return block


def run_netx(path: str | Path, spikes: np.ndarray, *, input_message_bits: int = 0, **network_kw) -> np.ndarray:
    """lava-dl netx's output spikes [T, n_out] for input `spikes` [T, n_in] or [T, W, H, C] (Lava fixed_pt)."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    spikes = np.asarray(spikes)
    steps = spikes.shape[0]
    net = netx.hdf5.Network(net_config=str(path), input_message_bits=input_message_bits, **network_kw)
    wire_input_layer(net)
    data = spikes.reshape(steps, -1).T if spikes.ndim == 2 else np.moveaxis(spikes, 0, -1)  # [T, W, H, C] -> [W, H, C, T]
    source = io.source.RingBuffer(data=data.astype(np.int32))
    sink = io.sink.RingBuffer(shape=net.out.shape, buffer=steps)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = sink.data.get()
    finally:
        net.stop()
    return np.asarray(out).reshape(-1, steps).T


def wire_input_layer(net) -> None:
    """Connect an input layer's port to its neurons' `a_in` (same step, no synapse).

    lava-dl 0.6.0's `Input` block declares `inp` but leaves it unconnected inside ("the input must
    be handled through neuron's bias"), and Lava then refuses to compile a network whose `net.inp`
    is driven. This adds the one connection the port stands for; everything else is netx's own.
    """
    from lava.lib.dl.netx.blocks.process import Input

    if isinstance(net.in_layer, Input):
        net.in_layer.inp.connect(net.in_layer.neuron.a_in)


def cuba_input(**neuron):
    """A slayer CUBA input block (a neuron layer without synapses; no weights)."""
    params = {**dict(threshold=1.0, current_decay=0.25, voltage_decay=0.03, requires_grad=False), **neuron}
    return _slayer().block.cuba.Input(params)


def cuba_conv(c_in: int, c_out: int, kernel: int, *, stride=1, padding=0, weight_scale=2, seed=0, **neuron):
    """A slayer CUBA conv block with random weights (seeded)."""
    import torch

    slayer = _slayer()
    torch.manual_seed(seed)
    params = dict(threshold=1.0, current_decay=0.25, voltage_decay=0.03, requires_grad=False, **neuron)
    return slayer.block.cuba.Conv(params, c_in, c_out, kernel, stride=stride, padding=padding, weight_scale=weight_scale, weight_norm=False)


def flatten():
    return _slayer().block.cuba.Flatten()


def sdnn_params(*, threshold=0.1, cum_error=False, **extra) -> dict:
    """slayer sigma-delta neuron parameters (ReLU activation, netx's only one)."""
    import torch

    return dict(threshold=threshold, activation=torch.nn.functional.relu, cum_error=cum_error, requires_grad=False, **extra)


def sdnn_input(**neuron):
    """A slayer sigma-delta input block: netx builds it as Lava's Delta."""
    return _slayer().block.sigma_delta.Input(sdnn_params(**neuron))


def sdnn_dense(n_in: int, n_out: int, *, weight_scale=2, seed=0, output=False, bias_scale=0.0, **neuron):
    """A slayer sigma-delta dense block (netx: Dense -> SigmaDelta) or, with `output`, slayer's
    sigma-delta Output block (netx: Dense -> Sigma), random weights (seeded). `bias_scale` > 0 gives
    the neurons slayer's MeanOnlyBatchNorm with a random running mean in +-bias_scale, which
    export_hdf5 writes as the layer's integer `bias`."""
    import torch

    slayer = _slayer()
    torch.manual_seed(seed)
    cls = slayer.block.sigma_delta.Output if output else slayer.block.sigma_delta.Dense
    if bias_scale:
        neuron["norm"] = slayer.neuron.norm.MeanOnlyBatchNorm
    block = cls(sdnn_params(**neuron), n_in, n_out, weight_scale=weight_scale, weight_norm=False)
    if bias_scale:
        block.neuron.norm.update = False  # keep the mean through export's forward pass
        block.neuron.norm.running_mean = (torch.rand(n_out) * 2 - 1) * bias_scale
    return block


def sdnn_conv(c_in: int, c_out: int, kernel: int, *, stride=1, padding=0, weight_scale=2, seed=0, **neuron):
    """A slayer sigma-delta conv block (netx: Conv -> SigmaDelta), random weights (seeded)."""
    import torch

    slayer = _slayer()
    torch.manual_seed(seed)
    return slayer.block.sigma_delta.Conv(sdnn_params(**neuron), c_in, c_out, kernel, stride=stride, padding=padding,
                                         weight_scale=weight_scale, weight_norm=False)
