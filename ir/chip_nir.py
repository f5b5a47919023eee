"""Chip-level graphs as NIR files: `chip_to_nir`, `chip_from_nir`, `is_chip_nir`.

A `ChipGraph` is written as an ordinary NIR graph so other NIR tools can read it, and so that
`chip_from_nir(chip_to_nir(g))` gives back every field exactly (also through nir.write/nir.read):

- input population  -> `nir.Input(shape)`
- population        -> `nir.CubaLIF` with float parameters of shape `population.shape`
- projection        -> `nir.Affine` (dense and sparse; bias 0) or `nir.Conv2d` (conv; bias 0),
                       with a `nir.Flatten` in front when a dense/sparse projection leaves a
                       multi-dimensional source (dense projections flatten in C order)
- output port       -> `nir.Output` fed by its population
- the integers      -> node metadata under one key, "snnc", a JSON string (nir's HDF5 writer
                       stores flat values only; a string survives nir.write/nir.read unchanged);
                       graph metadata["snnc"] holds level="chip", dt, the graph's meta and the
                       insertion order of every table.

Float parameters equal the integer model (Lava fixed point, docs/loihi-fixed-point.md) under
forward Euler at step `dt`, with the current `u` updated before the voltage `v` and synaptic input
scaled by 2**(6 + weight_exp):

    tau_syn     = dt * 4096 / (du + 1)           (u decays by (4096 - du - 1) / 4096 per step)
    tau_mem     = dt * 4096 / dv                 (dv = 0, no leak: dt * 2**40, see DV0_TAU_STEPS)
    w_in        = tau_syn / dt                   (one input unit adds one unit of u)
    r           = tau_mem / dt                   (u adds to v one to one)
    v_leak      = bias_mant * 2**bias_exp * tau_mem / dt   (the bias adds to v every step)
    v_threshold = vth * 64 (ternary: vth_hi * 64), v_reset = the integer v_reset (v units);
    reset_mode and relay settings live in the snnc metadata (NIR has no field for them)
    sigma-delta populations (Lava Delta / SigmaDelta / Sigma) are written as the same CubaLIF
    carrier too, their fields (act_bias, act_mode, cum_error, spike_exp, state_exp) in the metadata;
    product / atrlif / rf / rf_iz populations (Lava ProdNeuron / ATRLIF / RF / RF_IZ) are written as
    the same CubaLIF carrier, whose floats then describe only du/dv/vth/bias: their dynamics (the
    product of two ports, the adaptive threshold: prod_exp, theta_step, d_theta, d_r; the resonator:
    sin_decay, cos_decay, decay_bits, state_exp) and a projection's target `port` (a_in1/a_in2 of a
    product, a_real_in/a_imag_in of a resonator) live only in the snnc metadata; NIR has no node for them
    weights     = effective integer weights (after Lava's truncation) * 2**(6 + weight_exp)

What NIR cannot express lives only in the metadata: the one-step latency of every projection
(Loihi delivers a spike to the next layer one step later; NIR edges are instantaneous; a `direct`
input projection has none), synaptic
delays, Lava's rounding (truncation toward zero, 24-bit wrap of u, saturation of v), the
LIFReset/TernaryLIF variants, graded-spike bit widths, and which state an output port reads.
A dense projection into a multi-dimensional population has no NIR reshape to match its shape.
"""
from __future__ import annotations

import json
import math
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

from .fixed_point.units import DECAY_ONE, STATE_UNIT
from .chip import ChipGraph, ConvGeometry, ConvProjection, InputPopulation, OutputPort, Population, Projection
from .errors import ModelFileError, ParameterError, SnncError
from .timestep import check_dt

KEY = "snnc"
FORMAT_VERSION = 1
DEFAULT_DT = 1e-4
PROGRAMMABLE_FIELDS = ("prod_exp", "theta_step", "d_theta", "d_r", "refractory_period", "sin_decay", "cos_decay", "decay_bits")
SIGMA_DELTA_FIELDS = ("act_bias", "act_mode", "cum_error", "spike_exp", "state_exp")
"""Population fields of the sigma-delta kinds (metadata only, like the product/atrlif fields)."""
"""Population fields of the product, atrlif, lif_refractory and rf/rf_iz kinds (metadata only; see the module docstring)."""
"""Step used when neither the call nor graph.meta['dt'] gives one (the NIR paper's dt)."""
DV0_TAU_STEPS = 2.0**40
"""tau_mem / dt written for dv = 0 (no leak): NIR needs a finite time constant; a power of two
keeps r = tau_mem / dt and dt / tau_mem exact, and the leak (2**-40 per step) is negligible."""


