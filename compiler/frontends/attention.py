"""Spiking self-attention and spiking state-space blocks: torch modules, NIR form, chip form.

Two blocks whose core is a product of two signals, which NIR 1.0 has no node for and Loihi 2 runs
on its programmable neurons (Lava's `ProdNeuron`, chip kind "product"):

    SpikingSelfAttention   spike-driven Q, K, V (Linear + IF neurons), Q.K^T.V WITHOUT softmax as
                           in Spikformer, causal over time steps (tokens are time steps): the state
                           S_t = S_{t-1} + k_t v_t^T and out_t = sum_i (q_t,i S_t,ij) >> scale_shift
    SpikingSSM             a diagonal real linear recurrence h_t = a * h_t-1 + B x_t (one decay per
                           channel, S4D's real diagonal case) gated by spikes: y_t = h_t * spike(G x_t)

`SequenceClassifier` adds a Linear readout summed over time (the logits). Every block runs as
float torch (training; surrogate gradients) with weights on a power-of-two grid (w = integer / 2**k,
|integer| <= 255: quantization-aware from the start), so the chip's integers are the float model's
own numbers and only the chip's rounding (decay truncation, payload shifts) differs.

NIR form (`to_nir`), snnc's extension convention, stated in docs/architecture.md: standard nodes
wherever NIR has one (Input, Linear, IF, LI for the diagonal recurrence with r = tau/dt, I for the
integrators, Output); a product is a `nir.Scale(scale=1)` carrier node whose metadata["snnc_ext"]
is a JSON string {"op": "product", "version": 1, "ports": {"a_in1": [Linear node], "a_in2": [...]},
"exp": k}: the carrier says "multiply the two ports", a tool that ignores the key sees a sum (the
carrier is never a silent approximation for snnc: `nir_to_chip` refuses a Scale without the key).
Payload fraction bits of an LI/I node live in metadata["snnc_ext"] = {"op": "payload", "frac_bits": m}.
nir.write / nir.read keep these strings, so a saved file reads back (`nir_to_chip(nir.read(f))`).

Chip form (`nir_to_chip`): Input -> graded InputPopulation; IF -> LIF (du 4095, dv 0, reset to 0);
LI -> relay with the decay as a per-neuron dv; I -> relay without leak; product -> "product"
population fed on a_in1/a_in2; the Output's integrator is read as its voltage. Every projection
is one step on the chip, so the ports of a product get delays that make both arrive together;
`ChipSequence.steps(T)` is how long to run for T input rows.

S4D with complex diagonal states (`lava.proc.s4d`) has only a floating_pt model in Lava 0.10: it is
not a chip kind here. `S4DLayer` is that float model in torch (equal to Lava's process); `to_nir`
refuses it naming the layer, and `nir_to_chip` refuses unknown nodes, instead of inventing
fixed-point semantics.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import nir
import numpy as np
import torch

from snnc.ir.bits import truncate_weights
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import GraphError, ParameterError, UnsupportedNodeError
from snnc.ir.fixed_point.units import DECAY_ONE, STATE_SHIFT

EXT_KEY = "snnc_ext"
EXT_VERSION = 1
MAX_WEIGHT = 254
DT = 1.0
SURROGATE_SLOPE = 10.0
INPUT_INIT_SCALE = 1 / 16
"""Inputs are integer pixel levels (0..16 for the digits): torch's default init is scaled down by that range."""
"""Time step of the NIR form: one step per input row (tau and r are in steps)."""


# -- torch modules ---------------------------------------------------------------------------------
def quantized(w, bits_frac: int):
    """w on the grid (even integer) / 2**bits_frac with |integer| <= 254; straight-through gradient.

    Even: Lava's Dense drops the lowest bit of mixed-sign 8-bit weights (7 bits + sign survive)."""
    scale = float(2**bits_frac)
    q = torch.clamp(2 * torch.round(w * scale / 2), -MAX_WEIGHT, MAX_WEIGHT) / scale
    return q.detach() + (w - w.detach())  # exactly q forward, w's gradient backward


def spike(v, threshold: float = 1.0):
    """Heaviside(v - threshold) forward, a fast-sigmoid surrogate gradient backward."""
    x = v - threshold
    smooth = x / (1.0 + SURROGATE_SLOPE * torch.abs(x))  # its derivative is the fast-sigmoid surrogate
    return (x > 0).to(v.dtype) + (smooth - smooth.detach())  # exactly 0/1 forward


