"""The canonical NIR graph seen as populations and float projections (shared by timing/quantize).

After canonicalize (and fuse), a graph is populations (Input nodes and canonical CubaLIF/CubaLI
neurons) joined by chains of linear nodes (Affine, Conv, pooling, Flatten, Scale, Delay).
`lower()` turns every chain into a float projection (src population -> dst population): the
composed linear map (kept as a convolution when it is one, else a dense or sparse matrix over
C-order flattened neurons, which is how the chip IR indexes neurons; that is also where Flatten
disappears), the float delay in steps (recurrent edges count one step, Delay nodes their length)
and the constant terms (biases) with the step from which the reference model applies them.

`simulate()` runs the float model (`snnc.ir.float_model`, the evaluator the reference backend
runs) on the canonical graph behind this view and keeps, per population, what the quantizer
calibrates scales and measures membrane-input errors on, and what the fidelity guard compares.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import nir
import numpy as np
import scipy.sparse as sp

from snnc.ir import conv as ir_conv
from snnc.ir.fixed_point import ResetMode
from snnc.ir import shapes as S
from snnc.ir.float_model import FloatModel
from snnc.ir.chip import ConvGeometry, OutputVar
from snnc.ir.errors import GraphError, ShapeError, UnsupportedNodeError
from snnc.ir.graph import Graph

from .canonicalize import META_RELAY, Cuba, graph_dt, read_canonical

NEURONS = (nir.CubaLIF, nir.CubaLI)


# -- linear operators -------------------------------------------------------------------------------
@dataclass
class LinOp(ABC):
    """A linear map from a flat source vector (n_in) to a flat target vector (n_out): the base of
    the four kinds, IdentityOp, DenseOp (ndarray [n_out, n_in]), SparseOp (csr) and ConvOp (kernel
    and the geometry it always carries). `kind` names the class as a string (for reports); code
    that needs one kind's fields tests isinstance, which also narrows the type."""

    kind: ClassVar[str]
    n_in: int
    n_out: int

    @abstractmethod
    def matrix(self) -> sp.csr_matrix | np.ndarray:
        """The [n_out, n_in] matrix (a scipy matrix or an ndarray, whichever the kind holds)."""

    def sparse(self) -> sp.csr_matrix:
        m = self.matrix()
        return sp.csr_matrix(m) if isinstance(m, np.ndarray) else m.tocsr()

    def dense(self) -> np.ndarray:
        m = self.matrix()
        return np.asarray(m) if isinstance(m, np.ndarray) else m.toarray()

    def apply(self, vec: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix() @ vec).ravel()

    def nnz(self) -> int:
        return int(self.sparse().nnz)

    def _check_shape(self, what: str, got: tuple[int, ...], expected: tuple[int, ...]) -> None:
        """Construction stays cheap (the quantizer builds many): only shapes are compared."""
        if tuple(got) != tuple(expected):
            raise ShapeError(f"{what} does not match", where=f"{type(self).__name__}(n_in={self.n_in}, n_out={self.n_out})",
                             expected=tuple(expected), got=tuple(got), hint="a bug in the code building the operator")


@dataclass
class IdentityOp(LinOp):
    """The identity (Flatten, Delay, Output, a population's own output): n_in == n_out."""

    kind: ClassVar[str] = "identity"

    def __post_init__(self) -> None:
        self._check_shape("n_out of an identity, which keeps the size n_in,", (self.n_out,), (self.n_in,))

    def matrix(self) -> sp.csr_matrix:
        return sp.identity(self.n_in, format="csr", dtype=np.float64)

    def apply(self, vec: np.ndarray) -> np.ndarray:
        return vec.copy()

    def nnz(self) -> int:
        return self.n_in


@dataclass
class _StoredMatrix(LinOp):
    """An operator that holds its matrix, data [n_out, n_in]: DenseOp (ndarray), SparseOp (csr)."""

    data: Any

    def __post_init__(self) -> None:
        self._check_shape("matrix shape [n_out, n_in]", self.data.shape, (self.n_out, self.n_in))

    def matrix(self) -> Any:
        return self.data


