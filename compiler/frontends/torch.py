"""PyTorch / snnTorch frontend: a torch module (one time step of its forward) into a NIR graph.

The module is traced with `torch.fx` (snnTorch neurons and torch.nn layers are leaves; user
modules are traced through), shapes come from running the trace once on a copy with zeros, and
every call becomes NIR nodes:

    nn.Linear             -> Affine (Linear without bias)
    nn.Conv1d / Conv2d    -> Conv1d / Conv2d (input_shape filled in)
    nn.AvgPool2d          -> AvgPool2d             nn.Flatten, torch.flatten, view -> Flatten
    nn.BatchNorm1d/2d     -> folded into the Linear/Conv before it (running statistics)
    nn.Identity, Dropout  -> removed              a + b -> both edges into the consumer (NIR sums)
    x * c, x / c, -x      -> Scale

snnTorch neurons with forward Euler at `dt` (snnTorch's export convention tau = dt / (1 - beta)):

    Leaky(beta)           LIF(tau = dt/(1-beta), r = 1/(1-beta), v_leak = 0)    (IF, r = 1, if beta = 1)
    Synaptic(alpha, beta) CubaLIF(tau_syn = dt/(1-alpha), w_in = 1/(1-alpha), tau_mem, r as above)
    RLeaky / RSynaptic    the same plus a recurrent Affine / Conv2d / Scale (V) from the spikes
                          back to the neuron input (one step later; its bias arrives at t = 0 as
                          snnTorch's recurrent nn.Linear applied to the zero initial spikes)

Every neuron node carries snnTorch's `reset_mechanism` as `metadata["reset_mode"]` (NIR has no field
for it; see snnc.ir.reset_mode): "zero" resets v in the step that spikes (exactly snnTorch's
`Leaky(reset_mechanism="zero")`), "subtract" (snnTorch's default) removes the threshold one step
later, "none" never resets; the reference backend, the compiler and the chip follow all three
exactly. Only the zero reset of Synaptic, RLeaky and RSynaptic differs: it clears the WHOLE membrane
of the step after a spike (a one-step refractory period). `reset` chooses what happens then:

    "strict" (default)  an UnsupportedNodeError saying why and what to do
    "exact"             reproduce snnTorch exactly with standard NIR nodes: a LIF that a recurrent
                        kick Scale(K) resets in the step after a spike, whose spikes z are
                        corrected by S = z - S[t-1]. Runs on the float reference; the chip
                        compiler cannot map these nodes.
    "nir"               LIF/CubaLIF with v_reset = 0 (snnTorch's own exporter's mapping, without
                        the refractory step)

A neuron's membrane output (the second element of `spk, mem = lif(x)`) is not exported: NIR neurons
output spikes. A membrane that feeds another layer is an error.
"""
from __future__ import annotations

import copy
import math
import operator
from typing import Any, Sequence

import nir
import numpy as np

from snnc.ir.errors import GraphError, ParameterError, ShapeError, SnncError, UnsupportedNodeError
from snnc.ir.timestep import check_dt

RESET_MODES = ("strict", "exact", "nir")

KICK = 1e30
"""Input that forces a neuron over any threshold (the exact zero-reset decomposition)."""