# -- public API ---------------------------------------------------------------------------------
def chip_to_nir(graph: ChipGraph, *, dt: float | None = None) -> nir.NIRGraph:
    """The chip graph as a NIR graph whose float values equal the integer model at step `dt`.

    `dt` defaults to graph.meta['dt'], then to 1e-4 s.
    """
    graph.validate()
    dt = check_dt(dt if dt is not None else graph.meta.get("dt", DEFAULT_DT), "chip graph meta['dt']")
    names = _NameTable()
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    nir_name: dict[str, str] = {}

    for inp in graph.inputs.values():
        nir_name[inp.name] = names.take(inp.name)
        nodes[nir_name[inp.name]] = nir.Input(
            np.array(inp.shape), metadata=_meta({"kind": "input", "name": inp.name, "num_message_bits": inp.num_message_bits})
        )
    for pop in graph.populations.values():
        nir_name[pop.name] = names.take(pop.name)
        nodes[nir_name[pop.name]] = _population_node(pop, dt)
    for proj in graph.projections.values():
        pname = names.take(proj.name)
        nodes[pname] = _projection_node(proj, graph)
        src = nir_name[proj.src]
        if not isinstance(proj, ConvProjection) and len(graph.source(proj.src).shape) > 1:
            fname = names.take(f"{proj.name}.flatten")
            shape = np.array(graph.source(proj.src).shape)
            nodes[fname] = nir.Flatten(
                input_type={"input": shape}, start_dim=0, end_dim=-1,
                metadata=_meta({"kind": "flatten", "projection": proj.name}),
            )
            edges.append((src, fname))
            src = fname
        edges.append((src, pname))
        edges.append((pname, nir_name[proj.dst]))
    for out_name, port in graph.outputs.items():
        oname = names.take(out_name)
        shape = np.array(graph.populations[port.population].shape)
        nodes[oname] = nir.Output(
            shape, metadata=_meta({"kind": "output", "name": out_name, "population": port.population, "var": port.var})
        )
        edges.append((nir_name[port.population], oname))
    header = {
        "level": "chip",
        "format_version": FORMAT_VERSION,
        "dt": dt,
        "meta": _encode(graph.meta, "graph meta"),
        "order": {
            "inputs": list(graph.inputs),
            "populations": list(graph.populations),
            "projections": list(graph.projections),
            "outputs": list(graph.outputs),
        },
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={KEY: json.dumps(header)}, type_check=False)


def is_chip_nir(nir_graph: Any) -> bool:
    """True when `nir_graph` was written by `chip_to_nir` (graph metadata snnc.level == 'chip')."""
    header = _header(nir_graph)
    return isinstance(header, dict) and header.get("level") == "chip"


def chip_from_nir(nir_graph: nir.NIRGraph, *, where: str = "<chip NIR graph>") -> ChipGraph:
    """Rebuild the ChipGraph `chip_to_nir` wrote; every integer comes from the snnc metadata.

    Checks that the edges and the float parameters still agree with those integers, so a file
    edited by another tool is an error rather than a silently different network.
    """
    header = _header(nir_graph)
    if not isinstance(header, dict) or header.get("level") != "chip":
        raise ModelFileError(
            "not a chip-level NIR graph (graph metadata has no snnc level='chip')",
            where=where,
            hint="compile the model first, or load it as a NIR-level graph",
        )
    version = header.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ModelFileError(
            "unsupported chip-level NIR format version (written by a newer or another tool?)",
            where=where,
            expected=f"an integer <= {FORMAT_VERSION}",
            got=version,
        )
    try:
        return _rebuild(nir_graph, header, where)
    except SnncError as exc:
        if exc.where and exc.where.startswith(where):
            raise
        raise type(exc)(exc.what, where=f"{where}: {exc.where}" if exc.where else where, expected=exc.expected, got=exc.got, hint=exc.hint) from exc
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, MemoryError) as exc:
        raise ModelFileError(
            f"malformed snnc metadata ({type(exc).__name__}: {exc})",
            where=where,
            hint="the file was edited or written by an incompatible tool",
        ) from exc