def if_neurons(current):
    """IF neurons (threshold 1, reset to zero, no leak) over time: [B, T, n] current -> spikes."""
    v = torch.zeros_like(current[:, 0])
    out = []
    for t in range(current.shape[1]):
        v = v + current[:, t]
        s = spike(v)
        out.append(s)
        v = v * (1.0 - s.detach())
    return torch.stack(out, dim=1)


class _GridLinear(torch.nn.Linear):
    """A bias-free Linear whose weights the blocks use on the grid of `frac_bits` (`_qweight`)."""

    def __init__(self, d_in: int, d_out: int, frac_bits: int, init_scale: float = 1.0):
        super().__init__(d_in, d_out, bias=False)
        with torch.no_grad():
            self.weight.mul_(init_scale)
        self.frac_bits = frac_bits


def _qweight(layer: _GridLinear):
    return quantized(layer.weight, layer.frac_bits)


class SpikingSelfAttention(torch.nn.Module):
    """Causal spiking linear attention: spike-driven Q, K, V, then Q.K^T.V without softmax.

    x [B, T, d_in] -> [B, T, 2 d_model]: the attention out_t,j = sum_i floor(q_t,i S_t,ij / 2**scale_shift)
    (Spikformer's scaling as a shift per product, what the chip's product neurons compute; 0 = none),
    with q, k, v = IF(W x) and S_t = sum_{t' <= t} k v^T,
    next to the V spikes themselves (Spikformer's residual path around the attention).
    """

    def __init__(self, d_in: int, d_model: int, *, frac_bits: int = 8, scale_shift: int = 0, init_scale: float = INPUT_INIT_SCALE):
        super().__init__()
        self.d_model, self.scale_shift = d_model, int(scale_shift)
        self.q = _GridLinear(d_in, d_model, frac_bits, init_scale)
        self.k = _GridLinear(d_in, d_model, frac_bits, init_scale)
        self.v = _GridLinear(d_in, d_model, frac_bits, init_scale)

    def forward(self, x):
        q, k, v = (if_neurons(x @ _qweight(m).T) for m in (self.q, self.k, self.v))
        state = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=1)  # [B, T, d, d]
        if self.scale_shift:  # q_i is 0 or 1, so this is floor(q_i S_ij / 2**s): each product neuron's shift
            scaled = state / 2**self.scale_shift
            state = torch.floor(scaled).detach() + (scaled - scaled.detach())
        out = torch.einsum("btI,btIj->btj", q, state)
        return torch.cat([out, v], dim=-1)

    @property
    def width(self) -> int:
        return 2 * self.d_model


class SpikingSSM(torch.nn.Module):
    """Diagonal spiking state-space block: h_t = a * h_t-1 + B x_t, y_t = h_t * IF(G x_t).

    One real decay a = 1 - dv / 4096 per channel (dv an integer: the chip's own decay grid);
    h is sent on as a graded payload with `payload_bits` fraction bits (floor, as the chip does).
    """

    def __init__(self, d_in: int, d_state: int, *, frac_bits: int = 8, payload_bits: int = 4, init_scale: float = INPUT_INIT_SCALE):
        super().__init__()
        self.d_state, self.payload_bits = d_state, int(payload_bits)
        self.B = _GridLinear(d_in, d_state, frac_bits, init_scale)
        self.G = _GridLinear(d_in, d_state, frac_bits, init_scale)
        self.decay_logit = torch.nn.Parameter(torch.linspace(-2.0, 2.0, d_state))

    def dv(self):
        """Per-channel chip decays (integers 1..4095) and the float decay a they stand for."""
        raw = torch.sigmoid(self.decay_logit) * 0.5 * DECAY_ONE  # a in [0.5, 1)
        dv = torch.clamp(torch.round(raw).detach() + (raw - raw.detach()), 1, DECAY_ONE - 1)
        return dv, 1.0 - dv / DECAY_ONE

    def forward(self, x):
        _, a = self.dv()
        drive = x @ _qweight(self.B).T
        gate = if_neurons(x @ _qweight(self.G).T)
        h = torch.zeros_like(drive[:, 0])
        out = []
        unit = 2.0**self.payload_bits
        for t in range(x.shape[1]):
            h = a * h + drive[:, t]
            payload = h * unit
            hq = (torch.floor(payload).detach() + (payload - payload.detach())) / unit
            out.append(hq * gate[:, t])
        return torch.stack(out, dim=1)

    @property
    def width(self) -> int:
        return self.d_state