@dataclass
class DenseOp(_StoredMatrix):
    """A dense matrix, data [n_out, n_in]."""

    data: np.ndarray
    kind: ClassVar[str] = "dense"

    def nnz(self) -> int:
        return int(np.count_nonzero(self.data))


@dataclass
class SparseOp(_StoredMatrix):
    """A scipy CSR matrix, data [n_out, n_in]."""

    data: sp.csr_matrix
    kind: ClassVar[str] = "sparse"


@dataclass
class ConvOp(LinOp):
    """A 2-D cross-correlation: kernel `data` [C_out, C_in/groups, kh, kw] slid over the source as
    `geom` says (snnc.ir.conv's geometry, required: a conv without it cannot be applied)."""

    data: np.ndarray
    geom: ConvGeometry
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        g = self.geom
        self._check_shape("(n_in, n_out) against the geometry's sizes", (self.n_in, self.n_out), (math.prod(g.in_shape), math.prod(g.out_shape)))
        self._check_shape("kernel shape [C_out, C_in/groups, kh, kw]", self.data.shape, (g.out_shape[0], g.in_shape[0] // g.groups, *g.kernel))

    def matrix(self) -> sp.csr_matrix:
        return conv_matrix(self.data, self.geom)


def conv_matrix(kernel: np.ndarray, g: ConvGeometry) -> sp.csr_matrix:
    """The [out_size, in_size] float matrix of a 2-D cross-correlation (torch conventions), every
    in-bounds tap stored (zero weights too): snnc.ir.conv's geometry."""
    return ir_conv.conv_matrix(kernel, g, np.float64, keep_zeros=True)


def compose(after: LinOp, before: LinOp) -> LinOp:
    """after o before, keeping the cheapest exact representation."""
    if isinstance(before, IdentityOp):
        return after
    if isinstance(after, IdentityOp):
        return before
    if isinstance(after, DenseOp):
        m = before.matrix()
        out = (m.T @ after.data.T).T if sp.issparse(m) else after.data @ m
        return DenseOp(before.n_in, after.n_out, np.asarray(out))
    if isinstance(before, DenseOp):
        return DenseOp(before.n_in, after.n_out, np.asarray(after.matrix() @ before.data))
    return SparseOp(before.n_in, after.n_out, (after.sparse() @ before.sparse()).tocsr())


def add(a: LinOp, b: LinOp) -> LinOp:
    """a + b (same n_in, n_out): one conv when both are convs of the same geometry, else dense if
    either is dense, else sparse."""
    if isinstance(a, ConvOp) and isinstance(b, ConvOp) and a.geom == b.geom:
        return ConvOp(a.n_in, a.n_out, a.data + b.data, a.geom)
    if isinstance(a, DenseOp) or isinstance(b, DenseOp):
        return DenseOp(a.n_in, a.n_out, a.dense() + b.dense())
    return SparseOp(a.n_in, a.n_out, (a.sparse() + b.sparse()).tocsr())


def node_op(node: nir.NIRNode, in_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str) -> tuple[LinOp, np.ndarray]:
    """The linear map and constant (bias, flat over out_shape) of one linear node."""
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)
    zero = np.zeros(n_out)
    if isinstance(node, (nir.Flatten, nir.Delay, nir.Output)):
        return IdentityOp(n_in, n_out), zero
    if isinstance(node, nir.Scale):
        s = np.broadcast_to(np.asarray(node.scale, dtype=np.float64), in_shape).ravel()
        return SparseOp(n_in, n_out, sp.diags(s, format="csr")), zero
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight, dtype=np.float64)
        b = np.zeros(w.shape[0]) if isinstance(node, nir.Linear) else np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (w.shape[0],))
        lead = math.prod(in_shape[:-1])
        if lead == 1:
            return DenseOp(n_in, n_out, np.ascontiguousarray(w)), np.asarray(b, dtype=np.float64).copy()  # read, never written
        return SparseOp(n_in, n_out, sp.kron(sp.identity(lead), sp.csr_matrix(w), format="csr")), np.tile(b, lead)
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight, dtype=np.float64)
        geom = ConvGeometry(
            in_shape=in_shape, out_shape=out_shape, kernel=w.shape[2:],
            stride=S.pair(node.stride, "stride", where), padding=S.conv_padding(node, in_shape[1:], where),
            dilation=S.pair(node.dilation, "dilation", where), groups=int(np.ravel(node.groups)[0]),
        )
        b = np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (out_shape[0],))
        return ConvOp(n_in, n_out, w.copy(), geom), np.repeat(b, out_shape[1] * out_shape[2])
    if isinstance(node, nir.Conv1d):
        w = np.asarray(node.weight, dtype=np.float64)[:, :, None, :]
        pad = S.conv_padding(node, in_shape[1:], where)[0]
        geom = ConvGeometry(
            in_shape=(in_shape[0], 1, in_shape[1]), out_shape=(out_shape[0], 1, out_shape[1]), kernel=w.shape[2:],
            stride=(1, int(np.ravel(node.stride)[0])), padding=(0, pad), dilation=(1, int(np.ravel(node.dilation)[0])),
            groups=int(np.ravel(node.groups)[0]),
        )
        b = np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (out_shape[0],))
        return SparseOp(n_in, n_out, conv_matrix(w, geom)), np.repeat(b, out_shape[1])
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k = S.pair(node.kernel_size, "kernel_size", where)
        c = in_shape[0]
        value = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k[0] * k[1])
        geom = ConvGeometry(
            in_shape=in_shape, out_shape=out_shape, kernel=k, stride=S.pair(node.stride, "stride", where),
            padding=S.pair(node.padding, "padding", where), dilation=(1, 1), groups=c,
        )
        return ConvOp(n_in, n_out, np.full((c, 1, *k), value), geom), zero
    raise UnsupportedNodeError(f"{type(node).__name__} cannot sit between two populations", where=where)