def float_parameters(pop: Population, dt: float) -> dict[str, np.ndarray]:
    """The CubaLIF parameters (arrays of `pop.shape`) equal to the integer neuron at step dt."""
    shape = pop.shape
    du = np.broadcast_to(np.asarray(pop.du, dtype=np.float64), shape)
    dv = np.broadcast_to(np.asarray(pop.dv, dtype=np.float64), shape)
    bias = np.broadcast_to(
        np.asarray(pop.bias_mant, dtype=np.float64) * np.exp2(np.asarray(pop.bias_exp, dtype=np.float64)), shape
    )
    tau_syn = dt * float(DECAY_ONE) / (du + 1.0)
    steps_mem = np.where(dv > 0, float(DECAY_ONE) / np.where(dv > 0, dv, 1.0), DV0_TAU_STEPS)
    tau_mem = dt * steps_mem
    if pop.model == "ternary":
        vth = np.full(shape, float(pop.vth_hi) * float(STATE_UNIT))
    else:
        vth = np.broadcast_to(np.asarray(pop.vth, dtype=np.float64) * float(STATE_UNIT), shape)
    return {
        "tau_syn": np.array(tau_syn),
        "tau_mem": np.array(tau_mem),
        "r": np.array(steps_mem, dtype=np.float64),
        "v_leak": np.array(bias * steps_mem),
        "v_threshold": np.array(vth),
        "v_reset": np.broadcast_to(np.asarray(pop.v_reset, dtype=np.float64), shape).copy(),
        "w_in": np.array(float(DECAY_ONE) / (du + 1.0)),
    }


def float_weights(proj: Projection) -> np.ndarray:
    """The float weights of a projection's NIR node: effective integers * 2**(6 + weight_exp)."""
    eff = proj.effective_weights()
    if sp.issparse(eff):
        eff = eff.toarray()
    return np.asarray(eff, dtype=np.float64) * 2.0 ** (6 + int(proj.weight_exp))


# -- writing helpers ----------------------------------------------------------------------------
class _NameTable:
    """NIR node names: the chip names where HDF5 allows them, unique otherwise."""

    def __init__(self):
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        base = name.replace("/", "|") if name not in ("", ".", "..") else f"_{len(self.used)}"
        candidate, i = base, 1
        while candidate in self.used:
            candidate, i = f"{base}~{i}", i + 1
        self.used.add(candidate)
        return candidate


def _meta(record: dict) -> dict:
    return {KEY: json.dumps(record)}


def _population_node(pop: Population, dt: float) -> nir.CubaLIF:
    record = {
        "kind": "population",
        "name": pop.name,
        "shape": list(pop.shape),
        **{k: _encode(getattr(pop, k), f"population {pop.name!r}.{k}") for k in ("du", "dv", "vth", "bias_mant", "bias_exp")},
        "model": pop.model,
        "reset_interval": _encode(pop.reset_interval, f"population {pop.name!r}.reset_interval"),
        "reset_offset": _encode(pop.reset_offset, f"population {pop.name!r}.reset_offset"),
        "vth_hi": _encode(pop.vth_hi, f"population {pop.name!r}.vth_hi"),
        "vth_lo": _encode(pop.vth_lo, f"population {pop.name!r}.vth_lo"),
        "reset_mode": pop.reset_mode,
        "v_reset": _encode(pop.v_reset, f"population {pop.name!r}.v_reset"),
        "relay_shift": _encode(pop.relay_shift, f"population {pop.name!r}.relay_shift"),
        **{k: _encode(getattr(pop, k), f"population {pop.name!r}.{k}") for k in PROGRAMMABLE_FIELDS},
        **{k: _encode(getattr(pop, k), f"population {pop.name!r}.{k}") for k in SIGMA_DELTA_FIELDS},
        "meta": _encode(pop.meta, f"population {pop.name!r}.meta"),
    }
    return nir.CubaLIF(**float_parameters(pop, dt), metadata=_meta(record))


