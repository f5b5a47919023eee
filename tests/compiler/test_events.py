"""N-MNIST reader: the real sample (numbers from the data README), hand-made files, bad files."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler.data.events import (
    EVENT_DTYPE,
    decode_nmnist,
    events_to_frames,
    nmnist_frames,
    read_nmnist,
)
from snnc.ir.errors import ModelFileError, ParameterError


def encode(x, y, p, t) -> bytes:
    """Pack one event by hand: x byte, y byte, then p in bit 23 and t in bits 22..0, big-endian."""
    word = (p << 23) | t
    return bytes([x, y, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF])


@pytest.mark.refdata
def test_real_sample_matches_the_readme(refdata):
    ev = read_nmnist(refdata / "events/sample_nmnist.bin")
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) == 4325
    assert ev["x"].min() >= 0 and ev["x"].max() == 33 and ev["y"].max() == 33
    assert 300_000 < ev["t"].max() <= 312_000  # ~311 ms, in microseconds
    assert np.all(np.diff(ev["t"]) >= 0)  # recordings are time-ordered
    assert 0 < ev["p"].sum() < len(ev)  # both polarities occur


@pytest.mark.refdata
def test_real_sample_decodes_like_an_independent_bit_parser(refdata):
    raw = (refdata / "events/sample_nmnist.bin").read_bytes()
    ev = read_nmnist(refdata / "events/sample_nmnist.bin")
    for i in (0, 1, 2000, 4324):  # python ints and shifts, event by event
        b = raw[5 * i : 5 * i + 5]
        word = int.from_bytes(b[2:5], "big")
        assert (ev["x"][i], ev["y"][i], bool(ev["p"][i]), ev["t"][i]) == (b[0], b[1], bool(word >> 23), word & 0x7FFFFF)


@pytest.mark.refdata
def test_frames_of_the_real_sample(refdata):
    ev = read_nmnist(refdata / "events/sample_nmnist.bin")
    frames = events_to_frames(ev, bin_width_us=1000)
    assert frames.shape == (int(np.ceil((ev["t"].max() + 1) / 1000)), 2, 34, 34)
    assert frames.sum() == 4325
    assert frames[:, 1].sum() == ev["p"].sum()  # channel 1 holds the ON events
    frames10 = nmnist_frames(refdata / "events/sample_nmnist.bin", n_bins=10)
    assert frames10.shape == (10, 2, 34, 34) and frames10.sum() == 4325
    assert np.array_equal(frames10.sum(axis=0), frames.sum(axis=0))  # same pixels, other binning


def test_two_hand_made_events(tmp_path):
    path = tmp_path / "two.bin"
    path.write_bytes(encode(3, 31, 1, 1234) + encode(33, 0, 0, 0x7FFFFF))
    ev = read_nmnist(path)
    assert ev.tolist() == [(3, 31, 1234, True), (33, 0, 8388607, False)]
    # the second event's bytes are 21 00 7F FF FF: x=33, y=0, polarity bit clear, t = 2**23 - 1
    assert path.read_bytes()[5:] == bytes([0x21, 0x00, 0x7F, 0xFF, 0xFF])
    frames = events_to_frames(ev, n_bins=2)
    assert frames.shape == (2, 2, 34, 34) and frames.sum() == 2
    assert frames[0, 1, 31, 3] == 1 and frames[1, 0, 0, 33] == 1  # [bin, polarity, y, x]


def test_bin_width_edges():
    ev = np.array([(0, 0, 0, False), (1, 0, 999, True), (2, 0, 1000, True), (3, 0, 2500, False)], dtype=EVENT_DTYPE)
    frames = events_to_frames(ev, bin_width_us=1000)
    assert frames.shape[0] == 3  # [0,1000), [1000,2000), [2000,2501)
    assert frames[0].sum() == 2 and frames[1].sum() == 1 and frames[2].sum() == 1
    windowed = events_to_frames(ev, bin_width_us=1000, t_start=1000, t_end=2000)
    assert windowed.shape[0] == 1 and windowed.sum() == 1 and windowed[0, 1, 0, 2] == 1


def test_overflow_marker_shifts_later_timestamps_like_tonic():
    raw = encode(1, 1, 0, 10) + encode(0, 240, 0, 0) + encode(2, 2, 1, 10)
    ev = decode_nmnist(raw)
    assert ev["t"].tolist() == [10, 10 + 2**13] and len(ev) == 2


def test_size_not_a_multiple_of_five(tmp_path):
    path = tmp_path / "cut.bin"
    path.write_bytes(encode(1, 1, 0, 5) + b"\x01\x02")
    with pytest.raises(ModelFileError, match="multiple of 5") as err:
        read_nmnist(path)
    assert str(path) in str(err.value) and "7 bytes" in str(err.value)


def test_coordinates_out_of_range(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(encode(1, 1, 0, 5) + encode(34, 2, 1, 9))
    with pytest.raises(ModelFileError, match="outside the sensor") as err:
        read_nmnist(path)
    assert "event 1" in str(err.value) and "x=34" in str(err.value)
    assert len(read_nmnist(path, sensor_size=(35, 35))) == 2


def test_missing_file_and_bad_binning(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        read_nmnist(tmp_path / "none.bin")
    ev = decode_nmnist(encode(0, 0, 0, 0))
    with pytest.raises(ParameterError, match="exactly one"):
        events_to_frames(ev)
    with pytest.raises(ParameterError, match="exactly one"):
        events_to_frames(ev, bin_width_us=10, n_bins=3)
    with pytest.raises(ParameterError, match="positive"):
        events_to_frames(ev, bin_width_us=0)
    with pytest.raises(ParameterError, match="positive integer"):
        events_to_frames(ev, n_bins=0)
    with pytest.raises(ParameterError, match="structured array"):
        events_to_frames(np.zeros(3), n_bins=1)


def test_empty_file_gives_empty_events(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    ev = read_nmnist(path)
    assert len(ev) == 0
    assert events_to_frames(ev, n_bins=4).shape == (4, 2, 34, 34)
