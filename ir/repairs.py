"""Lenient reading of NIR files: quirks that have one meaning are repaired, and each is stated.

The platforms that write NIR disagree on details NIR leaves loose. Where a file can mean only one
thing, snnc repairs it and says so once per kind of repair (a `ReadNote`, shown by the CLI as
`snnc: note:` and kept in `Graph.notes` and the compile report):

- singleton dimensions: a node declaring (1, 1, 1) where its input delivers (1,) (Rockpool's LIF),
  or an Output declaring (1,) for a (1, 1, 1) signal; the declaration takes the delivered shape
  (same values, same order; only dimensions of size 1 differ);
- scalar next to per-neuron parameters in one node (tau (4,), v_threshold ()): the scalar is
  broadcast, as NIR's equations apply it to every neuron;
- optional fields a file leaves out: v_reset = 0 (nir.read's default), w_in = 1 (NIR's default).
  Files that declare NIR 0.x, whose neurons had no v_reset field, get v_reset = 0 without a note:
  that is what their version means (the NIR paper's files are such);
- node metadata that is a value instead of a group: kept under metadata["value"].

What cannot be repaired (parameters of two different per-neuron shapes, shapes differing in more
than size-1 dimensions) stays an error naming the node and the field.
"""
from __future__ import annotations

import warnings

import nir
import numpy as np

from .errors import ShapeError
from .shapes import PARAMS

DEFAULTS = {"v_reset": 0.0, "w_in": 1.0}
"""Optional fields and the value NIR (and nir 1.0.8's reader) gives them when a file has none."""


class ReadNote(UserWarning):
    """snnc repaired a quirk of a model file that has one meaning (shown as `snnc: note:`)."""


class RepairLog:
    """Repairs made while reading one model, grouped by kind so that each kind is stated once."""

    def __init__(self, where: str, version: str | None = None):
        self.where = where
        self.version = version
        self._items: dict[str, list[str]] = {}

    def add(self, kind: str, item: str) -> None:
        self._items.setdefault(kind, []).append(item)

    def messages(self) -> list[str]:
        out = []
        for kind, items in self._items.items():
            shown = "; ".join(items[:6]) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")
            out.append(f"{self.where}: {_TEXT[kind](self.version)}: {shown}")
        return out


def _version_text(version: str | None) -> str:
    return f"the file declares NIR {version}" if version else "the file declares no NIR version (taken as 1.x)"


_TEXT = {
    "v_reset": lambda v: f"no v_reset ({_version_text(v)}): nir.read's default v_reset = 0 used for",
    "w_in": lambda v: "no w_in (NIR's default input weight 1 used) for",
    "broadcast": lambda v: "scalar parameters next to per-neuron ones, broadcast to every neuron (NIR applies a scalar to all)",
    "metadata": lambda v: "metadata stored as a value, not a group: kept as metadata['value']",
}


def emit(notes: list[str], stacklevel: int = 3) -> None:
    """State each note once as a ReadNote."""
    for message in notes:
        warnings.warn(message, ReadNote, stacklevel=stacklevel)


# -- file level: a node's stored fields -------------------------------------------------------------
def fill_defaults(cls: type, fields: dict, node: str, log: RepairLog) -> None:
    """Give a neuron node the optional fields its file left out (see DEFAULTS)."""
    for name, value in DEFAULTS.items():
        if name not in PARAMS.get(cls, ()) or name in fields:
            continue
        ref = fields.get("v_threshold" if name == "v_reset" else "v_leak")
        if ref is None:  # a required field is missing too: the reader's own error names it
            continue
        dtype = np.asarray(ref).dtype if np.asarray(ref).dtype.kind == "f" else np.float64  # as nir's zeros_like
        fields[name] = np.full(np.shape(ref), value, dtype=dtype)
        if not (name == "v_reset" and _before_v_reset(log.version)):
            log.add(name, repr(node))


def _before_v_reset(version: str | None) -> bool:
    """True for NIR 0.x files: their LIF/CubaLIF/IF had no v_reset field (reset to 0)."""
    return bool(version) and str(version).strip().startswith("0.")


def broadcast_scalars(cls: type, fields: dict, node: str, log: RepairLog) -> None:
    """Broadcast size-1 parameters of a neuron node to the one per-neuron shape the others share.

    nir's node classes require equal shapes; NIR's equations apply a scalar to every neuron, so a
    file mixing both has one meaning. Two different per-neuron shapes have none: ShapeError."""
    names = [f for f in PARAMS.get(cls, ()) if f in fields and isinstance(fields[f], (np.ndarray, np.generic, int, float))]
    shapes = {f: np.shape(fields[f]) for f in names}
    if len(set(shapes.values())) <= 1:
        return
    vector = {s for f, s in shapes.items() if int(np.prod(s)) != 1}
    if len(vector) > 1:
        raise ShapeError(
            "per-neuron parameters have different shapes",
            where=f"{log.where}: node {node!r}",
            got={f: s for f, s in shapes.items() if int(np.prod(s)) != 1},
            hint="export every per-neuron parameter with one shape (or as a scalar)",
        )
    target = vector.pop() if vector else max(shapes.values(), key=len)
    changed = [f for f, s in shapes.items() if s != target]
    for f in changed:
        value = np.asarray(fields[f])
        fields[f] = np.full(target, value.reshape(-1)[0], dtype=value.dtype)
    log.add("broadcast", f"{node!r} {', '.join(changed)} -> {target}")


def metadata_group(value, node: str, log: RepairLog) -> dict:
    """Node metadata as a dict (a value stored in its place is kept under 'value')."""
    if isinstance(value, dict):
        return value
    log.add("metadata", repr(node))
    return {"value": value}


# -- graph level: a node's declared shape against what its input delivers ---------------------------
def singleton_equivalent(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """True when two shapes hold the same values in the same order (only size-1 dimensions differ)."""
    return tuple(d for d in a if d != 1) == tuple(d for d in b if d != 1)


def reshape_declaration(node: nir.NIRNode, shape: tuple[int, ...]) -> str | None:
    """Make `node` declare `shape` instead of a singleton-equivalent one; what changed, or None
    when the node's shape is not a declaration that can be changed (an Input's, a weight's)."""
    if isinstance(node, nir.Output):
        node.output_type = {"output": np.array(shape)}
        node.input_type = {"input": np.array(shape)}
        return "its declared output shape"
    fields = PARAMS.get(type(node))
    if not fields:
        return None
    size = int(np.prod(shape))
    changed = []
    for f in fields:
        value = getattr(node, f, None)
        if value is not None and np.ndim(value) > 0 and np.size(value) == size:
            setattr(node, f, np.asarray(value).reshape(shape))
            changed.append(f)
    if not changed:
        return None
    node.input_type = {"input": np.array(shape)}
    node.output_type = {"output": np.array(shape)}
    return "its parameters " + ", ".join(changed)
