"""The NIR-level graph: flattened, validated and shape-inferred.

`Graph` wraps the nodes of the `nir` package (never re-implemented) with what the compiler needs
and NIR leaves implicit: nested subgraphs flattened (inner names prefixed `outer.inner`, see
`snnc.ir.nesting`), every node's input/output shape, and which edges are recurrent (they close a
cycle, so their signal arrives one step later). Parameters are kept exactly as given, scalars or
arrays (NIR issue #176: no forced broadcasting); file quirks with one meaning are repaired with a
note (`snnc.ir.repairs`). `Graph.to_nir()` writes it back in a form `nir.read` loads;
read -> write -> read is lossless.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import networkx as nx
import nir
import numpy as np

from . import repairs as R
from . import shapes as S
from .errors import GraphError, ModelFileError, ParameterError, ShapeError, UnsupportedNodeError
from .io import atomic_path
from .nesting import flatten
from .order import topological_order
from .reset_mode import state_reset_modes

# Parameters that must be finite; time constants must also be positive.
_TIME_CONSTANTS = {"tau", "tau_syn", "tau_mem"}
_NUMERIC_FIELDS = {
    "weight", "bias", "tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset",
    "w_in", "scale", "delay", "threshold",
}


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass
class Graph:
    """A flat NIR graph plus inferred shapes and recurrent edges.

    `nodes` maps names to `nir` node objects (Input and Output nodes included); `edges` is a list
    of (source, target) pairs; `recurrent` is the subset of edges that close a cycle.
    """

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]]
    metadata: dict = field(default_factory=dict)
    in_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    out_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    recurrent: set[tuple[str, str]] = field(default_factory=set)
    source: str = "<graph>"
    subgraphs: dict[str, list[str]] = field(default_factory=dict)  # nested subgraph -> its flat nodes
    notes: list[str] = field(default_factory=list)  # repairs made while reading (snnc.ir.repairs)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_nir(cls, model: "nir.NIRGraph | str | Path", *, validate: bool = True, source: str | None = None,
                 reset_mode: str | None = None, notes: list[str] | None = None) -> "Graph":
        """Read a NIR graph (object or file path), flatten it, infer shapes, validate it.

        `source` names the graph in error messages (default: the path, or "<graph>").
        `reset_mode` is given to spiking nodes whose metadata does not state one (see
        `snnc.ir.reset_mode`; None: assume "zero" and warn). Quirks with one meaning are repaired
        (`snnc.ir.repairs`): `notes` (from `read_nir_file`) and this reading's own repairs end up
        in `Graph.notes`, each stated once as a ReadNote.
        """
        source = source or "<graph>"
        notes = list(notes or [])
        if isinstance(model, (str, Path)):
            source = str(model)
            model = read_nir_file(model, notes=notes)
        if not isinstance(model, nir.NIRGraph):
            raise ModelFileError(
                "not a NIR graph", where=source, got=type(model).__name__, hint="pass a nir.NIRGraph or a .nir file"
            )
        flat = flatten(model, where=source)
        nodes, edges = flat.nodes, flat.edges
        seen: set[int] = set()
        for name, node in nodes.items():  # one subgraph object used twice: give each use its own nodes
            if id(node) in seen:
                nodes[name] = copy.deepcopy(node)
            seen.add(id(node))
        for name, node in nodes.items():  # stating a reset mode or repairing must not edit the caller's nodes
            nodes[name] = _scalars_back(copy.copy(node))
        state_reset_modes(nodes, reset_mode, source)
        metadata = getattr(model, "metadata", None)
        metadata = metadata if isinstance(metadata, dict) else {}
        graph = cls(nodes=nodes, edges=edges, metadata=dict(metadata), source=source, subgraphs=flat.subgraphs,
                    notes=[*notes, *flat.notes])
        if validate:
            graph.validate(repair=True)
        R.emit(graph.notes)
        return graph

    def copy(self) -> "Graph":
        """A copy whose nodes, edges and metadata can be changed. A node's parameter arrays are not
        copied (a layer's weights are most of a model's memory): the copy reads them through
        read-only views, as passes replace a node's arrays and never write into them."""
        memo = {id(v): _read_only(v) for node in self.nodes.values() for v in getattr(node, "__dict__", {}).values()
                if isinstance(v, np.ndarray)}
        return copy.deepcopy(self, memo)

    def to_nir(self) -> nir.NIRGraph:
        """The graph as a flat `nir.NIRGraph`.

        Parameters are copied unchanged, except that scalar neuron parameters are written per
        neuron (nir 1.0.8's type check takes a node's shape from its parameters) and named in the
        node's metadata, so that `Graph.from_nir` reads them back as the scalars they were. Shapes
        NIR leaves optional are filled in from inference when missing (Output shape, Conv
        `input_shape`, Flatten `input_type`), so that `nir.read` and other NIR tools load the file.
        """
        nodes = {}
        for name, node in self.nodes.items():
            node = copy.deepcopy(node)
            shape_in, shape_out = self.in_shapes.get(name), self.out_shapes.get(name)
            if shape_in is not None:
                _per_neuron(node, shape_in)
            if isinstance(node, nir.Output) and shape_in is not None:
                node.output_type = {"output": np.array(shape_in)}
                node.input_type = {"input": np.array(shape_in)}
            if isinstance(node, (nir.Conv1d, nir.Conv2d)) and node.input_shape is None and shape_in is not None:
                node.input_shape = int(shape_in[1]) if isinstance(node, nir.Conv1d) else np.array(shape_in[1:])
            for attr, key, shape in (("input_type", "input", shape_in), ("output_type", "output", shape_out)):
                current = getattr(node, attr, None)
                if shape is not None and (not isinstance(current, dict) or current.get(key) is None):
                    setattr(node, attr, {key: np.array(shape)})
            nodes[name] = node
        return nir.NIRGraph(nodes=nodes, edges=list(self.edges), metadata=dict(self.metadata), type_check=False)

    def write(self, path: str | Path) -> None:
        """Write the graph as a NIR file (see `write_nir`)."""
        write_nir(self.to_nir(), path)

    # -- structure ------------------------------------------------------------------------------
    @property
    def inputs(self) -> list[str]:
        return [n for n, node in self.nodes.items() if isinstance(node, nir.Input)]

    @property
    def outputs(self) -> list[str]:
        return [n for n, node in self.nodes.items() if isinstance(node, nir.Output)]

    def predecessors(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def nx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    def topo_order(self) -> list[str]:
        """Nodes in an order where every non-recurrent edge points forward."""
        return topological_order(list(self.nodes), [e for e in self.edges if e not in self.recurrent])

    def find_recurrent_edges(self) -> set[tuple[str, str]]:
        """Back edges of a depth-first search from the inputs (then any unreached node).

        These are the edges whose signal a simulator must take from the previous step.
        """
        adj: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            adj[a].append(b)
        state: dict[str, int] = {}  # 1 = on stack, 2 = done
        back: set[tuple[str, str]] = set()
        roots = self.inputs + [n for n in self.nodes if n not in self.inputs]
        for root in roots:
            if root in state:
                continue
            stack = [(root, iter(adj[root]))]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(adj[nxt])))
        return back

    # -- editing (for passes) -------------------------------------------------------------------
    def add_node(self, name: str, node: nir.NIRNode) -> None:
        if name in self.nodes:
            raise GraphError("duplicate node name", where=f"node {name!r}")
        self.nodes[name] = node

    def remove_node(self, name: str, *, bridge: bool = False) -> None:
        """Remove a node; with `bridge`, connect each predecessor to each successor."""
        preds, succs = self.predecessors(name), self.successors(name)
        del self.nodes[name]
        self.edges = [e for e in self.edges if name not in e]
        if bridge:
            for a in preds:
                for b in succs:
                    if (a, b) not in self.edges:
                        self.edges.append((a, b))

    def unique_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.nodes:
            name, i = f"{base}_{i}", i + 1
        return name

    # -- validation -----------------------------------------------------------------------------
    def validate(self, *, repair: bool = False) -> "Graph":
        """Check types, edges, parameters and shapes; fill `in_shapes`, `out_shapes`, `recurrent`.

        `repair`: a node declaring a shape that differs from what its input delivers only in
        size-1 dimensions takes the delivered shape, with a note in `notes` (`snnc.ir.repairs`);
        passes validate without it, so that their own mistakes stay errors."""
        if not isinstance(self.nodes, dict) or any(not isinstance(n, str) for n in self.nodes):
            raise GraphError("graph nodes must be a dict of name -> nir node with string names", where=self.source)
        try:
            pairs = [tuple(e) for e in self.edges]
        except TypeError:
            raise GraphError("graph edges must be (source, target) pairs", where=self.source, got=self.edges) from None
        for edge in pairs:
            if len(edge) != 2:
                raise GraphError("malformed edge", where=self.source, expected="a (source, target) pair", got=edge)
        self.edges = [(a, b) for a, b in pairs]
        for name, node in self.nodes.items():
            if isinstance(node, nir.NIRGraph):
                raise GraphError(
                    "nested NIRGraph inside a flat Graph",
                    where=f"{self.source}: node {name!r}",
                    hint="build the Graph with Graph.from_nir, which flattens subgraphs",
                )
            if not isinstance(node, S.SUPPORTED_TYPES):
                raise UnsupportedNodeError(
                    f"node type {type(node).__name__} is not supported",
                    where=f"{self.source}: node {name!r}",
                    expected=", ".join(sorted(t.__name__ for t in S.SUPPORTED_TYPES)),
                )
            _check_parameters(name, node, self.source)
        for a, b in self.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise GraphError(
                        "edge refers to a node that does not exist",
                        where=f"{self.source}: edge {a!r} -> {b!r}",
                        got=end,
                        hint=f"known nodes: {', '.join(sorted(map(str, self.nodes))[:12])}",
                    )
        if len(set(self.edges)) != len(self.edges):
            dup = next(e for e in self.edges if self.edges.count(e) > 1)
            raise GraphError("duplicate edge", where=f"{self.source}: edge {dup[0]!r} -> {dup[1]!r}")
        if not self.inputs:
            raise GraphError("graph has no Input node", where=self.source, hint="add a nir.Input with the input shape")
        if not self.outputs:
            raise GraphError("graph has no Output node", where=self.source, hint="add a nir.Output")
        for name in self.nodes:
            if isinstance(self.nodes[name], nir.Input):
                if self.predecessors(name):
                    raise GraphError("Input node has incoming edges", where=f"{self.source}: node {name!r}")
            elif not self.predecessors(name):
                raise GraphError(
                    "node has no incoming edge", where=f"{self.source}: node {name!r}", hint="connect it or remove it"
                )
            if isinstance(self.nodes[name], nir.Output) and self.successors(name):
                raise GraphError("Output node has outgoing edges", where=f"{self.source}: node {name!r}")
        self.recurrent = self.find_recurrent_edges()
        for _ in range(len(self.nodes) + 1):  # each repair fixes one node's declaration for good
            try:
                self._infer_shapes()
                break
            except _Disagreement as d:
                if not (repair and self._repair_declaration(d)):
                    raise d.error() from None
        return self

    def _repair_declaration(self, d: "_Disagreement") -> bool:
        """Give node `d.node` the shape its input delivers if they differ only in size-1 dimensions."""
        if d.declared is None or not R.singleton_equivalent(d.declared, d.delivered):
            return False
        node = self.nodes[d.node]
        what = R.reshape_declaration(node, d.delivered)
        if what is None:
            return False
        self.notes.append(
            f"{self.source}: node {d.node!r} ({type(node).__name__}) declares shape {d.declared} but its input "
            f"({d.why}) delivers {d.delivered}; they differ only in dimensions of size 1: {what} reshaped to {d.delivered}"
        )
        return True

    def _infer_shapes(self) -> None:
        """Propagate shapes forward (and backward for scalar-parameter nodes) to a fixed point."""
        ins: dict[str, tuple] = {}
        outs: dict[str, tuple] = {}
        declared: set[str] = set()  # nodes whose input shape comes from their own parameters

        def settle(table, name, shape, why):
            if shape is None:
                return False
            shape = tuple(int(d) for d in shape)
            if not shape or any(d <= 0 for d in shape):
                raise ShapeError("shape must be non-empty with positive sizes", where=f"{self.source}: {why}", got=shape)
            old = table.get(name)
            if old is None:
                table[name] = shape
                return True
            if old != shape:
                raise _Disagreement(self.source, name, why, old, shape, declared=table is ins and name in declared)
            return False

        for name, node in self.nodes.items():
            own = S.own_shape(node)
            if own is not None:
                settle(ins, name, own, f"node {name!r}")
                declared.add(name)
            hint = S.input_shape_hint(node)
            if hint is not None:
                if isinstance(node, nir.Output):
                    settle(ins, name, hint, f"node {name!r}")
                    declared.add(name)
                elif isinstance(node, (nir.Affine, nir.Linear)) and len(hint) == 1:
                    pass  # last dimension only: checked by output_shape
            if isinstance(node, (nir.Conv1d, nir.Conv2d)) and node.input_shape is not None:
                spatial = tuple(int(d) for d in np.atleast_1d(node.input_shape))
                settle(ins, name, (int(np.asarray(node.weight).shape[1]) * int(np.ravel(node.groups)[0]), *spatial), f"node {name!r}")
        changed = True
        while changed:
            changed = False
            for name in self.topo_order():
                node = self.nodes[name]
                if name in ins and name not in outs:
                    changed |= settle(outs, name, S.output_shape(node, ins[name], f"{self.source}: node {name!r}"), f"node {name!r}")
                for succ in self.successors(name):
                    if name in outs:
                        changed |= settle(ins, succ, outs[name], f"edge {name!r} -> {succ!r}")
                # Backward: a shape-preserving node with scalar parameters learns its shape from
                # a successor that knows its input shape (e.g. Affine -> LIF(scalar) -> Affine).
                if name not in ins and isinstance(node, S.SHAPE_PRESERVING):
                    for succ in self.successors(name):
                        if succ in ins:
                            changed |= settle(ins, name, ins[succ], f"edge {name!r} -> {succ!r}")
                            break
        # Affine/Linear inputs: the weight fixes the last dimension only; a 1-D guess is safe
        # when nothing else was learned (e.g. a dense layer right after an Input).
        missing = [n for n in self.nodes if n not in ins or n not in outs]
        if missing:
            raise ShapeError(
                "cannot infer the shape of some nodes",
                where=f"{self.source}: node {missing[0]!r}",
                got=missing[:8],
                hint="give the Input node a shape, or neuron parameters per neuron",
            )
        self.in_shapes, self.out_shapes = ins, outs


