"""Chip graph -> lava-dl `.net` file that lava-dl's `netx.hdf5.Network` runs as snnc does.

The inverse of `compiler/frontends/netx.py` (the reader), for every chip graph netx can build:
a chain input -> population -> population -> ... whose last population's spikes are the output,
each population fed by one projection from the one before (plus, for `dense_rec`, one dense
projection onto itself). Per population / projection, what netx 0.6 builds from what is written:

    population lif (reset to 0)     -> neuron group CUBA: iDecay = du + 1, vDecay = dv, vThMant =
                                       vth, refDelay 1, no messageBits (Lava LIF sends 0/1, so a
                                       graded projection from it is written binary); `bias` = the
                                       bias in netx's bias_exp 6 (bias_mant << bias_exp = bias << 6,
                                       exactly; `snnc compile -o OUT.net` quantizes biases so)
    dense/sparse projection         -> `dense` layer, `weight` = the integers Lava applies
                                       (truncated weights << weight_exp); netx re-fits them with
                                       its optimize_weight_bits, which must give them back
                                       exactly; `delay` per neuron, per input or one value
    + dense self-projection         -> `dense_rec` with `weight_rec` (netx fits both together)
    conv projection                 -> `conv` layer, `weight` [C', C/g, kH, kW, 1] in torch
                                       layout, stride/padding/dilation (H, W), groups
    dense from a (C, H, W) source   -> a `flatten` layer before it (netx flattens in C, H, W order)
    direct input projection         -> `input` layer with neurons (netx's Input block)
    the graph input otherwise       -> `input` layer with only its `shape` (netx's input_shape)

What netx cannot store in the file, it takes as `Network` options: the input's payload bits
(`input_message_bits`) and Lava LIFReset populations resetting in netx's staggered pattern
(`reset_interval`, `reset_offset`). `write_netx` returns them (`NetxRunOptions`) and also stores
them as attributes of the file's root (netx ignores attributes).

Anything else (other neuron kinds or reset modes, per-neuron du/dv/vth, weight exponents netx's
weight fit does not reproduce, per-synapse delays, branches, u/v outputs, ...) is an
`UnsupportedNodeError` naming the population or projection and the construct, before anything is
written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from snnc.ir.bits import SPECS
from snnc.ir.chip import ChipGraph, ConvProjection, InputPopulation, Population, Projection
from snnc.ir.errors import UnsupportedNodeError

NETX_BIAS_EXP = 6
"""netx hands every layer's bias to Lava as bias_mant with bias_exp = 6."""
NETX_MAX_DELAY = 62
AS_NIR = "write OUT.nir instead (snnc run and the lava backend run any chip graph)"


@dataclass(frozen=True)
class NetxRunOptions:
    """The `netx.hdf5.Network(...)` arguments the written file needs (None: netx's default)."""

    input_message_bits: int = 0
    reset_interval: int | None = None
    reset_offset: int = 0

    def network_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"input_message_bits": self.input_message_bits}
        if self.reset_interval is not None:
            kw.update(reset_interval=self.reset_interval, reset_offset=self.reset_offset)
        return kw


def write_netx(graph: ChipGraph, path: str | Path) -> NetxRunOptions:
    """Write `graph` as a lava-dl netx `.net` file at `path`; returns the Network options it needs.

    Every check runs before the file is opened; the file is written atomically.
    """
    import h5py

    from snnc.ir.io import atomic_path

    layers, options = netx_layers(graph)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in options.network_kwargs().items():
            f.attrs[f"netx_{key}"] = value
        group = f.create_group("layer")
        for i, layer in enumerate(layers):
            _write_group(group.create_group(str(i)), layer)
    return options