def _projection_node(proj: Projection, graph: ChipGraph) -> nir.NIRNode:
    where = f"projection {proj.name!r}"
    record = {
        "kind": "projection",
        "name": proj.name,
        "src": proj.src,
        "dst": proj.dst,
        "type": proj.kind,
        "weights": _encode(proj.weights, f"{where}.weights"),
        "weight_exp": _encode(proj.weight_exp, f"{where}.weight_exp"),
        "num_weight_bits": _encode(proj.num_weight_bits, f"{where}.num_weight_bits"),
        "num_message_bits": _encode(proj.num_message_bits, f"{where}.num_message_bits"),
        "delay": _encode(proj.delay, f"{where}.delay"),
        "conv": None,
        "meta": _encode(proj.meta, f"{where}.meta"),
        "port": proj.port,
        "direct": bool(proj.direct),
    }
    weight = float_weights(proj)
    if isinstance(proj, ConvProjection):
        c = proj.conv
        record["conv"] = {
            "in_shape": list(c.in_shape), "out_shape": list(c.out_shape), "kernel": list(c.kernel),
            "stride": list(c.stride), "padding": list(c.padding), "dilation": list(c.dilation), "groups": c.groups,
        }
        return nir.Conv2d(
            input_shape=np.array(c.in_shape[1:]),
            weight=weight,
            stride=np.array(c.stride),
            padding=np.array(c.padding),
            dilation=np.array(c.dilation),
            groups=int(c.groups),
            bias=np.zeros(c.out_shape[0]),
            metadata=_meta(record),
        )
    return nir.Affine(weight=weight, bias=np.zeros(weight.shape[0]), metadata=_meta(record))