SCALARS_KEY = "snnc_scalar_params"
"""Node metadata naming the parameters `to_nir` wrote per neuron that were scalars."""


def _per_neuron(node: nir.NIRNode, shape: tuple[int, ...]) -> None:
    """Write a node's scalar parameters per neuron (see `Graph.to_nir`)."""
    fields = [f for f in S.PARAMS.get(type(node), ()) if getattr(node, f, None) is not None and np.ndim(getattr(node, f)) == 0]
    if not fields or len(shape) == 0:
        return
    for f in fields:
        setattr(node, f, np.full(shape, getattr(node, f)))
    meta = dict(node.metadata) if isinstance(getattr(node, "metadata", None), dict) else {}
    meta[SCALARS_KEY] = ",".join(fields)
    node.metadata = meta


def _scalars_back(node: nir.NIRNode) -> nir.NIRNode:
    """Undo `_per_neuron`: parameters named in the metadata become scalars again (if uniform)."""
    meta = getattr(node, "metadata", None)
    if not isinstance(meta, dict) or SCALARS_KEY not in meta:
        return node
    names = meta[SCALARS_KEY]
    names = names.decode() if isinstance(names, bytes) else str(names)
    for f in names.split(","):
        value = getattr(node, f, None) if f in S.PARAMS.get(type(node), ()) else None
        if value is not None and np.size(value) and np.all(np.asarray(value) == np.asarray(value).reshape(-1)[0]):
            setattr(node, f, np.asarray(value).reshape(-1)[0])
    node.metadata = {k: v for k, v in meta.items() if k != SCALARS_KEY}
    return node


