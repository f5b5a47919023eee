"""Build-time plan of the sim backend: what to compute for each population and projection.

The plan turns a `ChipGraph` into
* one `_Component` per strongly connected component of populations (topological order), with the
  neuron parameters of its members concatenated into per-neuron arrays;
* `_Link`s: one per (projection, delay value) from a source outside the component, holding the
  effective weights (Lava's clip + truncation) as a dense matrix, a CSC matrix, or a conv kernel
  plus its explicit matrix; `SimProgram` evaluates a link for a whole chunk of steps at once;
* recurrent groups: the same (projection, delay) blocks inside a recurrent component, as CSC
  arrays the numba `scan` kernel steps through one time step at a time;
* per source, a fanout matrix (nonzero synapses per source neuron per outgoing projection) for
  the synaptic-op counters.
"""
from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeGuard

import numpy as np
import scipy.sparse as sp

from snnc.ir import conv as ir_conv
from snnc.ir.chip import (KIND_PORTS, PROGRAMMABLE_KINDS, ChipGraph, ConvProjection, InputPopulation, Population, Projection,
                          SparseProjection)
from snnc.ir.bits import on_weight_grid
from snnc.ir.errors import BackendError, SnncError
from snnc.ir.fixed_point.resonator import RF_KINDS

from snnc.ir.fixed_point.units import bias_value, threshold_value

from . import kernels as K
from . import kernels_atrlif, kernels_prodneuron, kernels_refractory, kernels_rf
from . import kernels_conv, kernels_sdn

F32_EXACT = 2**24  # float32 adds integers exactly while every partial sum stays below this
F64_EXACT = 2**53
RESIDUAL_SHARE = 256  # int8 event weights when at most one weight in this many needs a residual


def conv_matrix(proj: ConvProjection) -> sp.csr_matrix:
    """The conv projection as an explicit [n_dst, n_src] int64 matrix (torch cross-correlation).

    Used for recurrent components, for the fanout counters and by tests; only taps that land on a
    real (non-padding) source position are stored, and zero weights are dropped (`snnc.ir.conv`).
    """
    return ir_conv.conv_matrix(np.asarray(proj.weights, np.int64), proj.conv)


def _axes(proj: ConvProjection) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per axis (y, x) of a conv: the input coordinate each (output, tap) reads and whether it is in bounds."""
    g = proj.conv
    return tuple(kernels_conv.axis_index(g.in_shape[a], g.out_shape[a], g.kernel[a - 1], g.stride[a - 1],  # type: ignore[return-value]
                                         g.padding[a - 1], g.dilation[a - 1]) for a in (1, 2))


def conv_l1(proj: ConvProjection) -> int:
    """`_row_l1` of a conv's matrix from its kernel: the largest sum of |w| over the in-bounds taps
    of one output neuron."""
    (_, vy), (_, vx) = _axes(proj)
    s = np.abs(np.asarray(proj.weights, np.int64)).sum(axis=1)  # [C_out, kh, kw]
    return int(_exact_product(vy, s, vx).max(initial=0))


def _exact_product(left: np.ndarray, middle: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left @ middle[c] @ right.T for every c, in int64: as float64 matrix products (BLAS), exact
    for these integer counts and weight sums (far below 2**53), where an int64 einsum has no fast path."""
    out = left.astype(np.float64) @ middle.astype(np.float64) @ right.astype(np.float64).T
    return np.rint(out).astype(np.int64)