# -- the population view ----------------------------------------------------------------------------
@dataclass
class FloatPop:
    """A population: an Input (kind 'input') or a canonical neuron (kind 'neuron')."""

    name: str
    shape: tuple[int, ...]
    kind: str
    cuba: Cuba | None = None
    latency: int | None = None  # chip steps behind the float model (set by the timing pass)
    relay: bool = False  # inserted by canonicalize to read an Output that no neuron fed

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def neuron(self) -> Cuba:
        """The neuron parameters of a 'neuron' population (an input has none)."""
        if self.cuba is None:
            raise GraphError("an input population has no neuron parameters", where=f"population {self.name!r}",
                             hint="a bug: test kind == 'neuron' first")
        return self.cuba


@dataclass
class FloatProj:
    """A float projection. `delay` is the float-model delay in steps: an int, or an int array
    [n_out, n_in] per synapse. `nodes` are the NIR nodes it was composed from."""

    name: str
    src: str
    dst: str
    op: LinOp
    delay: Any = 0
    nodes: list[str] = field(default_factory=list)

    @property
    def min_delay(self) -> int:
        return int(np.min(self.delay)) if np.ndim(self.delay) else int(self.delay)

    @property
    def max_delay(self) -> int:
        return int(np.max(self.delay)) if np.ndim(self.delay) else int(self.delay)