class _Disagreement(Exception):
    """Two shapes met at one node during inference (a ShapeError unless it can be repaired)."""

    def __init__(self, source: str, node: str, why: str, old: tuple, new: tuple, *, declared: bool):
        super().__init__(node)
        self.source, self.node, self.why = source, node, why
        self.old, self.delivered = old, new
        self.declared = old if declared else None  # the node's own declaration, when `old` is one

    def error(self) -> ShapeError:
        return ShapeError("shapes do not agree", where=f"{self.source}: {self.why}", expected=self.old, got=self.delivered)


# -- reading ------------------------------------------------------------------------------------
# Parameters a node type may omit in a file (nir fills them in) and the fields it stores.
_OPTIONAL = {"input_shape", "v_reset", "w_in", "input_type", "start_dim", "end_dim"}
_STRING_OK = {"padding"}  # Conv padding may be 'same' / 'valid'


def _file_fields(cls) -> tuple[set[str], set[str]]:
    """(required, allowed) field names of a nir node type as stored in a file."""
    import dataclasses

    if cls in (nir.Input, nir.Output):
        return {"shape"}, {"shape"}
    if cls is nir.NIRGraph:
        return {"nodes", "edges"}, {"nodes", "edges"}
    allowed = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "metadata"}
    required = {n for n in allowed if n not in _OPTIONAL}
    return required, allowed