def conv_fanout(proj: ConvProjection) -> np.ndarray:
    """`_fanout` of a conv's matrix from its kernel: per source neuron (C, H, W order), the taps of
    nonzero weight that land on an output neuron."""
    g = proj.conv
    (iy, vy), (ix, vx) = _axes(proj)
    w = np.asarray(proj.weights) != 0
    c_out, cin_g, kh, kw = w.shape
    nz = w.reshape(g.groups, c_out // g.groups, cin_g, kh, kw).sum(axis=1).reshape(-1, kh, kw).astype(np.int64)
    reads = []  # [k, n_in]: 1 where tap k of some output reads input coordinate i (at most one output does)
    for idx, valid, n_in in ((iy, vy, g.in_shape[1]), (ix, vx, g.in_shape[2])):
        r = np.zeros((idx.shape[1], n_in), np.int64)
        o, t = np.nonzero(valid)
        r[t, idx[o, t]] = 1
        reads.append(r)
    return _exact_product(reads[0].T, nz, reads[1].T).reshape(-1)


def _effective_matrix(proj: Projection):
    """Weights as the chip applies them: dense int64 ndarray or csr (int64, zeros dropped)."""
    if isinstance(proj, ConvProjection):
        return conv_matrix(proj)
    if isinstance(proj, SparseProjection):
        stored = proj.weights
        if stored.has_canonical_format and stored.data.all() and on_weight_grid(stored.data, proj.num_weight_bits):
            return stored  # the quantizer's weights are on the chip's grid already: no copy (the plan only reads it)
        w = proj.effective_weights()  # a new matrix: zeros dropped in place
        w.eliminate_zeros()
        return w
    w = proj.effective_weights()
    return np.asarray(w, np.int64)


def _is_sparse(w: object) -> TypeGuard[sp.spmatrix]:
    """sp.issparse, which the type checker can follow (scipy has no type information)."""
    return sp.issparse(w)


def _split_by_delay(proj: Projection, w) -> list[tuple[int, object]]:
    """[(delay, weights with only that delay's synapses)] for the synapses with nonzero weight."""
    if np.ndim(proj.delay) == 0:
        return [(int(proj.delay), w)]
    delays = np.asarray(proj.delay, np.int64)
    nonzero = np.asarray(w) != 0
    return [(int(d), np.where(delays == d, w, 0)) for d in np.unique(delays[nonzero])]


def _row_l1(w) -> int:
    """max_j sum_i |w_ji|: with messages of magnitude <= m, every partial sum is <= m * this."""
    if sp.issparse(w):
        w = w.tocsr()  # row sums of |stored entries| from the CSR arrays (scipy's abs().sum() builds two matrices)
        return _csr_row_l1(w.data, w.indptr)
    if w.size == 0:
        return 0
    return int(np.max(np.abs(w).sum(axis=1)))


def _csr_row_l1(data: np.ndarray, indptr: np.ndarray) -> int:
    total = np.concatenate(([0], np.cumsum(np.abs(np.asarray(data, np.int64)))))
    return int(np.max(total[indptr[1:]] - total[indptr[:-1]], initial=0))


def shifted_bound(x: Any, exp: int) -> Any:
    """A bound of |y << exp| (a right shift for exp < 0) from a bound x of |y|: a right shift
    floors, so a negative y can end one further from zero."""
    return x << exp if exp >= 0 else (x >> -exp) + 1


def _fanout(w) -> np.ndarray:
    """Nonzero synapses per source neuron (column counts)."""
    if sp.issparse(w):  # column counts of the nonzero sums, from the CSR arrays (as (w != 0).sum(axis=0))
        w = w.tocsr()
        if not w.has_canonical_format:
            w = w.copy()
            w.sum_duplicates()
        data = w.data
        return np.bincount(w.indices if data.all() else w.indices[data != 0], minlength=w.shape[1]).astype(np.int64, copy=False)
    return np.count_nonzero(w, axis=0).astype(np.int64, copy=False)


def _send_mode(proj: Projection, src: InputPopulation | Population, graded: bool) -> int:
    """How Lava's process for this projection turns its accumulation into the int32 it sends.

    Conv wraps to 24 bits. Dense (no delay), Sparse and DelaySparse compute a graded dot product
    in int32 when the messages are int32 (RingBuffer or LIF), so it wraps before the weight_exp
    shift; TernaryLIF sends int64, and DelayDense sums in int64.
    """
    if isinstance(proj, ConvProjection):
        return K.MODE_WRAP24
    ternary = isinstance(src, Population) and src.model == "ternary"
    int32_dot = isinstance(proj, SparseProjection) or (np.ndim(proj.delay) == 0 and int(proj.delay) == 0)
    if graded and int32_dot and not ternary:
        return K.MODE_WRAP32
    return K.MODE_PLAIN


@dataclass
class _Link:
    """One (projection, delay) evaluated for a whole chunk: src messages -> component input."""

    proj: str
    src: str
    kind: str  # dense | sparse | conv
    delay: int
    latency: int  # 1 (a synapse: one step), 0 (a direct input projection: the same step)
    n_off: int  # first neuron of the target inside its component
    n_dst: int
    shift: int
    mode: int
    graded: bool  # multiply by the payload (else any nonzero message is a spike of 1)
    abs_msg: bool  # binary projection from a ternary source: -1 counts as a spike
    l1: int
    dense: np.ndarray | None = None  # int64 [n_dst, n_src]
    csr: sp.csr_matrix | None = None
    conv: ConvProjection | None = None
    dense_macs: int = 0  # multiply-adds of one dense evaluation (conv)
    _cache: dict = field(default_factory=dict)

    def dense_t(self, dtype) -> np.ndarray:
        """The transposed weights [n_src, n_dst] in a float `dtype` for BLAS, contiguous (one row per source)."""
        key = ("dense_t", np.dtype(dtype).str)
        if key not in self._cache:
            self._cache[key] = np.ascontiguousarray(np.asarray(self.dense).T.astype(dtype))
        return self._cache[key]

    def event_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What `kernels.gather_dense` reads: the transposed weights [n_src, n_dst] as int8 when at
        most 1/RESIDUAL_SHARE of them fall outside its range (half the bytes of int16 to stream per
        event), else int16; and per source the residuals w - narrow(w), as CSR (ptr, col, value)."""
        if "events" not in self._cache:
            w_t = np.asarray(self.dense, np.int64).T
            lo, hi = int(w_t.min(initial=0)), int(w_t.max(initial=0))
            for dtype in (np.int8, np.int16):
                info = np.iinfo(dtype)
                if info.min <= lo and hi <= info.max:  # all inside: no residuals
                    ptr = np.zeros(w_t.shape[0] + 1, np.int64)
                    self._cache["events"] = (np.ascontiguousarray(w_t.astype(dtype)), ptr, np.zeros(0, np.int64), np.zeros(0, np.int64))
                    return self._cache["events"]
                outside = (w_t < info.min) | (w_t > info.max)
                if np.count_nonzero(outside) * RESIDUAL_SHARE <= w_t.size:
                    break
            narrow: np.ndarray = np.ascontiguousarray(np.clip(w_t, info.min, info.max).astype(dtype))
            src, dst = np.nonzero(outside)  # row-major: by source, then target (the CSR order)
            ptr = np.zeros(w_t.shape[0] + 1, np.int64)
            np.cumsum(np.bincount(src, minlength=w_t.shape[0]), out=ptr[1:])
            self._cache["events"] = (narrow, ptr, dst.astype(np.int64), (w_t - narrow)[src, dst].astype(np.int64))
        return self._cache["events"]

    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(colptr, rows, values) of the sparse weights, one column per source neuron."""
        if "csc" not in self._cache:
            m = sp.csc_matrix(self.csr, dtype=np.int64)
            m.sort_indices()
            self._cache["csc"] = (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.int64))
        return self._cache["csc"]

    def conv_kernel(self) -> tuple:
        """What the event-driven conv kernel reads (`kernels_conv.kernel_args`), made once."""
        if "conv_kernel" not in self._cache:
            assert self.conv is not None, "conv_kernel of a link that is no conv"
            self._cache["conv_kernel"] = kernels_conv.kernel_args(self.conv)
        return self._cache["conv_kernel"]

    def conv_weight(self, torch, dtype):
        key = ("conv", str(dtype))
        if key not in self._cache:
            self._cache[key] = torch.from_numpy(np.asarray(self.conv.weights, np.float64)).to(dtype)
        return self._cache[key]