class S4DLayer(torch.nn.Module):
    """S4D's complex diagonal state-space layer, float only: Lava 0.10's `lava.proc.s4d.S4d`
    (floating_pt; it has no fixed_pt model) computes, per channel and step,
        s_t = a * s_t-1 + b * x_t,   y_t = Re(2 * c * s_t)
    with complex a, b, c; so does this module (the tests compare it with Lava's process). There is no
    chip path: `to_nir` refuses it, naming the layer, instead of inventing fixed-point semantics.
    """

    def __init__(self, a, b, c):
        super().__init__()
        for name, value in (("a", a), ("b", b), ("c", c)):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.complex128)))
        self.d_state = int(self.a.numel())

    def forward(self, x):
        state = torch.zeros(x.shape[0], self.d_state, dtype=torch.complex128)
        out = []
        for t in range(x.shape[1]):
            state = state * self.a + x[:, t].to(torch.complex128) * self.b
            out.append(torch.real(self.c * state * 2))
        return torch.stack(out, dim=1).to(x.dtype)

    @property
    def width(self) -> int:
        return self.d_state


class SequenceClassifier(torch.nn.Module):
    """A block then a Linear readout summed over time: x [B, T, d_in] -> logits [B, classes]."""

    def __init__(self, block, classes: int, *, frac_bits: int = 6, init_scale: float = 0.1):
        super().__init__()
        self.block = block
        self.readout = _GridLinear(block.width, classes, frac_bits, init_scale)

    def forward(self, x):
        return (self.block(x) @ _qweight(self.readout).T).sum(dim=1)


# -- NIR form ----------------------------------------------------------------------------------------
def _w(layer) -> np.ndarray:
    import torch

    with torch.no_grad():
        return _qweight(layer).double().numpy().copy()


def _ext(record: dict) -> dict:
    return {EXT_KEY: json.dumps({"version": EXT_VERSION, **record})}