NODE_TYPES: dict[str, type[nir.NIRNode]] = {t.__name__: t for t in (*S.SUPPORTED_TYPES, nir.NIRGraph)}
"""Every node type of nir 1.0.8 by its name in a file."""


def read_nir_file(path: str | Path, *, notes: list[str] | None = None) -> nir.NIRGraph:
    """Read a NIR file like `nir.read(path, type_check=False)`, with precise errors.

    Reads HDF5 directly, so nested subgraphs whose edges nir 1.0.8's `nir.read` refuses load
    (see `snnc.ir.nesting`). Quirks with one meaning are repaired (`snnc.ir.repairs`): their notes
    are appended to `notes`, or stated as ReadNotes when no list is given.

    nir's own HDF5 parser (`nir.serialization.hdf2dict`) and node classes (`from_dict`) do the
    work; this function checks the parsed structure node by node first, so a bad file names the
    node and parameter instead of surfacing a KeyError/AssertionError/h5py trace. Type checking
    is left to `Graph.validate` (nir's would reject scalar parameters, NIR issue #176, and
    would add nodes).
    """
    import h5py
    from nir.serialization import hdf2dict

    path = Path(path)
    where = str(path)
    if not path.exists():
        raise ModelFileError("file not found", where=where, hint="check the path")
    if path.is_dir():
        raise ModelFileError("is a directory, not a NIR file", where=where)
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others on non-HDF5 input
        raise ModelFileError(
            "cannot read as HDF5 (truncated, corrupt, or not a NIR file)",
            where=where,
            got=str(exc).split("(")[0].strip() or type(exc).__name__,
            hint="NIR files are HDF5 files written by nir.write",
        ) from exc
    try:
        with f:
            node = f["node"] if "node" in f else None
            if node is None or not isinstance(node, h5py.Group):
                raise ModelFileError(
                    "HDF5 file is not a NIR graph (no 'node' group)",
                    where=where,
                    expected="a group 'node' holding the graph",
                    got=sorted(f.keys())[:8],
                    hint="write NIR files with nir.write",
                )
            _check_dataset_sizes(node, where)
            data = hdf2dict(node)
            version = _version(f)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt chunks surface as many h5py/OS/Memory errors
        raise ModelFileError(
            f"corrupt HDF5 content ({type(exc).__name__}: {_first_line(exc)})",
            where=where,
            hint="the file is truncated or damaged; export it again",
        ) from exc
    log = R.RepairLog(where, version)
    node = nir_node_from_dict(data, where=where, name="<root>", log=log)
    if notes is None:
        R.emit(log.messages())
    else:
        notes.extend(log.messages())
    if not isinstance(node, nir.NIRGraph):
        raise ModelFileError(
            "the file's root node is not a NIRGraph", where=where, got=type(node).__name__
        )
    return node


