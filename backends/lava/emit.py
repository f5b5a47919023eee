"""ChipGraph -> real Lava processes.

`emit(graph)` creates one Lava process per chip-level node and connects them:

| snnc                                   | Lava process                                   |
|----------------------------------------|------------------------------------------------|
| InputPopulation                        | `lava.proc.io.source.RingBuffer` (binary or graded values) |
| Population model lif / lif_reset / ternary | `LIF` / `LIFReset` / `TernaryLIF`         |
| Population with another reset or a relay | snnc's `procs.cuba.CubaNeuron` (fixed_pt)     |
| Population model product / atrlif      | `lava.proc.prodneuron.ProdNeuron` (ports a_in1/a_in2) / `lava.proc.atrlif.ATRLIF` (fixed_pt; probe u: its i) |
| Population model lif_refractory        | snnc's `procs.refractory.CubaRefractory` (fixed_pt; Lava's `LIFRefractory` has a float model only) |
| Population model rf / rf_iz            | `lava.proc.rf.RF` / `lava.proc.rf_iz.RF_IZ` (fixed_pt; ports a_real_in/a_imag_in; probes u, v: real, imag) |
| Population model delta / sigma_delta / sigma | `lava.proc.sdn` `Delta` / `SigmaDelta` / `Sigma` (probes u, v: sigma, act) |
| Projection dense (delay 0 / > 0)       | `Dense` / `DelayDense`                          |
| Projection sparse (delay 0 / > 0)      | `Sparse` / `DelaySparse`                        |
| Projection conv                        | `Conv` (torch CHW layout converted to Lava WHC) |
| Projection `direct` (input only)       | none: the RingBuffer's `s_out` connects to the neurons' `a_in` |

Every parameter is passed by the name the Lava constructor declares (Lava silently accepts unknown
keyword arguments, so a typo would leave a default in place); tests read the Vars back.

Layouts: populations and inputs keep snnc's shape, so their `u`, `v` Vars and `s_out` ports are
in snnc order. Dense/Sparse see the C-order flattening through `OutPort.flatten()` /
`OutPort.reshape()` virtual ports; Conv sees Lava's (X, Y, C) = (W, H, C) layout through
`transpose([2, 1, 0])` virtual ports, and gets its kernel converted from torch's correlation
layout [C_out, C_in/groups, kh, kw] to Lava's convolution layout (C_out, kx, ky, C_in/groups),
spatially flipped. Several projections into one population all connect to its `a_in`, which Lava
sums.

Time: a RingBuffer sends `data[..., t]` at Lava step t+1, so input index t (0-based) enters the
network at step t+1; recordings (see `attach_taps`) hold the state after step t+1 at index t.

`tag="floating_pt"` emits the same network for Lava's float models in the *same units* as the
fixed-point one: float Dense/Conv apply neither weight_exp nor truncation nor the `<< 6` of the
fixed LIF, so weights become `effective_weight * 2**weight_exp * 64`, thresholds `vth * 64`,
biases `bias_mant * 2**bias_exp`, and decays `(du + 1) / 4096`, `dv / 4096` (the fixed model
decays u by du + 1). Outputs then differ from fixed_pt only by the rounding the float model skips.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from snnc.ir.chip import PROGRAMMABLE_KINDS, ChipGraph, ConvProjection, InputPopulation, Population, Projection, SparseProjection
from snnc.ir.errors import BackendError, GraphError, ShapeError
from snnc.ir.fixed_point.resonator import RF_KINDS, period_alpha
from snnc.ir.fixed_point.units import DECAY_ONE, STATE_UNIT

TAGS = ("fixed_pt", "floating_pt")
STATE_VARS = ("s", "u", "v")
FLOAT_UNIT = STATE_UNIT  # the fixed LIF shifts synaptic input and thresholds left by 6 bits


def conv_kernel_to_lava(kernel: np.ndarray) -> np.ndarray:
    """torch [C_out, C_in/g, kh, kw] (correlation) -> Lava (C_out, kx=kw, ky=kh, C_in/g) (convolution)."""
    return np.ascontiguousarray(np.asarray(kernel).transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


def conv_kernel_from_lava(kernel: np.ndarray) -> np.ndarray:
    """Inverse of `conv_kernel_to_lava`: a Lava/lava-dl kernel as snnc's torch-layout kernel."""
    return np.ascontiguousarray(np.asarray(kernel)[:, ::-1, ::-1, :].transpose(0, 3, 2, 1))