_HINTS = {
    "MaxPool1d": "max pooling has no NIR node; use AvgPool2d or a strided convolution",
    "MaxPool2d": "max pooling has no NIR node; use AvgPool2d or a strided convolution",
    "MaxPool3d": "max pooling has no NIR node; use AvgPool2d or a strided convolution",
    "AdaptiveMaxPool2d": "max pooling has no NIR node; use AvgPool2d",
    "AdaptiveAvgPool2d": "use nn.AvgPool2d with an explicit kernel size",
    "LSTM": "LSTMs have no spiking NIR equivalent; use snnTorch RLeaky/RSynaptic, or train a quantized RNN "
    "(snnc.compiler.frontends.conversion.QuantRNN) and convert it",
    "GRU": "GRUs have no spiking NIR equivalent; use snnTorch RLeaky/RSynaptic or conversion.QuantRNN",
    "RNN": "use snnTorch RLeaky/RSynaptic, or conversion.QuantRNN + conversion.convert",
    "LSTMCell": "use snnTorch RLeaky/RSynaptic",
    "GRUCell": "use snnTorch RLeaky/RSynaptic",
    "RNNCell": "use snnTorch RLeaky/RSynaptic",
    "MultiheadAttention": "attention has no spiking NIR equivalent; replace it with dense/conv layers and spiking neurons",
    "Transformer": "attention has no spiking NIR equivalent",
    "TransformerEncoderLayer": "attention has no spiking NIR equivalent",
    "ConvTranspose2d": "transposed convolutions have no NIR node; use Upsample-free architectures or strided Conv2d",
    "LayerNorm": "normalization over neurons needs division at run time; use BatchNorm (folded) or remove it",
    "GroupNorm": "normalization over neurons needs division at run time; use BatchNorm (folded) or remove it",
    "Embedding": "embeddings have no NIR node; feed one-hot or dense inputs",
}
_ACTIVATIONS = (
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax",
    "LogSoftmax", "Hardtanh", "Softplus", "Mish", "Hardswish",
)
_ACT_HINT = (
    "ANN activations have no NIR node; use a spiking neuron (snnTorch Leaky), or train with "
    "snnc.compiler.frontends.conversion.QuantReLU and convert the network with conversion.convert"
)
ATTENTION_MODULE = "snnc.compiler.frontends.attention"
_ATTENTION_HINT = (
    f"build the block from {ATTENTION_MODULE} (SpikingSelfAttention: spike-driven Q, K, V and Q.K^T.V without "
    "softmax, Spikformer-style; SpikingSSM: diagonal recurrence with a spiking gate) and export it with attention.to_nir"
)
_ATTENTION_OPS = {
    "matmul": "a product of two computed tensors needs product neurons; " + _ATTENTION_HINT,
    "bmm": "a product of two computed tensors needs product neurons; " + _ATTENTION_HINT,
    "baddbmm": "a product of two computed tensors needs product neurons; " + _ATTENTION_HINT,
    "einsum": "einsum has no NIR node; for Q.K^T.V " + _ATTENTION_HINT,
    "transpose": "NIR has no transpose; K^T inside attention is part of " + _ATTENTION_HINT,
    "permute": "NIR has no permute; " + _ATTENTION_HINT,
    "T": "NIR has no transpose; K^T inside attention is part of " + _ATTENTION_HINT,
    "softmax": "softmax has no spiking equivalent on the chip; Spikformer drops it: " + _ATTENTION_HINT,
    "layer_norm": "normalization needs division at run time; fold a BatchNorm into the Linear before the neuron, or remove it",
    "scaled_dot_product_attention": "softmax attention has no spiking equivalent; " + _ATTENTION_HINT,
}
_HINTS.update({
    "MultiheadAttention": "softmax attention has no spiking equivalent; " + _ATTENTION_HINT,
    "Softmax": _ATTENTION_OPS["softmax"],
    **{name: f"this block runs over whole sequences; export it with {ATTENTION_MODULE}.to_nir (snnc.load_model takes the file)"
       for name in ("SpikingSelfAttention", "SpikingSSM", "SequenceClassifier")},
})


def _attention_hint(node, target) -> str | None:
    """The attention/normalization hint for an fx operation, if it is one of those ops."""
    name = _fname(target).split(".")[-1]
    if target is getattr and len(node.args) > 1:
        name = str(node.args[1])
    return _ATTENTION_OPS.get(name)


def _module_path(node) -> str:
    """Where an fx node sits in the model: the innermost module that called it ('' at the top)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, cls = list(stack.values())[-1]
    return f" in module {path!r} ({getattr(cls, '__name__', cls)})"


def from_torch(
    module,
    sample_input_shape: Sequence[int] | Any = None,
    dt: float = 1e-4,
    *,
    reset: str = "strict",
) -> nir.NIRGraph:
    """Trace one time step of `module` into a validated flat `nir.NIRGraph`.

    `sample_input_shape` is the shape of one sample at one time step, without batch and time
    (e.g. (2, 34, 34)); a tensor is taken as an example input with a batch dimension. `dt` is the
    simulation step the neuron time constants are written for (snnTorch: tau = dt / (1 - beta)).
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ParameterError("from_torch needs a torch.nn.Module", got=type(module).__name__)
    if reset not in RESET_MODES:
        raise ParameterError("unknown reset mode", where="from_torch(reset=...)", expected=", ".join(RESET_MODES), got=reset)
    dt = check_dt(dt, "from_torch(dt=...)")
    shape = _sample_shape(sample_input_shape)
    return _Converter(module, shape, dt, reset).run()


def _sample_shape(value) -> tuple[int, ...]:
    import torch

    if value is None:
        raise ShapeError(
            "from_torch needs the input shape",
            where="from_torch(sample_input_shape=...)",
            hint="pass the shape of one sample at one time step without batch, e.g. (784,) or (2, 34, 34)",
        )
    if isinstance(value, torch.Tensor):
        if value.ndim < 2:
            raise ShapeError("an example input needs a batch dimension", where="from_torch(sample_input_shape=...)", got=tuple(value.shape))
        value = tuple(value.shape[1:])
    try:
        shape = tuple(int(d) for d in value)
    except (TypeError, ValueError):
        raise ShapeError("sample_input_shape must be a sequence of positive integers", where="from_torch", got=value) from None
    if not shape or any(d <= 0 for d in shape):
        raise ShapeError("sample_input_shape must be a sequence of positive integers", where="from_torch", got=shape)
    return shape


def _snntorch():
    try:
        import snntorch
    except ImportError:  # pragma: no cover - snntorch is a test dependency
        return None
    return snntorch