def _linear_send(mode: int, shift: int) -> bool:
    """Whether what a link sends is additive in its weights modulo 2**32 (no 24-bit wrap, no right
    shift): then links that read the same messages can be summed into one matrix exactly."""
    return mode != K.MODE_WRAP24 and shift >= 0


SMALL_DENSE = 1 << 16  # weight matrices up to this many entries are summed as dense arrays


def _summed(parts: list[tuple[Any, int]], shape: tuple[int, int]) -> tuple[Any, int]:
    """(sum of w << (shift - s0), s0) over parts (w, shift >= 0), s0 the smallest shift: one exact
    int64 matrix that, sent with shift s0, gives what the parts give modulo 2**32 (a left shift and
    a wrap to 32 bits are linear modulo 2**32). A dense ndarray when small, when a part is dense or
    when the parts hold a quarter of the entries or more (`_store` keeps such a sum dense), else csr
    with zeros dropped; a single part is returned as it is."""
    s0 = min(shift for _, shift in parts)
    if len(parts) == 1:
        return parts[0][0], s0
    size = shape[0] * shape[1]
    stored = sum(w.nnz if _is_sparse(w) else size for w, _ in parts)
    if size <= SMALL_DENSE or stored >= 0.25 * size:
        total = np.zeros(shape, np.int64)
        for w, shift in parts:
            total += np.asarray(w.toarray() if _is_sparse(w) else w, np.int64) << (shift - s0)
        return total, s0
    csr = [(w.tocsr(), shift) for w, shift in parts]
    scaled = [w if shift == s0 else sp.csr_matrix((np.asarray(w.data, np.int64) << (shift - s0), w.indices, w.indptr), shape=shape)
              for w, shift in csr]
    total = sp.csr_matrix(functools.reduce(operator.add, scaled), dtype=np.int64)
    total.eliminate_zeros()
    return total, s0