@dataclass
class LavaNetwork:
    """The Lava processes built for one ChipGraph, by snnc name.

    `inputs`: RingBuffer per InputPopulation; `populations`: LIF-family process per Population;
    `projections`: Dense/Sparse/Conv/Delay* per Projection; `taps`: recorders by key "pop/var"
    (see `attach_taps`); `bridges`: zero-weight links that join disconnected parts of the graph so
    one `run` compiles them all. Connect your own processes to e.g. `net.populations["h"].s_out`,
    then run any one of them: Lava compiles everything connected.
    """

    graph: ChipGraph
    tag: str
    steps: int
    inputs: dict[str, Any] = field(default_factory=dict)
    populations: dict[str, Any] = field(default_factory=dict)
    projections: dict[str, Any] = field(default_factory=dict)
    taps: dict[str, Any] = field(default_factory=dict)
    bridges: dict[str, Any] = field(default_factory=dict)

    def processes(self) -> list:
        """Every Lava process of the network (inputs, projections, populations, taps, bridges)."""
        return [
            *self.bridges.values(), *self.inputs.values(), *self.projections.values(),
            *self.populations.values(), *self.taps.values(),
        ]

    def snnc_name(self, lava_process) -> str:
        """What a Lava process stands for, e.g. "population 'hidden' (LIF)"."""
        for kind, table in (("input", self.inputs), ("population", self.populations),
                            ("projection", self.projections), ("recorder", self.taps),
                            ("bridge", self.bridges)):
            for name, proc in table.items():
                if proc is lava_process:
                    return f"{kind} {name!r} ({type(proc).__name__})"
        return f"Lava process {getattr(lava_process, 'name', '?')!r} ({type(lava_process).__name__})"

    def any_process(self):
        """The process to call `run` on: Lava compiles it and everything connected to it, which
        (thanks to the bridges) is every part of the graph that holds a population."""
        for table in (self.bridges, self.populations, self.inputs):
            if table:
                return next(iter(table.values()))
        raise GraphError("the chip graph is empty", hint="add an input or a population")

    def run_config(self, hardware: bool = False):
        """The Lava RunConfig for this network (see `snnc.backends.lava.runner.make_run_config`)."""
        from .runner import make_run_config

        return make_run_config(self.tag, hardware=hardware)


# -- parameters ----------------------------------------------------------------------------------
def _param(value, dtype=int):
    """A scalar as a Python number (what Lava's `LavaPyType(int, ...)` Vars expect), else an array."""
    if np.ndim(value) == 0:
        return dtype(value)
    return np.asarray(value, dtype=np.int64 if dtype is int else float)


def population_kwargs(pop: Population, tag: str) -> dict:
    """Constructor arguments of the Lava neuron process for `pop` (by Lava's parameter names)."""
    if tag == "fixed_pt":
        kw = dict(
            shape=tuple(pop.shape),
            du=_param(pop.du),
            dv=_param(pop.dv),
            bias_mant=_param(pop.bias_mant),
            bias_exp=_param(pop.bias_exp),
            name=pop.name,
        )
        if pop.model == "ternary":
            kw.update(vth_hi=int(pop.vth_hi), vth_lo=int(pop.vth_lo))
        else:
            kw.update(vth=_param(pop.vth))
    else:
        kw = dict(
            shape=tuple(pop.shape),
            du=(np.asarray(pop.du, dtype=float) + 1.0) / float(DECAY_ONE),
            dv=np.asarray(pop.dv, dtype=float) / float(DECAY_ONE),
            bias_mant=np.asarray(pop.bias_mant, dtype=float) * 2.0 ** np.asarray(pop.bias_exp, dtype=float),
            bias_exp=0.0,
            name=pop.name,
        )
        for k in ("du", "dv", "bias_mant"):
            if np.ndim(kw[k]) == 0:
                kw[k] = float(kw[k])
        if pop.model == "ternary":
            kw.update(vth_hi=float(pop.vth_hi) * FLOAT_UNIT, vth_lo=float(pop.vth_lo) * FLOAT_UNIT)
        else:
            vth = np.asarray(pop.vth, dtype=float) * FLOAT_UNIT
            kw.update(vth=float(vth) if vth.ndim == 0 else vth)
    if pop.model == "lif_reset":
        kw.update(reset_interval=int(pop.reset_interval), reset_offset=int(pop.reset_offset))
    return kw