class _Value:
    """What an fx node computes: a sum of NIR node outputs (with multiplicities), or a marker."""

    def __init__(self, kind: str, sources: dict[str, int] | None = None, shape=None, owner: str = "", items=None):
        self.kind = kind  # "tensor", "mem", "tuple", "none"
        self.sources = sources or {}
        self.shape = shape
        self.owner = owner
        self.items = items


def _detached_state(module) -> dict[int, Any]:
    """A deepcopy memo that copies the tensors a module holds as computed state (snnTorch's hidden
    `mem`/`spk` right after a training step: results of autograd, which torch refuses to deepcopy)
    as detached clones. The export reads parameters only; the state is reset in the NIR graph."""
    import torch

    memo: dict[int, Any] = {}
    for m in module.modules():
        for value in [*m.__dict__.values(), *getattr(m, "_buffers", {}).values()]:
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return memo


class _Converter:
    def __init__(self, module, shape, dt, reset):
        self.module = module
        self.shape = shape
        self.dt = dt
        self.reset = reset
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.values: dict[str, _Value] = {}
        self.calls: dict[str, int] = {}
        self.delayed: set[tuple[str, str]] = set()  # edges meant to deliver one step later
        self.current_module = ""
        self.snn = _snntorch()

    # -- tracing ----------------------------------------------------------------------------------
    def _trace(self):
        import torch
        import torch.fx as fx

        snn = self.snn

        class Tracer(fx.Tracer):
            def is_leaf_module(self, m, qualname):
                if snn is not None and isinstance(m, snn.SpikingNeuron):
                    return True
                if isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)):
                    return False
                if type(m).__module__ == ATTENTION_MODULE:
                    return True  # sequence-level blocks: reported with their exporter, never traced into
                return m.__module__.startswith("torch.nn") or super().is_leaf_module(m, qualname)

        model = copy.deepcopy(self.module, _detached_state(self.module)).eval()  # eval: BatchNorm running stats, no dropout
        if not isinstance(model, torch.nn.Sequential) and Tracer().is_leaf_module(model, ""):
            model = torch.nn.Sequential(model)  # fx always traces into the root module
        try:
            graph = Tracer().trace(model)
        except Exception as exc:  # noqa: BLE001 - fx raises many types on untraceable code
            raise UnsupportedNodeError(
                f"cannot trace the model with torch.fx ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                where=f"module {type(self.module).__name__}",
                hint="forward must compute ONE time step without loops over time or data-dependent branches; "
                "use snnTorch neurons with init_hidden=True inside nn.Sequential, or call them as spk, mem = lif(x)",
            ) from exc
        gm = fx.GraphModule(model, graph)
        self._shape_prop(gm)
        return gm

    def _shape_prop(self, gm) -> None:
        import torch
        from torch.fx.passes.shape_prop import ShapeProp

        params = list(gm.parameters()) + list(gm.buffers())
        dtype = next((p.dtype for p in params if p.is_floating_point()), torch.float32)
        n_required = [
            n for n in gm.graph.nodes if n.op == "placeholder" and not n.args
        ]
        if len(n_required) > 1:
            raise UnsupportedNodeError(
                "forward takes more than one required argument",
                where=f"module {type(self.module).__name__}: arguments {[n.target for n in n_required]}",
                hint="the network must take one input tensor; keep neuron states inside the neurons (init_hidden=True) "
                "or give the state arguments default values",
            )
        try:
            ShapeProp(gm).propagate(torch.zeros((1, *self.shape), dtype=dtype))
        except SnncError:
            raise
        except Exception as exc:  # noqa: BLE001 - wrong shapes raise RuntimeError deep in torch
            raise ShapeError(
                f"the model does not run on an input of shape {self.shape} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                where=f"module {type(self.module).__name__}",
                expected="the shape of one sample at one time step, without batch",
                got=self.shape,
            ) from exc

    # -- building ---------------------------------------------------------------------------------
    def run(self) -> nir.NIRGraph:
        gm = self._trace()
        self.modules = dict(gm.named_modules())
        self.users = {n.name: len(n.users) for n in gm.graph.nodes}
        first = True
        outputs: list[_Value] = []
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                if first:
                    self.nodes["input"] = nir.Input(input_type={"input": np.array(self.shape)})
                    self.values[node.name] = _Value("tensor", {"input": 1}, self.shape)
                    first = False
                else:
                    self.values[node.name] = _Value("none")
            elif node.op == "get_attr":
                self.values[node.name] = _Value("none", owner=str(node.target))
            elif node.op == "call_module":
                self.current_module = str(node.target)
                self.values[node.name] = self._module(node)
                self.current_module = ""
            elif node.op in ("call_function", "call_method"):
                self.values[node.name] = self._function(node)
            elif node.op == "output":
                outputs = self._flatten_outputs(node.args[0])
        if not outputs:
            raise GraphError(
                "the model returns no spike or tensor output",
                where=f"module {type(self.module).__name__}",
                hint="return the output spikes (a membrane potential alone cannot be exported)",
            )
        for i, value in enumerate(outputs):
            name = "output" if len(outputs) == 1 else f"output_{i}"
            self.nodes[name] = nir.Output(output_type={"output": np.array(value.shape)})
            self._connect(value, name)
        for node in self.nodes.values():  # the decompositions' own neurons reset as NIR does
            if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF)) and "reset_mode" not in (node.metadata or {}):
                node.metadata = {**(node.metadata or {}), "reset_mode": "zero"}
        graph = nir.NIRGraph(
            nodes=self.nodes,
            edges=self.edges,
            metadata={"frontend": "snnc.from_torch", "dt": self.dt, "reset": self.reset, "model": type(self.module).__name__},
            type_check=False,
        )
        from snnc.ir.graph import Graph

        found = Graph.from_nir(graph).recurrent  # also validates shapes, parameters, edges
        if found != self.delayed:
            raise GraphError(
                "the traced model has a cycle outside the snnTorch neurons' own recurrence",
                where=f"module {type(self.module).__name__}",
                expected=sorted(self.delayed)[:6],
                got=sorted(found)[:6],
                hint="feedback between layers is not supported; use RLeaky/RSynaptic for recurrence",
            )
        return graph

    def _flatten_outputs(self, arg) -> list[_Value]:
        out: list[_Value] = []
        if isinstance(arg, (tuple, list)):
            for a in arg:
                out.extend(self._flatten_outputs(a))
            return out
        if isinstance(arg, dict):
            for a in arg.values():
                out.extend(self._flatten_outputs(a))
            return out
        if arg is None or not hasattr(arg, "name"):
            return out
        value = self.values[arg.name]
        if value.kind == "tuple":
            for item in value.items:
                if item.kind == "tensor":
                    out.append(item)
            return out
        if value.kind == "tensor":
            out.append(value)
        return out

    # -- helpers ----------------------------------------------------------------------------------
    def _name(self, base: str) -> str:
        base = base.replace(".", "_") or "node"
        name, i = base, 1
        while name in self.nodes:
            name, i = f"{base}_{i}", i + 1
        return name

    def _add(self, base: str, node: nir.NIRNode) -> str:
        """Add a node; its metadata names the torch module it came from (for later error messages)."""
        name = self._name(base)
        if self.current_module:
            node.metadata = {**(node.metadata or {}), "snnc": {"module": self.current_module}}
        self.nodes[name] = node
        return name

    def _connect(self, value: _Value, dst: str) -> None:
        for src, mult in value.sources.items():
            if mult == 1:
                self.edges.append((src, dst))
            else:
                scale = self._add(f"{src}_x{mult}", nir.Scale(scale=np.full(value.shape, float(mult))))
                self.edges.append((src, scale))
                self.edges.append((scale, dst))

    def _tensor_arg(self, arg, where: str) -> _Value:
        if not hasattr(arg, "name") or arg.name not in self.values:
            raise UnsupportedNodeError("expected a tensor computed from the input", where=where, got=repr(arg))
        value = self.values[arg.name]
        if value.kind == "mem":
            raise UnsupportedNodeError(
                f"the membrane potential of {value.owner!r} feeds another operation",
                where=where,
                hint="NIR neurons output spikes only; feed the spikes (first output) to the next layer",
            )
        if value.kind == "tuple":
            raise UnsupportedNodeError(
                f"the (spikes, state...) tuple of {value.owner!r} is used as a tensor",
                where=where,
                hint="unpack it: spk, mem = lif(x), and use spk",
            )
        if value.kind != "tensor" or not value.sources:
            raise UnsupportedNodeError(
                "operation on a value that does not depend on the input (constant tensors are not supported)",
                where=where,
                hint="constant inputs have no NIR node; use a bias in a Linear/Conv layer",
            )
        return value

    def _out_shape(self, node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if isinstance(meta, (tuple, list)) and not hasattr(meta, "shape"):
            meta = meta[0]
        if meta is None:
            raise ShapeError("cannot infer the output shape", where=f"{node.name}")
        return tuple(int(d) for d in meta.shape[1:])

    # -- modules ----------------------------------------------------------------------------------
    def _module(self, node) -> _Value:
        import torch.nn as nn

        qual = str(node.target)
        mod = self.modules[qual]
        where = f"module {qual!r} ({type(mod).__name__})"
        count = self.calls.get(qual, 0)
        self.calls[qual] = count + 1
        snn = self.snn
        if snn is not None and isinstance(mod, snn.SpikingNeuron):
            if count:
                raise UnsupportedNodeError(
                    "a spiking neuron module is called more than once per step",
                    where=where,
                    hint="each call would share one membrane state; trace one time step with one call per neuron layer",
                )
            return self._neuron(node, mod, qual, where)
        if isinstance(mod, (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)):
            return self._tensor_arg(node.args[0], where)
        x = self._tensor_arg(node.args[0], where) if node.args else None
        if x is None:
            raise UnsupportedNodeError("module called without an input tensor", where=where)
        out_shape = self._out_shape(node)
        base = qual
        if isinstance(mod, nn.Linear):
            w = _np(mod.weight)
            nir_node = nir.Linear(weight=w) if mod.bias is None else nir.Affine(weight=w, bias=_np(mod.bias))
            return self._emit(base, nir_node, x, out_shape, producer=node.name)
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            return self._emit(base, self._conv(mod, x.shape, where), x, out_shape, producer=node.name)
        if isinstance(mod, nn.AvgPool2d):
            return self._emit(base, self._avgpool(mod, where), x, out_shape)
        if isinstance(mod, nn.Flatten):
            return self._flatten(base, x, mod.start_dim, mod.end_dim, out_shape, where)
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self._batchnorm(node, mod, x, where)
        name = type(mod).__name__
        hint = _HINTS.get(name) or (_ACT_HINT if name in _ACTIVATIONS else None)
        raise UnsupportedNodeError(
            f"module type {name} is not supported",
            where=where,
            expected="Linear, Conv1d, Conv2d, AvgPool2d, Flatten, BatchNorm1d/2d, Identity, Dropout, snnTorch Leaky/Synaptic/RLeaky/RSynaptic",
            hint=hint or "replace it with supported layers",
        )

    def _emit(self, base: str, nir_node: nir.NIRNode, x: _Value, out_shape, producer: str = "") -> _Value:
        name = self._add(base, nir_node)
        self._connect(x, name)
        value = _Value("tensor", {name: 1}, out_shape)
        if producer:
            value.owner = f"{producer}:{name}"  # fx node and NIR node a BatchNorm may fold into
        return value

    def _conv(self, mod, in_shape, where: str) -> nir.NIRNode:
        if mod.padding_mode != "zeros":
            raise UnsupportedNodeError(
                f"padding_mode {mod.padding_mode!r} is not supported", where=where, expected="'zeros'",
                hint="NIR convolutions pad with zeros",
            )
        w = _np(mod.weight)
        bias = _np(mod.bias) if mod.bias is not None else np.zeros(w.shape[0])
        pad = mod.padding if isinstance(mod.padding, str) else tuple(int(p) for p in mod.padding)
        if isinstance(mod, _torch_nn().Conv1d):
            return nir.Conv1d(
                input_shape=int(in_shape[1]), weight=w, stride=int(mod.stride[0]),
                padding=pad if isinstance(pad, str) else int(pad[0]), dilation=int(mod.dilation[0]),
                groups=int(mod.groups), bias=bias,
            )
        return nir.Conv2d(
            input_shape=(int(in_shape[1]), int(in_shape[2])), weight=w, stride=tuple(int(s) for s in mod.stride),
            padding=pad, dilation=tuple(int(d) for d in mod.dilation), groups=int(mod.groups), bias=bias,
        )

    def _avgpool(self, mod, where: str) -> nir.NIRNode:
        k = _pair(mod.kernel_size)
        s = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
        p = _pair(mod.padding)
        if mod.ceil_mode:
            raise UnsupportedNodeError("AvgPool2d(ceil_mode=True) is not supported", where=where, hint="use ceil_mode=False")
        if mod.divisor_override is not None:
            raise UnsupportedNodeError("AvgPool2d(divisor_override=...) is not supported", where=where, hint="use a SumPool-like Conv2d")
        if any(p) and not mod.count_include_pad:
            raise UnsupportedNodeError(
                "AvgPool2d with padding and count_include_pad=False is not supported",
                where=where,
                hint="NIR's AvgPool2d counts the padding; use count_include_pad=True or no padding",
            )
        return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))

    def _flatten(self, base, x: _Value, start, end, out_shape, where) -> _Value:
        nd = len(x.shape) + 1
        start = start + nd if start < 0 else start
        end = end + nd if end < 0 else end
        if start <= 0:
            raise UnsupportedNodeError(
                "flattening the batch dimension is not supported", where=where, hint="flatten from dimension 1 (nn.Flatten())"
            )
        nir_node = nir.Flatten(input_type={"input": np.array(x.shape)}, start_dim=start - 1, end_dim=end - 1)
        return self._emit(base, nir_node, x, out_shape)

    def _batchnorm(self, node, mod, x: _Value, where: str) -> _Value:
        fx_name, _, prod = x.owner.partition(":")
        arg = node.args[0]
        ok = prod and arg.name == fx_name and isinstance(self.nodes.get(prod), (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d))
        if not ok or self.users.get(arg.name, 0) != 1:
            raise UnsupportedNodeError(
                "BatchNorm must directly follow a Linear or Conv layer whose output it alone uses",
                where=where,
                hint="snnc folds BatchNorm into the preceding Linear/Conv; move it there or remove it",
            )
        if mod.running_mean is None or mod.running_var is None:
            raise UnsupportedNodeError(
                "BatchNorm without running statistics cannot be folded", where=where, hint="use track_running_stats=True"
            )
        mean, var = _np(mod.running_mean), _np(mod.running_var)
        gamma = _np(mod.weight) if mod.weight is not None else np.ones_like(mean)
        beta = _np(mod.bias) if mod.bias is not None else np.zeros_like(mean)
        scale = gamma / np.sqrt(var + mod.eps)
        shift = beta - mean * scale
        old = self.nodes[prod]
        w = np.asarray(old.weight)
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        if isinstance(old, nir.Linear):
            self.nodes[prod] = nir.Affine(weight=w, bias=shift)
        elif isinstance(old, nir.Affine):
            self.nodes[prod] = nir.Affine(weight=w, bias=np.asarray(old.bias) * scale + shift)
        else:
            old.weight = w
            old.bias = np.asarray(old.bias) * scale + shift
        meta = dict(old.metadata or {})
        meta["snnc"] = {**meta.get("snnc", {}), "folded_batchnorm": str(node.target)}
        self.nodes[prod].metadata = meta
        return x

    # -- functions --------------------------------------------------------------------------------
    def _function(self, node) -> _Value:
        import torch

        target = node.target
        where = f"operation {node.name!r} ({_fname(target)})"
        if target is operator.getitem:
            src = self.values.get(getattr(node.args[0], "name", ""), None)
            if src is not None and src.kind == "tuple":
                idx = node.args[1]
                if not isinstance(idx, int) or not -len(src.items) <= idx < len(src.items):
                    raise UnsupportedNodeError("unsupported index into a neuron's outputs", where=where, got=idx)
                return src.items[idx]
            raise UnsupportedNodeError(
                "indexing or slicing tensors is not supported", where=where, hint="NIR has no slicing node; restructure the model"
            )
        if target in (operator.add, torch.add) or (node.op == "call_method" and target == "add"):
            a, b = node.args[0], node.args[1]
            if not (hasattr(a, "name") and hasattr(b, "name")):
                raise UnsupportedNodeError(
                    "adding a constant is not supported", where=where, hint="use a bias in a Linear/Conv layer"
                )
            va, vb = self._tensor_arg(a, where), self._tensor_arg(b, where)
            if va.shape != vb.shape:
                raise ShapeError("residual addition of different shapes (broadcasting) is not supported", where=where, got=(va.shape, vb.shape))
            sources = dict(va.sources)
            for k, m in vb.sources.items():
                sources[k] = sources.get(k, 0) + m
            return _Value("tensor", sources, va.shape)
        if target in (operator.mul, torch.mul, operator.truediv, torch.div, operator.neg, torch.neg) or (
            node.op == "call_method" and target in ("mul", "div", "neg")
        ):
            return self._scale(node, where)
        if (node.op == "call_method" and target in ("flatten", "view", "reshape")) or target in (torch.flatten, torch.reshape):
            x = self._tensor_arg(node.args[0], where)
            out_shape = self._out_shape(node)
            if target in ("flatten", torch.flatten):
                start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
                end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
                return self._flatten(node.name, x, int(start), int(end), out_shape, where)
            if out_shape == x.shape:
                return x
            if out_shape == (math.prod(x.shape),):
                return self._flatten(node.name, x, 1, -1, out_shape, where)
            raise UnsupportedNodeError(
                "view/reshape other than flattening is not supported", where=where, got=(x.shape, out_shape),
                hint="use nn.Flatten()",
            )
        if node.op == "call_method" and target in ("size", "dim"):
            return _Value("none")
        if target is getattr and len(node.args) > 1 and node.args[1] in ("shape",):
            return _Value("none")
        if node.op == "call_method" and target in ("contiguous", "clone", "detach"):
            return self._tensor_arg(node.args[0], where)
        hint = _ACT_HINT if _fname(target).split(".")[-1] in ("relu", "sigmoid", "tanh", "gelu", "softmax", "silu") else None
        hint = _attention_hint(node, target) or hint
        if target is getattr and len(node.args) > 1:
            where += f" (attribute .{node.args[1]})"
        where += _module_path(node)
        raise UnsupportedNodeError(
            f"operation {_fname(target)} is not supported",
            where=where,
            expected="+, * or / by a constant, flatten/view to 1-D, and calls of supported modules",
            hint=hint or "use torch.nn modules (nn.Linear, nn.Conv2d, ...) instead of functional calls",
        )

    def _scale(self, node, where) -> _Value:
        target = node.target
        name = _fname(target)
        if "neg" in name:
            x, c = self._tensor_arg(node.args[0], where), -1.0
        else:
            a, b = node.args[0], node.args[1]
            if hasattr(a, "name") and hasattr(b, "name"):
                raise UnsupportedNodeError(
                    "multiplying two tensors is not supported", where=where, hint="NIR has no elementwise product node"
                )
            if hasattr(a, "name"):
                x, c = self._tensor_arg(a, where), b
            else:
                if "div" in name:
                    raise UnsupportedNodeError("dividing a constant by a tensor is not supported", where=where)
                x, c = self._tensor_arg(b, where), a
            if not isinstance(c, (int, float)):
                raise UnsupportedNodeError("scaling by a non-constant is not supported", where=where, got=type(c).__name__)
            c = 1.0 / float(c) if "div" in name else float(c)
        out_shape = self._out_shape(node)
        return self._emit(node.name, nir.Scale(scale=np.full(out_shape, c)), x, out_shape)

    # -- neurons ----------------------------------------------------------------------------------
    def _neuron(self, node, mod, qual: str, where: str) -> _Value:
        snn = self.snn
        x = self._tensor_arg(node.args[0], where)
        shape = x.shape
        kind = type(mod).__name__
        if not isinstance(mod, (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)) or type(mod) not in (
            snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic,
        ):
            raise UnsupportedNodeError(
                f"snnTorch neuron {kind} is not supported",
                where=where,
                expected="Leaky, Synaptic, RLeaky, RSynaptic",
                hint="these four have NIR equivalents; retrain with one of them",
            )
        if getattr(mod, "inhibition", False):
            raise UnsupportedNodeError("inhibition=True (winner-take-all) is not supported", where=where, hint="NIR has no winner-take-all node")
        if getattr(mod, "state_quant", False):
            raise UnsupportedNodeError("state_quant is not supported", where=where, hint="quantize with snnc compile instead")
        mech = mod.reset_mechanism
        beta = _param(mod.beta.clamp(0, 1), shape, "beta", where)
        thr = _param(mod.threshold, shape, "threshold", where)
        alpha = _param(mod.alpha.clamp(0, 1), shape, "alpha", where) if hasattr(mod, "alpha") else None
        gsf = _np(mod.graded_spikes_factor)
        recurrent = isinstance(mod, (snn.RLeaky, snn.RSynaptic))
        refractory_zero = mech == "zero" and kind != "Leaky"  # whole next step cleared
        # subtract and none are node metadata that the reference, the compiler and the chip all
        # follow exactly (snnc.ir.reset_mode); only the refractory zero reset needs a decomposition
        native = mech in ("subtract", "none") or (mech == "zero" and (kind == "Leaky" or self.reset == "nir"))
        if not mod.reset_delay and not (kind == "Leaky" and mech == "zero"):
            raise UnsupportedNodeError(
                f"reset_delay=False with reset_mechanism={mech!r} is not supported",
                where=where,
                hint="use reset_delay=True (snnTorch's default)",
            )
        if not native and self.reset != "exact":
            why = {
                "subtract": "NIR neurons reset to v_reset, they cannot subtract the threshold",
                "none": "NIR spiking neurons always reset",
                "zero": f"snnTorch's {kind} reset-to-zero also clears the membrane in the step after a spike "
                "(a one-step refractory period) that NIR's same-step reset does not have",
            }[mech]
            hint = (
                "pass reset='exact' to from_torch for an exact decomposition into LI/Threshold/Scale nodes (float reference "
                "backend only)"
                + ("" if mech != "zero" else ", or reset='nir' to accept NIR's reset (snnTorch's own exporter does)")
                + ("" if kind != "Leaky" else ", or train with reset_mechanism='zero', which Loihi implements")
            )
            raise UnsupportedNodeError(f"reset_mechanism={mech!r} cannot be mapped faithfully", where=where, hint=f"{why}; {hint}")
        base = qual
        if native:
            node = self._native(kind, alpha, beta, thr, shape, where)
            node.metadata = {**(node.metadata or {}), "reset_mode": mech}
            entry = exit_ = self._add(base, node)
            spikes = exit_
        else:
            entry, spikes = self._exact(base, mech, refractory_zero, alpha, beta, thr, shape, where)
            exit_ = spikes
        if np.any(gsf != 1.0):
            out = self._add(f"{base}_graded", nir.Scale(scale=np.broadcast_to(gsf, shape).astype(np.float64).copy()))
            self.edges.append((spikes, out))
            exit_ = out
        self._connect(x, entry)
        if recurrent:
            rec = self._recurrent(mod, base, shape, where)
            self.edges.append((exit_, rec))
            self.edges.append((rec, entry))
            self.delayed.add((rec, entry))
        spk = _Value("tensor", {exit_: 1}, shape)
        mem = _Value("mem", owner=qual)
        n_out = 3 if kind in ("Synaptic", "RSynaptic") else 2
        if getattr(mod, "init_hidden", False) and not getattr(mod, "output", False):
            return spk
        return _Value("tuple", items=[spk] + [mem] * (n_out - 1), owner=qual)

    def _native(self, kind, alpha, beta, thr, shape, where) -> nir.NIRNode:
        zeros = np.zeros(shape)
        if kind in ("Leaky", "RLeaky"):
            if np.all(beta == 1.0):
                return nir.IF(r=np.ones(shape), v_threshold=thr, v_reset=zeros)
            _no_unit(beta, "beta", where)
            return nir.LIF(tau=self.dt / (1 - beta), r=1 / (1 - beta), v_leak=zeros, v_threshold=thr, v_reset=zeros)
        _no_unit(beta, "beta", where)
        _no_unit(alpha, "alpha", where)
        return nir.CubaLIF(
            tau_syn=self.dt / (1 - alpha), tau_mem=self.dt / (1 - beta), r=1 / (1 - beta), v_leak=zeros,
            v_threshold=thr, v_reset=zeros, w_in=1 / (1 - alpha),
        )

    def _leaky_integrator(self, decay: np.ndarray, shape, what: str, where: str) -> nir.NIRNode:
        """x -> decay * v + x as LI (or I for decay = 1), the reference's Euler step."""
        if np.all(decay == 1.0):
            return nir.I(r=np.ones(shape))
        _no_unit(decay, what, where)
        return nir.LI(tau=self.dt / (1 - decay), r=1 / (1 - decay), v_leak=np.zeros(shape))

    def _exact(self, base, mech, refractory_zero, alpha, beta, thr, shape, where) -> tuple[str, str]:
        """Entry node (takes the summed input) and spike node of the exact decomposition."""
        entry = None
        if alpha is not None:
            entry = syn = self._add(f"{base}_syn", self._leaky_integrator(alpha, shape, "alpha", where))
        if mech == "zero":
            if np.any(thr <= 0):
                raise ParameterError("the exact zero-reset decomposition needs a positive threshold", where=f"{where}.threshold", got=float(thr.min()))
            zeros = np.zeros(shape)
            if np.all(beta == 1.0):
                mem_node = nir.IF(r=np.ones(shape), v_threshold=thr, v_reset=zeros)
            else:
                _no_unit(beta, "beta", where)
                mem_node = nir.LIF(tau=self.dt / (1 - beta), r=1 / (1 - beta), v_leak=zeros, v_threshold=thr, v_reset=zeros)
            mem = self._add(f"{base}_mem", mem_node)
            if refractory_zero:
                spikes = self._add(f"{base}_spikes", nir.Scale(scale=np.ones(shape)))
                undo = self._add(f"{base}_undo", nir.Scale(scale=-np.ones(shape)))
                kick = self._add(f"{base}_kick", nir.Scale(scale=np.full(shape, KICK)))
                self.edges += [(mem, spikes), (spikes, undo), (undo, spikes), (spikes, kick), (kick, mem)]
                self.delayed |= {(undo, spikes), (kick, mem)}
            else:
                spikes = mem
        else:
            mem = self._add(f"{base}_mem", self._leaky_integrator(beta, shape, "beta", where))
            spikes = self._add(f"{base}_spikes", nir.Threshold(threshold=thr))
            self.edges.append((mem, spikes))
            if mech == "subtract":
                sub = self._add(f"{base}_reset", nir.Scale(scale=-thr))
                self.edges += [(spikes, sub), (sub, mem)]
                self.delayed.add((sub, mem))
        if entry is None:
            entry = mem
        else:
            self.edges.append((syn, mem))
        return entry, spikes

    def _recurrent(self, mod, base: str, shape, where: str) -> str:
        import torch.nn as nn

        rec = mod.recurrent
        if isinstance(rec, nn.Linear):
            w = _np(rec.weight)
            node = nir.Linear(weight=w) if rec.bias is None else nir.Affine(weight=w, bias=_np(rec.bias))
        elif isinstance(rec, nn.Conv2d):
            node = self._conv(rec, shape, where)
        elif hasattr(rec, "V"):
            node = nir.Scale(scale=_param(rec.V, shape, "V", where))
        else:
            raise UnsupportedNodeError(f"recurrent connection {type(rec).__name__} is not supported", where=where)
        return self._add(f"{base}_rec", node)


def _torch_nn():
    import torch.nn as nn

    return nn


def _np(t) -> np.ndarray:
    import torch

    if isinstance(t, torch.Tensor):
        return t.detach().cpu().to(dtype=torch.float64).numpy().copy()
    return np.asarray(t, dtype=np.float64)


def _param(t, shape, name: str, where: str) -> np.ndarray:
    arr = _np(t)
    try:
        out = np.broadcast_to(arr, shape).astype(np.float64).copy()
    except ValueError:
        raise ShapeError(f"{name} does not broadcast to the layer", where=f"{where}.{name}", expected=shape, got=arr.shape) from None
    if not np.all(np.isfinite(out)):
        raise ParameterError(f"{name} holds NaN or inf", where=f"{where}.{name}")
    return out


def _no_unit(decay: np.ndarray, what: str, where: str) -> None:
    if np.any(decay == 1.0):
        raise ParameterError(
            f"{what} = 1 (no decay) on some neurons has no finite time constant",
            where=f"{where}.{what}",
            got=1.0,
            hint="use a value below 1, the same for all neurons, or reset='exact'",
        )


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _fname(target) -> str:
    if isinstance(target, str):
        return target
    mod = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", repr(target))
    return f"{mod}.{name}" if mod and mod != "_operator" else name