MAX_DATASET_BYTES = 4 * 2**30
"""Largest array read from a NIR file; a corrupt header can claim terabytes."""


def _check_dataset_sizes(group, where: str) -> None:
    import h5py

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            nbytes = int(np.prod(obj.shape or (1,), dtype=np.float64) * obj.dtype.itemsize)
            if nbytes > MAX_DATASET_BYTES:
                raise ModelFileError(
                    "dataset too large (corrupt file?)",
                    where=f"{where}: {obj.name}",
                    expected=f"at most {MAX_DATASET_BYTES} bytes",
                    got=f"shape {obj.shape}, {nbytes} bytes",
                )

    group.visititems(visit)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _version(f) -> str | None:
    """The NIR version a file declares (None when it has no readable 'version')."""
    try:
        value = f["version"][()] if "version" in f else None
    except Exception:  # noqa: BLE001 - a damaged version entry only loses the note's detail
        return None
    if isinstance(value, bytes):
        value = value.decode("utf8", "replace")
    return str(value)[:40] if value is not None else None


def nir_node_from_dict(data, *, where: str, name: str, log: "R.RepairLog | None" = None) -> nir.NIRNode:
    """Build one nir node (recursively for NIRGraph) from nir's dict form, checking it first.

    Quirks with one meaning are repaired and recorded in `log` (`snnc.ir.repairs`)."""
    log = log if log is not None else R.RepairLog(where)
    here = f"{where}: node {name!r}" if name != "<root>" else where
    if not isinstance(data, dict):
        raise ModelFileError("node is not an HDF5 group", where=here, got=type(data).__name__)
    type_name = data.get("type")
    if type_name is None:
        raise ModelFileError("node has no 'type' entry", where=here, got=sorted(data)[:8])
    if not isinstance(type_name, str):
        raise ModelFileError("node 'type' is not a string", where=here, got=repr(type_name))
    cls = NODE_TYPES.get(type_name)
    if cls is None:
        raise UnsupportedNodeError(
            f"unknown node type {type_name!r}",
            where=here,
            expected=", ".join(sorted(NODE_TYPES)),
            hint="snnc reads the node types of nir 1.0.8; export with those",
        )
    here = f"{where}: node {name!r} ({type_name})" if name != "<root>" else where
    required, allowed = _file_fields(cls)
    present = set(data) - {"type", "metadata"}
    missing = sorted(required - present)
    if missing:
        raise ModelFileError(
            f"parameter {missing[0]!r} is missing", where=here, expected=sorted(required), got=sorted(present)
        )
    extra = sorted(present - allowed)
    if extra:
        raise ModelFileError(
            f"unknown parameter {extra[0]!r} for a {type_name} node",
            where=here,
            expected=sorted(allowed),
            hint="the file was written by a NIR version other than 1.0.8",
        )
    metadata = R.metadata_group(data.get("metadata", {}), name, log)
    if cls is nir.NIRGraph:
        nodes = data["nodes"]
        if not isinstance(nodes, dict):
            raise ModelFileError("'nodes' is not a group", where=here, got=type(nodes).__name__)
        children = {str(k): nir_node_from_dict(v, where=where, name=_join(name, k), log=log) for k, v in nodes.items()}
        edges = _parse_edges(data["edges"], here)
        return nir.NIRGraph(nodes=children, edges=edges, metadata=metadata, type_check=False)
    kwargs: dict[str, Any] = {}
    for key in present:
        value = data[key]
        if isinstance(value, str) and key in _STRING_OK:
            kwargs[key] = value
            continue
        arr = np.asarray(value) if not isinstance(value, (str, bytes, dict)) else None
        if arr is None or arr.dtype.kind not in "biuf":
            raise ParameterError(
                f"parameter {key!r} must be numeric",
                where=f"{here}.{key}",
                got=type(value).__name__ if arr is None else str(arr.dtype),
            )
        kwargs[key] = value
    R.fill_defaults(cls, kwargs, name, log)
    R.broadcast_scalars(cls, kwargs, name, log)
    kwargs["type"] = type_name
    kwargs["metadata"] = metadata
    if cls in (nir.Conv1d, nir.Conv2d):
        kwargs.setdefault("input_shape", None)
    if cls is nir.Flatten:  # nir computes the output type in its constructor: check first
        for key in ("start_dim", "end_dim"):
            if key in kwargs:
                _int_field(kwargs[key], key, here, lo=None, sizes=(1,))
                kwargs[key] = int(np.ravel(kwargs[key])[0])
        if kwargs.get("input_type") is not None:
            _shape_field(kwargs["input_type"], "Flatten input_type", here, optional=True)
    try:
        with np.errstate(all="ignore"):
            return cls.from_dict(kwargs)
    except AssertionError as exc:
        raise ShapeError(
            f"inconsistent parameters: {_first_line(exc) if str(exc) else 'parameter shapes differ'}",
            where=here,
            got={k: np.shape(v) for k, v in kwargs.items() if k not in ("type", "metadata")},
        ) from exc
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError, ZeroDivisionError, MemoryError) as exc:
        raise ModelFileError(f"invalid parameters ({_first_line(exc)})", where=here) from exc