def _sign_mode(proj: Projection):
    from lava.utils.weightutils import SignMode

    return {"excitatory": SignMode.EXCITATORY, "inhibitory": SignMode.INHIBITORY, "mixed": SignMode.MIXED}[
        proj.sign_mode
    ]


def projection_kwargs(proj: Projection, tag: str) -> tuple[type, dict]:
    """(Lava process class, constructor arguments) for `proj`."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense, DelayDense
    from lava.proc.sparse.process import DelaySparse, Sparse

    fixed = tag == "fixed_pt"
    if isinstance(proj, ConvProjection):
        g = proj.conv
        weight = conv_kernel_to_lava(proj.weights)
        weight = weight.astype(np.int64) if fixed else weight.astype(float) * FLOAT_UNIT
        kw = dict(
            weight=weight,
            weight_exp=int(proj.weight_exp),
            input_shape=(g.in_shape[2], g.in_shape[1], g.in_shape[0]),
            padding=(g.padding[1], g.padding[0]),
            stride=(g.stride[1], g.stride[0]),
            dilation=(g.dilation[1], g.dilation[0]),
            groups=int(g.groups),
            num_weight_bits=int(proj.num_weight_bits),
            num_message_bits=int(proj.num_message_bits),
            name=proj.name,
        )
        return Conv, kw

    delayed = proj.max_delay > 0
    if isinstance(proj, SparseProjection):
        if fixed:
            weights = sp.csr_matrix(proj.weights, dtype=np.int64)
        else:
            weights = proj.effective_weights().astype(float) * (2.0 ** proj.weight_exp * FLOAT_UNIT)
            weights = sp.csr_matrix(weights)
        cls = DelaySparse if delayed else Sparse
    else:
        if fixed:
            weights = np.asarray(proj.weights, dtype=np.int64)
        else:
            weights = proj.effective_weights().astype(float) * (2.0 ** proj.weight_exp * FLOAT_UNIT)
        cls = DelayDense if delayed else Dense
    kw = dict(weights=weights, num_message_bits=int(proj.num_message_bits), name=proj.name)
    if fixed:
        kw.update(weight_exp=int(proj.weight_exp), num_weight_bits=int(proj.num_weight_bits), sign_mode=_sign_mode(proj))
    if delayed:
        if isinstance(proj, SparseProjection):
            delays = weights.copy().astype(np.int64)
            delays.data = np.full(delays.nnz, int(proj.delay), dtype=np.int64)
        else:
            delays = np.broadcast_to(np.asarray(proj.delay, dtype=np.int64), weights.shape).astype(int)
        kw.update(delays=delays, max_delay=int(proj.max_delay))
    return cls, kw


def _neuron_class(pop: Population):
    """Lava's own LIF / LIFReset / TernaryLIF where they compute the population (reset to 0), else
    snnc's `CubaNeuron` (subtract or no reset, a reset voltage, relays)."""
    if not pop.lava_native:
        from snnc.backends.lava.procs.cuba import CubaNeuron

        return CubaNeuron
    from lava.proc.lif.process import LIF, LIFReset, TernaryLIF

    return {"lif": LIF, "lif_reset": LIFReset, "ternary": TernaryLIF}[pop.model]


def cuba_kwargs(pop: Population, tag: str) -> dict:
    """Constructor arguments of snnc's `CubaNeuron` (fixed_pt only)."""
    if tag != "fixed_pt":
        raise BackendError(
            f"population {pop.name!r} (model {pop.model}, reset {pop.reset_mode}) has no floating_pt model in Lava",
            where=f"population {pop.name!r}",
            hint="run the lava backend with tag='fixed_pt' (the default)",
        )
    return dict(
        shape=tuple(pop.shape), du=pop.du, dv=pop.dv, vth=pop.vth, bias_mant=pop.bias_mant, bias_exp=pop.bias_exp,
        v_reset=pop.v_reset, kind=pop.model, reset_mode=pop.reset_mode, relay_shift=int(pop.relay_shift),
        vth_hi=int(pop.vth_hi), vth_lo=int(pop.vth_lo), reset_interval=int(pop.reset_interval),
        reset_offset=int(pop.reset_offset), name=pop.name,
    )


