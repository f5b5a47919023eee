"""`snnc evaluate` / evaluate_dataset in this process: batches read only their rows, the digits
conversion's test split gives the integer CNN's predictions, the NIR paper CNN on event files gives
what one compile-and-run of the whole set gives (binned independently), on any backend."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dataset_cases import BIN_MS, CNN, STEPS, cnn_event_folder, digits_case
from snnc.compiler.analysis.dataset_eval import evaluate_dataset, merge_activity, predict
from snnc.compiler.data.dataset import ArrayDataset, NpzDataset, open_dataset
from snnc.compiler.cli import main
from snnc.ir.errors import ModelFileError, ParameterError, ShapeError


def test_npz_and_npy_parts_read_exactly_their_rows(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (11, 3, 2, 4)).astype(np.int16)
    y = rng.integers(0, 3, 11)
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", a=x, b=x[:, :, :1] * 2.5)
    np.save(tmp_path / "x.npy", x)
    plain, packed, npy = (NpzDataset.open(tmp_path / n) for n in ("plain.npz", "packed.npz", "x.npy"))
    assert (plain.size, packed.size, npy.size) == (11, 11, 11)
    for part in plain.parts(4):
        xs, ys = part.load()
        assert np.array_equal(xs, x[part.start:part.stop]) and np.array_equal(ys, y[part.start:part.stop])
        assert xs.dtype == np.int16
    assert [(p.start, p.stop) for p in plain.parts(4)] == [(0, 4), (4, 8), (8, 11)]
    xs, ys = packed.read(3, 9)  # two ports by name, no labels, a deflated member read by seeking
    assert ys is None and set(xs) == {"a", "b"}
    assert np.array_equal(xs["a"], x[3:9]) and np.array_equal(xs["b"], x[3:9, :, :1] * 2.5)
    assert np.array_equal(npy.read(5, 11)[0], x[5:])
    arrays = ArrayDataset({"a": x}, y)  # in memory: a part carries its own slice and its global place
    for part in arrays.parts(3):
        xs, ys = part.load()
        assert np.array_equal(xs["a"], x[part.start:part.stop]) and np.array_equal(ys, y[part.start:part.stop])
    assert [p.start for p in arrays.parts(3)] == [0, 3, 6, 9] and arrays.parts(3)[-1].dataset.size == 2
    np.savez(tmp_path / "bad_y.npz", x=x, y=y[:5])
    with pytest.raises(ShapeError, match="one entry per sample") as err:
        NpzDataset.open(tmp_path / "bad_y.npz")
    assert "bad_y.npz[y]" in str(err.value)
    np.savez(tmp_path / "flat.npz", x=x[:, 0, 0])
    with pytest.raises(ShapeError, match=r"\[N, T, \*shape\]"):
        NpzDataset.open(tmp_path / "flat.npz")
    with pytest.raises(ModelFileError, match="data not found"):
        open_dataset(tmp_path / "nothing_here")
    (tmp_path / "one.bin").write_bytes(b"")
    with pytest.raises(ModelFileError, match="in a folder"):
        open_dataset(tmp_path / "one.bin", steps=3)
    with pytest.raises(ParameterError, match="--steps"):
        open_dataset(tmp_path, bin_ms=2.0)  # a folder is event data: it needs a fixed length
    with pytest.raises(ParameterError, match="batch size"):
        plain.parts(0)


@pytest.mark.refdata
def test_a_tonic_dataset_is_read_a_part_at_a_time_with_its_labels(tmp_path, refdata):
    from snnc.compiler.data.events import read_events

    sample = refdata / "events/sample_nmnist.bin"
    test = tmp_path / "NMNIST" / "Test"  # tonic's layout; it checks for test.zip and 10,000 .bin files
    for digit, count in ((0, 1), (1, 1), (9, 9998)):
        (test / str(digit)).mkdir(parents=True)
        for i in range(count):
            (test / str(digit) / f"{i:05d}.bin").symlink_to(sample)
    (tmp_path / "NMNIST" / "test.zip").touch()
    data = open_dataset("nmnist", root=tmp_path, samples=3, steps=5)
    assert data.size == 3 and "NMNIST" in data.description
    frames, labels = data.part(0, 3).load()
    assert labels.tolist() == [0, 1, 9]  # tonic's targets: the class folders
    assert np.array_equal(frames[1], read_events(sample, steps=5)) and frames.shape == (3, 5, 2, 34, 34)
    with pytest.raises(ModelFileError, match="not found"):
        open_dataset("nmnist", root=tmp_path / "empty", steps=5)


def test_a_part_sent_to_a_worker_is_sized_by_its_batch_not_the_dataset(tmp_path):
    import pickle

    sizes = {}
    for n in (20, 400):
        x = np.ones((n, 10, 8), np.float32)
        np.savez(tmp_path / f"d{n}.npz", x=x)
        sizes[n] = (len(pickle.dumps(NpzDataset.open(tmp_path / f"d{n}.npz").part(0, 5))),
                    len(pickle.dumps(ArrayDataset(x).part(0, 5))))
    assert abs(sizes[20][0] - sizes[400][0]) < 16 and sizes[400][0] < 1000  # a file's part names rows (N: a few bytes)
    assert sizes[20][1] == sizes[400][1] < 5 * 10 * 8 * 4 + 1000  # an array's part carries its 5 samples only


def test_the_reference_backend_runs_the_float_model_itself(tmp_path, capsys):
    import nir

    from snnc.backends.base import get_backend
    from test_sweep import if_network

    rng = np.random.default_rng(4)
    x = (rng.random((9, 15, 3)) < 0.4).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 2, 9))
    nir.write(str(tmp_path / "if.nir"), if_network())
    result = evaluate_dataset(tmp_path / "if.nir", tmp_path / "d.npz", backend="reference", batch_size=4, reset_mode="zero")
    expect = get_backend("reference").build(if_network()).run(x).outputs["output"].sum(1).argmax(1)
    assert result.rule == "count" and result.predictions.tolist() == expect.tolist()
    assert result.energy is None and result.agreement is None and any("no energy" in n for n in result.notes)
    code = main(["evaluate", str(tmp_path / "if.nir"), "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r.json"),
                 "--backend", "reference", "--strict", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "strict" in err and "reset" in err  # the assumed reset mode fails --strict


def test_predictions_by_rule():
    out = np.zeros((2, 3, 4))
    out[0, :, 2] = 1  # sample 0: class 2 spikes 3 times
    out[0, 2, 3] = 5  # ... but class 3 holds the largest value at the last step
    out[1, 0, 1] = 1
    assert predict(out, "count").tolist() == [3, 1]  # the sum over time: 5 > 3
    assert predict(out != 0, "count").tolist() == [2, 1]  # spikes: 3 of class 2 > 1 of class 3
    assert predict(out, "last").tolist() == [3, 0]  # silence at the last step: the lowest index
    with pytest.raises(ParameterError, match="prediction rule"):
        predict(out, "mean")


def test_digits_test_split_gives_the_integer_cnns_predictions(tmp_path, capsys):
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.compiler.frontends.loader import load_model

    model, data, pred_q, labels = digits_case(tmp_path)
    result = evaluate_dataset(model, data, batch_size=10)
    assert result.rule == "last" and result.samples == len(labels)  # the readout integrator at its last step
    # the conversion is exact: every prediction is the integer CNN's
    assert result.predictions.tolist() == pred_q.tolist()
    assert result.accuracy == float(np.mean(pred_q == labels)) > 0.5
    assert result.agreement is None and any("no fidelity" in n for n in result.notes)
    # energy of the merged batches = the single-batch evaluation of the whole subset
    chip = load_model(model)
    with np.load(data) as z:
        inputs = {k: z[k] for k in z.files if k != "y"}
    whole = evaluate(chip, inputs)
    assert result.activity.batch == len(labels) and result.activity.steps == whole.run.activity.steps
    for name, pop in whole.run.activity.populations.items():
        assert result.activity.populations[name].spikes == pop.spikes
        assert np.array_equal(result.activity.populations[name].spikes_per_step, pop.spikes_per_step)
    assert result.activity.total_synaptic_ops == whole.run.activity.total_synaptic_ops
    assert result.energy.total_j == pytest.approx(whole.energy.total_j, rel=1e-12)
    assert result.energy.latency.per_inference_s == pytest.approx(whole.energy.latency.per_inference_s, rel=1e-12)
    # the CLI writes the same numbers
    out = tmp_path / "result.json"
    code = main(["evaluate", str(model), "--data", str(data), "--out", str(out), "--batch-size", "7", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(result.to_dict()))
    assert written["accuracy"] == result.accuracy and len(written["predictions"]) == len(labels)
    assert written["energy"]["per_inference_j"] > 0 and written["activity"]["synaptic_ops_per_inference"] > 0
    # lava (fixed_pt) on the first samples: the same predictions as sim
    with np.load(data) as z:
        np.savez(tmp_path / "two.npz", **{k: z[k][:2] for k in z.files})
    lava = evaluate_dataset(model, tmp_path / "two.npz", backend="lava", batch_size=2)
    assert lava.predictions.tolist() == pred_q[:2].tolist()


@pytest.mark.refdata
def test_nir_cnn_on_event_files_equals_one_compile_and_run(tmp_path, refdata):
    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.compiler.frontends.loader import load_model
    from snnc.compiler.pipeline import compile

    folder, frames, labels = cnn_event_folder(tmp_path, refdata)
    options = {"steps": STEPS, "bin_ms": BIN_MS}
    dataset = open_dataset(folder, sensor_size=(34, 34, 2), **options)
    xs, ys = dataset.read(0, dataset.size)  # tonic's binning = an independent count of t // bin
    assert np.array_equal(xs, frames) and ys.tolist() == labels.tolist()
    result = evaluate_dataset(refdata / CNN, folder, batch_size=4, data_options=options, reset_mode="zero", guard=False)
    assert result.rule == "count" and result.labels.tolist() == labels.tolist()
    # independently: compile once on the same calibration data, run the whole set in one batch
    graph = load_model(refdata / CNN, reset_mode="zero")
    compiled = compile(graph, weight_bits=8, calibrate=frames, guard=False)
    chip_out = compiled.run(frames).outputs["output"]
    expect = chip_out.reshape(len(frames), STEPS, -1).sum(1).argmax(1)
    assert result.predictions.tolist() == expect.tolist()
    assert result.accuracy == float(np.mean(expect == labels))
    ref = get_backend("reference").build(graph, dt=compiled.chip.meta["dt"]).run(frames).outputs["output"]
    ref_pred = ref.reshape(len(frames), STEPS, -1).sum(1).argmax(1)
    assert result.reference_predictions.tolist() == ref_pred.tolist()
    assert result.agreement == float(np.mean(ref_pred == expect))
    whole = evaluate(None, frames, compiled=compiled)
    assert result.activity.total_spikes == whole.run.activity.total_spikes > 0
    assert result.energy.total_j == pytest.approx(whole.energy.total_j, rel=1e-12)
    assert merge_activity([None, whole.run.activity]) is None  # a batch without counters: no merged activity


def test_cli_errors_name_the_problem(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 4)))
    code = main(["evaluate", "no_model.nir", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r.json")])
    assert code == 2 and "no_model.nir" in capsys.readouterr().err
    code = main(["evaluate", "m.nir", "--data", "x.npz", "--out", "r.json", "--workers", "2", "--scheduler", "tcp://h:1"])
    assert code == 2 and "not allowed with argument" in capsys.readouterr().err
    (tmp_path / "ev").mkdir()
    np.save(tmp_path / "ev" / "a.npy", np.zeros(3, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")]))
    from snnc.compiler.data.dataset import EventFolderDataset

    with pytest.raises(ParameterError, match="--steps T"):
        open_dataset(tmp_path / "ev")
    assert isinstance(open_dataset(tmp_path / "ev", steps=2), EventFolderDataset)
