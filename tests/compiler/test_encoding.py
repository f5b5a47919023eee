"""The encoding contract: float in, float out, aligned over all T steps, against the float model."""
from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest

from snnc.backends.base import get_backend
from snnc.compiler.cli import main
from snnc.compiler.data.encoding import contract, encode
from snnc.compiler.pipeline import compile
from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
from snnc.ir.errors import ShapeError
from snnc.ir.graph import Graph, read_nir_file, write_nir
from snnc.ir.reset_mode import AssumptionWarning


def li_graph(kind: str, seed: int = 0) -> nir.NIRGraph:
    """Analog input -> Affine -> (LI | CubaLI) readout; "lif>li"/"li>li": a hidden LIF (spiking) or
    LI (a relayed state) layer of 8 before an LI readout."""
    rng = np.random.default_rng(seed)
    if ">" in kind:
        hidden = (nir.LIF(tau=np.full(8, 2e-3), r=np.ones(8), v_leak=np.zeros(8), v_threshold=np.full(8, 0.3))
                  if kind.startswith("lif") else nir.LI(tau=np.full(8, 2e-3), r=np.ones(8), v_leak=np.zeros(8)))
        nodes = {"in": nir.Input(input_type=np.array([3])), "fc": nir.Affine(weight=rng.normal(0, 1.5, (8, 3)), bias=np.full(8, 0.3)),
                 "hid": hidden, "fc2": nir.Affine(weight=rng.normal(0, 0.5, (4, 8)), bias=np.zeros(4)),
                 "li": nir.LI(tau=np.full(4, 5e-3), r=np.ones(4), v_leak=np.zeros(4)), "out": nir.Output(output_type=np.array([4]))}
        edges = [("in", "fc"), ("fc", "hid"), ("hid", "fc2"), ("fc2", "li"), ("li", "out")]
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    nodes = {"in": nir.Input(input_type=np.array([3])), "fc": nir.Affine(weight=rng.normal(0, 0.5, (4, 3)), bias=np.zeros(4))}
    if kind == "li":
        nodes["li"] = nir.LI(tau=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4))
    else:
        nodes["li"] = nir.CubaLI(tau_syn=np.full(4, 1e-3), tau_mem=np.full(4, 3e-3), r=np.ones(4), v_leak=np.full(4, 0.1))
    nodes["out"] = nir.Output(output_type=np.array([4]))
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "li"), ("li", "out")], type_check=False)


def analog(batch: int, steps: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[None, :, None]
    return 0.6 * np.sin(t / rng.uniform(4, 15, (batch, 1, 3)) + rng.uniform(0, 6, (batch, 1, 3)))


def nrmse(a, b) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.std(b))


@pytest.mark.parametrize("kind", ["li", "cubali", "lif>li", "li>li"])
@pytest.mark.parametrize("batch", [1, 3])
def test_chip_file_returns_the_float_readout_for_all_steps(kind, batch, tmp_path):
    g = Graph.from_nir(li_graph(kind), reset_mode="zero")
    x = analog(batch)
    ref_run = get_backend("reference").build(g).run(x, probes=["hid"] if kind == "lif>li" else [])
    ref = ref_run.outputs["out"]
    if kind == "lif>li":
        assert ref_run.probes["hid"].sum() > 20 * batch  # the hidden layer really spikes
    result = compile(g, calibrate=x)
    write_nir(chip_to_nir(result.chip), tmp_path / "chip.nir")
    chip = chip_from_nir(read_nir_file(tmp_path / "chip.nir"))
    assert contract(chip) == contract(result.chip) and contract(chip)["outputs"]["out"]["shift"] >= 1
    from snnc.compiler.data.encoding import run

    got = run(chip, x).outputs["out"]
    assert got.shape == ref.shape  # all T steps, not T - latency
    err = nrmse(got, ref)
    tail = nrmse(got[:, -5:], ref[:, -5:])  # the last steps are there (the run is extended by the latency)
    print(f"{kind} batch {batch}: NRMSE {err:.4f} (last 5 steps {tail:.4f})")
    assert err < 0.15 and tail < 0.15
    raw = run(chip, x, raw=True).outputs["out"]
    assert raw.dtype.kind in "iu" or np.all(raw == np.rint(raw))  # chip integers