def sigma_delta_process(pop: Population, tag: str):
    """Lava's own `lava.proc.sdn` process for a sigma-delta population, with the arguments netx passes
    (Lava scales vth and bias by 2**(spike_exp + state_exp) itself)."""
    from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta

    if pop.model == "sigma":
        return _named(Sigma(shape=tuple(pop.shape)), pop.name)
    kw = dict(shape=tuple(pop.shape), vth=int(pop.vth), cum_error=bool(pop.cum_error),
              spike_exp=int(pop.spike_exp), state_exp=int(pop.state_exp))
    if tag != "fixed_pt":  # the float models apply no exponents: the same network in the same units
        kw.update(vth=float(pop.vth) * 2.0 ** (int(pop.spike_exp) + int(pop.state_exp)), spike_exp=0, state_exp=0)
    if pop.model == "delta":
        return _named(Delta(**kw), pop.name)
    bias: Any = np.asarray(pop.act_bias, np.int64) if np.ndim(pop.act_bias) else int(pop.act_bias)
    if tag != "fixed_pt":
        bias = np.asarray(bias, float) * 2.0 ** (int(pop.spike_exp) + int(pop.state_exp))
    mode = ActivationMode.RELU if pop.act_mode == "relu" else ActivationMode.UNIT
    return _named(SigmaDelta(bias=bias, act_mode=mode, **kw), pop.name)


def _named(proc, name: str):
    proc.name = name  # Delta and Sigma take no `name` argument
    return proc


SIGMA_DELTA_VARS = {"u": "sigma", "v": "act"}
"""What a sigma-delta population's u/v probes read in Lava."""


def programmable_process(pop: Population, tag: str):
    """Lava's own `ProdNeuron` / `ATRLIF` / `RF` / `RF_IZ` for a product / atrlif / rf / rf_iz
    population, snnc's `CubaRefractory` for a lif_refractory one.

    fixed_pt only: ProdNeuron has no float model, and ATRLIF's float model is another arithmetic
    (no 6-bit MSB alignment of input and threshold). The 12-bit decays are handed over as
    `delta = d / 4096`, exact in float64, so Lava's fixed model computes integers exactly.
    """
    if tag != "fixed_pt":
        raise BackendError(
            f"a {pop.model} population runs on Lava's fixed_pt model only", where=f"population {pop.name!r}",
            hint="run the lava backend with tag='fixed_pt' (the default)",
        )
    if pop.model == "lif_refractory":
        from snnc.backends.lava.procs.refractory import CubaRefractory

        return CubaRefractory(shape=tuple(pop.shape), du=pop.du, dv=pop.dv, vth=pop.vth, bias_mant=pop.bias_mant,
                              bias_exp=pop.bias_exp, refractory_period=int(pop.refractory_period), name=pop.name)
    if pop.model in RF_KINDS:
        return resonator_process(pop)
    if pop.model == "product":
        from lava.proc.prodneuron.process import ProdNeuron

        proc = ProdNeuron(shape=tuple(pop.shape), vth=int(pop.vth), exp=int(pop.prod_exp))
        proc.name = pop.name  # ProdNeuron takes no `name` argument
        return proc
    from lava.proc.atrlif.process import ATRLIF

    one = float(DECAY_ONE)
    return ATRLIF(
        shape=tuple(pop.shape), delta_i=int(pop.du) / one, delta_v=int(pop.dv) / one, delta_theta=int(pop.d_theta) / one,
        delta_r=int(pop.d_r) / one, theta_0=int(pop.vth), theta_step=int(pop.theta_step),
        bias_mant=_param(pop.bias_mant), bias_exp=_param(pop.bias_exp), name=pop.name,
    )


ATRLIF_VARS = {"u": "i", "v": "v"}
"""What an atrlif population's u/v probes read in Lava."""
RF_VARS = {"u": "real", "v": "imag"}
"""What an rf/rf_iz population's u/v probes read in Lava."""


