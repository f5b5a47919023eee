"""A dataset read in batches: an `.npz`/`.npy` of samples, a folder of event files, or a tonic dataset.

Why: dataset-scale evaluation must not hold the whole test set in one process. A `Dataset` knows
its size and hands out `Part`s (start, stop): small picklable descriptions that a worker loads on
its own, so the memory a task needs is bounded by its batch. Arrays come from
`snnc.compiler.data.inputs` (the one reader of user arrays; an `.npz` member is read row-range by
row-range straight from the zip, never whole), events from `snnc.compiler.data.events` (tonic).

    .npz   `x` [N, T, *shape] (or one array per input port, by port name) and optional labels `y` [N]
    .npy   [N, T, *shape], memory-mapped
    folder event files (any format `events.FORMATS` reads), flat (no labels) or in one subfolder per
           class: integer names are the labels; other names are sorted and numbered 0, 1, ...
    name   a tonic dataset (`events.DATASETS`) under `root`, with its labels

Event recordings are binned with tonic into [T, P, H, W] frames: `steps` equal bins over each
recording, or bins of `bin_ms` cut or padded with empty bins to `steps` (every sample of a dataset
must have the same length T).
"""
from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from snnc.ir.errors import ModelFileError, ParameterError, ShapeError

LABELS_KEY = "y"


@dataclass(frozen=True)
class Part:
    """Samples [start, stop) of a dataset; `load()` reads just them (in whatever process runs it)."""

    dataset: "Dataset"
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def load(self):
        """(inputs [n, T, *shape] or {port: array}, labels [n] or None)."""
        return self.dataset.read(self.start, self.stop)