# -- JSON encoding of arrays, sparse matrices and meta values --------------------------------------
def _encode(value, where: str):
    """JSON-ready form that `_decode` turns back into an equal value (type, dtype, shape)."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        if value.dtype.kind not in "biuf":
            raise ParameterError("cannot store this value in a chip NIR file", where=where, got=type(value).__name__)
        return {"__npscalar__": value.dtype.str, "value": _encode(value.item(), where)}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"__float__": repr(value)} if not math.isfinite(value) else value
    if sp.issparse(value):
        m = sp.csr_matrix(value)
        return {
            "__csr__": list(m.shape),
            "dtype": m.dtype.str,
            "indptr": m.indptr.tolist(),
            "indices": m.indices.tolist(),
            "data": [_encode(x, where) for x in m.data.tolist()] if m.dtype.kind == "f" else m.data.tolist(),
        }
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ParameterError("cannot store this array in a chip NIR file", where=where, got=str(value.dtype))
        flat = value.ravel().tolist()
        if value.dtype.kind == "f":
            flat = [_encode(x, where) for x in flat]
        return {"__ndarray__": value.dtype.str, "shape": list(value.shape), "data": flat}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {"__dict__": [[_encode(k, where), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": [_encode(v, where) for v in sorted(value, key=repr)], "frozen": isinstance(value, frozenset)}
    raise ParameterError(
        "cannot store this value in a chip NIR file",
        where=where,
        got=type(value).__name__,
        hint="meta may hold numbers, strings, None, lists, tuples, dicts, sets and numeric numpy arrays",
    )


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__float__" in value:
        return float(value["__float__"])
    if "__npscalar__" in value:
        return np.dtype(value["__npscalar__"]).type(_decode(value["value"]))
    if "__ndarray__" in value:
        dtype = np.dtype(value["__ndarray__"])
        data = [_decode(x) for x in value["data"]]
        return np.array(data, dtype=dtype).reshape(value["shape"])
    if "__csr__" in value:
        dtype = np.dtype(value["dtype"])
        data = np.array([_decode(x) for x in value["data"]], dtype=dtype)
        return sp.csr_matrix(
            (data, np.array(value["indices"], dtype=np.int32), np.array(value["indptr"], dtype=np.int32)),
            shape=tuple(value["__csr__"]),
        )
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_hashable(_decode(k)): _decode(v) for k, v in value["__dict__"]}
    if "__set__" in value:
        items = [_hashable(_decode(v)) for v in value["__set__"]]
        return frozenset(items) if value.get("frozen") else set(items)
    return {k: _decode(v) for k, v in value.items()}


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


# -- reading helpers ------------------------------------------------------------------------------
def _header(nir_graph) -> dict | None:
    meta = getattr(nir_graph, "metadata", None)
    if not isinstance(meta, dict):
        return None
    raw = meta.get(KEY)
    if isinstance(raw, bytes):
        raw = raw.decode("utf8", "replace")
    if not isinstance(raw, str):
        return None
    try:
        header = json.loads(raw)
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _record(node, name: str, where: str) -> dict:
    meta = getattr(node, "metadata", None)
    raw = meta.get(KEY) if isinstance(meta, dict) else None
    if isinstance(raw, bytes):
        raw = raw.decode("utf8", "replace")
    if not isinstance(raw, str):
        raise ModelFileError(
            "node has no snnc metadata",
            where=f"{where}: node {name!r}",
            hint="a chip-level file holds only nodes written by snnc; do not add nodes with other tools",
        )
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ModelFileError("snnc metadata is not valid JSON", where=f"{where}: node {name!r}", got=str(exc)) from None
    if not isinstance(record, dict) or "kind" not in record:
        raise ModelFileError("snnc metadata has no 'kind'", where=f"{where}: node {name!r}", got=raw[:80])
    return record


_NODE_CLASS = {"input": nir.Input, "population": nir.CubaLIF, "flatten": nir.Flatten, "output": nir.Output}


def _rebuild(nir_graph, header: dict, where: str) -> ChipGraph:
    nodes = getattr(nir_graph, "nodes", None)
    if not isinstance(nodes, dict):
        raise ModelFileError("graph has no nodes mapping", where=where)
    dt = check_dt(header.get("dt", DEFAULT_DT), "chip graph meta['dt']")
    records: dict[str, dict] = {}
    by_kind: dict[str, dict[str, tuple[str, dict]]] = {"input": {}, "population": {}, "projection": {}, "output": {}, "flatten": {}}
    skipped = set()
    for nname, node in nodes.items():
        if _added_port(node):
            skipped.add(nname)  # added by nir.read's type inference; carries no computation
            continue
        rec = _record(node, nname, where)
        kind = rec["kind"]
        if kind not in by_kind:
            raise ModelFileError("unknown snnc node kind", where=f"{where}: node {nname!r}", expected=sorted(by_kind), got=kind)
        expected_cls = _NODE_CLASS.get(kind) or (nir.Conv2d if rec.get("type") == "conv" else nir.Affine)
        if not isinstance(node, expected_cls):
            raise ModelFileError(
                f"snnc {kind} stored in a node of the wrong type",
                where=f"{where}: node {nname!r}",
                expected=expected_cls.__name__,
                got=type(node).__name__,
            )
        key = rec.get("projection") if kind == "flatten" else rec.get("name")
        if not isinstance(key, str) or key in by_kind[kind]:
            raise ModelFileError("snnc node name missing or repeated", where=f"{where}: node {nname!r}", got=key)
        records[nname] = rec
        by_kind[kind][key] = (nname, rec)

    order = header.get("order", {})
    graph = ChipGraph(meta=_decode(header.get("meta", {})))
    for kind in ("inputs", "populations", "projections", "outputs"):
        listed = order.get(kind, [])
        present = set(by_kind[kind[:-1]])
        if sorted(listed) != sorted(present):
            raise ModelFileError(
                f"the {kind} listed in the graph metadata do not match the nodes",
                where=where,
                expected=sorted(listed),
                got=sorted(present),
            )
    for name in order.get("inputs", []):
        nname, rec = by_kind["input"][name]
        node = nodes[nname]
        graph.add(InputPopulation(name=name, shape=tuple(int(d) for d in np.atleast_1d(node.input_type["input"])), num_message_bits=_decode(rec["num_message_bits"])))
    for name in order.get("populations", []):
        nname, rec = by_kind["population"][name]
        pop = Population(
            name=name,
            shape=tuple(rec["shape"]),
            **{k: _decode(rec[k]) for k in ("du", "dv", "vth", "bias_mant", "bias_exp", "reset_interval", "reset_offset", "vth_hi", "vth_lo", "meta")},
            model=rec["model"],
            # files written before reset modes existed reset to zero, as Lava's LIF does
            reset_mode=rec.get("reset_mode", "zero"),
            **{k: _decode(rec[k]) for k in ("v_reset", "relay_shift") if k in rec},
            **{k: _decode(rec[k]) for k in PROGRAMMABLE_FIELDS if k in rec},  # absent in files of older snnc
            **{k: _decode(rec[k]) for k in SIGMA_DELTA_FIELDS if k in rec},
        )
        _check_floats(nodes[nname], float_parameters(pop, dt), f"{where}: node {nname!r}")
        graph.add(pop)
    for name in order.get("projections", []):
        nname, rec = by_kind["projection"][name]
        conv = rec.get("conv")
        proj = Projection(
            name=name,
            src=rec["src"],
            dst=rec["dst"],
            weights=_decode(rec["weights"]),
            kind=rec["type"],
            weight_exp=_decode(rec["weight_exp"]),
            num_weight_bits=_decode(rec["num_weight_bits"]),
            num_message_bits=_decode(rec["num_message_bits"]),
            delay=_decode(rec["delay"]),
            conv=_conv_geometry(conv) if conv else None,
            meta=_decode(rec["meta"]),
            port=rec.get("port", "a_in"),  # files written before product ports had none
            direct=bool(rec.get("direct", False)),  # files written before direct inputs had none
        )
        _check_floats(nodes[nname], {"weight": float_weights(proj)}, f"{where}: node {nname!r}")
        graph.add(proj)
    for name in order.get("outputs", []):
        nname, rec = by_kind["output"][name]
        graph.outputs[name] = OutputPort(population=rec["population"], var=rec["var"])
    graph.validate()
    _check_edges(nir_graph, graph, by_kind, skipped, where)
    return graph


def _conv_geometry(record: dict[str, Any]) -> ConvGeometry:
    """A conv projection's geometry from its JSON record (lists back to tuples)."""
    fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record.items()}
    return ConvGeometry(**fields)