def _join(prefix: str, name) -> str:
    return str(name) if prefix == "<root>" else f"{prefix}.{name}"


def _parse_edges(raw, where: str) -> list[tuple[str, str]]:
    arr = np.asarray(raw, dtype=object) if not isinstance(raw, str) else None
    if arr is None or (arr.size and (arr.ndim != 2 or arr.shape[1] != 2)):
        raise ModelFileError("edges must be a list of (source, target) pairs", where=where, got=np.shape(raw))
    edges = []
    for a, b in arr.reshape(-1, 2):
        ends = []
        for end in (a, b):
            if isinstance(end, bytes):
                try:
                    end = end.decode("utf8")
                except UnicodeDecodeError:
                    raise ModelFileError("edge end is not valid UTF-8", where=where, got=end) from None
            if not isinstance(end, str):
                raise ModelFileError("edge ends must be node names", where=where, got=repr(end))
            ends.append(end)
        edges.append((ends[0], ends[1]))
    return edges


# -- parameter checks -----------------------------------------------------------------------------
def _int_field(value, field_name: str, where: str, *, lo: int | None, sizes: tuple[int, ...]) -> None:
    """An integer scalar or short vector (stride, padding, ...) with every entry >= lo."""
    arr = np.asarray(value) if not isinstance(value, (str, bytes, dict)) else np.asarray([], dtype=object)
    ok = arr.dtype.kind in "biuf" and arr.ndim <= 1 and arr.size in sizes
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if not ok:
        raise ParameterError(
            f"{field_name} must be an integer" + (" or a pair of integers" if 2 in sizes else ""),
            where=f"{where}.{field_name}",
            got=value,
        )
    if lo is not None and np.any(arr < lo):
        raise ParameterError(f"{field_name} must be at least {lo}", where=f"{where}.{field_name}", got=value)


