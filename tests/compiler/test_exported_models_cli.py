"""Graphs that platforms really export and snnc used to refuse, through the CLI: compile with
--calibrate, run the chip file on sim (and Lava), compare with the float reference."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.compiler.cli import main

N = 10
rng = np.random.default_rng(7)


def lif(n, **kw):
    return nir.LIF(tau=np.full(n, 2e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 0.1), v_reset=np.zeros(n), **kw)


def graphs() -> dict[str, nir.NIRGraph]:
    w = lambda o, i, s=0.5: nir.Affine(rng.normal(0.1, s, (o, i)), np.zeros(o))  # noqa: E731
    out = {}
    # a recurrent loop through two layers with no Delay node (snnTorch RLeaky-in-a-loop, Norse)
    out["loop"] = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([N])), "f1": w(N, N), "a": lif(N), "f2": w(N, N), "b": lif(N), "back": w(N, N, 0.2),
               "out": nir.Output(np.array([N]))},
        edges=[("in", "f1"), ("f1", "a"), ("a", "f2"), ("f2", "b"), ("b", "back"), ("back", "a"), ("b", "out")], type_check=False)
    # a hidden layer exported as an output beside the final layer
    out["hidden_output"] = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([N])), "f1": w(N, N), "a": lif(N), "f2": w(4, N), "b": lif(4),
               "out_hidden": nir.Output(np.array([N])), "out": nir.Output(np.array([4]))},
        edges=[("in", "f1"), ("f1", "a"), ("a", "f2"), ("f2", "b"), ("b", "out"), ("a", "out_hidden")], type_check=False)
    # v_reset != v_leak, with no API-only option
    out["v_reset"] = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([N])), "f1": w(N, N),
               "a": nir.LIF(tau=np.full(N, 2e-3), r=np.ones(N), v_leak=np.full(N, 0.02), v_threshold=np.full(N, 0.1),
                            v_reset=np.full(N, -0.05)),
               "out": nir.Output(np.array([N]))},
        edges=[("in", "f1"), ("f1", "a"), ("a", "out")], type_check=False)
    # a leaky integrator feeding a spiking layer (Bessel-filter style decoder front end)
    out["li_feeds"] = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([N])), "f1": w(N, N, 1.0),
               "li": nir.LI(tau=np.full(N, 1e-3), r=np.ones(N), v_leak=np.zeros(N)), "f2": w(4, N, 2.0), "b": lif(4),
               "out": nir.Output(np.array([4]))},
        edges=[("in", "f1"), ("f1", "li"), ("li", "f2"), ("f2", "b"), ("b", "out")], type_check=False)
    return out


CASES = graphs()


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_before_now_compiles_and_follows_the_float_model(name, tmp_path, capsys):
    model, chip, x_path = tmp_path / "m.nir", tmp_path / "chip.nir", tmp_path / "x.npy"
    nir.write(str(model), CASES[name])
    x = (np.random.default_rng(1).random((2, 300, N)) < 0.3).astype(np.float32)
    np.save(x_path, x)
    args = ["--reset-mode", "zero"]
    assert main(["compile", str(model), "-o", str(chip), "--calibrate", str(x_path), *args]) == 0
    assert main(["run", str(model), "--input", str(x_path), "--out", str(tmp_path / "ref.npz"), *args]) == 0
    steps = x.shape[1] + 8  # room for the chip's latency
    assert main(["run", str(chip), "--input", str(x_path), "--out", str(tmp_path / "sim.npz"), "--steps", str(steps)]) == 0
    out = capsys.readouterr()
    assert "snnc: warning" not in out.err  # the reset mode was stated
    ref, sim = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "sim.npz")
    from snnc.compiler.frontends.loader import load_model

    graph = load_model(chip)
    ports = [k for k in ref.files]
    for key in ports:
        port = key.split("/", 1)[1] if "/" in key else next(iter(graph.outputs))
        shift = int(graph.populations[graph.outputs[port].population].meta.get("latency") or graph.meta["time_shift"])
        chip_counts = sim[key][:, shift : shift + x.shape[1]].sum(axis=1).ravel()
        ref_counts = ref[key].sum(axis=1).ravel()
        corr = np.corrcoef(chip_counts, ref_counts)[0, 1]
        print(f"{name} {key}: float spikes {int(ref_counts.sum())}, chip {int(chip_counts.sum())}, count correlation {corr:.3f}")
        assert ref_counts.sum() > 50 and corr >= 0.95
