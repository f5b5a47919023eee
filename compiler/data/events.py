"""Event-camera / event-stream data through tonic: read a recording, bin it into frames.

tonic (the library this field uses) reads the formats and bins the events; this module picks the
reader from the file (or `format`), knows each format's sensor size, turns tonic's errors into
snnc errors naming the file, and bins with `tonic.functional.to_frame_numpy` so that every event
lands in exactly one bin (the last bin may be partial: `include_incomplete`).

Frames are [T, P, H, W] (polarity, then y, then x), tonic's ToFrame layout, the one the NIR
paper's N-MNIST CNN (input 2x34x34) was trained on. Binned counts may exceed 1; the encoding
contract (snnc.compiler.data.encoding) sends them as graded payload, never refusing them.

`read_events(path, ...)` -> frames is the one call the CLI (`--events`) and the evaluation
commands use; `dataset_frames(dataset, ...)` adapts any tonic dataset (NMNIST, DVSGesture, SHD,
...) to (frames, label) pairs binned the same way.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from snnc.ir.errors import ModelFileError, ParameterError

NMNIST_SENSOR = (34, 34, 2)
"""(width, height, polarities) of the N-MNIST sensor, as tonic.datasets.NMNIST.sensor_size."""

FORMATS = {
    # name: (file suffixes, default sensor size (W, H, P) or None = from the file/events)
    "nmnist": ((".bin",), NMNIST_SENSOR),
    "aedat4": ((".aedat4",), None),
    "dvs128": ((), (128, 128, 2)),
    "dvsgesture": ((".aedat",), (128, 128, 2)),
    "davis346": ((), (346, 260, 2)),
    "npy": ((".npy",), None),
}


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ParameterError("unknown event format", where=str(path), expected=sorted(FORMATS), got=fmt)
        return fmt
    for name, (suffixes, _) in FORMATS.items():
        if path.suffix.lower() in suffixes:
            return name
    raise ParameterError(
        "cannot tell the event format from the file name", where=str(path), expected=sorted(FORMATS),
        hint="pass --event-format (format=...)",
    )


def load_events(path: str | Path, format: str | None = None, sensor_size: tuple[int, int, int] | None = None):  # noqa: A002
    """(events, sensor_size): tonic's structured array (x, y, t in µs, p) and (W, H, P)."""
    import tonic
    import tonic.io as tio

    path = Path(path)
    if not path.exists():
        raise ModelFileError("event file not found", where=str(path), hint="check the path")
    if path.is_dir():
        raise ModelFileError("is a directory, not an event file", where=str(path))
    fmt = _format_of(path, format)
    try:
        if fmt == "nmnist":
            if path.stat().st_size % 5:
                raise ModelFileError("N-MNIST file size is not a multiple of 5 bytes (truncated or not an N-MNIST file)",
                                     where=str(path), expected="a multiple of 5 bytes", got=f"{path.stat().st_size} bytes")
            events = tio.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
        elif fmt == "aedat4":
            events = tio.read_aedat4(str(path))
        elif fmt == "dvs128":
            events = tio.read_dvs_128(str(path))[1]
        elif fmt == "dvsgesture":
            events = tio.read_dvs_ibm(str(path))[1]
        elif fmt == "davis346":
            events = tio.read_davis_346(str(path))[1]
        else:
            events = np.load(path, allow_pickle=False)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - tonic's readers raise many types on bad files
        raise ModelFileError(f"tonic cannot read the file as {fmt} ({type(exc).__name__}: {' '.join(str(exc).split())})",
                             where=str(path)) from exc
    names = set(getattr(events.dtype, "names", None) or ())
    if not {"x", "t", "p"} <= names:
        raise ModelFileError("not an event array (needs fields x, t, p and usually y)", where=str(path), got=sorted(names))
    size = sensor_size or FORMATS[fmt][1]
    if size is None:
        size = (int(events["x"].max()) + 1 if len(events) else 1,
                int(events["y"].max()) + 1 if "y" in names and len(events) else 1,
                max(2, int(events["p"].max()) + 1) if len(events) else 2)
    shape = (int(size[0]), int(size[1]), int(size[2]))
    _check_inside(events, shape, str(path))
    return events, shape


def _check_inside(events, size, where: str) -> None:
    width, height = size[0], size[1]
    y = events["y"] if "y" in events.dtype.names else np.zeros(len(events), np.int64)
    bad = np.flatnonzero((events["x"] < 0) | (events["x"] >= width) | (y < 0) | (y >= height) | (events["p"] >= size[2]))
    if bad.size:
        i = int(bad[0])
        raise ModelFileError(
            "event coordinates outside the sensor (corrupt file or wrong sensor size)",
            where=f"{where}: event {i}", expected=f"x < {width}, y < {height}, p < {size[2]}",
            got=f"x={int(events['x'][i])}, y={int(y[i])}, p={int(events['p'][i])} ({bad.size} such events)",
            hint="pass sensor_size=(width, height, polarities) for recordings from another sensor",
        )