def resonator_process(pop: Population):
    """Lava's own `RF` / `RF_IZ` for an rf / rf_iz population. Lava's constructor takes period and
    alpha and truncates (1 - alpha) sin/cos(2 pi / period) * 2**decay_bits to integers itself; it is
    handed the (period, alpha) in the middle of each integer's truncation interval
    (`resonator.period_alpha`), and the integers it computed are checked."""
    from lava.proc.rf.process import RF
    from lava.proc.rf_iz.process import RF_IZ

    periods, alphas = period_alpha(pop.sin_decay, pop.cos_decay, int(pop.decay_bits))
    scalar = np.ndim(pop.sin_decay) == 0 and np.ndim(pop.cos_decay) == 0
    period: float | np.ndarray
    alpha: float | np.ndarray
    if scalar:
        period, alpha = float(periods), float(alphas)
    else:  # Lava's RF broadcasts per-neuron decays (its Vars declare shape (1,))
        period = np.broadcast_to(periods, pop.shape).reshape(-1).copy()
        alpha = np.broadcast_to(alphas, pop.shape).reshape(-1).copy()
    cls = RF_IZ if pop.model == "rf_iz" else RF
    proc = cls(shape=tuple(pop.shape), period=period, alpha=alpha, state_exp=int(pop.state_exp),
               decay_bits=int(pop.decay_bits), vth=int(pop.vth), name=pop.name)
    for name in ("sin_decay", "cos_decay"):
        want = np.broadcast_to(np.asarray(getattr(pop, name), np.int64), () if scalar else (pop.size,))
        if not np.array_equal(np.asarray(getattr(proc, name).init, np.int64), want):
            raise BackendError(f"Lava's {cls.__name__} did not reproduce the population's {name}", where=f"population {pop.name!r}.{name}",
                               expected=want.tolist(), got=np.asarray(getattr(proc, name).init).tolist(),
                               hint="report this: snnc hands Lava the middle of each integer's truncation interval")
    return proc


# -- inputs --------------------------------------------------------------------------------------
def input_ring_data(inp: InputPopulation, data: np.ndarray | None, tag: str) -> np.ndarray:
    """[T, *shape] -> the RingBuffer's [*shape, T] array (at least one step of zeros)."""
    dtype = np.int64 if tag == "fixed_pt" else float
    if data is None:
        return np.zeros((*inp.shape, 1), dtype=dtype)
    data = np.asarray(data)
    if data.shape[1:] != tuple(inp.shape):
        raise BackendError(
            "input data has the wrong shape", where=f"input {inp.name!r}", expected=f"[T, {inp.shape}]", got=data.shape
        )
    return np.moveaxis(data, 0, -1).astype(dtype)


# -- building ------------------------------------------------------------------------------------
def emit(
    graph: ChipGraph,
    *,
    tag: str = "fixed_pt",
    inputs: Mapping[str, np.ndarray] | None = None,
) -> LavaNetwork:
    """Create and connect the Lava processes of `graph`.

    `inputs` maps input names to arrays [T, *shape] that the RingBuffers replay (cyclically, as
    Lava's RingBuffer does); missing inputs send zeros. Returns a `LavaNetwork` whose dicts hold
    the processes by snnc name.
    """
    from lava.proc.io.source import RingBuffer

    if tag not in TAGS:
        raise BackendError("unknown Lava model tag", where="lava backend option 'tag'", expected=" or ".join(TAGS), got=tag)
    graph.validate()
    inputs = dict(inputs or {})
    unknown = set(inputs) - set(graph.inputs)
    if unknown:
        raise BackendError("data given for unknown inputs", expected=sorted(graph.inputs), got=sorted(unknown))
    steps = max([np.shape(v)[0] for v in inputs.values()] or [1])
    net = LavaNetwork(graph=graph, tag=tag, steps=steps)
    for name, inp in graph.inputs.items():
        net.inputs[name] = RingBuffer(data=input_ring_data(inp, inputs.get(name), tag))
        net.inputs[name].name = name
    for name, pop in graph.populations.items():
        if pop.sigma_delta:
            net.populations[name] = sigma_delta_process(pop, tag)
            continue
        if pop.model in PROGRAMMABLE_KINDS:
            net.populations[name] = programmable_process(pop, tag)
            continue
        kwargs = population_kwargs(pop, tag) if pop.lava_native else cuba_kwargs(pop, tag)
        net.populations[name] = _neuron_class(pop)(**kwargs)
    for name, proj in graph.projections.items():
        if proj.direct:
            _connect_direct(net, graph, proj)
            continue
        cls, kw = projection_kwargs(proj, tag)
        try:
            proc = cls(**kw)
        except Exception as exc:  # noqa: BLE001 - Lava validates in its constructors (ValueError, AssertionError)
            raise BackendError(
                f"Lava's {cls.__name__} rejected the projection: {exc}", where=f"projection {name!r}"
            ) from exc
        net.projections[name] = proc
        _connect(net, graph, proj, proc)
    _bridge_components(net, graph, tag)
    return net