def _shape_field(value, what: str, where: str, *, optional: bool) -> None:
    """A node's declared shape: a 1-D array of positive integers (None/empty if optional)."""
    if value is None or (optional and np.size(value) == 0 and not isinstance(value, (str, bytes, dict))):
        if optional:
            return
        raise ShapeError(f"{what} is missing", where=where, hint="give the node a shape, e.g. np.array([2, 34, 34])")
    arr = np.asarray(value) if not isinstance(value, (str, bytes, dict)) else np.asarray([], dtype=object)
    arr = np.atleast_1d(arr) if arr.ndim == 0 else arr  # a scalar n means (n,)
    ok = arr.dtype.kind in "biuf" and arr.ndim == 1 and arr.size >= 1
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if not ok or np.any(arr <= 0):
        raise ShapeError(f"{what} must be a non-empty list of positive integers", where=where, got=value)


def _check_parameters(name: str, node: nir.NIRNode, source: str) -> None:
    where = f"{source}: node {name!r}"
    for field_name in sorted(_NUMERIC_FIELDS):
        if not hasattr(node, field_name):
            continue
        value = getattr(node, field_name)
        try:
            arr = np.asarray(value) if not isinstance(value, (str, bytes, dict)) else None
        except Exception:  # noqa: BLE001 - ragged sequences and other non-arrays
            arr = None
        if arr is None or arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ParameterError(
                f"{field_name} must be numeric",
                where=f"{where}.{field_name}",
                got=type(value).__name__ if arr is None else str(arr.dtype),
            )
        if not np.all(np.isfinite(arr)):
            raise ParameterError(
                f"{field_name} holds NaN or inf", where=f"{where}.{field_name}", hint="fix the exported model"
            )
        if field_name in _TIME_CONSTANTS and np.any(arr <= 0):
            raise ParameterError(
                f"time constant {field_name} must be positive",
                where=f"{where}.{field_name}",
                got=float(arr.min()),
                hint="time constants are in seconds, e.g. 1e-3",
            )
        if field_name == "delay" and np.any(arr < 0):
            raise ParameterError("delay must be non-negative", where=f"{where}.delay", got=float(arr.min()))
    if isinstance(node, S.NEURON_TYPES + (nir.Scale, nir.Delay, nir.Threshold)):
        shapes = {
            f: np.shape(getattr(node, f))
            for f in sorted(_NUMERIC_FIELDS)
            if getattr(node, f, None) is not None and np.ndim(getattr(node, f)) > 0 and np.size(getattr(node, f)) > 1
        }
        if len(set(shapes.values())) > 1:
            raise ShapeError(
                "per-neuron parameters have different shapes",
                where=where,
                got=shapes,
                hint="give every parameter one shape, or use scalars",
            )
        if any(np.size(getattr(node, f)) == 0 for f in _NUMERIC_FIELDS if getattr(node, f, None) is not None):
            raise ShapeError("a parameter array is empty", where=where)
    if hasattr(node, "weight"):
        w = np.asarray(node.weight)
        need = 4 if isinstance(node, nir.Conv2d) else 3 if isinstance(node, nir.Conv1d) else 2
        if w.ndim != need:
            raise ShapeError(f"weight must have {need} dimensions", where=f"{where}.weight", got=w.shape)
        if 0 in w.shape:
            raise ShapeError("weight has an empty dimension", where=f"{where}.weight", got=w.shape)
    if isinstance(node, nir.Affine):
        b = np.asarray(node.bias)
        if b.ndim > 1 or (b.ndim == 1 and b.size not in (1, np.asarray(node.weight).shape[0])):
            raise ShapeError("bias does not match the weight's output size", where=f"{where}.bias", expected=np.asarray(node.weight).shape[0], got=b.shape)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        dims = 2 if isinstance(node, nir.Conv2d) else 1
        sizes = (1, 2) if dims == 2 else (1,)
        _int_field(node.stride, "stride", where, lo=1, sizes=sizes)
        _int_field(node.dilation, "dilation", where, lo=1, sizes=sizes)
        _int_field(node.groups, "groups", where, lo=1, sizes=(1,))
        if isinstance(node.padding, str):
            if node.padding not in ("same", "valid"):
                raise ParameterError("padding must be 'same', 'valid' or integers", where=f"{where}.padding", got=node.padding)
        else:
            _int_field(node.padding, "padding", where, lo=0, sizes=sizes)
        if node.input_shape is not None:
            _int_field(node.input_shape, "input_shape", where, lo=1, sizes=(dims,))
        w = np.asarray(node.weight)
        groups = int(np.ravel(node.groups)[0])
        if w.shape[0] % groups:
            raise ShapeError(
                "output channels are not a multiple of groups", where=f"{where}.weight", expected=f"multiple of {groups}", got=w.shape[0]
            )
        b = np.asarray(node.bias)
        if b.ndim > 1 or (b.ndim == 1 and b.size not in (1, w.shape[0])):
            raise ShapeError("bias does not match the output channels", where=f"{where}.bias", expected=w.shape[0], got=b.shape)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        _int_field(node.kernel_size, "kernel_size", where, lo=1, sizes=(1, 2))
        _int_field(node.stride, "stride", where, lo=1, sizes=(1, 2))
        _int_field(node.padding, "padding", where, lo=0, sizes=(1, 2))
    if isinstance(node, nir.Flatten):
        _int_field(node.start_dim, "start_dim", where, lo=None, sizes=(1,))
        _int_field(node.end_dim, "end_dim", where, lo=None, sizes=(1,))
    if isinstance(node, nir.Input):
        t = getattr(node, "input_type", None)
        if not isinstance(t, dict) or "input" not in t:
            raise ShapeError("Input node has no input_type {'input': shape}", where=where, got=t)
        _shape_field(t["input"], "Input shape", where, optional=False)
    if isinstance(node, nir.Output):
        t = getattr(node, "output_type", None)
        if not isinstance(t, dict):
            raise ShapeError("Output node has no output_type {'output': shape}", where=where, got=t)
        _shape_field(t.get("output"), "Output shape", where, optional=True)


