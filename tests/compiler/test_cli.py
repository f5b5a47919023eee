"""The `snnc` command line: inspect, run, error lines and exit codes, the subcommand registry.

Backends are replaced by a small fake registered for the test (through the entry-point lookup),
so these tests check the CLI's own job: loading, input checks, choosing the backend, writing
the .npz, and turning every error into one line.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from snnc.backends import base
from snnc.backends.base import RunResult, normalize_inputs
from snnc.compiler import cli
from snnc.compiler.cli import main
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.chip_nir import chip_to_nir
from snnc.ir.errors import ModelFileError, ParameterError
from snnc.ir.graph import Graph, write_nir

SNNC = Path(sys.executable).with_name("snnc")


# -- a fake backend ---------------------------------------------------------------------------------
class FakeProgram:
    """output[b, t] = (sum of that step's input) * ones(output shape); probe = step index."""

    def __init__(self, backend, graph, options):
        self.backend, self.graph, self.options = backend, graph, options

    def _shapes(self):
        if isinstance(self.graph, ChipGraph):
            ins = {n: i.shape for n, i in self.graph.inputs.items()}
            outs = {n: self.graph.populations[o.population].shape for n, o in self.graph.outputs.items()}
            node_shape = lambda n: self.graph.source(n).shape if n in {**self.graph.inputs, **self.graph.populations} else (1,)  # noqa: E731
        else:
            ins = {n: self.graph.in_shapes[n] for n in self.graph.inputs}
            outs = {n: self.graph.in_shapes[n] for n in self.graph.outputs}
            node_shape = lambda n: self.graph.out_shapes[n]  # noqa: E731
        return ins, outs, node_shape

    def run(self, inputs, steps=None, probes=()):
        ins, outs, node_shape = self._shapes()
        inputs, batch, steps = normalize_inputs(inputs, ins, steps)
        total = sum(a.reshape(batch, steps, -1).sum(axis=2) for a in inputs.values())
        outputs = {n: total[:, :, None].repeat(int(np.prod(s)), axis=2).reshape(batch, steps, *s) for n, s in outs.items()}
        probe_arrays = {}
        for p in probes:
            shape = node_shape(p.split("/")[0])
            probe_arrays[p] = np.broadcast_to(np.arange(steps, dtype=float)[None, :, None], (batch, steps, int(np.prod(shape)))).reshape(batch, steps, *shape)
        type(self.backend).runs.append({"name": self.backend.name, "batch": batch, "steps": steps, "options": self.options})
        return RunResult(outputs=outputs, probes=probe_arrays, backend=self.backend.name)


def fake_backend(backend_name, backend_level, fail=None):
    class Fake:
        name = backend_name
        level = backend_level
        runs: list = []

        def problems(self, graph):
            return ["needs a GPU it does not have"] if fail == "problems" else []

        def build(self, graph, **options):
            if fail == "crash":
                raise RuntimeError("segment exploded")
            return FakeProgram(self, graph, options)

    return Fake


class EP:
    def __init__(self, cls):
        self.cls = cls

    def load(self):
        return self.cls


@pytest.fixture
def backends(monkeypatch):
    table = {
        "reference": fake_backend("reference", "nir"),
        "sim": fake_backend("sim", "chip"),
        "picky": fake_backend("picky", "nir", fail="problems"),
        "buggy": fake_backend("buggy", "nir", fail="crash"),
    }
    monkeypatch.setattr(base, "_entry_points", lambda: {k: EP(v) for k, v in table.items()})
    return table


def chip_graph(outputs=("y",)) -> ChipGraph:
    g = ChipGraph(meta={"dt": 1e-3})
    g.add(InputPopulation("x", (3,)))
    g.add(Population("h", (4,), du=4095, dv=100, vth=12, bias_mant=np.array([0, 1, 2, 3])))
    g.add(Projection("w", "x", "h", np.arange(12).reshape(4, 3) * 2, weight_exp=-1, delay=2))
    for name in outputs:
        g.outputs[name] = OutputPort("h", "s" if name == "y" else "v")
    return g.validate()


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *needles: str):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("snnc: warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("snnc: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- inspect -----------------------------------------------------------------------------------------
@pytest.mark.refdata
def test_inspect_cnn_lists_nodes_shapes_and_totals(capsys, refdata):
    path = refdata / "nir-paper/cnn/cnn_sinabs.nir"
    code, out, err = run_cli(capsys, "inspect", path)
    # NIR cannot say how the IF neurons reset: the assumption is stated, once, naming them
    assert code == 0 and err.count("snnc: warning:") == 1 and "assumed reset to v_reset ('zero')" in err
    assert all(f"'{n}'" in err for n in ("1", "3", "6", "10", "12")) and "--reset-mode" in err
    code, _, err = run_cli(capsys, "inspect", path, "--reset-mode", "zero")
    assert code == 0 and err == ""  # stated by the user: nothing assumed
    code, out_again, err = run_cli(capsys, "inspect", path)
    assert "snnc: warning:" in err  # every time, not once per process
    for text in ("Conv2d", "SumPool2d", "Flatten", "Affine", "IF", "2x34x34", "16x16x16", "8x4x4", "128"):
        assert text in out, text
    g = nir.read(str(path), type_check=False)
    ifs = {"1": 16 * 16 * 16, "3": 16 * 16 * 16, "6": 8 * 8 * 8, "10": 256, "12": 10}
    assert all(isinstance(g.nodes[k], nir.IF) for k in ifs)
    # synapses, independently: dense nonzeros plus, for each conv, a conv of ones with a kernel of ones
    shapes = {"0": (2, 34, 34), "2": (16, 16, 16), "5": (16, 8, 8)}
    synapses = sum(int(np.count_nonzero(g.nodes[k].weight)) for k in ("9", "11"))
    for k, shape in shapes.items():
        c = g.nodes[k]
        y = torch.nn.functional.conv2d(torch.ones(1, *shape), torch.ones(*c.weight.shape), stride=tuple(c.stride),
                                       padding=tuple(c.padding), dilation=tuple(c.dilation), groups=int(c.groups))
        synapses += int(y.sum())
    assert f"totals: {sum(ifs.values())} neurons, {synapses} synapses" in out
    assert "recurrent loops: none" in out


@pytest.mark.refdata
def test_inspect_braille_shows_the_recurrent_loop(capsys, refdata):
    code, out, _ = run_cli(capsys, "inspect", refdata / "nir-paper/braille/braille_noDelay_bias_zero.nir")
    assert code == 0
    assert "recurrent loops (1)" in out and "lif1.w_rec -> lif1.lif" in out and "recurrent" in out
    assert "totals: 45 neurons" in out  # 38 hidden + 7 output CubaLIF


def test_inspect_chip_level_file(capsys, tmp_path):
    g = chip_graph()
    write_nir(chip_to_nir(g), tmp_path / "chip.nir")
    code, out, _ = run_cli(capsys, "inspect", tmp_path / "chip.nir")
    assert code == 0
    assert "chip-level" in out and "du (12b)" in out and "vth (17b)" in out and "weight_exp (4b)" in out
    assert "4095" in out and "0..3 (per neuron)" in out  # du and the per-neuron bias
    assert f"totals: {g.num_neurons} neurons, {g.num_synapses} synapses" in out and g.num_synapses == 11


# -- run ---------------------------------------------------------------------------------------------
@pytest.mark.refdata
def test_run_nir_model_defaults_to_reference_and_writes_npz(capsys, tmp_path, backends, refdata):
    x = np.zeros((20, 1))
    x[[3, 7]] = 1.0
    np.save(tmp_path / "in.npy", x)
    code, out, err = run_cli(capsys, "run", refdata / "nir-paper/lif/lif_norse.nir", "--input", tmp_path / "in.npy",
                             "--out", tmp_path / "res" / "out.npz", "--probe", "1", "--dt", "1e-3")
    assert code == 0, err
    assert backends["reference"].runs[-1] == {"name": "reference", "batch": 1, "steps": 20, "options": {"dt": 1e-3}}
    with np.load(tmp_path / "res" / "out.npz") as res:
        assert sorted(res.files) == ["output", "probe/1"]
        assert res["output"].shape == (1, 20, 1) and np.array_equal(res["output"][0, :, 0], x[:, 0])
        assert np.array_equal(res["probe/1"][0, :, 0], np.arange(20))
    assert "out.npz" in out


def test_run_chip_model_defaults_to_sim_batch_and_steps(capsys, tmp_path, backends):
    write_nir(chip_to_nir(chip_graph(outputs=("y", "volt"))), tmp_path / "chip.nir")
    x = np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3)  # [batch, T, 3]
    np.save(tmp_path / "in.npy", x)
    code, _, err = run_cli(capsys, "run", tmp_path / "chip.nir", "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz",
                           "--steps", 8, "--probe", "h", "w")
    assert code == 0, err
    assert backends["sim"].runs[-1]["steps"] == 8 and backends["sim"].runs[-1]["batch"] == 2
    with np.load(tmp_path / "o.npz") as res:
        assert sorted(res.files) == ["output/volt", "output/y", "probe/h", "probe/w"]
        want = np.concatenate([x.sum(axis=2), np.zeros((2, 3))], axis=1)  # steps beyond T get zero input
        assert res["output/y"].shape == (2, 8, 4) and np.array_equal(res["output/y"][:, :, 0], want)
        assert res["probe/h"].shape == (2, 8, 4)


