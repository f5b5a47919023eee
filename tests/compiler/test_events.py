"""Event files through tonic: the real N-MNIST sample (numbers from the data README), an
independent bit parser, hand-made files, binning invariants, bad files and options."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler.data.events import dataset_frames, events_to_frames, load_events, read_events
from snnc.ir.errors import ModelFileError, ParameterError


def encode(x, y, p, t) -> bytes:
    """Pack one N-MNIST event by hand: x byte, y byte, then p in bit 23 and t in bits 22..0, big-endian."""
    word = (p << 23) | t
    return bytes([x, y, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF])


@pytest.mark.refdata
def test_real_sample_matches_the_readme_and_an_independent_bit_parser(refdata):
    path = refdata / "events/sample_nmnist.bin"
    ev, size = load_events(path)
    assert size == (34, 34, 2) and len(ev) == 4325
    assert ev["x"].max() == 33 and ev["y"].max() == 33 and 300_000 < ev["t"].max() <= 312_000
    raw = path.read_bytes()
    for i in (0, 1, 2000, 4324):  # python ints and shifts, event by event (no overflow markers in this file)
        b = raw[5 * i : 5 * i + 5]
        word = int.from_bytes(b[2:5], "big")
        assert (ev["x"][i], ev["y"][i], int(ev["p"][i]), ev["t"][i]) == (b[0], b[1], word >> 23, word & 0x7FFFFF)


@pytest.mark.refdata
def test_frames_keep_every_event_in_its_bin(refdata):
    path = refdata / "events/sample_nmnist.bin"
    ev, _ = load_events(path)
    frames = read_events(path, bin_ms=1)
    assert frames.shape == (int(np.ceil((ev["t"].max() + 1) / 1000)), 2, 34, 34)
    expect = np.zeros(frames.shape)  # an independent count: bin = t // 1000
    np.add.at(expect, (ev["t"] // 1000, ev["p"], ev["y"], ev["x"]), 1)
    assert np.array_equal(frames, expect) and frames.sum() == 4325
    for steps in (1, 7, 10):
        f = read_events(path, steps=steps)
        assert f.shape == (steps, 2, 34, 34) and f.sum() == 4325
        assert np.array_equal(f.sum(axis=0), expect.sum(axis=0))


def test_hand_made_file(tmp_path):
    path = tmp_path / "two.bin"
    path.write_bytes(encode(3, 31, 1, 1234) + encode(33, 0, 0, 5000))
    ev, _ = load_events(path)
    assert [(int(e["x"]), int(e["y"]), int(e["t"]), int(e["p"])) for e in ev] == [(3, 31, 1234, 1), (33, 0, 5000, 0)]
    frames = read_events(path, bin_ms=2)
    assert frames.shape == (3, 2, 34, 34) and frames.sum() == 2
    assert frames[0, 1, 31, 3] == 1 and frames[2, 0, 0, 33] == 1  # [bin, polarity, y, x]


def test_bad_files_and_options(tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(encode(1, 1, 0, 5) + b"\x01\x02")
    with pytest.raises(ModelFileError, match="multiple of 5") as err:
        load_events(cut)
    assert "7 bytes" in str(err.value)
    wide = tmp_path / "wide.bin"
    wide.write_bytes(encode(1, 1, 0, 5) + encode(40, 2, 1, 9))
    with pytest.raises(ModelFileError, match="outside the sensor") as err:
        load_events(wide)
    assert "event 1" in str(err.value) and "x=40" in str(err.value)
    assert load_events(wide, sensor_size=(41, 41, 2))[1] == (41, 41, 2)
    with pytest.raises(ModelFileError, match="not found"):
        load_events(tmp_path / "none.bin")
    unknown = tmp_path / "rec.xyz"
    unknown.write_bytes(b"")
    with pytest.raises(ParameterError, match="format"):
        load_events(unknown)
    ev, size = load_events(wide, sensor_size=(41, 41, 2))
    with pytest.raises(ParameterError, match="exactly one"):
        events_to_frames(ev, size)
    with pytest.raises(ParameterError, match="exactly one"):
        events_to_frames(ev, size, bin_ms=1, steps=3)
    with pytest.raises(ParameterError, match="positive"):
        events_to_frames(ev, size, bin_ms=0)
    with pytest.raises(ParameterError, match="positive integer"):
        events_to_frames(ev, size, steps=0)


def test_structured_npy_events_and_a_dataset_adapter(tmp_path):
    import tonic

    dtype = tonic.datasets.NMNIST.dtype
    ev = np.array([(1, 2, 0, 1), (1, 2, 10, 1), (0, 0, 2500, 0)], dtype=dtype)
    np.save(tmp_path / "ev.npy", ev)
    frames = read_events(tmp_path / "ev.npy", sensor_size=(4, 4, 2), bin_ms=1)
    assert frames.shape == (3, 2, 4, 4) and frames[0, 1, 2, 1] == 2 and frames[2, 0, 0, 0] == 1

    class Data:  # what a tonic dataset is: sensor_size, len, (events, label) per index
        sensor_size = (4, 4, 2)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return ev, i

    pairs = list(dataset_frames(Data(), steps=2))
    assert [label for _, label in pairs] == [0, 1] and all(f.shape == (2, 2, 4, 4) and f.sum() == 3 for f, _ in pairs)


def test_dataset_arrays_pad_recordings_to_the_longest():
    import tonic

    short = np.array([(0, 0, 100, 1)], dtype=tonic.datasets.NMNIST.dtype)
    long = np.array([(1, 1, 0, 0), (1, 1, 4500, 0)], dtype=tonic.datasets.NMNIST.dtype)

    class Data:
        sensor_size = (2, 2, 2)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return (short, 7) if i == 0 else (long, 3)

    from snnc.compiler.data.events import dataset_arrays

    x, labels = dataset_arrays(Data(), bin_ms=1)
    assert x.shape == (2, 5, 2, 2, 2) and labels.tolist() == [7, 3]
    assert x[0].sum() == 1 and x[0, 1:].sum() == 0 and x[1, 0, 0, 1, 1] == 1 and x[1, 4, 0, 1, 1] == 1
    x1, _ = dataset_arrays(Data(), steps=3, samples=1)
    assert x1.shape == (1, 3, 2, 2, 2)