def _store(link: _Link, w: Any) -> _Link:
    """Give the link its weights: csr when at most a quarter of them are nonzero, else dense."""
    nnz = w.nnz if _is_sparse(w) else np.count_nonzero(w)
    if nnz < 0.25 * w.shape[0] * w.shape[1]:
        link.csr = w.tocsr() if _is_sparse(w) else sp.csr_matrix(w)
    else:
        link.dense = np.asarray(w.toarray() if _is_sparse(w) else w, np.int64)
    link.l1 = _row_l1(w)
    return link


def _csc_arrays(w: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colptr, rows, values) int64 of a matrix's nonzero weights, rows ascending in each column."""
    if _is_sparse(w):
        m = sp.csc_matrix(w, dtype=np.int64)
        m.eliminate_zeros()
        m.sort_indices()
        return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.int64)
    w = np.asarray(w, np.int64)
    cols, rows = np.nonzero(w.T)  # column-major order: by column, then row
    colptr = np.zeros(w.shape[1] + 1, np.int64)
    np.cumsum(np.bincount(cols, minlength=w.shape[1]), out=colptr[1:])
    return colptr, rows.astype(np.int64), w[rows, cols]


def _merged_link(key: tuple, parts: list[tuple[str, Any, int, str]]) -> _Link:
    """The link of one sum: the quantizer's sign and exponent split (split_sign, exponent_groups)
    stores a layer as several projections, which read the same source, reach the same target
    neurons at the same delay and are sent the same way; their int32 contributions add modulo 2**32
    in any order, so one signed matrix (weights scaled by their shift over the smallest, `_summed`)
    gives every bit of the result at a fraction of the work. The per-projection activity counters
    do not depend on links (they use the fanout). `key`: what the parts share (`Plan._component`);
    `parts`: (projection, weights, shift, kind)."""
    src, n_off, n_dst, delay, latency, mode, graded, abs_msg = key[:8]
    total, shift = _summed([(w, s_) for _, w, s_, _ in parts], (n_dst, parts[0][1].shape[1]))
    link = _Link(proj="+".join(part[0] for part in parts), src=src, kind=parts[0][3],
                 delay=delay, latency=latency, n_off=n_off, n_dst=n_dst, shift=shift, mode=mode, graded=graded,
                 abs_msg=abs_msg, l1=0)
    return _store(link, total)