def to_nir(model, d_in: int, *, input_bits: int = 5) -> nir.NIRGraph:
    """The NIR graph of a `SequenceClassifier` (one time step; inputs are integers < 2**input_bits)."""
    block = getattr(model, "block", None)
    if isinstance(block, S4DLayer):
        raise UnsupportedNodeError(
            "S4D layer with complex diagonal states has no chip path: Lava 0.10 ships only a floating_pt model "
            "for it (lava.proc.s4d.S4d)", where=f"layer 'block' ({type(model).__name__}.block: S4DLayer, {block.d_state} states)",
            hint="run it as float torch (it equals Lava's float S4d), or use SpikingSSM (real decays, spiking gate) for the chip",
        )
    if not isinstance(model, SequenceClassifier) or not isinstance(block, (SpikingSelfAttention, SpikingSSM)):
        raise UnsupportedNodeError(
            "to_nir exports a SequenceClassifier around a SpikingSelfAttention or SpikingSSM block",
            where=f"model {type(model).__name__}", got=type(getattr(model, "block", model)).__name__,
            hint="build the model from snnc.compiler.frontends.attention's blocks",
        )
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([d_in])})}
    edges: list[tuple[str, str]] = []

    def chain(*names):
        edges.extend(zip(names[:-1], names[1:]))

    def spiking(name, n):
        nodes[name] = nir.IF(r=np.ones(n), v_threshold=np.ones(n), v_reset=np.zeros(n), metadata={"reset_mode": "zero"})

    def product(name, n, port1, port2, exp=0):
        nodes[name] = nir.Scale(scale=np.ones(n), metadata=_ext({"op": "product", "ports": {"a_in1": [port1], "a_in2": [port2]}, "exp": exp}))
        chain(port1, name)
        chain(port2, name)

    block = model.block
    if isinstance(block, SpikingSelfAttention):
        d = block.d_model
        for m in ("q", "k", "v"):
            nodes[f"attn.{m}"] = nir.Linear(weight=_w(getattr(block, m)))
            spiking(f"attn.{m}.spk", d)
            chain("input", f"attn.{m}", f"attn.{m}.spk")
        eye = np.eye(d)
        # k_i v_j for every (i, j): k repeated along j, v tiled along i
        nodes["attn.kv.k"] = nir.Linear(weight=np.kron(eye, np.ones((d, 1))))
        nodes["attn.kv.v"] = nir.Linear(weight=np.kron(np.ones((d, 1)), eye))
        chain("attn.k.spk", "attn.kv.k")
        chain("attn.v.spk", "attn.kv.v")
        product("attn.kv", d * d, "attn.kv.k", "attn.kv.v")
        nodes["attn.state.in"] = nir.Linear(weight=np.eye(d * d))
        nodes["attn.state"] = nir.I(r=np.ones(d * d), metadata=_ext({"op": "payload", "frac_bits": 0}))
        chain("attn.kv", "attn.state.in", "attn.state")
        nodes["attn.qs.q"] = nir.Linear(weight=np.kron(eye, np.ones((d, 1))))
        nodes["attn.qs.s"] = nir.Linear(weight=np.eye(d * d))
        chain("attn.q.spk", "attn.qs.q")
        chain("attn.state", "attn.qs.s")
        product("attn.qs", d * d, "attn.qs.q", "attn.qs.s", exp=block.scale_shift)
        # out_j = sum_i q_i S_ij, then the readout: one Linear (readout x the sum over i); the
        # residual V spikes reach the logits through their own Linear
        w_out = _w(model.readout)
        readout = w_out[:, :d] @ np.kron(np.ones((1, d)), eye)
        nodes["readout.residual"] = nir.Linear(weight=w_out[:, d:])
        chain("attn.v.spk", "readout.residual", "logits")
        last = "attn.qs"
    else:
        n = block.d_state
        dv, _ = block.dv()
        dv = dv.detach().double().numpy()
        nodes["ssm.B"] = nir.Linear(weight=_w(block.B))
        tau = DECAY_ONE / dv * DT  # forward Euler: h += dt/tau * (-h + r I), r = tau/dt -> h = (1 - dv/4096) h + I
        nodes["ssm.h"] = nir.LI(tau=tau, r=tau / DT, v_leak=np.zeros(n), metadata=_ext({"op": "payload", "frac_bits": block.payload_bits}))
        nodes["ssm.G"] = nir.Linear(weight=_w(block.G))
        spiking("ssm.gate", n)
        chain("input", "ssm.B", "ssm.h")
        chain("input", "ssm.G", "ssm.gate")
        nodes["ssm.y.h"] = nir.Linear(weight=np.eye(n))
        nodes["ssm.y.g"] = nir.Linear(weight=np.eye(n))
        chain("ssm.h", "ssm.y.h")
        chain("ssm.gate", "ssm.y.g")
        product("ssm.y", n, "ssm.y.h", "ssm.y.g")
        readout = _w(model.readout)
        last = "ssm.y"
    nodes["readout"] = nir.Linear(weight=readout)
    classes = readout.shape[0]
    nodes["logits"] = nir.I(r=np.ones(classes))
    nodes["output"] = nir.Output(output_type={"output": np.array([classes])})
    chain(last, "readout", "logits", "output")
    meta = {"frontend": "snnc.attention", "dt": DT, "input_bits": int(input_bits), "model": type(block).__name__}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


# -- chip form -------------------------------------------------------------------------------------------
@dataclass
class ChipSequence:
    """The chip graph of a sequence model and how to read it.

    `latency`: steps from an input row to the logits integrator (every projection is one step, plus
    the delays that align a product's ports); run `steps(T)` steps for T rows, padding zeros;
    the logits are the integrator's voltage at the last step times `logit_scale`.
    """

    chip: ChipGraph
    latency: int
    logit_scale: float
    notes: list[str]

    def steps(self, rows: int) -> int:
        return int(rows) + self.latency

    def pad(self, x: np.ndarray) -> np.ndarray:
        """[B, T, d] integer rows -> [B, steps(T), d] with zero rows after them."""
        x = np.asarray(x)
        return np.concatenate([x, np.zeros((x.shape[0], self.latency, *x.shape[2:]), x.dtype)], axis=1)

    def logits(self, voltage: np.ndarray) -> np.ndarray:
        """Logits from the output voltage record [B, steps, classes] (last step)."""
        return np.asarray(voltage)[:, -1].astype(np.float64) * self.logit_scale


