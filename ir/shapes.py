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

# The parameter whose (non-scalar) shape fixes a shape-preserving node's shape.
_SHAPE_PARAM = {
    nir.LIF: "v_threshold",
    nir.CubaLIF: "v_threshold",
    nir.IF: "v_threshold",
    nir.LI: "tau",
    nir.I: "r",
    nir.CubaLI: "tau_mem",
    nir.Scale: "scale",
    nir.Delay: "delay",
    nir.Threshold: "threshold",
}


def pair(value, name: str, where: str) -> tuple[int, int]:
    """Normalize an int / 1- or 2-element sequence to a pair of ints."""
    arr = np.atleast_1d(np.asarray(value)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2:
        raise ShapeError(f"{name} must be an int or a pair", where=where, got=value)
    return int(arr[0]), int(arr[1])


def own_shape(node: nir.NIRNode) -> Shape | None:
    """The shape a node's own parameters imply, or None when they are scalars."""
    if isinstance(node, nir.Input):
        return tuple(int(d) for d in np.atleast_1d(node.input_type["input"]))
    if isinstance(node, (nir.Affine, nir.Linear)):
        return None
    param = _SHAPE_PARAM.get(type(node))
    if param is not None:
        arr = np.asarray(getattr(node, param))
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


def conv_padding(node, in_hw: Shape, where: str) -> tuple[int, ...]:
    """Explicit per-dimension padding of a Conv1d/Conv2d, resolving 'same' and 'valid'."""
    dims = len(in_hw)
    kernel = np.asarray(node.weight).shape[2:]
    dil = pair(node.dilation, "dilation", where)[:dims] if dims == 2 else (int(np.ravel(node.dilation)[0]),)
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0,) * dims
        if node.padding == "same":
            pads = []
            for k, d in zip(kernel, dil):
                total = d * (k - 1)
                if total % 2:
                    raise UnsupportedNodeError(
                        "'same' padding with an even effective kernel needs asymmetric padding",
                        where=where,
                        hint="use an odd kernel or explicit padding",
                    )
                pads.append(total // 2)
            return tuple(pads)
        raise ShapeError("padding must be an int, a pair, 'same' or 'valid'", where=where, got=node.padding)
    if dims == 2:
        return pair(node.padding, "padding", where)
    return (int(np.ravel(node.padding)[0]),)


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
        stride = pair(node.stride, "stride", where) if dims == 2 else (int(np.ravel(node.stride)[0]),)
        dil = pair(node.dilation, "dilation", where) if dims == 2 else (int(np.ravel(node.dilation)[0]),)
        pad = conv_padding(node, in_shape[1:], where)
        spatial = tuple(
            _conv_out(in_shape[1 + i], w.shape[2 + i], stride[i], pad[i], dil[i]) for i in range(dims)
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
        start = int(node.start_dim) % nd if nd else 0
        end = int(node.end_dim) % nd if nd else 0
        if start > end:
            raise ShapeError("Flatten start_dim is after end_dim", where=where, got=(node.start_dim, node.end_dim))
        return (*in_shape[:start], math.prod(in_shape[start : end + 1]), *in_shape[end + 1 :])
    raise UnsupportedNodeError(f"no shape rule for {type(node).__name__}", where=where)