def components(graph: ChipGraph) -> list[list[str]]:
    """Weakly connected parts of the graph (inputs and populations), in graph order."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from([*graph.inputs, *graph.populations])
    g.add_edges_from((p.src, p.dst) for p in graph.projections.values())
    order = {name: i for i, name in enumerate([*graph.inputs, *graph.populations])}
    parts = [sorted(c, key=order.__getitem__) for c in nx.connected_components(g)]
    return sorted(parts, key=lambda c: order[c[0]])


def _bridge_components(net: LavaNetwork, graph: ChipGraph, tag: str) -> None:
    """Join disconnected parts so that one `run` compiles them all.

    Lava compiles only the processes connected to the one `run` is called on. Each part that holds
    a population gets a zero-weight Dense from a one-channel zero RingBuffer (the hub) into one of
    its populations: it adds 0 to that population's input every step, changing nothing.
    """
    if len([c for c in components(graph) if any(n in graph.populations for n in c)]) > 1:
        _hub(net)


def _hub(net: LavaNetwork):
    """The shared zero source, bridged into every part of the graph that holds a population."""
    from lava.proc.io.source import RingBuffer

    hub = net.bridges.get("source")
    if hub is not None:
        return hub
    dtype = np.int64 if net.tag == "fixed_pt" else float
    hub = RingBuffer(data=np.zeros((1, 1), dtype=dtype))
    hub.name = "bridge source"
    net.bridges = {"source": hub, **net.bridges}
    graph = net.graph
    for part in components(graph):
        pop = next((n for n in part if n in graph.populations), None)
        if pop is not None:
            port = getattr(net.populations[pop], graph.populations[pop].ports[0])  # a product adds the 0 to a_in1
            _bridge(net, port, tuple(graph.populations[pop].shape), pop)
    return hub


def _bridge(net: LavaNetwork, in_port, shape: tuple[int, ...], label: str) -> None:
    """A zero-weight Dense from the hub into `in_port`."""
    from lava.proc.dense.process import Dense

    hub = _hub(net)
    dtype = np.int64 if net.tag == "fixed_pt" else float
    size = int(np.prod(shape))
    dense = Dense(weights=np.zeros((size, 1), dtype=dtype), name=f"bridge to {label}")
    hub.s_out.connect(dense.s_in)
    (dense.a_out if len(shape) == 1 else dense.a_out.reshape(shape)).connect(in_port)
    net.bridges[label] = dense


def _out_port(net: LavaNetwork, name: str):
    if name in net.inputs:
        return net.inputs[name].s_out
    return net.populations[name].s_out


def _connect(net: LavaNetwork, graph: ChipGraph, proj: Projection, proc) -> None:
    src = graph.source(proj.src)
    dst = graph.populations[proj.dst]
    out = _out_port(net, proj.src)
    target = getattr(net.populations[proj.dst], proj.port)
    if isinstance(proj, ConvProjection):
        out.transpose([2, 1, 0]).connect(proc.s_in)
        proc.a_out.transpose([2, 1, 0]).connect(target)
        return
    (out if len(src.shape) == 1 else out.flatten()).connect(proc.s_in)
    (proc.a_out if len(dst.shape) == 1 else proc.a_out.reshape(tuple(dst.shape))).connect(target)


def _connect_direct(net: LavaNetwork, graph: ChipGraph, proj: Projection) -> None:
    """A direct projection has no Lava process: the RingBuffer's port is connected straight to the
    neurons' input port (same step, no weight), as lava-dl netx connects `net.inp` to an input layer."""
    out = net.inputs[proj.src].s_out
    shape = tuple(graph.populations[proj.dst].shape)
    target = getattr(net.populations[proj.dst], proj.port)
    (out if tuple(graph.inputs[proj.src].shape) == shape else out.reshape(shape)).connect(target)


