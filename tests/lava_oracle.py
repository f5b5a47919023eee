"""Run a chip-level graph with Lava's own processes: the ground truth the `sim` backend must match.

This builder is deliberately independent of `snnc.backends`: it maps a `ChipGraph` one to one onto
Lava 0.10.0 processes (RingBuffer, Dense, DelayDense, Sparse, DelaySparse, Conv, LIF, LIFReset,
TernaryLIF, Monitor), runs them under `Loihi2SimCfg(select_tag="fixed_pt")` and returns every
spike, `u` and `v` of every population at every step. Only the IR's own arrays are read
(`Projection.weights` as handed to Lava, not `effective_weights`), so Lava does its own clipping and
truncation.

Time convention (the same as the sim backend): input index t is what the RingBuffer sends at Lava
step t+1, and record index t is the state after Lava step t+1.

Layout: populations are 1-D LIF processes in the IR's C-order flattening. A convolution sees its
source as (C, H, W); Lava's Conv wants (W, H, C) and computes a true convolution, so the source
port is reshaped and transposed on the way in, the output transposed back, and the kernel is
flipped and transposed to Lava's (C_out, kx, ky, C_in/groups) order.

Lava spawns one OS process per process model, so `run_lava_many` packs many independent graphs
into one Lava run. Lava only compiles processes connected to the one `run` is called on, so the
graphs are joined through one shared RingBuffer: every input population that only feeds
dense/sparse projections becomes a slice of it, reached through zero-padded weight columns (zero
columns change neither Lava's sign mode nor its clipping/truncation, and add nothing). A graph with
no such input gets a zero-weight Dense "bridge" from the shared buffer to one population, which
adds 0 to that population's input every step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from snnc.ir.chip import ChipGraph, Population, Projection


def _import_lava() -> None:
    """Import Lava's runtime, which calls `multiprocessing.set_start_method('fork')` at import.

    That call fails once anything has fixed the start method (numba does when its parallel
    threading layer starts), so force the same 'fork' method in that case.
    """
    import multiprocessing as mp

    if mp.get_start_method(allow_none=True) is None:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
        return
    original = mp.set_start_method
    mp.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    finally:
        mp.set_start_method = original


_import_lava()


@dataclass
class OracleRecord:
    """What Lava computed for one graph: per population, arrays [T, *shape] of int64."""

    s: dict[str, np.ndarray] = field(default_factory=dict)
    u: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0

    def var(self, population: str, var: str) -> np.ndarray:
        return getattr(self, var)[population]


def _single_sample(graph: ChipGraph, inputs) -> dict[str, np.ndarray]:
    """Inputs as {name: [T, *shape]} (one sample; a leading batch of 1 is dropped)."""
    if not isinstance(inputs, Mapping):
        if len(graph.inputs) != 1:
            raise ValueError("graph has several inputs; pass a dict")
        inputs = {next(iter(graph.inputs)): inputs}
    out = {}
    for name, inp in graph.inputs.items():
        arr = np.asarray(inputs[name])
        if arr.ndim == len(inp.shape) + 2:
            if arr.shape[0] != 1:
                raise ValueError("the Lava oracle runs one sample at a time")
            arr = arr[0]
        if arr.shape[1:] != tuple(inp.shape):
            raise ValueError(f"input {name!r} has shape {arr.shape}, expected [T, {inp.shape}]")
        out[name] = arr
    return out


def _time_major(arr: np.ndarray, steps: int) -> np.ndarray:
    """[T, *shape] -> [n, steps] int32 for a RingBuffer, zero-padded or cut to `steps`."""
    flat = arr.reshape(arr.shape[0], -1).astype(np.int64)
    if flat.shape[0] < steps:
        flat = np.concatenate([flat, np.zeros((steps - flat.shape[0], flat.shape[1]), np.int64)])
    return np.ascontiguousarray(flat[:steps].T).astype(np.int32)


def _lava_conv_kernel(weights: np.ndarray) -> np.ndarray:
    """IR kernel [C_out, C_in/g, kh, kw] (cross-correlation, torch) -> Lava Conv weight.

    Lava's Conv is a true convolution over (x, y, c) with weight (C_out, kx, ky, C_in/g), so the
    kernel is flipped spatially and transposed.
    """
    return np.ascontiguousarray(weights[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int64)


def _weak_components(graph: ChipGraph) -> list[list[str]]:
    """Inputs and populations grouped by weak connectivity (projections as undirected edges)."""
    parent = {name: name for name in [*graph.inputs, *graph.populations]}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in graph.projections.values():
        parent[find(p.src)] = find(p.dst)
    parts: dict[str, list[str]] = {}
    for name in parent:
        parts.setdefault(find(name), []).append(name)
    return [part for part in parts.values() if any(n in graph.populations for n in part)]


class _Builder:
    """Creates the Lava processes of several graphs inside one Lava network."""

    def __init__(self, steps: int):
        self.steps = steps
        self.hub_columns: list[np.ndarray] = []  # [n, T] blocks of the shared RingBuffer
        self.hub_width = 0
        self.monitors: list = []  # (record, pop name, var, monitor, shape)
        self.pending_hub: list = []  # callables(hub_process) that create hub-fed connections

    # -- shared input buffer ------------------------------------------------------------------------
    def hub_slot(self, data: np.ndarray) -> int:
        offset = self.hub_width
        self.hub_columns.append(data)
        self.hub_width += data.shape[0]
        return offset

    def build_hub(self):
        from lava.proc.io.source import RingBuffer

        if not self.hub_columns:
            self.hub_slot(np.zeros((1, self.steps), np.int32))
        hub = RingBuffer(data=np.concatenate(self.hub_columns, axis=0))
        for make in self.pending_hub:
            make(hub)
        return hub

    # -- one graph ------------------------------------------------------------------------------------
    def add_graph(self, graph: ChipGraph, inputs: dict[str, np.ndarray], record: OracleRecord,
                  watch: Mapping[str, Sequence[str]] | None = None):
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF, LIFReset, TernaryLIF
        from lava.proc.monitor.process import Monitor

        graph.validate()
        lif = {}
        for pop in graph.populations.values():
            lif[pop.name] = self._population(pop, LIF, LIFReset, TernaryLIF)
            for var in (("u", "v", "s") if watch is None else watch.get(pop.name, ())):
                monitor = Monitor()
                target = lif[pop.name].s_out if var == "s" else getattr(lif[pop.name], var)
                monitor.probe(target, self.steps)
                self.monitors.append((record, pop.name, var, monitor, target, pop.shape))

        # An input goes into the shared buffer when every consumer is dense or sparse.
        hub_offset = {}
        own_buffer = {}
        for inp in graph.inputs.values():
            data = _time_major(inputs[inp.name], self.steps)
            users = graph.outgoing(inp.name)
            if users and all(p.kind != "conv" for p in users):
                hub_offset[inp.name] = self.hub_slot(data)
            else:
                own_buffer[inp.name] = RingBuffer(data=data)

        for proj in graph.projections.values():
            dst = lif[proj.dst]
            if proj.src in hub_offset:
                self.pending_hub.append(self._hub_connection(proj, hub_offset[proj.src], dst))
                continue
            src_port = lif[proj.src].s_out if proj.src in lif else own_buffer[proj.src].s_out
            self._connect(proj, src_port, dst)

        # Join every part of this graph that reads no shared input to the shared buffer with a
        # zero-weight Dense (it adds 0 to its target every step).
        from lava.proc.dense.process import Dense

        for part in _weak_components(graph):
            if any(name in hub_offset for name in part):
                continue
            target = lif[next(name for name in part if name in lif)]

            def bridge(hub, target=target):
                dense = Dense(weights=np.zeros((target.a_in.shape[0], hub.s_out.shape[0]), np.int64))
                hub.s_out.connect(dense.s_in)
                dense.a_out.connect(target.a_in)

            self.pending_hub.append(bridge)

    @staticmethod
    def _population(pop: Population, LIF, LIFReset, TernaryLIF):
        n = pop.size

        def flat(x):
            return np.broadcast_to(np.asarray(x, np.int64), pop.shape).reshape(n).copy()

        def layer_or_neuron(x):
            # Lava's LIF keeps du/dv/vth as one value; an array works element-wise in its model.
            return int(x) if np.ndim(x) == 0 else flat(x)

        common = dict(
            shape=(n,),
            du=layer_or_neuron(pop.du),
            dv=layer_or_neuron(pop.dv),
            bias_mant=flat(pop.bias_mant),
            bias_exp=flat(pop.bias_exp),
        )
        if pop.model == "lif":
            return LIF(vth=layer_or_neuron(pop.vth), **common)
        if pop.model == "lif_reset":
            return LIFReset(
                vth=layer_or_neuron(pop.vth),
                reset_interval=int(pop.reset_interval),
                reset_offset=int(pop.reset_offset),
                **common,
            )
        return TernaryLIF(vth_hi=int(pop.vth_hi), vth_lo=int(pop.vth_lo), **common)

    @staticmethod
    def _synapse(proj: Projection, weights, delays):
        """The Lava connection process for a dense or sparse projection.

        `weights` is [n_dst, n_src] (possibly zero-padded hub columns); `delays` a scalar or an
        array shaped like `weights`.
        """
        from lava.proc.dense.process import DelayDense, Dense
        from lava.proc.sparse.process import DelaySparse, Sparse

        params = dict(
            weight_exp=int(proj.weight_exp),
            num_weight_bits=int(proj.num_weight_bits),
            num_message_bits=int(proj.num_message_bits),
        )
        delayed = np.ndim(delays) > 0 or int(delays) > 0
        if proj.kind == "dense":
            weights = np.asarray(weights, np.int64)
            if not delayed:
                return Dense(weights=weights, **params)
            delays = np.ascontiguousarray(np.broadcast_to(np.asarray(delays, np.int64), weights.shape)).astype(int)
            return DelayDense(weights=weights, delays=delays, **params)
        weights = sp.csr_matrix(weights, dtype=np.int64)
        if not delayed:
            return Sparse(weights=weights, **params)
        delay_matrix = weights.copy()
        delay_matrix.data = np.full_like(delay_matrix.data, int(delays))
        return DelaySparse(weights=weights, delays=delay_matrix, **params)

    def _hub_connection(self, proj: Projection, offset: int, dst):
        """A dense/sparse projection reading columns [offset, offset + n_src) of the shared buffer."""

        def make(hub):
            width = hub.s_out.shape[0]
            n_dst, n_src = proj.weights.shape
            if proj.kind == "sparse":
                w = sp.csr_matrix(proj.weights, dtype=np.int64)
                padded = sp.hstack(
                    [
                        sp.csr_matrix((n_dst, offset), dtype=np.int64),
                        w,
                        sp.csr_matrix((n_dst, width - offset - n_src), dtype=np.int64),
                    ]
                ).tocsr()
                delays = proj.delay
            else:
                padded = np.zeros((n_dst, width), np.int64)
                padded[:, offset : offset + n_src] = proj.weights
                delays = proj.delay
                if np.ndim(delays):
                    delays = np.zeros((n_dst, width), np.int64)
                    delays[:, offset : offset + n_src] = proj.delay
            conn = self._synapse(proj, padded, delays)
            hub.s_out.connect(conn.s_in)
            conn.a_out.connect(dst.a_in)

        return make

    def _connect(self, proj: Projection, src_port, dst):
        if proj.kind != "conv":
            conn = self._synapse(proj, proj.weights, proj.delay)
            src_port.connect(conn.s_in)
            conn.a_out.connect(dst.a_in)
            return
        from lava.proc.conv.process import Conv

        g = proj.conv
        c, h, w = g.in_shape
        conv = Conv(
            weight=_lava_conv_kernel(np.asarray(proj.weights)),
            input_shape=(w, h, c),
            padding=(g.padding[1], g.padding[0]),
            stride=(g.stride[1], g.stride[0]),
            dilation=(g.dilation[1], g.dilation[0]),
            groups=g.groups,
            num_message_bits=int(proj.num_message_bits),
        )
        src_port.reshape((c, h, w)).transpose([2, 1, 0]).connect(conv.s_in)
        conv.a_out.transpose([2, 1, 0]).reshape((math.prod(g.out_shape),)).connect(dst.a_in)


def run_lava_many(jobs: Sequence[tuple[ChipGraph, object]], steps: int,
                  watch: Mapping[str, Sequence[str]] | None = None) -> list[OracleRecord]:
    """Run several independent graphs (each with its single-sample inputs) in one Lava run.

    By default every population's s, u and v are recorded (3 Monitor processes each); `watch`
    ({population: vars}) records only those, e.g. {"out": ["s"]} for timing runs.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    builder = _Builder(steps)
    records = []
    for graph, inputs in jobs:
        record = OracleRecord(steps=steps)
        builder.add_graph(graph, _single_sample(graph, inputs), record, watch)
        records.append(record)
    hub = builder.build_hub()
    try:
        hub.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        for record, name, var, monitor, target, shape in builder.monitors:
            data = monitor.get_data()[target.process.name][target.name]
            getattr(record, var)[name] = np.rint(np.asarray(data)).astype(np.int64).reshape((steps, *shape))
    finally:
        hub.stop()
    return records


def run_lava(graph: ChipGraph, inputs, steps: int | None = None,
             watch: Mapping[str, Sequence[str]] | None = None) -> OracleRecord:
    """Run one graph on Lava fixed_pt for `steps` steps (default: the input length)."""
    if steps is None:
        steps = next(iter(_single_sample(graph, inputs).values())).shape[0]
    return run_lava_many([(graph, inputs)], steps, watch)[0]