def test_run_with_explicit_backend_level_mismatch(capsys, tmp_path, backends):
    write_nir(chip_to_nir(chip_graph()), tmp_path / "chip.nir")
    np.save(tmp_path / "in.npy", np.zeros((4, 3)))
    code, _, err = run_cli(capsys, "run", tmp_path / "chip.nir", "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz",
                           "--backend", "reference")
    assert code == 2
    assert_one_error_line(err, "reference", "nir-level", "chip-level")


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.refdata
def test_wrong_input_shape_is_one_line(capsys, tmp_path, backends, refdata):
    np.save(tmp_path / "in.npy", np.zeros((10, 3)))
    code, out, err = run_cli(capsys, "run", refdata / "nir-paper/lif/lif_norse.nir", "--input", tmp_path / "in.npy",
                             "--out", tmp_path / "o.npz")
    assert code == 2 and not (tmp_path / "o.npz").exists()
    assert_one_error_line(err, "in.npy", "input 'input'", "[T, 1]", "[10, 3]")


@pytest.mark.refdata
def test_error_cases_exit_2_with_one_line(capsys, tmp_path, backends, refdata):
    lif = refdata / "nir-paper/lif/lif_norse.nir"
    np.save(tmp_path / "in.npy", np.zeros((10, 1)))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    cases = [
        (["inspect", tmp_path / "missing.nir"], ["missing.nir", "not found"]),
        (["inspect", tmp_path / "in.npy"], ["unknown model file type '.npy'", ".nir"]),
        (["run", lif, "--input", tmp_path / "bad.npy", "--out", tmp_path / "o.npz"], ["bad.npy", "cannot read the input"]),
        (["run", lif, "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz", "--backend", "nope"], ["unknown backend", "nope", "reference"]),
        (["run", lif, "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz", "--probe", "ghost"], ["ghost", "unknown probe"]),
        (["run", lif, "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz", "--backend", "picky"], ["picky", "needs a GPU"]),
        (["run", lif, "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz", "--backend", "buggy"], ["internal error", "segment exploded", "--debug"]),
    ]
    for argv, needles in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert_one_error_line(err, *needles)