def _added_port(node) -> bool:
    """An Input/Output node without snnc metadata, as nir.read(type_check=True) adds for
    populations without incoming projections or without an output port."""
    meta = getattr(node, "metadata", None)
    return isinstance(node, (nir.Input, nir.Output)) and not (isinstance(meta, dict) and KEY in meta)


def _check_floats(node, expected: dict[str, np.ndarray], where: str) -> None:
    for key, want in expected.items():
        try:
            got = np.asarray(getattr(node, key), dtype=np.float64)
            same = got.shape == want.shape and np.allclose(got, want, rtol=1e-6, atol=0.0)
        except (TypeError, ValueError, AttributeError):
            same = False
        if not same:
            raise ModelFileError(
                f"float parameter {key!r} disagrees with the snnc integers",
                where=f"{where}.{key}",
                hint="the file was edited by another tool; recompile the model instead",
            )


def _check_edges(nir_graph, graph: ChipGraph, by_kind: dict, skipped: set, where: str) -> None:
    nname = {name: entry[0] for kind in ("input", "population") for name, entry in by_kind[kind].items()}
    want = set()
    for proj in graph.projections.values():
        pnode = by_kind["projection"][proj.name][0]
        src = nname[proj.src]
        if proj.name in by_kind["flatten"]:
            fnode = by_kind["flatten"][proj.name][0]
            want.add((src, fnode))
            src = fnode
        want.add((src, pnode))
        want.add((pnode, nname[proj.dst]))
    for out_name, port in graph.outputs.items():
        want.add((nname[port.population], by_kind["output"][out_name][0]))
    got = {(str(a), str(b)) for a, b in nir_graph.edges if a not in skipped and b not in skipped}
    if got != want:
        diff = sorted(got ^ want)[:4]
        raise ModelFileError(
            "edges disagree with the snnc metadata",
            where=where,
            got=diff,
            hint="the file was edited by another tool; recompile the model instead",
        )