def _record(node) -> dict | None:
    raw = (getattr(node, "metadata", None) or {}).get(EXT_KEY)
    if isinstance(raw, bytes):
        raw = raw.decode()
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
    except (TypeError, ValueError):
        raise GraphError("snnc extension metadata is not JSON", where=f"metadata[{EXT_KEY!r}]", got=str(raw)[:60]) from None
    if not isinstance(rec, dict) or rec.get("version") != EXT_VERSION:
        raise GraphError("unsupported snnc extension version", where=f"metadata[{EXT_KEY!r}]", expected=EXT_VERSION, got=rec)
    return rec


def _grid(w: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Integer weights and the least k with w = integer / 2**k exactly, the integers as
    Lava's 8-bit Dense applies them (unchanged by its truncation: even when the signs are mixed)."""
    w = np.asarray(w, np.float64)
    for k in range(0, 24):
        scaled = w * 2.0**k
        if np.abs(scaled).max(initial=0) > 256:
            break
        if np.all(scaled == np.round(scaled)):
            ints = scaled.astype(np.int64)
            if np.array_equal(truncate_weights(ints, 8), ints):
                return ints, k
    raise ParameterError(
        "weights are not on an 8-bit power-of-two grid", where=where,
        expected=f"integer / 2**k with |integer| <= {MAX_WEIGHT}", got=float(np.abs(w).max(initial=0)),
        hint="train with the blocks' quantized weights (frac_bits) so the chip holds the float model's numbers",
    )


def nir_to_chip(graph: nir.NIRGraph, *, where: str = "<attention NIR graph>", calibration: np.ndarray | None = None) -> ChipSequence:
    """Lower the NIR form written by `to_nir` (also after nir.write/nir.read) to a chip graph.

    `calibration` (integer rows [N, T, d]) sizes the logits integrator: its 24-bit current and
    voltage must hold one step's input and the sum over time, so the readout gets the smallest
    right shift (weight_exp < 0, a floor per step: stated in the notes) that keeps both within half
    their range on that data; every relay is checked not to saturate. Without it the readout is not
    shifted and a note says the range is unchecked.
    """
    nodes, edges = graph.nodes, [(str(a), str(b)) for a, b in graph.edges]
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    input_bits = int((graph.metadata or {}).get("input_bits", 8))
    chip = ChipGraph(meta={"dt": 1e-3, "frontend": "snnc.attention"})
    unit: dict[str, float] = {}  # float value of one payload unit of every chip source
    notes: list[str] = []
    arrival: dict[str, int] = {}
    kinds = {}
    records: dict[str, dict] = {}  # each node's snnc extension record ({} without one)
    for name, node in nodes.items():
        rec = records[name] = _record(node) or {}
        if isinstance(node, nir.Input):
            kinds[name] = "input"
        elif isinstance(node, nir.Linear) and not isinstance(node, nir.Affine):
            kinds[name] = "linear"
        elif isinstance(node, nir.Scale) and rec and rec.get("op") == "product":
            kinds[name] = "product"
        elif isinstance(node, (nir.IF, nir.LI, nir.I, nir.Output)):
            kinds[name] = type(node).__name__
        else:
            what = "a Scale without the snnc product key" if isinstance(node, nir.Scale) else type(node).__name__
            raise UnsupportedNodeError(
                f"node {what} is not part of the attention/SSM chip form", where=f"{where}: node {name!r}",
                expected="Input, Linear, IF, LI, I, Output and snnc product carriers",
                hint="S4D's complex diagonal states have only a float model in Lava 0.10 (lava.proc.s4d); use SpikingSSM's real decays"
                if "s4" in name.lower() else "export the model with attention.to_nir",
            )

    def linear_source(lin: str) -> str:
        src = preds.get(lin, [])
        if len(src) != 1 or kinds.get(src[0]) in ("linear", None):
            raise GraphError("a Linear must be fed by exactly one neuron or input node", where=f"{where}: node {lin!r}", got=src)
        return src[0]

    order = _topological(nodes, edges, where)
    for name in order:
        kind, node = kinds[name], nodes[name]
        if kind == "input":
            shape = tuple(int(d) for d in np.atleast_1d(node.input_type["input"]))
            chip.add(InputPopulation(name, shape, num_message_bits=input_bits))
            unit[name], arrival[name] = 1.0, 0
            continue
        if kind in ("linear", "Output"):
            continue
        incoming = preds.get(name, [])
        rec = records[name]
        if kind == "product":
            size = int(np.size(node.scale))
            chip.add(Population(name, (size,), model="product", vth=0, prod_exp=int(rec.get("exp", 0))))
            scale, when = 1.0, {}
            for port in ("a_in1", "a_in2"):
                lins = rec["ports"].get(port, [])
                if len(lins) != 1 or lins[0] not in incoming:
                    raise GraphError(f"product port {port} must name one Linear that feeds it", where=f"{where}: node {name!r}", got=lins)
                proj, a_unit = _projection(chip, lins[0], linear_source(lins[0]), name, nodes[lins[0]].weight, unit, port, where)
                scale *= a_unit
                when[port] = arrival[proj.src] + 1
            late = max(when.values())
            for port, t in when.items():  # delay the earlier port so both arrive in the same step
                if t < late:
                    chip.projections[f"{name}.{port}"].delay = late - t
                    notes.append(f"{name}.{port}: delay {late - t} aligns the product's ports")
            unit[name], arrival[name] = scale, late  # the float value is floor(a1 a2 / 2**exp) in units of u1 u2
            continue
        if not incoming or any(kinds[i] != "linear" for i in incoming) or (kind == "IF" and len(incoming) != 1):
            raise GraphError("a neuron node must be fed by Linear nodes (an IF by exactly one)", where=f"{where}: node {name!r}",
                             got=incoming)
        # one input unit for all Linears into the node: the finest any of them needs (powers of two)
        a_unit = min(unit[linear_source(lin)] / 2.0 ** _grid(nodes[lin].weight, f"{where}: node {lin!r}")[1] for lin in incoming)
        size = int(np.size(node.r))
        if kind == "IF":
            vth = np.asarray(node.v_threshold, np.float64) / a_unit
            if np.any(vth != np.round(vth)) or len(set(vth.tolist())) != 1:
                raise ParameterError("IF thresholds must be one integer number of input units per layer", where=f"{where}: node {name!r}",
                                     got=vth.tolist()[:4])
            chip.add(Population(name, (size,), du=DECAY_ONE - 1, dv=0, vth=int(vth[0])))
            unit[name] = 1.0
        else:  # LI (diagonal recurrence) or I (integrator): a relay that sends v >> shift
            dv: np.ndarray | int = 0  # I: no decay
            if kind == "LI":
                decay = DECAY_ONE * DT / np.asarray(node.tau, np.float64)
                tau_r = np.asarray(node.r, np.float64) * DT / np.asarray(node.tau, np.float64)
                if not (np.allclose(decay, np.rint(decay), rtol=0, atol=1e-9) and np.allclose(tau_r, 1.0, rtol=1e-12, atol=0)):
                    raise ParameterError("LI decays must be integer / 4096 per step with r = tau / dt", where=f"{where}: node {name!r}")
                dv = np.rint(decay).astype(np.int64)
            frac = int(rec.get("frac_bits", 0))
            is_output = any(kinds.get(b) == "Output" for a, b in edges if a == name)
            shift = 0 if is_output else STATE_SHIFT + int(round(-math.log2(a_unit))) - frac
            if shift < 0:
                raise ParameterError("the payload cannot carry that many fraction bits", where=f"{where}: node {name!r}",
                                     got=frac, hint="lower frac_bits or refine the incoming weights' grid")
            chip.add(Population(name, (size,), du=DECAY_ONE - 1, dv=dv, vth=0, model="relay", relay_shift=shift))
            unit[name] = a_unit / 2.0**STATE_SHIFT * 2.0**shift
            if is_output:
                chip.outputs[name] = OutputPort(name, "v")
                output_unit = a_unit / 2.0**STATE_SHIFT
        for lin in incoming:
            _projection(chip, lin, linear_source(lin), name, nodes[lin].weight, unit, "a_in", where, a_unit=a_unit)
        arrival[name] = max(arrival[linear_source(lin)] for lin in incoming) + 1
    if not chip.outputs:
        raise GraphError("no integrator feeds the Output", where=where, hint="export with attention.to_nir")
    out = next(iter(chip.outputs.values())).population
    chip.meta["time_shift"] = arrival[out]
    seq = ChipSequence(chip=chip.validate(), latency=arrival[out], logit_scale=output_unit, notes=notes)
    if calibration is None:
        notes.append("no calibration data: the range of the logits integrator (24 bits) is unchecked")
    else:
        _size_readout(seq, np.asarray(calibration), where)
    return seq


def _size_readout(seq: ChipSequence, rows: np.ndarray, where: str) -> None:
    """Shift the readout right until one step's input (<< 6) and the sum over time fit in half of
    the integrator's 24 bits on `rows`; refuse relays that saturate there."""
    from snnc.backends.sim import SimBackend
    from snnc.ir.bits import SPECS

    chip = seq.chip
    out = next(iter(chip.outputs.values())).population
    feeds = chip.incoming(out)
    sources = sorted({p.src for p in feeds})
    relays = [n for n, p in chip.populations.items() if p.model == "relay" and n != out]
    run = SimBackend().build(chip).run(seq.pad(rows), probes=[*sources, *(f"{r}/v" for r in relays)])
    for name in relays:
        if np.abs(run.probes[f"{name}/v"]).max(initial=0) >= SPECS["v"].hi:
            raise ParameterError("a relay saturates on the calibration data", where=f"{where}: node {name!r}",
                                 hint="lower the block's frac_bits (a coarser weight grid leaves more headroom)")
    step = np.sum([  # [N, steps, classes]: the readout's input per step (a neuron node has at least one feed)
        run.probes[proj.src].reshape(rows.shape[0], -1, chip.source(proj.src).size).astype(np.int64)
        @ np.asarray(proj.weights, np.int64).T for proj in feeds
    ], axis=0)
    half = 2 ** (SPECS["u"].bits - 2)
    need = max(np.abs(step).max(initial=0), np.abs(np.cumsum(step, axis=1)).max(initial=0)) << STATE_SHIFT
    shift = max(0, int(need).bit_length() - int(half).bit_length() + 1)
    if shift:
        for proj in feeds:
            proj.weight_exp = -shift
        seq.logit_scale *= 2.0**shift
        seq.notes.append(f"readout shifted right by {shift} bits (weight_exp -{shift}, a floor per step) so that the "
                         f"logits integrator holds the calibration data's largest sum")


def _projection(chip: ChipGraph, lin: str, src: str, dst: str, weight, unit: dict, port: str, where: str,
                a_unit: float | None = None):
    """A dense projection for Linear `lin`; returns it and the float value of one unit it delivers
    (`a_unit` when given: the weights are scaled to deliver exactly that unit, or it is an error)."""
    w_int, k = _grid(weight, f"{where}: node {lin!r}")
    if a_unit is not None and unit[src] / 2.0**k != a_unit:
        scaled = np.asarray(weight, np.float64) * unit[src] / a_unit
        w_int = np.rint(scaled).astype(np.int64)
        if np.any(w_int != scaled) or np.abs(w_int).max(initial=0) > 256 or not np.array_equal(truncate_weights(w_int, 8), w_int):
            raise ParameterError("weights cannot deliver the unit the other inputs of their node use", where=f"{where}: node {lin!r}",
                                 expected=f"integers of 8-bit Lava weights at unit {a_unit}", got=float(np.abs(scaled).max(initial=0)),
                                 hint="give the Linears into one node sources of one payload unit, or coarser weights")
        k = int(round(math.log2(unit[src] / a_unit)))
    source = chip.source(src)
    graded = not (isinstance(source, Population) and source.spiking)
    name = f"{dst}.{port}" if port != "a_in" else lin
    proj = chip.add(Projection(name, src, dst, w_int, num_message_bits=24 if graded else 0, port=port,
                               meta={"nir_node": lin}))
    return proj, unit[src] / 2.0**k


def _topological(nodes, edges, where: str) -> list[str]:
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    if not nx.is_directed_acyclic_graph(g):
        raise GraphError("the attention/SSM NIR form has no cycles (recurrence is inside LI/I nodes)", where=where)
    return list(nx.topological_sort(g))