@dataclass
class FloatNet:
    dt: float
    pops: dict[str, FloatPop]
    projs: list[FloatProj]
    biases: dict[str, dict[int, np.ndarray]]  # population -> {first step: flat vector}
    outputs: dict[str, tuple[str, OutputVar]]  # Output node -> (population, "s" | "v")
    time_shift: int | None = None
    extra_delay: dict[str, int] = field(default_factory=dict)  # steps the timing pass added to a loop (approximation)
    graph: Graph | None = None  # the canonical graph this view was lowered from (what `simulate` evaluates)

    def incoming(self, pop: str) -> list[FloatProj]:
        return [p for p in self.projs if p.dst == pop]

    def neuron_order(self) -> list[str]:
        """Neuron populations in an order where every zero-delay projection points forward."""
        from snnc.ir.order import CycleError, topological_order

        neurons = [n for n, p in self.pops.items() if p.kind == "neuron"]
        edges = [(p.src, p.dst) for p in self.projs if p.min_delay == 0 and self.pops[p.src].kind == "neuron"]
        try:
            return topological_order(neurons, edges)
        except CycleError:
            raise GraphError("a loop of populations without delay", hint="a bug: recurrent edges should break it") from None


def _population_output(pop: FloatPop) -> tuple[list["_Contribution"], list["_Bias"]]:
    """What a population sends on: its spikes, or a non-spiking neuron's voltage v = v' + v_leak,
    i.e. its state v' (sent by the chip as a graded relay) plus the constant v_leak, which becomes a
    bias of the receiver (present at rest too, as the reference's integrators emit v_leak at rest)."""
    c = [_Contribution(pop.name, IdentityOp(pop.size, pop.size), 0, [])]
    b: list[_Bias] = []
    if pop.kind == "neuron" and not pop.neuron.spiking:
        offset = np.broadcast_to(np.asarray(pop.neuron.offset, dtype=np.float64), pop.shape).ravel()
        if np.any(offset != 0):
            b.append(_Bias(offset.copy(), 0, True))
    return c, b


@dataclass
class _Contribution:
    src: str
    op: LinOp
    delay: Any  # int, ("col", vec) or ("row", vec)
    nodes: list[str]


@dataclass
class _Bias:
    vec: np.ndarray
    start: int
    in_rest: bool  # still present in the network's rest state (no Delay passed)


META_LATENCY = "snnc_latency"
META_TIME_SHIFT = "snnc_time_shift"
META_EXTRA_DELAY = "snnc_extra_delay"


