"""The two datasets of issue 18's done-when, small: the digits conversion example's test split as an
.npz (a chip-level file), and the NIR paper CNN with N-MNIST-like event files made by tonic's
transforms from the real recording. Shared by test_dataset_eval.py and test_dask_engine.py; and the
small integrate-and-fire case the budget and report CLI tests run over a dataset file."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CNN = "nir-paper/cnn/cnn_sinabs.nir"
BIN_MS, STEPS = 20.0, 6  # 20 ms bins, the first 120 ms of each recording


def if_case(folder: Path):
    """The integrate-and-fire network as `if.nir` and 10 random spike trains in `folder`: `d.npz` (x and
    labels y) and the same as `x.npy`/`y.npy` for --input/--labels. Returns (x, y)."""
    import nir

    from test_sweep import if_network

    rng = np.random.default_rng(11)
    x = (rng.random((10, 12, 3)) < 0.5).astype(np.float32)
    y = rng.integers(0, 2, 10)
    nir.write(str(folder / "if.nir"), if_network())
    np.savez(folder / "d.npz", x=x, y=y)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return x, y


def digits_case(tmp_path: Path, samples: int = 24):
    """(chip .nir, data .npz, integer-CNN predictions, labels) for the first `samples` images of
    the example's test split: its CNN at --fast widths, briefly trained, on the integer grid (L = 4)
    and converted for the chip; the .npz holds the chip's encoded inputs per port and `y`."""
    import nir

    from snnc.ir.chip_nir import chip_to_nir

    conv, qnet, x_test, y_test = _digits_conversion()
    model = tmp_path / "digits_chip.nir"
    nir.write(str(model), chip_to_nir(conv.chip))
    data = tmp_path / "digits_test.npz"
    np.savez(data, **conv.encode(x_test[:samples]), y=y_test[:samples])
    return model, data, np.asarray(qnet.predict(x_test[:samples])), y_test[:samples]


@functools.lru_cache(maxsize=1)
def _digits_conversion():
    """Trained once per test session (both test files use it)."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from _common import load_digits_split, seeded, train_classifier
        from digits_conversion import PIXEL_LEVELS, build_cnn
    finally:
        sys.path.remove(str(REPO / "examples"))
    from snnc.compiler.frontends.conversion.chip import convert_to_chip, quantize_model

    with seeded(0):
        x_train, x_test, y_train, y_test = load_digits_split(0)
        x_train, x_test = x_train[:, None], x_test[:, None]
        fnet = train_classifier(build_cnn((4, 8)), x_train, y_train, 20, lr=3e-3)
        qnet = quantize_model(fnet, x_train, levels=4, input_scale=1.0 / PIXEL_LEVELS, input_range=(0, PIXEL_LEVELS),
                              weight_bits=8)
    return convert_to_chip(qnet, (1, 8, 8)), qnet, x_test, y_test


def synthetic_events(recording, rng: np.random.Generator, count: int):
    """`count` N-MNIST-like recordings: the real one through tonic's transforms (spatial jitter,
    dropped events, time jitter), each from its own seed."""
    import tonic.transforms as T

    sensor = (34, 34, 2)
    out = []
    for _ in range(count):
        np.random.seed(int(rng.integers(2**31)))  # tonic's transforms draw from numpy's global generator
        ev = T.Compose([T.SpatialJitter(sensor, var_x=1.5, var_y=1.5, clip_outliers=True),
                        T.DropEvent(p=float(rng.uniform(0.1, 0.5))),
                        T.TimeJitter(std=500, clip_negative=True, sort_timestamps=True)])(recording.copy())
        out.append(ev)
    return out


def cnn_event_folder(tmp_path: Path, refdata: Path, per_class: int = 2, classes: int = 3):
    """A folder of .npy event files, one subfolder per class ('0', '1', ...), and the frames
    [N, STEPS, 2, 34, 34] binned independently (np.add.at on t // bin) in the folder's order."""
    from snnc.compiler.data.events import load_events

    recording, _ = load_events(refdata / "events/sample_nmnist.bin")
    rng = np.random.default_rng(7)
    folder = tmp_path / "events"
    frames, labels = [], []
    for label in range(classes):
        (folder / str(label)).mkdir(parents=True)
        for i, ev in enumerate(synthetic_events(recording, rng, per_class)):
            np.save(folder / str(label) / f"sample{i}.npy", ev)
            f = np.zeros((STEPS, 2, 34, 34), np.float32)
            keep = ev["t"] // int(BIN_MS * 1000) < STEPS
            np.add.at(f, ((ev["t"][keep] // int(BIN_MS * 1000)).astype(int), ev["p"][keep].astype(int),
                          ev["y"][keep].astype(int), ev["x"][keep].astype(int)), 1)
            frames.append(f)
            labels.append(label)
    return folder, np.stack(frames), np.array(labels)