@pytest.mark.refdata
def test_debug_shows_the_traceback(capsys, tmp_path, backends, refdata):
    np.save(tmp_path / "in.npy", np.zeros((10, 3)))
    code, _, err = run_cli(capsys, "--debug", "run", refdata / "nir-paper/lif/lif_norse.nir", "--input", tmp_path / "in.npy",
                           "--out", tmp_path / "o.npz")
    assert code == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("snnc: error: ")
    code, _, err = run_cli(capsys, "run", refdata / "nir-paper/lif/lif_norse.nir", "--input", tmp_path / "in.npy",
                           "--out", tmp_path / "o.npz", "--debug")
    assert code == 2 and "Traceback" in err


def test_bad_arguments_exit_2(capsys):
    code, _, err = run_cli(capsys, "run", "model.nir", "--input", "x.npy")
    assert code == 2 and "--out" in err
    code, _, err = run_cli(capsys, "run", "model.nir", "--input", "x.npy", "--out", "o.npz", "--steps", "-3")
    assert code == 2 and "positive integer" in err
    code, _, _ = run_cli(capsys)
    assert code == 2


def test_a_new_subcommand_is_one_register_call(capsys, monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMANDS", list(cli.SUBCOMMANDS))

    def add(p):
        p.add_argument("--times", type=int, default=1)

    def hello(args, console):
        console.print("hello " * args.times)
        return 0

    cli.register("hello", "say hello", add, hello)
    code, out, _ = run_cli(capsys, "hello", "--times", "2")
    assert code == 0 and out.split() == ["hello", "hello"]
    assert [c.name for c in cli.SUBCOMMANDS][:2] == ["inspect", "run"]


@pytest.mark.refdata
def test_installed_console_script(refdata, tmp_path):
    assert SNNC.exists(), f"console script missing: {SNNC} (pip install -e .)"
    env = {**os.environ, "COLUMNS": "200"}
    ok = subprocess.run([str(SNNC), "inspect", str(refdata / "nir-paper/lif/lif_norse.nir")], capture_output=True, text=True,
                        env=env, timeout=120)
    assert ok.returncode == 0 and "LIF" in ok.stdout and "totals: 1 neurons" in ok.stdout
    bad = subprocess.run([str(SNNC), "inspect", str(tmp_path / "nothing.nir")], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"snnc: error: {tmp_path / 'nothing.nir'}: file not found. check the path"]


def test_graph_from_chip_file_loads_as_chip(tmp_path):
    from snnc.compiler.frontends.loader import load_model

    write_nir(chip_to_nir(chip_graph()), tmp_path / "c.nir")
    assert isinstance(load_model(tmp_path / "c.nir"), ChipGraph)
    assert isinstance(load_model(str(tmp_path / "c.nir")), ChipGraph)
    g = chip_graph()
    assert load_model(g) is g
    plain = nir.NIRGraph(nodes={"i": nir.Input(np.array([2])), "o": nir.Output(np.array([2]))}, edges=[("i", "o")], type_check=False)
    assert isinstance(load_model(plain), Graph)
    with pytest.raises(ModelFileError, match="cannot load a model") as err:
        load_model(42)
    assert "int" in str(err.value) and ".nir" in str(err.value)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "model.net")
    with pytest.raises(ParameterError, match="only to torch modules and .net files"):
        load_model(tmp_path / "c.nir", dt=1e-3)