def lower(graph: Graph) -> FloatNet:
    """The population view of a canonical graph (see module docstring)."""
    dt = graph_dt(graph, graph.source)
    pops: dict[str, FloatPop] = {}
    for name, node in graph.nodes.items():
        where = f"{graph.source}: node {name!r}"
        if isinstance(node, nir.Input):
            pops[name] = FloatPop(name, tuple(graph.out_shapes[name]), "input")
        elif isinstance(node, NEURONS):
            shape = tuple(graph.in_shapes[name])
            lat = (node.metadata or {}).get(META_LATENCY)
            pops[name] = FloatPop(
                name, shape, "neuron", read_canonical(node, dt, shape, where), None if lat is None else int(np.asarray(lat)),
                relay=bool((node.metadata or {}).get(META_RELAY, 0)),
            )
        elif isinstance(node, S.NEURON_TYPES + (nir.Threshold,)):
            raise UnsupportedNodeError(
                f"{type(node).__name__} is not in canonical form", where=where, hint="run the canonicalize pass first"
            )
    memo: dict[str, tuple[list[_Contribution], list[_Bias]]] = {}
    steps_of = lambda node: np.rint(np.asarray(node.delay, dtype=np.float64) / dt).astype(np.int64)  # noqa: E731

    def through_edge(contribs, biases, a, b):
        rec = (a, b) in graph.recurrent
        if rec:
            contribs = [_Contribution(c.src, c.op, _shift(c.delay, 1), c.nodes) for c in contribs]
            biases = [bz if bz.in_rest else _Bias(bz.vec, bz.start + 1, False) for bz in biases]
        return contribs, biases

    def visit(name: str, stack: tuple[str, ...]) -> tuple[list[_Contribution], list[_Bias]]:
        if name in memo:
            return memo[name]
        if name in stack:
            raise GraphError("a loop of linear nodes without a neuron", where=f"{graph.source}: node {name!r}")
        node = graph.nodes[name]
        where = f"{graph.source}: node {name!r}"
        contribs: list[_Contribution] = []
        biases: list[_Bias] = []
        for pred in graph.predecessors(name):
            if pred in pops:
                cs, bs = _population_output(pops[pred])
            else:
                cs, bs = visit(pred, stack + (name,))
            cs, bs = through_edge(cs, bs, pred, name)
            contribs.extend(cs)
            biases.extend(bs)
        if not isinstance(node, nir.NIRNode) or isinstance(node, NEURONS):
            raise GraphError("internal: visit reached a population", where=where)
        in_shape, out_shape = tuple(graph.in_shapes[name]), tuple(graph.out_shapes[name])
        if isinstance(node, nir.Delay):
            steps = steps_of(node)
            flat = np.broadcast_to(steps, in_shape).ravel()
            uniform = np.all(flat == flat[0])
            new = []
            for c in contribs:
                if uniform:
                    delay = _shift(c.delay, int(flat[0]))
                elif isinstance(c.op, IdentityOp) and not np.ndim(c.delay) and not isinstance(c.delay, tuple):
                    delay = ("col", flat + int(c.delay))
                else:
                    delay = ("row", _add_row(c.delay, flat, where))
                new.append(_Contribution(c.src, c.op, delay, c.nodes + [name]))
            contribs = new
            biases = [_Bias(bz.vec, bz.start + int(flat.max()), False) if not uniform else _Bias(bz.vec, bz.start + int(flat[0]), False) for bz in biases]
            if not uniform and biases:
                raise UnsupportedNodeError("a per-neuron Delay after a bias", where=where, hint="put the bias after the Delay")
        else:
            op, const = node_op(node, in_shape, out_shape, where)
            new = []
            for c in contribs:
                if isinstance(c.delay, tuple) and c.delay[0] == "row" and not isinstance(op, IdentityOp):
                    raise UnsupportedNodeError(
                        "per-neuron Delay followed by a linear map mixes delays per synapse in a way a "
                        "projection cannot store",
                        where=where,
                        hint="put per-neuron Delay nodes right after the source or right before the target neurons",
                    )
                new.append(_Contribution(c.src, compose(op, c.op), c.delay, c.nodes + [name]))
            contribs = new
            biases = [_Bias(op.apply(bz.vec), bz.start, bz.in_rest) for bz in biases]
            if np.any(const != 0):
                biases.append(_Bias(const, 0, True))
        memo[name] = (contribs, biases)
        return contribs, biases

    projs: list[FloatProj] = []
    biases_by_pop: dict[str, dict[int, np.ndarray]] = {}
    taken = set(pops)
    for dst, pop in pops.items():
        if pop.kind != "neuron":
            continue
        contribs: list[_Contribution] = []
        biases: list[_Bias] = []
        for pred in graph.predecessors(dst):
            if pred in pops:
                cs, bs = _population_output(pops[pred])
            else:
                cs, bs = visit(pred, (dst,))
            cs, bs = through_edge(cs, bs, pred, dst)
            contribs.extend(cs)
            biases.extend(bs)
        # A gain canonicalize could not fold into a single feeding node scales every input here.
        gain = np.broadcast_to(pop.neuron.gain, pop.shape).ravel().astype(np.float64)
        if not np.all(gain == 1.0):
            contribs = [_Contribution(c.src, _scale_rows(c.op, gain), c.delay, c.nodes) for c in contribs]
            biases = [_Bias(bz.vec * gain, bz.start, bz.in_rest) for bz in biases]
            pop.neuron.gain = np.ones(pop.shape)
        # Group by (source, delay) and sum.
        groups: dict[tuple, _Contribution] = {}
        for c in contribs:
            if c.op.n_out != pop.size:
                raise GraphError("internal: composed map does not match the population", where=dst)
            key = (c.src, _delay_key(c.delay))
            if key in groups:
                old = groups[key]
                groups[key] = _Contribution(c.src, add(old.op, c.op), c.delay, old.nodes + [n for n in c.nodes if n not in old.nodes])
            else:
                groups[key] = c
        bases = [c.nodes[-1] if c.nodes else f"{src}->{dst}" for (src, _), c in groups.items()]
        for ((src, _), c), base in zip(groups.items(), bases):
            if bases.count(base) > 1:
                base = f"{base}@{src}.d{_delay_name(c.delay)}"
            name, i = base, 1
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            projs.append(FloatProj(name, src, dst, c.op, _delay_value(c.delay, c.op), c.nodes))
        table: dict[int, np.ndarray] = {}
        for bz in biases:
            table[bz.start] = table.get(bz.start, 0) + bz.vec
        table = {k: v for k, v in table.items() if np.any(v != 0)}
        if table:
            biases_by_pop[dst] = table
    outputs: dict[str, tuple[str, OutputVar]] = {}
    for name in graph.outputs:
        preds = graph.predecessors(name)
        if len(preds) != 1 or preds[0] not in pops or pops[preds[0]].kind != "neuron":
            raise UnsupportedNodeError(
                "output is not read from a single neuron population",
                where=f"{graph.source}: node {name!r}",
                hint="run the canonicalize pass, which inserts a relay population",
            )
        if (preds[0], name) in graph.recurrent:
            raise GraphError("output behind a recurrent edge", where=f"{graph.source}: node {name!r}")
        pop = pops[preds[0]]
        outputs[name] = (preds[0], "s" if pop.neuron.spiking else "v")
    shift = graph.metadata.get(META_TIME_SHIFT)
    extra = {str(k): int(np.asarray(v)) for k, v in dict(graph.metadata.get(META_EXTRA_DELAY) or {}).items()}
    return FloatNet(dt, pops, projs, biases_by_pop, outputs, None if shift is None else int(np.asarray(shift)), extra, graph)


