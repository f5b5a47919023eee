"""Shape and field quirks of real NIR writers: each file loads with exactly one `snnc: note:`, runs
exactly like its tidy equivalent (reference and sim), and the note is in the compile report;
contradictions stay errors naming the node and field."""
from __future__ import annotations

import json
import warnings

import nir
import numpy as np
import pytest
from nir_platform_files import replace_dataset, rockpool_lif, write

from snnc.backends.base import get_backend
from snnc.compiler.cli import main
from snnc.compiler.pipeline import compile
from snnc.ir.errors import ShapeError
from snnc.ir.graph import Graph
from snnc.ir.repairs import ReadNote


def load(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = Graph.from_nir(path, reset_mode="zero")
    return g, [str(w.message) for w in caught if issubclass(w.category, ReadNote)]


def tidy_lif(n=4, seed=0, **params) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    p = dict(tau=np.full(n, 2e-3), r=np.full(n, 20.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0), v_reset=np.zeros(n))
    p.update(params)
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "fc": nir.Affine(rng.uniform(0, 0.4, (n, 3)), np.zeros(n)), "lif": nir.LIF(**p),
               "output": nir.Output(np.array([n]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)


def same_run(quirky: Graph, tidy: Graph, n_in: int) -> None:
    """Equal outputs on the reference backend and, compiled, on sim."""
    x = (np.random.default_rng(3).random((2, 40, n_in)) < 0.5).astype(float)
    ref = get_backend("reference")
    a, b = ref.build(quirky).run(x).outputs["output"], ref.build(tidy).run(x).outputs["output"]
    assert b.sum() > 0 and np.array_equal(a, b)
    sa = compile(quirky, calibrate=x, guard=False).run(x, backend="sim").outputs["output"]
    sb = compile(tidy, calibrate=x, guard=False).run(x, backend="sim").outputs["output"]
    assert np.array_equal(sa, sb)


def test_rockpool_lif_111_feeding_output_1(tmp_path):
    quirky, notes = load(write(rockpool_lif(quirk=True), tmp_path / "rockpool.nir"))
    tidy, tidy_notes = load(write(rockpool_lif(quirk=False), tmp_path / "tidy.nir"))
    assert len(notes) == 1 and not tidy_notes
    assert "'lif' (LIF) declares shape (1, 1, 1)" in notes[0] and "delivers (1,)" in notes[0] and "tau" in notes[0]
    assert quirky.out_shapes == tidy.out_shapes and np.shape(quirky.nodes["lif"].tau) == (1,)
    x = np.zeros((1, 300, 1))
    x[0, ::3] = 1.0  # the NIR paper's LIF task: a regular input spike train
    ref = get_backend("reference")
    a = ref.build(quirky).run(x).outputs["output"]
    assert a.sum() > 0 and np.array_equal(a, ref.build(tidy).run(x).outputs["output"])


def test_output_declaring_fewer_singleton_dims(tmp_path):
    g = tidy_lif()
    g.nodes["output"] = nir.Output(np.array([1, 4]))  # (1, 4) for a (4,) signal
    quirky, notes = load(write(g, tmp_path / "q.nir"))
    assert len(notes) == 1 and "'output' (Output) declares shape (1, 4)" in notes[0] and "declared output shape" in notes[0]
    tidy, _ = load(write(tidy_lif(), tmp_path / "t.nir"))
    same_run(quirky, tidy, 3)


def test_scalar_next_to_per_neuron_parameters_is_broadcast(tmp_path):
    path = write(tidy_lif(v_threshold=np.array([0.8, 1.0, 1.2, 0.9])), tmp_path / "q.nir")
    replace_dataset(path, "node/nodes/lif/r", np.float64(20.0))  # a scalar stored next to vectors
    replace_dataset(path, "node/nodes/lif/v_leak", np.zeros(1))
    with pytest.raises(AssertionError, match="same shape"):
        nir.read(str(path))  # nir's own classes refuse to build this node
    quirky, notes = load(path)
    assert len(notes) == 1 and "'lif' r, v_leak -> (4,)" in notes[0] and "broadcast" in notes[0]
    tidy, _ = load(write(tidy_lif(v_threshold=np.array([0.8, 1.0, 1.2, 0.9])), tmp_path / "t.nir"))
    same_run(quirky, tidy, 3)


@pytest.mark.parametrize("version", ["0.2.0", "1.0.8"])
def test_missing_v_reset_defaults_to_zero_with_the_files_version(tmp_path, version):
    path = write(tidy_lif(), tmp_path / "q.nir", version=version)
    replace_dataset(path, "node/nodes/lif/v_reset", None)
    quirky, notes = load(path)
    if version.startswith("0."):  # NIR 0.x had no v_reset: reset to 0 is what the file means, no repair
        assert notes == []
    else:
        assert len(notes) == 1 and f"NIR {version}" in notes[0] and "v_reset = 0" in notes[0] and "'lif'" in notes[0]
    assert np.array_equal(quirky.nodes["lif"].v_reset, np.zeros(4))
    tidy, tidy_notes = load(write(tidy_lif(), tmp_path / "t.nir"))
    assert not tidy_notes  # a file that states v_reset gets no note
    same_run(quirky, tidy, 3)


def test_missing_w_in_is_nirs_default_one(tmp_path):
    n = 3
    cuba = nir.CubaLIF(tau_syn=np.full(n, 1e-3), tau_mem=np.full(n, 2e-3), r=np.full(n, 20.0), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "c": cuba, "output": nir.Output(np.array([n]))},
                     edges=[("input", "c"), ("c", "output")], type_check=False)
    path = write(g, tmp_path / "q.nir")
    replace_dataset(path, "node/nodes/c/w_in", None)
    quirky, notes = load(path)
    assert len(notes) == 1 and "w_in" in notes[0] and "'c'" in notes[0]
    assert np.array_equal(quirky.nodes["c"].w_in, np.ones(n))


def test_metadata_dicts_are_kept_and_a_value_in_their_place_is_noted(tmp_path):
    g = tidy_lif()
    g.nodes["lif"].metadata = {"framework": {"name": "rockpool", "version": "2.7"}, "dt": 1e-3}
    g.metadata = {"platform": {"name": "xylo"}, "seed": 3}
    path = write(g, tmp_path / "m.nir")
    back, notes = load(path)
    assert not notes and back.nodes["lif"].metadata["framework"] == {"name": "rockpool", "version": "2.7"}
    assert back.metadata["platform"] == {"name": "xylo"}
    back.write(tmp_path / "again.nir")  # and they survive snnc's own writer
    assert load(tmp_path / "again.nir")[0].nodes["lif"].metadata["framework"]["name"] == "rockpool"
    replace_dataset(path, "node/nodes/fc/metadata", "exported by hand")
    value, notes = load(path)
    assert len(notes) == 1 and "'fc'" in notes[0] and value.nodes["fc"].metadata == {"value": "exported by hand"}


def test_contradictions_stay_errors_naming_node_and_field(tmp_path):
    path = write(tidy_lif(), tmp_path / "bad.nir")
    replace_dataset(path, "node/nodes/lif/r", np.ones(3))  # 3 next to 4 per-neuron values
    with pytest.raises(ShapeError, match="different shapes") as err:
        load(path)
    assert "'lif'" in str(err.value) and "'r': (3,)" in str(err.value) and "'tau': (4,)" in str(err.value)
    g = tidy_lif()
    g.nodes["output"] = nir.Output(np.array([2, 2]))  # 4 values, but not the same shape up to size-1 dims
    with pytest.raises(ShapeError, match="shapes do not agree") as err:
        load(write(g, tmp_path / "bad2.nir"))
    assert "'lif' -> 'output'" in str(err.value) and "(2, 2)" in str(err.value)


def test_cli_states_the_note_once_and_the_report_records_it(tmp_path, capsys):
    path = write(rockpool_lif(quirk=True), tmp_path / "rockpool.nir")
    x = np.zeros((1, 50, 1))
    x[0, ::3] = 1.0
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "chip.nir"
    code = main(["compile", str(path), "-o", str(out), "--reset-mode", "zero", "--calibrate", str(tmp_path / "x.npy"),
                 "--report", str(tmp_path / "report.json")])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("snnc: note:") == 1 and "declares shape (1, 1, 1)" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["notes"]) == 1 and "declares shape (1, 1, 1)" in report["notes"][0]
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npz"), "--reset-mode", "zero"]) == 0
    assert capsys.readouterr().err.count("snnc: note:") == 1
    assert main(["report", str(path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "rep"), "--reset-mode", "zero"]) == 0
    assert capsys.readouterr().err.count("snnc: note:") == 1
    notes = json.loads((tmp_path / "rep" / "report.json").read_text())["notes"]
    assert len(notes) == 1 and "declares shape (1, 1, 1)" in notes[0]
