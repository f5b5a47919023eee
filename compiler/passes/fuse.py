"""Fuse: collapse chains of linear nodes between two populations into single nodes.

Why: on the chip, every linear stage between two neuron layers must become ONE projection (a
population only receives synaptic input; there is nowhere to hold an intermediate value without
a relay population, which costs neurons and a step of latency). Each rewrite here is exact; it is
additionally checked numerically on random inputs before it is applied, so a pattern whose
preconditions were misjudged is skipped rather than silently changing the network.

Rewrites (X -> Y where X feeds only Y, Y is fed only by X, and the edge is not recurrent):
  Affine o Affine           -> Affine (W2 W1, W2 b1 + b2)
  Scale  o Affine / Affine o Scale / Scale o Scale -> Affine / Scale (batch-norm-like scales)
  Conv2d o per-channel Scale, per-input-channel Scale o Conv2d -> Conv2d
  SumPool2d/AvgPool2d -> Conv2d, non-overlapping pool (stride == kernel, no padding, size a
                           multiple of the kernel) -> one Conv2d with an upsampled kernel,
                           stride and padding multiplied by the pool kernel
  pool / Conv2d / Scale -> Flatten -> Affine  -> Flatten -> Affine (W M): the map folds into the
                           dense weights; the Flatten stays as a free reshape (the chip IR indexes
                           neurons in C order, so the lowering drops it)
  Flatten o Flatten         -> Flatten
and parallel Affine (or equal-geometry Conv2d) nodes with the same source and target and the same
recurrence are summed into one ("several projections into one population, sharing a source").
Whatever stays a chain (e.g. an overlapping pool before a conv) is composed into one sparse
projection by the lowering in `quantize`, also exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import nir
import numpy as np

from snnc.ir import shapes as S
from snnc.ir.graph import Graph

from .base import Pass, PassResult
from .canonicalize import contract
from .netlist import node_op

FUSABLE = (nir.Affine, nir.Linear, nir.Scale, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten)
META_FUSED = "snnc_fused"


@dataclass(frozen=True)
class Fuse(Pass):
    """Exact fusion of linear chains (see module docstring). `verify`: check each rewrite numerically."""

    verify: bool = True
    merge_parallel: bool = True
    max_dense: int = 4_000_000  # do not create an Affine with more weights than this

    name: ClassVar[str] = "fuse"

    def run(self, graph: Graph) -> PassResult:
        self.check_level(graph)
        g = graph.copy()
        report = {"fused": [], "merged_parallel": [], "skipped": [], "nodes_before": len(g.nodes)}
        changed = True
        while changed:
            changed = False
            for a, b in list(g.edges):
                if a not in g.nodes or b not in g.nodes or (a, b) in g.recurrent:
                    continue
                if not (isinstance(g.nodes[a], FUSABLE) and isinstance(g.nodes[b], FUSABLE)):
                    continue
                if g.successors(a) != [b] or g.predecessors(b) != [a]:
                    continue
                if self._fuse_pair(g, a, b, report):
                    g.validate()
                    changed = True
                    break
            if not changed and self.merge_parallel:
                changed = self._merge_parallel(g, report)
        report["nodes_after"] = len(g.nodes)
        g.validate()
        return PassResult(g, report)

    # -- pairs ----------------------------------------------------------------------------------
    def _fuse_pair(self, g: Graph, a: str, b: str, report: dict) -> bool:
        x, y = g.nodes[a], g.nodes[b]
        in_shape = tuple(g.in_shapes[a])
        new = None  # (node replacing a or None to drop a, node replacing b)
        rule = ""
        if isinstance(y, nir.Flatten):
            nxt = g.successors(b)
            if isinstance(x, nir.Flatten):
                new, rule = (None, nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)), "flatten o flatten"
                if len(g.out_shapes[b]) != 1:
                    return False
            elif len(nxt) == 1 and g.predecessors(nxt[0]) == [b] and isinstance(g.nodes[nxt[0]], (nir.Affine, nir.Linear)) \
                    and (b, nxt[0]) not in g.recurrent and len(g.out_shapes[b]) == 1:
                return self._fold_into_affine(g, a, b, nxt[0], report)
            return False
        if isinstance(x, (nir.Affine, nir.Linear)) and isinstance(y, (nir.Affine, nir.Linear)) and len(in_shape) == 1:
            w1, b1 = _wb(x)
            w2, b2 = _wb(y)
            if w2.shape[0] * w1.shape[1] > self.max_dense:
                return self._skip(report, a, b, "result too large for a dense matrix")
            new, rule = (None, nir.Affine(weight=w2 @ w1, bias=w2 @ b1 + b2)), "affine o affine"
        elif isinstance(x, nir.Scale) and isinstance(y, (nir.Affine, nir.Linear)) and len(in_shape) == 1:
            w, bias = _wb(y)
            s = np.broadcast_to(np.asarray(x.scale, dtype=np.float64), in_shape)
            new, rule = (None, nir.Affine(weight=w * s[None, :], bias=bias)), "scale o affine"
        elif isinstance(x, (nir.Affine, nir.Linear)) and isinstance(y, nir.Scale) and len(in_shape) == 1:
            w, bias = _wb(x)
            s = np.broadcast_to(np.asarray(y.scale, dtype=np.float64), (w.shape[0],))
            new, rule = (None, nir.Affine(weight=w * s[:, None], bias=bias * s)), "affine o scale"
        elif isinstance(x, nir.Scale) and isinstance(y, nir.Scale):
            s = np.broadcast_to(np.asarray(x.scale, dtype=np.float64), in_shape) * np.broadcast_to(np.asarray(y.scale, dtype=np.float64), in_shape)
            new, rule = (None, nir.Scale(scale=s)), "scale o scale"
        elif isinstance(x, nir.Conv2d) and isinstance(y, nir.Scale):
            s = np.broadcast_to(np.asarray(y.scale, dtype=np.float64), g.out_shapes[a])
            if not np.all(s == s[:, :1, :1]):
                return self._skip(report, a, b, "scale is not constant per channel")
            ch = s[:, 0, 0]
            new, rule = (None, _conv_like(x, weight=np.asarray(x.weight, dtype=np.float64) * ch[:, None, None, None],
                                         bias=np.broadcast_to(np.asarray(x.bias, dtype=np.float64), ch.shape) * ch)), "conv o scale"
        elif isinstance(x, nir.Scale) and isinstance(y, nir.Conv2d) and len(in_shape) == 3:
            s = np.broadcast_to(np.asarray(x.scale, dtype=np.float64), in_shape)
            groups = int(np.ravel(y.groups)[0])
            if not np.all(s == s[:, :1, :1]) or groups != 1:
                return self._skip(report, a, b, "scale is not constant per input channel (or grouped conv)")
            ch = s[:, 0, 0]
            new, rule = (None, _conv_like(y, weight=np.asarray(y.weight, dtype=np.float64) * ch[None, :, None, None])), "scale o conv"
        elif isinstance(x, (nir.SumPool2d, nir.AvgPool2d)) and isinstance(y, nir.Conv2d):
            conv = _pool_into_conv(x, y, in_shape, tuple(g.in_shapes[b]), f"{g.source}: node {a!r}")
            if conv is None:
                return self._skip(report, a, b, "overlapping/padded pool or size not a multiple of the kernel")
            new, rule = (None, conv), "pool o conv"
        else:
            return False
        return self._apply(g, a, b, new, rule, report)

    def _fold_into_affine(self, g: Graph, a: str, flat: str, aff: str, report: dict) -> bool:
        """X -> Flatten -> Affine  =>  Flatten -> Affine(W @ M_X)."""
        x = g.nodes[a]
        if not isinstance(x, (nir.SumPool2d, nir.AvgPool2d, nir.Conv2d, nir.Scale, nir.Flatten)):
            return False
        in_shape = tuple(g.in_shapes[a])
        w, bias = _wb(g.nodes[aff])
        n_in = math.prod(in_shape)
        if w.shape[0] * n_in > self.max_dense:
            return self._skip(report, a, aff, "result too large for a dense matrix")
        op, const = node_op(x, in_shape, tuple(g.out_shapes[a]), f"{g.source}: node {a!r}")
        m = op.matrix()
        wm = np.asarray((m.T @ w.T).T) if hasattr(m, "tocsr") else w @ m
        new_aff = nir.Affine(weight=np.asarray(wm, dtype=np.float64), bias=bias + w @ const)
        new_flat = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
        before = self._chain_fn(g, [a, flat, aff])
        names = _fused_names(g, [a, flat, aff])
        # a becomes the Flatten, the old Flatten disappears, aff gets the new weights.
        g.nodes[a] = new_flat
        g.nodes[aff] = new_aff
        contract(g, flat)
        new_aff.metadata = {META_FUSED: names}
        g.validate()
        if self.verify and not self._same(before, self._chain_fn(g, [a, aff]), n_in):
            raise AssertionError(f"fusion of {a} -> {flat} -> {aff} changed the map")
        report["fused"].append({"nodes": names, "into": aff, "rule": f"{type(x).__name__.lower()} -> flatten -> affine"})
        return True

    def _apply(self, g: Graph, a: str, b: str, new, rule: str, report: dict) -> bool:
        in_shape = tuple(g.in_shapes[a])
        before = self._chain_fn(g, [a, b])
        trial = g.copy()
        names = _fused_names(trial, [a, b])
        repl_a, repl_b = new
        repl_b.metadata = {META_FUSED: names}
        trial.nodes[b] = repl_b
        if repl_a is None:
            contract(trial, a)
        else:
            trial.nodes[a] = repl_a
        try:
            trial.validate()
        except Exception:  # noqa: BLE001 - a rewrite whose shapes do not fit is simply not applied
            return self._skip(report, a, b, "shapes do not fit after the rewrite")
        chain = [b] if repl_a is None else [a, b]
        if self.verify and not self._same(before, self._chain_fn(trial, chain), math.prod(in_shape)):
            return self._skip(report, a, b, "numerical check failed")
        g.nodes, g.edges = trial.nodes, trial.edges
        g.validate()
        report["fused"].append({"nodes": names, "into": b, "rule": rule})
        return True

    def _skip(self, report: dict, a: str, b: str, why: str) -> bool:
        entry = {"nodes": [a, b], "why": why}
        if entry not in report["skipped"]:
            report["skipped"].append(entry)
        return False

    @staticmethod
    def _chain_fn(g: Graph, chain: list[str]):
        ops = [node_op(g.nodes[n], tuple(g.in_shapes[n]), tuple(g.out_shapes[n]), n) for n in chain]

        def fn(vec):
            for op, const in ops:
                vec = op.apply(vec) + const
            return vec

        return fn

    @staticmethod
    def _same(f1, f2, n: int) -> bool:
        rng = np.random.default_rng(0)
        for vec in (np.zeros(n), rng.standard_normal(n), (rng.random(n) < 0.3).astype(float)):
            y1, y2 = f1(vec), f2(vec)
            if y1.shape != y2.shape or not np.allclose(y1, y2, rtol=1e-9, atol=1e-9 * (1 + np.abs(y1).max(initial=0))):
                return False
        return True

    # -- parallel projections -------------------------------------------------------------------
    def _merge_parallel(self, g: Graph, report: dict) -> bool:
        seen: dict[tuple, str] = {}
        for name, node in list(g.nodes.items()):
            if not isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d)):
                continue
            preds, succs = g.predecessors(name), g.successors(name)
            if len(preds) != 1 or len(succs) != 1:
                continue
            conv = _conv_signature(node, g.in_shapes[name]) if type(node) is nir.Conv2d else None  # same geometry only
            key = (preds[0], succs[0], (preds[0], name) in g.recurrent, (name, succs[0]) in g.recurrent, conv)
            other = seen.get(key)
            if other is None:
                seen[key] = name
                continue
            keep = g.nodes[other]
            if isinstance(node, nir.Conv2d):
                merged = _conv_like(keep, weight=np.asarray(keep.weight, dtype=np.float64) + np.asarray(node.weight, dtype=np.float64),
                                    bias=np.asarray(keep.bias, dtype=np.float64) + np.asarray(node.bias, dtype=np.float64))
            else:
                (w1, b1), (w2, b2) = _wb(keep), _wb(node)
                if w1.shape != w2.shape:
                    continue
                merged = nir.Affine(weight=w1 + w2, bias=b1 + b2)
            merged.metadata = {META_FUSED: _fused_names(g, [other, name])}
            g.nodes[other] = merged
            g.remove_node(name)
            g.validate()
            report["merged_parallel"].append({"nodes": [other, name], "into": other})
            return True
        return False


def _wb(node) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(node.weight, dtype=np.float64)
    if isinstance(node, nir.Linear):
        return w, np.zeros(w.shape[0])
    return w, np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (w.shape[0],)).copy()


def _conv_like(conv: nir.Conv2d, **changes) -> nir.Conv2d:
    fields = dict(
        input_shape=conv.input_shape, weight=conv.weight, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=conv.bias,
    )
    fields.update(changes)
    return nir.Conv2d(**fields)


def _conv_signature(conv: nir.Conv2d, in_shape) -> tuple:
    w = np.asarray(conv.weight)
    where = "conv"
    return (
        w.shape, S.pair(conv.stride, "stride", where), S.conv_padding(conv, tuple(in_shape)[1:], where),
        S.pair(conv.dilation, "dilation", where), int(np.ravel(conv.groups)[0]),
    )


def _pool_into_conv(pool, conv: nir.Conv2d, in_shape, mid_shape, where) -> nir.Conv2d | None:
    """A non-overlapping pool followed by a conv, as one conv on the pool's input (or None)."""
    k = S.pair(pool.kernel_size, "kernel_size", where)
    s = S.pair(pool.stride, "stride", where)
    p = S.pair(pool.padding, "padding", where)
    if s != k or p != (0, 0) or in_shape[1] % k[0] or in_shape[2] % k[1]:
        return None
    w = np.asarray(conv.weight, dtype=np.float64)
    cd = S.pair(conv.dilation, "dilation", where)
    cs = S.pair(conv.stride, "stride", where)
    cp = S.conv_padding(conv, tuple(mid_shape[1:]), where)
    c_out, c_in, kh, kw = w.shape
    big = np.zeros((c_out, c_in, (kh - 1) * cd[0] * k[0] + k[0], (kw - 1) * cd[1] * k[1] + k[1]))
    scale = 1.0 if isinstance(pool, nir.SumPool2d) else 1.0 / (k[0] * k[1])
    for a in range(kh):
        for b in range(kw):
            ya, xb = a * cd[0] * k[0], b * cd[1] * k[1]
            big[:, :, ya : ya + k[0], xb : xb + k[1]] = w[:, :, a : a + 1, b : b + 1] * scale
    return nir.Conv2d(
        input_shape=np.array(in_shape[1:]), weight=big, stride=np.array([cs[0] * k[0], cs[1] * k[1]]),
        padding=np.array([cp[0] * k[0], cp[1] * k[1]]), dilation=np.array([1, 1]), groups=conv.groups, bias=conv.bias,
    )


def _fused_names(g: Graph, names: list[str]) -> str:
    out = []
    for n in names:
        prev = (getattr(g.nodes[n], "metadata", None) or {}).get(META_FUSED)
        out.extend(str(prev).split(",") if prev is not None else [n])
    return ",".join(dict.fromkeys(out))