def _scale_rows(op: LinOp, gain: np.ndarray) -> LinOp:
    """diag(gain) o op, keeping a convolution when the gain is constant per output channel."""
    if isinstance(op, ConvOp):
        per = gain.reshape(op.geom.out_shape)
        if np.all(per == per[:, :1, :1]):
            return ConvOp(op.n_in, op.n_out, op.data * per[:, 0, 0][:, None, None, None], op.geom)
    if isinstance(op, DenseOp):
        return DenseOp(op.n_in, op.n_out, op.data * gain[:, None])
    return SparseOp(op.n_in, op.n_out, (sp.diags(gain) @ op.sparse()).tocsr())


def _shift(delay, k: int):
    if isinstance(delay, tuple):
        return (delay[0], delay[1] + k)
    return int(delay) + k


def _add_row(delay, flat, where):
    if isinstance(delay, tuple):
        if delay[0] == "row":
            return delay[1] + flat
        raise UnsupportedNodeError("per-neuron Delay nodes on both ends of a projection", where=where)
    return flat + int(delay)


def _delay_key(delay):
    if isinstance(delay, tuple):
        return (delay[0], tuple(int(x) for x in delay[1]))
    return int(delay)


def _delay_name(delay) -> str:
    return "var" if isinstance(delay, tuple) else str(int(delay))


def _delay_value(delay, op: LinOp):
    """Per-synapse delays as an [n_out, n_in] array (dense), or a scalar."""
    if not isinstance(delay, tuple):
        return int(delay)
    kind, vec = delay
    vec = np.asarray(vec, dtype=np.int64)
    if np.all(vec == vec[0]):
        return int(vec[0])
    if kind == "col":
        return np.broadcast_to(vec[None, :], (op.n_out, op.n_in)).copy()
    return np.broadcast_to(vec[:, None], (op.n_out, op.n_in)).copy()


