"""A checksum of a graph's whole content (`graph_digest`): what tells a cache its graph changed.

The programs built once per compiled graph (`snnc.backends.program_cache`) key on it. It sits in
`ir` because it reads ir types only, so that any layer may key a cache on a graph. Arrays count by
their bytes, so an in-place edit of a weight array changes the digest.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np
import scipy.sparse as sp

_SCALARS = (int, float, str, bool, type(None), np.generic)
_OPEN_DICT, _OPEN_LIST, _CLOSE = ("{",), ("[",), ("]",)  # markers: 1-tuples, which no value appends
_FIELDS: dict[type, tuple[str, ...] | None] = {}  # type -> its dataclass fields (None: not a dataclass)


def _parts(value: Any, out: list) -> None:
    """Append `value`'s content to `out` in a fixed order: arrays as (dtype, shape, CRC of their
    bytes), containers and dataclasses (marked by their type's name) as their items and fields
    between markers, scalars as they are (repr'd once, together, by `graph_digest`), anything
    else by its repr."""
    t = type(value)
    if isinstance(value, _SCALARS):
        out.append(value)
        return
    if t is np.ndarray:
        out.append((value.dtype.str, value.shape, zlib.crc32(np.ascontiguousarray(value).data.cast("B"))))
        return
    if t is dict:
        out.append(_OPEN_DICT)
        for k, v in value.items():
            out.append(k)
            _parts(v, out)
        out.append(_CLOSE)
        return
    if t is list or t is tuple:
        out.append(_OPEN_LIST)
        for v in value:
            _parts(v, out)
        out.append(_CLOSE)
        return
    fields = _FIELDS.get(t, ())
    if fields == ():
        fields = _FIELDS[t] = tuple(f.name for f in dataclasses.fields(value)) if dataclasses.is_dataclass(value) and not isinstance(value, type) else None
    if fields is not None:
        out.append((t.__name__,))
        for name in fields:
            out.append(name)
            _parts(getattr(value, name), out)
        out.append(_CLOSE)
        return
    if isinstance(value, np.ndarray):  # a subclass
        _parts(np.asarray(value), out)
    elif sp.issparse(value):
        m = value.tocsr()
        out.append(("sparse", m.shape))
        for part in (m.data, m.indices, m.indptr):
            _parts(part, out)
    elif isinstance(value, dict):
        _parts(dict(value), out)
    elif isinstance(value, (list, tuple)):
        _parts(list(value), out)
    else:
        out.append(repr(value))


def graph_digest(graph: Any) -> int:
    """A checksum of everything in `graph` (every field of every node, the metadata): one CRC of
    the repr of its parts (`_parts`; an array stands there as its dtype, shape and CRC)."""
    out: list = []
    _parts(graph, out)
    return zlib.crc32(repr(out).encode())