# -- writing ------------------------------------------------------------------------------------
def write_nir(graph: nir.NIRGraph, path: str | Path) -> None:
    """`nir.write` that also stores what nir 1.0.8's writer chokes on, and keeps node order.

    nir writes 0-d arrays with compression, which h5py refuses, and cannot store None; here 0-d
    arrays become numpy scalars (read back as scalars: scalars stay scalars) and None fields are
    left out (nir's readers fill in their defaults). Failures become ModelFileError.
    """

    class _Prepared:
        def __init__(self, data):
            self.data = data

        def to_dict(self):
            return self.data

    try:
        data = _storable(graph.to_dict())
    except Exception as exc:  # noqa: BLE001 - arbitrary user objects in nodes/metadata
        raise ModelFileError(f"cannot serialize the graph ({_first_line(exc)})", where=str(path)) from exc
    import h5py

    config = h5py.get_config()
    old_order = config.track_order
    config.track_order = True  # keep node order (HDF5 lists group members alphabetically otherwise)
    try:
        with atomic_path(path) as tmp:  # never a half-written file at `path` (snnc.ir.io)
            nir.write(str(tmp), _Prepared(data))
    except Exception as exc:  # noqa: BLE001 - h5py: OSError (path), TypeError (unstorable value)
        raise ModelFileError(
            f"cannot write the NIR file ({type(exc).__name__}: {_first_line(exc)})",
            where=str(path),
            hint="check the directory is writable and metadata holds only strings, numbers, arrays and dicts",
        ) from exc
    finally:
        config.track_order = old_order


def _storable(value):
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def node_param_count(node: nir.NIRNode) -> int:
    """Number of stored parameter values of a node (for `snnc inspect`)."""
    total = 0
    for field_name in _NUMERIC_FIELDS:
        value = getattr(node, field_name, None)
        if value is not None:
            total += int(np.size(value))
    return total


def iter_neuron_nodes(graph: Graph) -> Iterable[str]:
    return (n for n, node in graph.nodes.items() if isinstance(node, S.NEURON_TYPES))