@dataclass
class _Component:
    """Populations stepped together: one (feed-forward) or a strongly connected set (recurrent)."""

    members: list[str]
    offsets: dict[str, int]
    sizes: dict[str, int]
    n: int
    recurrent: bool
    params: dict[str, np.ndarray]
    links: list[_Link]
    max_link_delay: int
    groups: dict[str, np.ndarray]  # recurrent CSC groups (empty arrays when feed-forward)
    hist_len: int
    outgoing: list[str]  # projections whose source is a member, in fanout-row order
    make_fanout: Callable[[], np.ndarray]  # -> [P, n] int64, made on first use (`fanout`)
    prog: dict | None = None  # kernel arguments (and "kind") when the single member is of a programmable kind
    sdn: dict | None = None  # kernels_sdn arguments when the (single) member is a sigma-delta population

    @functools.cached_property
    def fanout(self) -> np.ndarray:
        """Nonzero synapses per member neuron of each outgoing projection [P, n]: what the activity
        counters read (a run without them never makes it)."""
        return self.make_fanout()

    @property
    def acc_width(self) -> int:
        """Columns of the int32 input buffer: a two-port kind (product, rf, rf_iz) has 2n, else n."""
        return 2 * self.n if self.prog and self.prog["kind"] in KIND_PORTS else self.n


@dataclass
class _InputPlan:
    name: str
    shape: tuple[int, ...]
    n: int
    graded: bool
    limit: int  # largest allowed |value|
    outgoing: list[str]
    make_fanout: Callable[[], np.ndarray]  # -> [P, n], made on first use (`fanout`)

    @functools.cached_property
    def fanout(self) -> np.ndarray:
        return self.make_fanout()


def _population_params(pops: list[Population]) -> dict[str, np.ndarray]:
    """Concatenated per-neuron int64 arrays of the members (scalars broadcast), new and contiguous."""
    code = {"lif": K.MODEL_LIF, "lif_reset": K.MODEL_RESET, "ternary": K.MODEL_TERNARY, "relay": K.MODEL_RELAY}
    reset = {"zero": K.RESET_ZERO, "subtract": K.RESET_SUBTRACT, "none": K.RESET_NONE}

    def own(pop: Population) -> dict[str, Any]:  # each value a scalar or an array of the population's shape
        interval = int(pop.reset_interval) if pop.model == "lif_reset" else 1
        return {"du": pop.du, "dv": pop.dv, "vth_e": threshold_value(pop.vth), "bias": bias_value(pop.bias_mant, pop.bias_exp),
                "model": code[pop.model],
                "r_interval": interval, "r_offset": int(pop.reset_offset) % interval if pop.model == "lif_reset" else 0,
                "hi_e": threshold_value(int(pop.vth_hi)), "lo_e": threshold_value(int(pop.vth_lo)),
                "reset": reset[pop.reset_mode], "v_reset": pop.v_reset, "r_shift": int(pop.relay_shift)}

    def column(pop: Population, value: Any) -> np.ndarray:
        if isinstance(value, (int, np.integer)):
            return np.full(pop.size, value, np.int64)
        value = np.asarray(value, np.int64)
        return np.full(pop.size, value) if value.ndim == 0 else np.array(np.broadcast_to(value, pop.shape).reshape(-1))  # a copy

    values = [own(pop) for pop in pops]
    if len(pops) == 1:
        return {k: column(pops[0], v) for k, v in values[0].items()}
    return {k: np.concatenate([column(pop, vals[k]) for pop, vals in zip(pops, values)]) for k in values[0]}


def _empty_groups() -> dict[str, np.ndarray]:
    z = np.zeros(0, np.int64)
    return dict(
        src_lo=z, src_hi=z, dst_lo=z, dst_hi=z, colptr_off=z, delay=z, shift=z, mode=z, graded=z, l1=z,
        colptr=np.zeros(1, np.int64), rows=z, wvals=z,
    )