def _write_group(group, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            _write_group(group.create_group(key), value)
        elif key == "type":
            group.create_dataset(key, (1,), f"S{max(1, len(value))}", [value.encode("ascii")])  # as slayer writes it
        else:
            group.create_dataset(key, data=value)


# -- the chain ------------------------------------------------------------------------------------
def netx_layers(graph: ChipGraph) -> tuple[list[dict[str, Any]], NetxRunOptions]:
    """The netx layer groups of `graph` (nested dicts of datasets) and the Network options."""
    graph.validate()
    inp = _single_input(graph)
    chain = _chain(graph, inp)
    layers: list[dict[str, Any]] = []
    first = chain[0][1]
    if first.direct:
        pop = graph.populations[first.dst]
        if np.any(pop.bias_mant):
            raise UnsupportedNodeError(
                "lava-dl netx builds an input layer without the file's bias", where=f"population {pop.name!r}",
                got="nonzero bias", hint="netx takes an input layer's bias at run time (net.in_layer.neuron.bias_mant); "
                "set the population's bias to 0 and pass the bias when running",
            )
        layers.append({"type": "input", "shape": np.asarray(pop.shape, np.int64), "neuron": _neuron_group(pop)})
    else:
        layers.append({"type": "input", "shape": np.asarray(inp.shape, np.int64)})
    src_shape = tuple(inp.shape)
    for pop, proj, rec in chain[1:] if first.direct else chain:
        if isinstance(proj, ConvProjection):
            layers.append(_conv_layer(graph, pop, proj))
        else:
            if len(src_shape) > 1:
                layers.append({"type": "flatten"})
            layers.append(_dense_layer(graph, pop, proj, rec))
        src_shape = tuple(pop.shape)
    return layers, NetxRunOptions(int(inp.num_message_bits), *_reset_pattern(graph, [p for p, _, _ in chain]))


def _single_input(graph: ChipGraph) -> InputPopulation:
    if len(graph.inputs) != 1:
        raise UnsupportedNodeError(
            "a netx network has exactly one input", where="chip graph inputs", got=sorted(graph.inputs),
            hint="netx feeds `net.inp` into its first layer only (a chip conversion's clock inputs are inputs too); " + AS_NIR,
        )
    if len(graph.outputs) != 1:
        raise UnsupportedNodeError(
            "a netx network has exactly one output (its last layer's spikes)", where="chip graph outputs",
            got=sorted(graph.outputs), hint=AS_NIR,
        )
    return next(iter(graph.inputs.values()))


def _chain(graph: ChipGraph, inp: InputPopulation) -> list[tuple[Population, Projection, Projection | None]]:
    """[(population, its projection from the previous node, its self-projection or None)] from the
    input to the output population; anything else in the graph is an error naming it."""
    chain = []
    src = inp.name
    seen: set[str] = set()
    while True:
        out = [p for p in graph.outgoing(src) if p.dst != src]
        if len(out) > 1:
            raise UnsupportedNodeError(
                f"{src!r} feeds {len(out)} populations; a netx network is a chain of layers", where=f"node {src!r}",
                got=sorted(p.name for p in out), hint="netx cannot express branches, skips or parallel projections; " + AS_NIR,
            )
        if not out:
            break
        proj = out[0]
        pop = graph.populations[proj.dst]
        incoming = [p for p in graph.incoming(pop.name) if p.src != pop.name]
        if len(incoming) != 1 or pop.name in seen:
            raise UnsupportedNodeError(
                "a netx layer has one incoming synapse from the layer before", where=f"population {pop.name!r}",
                got=sorted(p.name for p in incoming), hint="merge parallel projections into one, or leave the network as NIR",
            )
        rec = [p for p in graph.incoming(pop.name) if p.src == pop.name]
        chain.append((pop, proj, rec[0] if rec else None))
        seen.add(pop.name)
        src = pop.name
    if not chain:
        raise UnsupportedNodeError("the input feeds no population", where=f"input {inp.name!r}")
    missing = [name for name in graph.populations if name not in seen]
    if missing:
        raise UnsupportedNodeError(
            "populations outside the input-to-output chain cannot be written to a netx file",
            where="chip graph", got=missing, hint="netx builds one sequential chain of layers",
        )
    port_name, port = next(iter(graph.outputs.items()))
    last = chain[-1][0].name
    if port.population != last or port.var != "s":
        raise UnsupportedNodeError(
            "a netx network's output is its last layer's spikes", where=f"output {port_name!r}",
            expected=f"{last}/s", got=f"{port.population}/{port.var}",
            hint="netx's `net.out` sends the spikes of the last layer only",
        )
    return chain


# -- neurons --------------------------------------------------------------------------------------
def _neuron_group(pop: Population) -> dict[str, Any]:
    """netx's CUBA neuron group of a population (Lava LIF), or an error naming what netx cannot hold.

    No `messageBits`: Lava's LIF sends 0/1 spikes, so a graded projection from a LIF population
    (W @ s) applies what a binary one does, and the file is written binary. A population whose
    messages are payloads (relay: v >> relay_shift) has no netx form: see LAVADL_MESSAGE_BITS."""
    where = f"population {pop.name!r}"
    if pop.model in ("relay", "product"):
        raise UnsupportedNodeError(
            f"a {pop.model} population sends graded payloads every step, which a netx CUBA layer cannot: "
            + LAVADL_MESSAGE_BITS, where=where, expected="a spiking LIF population",
            got=pop.model, hint=AS_NIR,
        )
    if pop.model not in ("lif", "lif_reset") or not pop.lava_native:
        raise UnsupportedNodeError(
            f"netx builds CUBA layers as Lava LIF (reset to 0); this population is {pop.model!r} with reset "
            f"{pop.reset_mode!r}", where=where, expected="model lif, reset_mode zero, v_reset 0",
            got=(pop.model, pop.reset_mode), hint=AS_NIR,
        )
    for name in ("du", "dv", "vth"):
        if np.ndim(getattr(pop, name)):
            raise UnsupportedNodeError(
                f"per-neuron {name} cannot be written to a netx file", where=f"{where}.{name}",
                expected="one value per layer", hint="netx's neuron group holds one iDecay/vDecay/vThMant per layer",
            )
    return {
        "type": "CUBA", "iDecay": int(pop.du) + 1, "vDecay": int(pop.dv), "vThMant": int(pop.vth), "refDelay": 1,
        "gradedSpike": False,
    }


LAVADL_MESSAGE_BITS = (
    "Lava's LIF sends only 0/1 spikes, and lava-dl 0.6.0 cannot even load a CUBA layer with `messageBits` "
    "(netx/utils.py:74 NetDict returns the dataset wrapped, not its value; netx/hdf5.py:143 hands that on as "
    "num_message_bits, blocks/process.py:47 to the next layer's synapse, and Lava's builder fails in the runtime "
    "process, magma/compiler/builders/py_builder.py:403 'setting an array element with a sequence', the run never returning)"
)
"""Why a netx file has no graded CUBA layers (checked against the installed lava-dl by the tests)."""


def _netx_bias(pop: Population) -> np.ndarray:
    """The bias B with B << 6 == bias_mant << bias_exp for every neuron (netx's bias_exp is 6)."""
    where = f"population {pop.name!r}.bias_mant"
    mant = np.broadcast_to(np.asarray(pop.bias_mant, np.int64), pop.shape)
    exp = np.broadcast_to(np.asarray(pop.bias_exp, np.int64), pop.shape)
    value = np.where(exp >= 0, mant << np.maximum(exp, 0), mant >> np.maximum(-exp, 0))
    bias = value >> NETX_BIAS_EXP
    spec = SPECS["bias_mant"]
    if np.any(bias << NETX_BIAS_EXP != value) or bias.min(initial=0) < spec.lo or bias.max(initial=0) > spec.hi:
        raise UnsupportedNodeError(
            "the bias is not a 13-bit mantissa at netx's bias_exp 6", where=where,
            expected=f"bias_mant << bias_exp = B << 6 with B in {spec.lo}..{spec.hi}",
            got=(int(value.min()), int(value.max())), hint="netx hands every bias to Lava with bias_exp 6",
        )
    return bias


def _reset_pattern(graph: ChipGraph, pops: list[Population]) -> tuple[int | None, int]:
    """(reset_interval, reset_offset) netx needs, when every layer is a LIFReset in netx's pattern
    (the k-th layer resets where t % interval == offset + 1 + k); (None, 0) when none is."""
    resets = [p for p in pops if p.model == "lif_reset"]
    if not resets:
        return None, 0
    if len(resets) == len(pops) and all(int(p.reset_interval) == 1 for p in pops):
        return 1, 0  # every layer resets every step: Lava takes the offset modulo 1
    interval = int(pops[0].reset_interval)
    offset = int(pops[0].reset_offset) - 1
    for k, pop in enumerate(pops):
        ok = pop.model == "lif_reset" and int(pop.reset_interval) == interval and int(pop.reset_offset) == offset + 1 + k
        if not ok or offset < 0:
            raise UnsupportedNodeError(
                "netx resets every layer with one interval, the k-th layer at offset + 1 + k",
                where=f"population {pop.name!r}.reset_offset",
                expected=f"model lif_reset, interval {interval}, offset {offset + 1 + k}",
                got=(pop.model, int(pop.reset_interval), int(pop.reset_offset)),
                hint="netx's Network(reset_interval=, reset_offset=) cannot express other reset schedules",
            )
    return interval, offset


# -- synapses -------------------------------------------------------------------------------------
def _applied_weights(proj: Projection) -> np.ndarray:
    """The integer matrix netx must apply (acc of spikes * this), or an error where the projection's
    weight_exp floors the accumulated sum in a way no integer matrix does."""
    eff = proj.effective_weights()
    w = np.asarray(eff.toarray() if sp.issparse(eff) else eff, np.int64)
    e = int(proj.weight_exp)
    if e >= 0:
        return w << e
    if np.any(w % (1 << -e)):
        raise UnsupportedNodeError(
            f"weight_exp {e} floors the accumulated sum, which netx's weight fit cannot reproduce",
            where=f"projection {proj.name!r}.weight_exp", expected="weights divisible by 2**-weight_exp, or weight_exp >= 0",
            got=e, hint="netx applies integer weights exactly; requantize with weight_exp >= 0",
        )
    return w >> -e


def _netx_fit(w: np.ndarray, where: str) -> None:
    """netx re-fits the file's integer weights with optimize_weight_bits; it must give them back."""
    from snnc.compiler.frontends.netx import netx_exact_format

    if netx_exact_format(w) is None:
        raise UnsupportedNodeError(
            "netx's optimize_weight_bits would not apply these weights exactly", where=where,
            expected="integers in -256..254 (mixed sign) or 0..255 / -256..0, not all zero",
            got=(int(w.min(initial=0)), int(w.max(initial=0))),
            hint="netx fits every layer's weights to an 8-bit synapse with a non-positive exponent; a weight_exp > 0 "
            "or an all-zero layer cannot be written (requantize the network)",
        )


def _dense_layer(graph: ChipGraph, pop: Population, proj: Projection, rec: Projection | None) -> dict[str, Any]:
    where = f"projection {proj.name!r}"
    if len(pop.shape) != 1:
        raise UnsupportedNodeError("netx's dense layers are one-dimensional", where=f"population {pop.name!r}", got=pop.shape)
    w = _applied_weights(proj)
    layer: dict[str, Any] = {"type": "dense_rec" if rec is not None else "dense", "shape": np.asarray(pop.shape, np.int64)}
    if rec is not None:
        if isinstance(rec, ConvProjection) or rec.max_delay or proj.max_delay:
            raise UnsupportedNodeError(
                "netx's recurrent dense layer has no delays and a dense recurrence", where=f"projection {rec.name!r}",
                hint="lava-dl 0.6 netx builds delayed recurrent layers without their weight exponent",
            )
        w_rec = _applied_weights(rec)
        _netx_fit(np.hstack((w, w_rec)), f"{where} + {rec.name!r}.weights")
        layer["weight_rec"] = w_rec.astype(np.float32)
    else:
        _netx_fit(w, f"{where}.weights")
    layer.update(weight=w.astype(np.float32), inFeatures=int(w.shape[1]), outFeatures=int(w.shape[0]))
    delay = _netx_delay(proj, w)
    if delay is not None:
        layer["delay"] = delay
    layer["bias"] = _netx_bias(pop).reshape(-1).astype(np.float32)
    layer["neuron"] = _neuron_group(pop)
    return layer


def _netx_delay(proj: Projection, w: np.ndarray) -> np.ndarray | None:
    """A dense projection's delays as netx reads them: one per neuron (row) or one per input (column)."""
    if not proj.max_delay:
        return None
    d = np.broadcast_to(np.asarray(proj.delay, np.int64), w.shape)
    d = np.where(w != 0, d, -1)  # a zero weight's delay changes nothing
    rows = [set(r[r >= 0].tolist()) for r in d]
    if all(len(r) <= 1 for r in rows):
        return np.asarray([next(iter(r), 0) for r in rows], np.float32)
    cols = [set(c[c >= 0].tolist()) for c in d.T]
    if all(len(c) <= 1 for c in cols) and w.shape[0] != w.shape[1]:  # netx reads a square table's vector as rows
        return np.asarray([next(iter(c), 0) for c in cols], np.float32)
    raise UnsupportedNodeError(
        "per-synapse delays cannot be written to a netx file", where=f"projection {proj.name!r}.delay",
        expected="one delay per target neuron, or per source neuron", hint="netx stores a dense layer's delays as a vector",
    )


def _conv_layer(graph: ChipGraph, pop: Population, proj: ConvProjection) -> dict[str, Any]:
    g = proj.conv
    w = np.asarray(proj.weights, np.int64)
    bias = _netx_bias(pop)
    per_channel = bias.reshape(bias.shape[0], -1)
    if np.any(per_channel != per_channel[:, :1]):
        raise UnsupportedNodeError(
            "a conv layer's bias must be one value per channel in a netx file", where=f"population {pop.name!r}.bias_mant",
            hint="lava-dl writes conv biases per channel",
        )
    return {
        "type": "conv", "shape": np.asarray(pop.shape, np.int64), "weight": w[..., None].astype(np.float32),
        "inChannels": int(g.in_shape[0]), "outChannels": int(g.out_shape[0]), "kernelSize": np.asarray(g.kernel, np.int64),
        "stride": np.asarray(g.stride, np.int64), "padding": np.asarray(g.padding, np.int64),
        "dilation": np.asarray(g.dilation, np.int64), "groups": int(g.groups),
        "bias": per_channel[:, 0].astype(np.float32), "neuron": _neuron_group(pop),
    }


def describe(options: NetxRunOptions, path: str | Path) -> str:
    """How to run the written file with lava-dl netx (one line)."""
    args = ", ".join(f"{k}={v}" for k, v in options.network_kwargs().items())
    return f"netx.hdf5.Network(net_config={str(path)!r}, {args})"


__all__ = ["NetxRunOptions", "describe", "netx_layers", "write_netx"]
