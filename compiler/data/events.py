"""N-MNIST event files: read them and bin them into frames a network can take as input.

The N-MNIST binary format (Orchard et al. 2015; read the same way by tonic's
`tonic.io.read_mnist_file`): 5 bytes per event, big-endian bit packing,

    bits 39-32  x address (pixels)
    bits 31-24  y address (pixels)
    bit  23     polarity (1 = ON, 0 = OFF)
    bits 22-0   timestamp (microseconds)

An event whose y byte is 240 is a timestamp-overflow marker, not a spike: as in tonic (and
Orchard's eventvision.py it copies) every later timestamp grows by 2**13 and the marker is
dropped. Events come back as tonic's structured dtype (x int16, y int16, t int64, p bool).

Frames are [T, 2, H, W] (polarity OFF=0 / ON=1, then y, then x), the layout tonic's ToFrame
produces and the NIR paper's N-MNIST CNN (input 2x34x34) was trained on. Unlike tonic's
`time_window` slicing, every event lands in exactly one bin (the last bin may be partial), so the
frame sum equals the event count.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from snnc.ir.errors import ModelFileError, ParameterError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
NMNIST_SENSOR = (34, 34)
"""(width, height) of the N-MNIST sensor, as tonic's NMNIST.sensor_size[:2]."""
BYTES_PER_EVENT = 5
OVERFLOW_Y = 240
OVERFLOW_STEP_US = 2**13


def decode_nmnist(raw: bytes, *, sensor_size: tuple[int, int] = NMNIST_SENSOR, where: str = "<bytes>") -> np.ndarray:
    """Decode N-MNIST bytes into a structured array (x, y, t, p); errors name the bad event."""
    if len(raw) % BYTES_PER_EVENT:
        raise ModelFileError(
            "N-MNIST file size is not a multiple of 5 bytes (truncated or not an N-MNIST file)",
            where=where,
            expected=f"a multiple of {BYTES_PER_EVENT} bytes",
            got=f"{len(raw)} bytes",
        )
    data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, BYTES_PER_EVENT).astype(np.int64)
    x, y = data[:, 0], data[:, 1]
    p = (data[:, 2] >> 7).astype(bool)
    t = ((data[:, 2] & 0x7F) << 16) | (data[:, 3] << 8) | data[:, 4]
    overflow = y == OVERFLOW_Y
    if overflow.any():
        t = t + OVERFLOW_STEP_US * np.cumsum(overflow)
        keep = ~overflow
        x, y, t, p = x[keep], y[keep], t[keep], p[keep]
    width, height = sensor_size
    bad = np.flatnonzero((x >= width) | (y >= height))
    if bad.size:
        i = int(bad[0])
        raise ModelFileError(
            "event coordinates outside the sensor (corrupt file or wrong sensor size)",
            where=f"{where}: event {i}",
            expected=f"x < {width}, y < {height}",
            got=f"x={int(x[i])}, y={int(y[i])} ({bad.size} such events)",
            hint="pass sensor_size=(width, height) for recordings from another sensor",
        )
    events = np.empty(x.size, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def read_nmnist(path: str | Path, *, sensor_size: tuple[int, int] = NMNIST_SENSOR) -> np.ndarray:
    """Read an N-MNIST .bin file into a structured array with fields x, y, t (µs), p."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError("event file not found", where=str(path), hint="check the path")
    if path.is_dir():
        raise ModelFileError("is a directory, not an event file", where=str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read the event file ({exc.strerror or exc})", where=str(path)) from exc
    return decode_nmnist(raw, sensor_size=sensor_size, where=str(path))


def events_to_frames(
    events: np.ndarray,
    *,
    bin_width_us: float | None = None,
    n_bins: int | None = None,
    sensor_size: tuple[int, int] = NMNIST_SENSOR,
    t_start: int = 0,
    t_end: int | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """Count events into frames [T, 2, height, width] over [t_start, t_end).

    Give exactly one of `bin_width_us` (T = ceil((t_end - t_start) / width)) or `n_bins`
    (equal bins). `t_end` defaults to the last timestamp + 1. Events outside the window are
    dropped; with the defaults none are, so frames.sum() == len(events).
    """
    if (bin_width_us is None) == (n_bins is None):
        raise ParameterError("give exactly one of bin_width_us or n_bins", where="events_to_frames", got=(bin_width_us, n_bins))
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not {"x", "y", "t", "p"} <= set(names):
        raise ParameterError(
            "events must be a structured array with fields x, y, t, p", where="events_to_frames", got=names or type(events).__name__
        )
    width, height = (int(v) for v in sensor_size)
    t = events["t"].astype(np.int64)
    if t_end is None:
        t_end = int(t.max()) + 1 if t.size else int(t_start) + 1
    span = int(t_end) - int(t_start)
    if span <= 0:
        raise ParameterError("time window is empty", where="events_to_frames", expected="t_end > t_start", got=(t_start, t_end))
    if bin_width_us is not None:
        width_us = float(bin_width_us)
        if not math.isfinite(width_us) or width_us <= 0:
            raise ParameterError("bin width must be a positive number of microseconds", where="events_to_frames", got=bin_width_us)
        count = math.ceil(span / width_us)
        index = np.floor((t - t_start) / width_us).astype(np.int64)
    else:
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins <= 0:
            raise ParameterError("n_bins must be a positive integer", where="events_to_frames", got=n_bins)
        count = int(n_bins)
        index = ((t - t_start) * count) // span
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    if np.any((x < 0) | (x >= width) | (y < 0) | (y >= height)):
        raise ParameterError(
            "event coordinates outside the sensor", where="events_to_frames", expected=f"x < {width}, y < {height}"
        )
    inside = (t >= t_start) & (t < t_end)
    frames = np.zeros((count, 2, height, width), dtype=np.int64)
    np.add.at(frames, (index[inside], events["p"][inside].astype(np.int64), y[inside], x[inside]), 1)
    return frames.astype(dtype)


def nmnist_frames(path: str | Path, *, bin_width_us: float | None = None, n_bins: int | None = None, **kwargs) -> np.ndarray:
    """Read an N-MNIST file and bin it: frames [T, 2, 34, 34] ready for `snnc run`."""
    sensor_size = kwargs.pop("sensor_size", NMNIST_SENSOR)
    events = read_nmnist(path, sensor_size=sensor_size)
    return events_to_frames(events, bin_width_us=bin_width_us, n_bins=n_bins, sensor_size=sensor_size, **kwargs)
