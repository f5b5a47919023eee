"""Shape inference for NIR nodes (without batch or time dimensions).

NIR files often leave shapes implicit (scalar neuron parameters, Conv2d without `input_shape`),
so shapes are propagated through the graph: each rule maps a node's input shape to its output
shape, and nodes whose parameters fix their own shape say so. `Graph` runs these rules to a fixed
point and reports the first edge where two shapes disagree.
"""
from __future__ import annotations

import math

import nir
import numpy as np

from .errors import ShapeError, UnsupportedNodeError

Shape = tuple[int, ...]

NEURON_TYPES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.I, nir.CubaLI)
SHAPE_PRESERVING = NEURON_TYPES + (nir.Scale, nir.Delay, nir.Threshold, nir.Output)
SUPPORTED_TYPES = SHAPE_PRESERVING + (
    nir.Input,
    nir.Affine,
    nir.Linear,
    nir.Conv1d,
    nir.Conv2d,
    nir.SumPool2d,
    nir.AvgPool2d,
    nir.Flatten,
)


def pair(value, name: str, where: str) -> tuple[int, int]:
    """Normalize an int / 1- or 2-element sequence to a pair of ints."""
    arr = np.atleast_1d(np.asarray(value)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2:
        raise ShapeError(f"{name} must be an int or a pair", where=where, got=value)
    return int(arr[0]), int(arr[1])


# Every per-neuron parameter of a node type: any of them being an array fixes the node's shape.
PARAMS = {
    nir.LIF: ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    nir.IF: ("r", "v_threshold", "v_reset"),
    nir.LI: ("tau", "r", "v_leak"),
    nir.I: ("r",),
    nir.CubaLI: ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    nir.Scale: ("scale",),
    nir.Delay: ("delay",),
    nir.Threshold: ("threshold",),
}


def own_shape(node: nir.NIRNode) -> Shape | None:
    """The shape a node's own parameters imply, or None when they are all scalars.

    A parameter of shape (1,) counts as a scalar (it broadcasts).
    """
    if isinstance(node, nir.Input):
        return tuple(int(d) for d in np.atleast_1d(node.input_type["input"]))
    if isinstance(node, (nir.Affine, nir.Linear)):
        return None
    for param in PARAMS.get(type(node), ()):
        value = getattr(node, param, None)
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.ndim > 0 and not (arr.ndim == 1 and arr.size == 1):
            return tuple(int(d) for d in arr.shape)
    return None


def input_shape_hint(node: nir.NIRNode) -> Shape | None:
    """The input shape a node declares for itself (Affine/Linear weights, Conv input_shape)."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        return (int(np.asarray(node.weight).shape[-1]),)
    if isinstance(node, nir.Output):
        t = node.output_type.get("output")
        if t is not None and np.size(t):
            return tuple(int(d) for d in np.atleast_1d(t))
    return None


def _conv_out(length: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (length + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def conv_padding_pairs(node, in_hw: Shape, where: str) -> tuple[tuple[int, int], ...]:
    """(before, after) padding per spatial dimension of a Conv1d/Conv2d.

    'same' follows torch: total padding d*(k-1), the extra element (odd total) goes after;
    torch allows 'same' only with stride 1, and so does snnc (NIR leaves stride > 1 undefined).
    """
    dims = len(in_hw)
    kernel = np.asarray(node.weight).shape[2:]
    dil = _dims(node.dilation, "dilation", dims, where)
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return ((0, 0),) * dims
        if node.padding == "same":
            if any(s != 1 for s in _dims(node.stride, "stride", dims, where)):
                raise UnsupportedNodeError(
                    "'same' padding with a stride other than 1 is not defined",
                    where=where,
                    got=f"stride {node.stride}",
                    hint="use explicit padding (torch rejects padding='same' with stride > 1 too)",
                )
            pads = []
            for k, d in zip(kernel, dil):
                total = d * (int(k) - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ShapeError("padding must be an int, a pair, 'same' or 'valid'", where=where, got=node.padding)
    return tuple((p, p) for p in _dims(node.padding, "padding", dims, where))


def conv_padding(node, in_hw: Shape, where: str) -> tuple[int, ...]:
    """Explicit symmetric per-dimension padding of a Conv1d/Conv2d, resolving 'same' and 'valid'.

    Raises for 'same' with an even effective kernel (needs asymmetric padding: see
    `conv_padding_pairs`).
    """
    pairs = conv_padding_pairs(node, in_hw, where)
    if any(a != b for a, b in pairs):
        raise UnsupportedNodeError(
            "'same' padding with an even effective kernel needs asymmetric padding",
            where=where,
            hint="use an odd kernel or explicit padding, or read conv_padding_pairs()",
        )
    return tuple(a for a, _ in pairs)


def _dims(value, name: str, dims: int, where: str) -> tuple[int, ...]:
    """An int or per-dimension sequence as `dims` ints."""
    return pair(value, name, where) if dims == 2 else (int(np.ravel(value)[0]),)


def output_shape(node: nir.NIRNode, in_shape: Shape, where: str) -> Shape:
    """Output shape of `node` fed with `in_shape`; raises ShapeError when they do not fit."""
    if isinstance(node, SHAPE_PRESERVING) or isinstance(node, nir.Input):
        return in_shape
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if in_shape[-1] != w.shape[1]:
            raise ShapeError(
                "input does not match the weight matrix",
                where=where,
                expected=f"last dimension {w.shape[1]} (weight {w.shape})",
                got=in_shape,
                hint="insert a Flatten before a dense layer fed by a multi-dimensional layer",
            )
        return (*in_shape[:-1], int(w.shape[0]))
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        dims = 1 if isinstance(node, nir.Conv1d) else 2
        w = np.asarray(node.weight)
        groups = int(np.ravel(node.groups)[0])
        if len(in_shape) != dims + 1:
            raise ShapeError(f"Conv{dims}d needs a (C, {'L' if dims == 1 else 'H, W'}) input", where=where, got=in_shape)
        if in_shape[0] != w.shape[1] * groups:
            raise ShapeError(
                "input channels do not match the kernel",
                where=where,
                expected=f"{w.shape[1] * groups} channels (kernel {w.shape}, groups {groups})",
                got=in_shape,
            )
        stride = _dims(node.stride, "stride", dims, where)
        dil = _dims(node.dilation, "dilation", dims, where)
        pad = conv_padding_pairs(node, in_shape[1:], where)
        spatial = tuple(
            (in_shape[1 + i] + sum(pad[i]) - dil[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
            for i in range(dims)
        )
        if any(s <= 0 for s in spatial):
            raise ShapeError("convolution output would be empty", where=where, got=in_shape)
        return (int(w.shape[0]), *spatial)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        if len(in_shape) != 3:
            raise ShapeError("pooling needs a (C, H, W) input", where=where, got=in_shape)
        k = pair(node.kernel_size, "kernel_size", where)
        s = pair(node.stride, "stride", where)
        p = pair(node.padding, "padding", where)
        spatial = tuple(_conv_out(in_shape[1 + i], k[i], s[i], p[i], 1) for i in range(2))
        if any(d <= 0 for d in spatial):
            raise ShapeError("pooling output would be empty", where=where, got=in_shape)
        return (in_shape[0], *spatial)
    if isinstance(node, nir.Flatten):
        nd = len(in_shape)
        start, end = int(np.ravel(node.start_dim)[0]), int(np.ravel(node.end_dim)[0])
        if not (-nd <= start < nd and -nd <= end < nd):
            raise ShapeError(
                "Flatten dimension out of range",
                where=where,
                expected=f"start_dim and end_dim in -{nd}..{nd - 1} for input {in_shape} (no batch dimension)",
                got=(start, end),
            )
        start, end = start % nd, end % nd
        if start > end:
            raise ShapeError("Flatten start_dim is after end_dim", where=where, got=(node.start_dim, node.end_dim))
        return (*in_shape[:start], math.prod(in_shape[start : end + 1]), *in_shape[end + 1 :])
    raise UnsupportedNodeError(f"no shape rule for {type(node).__name__}", where=where)
