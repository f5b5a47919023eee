"""compile(): the NIR paper's three models against the float reference, and the pipeline's API."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from snnc.backends.reference import ReferenceBackend
from snnc.compiler.data.events import nmnist_frames
from snnc.compiler.pipeline import CompileResult, compile
from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
from snnc.ir.errors import ParameterError, PassError
from snnc.ir.graph import Graph, read_nir_file, write_nir


@pytest.fixture(scope="module")
def braille(refdata):
    path = refdata / "nir-paper/braille/braille_noDelay_bias_zero.nir"
    x = np.load(refdata / "nir-paper/braille/sample0_input.npy")
    return path, x


def hidden_mismatches(result: CompileResult, x: np.ndarray, float_hidden: np.ndarray) -> tuple[int, int]:
    run = result.run(x[None], probes=["lif1.lif"], steps=len(x) + result.time_shift, raw=True)  # room for the last outputs
    hidden = result.align(run.probes["lif1.lif"], "lif1.lif")[0, : len(x)].reshape(len(x), -1)
    label = int(result.align(run.outputs["output"])[0, : len(x)].sum(axis=0).argmax())
    return int(np.abs(hidden - float_hidden).sum()), label


def test_braille_hidden_spikes_match_the_float_model(braille, refdata):
    path, x = braille
    ref = ReferenceBackend().build(path).run(x[None], probes=["lif1.lif"])
    float_hidden = ref.probes["lif1.lif"][0]
    snntorch = np.load(refdata / "nir-paper/braille/snntorch_activity_noDelay_bias_zero.npy")
    assert np.array_equal(float_hidden, snntorch) and snntorch.sum() == 119
    assert int(ref.outputs["output"][0].sum(axis=0).argmax()) == 1
    figures = {}
    for bits in (8, 6, 4):
        for calibrated in (False, True):
            result = compile(path, weight_bits=bits, calibrate=x if calibrated else None)
            figures[(bits, calibrated)] = hidden_mismatches(result, x, float_hidden)
    print("\nbraille hidden-layer spikes differing from the float model (of 119), predicted label:")
    for (bits, calibrated), (mism, label) in figures.items():
        print(f"  {bits}-bit weights, {'calibrated on the sample' if calibrated else 'no calibration':25s}: {mism:3d}  label {label}")
    assert figures[(8, False)][0] <= 10 and figures[(8, False)][1] == 1
    assert figures[(8, True)][0] <= 10 and figures[(8, True)][1] == 1


def test_lif_spikes_within_one_step_of_the_float_model(refdata):
    path = refdata / "nir-paper/lif/lif_norse.nir"
    x = np.loadtxt(refdata / "nir-paper/lif/lif_exact.csv", delimiter=",")[:, :1]
    want = np.nonzero(ReferenceBackend().build(path).run(x[None]).outputs["output"][0, :, 0])[0]
    assert want.tolist() == [460, 510, 710, 760]
    result = compile(path)
    run = result.run(x[None], steps=len(x) + result.time_shift, raw=True)
    got = np.nonzero(result.align(run.outputs["output"])[0, :, 0])[0]
    print(f"\nLIF spike steps: float {want.tolist()}, compiled (aligned) {got.tolist()}, time shift {result.time_shift}")
    assert len(got) == len(want) and np.abs(got - want).max() <= 1


def test_cnn_keeps_the_class_and_per_layer_activity(refdata):
    path = refdata / "nir-paper/cnn/cnn_sinabs.nir"
    frames = nmnist_frames(refdata / "events/sample_nmnist.bin", bin_width_us=2000)
    x = np.minimum(frames, 1)[None]  # binary spikes, 2 ms bins
    layers = ["1", "3", "6", "10", "12"]
    ref = ReferenceBackend().build(path).run(x, probes=layers)
    result = compile(path)
    assert [p.kind for p in result.chip.projections.values()].count("conv") == 3
    run = result.run(x, probes=layers, steps=x.shape[1] + result.time_shift, raw=True)
    want = int(ref.outputs["output"][0].sum(axis=0).argmax())
    got = int(result.align(run.outputs["output"])[0].sum(axis=0).argmax())
    print(f"\nCNN class: float {want}, compiled {got}")
    assert got == want
    for layer in layers:
        a = ref.probes[layer][0].reshape(x.shape[1], -1).sum(axis=0)
        b = result.align(run.probes[layer], layer)[0, : x.shape[1]].reshape(x.shape[1], -1).sum(axis=0)
        corr = float(np.corrcoef(a, b)[0, 1])
        print(f"  layer {layer}: spikes float {int(a.sum())}, compiled {int(b.sum())}, count correlation {corr:.4f}")
        assert corr > 0.95, layer


def test_compiled_model_round_trips_through_nir_with_identical_spikes(braille, tmp_path):
    path, x = braille
    result = compile(path, dump_after="quantize", dump_dir=tmp_path)
    file = tmp_path / "03_quantize.nir"
    assert file.exists()
    write_nir(chip_to_nir(result.chip), tmp_path / "final.nir")
    back = chip_from_nir(read_nir_file(tmp_path / "final.nir"))
    a = result.run(x[None], probes=["lif1.lif"], raw=True)
    b = CompileResult(chip=back, graph=None, source=result.source, records=result.records).run(x[None], probes=["lif1.lif"], raw=True)
    assert a.outputs["output"].sum() > 100
    assert np.array_equal(a.outputs["output"], b.outputs["output"])
    assert np.array_equal(a.probes["lif1.lif"], b.probes["lif1.lif"])
    assert b.time_shift == a.time_shift == 2


def test_accepts_graph_nir_and_path_and_reports(braille):
    path, x = braille
    by_path = compile(path)
    by_graph = compile(Graph.from_nir(path))
    by_nir = compile(nir.read(str(path)))
    for other in (by_graph, by_nir):
        assert sorted(other.chip.projections) == sorted(by_path.chip.projections)
        for name, p in by_path.chip.projections.items():
            w1, w2 = p.weights, other.chip.projections[name].weights
            assert np.array_equal(w1.toarray() if hasattr(w1, "toarray") else w1, w2.toarray() if hasattr(w2, "toarray") else w2)
    assert [r.name for r in by_path.records] == ["canonicalize", "fuse", "timing", "quantize", "split", "legalize"]
    text = by_path.summary_text()
    assert "lif1.lif" in text and "lif2" in text and "total" in text and "weight err" in text
    data = json.loads(json.dumps(by_path.to_dict()))
    assert data["totals"]["neurons"] == 38 + 7 + 1  # + the bias neuron
    assert set(data["layers"]) == {"lif1.lif", "lif2"} and data["layers"]["lif1.lif"]["weight_error"] < 0.01
    assert [p["name"] for p in data["passes"]][-1] == "legalize"
    assert isinstance(by_path.graph, Graph) and by_path.graph.metadata["snnc_time_shift"] == 2


def test_user_errors_name_the_pass_and_the_node():
    nodes = {
        "in": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=np.eye(2), bias=np.zeros(2)),
        "lif": nir.LIF(tau=np.full(2, 1e-5), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
        "out": nir.Output(output_type=np.array([2])),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False)
    with pytest.raises(PassError) as info:
        compile(g)
    assert "'canonicalize'" in str(info.value) and "'lif'" in str(info.value) and "tau" in str(info.value)
    with pytest.raises(ParameterError, match="already a chip-level graph"):
        compile(compile(_ok_graph()).chip)
    with pytest.raises(PassError, match="num_weight_bits"):
        compile(_ok_graph(), weight_bits=9)


def _ok_graph() -> Graph:
    nodes = {
        "in": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=np.eye(2), bias=np.zeros(2)),
        "lif": nir.LIF(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
        "out": nir.Output(output_type=np.array([2])),
    }
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False))


def test_pass_options_are_not_silently_ignored_with_a_custom_pass_list(refdata):
    """Options like exponent_groups configure the default passes; with `passes=` they would be lost."""
    from snnc.compiler.pipeline import default_passes

    model = refdata / "nir-paper" / "lif" / "lif_norse.nir"
    with pytest.raises(ParameterError, match="exponent_groups"):
        compile(str(model), passes=default_passes(), exponent_groups=1)
    with pytest.raises(TypeError, match="no_such_option"):
        compile(str(model), no_such_option=1)
