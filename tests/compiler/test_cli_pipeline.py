"""The CLI commands that drive the whole pipeline: compile, run (on the compiled file), energy,
report, budget. Each is checked against the Python API it wraps, on the Braille RNN."""
from __future__ import annotations

import json

import numpy as np
import pytest

from snnc.compiler.cli import main
from snnc.compiler.pipeline import compile as snnc_compile


@pytest.fixture(scope="module")
def braille(refdata, tmp_path_factory):
    folder = tmp_path_factory.mktemp("braille")
    model = refdata / "nir-paper" / "braille" / "braille_noDelay_bias_zero.nir"
    x = np.load(refdata / "nir-paper" / "braille" / "sample0_input.npy")
    np.save(folder / "in.npy", x[:120])
    return model, folder, x[:120]


def test_compile_then_run_equals_the_python_api(braille, capsys):
    model, folder, x = braille
    out = folder / "braille_chip.nir"
    assert main(["compile", str(model), "-o", str(out), "--weight-bits", "6", "--report", str(folder / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "lif1.lif" in printed and "wrote" in printed
    report = json.loads((folder / "r.json").read_text())
    assert report["weight_bits"] == 6 and set(report["layers"]) >= {"lif1.lif", "lif2"}

    assert main(["run", str(out), "--input", str(folder / "in.npy"), "--out", str(folder / "o.npz"),
                 "--probe", "lif1.lif/s"]) == 0
    saved = np.load(folder / "o.npz")
    expected = snnc_compile(str(model), weight_bits=6).run(x, probes=["lif1.lif/s"])
    np.testing.assert_array_equal(saved["output"], expected.output)
    np.testing.assert_array_equal(saved["probe/lif1.lif/s"], expected.probes["lif1.lif/s"])
    assert saved["probe/lif1.lif/s"].sum() > 0


def test_energy_and_report_commands(braille, capsys):
    model, folder, _ = braille
    assert main(["energy", str(model), "--input", str(folder / "in.npy"), "--chip", "loihi1"]) == 0
    table = capsys.readouterr().out
    assert "lif1.lif" in table and "dynamic" in table and "static" in table

    assert main(["report", str(model), "--input", str(folder / "in.npy"), "-o", str(folder / "rep")]) == 0
    data = json.loads((folder / "rep" / "report.json").read_text())
    energy = data["energy"]
    # the per-layer energies add up to the dynamic total the report states
    layer_sum = sum(layer["total_j"] for layer in energy["layers"].values()) if isinstance(energy["layers"], dict) \
        else sum(layer["total_j"] for layer in energy["layers"])
    assert layer_sum == pytest.approx(energy["dynamic_j"], rel=1e-9)
    assert data["mapping"]["cores_used"] >= 2
    assert (folder / "rep" / "report.html").read_text().count("<img") >= 3


def test_budget_command_prints_every_width(braille, capsys):
    model, folder, _ = braille
    assert main(["budget", str(model), "--input", str(folder / "in.npy"), "--weight-bits", "4,8"]) == 0
    out = capsys.readouterr().out
    assert "4" in out and "8" in out and "fidelity" in out.lower()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["compile", "{model}", "-o", "{folder}/x.nir", "--weight-bits", "12"], "num_weight_bits"),
        (["energy", "{model}", "--input", "{folder}/missing.npy"], "not found"),
        (["report", "{model}", "--input", "{folder}/in.npy", "-o", "{folder}/r2", "--chip", "nochip"], "nochip"),
    ],
)
def test_user_errors_are_one_line(braille, capsys, argv, fragment):
    model, folder, _ = braille
    argv = [a.format(model=model, folder=folder) for a in argv]
    assert main(argv) == 2
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("snnc: warning:"))
    assert err.startswith("snnc: error:") and "\n" not in err and "Traceback" not in err
    assert fragment in err


@pytest.mark.lava
def test_run_backend_lava_equals_sim_through_the_cli(braille):
    """`snnc run COMPILED.nir --backend lava` has the same contract and the same numbers as sim."""
    model, folder, x = braille
    chip_file = folder / "braille8.nir"
    np.save(folder / "short.npy", x[:40])
    assert main(["compile", str(model), "-o", str(chip_file)]) == 0
    outs = {}
    for backend in ("sim", "lava"):
        out = folder / f"{backend}.npz"
        assert main(["run", str(chip_file), "--input", str(folder / "short.npy"), "--out", str(out),
                     "--backend", backend, "--probe", "lif1.lif/v"]) == 0
        outs[backend] = np.load(out)
    for key in ("output", "probe/lif1.lif/v"):
        np.testing.assert_array_equal(outs["lava"][key], outs["sim"][key])
    assert np.abs(outs["sim"]["probe/lif1.lif/v"]).sum() > 0