class Dataset:
    """Base: `size`, `labels_known`, `read(start, stop)`, `fingerprint()` (for resumable runs)."""

    size: int = 0
    description: str = ""

    def read(self, start: int, stop: int):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def part(self, start: int, stop: int) -> Part:
        return Part(self, int(start), int(stop))

    def parts(self, batch_size: int) -> list[Part]:
        """Consecutive parts of `batch_size` samples (the last may be smaller)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ParameterError("batch size must be a positive integer", where="--batch-size", got=batch_size)
        return [self.part(s, min(s + int(batch_size), self.size)) for s in range(0, self.size, int(batch_size))]

    def fingerprint(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


# -- arrays ----------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ArrayDataset(Dataset):
    """Samples already in memory (an API caller's arrays). A part carries its own slice, so a task
    sent to another process holds one batch, not the whole array."""

    inputs: Any  # [N, T, *shape] or {port: [N, T, *shape]}
    labels: np.ndarray | None = None
    description: str = "arrays in memory"
    offset: int = 0  # index of inputs[0] in the whole dataset (a part's own slice)

    @property
    def size(self) -> int:  # type: ignore[override]
        first = next(iter(self.inputs.values())) if isinstance(self.inputs, Mapping) else self.inputs
        return int(np.shape(first)[0])

    def part(self, start: int, stop: int) -> Part:
        x, y = self.read(start, stop)
        return Part(ArrayDataset(x, y, self.description, int(start)), int(start), int(stop))

    def read(self, start: int, stop: int):
        lo, hi = start - self.offset, stop - self.offset
        if isinstance(self.inputs, Mapping):
            x: Any = {k: np.asarray(v[lo:hi]) for k, v in self.inputs.items()}
        else:
            x = np.asarray(self.inputs[lo:hi])
        return x, None if self.labels is None else np.asarray(self.labels[lo:hi])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        arrays = dict(sorted(self.inputs.items())) if isinstance(self.inputs, Mapping) else {"": self.inputs}
        if self.labels is not None:
            arrays["\0labels"] = self.labels
        for k, v in arrays.items():
            a = np.ascontiguousarray(v)
            h.update(f"{k}|{a.dtype.str}|{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()


def _file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _npz_member(zf: zipfile.ZipFile, key: str, where: str):
    """(shape, dtype, fortran_order, data offset) of `key` in an open npz, from its .npy header."""
    with zf.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            shape, fortran, dtype = np.lib.format._read_array_header(f, version)  # type: ignore[attr-defined]  # noqa: SLF001 - version 3
        if dtype.hasobject or dtype.kind not in "biuf":
            raise ShapeError("data arrays must be numeric", where=f"{where}[{key}]", got=str(dtype))
        return tuple(shape), dtype, bool(fortran), f.tell()


@dataclass(frozen=True)
class NpzDataset(Dataset):
    """An `.npz` (see the module docstring) read a row range at a time, or an `.npy` memory-mapped."""

    path: str
    ports: tuple[str, ...] = ()  # the input arrays' names in the file
    size: int = 0  # type: ignore[misc]
    has_labels: bool = False
    description: str = ""

    @classmethod
    def open(cls, path: str | Path) -> "NpzDataset":
        path = Path(path)
        if not path.is_file():
            raise ModelFileError("data file not found", where=str(path), hint="pass an .npz with x [N, T, *shape] and optional y [N]")
        if path.suffix.lower() == ".npy":
            try:
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)  # read a part at a time later
            except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError
                raise ModelFileError(f"cannot read the .npy ({type(exc).__name__}: {' '.join(str(exc).split())})",
                                     where=str(path), hint="save data with numpy.save(path, array)") from exc
            shape = mapped.shape
            if mapped.dtype.kind not in "biuf":
                raise ShapeError("data arrays must be numeric", where=str(path), got=str(mapped.dtype))
            if len(shape) < 3:
                raise ShapeError("a dataset .npy must be [N, T, *shape]", where=str(path), got=list(shape))
            return cls(str(path), ("",), int(shape[0]), False, f"{path.name} ({shape[0]} samples)")
        try:
            with zipfile.ZipFile(path) as zf:
                keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
                headers = {k: _npz_member(zf, k, str(path)) for k in keys}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ModelFileError(f"cannot read the .npz ({type(exc).__name__}: {' '.join(str(exc).split())})",
                                 where=str(path), hint="save data with numpy.savez(path, x=inputs, y=labels)") from exc
        ports = tuple(k for k in keys if k != LABELS_KEY)
        if not ports:
            raise ModelFileError("the .npz holds no input array", where=str(path), expected="x [N, T, *shape] (and y [N])")
        sizes = {k: headers[k][0][0] if headers[k][0] else -1 for k in keys}
        n = sizes[ports[0]]
        for k in keys:
            shape = headers[k][0]
            if k != LABELS_KEY and len(shape) < 3:
                raise ShapeError("an input array must be [N, T, *shape]", where=f"{path}[{k}]", got=list(shape))
            if sizes[k] != n:
                raise ShapeError("every array needs one entry per sample", where=f"{path}[{k}]", expected=n, got=sizes[k])
        if LABELS_KEY in headers and len(headers[LABELS_KEY][0]) != 1:
            raise ShapeError("labels must be one integer class per sample", where=f"{path}[{LABELS_KEY}]",
                             expected=f"[{n}]", got=list(headers[LABELS_KEY][0]))
        return cls(str(path), ports, int(n), LABELS_KEY in headers, f"{path.name} ({n} samples)")

    def _rows(self, key: str, start: int, stop: int) -> np.ndarray:
        if key == "":
            return np.asarray(np.load(self.path, mmap_mode="r", allow_pickle=False)[start:stop])
        with zipfile.ZipFile(self.path) as zf:
            shape, dtype, fortran, offset = _npz_member(zf, key, self.path)
            if fortran:  # rows are not contiguous: read the member whole (rare: numpy writes C order)
                with zf.open(f"{key}.npy") as f:
                    return np.lib.format.read_array(f)[start:stop]
            row = dtype.itemsize * math.prod(shape[1:])
            with zf.open(f"{key}.npy") as f:  # seekable: a stored member directly, a deflated one by decompressing
                f.seek(offset + start * row)
                buf = f.read((stop - start) * row)
        return np.frombuffer(buf, dtype=dtype).reshape((stop - start, *shape[1:])).copy()

    def read(self, start: int, stop: int):
        arrays = {k: self._rows(k, start, stop) for k in self.ports}
        x: Any = next(iter(arrays.values())) if len(arrays) == 1 else arrays
        labels = _labels(self._rows(LABELS_KEY, start, stop), f"{self.path}[{LABELS_KEY}]") if self.has_labels else None
        return x, labels

    def fingerprint(self) -> str:
        return _file_fingerprint(Path(self.path))


def _labels(arr: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(arr).reshape(-1)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise ShapeError("labels must be integer class indices", where=where, got=str(arr.dtype))
    return arr.astype(np.int64)


# -- events ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binning:
    """How event recordings become frames of one length T (module docstring)."""

    steps: int
    bin_ms: float | None = None
    sensor_size: tuple[int, int, int] | None = None  # (W, H, P); default: the format's, else the model's input

    def frames(self, events, sensor_size) -> np.ndarray:
        from .events import events_to_frames

        if self.bin_ms is None:
            return events_to_frames(events, sensor_size, steps=self.steps)
        f = events_to_frames(events, sensor_size, bin_ms=self.bin_ms)
        out = np.zeros((self.steps, *f.shape[1:]), dtype=f.dtype)
        out[: min(self.steps, f.shape[0])] = f[: self.steps]
        return out


def check_binning(steps: int | None, bin_ms: float | None, where: str) -> Binning:
    if steps is None:
        raise ParameterError("event data needs --steps T so that every sample has the same length",
                             where=where, hint="--steps T (T equal bins per recording), or --bin-ms MS --steps T")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ParameterError("steps must be a positive integer", where=where, got=steps)
    return Binning(int(steps), bin_ms)


@dataclass(frozen=True)
class EventFolderDataset(Dataset):
    """Event files in a folder (module docstring); each part reads and bins only its files."""

    files: tuple[str, ...]
    labels: tuple[int, ...] | None
    binning: Binning
    format: str | None = None
    classes: tuple[str, ...] = ()
    description: str = ""
    root: str = ""

    @classmethod
    def open(cls, folder: str | Path, binning: Binning, format: str | None = None) -> "EventFolderDataset":  # noqa: A002
        from .events import FORMATS

        folder = Path(folder)
        suffixes = {s for sfx, _ in FORMATS.values() for s in sfx}

        def event_files(d: Path) -> list[Path]:
            return sorted(p for p in d.iterdir() if p.is_file() and (format is not None or p.suffix.lower() in suffixes))

        subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
        files, labels = event_files(folder), None
        classes: tuple[str, ...] = ()
        if subdirs and not files:
            names = [d.name for d in subdirs]
            numeric = all(n.lstrip("-").isdigit() for n in names)
            ids = [int(n) for n in names] if numeric else list(range(len(names)))
            files, label_list = [], []
            for d, label in zip(subdirs, ids):
                for f in event_files(d):
                    files.append(f)
                    label_list.append(label)
            labels, classes = tuple(label_list), (() if numeric else tuple(names))
        if not files:
            raise ModelFileError("no event files in the folder", where=str(folder),
                                 expected=f"files ending in {', '.join(sorted(suffixes))} (flat, or one subfolder per class)")
        desc = f"{folder.name}/ ({len(files)} event files{', labelled by subfolder' if labels else ''})"
        return cls(tuple(str(f) for f in files), labels, binning, format, classes, desc, str(folder))

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self.files)

    def read(self, start: int, stop: int):
        from .events import load_events

        frames = []
        for path in self.files[start:stop]:
            events, size = load_events(path, self.format, self.binning.sensor_size)
            frames.append(self.binning.frames(events, size))
        labels = None if self.labels is None else np.asarray(self.labels[start:stop], dtype=np.int64)
        return np.stack(frames), labels

    def fingerprint(self) -> str:
        h = hashlib.sha256(repr((self.binning, self.format, self.labels)).encode())
        for f in self.files:
            h.update(f"{Path(f).relative_to(self.root)}|{_file_fingerprint(Path(f))}".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class TonicDataset(Dataset):
    """A tonic dataset (`events.load_dataset`); each process opens it once and reads its samples."""

    name: str
    root: str
    binning: Binning
    train: bool = False
    download: bool = False
    samples: int | None = None
    size: int = 0  # type: ignore[misc]
    description: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open(cls, name: str, root: str | Path, binning: Binning, *, train: bool = False, download: bool = False,
             samples: int | None = None) -> "TonicDataset":
        from .events import load_dataset

        data = load_dataset(name, root, train=train, download=download)
        n = len(data) if samples is None else min(int(samples), len(data))
        return cls(name, str(root), binning, train, download, samples, n,
                   f"tonic {type(data).__name__} {'train' if train else 'test'} ({n} samples)", {"data": data})

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}  # a worker opens the dataset itself
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def read(self, start: int, stop: int):
        from .events import NMNIST_SENSOR, load_dataset

        if "data" not in self._cache:
            self._cache["data"] = load_dataset(self.name, self.root, train=self.train, download=self.download)
        data = self._cache["data"]
        size = tuple(getattr(data, "sensor_size", None) or ()) or NMNIST_SENSOR
        frames, labels = [], []
        for i in range(start, stop):
            events, label = data[i]
            frames.append(self.binning.frames(events, size))
            labels.append(int(label))
        return np.stack(frames), np.asarray(labels, dtype=np.int64)

    def fingerprint(self) -> str:
        return hashlib.sha256(repr((self.name, str(Path(self.root).resolve()), self.train, self.samples, self.binning)).encode()).hexdigest()


def open_dataset(data: Any, *, steps: int | None = None, bin_ms: float | None = None, event_format: str | None = None,
                 sensor_size: tuple[int, int, int] | None = None, root: str | Path = ".", train: bool = False,
                 download: bool = False, samples: int | None = None, labels: Any = None) -> Dataset:
    """The dataset `data` names: a Dataset (as is), arrays (in memory), an .npz/.npy file, a folder
    of event files, or a tonic dataset name (module docstring). `sensor_size` (W, H, P) is used
    where an event format does not fix it."""
    from .events import DATASETS

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (np.ndarray, Mapping)):
        return ArrayDataset(data, None if labels is None else _labels(np.asarray(labels), "labels"))
    text = str(data)
    path = Path(text)
    if path.is_dir():
        binning = check_binning(steps, bin_ms, text)
        return EventFolderDataset.open(path, Binning(binning.steps, bin_ms, sensor_size), event_format)
    if path.is_file() and path.suffix.lower() not in (".npz", ".npy"):
        raise ModelFileError("a dataset file must be an .npz or .npy", where=text,
                             hint="put event recordings in a folder (one subfolder per class for labels) and pass the folder")
    if path.suffix.lower() in (".npz", ".npy"):
        if bin_ms is not None:
            raise ParameterError("--bin-ms applies to event data only", where=text, hint="drop --bin-ms for arrays")
        return NpzDataset.open(path)
    key = text.lower().replace("-", "").replace("_", "")
    if key in DATASETS:
        binning = check_binning(steps, bin_ms, text)
        return TonicDataset.open(text, root, Binning(binning.steps, bin_ms, sensor_size), train=train, download=download,
                                 samples=samples)
    raise ModelFileError("data not found", where=text,
                         expected=f"an .npz/.npy file, a folder of event files, or a tonic dataset name ({', '.join(sorted(DATASETS))})")