# -- the float model's run on the canonical graph ----------------------------------------------------
@dataclass
class FloatRun:
    """What a float run recorded: every population's output [T, B, n] (spikes, or a non-spiking
    neuron's state v' = v - offset) and per-neuron ranges: max |i|, and max/min of v after
    integrating each step's input, before the reset (v' for a non-spiking neuron)."""

    outputs: dict[str, np.ndarray]
    i_absmax: dict[str, np.ndarray]  # per neuron, max |i| over time and batch
    v_max: dict[str, np.ndarray]
    v_min: dict[str, np.ndarray]
    params: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (alpha, beta) per population
    resets: dict[str, tuple[ResetMode, np.ndarray, np.ndarray]] = field(default_factory=dict)  # (mode, v_reset, thr) per spiking population


def simulate(net: FloatNet, inputs: dict[str, np.ndarray], ranges: bool = True) -> FloatRun:
    """The float model on the canonical graph `net` was lowered from; `inputs[name]` is [B, T, *shape].

    The one float evaluator (`snnc.ir.float_model`, which the reference backend runs), with a hook
    that keeps what calibration and the fidelity guard measure (`FloatRun`). Without `ranges`
    (the guard compares outputs only) the neurons' states are not read: the ranges stay empty."""
    if net.graph is None:
        raise GraphError("internal: this population view does not know the graph it was lowered from",
                         hint="make it with netlist.lower(graph)")
    first = next(iter(inputs.values()))
    batch, steps = int(first.shape[0]), int(first.shape[1])
    data = {n: inputs[n] for n in net.graph.inputs}
    hook = _Calibration(net, batch, steps, ranges)
    FloatModel(net.graph, net.dt).run(data, steps, [hook])
    params, resets = {}, {}
    for n in hook.neurons:
        c = net.pops[n].neuron
        params[n] = (c.alpha.ravel(), c.beta.ravel())
        if c.thr is not None:
            v_reset = np.broadcast_to(np.asarray(c.v_reset, dtype=np.float64), net.pops[n].shape).ravel()
            resets[n] = (c.reset_mode, v_reset, c.thr.ravel())
    return FloatRun(hook.outputs, hook.i_abs, hook.v_hi, hook.v_lo, params, resets)


class _Calibration:
    """The float model's hook for `simulate`: populations' outputs and ranges (see FloatRun)."""

    def __init__(self, net: FloatNet, batch: int, steps: int, ranges: bool = True):
        self.neurons = net.neuron_order()
        self.offset = {n: np.broadcast_to(np.asarray(net.pops[n].neuron.offset, np.float64), net.pops[n].shape).ravel()
                       for n in self.neurons if not net.pops[n].neuron.spiking}
        self.outputs = {n: np.zeros((steps, batch, p.size)) for n, p in net.pops.items()}
        ranged = self.neurons if ranges else []
        self.i_abs = {n: np.zeros(net.pops[n].size) for n in ranged}
        self.v_hi = {n: np.full(net.pops[n].size, -np.inf) for n in ranged}
        self.v_lo = {n: np.full(net.pops[n].size, np.inf) for n in ranged}
        self.watch: dict[str, tuple[str, ...]] = {n: () for n, p in net.pops.items() if p.kind == "input"}
        self.watch.update({n: (("i", "v") if n in self.offset else ("i", "v_in")) if ranges else () for n in self.neurons})

    def observe(self, name: str, t0: int, out: np.ndarray, state) -> None:
        k = out.shape[0]
        flat = out.reshape(k, out.shape[1], -1)
        offset = self.offset.get(name)  # a non-spiking neuron's (an input has none)
        self.outputs[name][t0 : t0 + k] = flat if offset is None else flat - offset
        if not state:  # an input, or a run without ranges
            return
        i = state["i"].reshape(k * out.shape[1], -1)
        v = (state["v_in"] if offset is None else state["v"]).reshape(k * out.shape[1], -1)
        if offset is not None:
            v = v - offset
        np.maximum(self.i_abs[name], np.abs(i).max(axis=0, initial=0.0), out=self.i_abs[name])
        np.maximum(self.v_hi[name], v.max(axis=0, initial=-np.inf), out=self.v_hi[name])
        np.minimum(self.v_lo[name], v.min(axis=0, initial=np.inf), out=self.v_lo[name])