# -- end to end with the real backends ---------------------------------------------------------------
@pytest.mark.refdata
def test_run_paper_lif_on_the_reference_backend(capsys, tmp_path, refdata):
    """The NIR paper's LIF: float semantics spike at steps 460/510/710/760 (data README)."""
    recording = np.loadtxt(refdata / "nir-paper/lif/lif_exact.csv", delimiter=",")
    np.save(tmp_path / "in.npy", recording[:, :1])
    code, _, err = run_cli(capsys, "run", refdata / "nir-paper/lif/lif_norse.nir", "--input", tmp_path / "in.npy",
                           "--out", tmp_path / "out.npz", "--dt", "1e-4")
    assert code == 0, err
    with np.load(tmp_path / "out.npz") as res:
        assert res["output"].shape == (1, 1000, 1)
        assert np.flatnonzero(res["output"][0, :, 0]).tolist() == [460, 510, 710, 760]


def test_run_chip_model_on_the_sim_backend(capsys, tmp_path):
    """One synapse of weight 100: u = 100 << 6 one step after the input spike, v > 1 << 6 spikes."""
    g = ChipGraph(meta={"dt": 1e-3})
    g.add(InputPopulation("x", (2,)))
    g.add(Population("h", (2,), du=4095, dv=0, vth=1))
    g.add(Projection("w", "x", "h", np.array([[100, 0], [0, 0]])))
    g.outputs["y"] = OutputPort("h")
    write_nir(chip_to_nir(g), tmp_path / "tiny.nir")
    x = np.zeros((8, 2))
    x[3, 0] = x[5, 1] = 1
    np.save(tmp_path / "in.npy", x)
    code, _, err = run_cli(capsys, "run", tmp_path / "tiny.nir", "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz",
                           "--probe", "h/u")
    assert code == 0, err
    with np.load(tmp_path / "o.npz") as res:
        assert np.flatnonzero(res["output"][0, :, 0]).tolist() == [4] and not res["output"][0, :, 1].any()
        assert res["probe/h/u"][0, :, 0].tolist() == [0, 0, 0, 0, 6400, 0, 0, 0]
    code, _, err = run_cli(capsys, "run", tmp_path / "tiny.nir", "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npz",
                           "--dt", "1e-3")
    assert code == 2
    assert_one_error_line(err, "--dt applies to NIR-level models only", "dt=0.001")


@pytest.mark.refdata
def test_loader_dispatches_torch_modules_and_netx_files(refdata):
    """The loader's contract: torch modules and .net files come back as snnc graphs."""
    import snntorch as snn

    from snnc.compiler.frontends.loader import load_model

    module = torch.nn.Sequential(torch.nn.Linear(3, 4), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero"))
    g = load_model(module, sample_input_shape=(3,))
    assert isinstance(g, Graph) and g.in_shapes[g.inputs[0]] == (3,) and g.in_shapes[g.outputs[0]] == (4,)
    chip = load_model(refdata / "lava-dl/tinynet/tiny.net")
    assert isinstance(chip, ChipGraph) and chip.inputs and chip.populations