def parse_record_keys(graph: ChipGraph, keys: Iterable[str]) -> list[tuple[str, str, str]]:
    """Check probe names -> (key, node, var).

    "pop" or "pop/s" (spikes), "pop/u", "pop/v" for populations; "in" or "in/s" for inputs (what
    the RingBuffer sends, i.e. the input itself).
    """
    out = []
    for key in keys:
        if not isinstance(key, str):
            raise BackendError("probe names must be strings", got=key, hint='use "population/var", e.g. "hidden/v"')
        node, _, var = key.partition("/")
        var = var or "s"
        if node in graph.inputs:
            if var != "s":
                raise BackendError("an input can only be probed for its spikes", where=f"probe {key!r}",
                                   expected=f"{node!r} or '{node}/s'", got=key)
        elif node not in graph.populations:
            raise BackendError(
                "probe names an unknown population",
                where=f"probe {key!r}",
                expected=sorted([*graph.populations, *graph.inputs]),
                got=node,
            )
        elif var not in STATE_VARS:
            raise BackendError("probe variable must be s, u or v", where=f"probe {key!r}", expected=STATE_VARS, got=var)
        elif var != "s" and graph.populations[node].model == "product":
            raise BackendError("a product population keeps no state to read", where=f"probe {key!r}",
                               expected=f"{node}/s (its graded output)", got=var)
        out.append((key, node, var))
    return out


def _reaches_population(graph: ChipGraph, node: str) -> bool:
    return any(node in part and any(n in graph.populations for n in part) for part in components(graph))


def attach_taps(net: LavaNetwork, keys: Iterable[str], buffer_size: int = 64) -> dict[str, Any]:
    """Add a host-streaming recorder per key ("pop/s", "pop/u", "pop/v"); returns them by key.

    Spikes are taken from `s_out` in the spiking phase of each step, `u`/`v` through a RefPort
    after the neurons updated; the message of Lava step t+1 is index t.
    """
    from .procs.tap import SpikeTap, StateTap

    for key, node, var in parse_record_keys(net.graph, keys):
        if key in net.taps:
            continue
        proc = net.populations.get(node) or net.inputs[node]
        shape = tuple(net.graph.source(node).shape)
        if var == "s":
            tap = SpikeTap(shape=shape, buffer_size=buffer_size, name=f"record {key}")
            proc.s_out.connect(tap.a_in)
            if node in net.graph.inputs and not _reaches_population(net.graph, node):
                _bridge(net, tap.a_in, shape, key)  # else Lava would not compile this recorder
        else:
            tap = StateTap(shape=shape, buffer_size=buffer_size, name=f"record {key}")
            pop = net.graph.populations.get(node)
            if pop is not None and pop.model == "atrlif":
                var = ATRLIF_VARS[var]
            if pop is not None and pop.model in RF_KINDS:
                var = RF_VARS[var]
            if pop is not None and pop.sigma_delta:
                var = "sigma" if pop.model == "sigma" else SIGMA_DELTA_VARS[var]  # a Sigma's activation is sigma
            tap.connect_var(getattr(proc, var))
        net.taps[key] = tap
    return net.taps


def check_input_values(graph: ChipGraph, inputs: Mapping[str, np.ndarray], tag: str) -> None:
    """Binary inputs must hold 0/1; graded inputs integers with |value| <= 2**num_message_bits - 1.

    The same rule as the sim backend. Lava's binary synapses would treat any non-zero value as a
    spike, so a 0.5 or a 2 would silently become a 1; that is refused here instead. floating_pt
    accepts non-integer graded payloads.
    """
    for name, arr in inputs.items():
        inp = graph.inputs[name]
        values = np.asarray(arr)
        if inp.num_message_bits:
            limit = (1 << int(inp.num_message_bits)) - 1
            bad = np.abs(values) > limit
            if tag == "fixed_pt":
                bad |= values != np.round(values)
            expected = f"integers with |value| <= {limit} (num_message_bits={inp.num_message_bits})"
            hint = "quantize the graded input to the payload's integer range"
        else:
            bad = (values != 0) & (values != 1)
            expected = "binary spikes (0 or 1)"
            hint = (
                "binary inputs carry spikes only; give the input population num_message_bits > 0 "
                "for graded values"
            )
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ShapeError(
                "input values out of range",
                where=f"input {name!r} at index {list(idx)}",
                expected=expected,
                got=values[idx].item(),
                hint=hint,
            )
