"""A checksum of a graph's whole content (`graph_digest`): what tells a cache its graph changed.

The programs built once per compiled graph (`snnc.backends.program_cache`) key on it. It sits in
`ir` because it reads ir types only, so that any layer may key a cache on a graph. Arrays count by
their bytes, so an in-place edit of a weight array changes the digest.
"""
from __future__ import annotations

import dataclasses
import io
import operator
import pickle
import secrets
import zlib
from typing import Any

import numpy as np
import scipy.sparse as sp


def _content(*parts: Any) -> None:
    """Stands in a digest's pickle for a dataclass or a sparse matrix (never called: nothing is unpickled)."""


def _by_fields(t: type) -> Any:
    """The reducer of dataclass type `t`: its name and its fields' values, read by one C-level getter."""
    name, fields = t.__qualname__, operator.attrgetter(*(f.name for f in dataclasses.fields(t)))
    return lambda obj: (_content, (name, fields(obj)))


def _by_csr(obj: Any) -> tuple:
    m = obj.tocsr()
    return _content, ("sparse", m.shape, m.data, m.indices, m.indptr)


def _by_bytes(a: np.ndarray) -> Any:
    if a.dtype.hasobject:  # no buffer to checksum: its objects are pickled one by one
        return a.__reduce_ex__(5)
    data: Any = a if a.flags.c_contiguous else np.ascontiguousarray(a)  # numpy's buffer protocol is untyped
    return _content, (a.dtype.str, a.shape, pickle.PickleBuffer(data))


class _Reducers(dict):
    """The digest pickler's dispatch table, filled per type on first sight: a dataclass by its type
    name and fields (not by its __dict__, where a cache may sit beside them), a sparse matrix by its
    CSR arrays (not by scipy's lazily set flags), an array by its dtype, shape and bytes (what numpy's
    reduction adds, how to rebuild it, a digest never needs), anything else by its own
    `__reduce_ex__(5)` through a C-level caller (as pickle would reduce it, without a Python call per
    object). Classes are not entered (pickle saves them by name when the table has no entry)."""

    def __missing__(self, t: type) -> Any:
        if issubclass(t, type):
            raise KeyError(t)
        if dataclasses.is_dataclass(t):
            reducer: Any = _by_fields(t)
        elif issubclass(t, sp.spmatrix) or issubclass(t, getattr(sp, "sparray", sp.spmatrix)):
            reducer = _by_csr
        elif t is np.ndarray:
            reducer = _by_bytes
        else:
            reducer = operator.methodcaller("__reduce_ex__", 5)
        self[t] = reducer
        return reducer


class _ContentPickler(pickle.Pickler):
    """Pickles what a digest covers (`_Reducers`); array bytes go out of band (`buffer_callback`),
    so they are checksummed where they lie instead of copied into the stream."""

    dispatch_table = _Reducers()


def graph_digest(graph: Any) -> int:
    """A checksum of everything in `graph` (every field of every node, the metadata): one CRC over
    its pickle (`_ContentPickler`) and the bytes of its arrays. A graph holding something pickle
    cannot write gets a new random digest each time: a cache never serves it."""
    stream = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    try:
        _ContentPickler(stream, protocol=5, buffer_callback=buffers.append).dump(graph)
    except Exception:  # noqa: BLE001 - anything unpicklable: never equal to another digest
        return secrets.randbits(64) | (1 << 64)
    crc = zlib.crc32(stream.getbuffer())
    for buffer in buffers:
        crc = zlib.crc32(buffer.raw(), crc)
    return crc