class Plan:
    """Everything `SimProgram.run` needs, computed once per build, for a graph that `check_supported`
    accepts (SimBackend.build asks it first; validating again here would only repeat it)."""

    def __init__(self, graph: ChipGraph):
        self.graph = graph
        self.where: dict[str, tuple[int, int]] = {}  # population -> (component index, offset)
        self.components: list[_Component] = []
        order = graph.population_order()
        for ci, members in enumerate(order):
            offset = 0
            for name in members:
                self.where[name] = (ci, offset)
                offset += graph.populations[name].size
        for ci, members in enumerate(order):
            self.components.append(self._component(ci, members, graph.is_recurrent(members)))
        self.inputs: dict[str, _InputPlan] = {}
        for inp in graph.inputs.values():
            out = graph.outgoing(inp.name)
            graded = inp.num_message_bits > 0
            self.inputs[inp.name] = _InputPlan(
                inp.name, tuple(inp.shape), inp.size, graded,
                (1 << int(inp.num_message_bits)) - 1 if graded else 1,
                [p.name for p in out], functools.partial(self._fanout_rows, out, {inp.name: 0}, {inp.name: inp.size}, inp.size),
            )

    # -- construction -----------------------------------------------------------------------------
    def matrix(self, name: str):
        """A projection's effective weight matrix, made on first use: a conv that only feeds a later
        component never needs its explicit matrix (its kernel is evaluated as a kernel)."""
        cache = self.__dict__.setdefault("_matrices", {})
        if name not in cache:
            cache[name] = _effective_matrix(self.graph.projections[name])
        return cache[name]

    def input_bound(self, name: str, peaks: Mapping[str, int]) -> int:
        """A bound of |a|, the int32 input sum population `name` takes at any step, when every
        source s sends messages of magnitude <= peaks[s]: per link and recurrent block into it
        (merged parts as their summed matrix, which gives a exactly while nothing wraps), its
        largest row sum of |W| times the source's peak, shifted by the block's exponent."""
        ci, off = self.where[name]
        comp = self.components[ci]
        # a link into a second port starts at off + size: only programmable kinds have one, and those
        # are never in a multi-member (recurrent) component, so n_off == off picks `name`'s own links
        parts = [(link.l1, link.src, link.shift) for link in comp.links if link.n_off == off]
        g, member_at = comp.groups, {o: m for m, o in comp.offsets.items()}
        parts += [(int(l1), member_at[int(lo)], int(shift))
                  for l1, lo, dst, shift in zip(g["l1"], g["src_lo"], g["dst_lo"], g["shift"]) if dst == off]
        return sum(shifted_bound(l1 * int(peaks[src]), shift) for l1, src, shift in parts)

    def fanout(self, proj: Projection) -> np.ndarray:
        """Nonzero synapses per source neuron of a projection (a conv's from its kernel)."""
        return conv_fanout(proj) if isinstance(proj, ConvProjection) else _fanout(self.matrix(proj.name))

    def _fanout_rows(self, outgoing: list[Projection], offsets: dict[str, int], sizes: dict[str, int], n: int) -> np.ndarray:
        """[P, n]: row p the fanout of projection outgoing[p] at its source's columns (a direct
        projection, which has no synapses, none)."""
        fan = np.zeros((len(outgoing), n), np.int64)
        for p, proj in enumerate(outgoing):
            if not proj.direct:
                off = offsets[proj.src]
                fan[p, off : off + sizes[proj.src]] = self.fanout(proj)
        return fan

    def _component(self, ci: int, members: list[str], recurrent: bool) -> _Component:
        graph = self.graph
        pops = [graph.populations[m] for m in members]
        offsets = {m: self.where[m][1] for m in members}
        sizes = {m: graph.populations[m].size for m in members}
        n = sum(sizes.values())
        links: list[_Link] = []
        # (source, target slice, delay, latency, send mode, graded, abs) -> [(projection, weights, shift, kind)]:
        # the parts of one sum (`_merged_link`); a part that is not linear in its weights stays alone
        sums: dict[tuple, list[tuple[str, Any, int, str]]] = {}
        internal: list[tuple[Projection, int, object]] = []
        for name in members:
            second = KIND_PORTS.get(graph.populations[name].model, ())[1:]
            for proj in graph.incoming(name):
                if proj.src in offsets:  # inside the component: a recurrent block (`_groups`)
                    blocks = [(0, self.matrix(proj.name))] if isinstance(proj, ConvProjection) else _split_by_delay(proj, self.matrix(proj.name))
                    internal += [(proj, delay, wd) for delay, wd in blocks]
                    continue
                src = graph.source(proj.src)
                graded = proj.num_message_bits > 0
                n_off = offsets[name] + (sizes[name] if proj.port in second else 0)  # a second port: columns [n, 2n)
                mode, latency = _send_mode(proj, src, graded), 0 if proj.direct else 1
                abs_msg = (not graded) and isinstance(src, Population) and src.model == "ternary"
                if isinstance(proj, ConvProjection):  # no delays; evaluated as a kernel, not as a matrix
                    g = proj.conv
                    links.append(_Link(
                        proj=proj.name, src=proj.src, kind=proj.kind, delay=0, latency=latency, n_off=n_off, n_dst=sizes[name],
                        shift=0, mode=mode, graded=graded, abs_msg=abs_msg, l1=conv_l1(proj), conv=proj,
                        dense_macs=int(np.prod(g.out_shape)) * (g.in_shape[0] // g.groups) * int(np.prod(g.kernel)),
                    ))
                    continue
                shift = int(proj.weight_exp)
                for delay, wd in _split_by_delay(proj, self.matrix(proj.name)):
                    key = (proj.src, n_off, sizes[name], delay, latency, mode, graded, abs_msg)
                    part = (proj.name, wd, shift, proj.kind)
                    sums.setdefault(key if _linear_send(mode, shift) else (*key, proj.name), []).append(part)
        merged = links + [_merged_link(key, parts) for key, parts in sums.items()]
        groups = self._groups(internal, offsets) if internal else _empty_groups()
        outgoing = [p for m in members for p in graph.outgoing(m)]
        sdn = kernels_sdn.population_params(pops[0]) if pops[0].sigma_delta else None
        prog = _programmable_params(pops[0])
        return _Component(
            members=list(members), offsets=offsets, sizes=sizes, n=n, recurrent=recurrent,
            params={} if sdn or prog else _population_params(pops), links=merged, sdn=sdn, prog=prog,
            max_link_delay=max((lk.delay for lk in merged), default=0),
            groups=groups,
            hist_len=(max(int(d) for _, d, _ in internal) + 1) if internal else 1,
            outgoing=[p.name for p in outgoing], make_fanout=functools.partial(self._fanout_rows, outgoing, offsets, sizes, n),
        )

    def _groups(self, internal, offsets) -> dict[str, np.ndarray]:
        """Recurrent (projection, delay) blocks as CSC arrays over the component's neuron index."""
        graph = self.graph
        g: dict[str, list] = {k: [] for k in ("src_lo", "src_hi", "dst_lo", "dst_hi", "colptr_off", "delay", "shift", "mode", "graded", "l1")}
        colptr = [np.zeros(1, np.int64)]
        rows, wvals = [], []
        n_cols = 0
        nnz = 0
        # key -> [(projection, delay, send mode, graded, shift, weights)]
        blocks: dict[tuple, list[tuple[Projection, int, int, bool, int, object]]] = {}
        for i, (proj, delay, w) in enumerate(internal):
            graded = proj.num_message_bits > 0
            mode = _send_mode(proj, graph.populations[proj.src], graded)
            shift = 0 if isinstance(proj, ConvProjection) else int(proj.weight_exp)
            # blocks of one sum (a sign or exponent split) become one signed block, as `_merged_link` does
            key = (proj.src, proj.dst, delay, mode, graded) if _linear_send(mode, shift) else ("alone", i)
            blocks.setdefault(key, []).append((proj, delay, mode, graded, shift, w))
        for block in blocks.values():
            proj, delay, mode, graded = block[0][:4]
            src = graph.populations[proj.src]
            total, shift = _summed([(w, s_) for *_, s_, w in block], (graph.populations[proj.dst].size, src.size))
            colptr_b, rows_b, wvals_b = _csc_arrays(total)
            s_off, d_off = offsets[proj.src], offsets[proj.dst]
            g["src_lo"].append(s_off)
            g["src_hi"].append(s_off + src.size)
            g["dst_lo"].append(d_off)
            g["dst_hi"].append(d_off + graph.populations[proj.dst].size)
            g["colptr_off"].append(n_cols)
            g["delay"].append(delay)
            g["mode"].append(mode)
            g["shift"].append(shift)
            g["graded"].append(int(graded))
            g["l1"].append(_row_l1(total))
            colptr.append(colptr_b[1:] + nnz)
            rows.append(rows_b + d_off)
            wvals.append(wvals_b)
            n_cols += src.size
            nnz += rows_b.size
        out = {k: np.asarray(v, np.int64) for k, v in g.items()}
        out["colptr"] = np.concatenate(colptr).astype(np.int64)
        out["rows"] = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
        out["wvals"] = np.concatenate(wvals).astype(np.int64) if wvals else np.zeros(0, np.int64)
        return out


def _programmable_params(pop: Population) -> dict | None:
    """Arguments of the kernel of a programmable population (None for the CUBA kinds)."""
    if pop.model == "product":
        return {"kind": "product", **kernels_prodneuron.population_params(pop)}
    if pop.model == "atrlif":
        return {"kind": "atrlif", **kernels_atrlif.population_params(pop)}
    if pop.model == "lif_refractory":
        return {"kind": "lif_refractory", **kernels_refractory.population_params(pop)}
    if pop.model in RF_KINDS:
        return {"kind": "rf", **kernels_rf.population_params(pop)}
    return None


def check_supported(graph) -> list[str]:
    """Reasons the sim backend cannot run `graph` (empty when it can)."""
    if not isinstance(graph, ChipGraph):
        return [f"the sim backend runs chip-level graphs (snnc.ir.chip.ChipGraph), got {type(graph).__name__}"]
    problems = []
    try:
        graph.validate()
    except SnncError as exc:  # validate names the node, the quantity and the limit
        problems.append(str(exc))
    if not graph.populations:
        problems.append("the graph has no populations to simulate")
    for members in graph.population_order() if not problems else []:
        prog = [m for m in members if graph.populations[m].model in PROGRAMMABLE_KINDS]
        if prog and graph.is_recurrent(members):
            problems.append(f"{'/'.join(PROGRAMMABLE_KINDS)} population(s) {prog} in a recurrent loop: the sim steps these kinds "
                            "feed-forward only (run the network on the lava backend)")
    for members in graph.population_order() if not problems else []:
        sdn = [m for m in members if graph.populations[m].sigma_delta]
        if sdn and graph.is_recurrent(members):
            problems.append(f"sigma-delta population(s) {sdn} in a recurrent loop: the sim steps sigma-delta "
                            "populations feed-forward only (run the network on the lava backend)")
    return problems


def chunk_steps(plan: Plan, batch: int, steps: int, budget_bytes: int, max_chunk: int) -> int:
    """Time steps per chunk so that the per-chunk buffers stay within `budget_bytes`."""
    per_step = 0
    for inp in plan.inputs.values():
        per_step += 4 * inp.n
    widest_link = 0
    for comp in plan.components:
        per_step += comp.n * (4 + 4 + 8)  # acc, spikes, u/v when probed (upper bound)
        for link in comp.links:
            widest_link = max(widest_link, link.n_dst)
            if link.conv is not None:  # a conv link
                g = link.conv.conv
                # torch's im2col columns for one image: C_in/groups * kh * kw * H' * W' floats
                widest_link = max(widest_link, (g.in_shape[0] // g.groups) * math.prod(g.kernel) * g.out_shape[1] * g.out_shape[2] // 8)
    per_step += 8 * widest_link
    per_step *= max(batch, 1)
    return int(max(1, min(steps, max_chunk, budget_bytes // max(per_step, 1))))


def missing_probe(plan: Plan, name: str) -> BackendError:
    valid = sorted([*plan.graph.populations, *(f"{p}/{v}" for p in plan.graph.populations for v in "suv"), *plan.graph.inputs])
    return BackendError("unknown probe", where=f"probe {name!r}", expected=f"one of {valid[:12]}{' ...' if len(valid) > 12 else ''}", hint="probe a population as 'name', 'name/s', 'name/u' or 'name/v', or an input by its name")