def test_cli_run_compile_energy_accept_the_same_analog_input(tmp_path):
    nir.write(tmp_path / "m.nir", li_graph("li", seed=2))
    x = analog(2, seed=3)
    np.save(tmp_path / "x.npy", x)
    assert main(["compile", str(tmp_path / "m.nir"), "--calibrate", str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.nir")]) == 0
    assert main(["run", str(tmp_path / "c.nir"), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "a.npz")]) == 0
    assert main(["run", str(tmp_path / "m.nir"), "--backend", "reference", "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "b.npz")]) == 0
    a, b = np.load(tmp_path / "a.npz")["output"], np.load(tmp_path / "b.npz")["output"]
    assert a.shape == b.shape and nrmse(a, b) < 0.15
    assert main(["energy", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy")]) == 0
    assert main(["report", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "rep")]) == 0
    import json

    readout = json.loads((tmp_path / "rep/report.json").read_text())["meta"]["readouts"]["out"]
    assert readout["encoding"] == "voltage" and readout["steps"] == x.shape[1]
    np.testing.assert_allclose(readout["last"], b[0, -1], atol=0.15 * np.std(b))


def test_bad_inputs_name_port_index_and_limit():
    g = Graph.from_nir(li_graph("li"))
    x = analog(1)
    chip = compile(g, calibrate=x).chip
    bad = x.copy()
    bad[0, 7, 2] = np.nan
    with pytest.raises(ShapeError, match=r"input .in. at index \[0, 7, 2\]: input holds NaN"):
        encode(chip, bad)
    with pytest.raises(ShapeError, match="wrong shape"):
        encode(chip, x[..., :2])
    with pytest.raises(ShapeError, match="numeric"):
        encode(chip, x.astype(str))
    far = x.copy()
    far[0, 3, 1] = 10 * np.abs(x).max()
    with pytest.raises(ShapeError, match=r"input .in. at index \[0, 3, 1\].*\|x\| <= 1\.\d+ \(8-bit payload") as err:
        encode(chip, far)
    assert "clipped" in str(err.value)
    # signed data: the payload holds twice the calibrated range; beyond the range is a warning
    near = x.copy()
    near[0, 5, 0] = 1.5 * np.abs(x).max()
    with pytest.warns(AssumptionWarning, match=r"index \[0, 5, 0\].*beyond the calibrated range"):
        enc = encode(chip, near)
    scale = contract(chip)["inputs"]["in"]["scale"]
    assert enc.inputs["in"][0, 5, 0] == np.rint(near[0, 5, 0] * scale)  # not clipped


def test_counts_on_a_spike_port_are_sent_graded_with_a_warning():
    g = Graph.from_nir(li_graph("li"))
    spikes = (np.random.default_rng(0).random((1, 60, 3)) < 0.3).astype(float)
    result = compile(g)  # uncalibrated: a binary spike port
    assert contract(result.chip)["inputs"]["in"]["encoding"] == "spikes"
    counts = spikes * 3
    with pytest.warns(AssumptionWarning, match="counts up to 3.*graded"):
        got = result.run(counts).outputs["out"]
    ref = get_backend("reference").build(g).run(counts).outputs["out"]
    assert nrmse(got, ref) < 0.15
    with pytest.raises(ShapeError, match="binary spikes; this input is analog"):
        result.run(spikes * 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result.run(spikes)  # binary spikes: no note


@pytest.mark.refdata
def test_nir_paper_cnn_keeps_the_class_on_the_nmnist_sample_through_tonic(refdata):
    from snnc.compiler.data.events import read_events

    cnn = refdata / "nir-paper/cnn/cnn_sinabs.nir"
    x = read_events(refdata / "events/sample_nmnist.bin", bin_ms=2)
    assert x.max() > 1  # binned counts above 1
    want = int(get_backend("reference").build(cnn).run(x[None]).outputs["output"][0].sum(0).argmax())
    for calibrate in (None, x):
        result = compile(cnn, calibrate=calibrate, reset_mode="zero")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AssumptionWarning)
            run = result.run(x)
        assert run.outputs["output"].shape[1] == x.shape[0]
        assert int(run.outputs["output"][0].sum(0).argmax()) == want
        assert (calibrate is None) == bool(run.encoding_notes)  # uncalibrated: counts sent graded, reported


@pytest.mark.refdata
def test_cli_events_on_the_cnn_chip_file_and_energy_note(refdata, tmp_path, capsys):
    cnn, ev = refdata / "nir-paper/cnn/cnn_sinabs.nir", refdata / "events/sample_nmnist.bin"
    assert main(["compile", str(cnn), "--reset-mode", "zero", "-o", str(tmp_path / "c.nir")]) == 0
    for args, name in ((["run", str(tmp_path / "c.nir")], "chip"), (["run", str(cnn), "--reset-mode", "zero"], "float")):
        assert main([*args, "--events", str(ev), "--bin-ms", "2", "--out", str(tmp_path / f"{name}.npz")]) == 0
    chip, ref = np.load(tmp_path / "chip.npz")["output"], np.load(tmp_path / "float.npz")["output"]
    assert chip.shape == ref.shape == (1, 156, 10)  # 311 ms in 2 ms bins, all steps
    assert chip[0].sum(0).argmax() == ref[0].sum(0).argmax()
    assert main(["run", str(tmp_path / "c.nir"), "--events", str(ev), "--steps", "50", "--raw", "--out", str(tmp_path / "raw.npz")]) == 0
    assert np.load(tmp_path / "raw.npz")["output"].shape == (1, 50, 10)
    capsys.readouterr()
    assert main(["energy", str(cnn), "--reset-mode", "zero", "--events", str(ev), "--steps", "40"]) == 0
    assert "no --calibrate given: scales are sized on the run's own input" in capsys.readouterr().out
    assert main(["run", str(cnn), "--events", str(ev), "--out", str(tmp_path / "x.npz")]) == 2  # no binning given
    assert "--bin-ms" in capsys.readouterr().err


def test_cli_dataset_option_refuses_to_download_silently(tmp_path, capsys):
    nir.write(tmp_path / "m.nir", li_graph("li"))
    assert main(["budget", str(tmp_path / "m.nir"), "--dataset", "nmnist", "--dataset-root", str(tmp_path / "none"),
                 "--steps", "10"]) == 2
    err = capsys.readouterr().err
    assert "NMNIST not found" in err and "--download" in err and str(tmp_path / "none") in err


@pytest.mark.lava
def test_lava_returns_the_same_float_outputs_as_the_sim():
    g = Graph.from_nir(li_graph("li"))
    x = analog(1, steps=30)
    result = compile(g, calibrate=x)
    sim, lava = result.run(x), result.run(x, backend="lava")
    assert sim.outputs["out"].shape == lava.outputs["out"].shape == (1, 30, 4)
    np.testing.assert_array_equal(sim.outputs["out"], lava.outputs["out"])