def events_to_frames(events, sensor_size=NMNIST_SENSOR, *, bin_ms: float | None = None, steps: int | None = None,
                     dtype=np.float32) -> np.ndarray:
    """Count events into frames [T, P, H, W] with tonic: bins of `bin_ms` milliseconds from t=0
    (the last one partial), or `steps` equal bins over the recording. Every event lands in one bin."""
    from tonic.functional import to_frame_numpy

    if (bin_ms is None) == (steps is None):
        raise ParameterError("give exactly one of bin_ms (--bin-ms) or steps (--steps)", where="events_to_frames", got=(bin_ms, steps))
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not {"x", "t", "p"} <= set(names):
        raise ParameterError("events must be a structured array with fields x, t, p (and y)", where="events_to_frames",
                             got=names or type(events).__name__)
    size = tuple(int(v) for v in sensor_size)
    _check_inside(events, size, "events_to_frames")
    events = np.sort(events, order="t") if len(events) and np.any(np.diff(events["t"]) < 0) else events
    if bin_ms is not None:
        if not (isinstance(bin_ms, (int, float)) and math.isfinite(bin_ms) and bin_ms > 0):
            raise ParameterError("bin width must be a positive number of milliseconds", where="events_to_frames", got=bin_ms)
        window = float(bin_ms) * 1000.0
        if not len(events):
            return np.zeros((1, size[2], size[1], size[0]), dtype=dtype)
        end = float(events["t"].max()) + 1
        count = max(1, math.ceil(end / window))
        frames = to_frame_numpy(events.copy(), size, time_window=window, include_incomplete=True, start_time=0,
                                end_time=count * window)
    else:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
            raise ParameterError("steps must be a positive integer", where="events_to_frames", got=steps)
        if not len(events):
            return np.zeros((int(steps), size[2], size[1], size[0]), dtype=dtype)
        end = float(events["t"].max()) + 1  # equal bins over [0, last event]: the last event is kept
        frames = to_frame_numpy(events.copy(), size, time_window=end / int(steps), include_incomplete=True, start_time=0,
                                end_time=end)[: int(steps)]
    return np.asarray(frames, dtype=dtype)


def read_events(path: str | Path, *, format: str | None = None, sensor_size: tuple[int, int, int] | None = None,  # noqa: A002
                bin_ms: float | None = None, steps: int | None = None, dtype=np.float32) -> np.ndarray:
    """Read an event file with tonic and bin it: frames [T, P, H, W] ready for `snnc run`."""
    events, size = load_events(path, format, sensor_size)
    return events_to_frames(events, size, bin_ms=bin_ms, steps=steps, dtype=dtype)


def dataset_frames(dataset, *, bin_ms: float | None = None, steps: int | None = None, indices=None,
                   dtype=np.float32) -> Iterator[tuple[np.ndarray, int]]:
    """(frames [T, P, H, W], label) per sample of a tonic dataset (untransformed samples are
    (events, label)); `indices` picks samples. Binned like `read_events`."""
    size = tuple(getattr(dataset, "sensor_size", None) or ())
    for i in range(len(dataset)) if indices is None else indices:
        events, label = dataset[i]
        yield events_to_frames(events, size or NMNIST_SENSOR, bin_ms=bin_ms, steps=steps, dtype=dtype), label


def nmnist_frames(path: str | Path, *, bin_width_us: float | None = None, n_bins: int | None = None, dtype=np.float32) -> np.ndarray:
    """An N-MNIST file as frames [T, 2, 34, 34] (bins in microseconds or a number of bins)."""
    return read_events(path, format="nmnist", bin_ms=None if bin_width_us is None else bin_width_us / 1000.0,
                       steps=n_bins, dtype=dtype)


DATASETS = {"nmnist": "NMNIST", "dvsgesture": "DVSGesture", "shd": "SHD", "ssc": "SSC", "pokerdvs": "POKERDVS",
            "cifar10dvs": "CIFAR10DVS", "ncaltech101": "NCALTECH101"}
"""Dataset names the CLI accepts -> tonic.datasets classes."""


def load_dataset(name: str, root: str | Path, *, train: bool = False, download: bool = False):
    """A tonic dataset stored under `root` (tonic's own layout). Nothing is downloaded unless
    `download=True` (the user asks for it); a missing dataset is an error naming the folder."""
    import tonic.datasets as tds

    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ParameterError("unknown event dataset", where=f"dataset {name!r}", expected=sorted(DATASETS))
    cls = getattr(tds, DATASETS[key])

    def refuse(self):
        raise ModelFileError(f"tonic dataset {DATASETS[key]} not found", where=str(Path(root) / DATASETS[key]),
                             hint="put the dataset there in tonic's layout, or allow the download (--download)")

    kind = cls if download else type(cls.__name__, (cls,), {"download": refuse})
    kwargs = {"train": train} if "train" in cls.__init__.__code__.co_varnames else {}
    return kind(str(root), **kwargs)


def dataset_arrays(dataset, *, bin_ms: float | None = None, steps: int | None = None, samples: int | None = None,
                   dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(x [N, T, *frame], labels [N]) from a tonic dataset, the first `samples` samples; recordings
    of different lengths (with `bin_ms`) are padded with empty bins to the longest."""
    n = len(dataset) if samples is None else min(int(samples), len(dataset))
    pairs = list(dataset_frames(dataset, bin_ms=bin_ms, steps=steps, indices=range(n), dtype=dtype))
    if not pairs:
        raise ParameterError("the dataset holds no samples", where=type(dataset).__name__)
    length = max(f.shape[0] for f, _ in pairs)
    x = np.zeros((len(pairs), length, *pairs[0][0].shape[1:]), dtype=dtype)
    for i, (f, _) in enumerate(pairs):
        x[i, : f.shape[0]] = f
    return x, np.array([int(label) for _, label in pairs])
