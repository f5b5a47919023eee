"""`snnc budget MODEL.pt --weight-bits ... --time-steps ...`: the weight bits x time steps grid of a
converted float ANN. Each point is checked against an independent numpy integer forward pass of
the quantized network, its bit ops are recomputed from the sim's activity counters, its Pareto
front by brute force; the JSON, PNG and report (with NeuroBench metrics) are written."""
from __future__ import annotations

import argparse
import io
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from rich.console import Console

from snnc.compiler.analysis.budget import bit_budget
from snnc.compiler.analysis.conversion_sweep import levels_for_steps, network_layout, window_steps
from snnc.compiler.cli import main
from snnc.compiler.cli.budget import add_budget_arguments, run_budget_command
from snnc.compiler.frontends.conversion.chip import IntGridLayer, convert_to_chip, quantize_model
from snnc.ir.errors import ModelFileError, ParameterError


@pytest.fixture(scope="module")
def digits_mlp(tmp_path_factory):
    """A small float MLP trained on sklearn's digits (pixels 0..16), saved with torch.save."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:800] / 16), torch.as_tensor(d.target[:800])).backward()
        opt.step()
    with torch.no_grad():
        model[0].weight /= 16  # the model reads pixel integers 0..16
    folder = tmp_path_factory.mktemp("budget")
    torch.save(model, folder / "mlp.pt")
    np.save(folder / "x.npy", d.data[1000:1120])
    np.save(folder / "y.npy", d.target[1000:1120])
    np.save(folder / "calib.npy", d.data[:400])
    return model, folder


def _numpy_logits(qnet, x):
    """The integer MLP written out in numpy int64: n1 = clip(floor((W n0 + B) / D), 0, L), z = W2 n1 + B2."""
    n = np.rint(np.asarray(x)).astype(np.int64)
    for layer in (m for m in qnet.layers if isinstance(m, IntGridLayer)):
        z = n @ layer.int_weight().numpy().astype(np.int64).T + layer.int_bias().numpy().astype(np.int64)
        n = np.clip(np.floor_divide(z, layer.step), 0, layer.levels) if layer.act else z
    return n


def test_time_axis_layout():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4), nn.ReLU(),
                          nn.Dropout(), nn.Linear(4, 3))
    assert network_layout(model) == (2, True, 0)
    assert window_steps(2, 5, True) == 13 and levels_for_steps(2, True, 13) == 5 == levels_for_steps(2, True, 14)
    with pytest.raises(ParameterError, match=r"--time-steps 4.*>= 5"):
        levels_for_steps(2, True, 4)
    pooled = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4), nn.Hardtanh())
    assert network_layout(pooled) == (2, False, 1) and window_steps(2, 3, False, 1) == 9
    # the layout predicts the converted chip's own window
    qnet = quantize_model(pooled.double(), torch.rand(4, 1, 6, 6) * 4, levels=3, input_range=(0, 4))
    assert convert_to_chip(qnet, (1, 6, 6)).steps == window_steps(2, 3, False, 1)


def test_cli_grid_exact_priced_and_pareto(digits_mlp, tmp_path):
    model, folder = digits_mlp
    out = tmp_path / "grid.json"
    argv = ["budget", str(folder / "mlp.pt"), "--input", str(folder / "x.npy"), "--labels", str(folder / "y.npy"),
            "--calibrate", str(folder / "calib.npy"), "--weight-bits", "3,8", "--time-steps", "5,8,9",
            "--json", str(out), "--plot", str(tmp_path / "front.png"), "--report", str(tmp_path / "report")]
    assert main(argv) == 0
    grid = json.loads(out.read_text())
    points = grid["points"]
    # T = 2 + L + 1 (one hidden layer + readout): 5 -> L 2, 8 -> L 5, 9 -> L 6
    assert [(p["weight_bits"], p["levels"], p["steps"]) for p in points] == [
        (b, L, L + 3) for b in (3, 8) for L in (2, 5, 6)]
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    calib = np.load(folder / "calib.npy")
    for p in points:
        qnet = quantize_model(model, calib, levels=p["levels"], weight_bits=p["weight_bits"], input_range=(0, 16))
        logits = _numpy_logits(qnet, x)
        assert p["exact"] is True
        assert p["accuracy"] == float(np.mean(logits.argmax(1) == y))
        with torch.no_grad():
            float_pred = model(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()
        assert p["agreement"] == float(np.mean(logits.argmax(1) == float_pred))
        conv = convert_to_chip(qnet, (64,))
        run = conv.run(x, probes=False)
        np.testing.assert_array_equal(conv.activations(run), logits)  # the conversion error is zero
        ops = run.activity.projections
        bit_ops = sum(ops[n].synaptic_ops * proj.num_weight_bits for n, proj in conv.chip.projections.items())
        assert p["bit_ops_per_sample"] == bit_ops / len(x)
        assert p["synaptic_ops_per_sample"] == sum(ops[n].synaptic_ops for n in conv.chip.projections) / len(x)
        assert p["memory_bits"] == bit_budget(conv.chip, warn=False).memory_bits
        assert p["neurobench"]["Effective_ACs"] + p["neurobench"]["Effective_MACs"] == p["synaptic_ops_per_sample"]
    # weights priced at their width: at every T the 3-bit chip holds fewer bits than the 8-bit one
    for L in (2, 5, 6):
        small, big = (next(p for p in points if p["levels"] == L and p["weight_bits"] == b) for b in (3, 8))
        assert small["memory_bits"] < big["memory_bits"] and small["bit_ops_per_sample"] < big["bit_ops_per_sample"]
    # the Pareto front by brute force over (bit ops, accuracy)
    front = {(p["weight_bits"], p["steps"]) for p in points
             if not any(o["bit_ops_per_sample"] <= p["bit_ops_per_sample"] and o["accuracy"] >= p["accuracy"]
                        and (o["bit_ops_per_sample"], o["accuracy"]) != (p["bit_ops_per_sample"], p["accuracy"])
                        for o in points)}
    assert {(f["weight_bits"], f["steps"]) for f in grid["pareto"]} == front and front
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["sweep"]["points"] == points
    html = (tmp_path / "report" / "report.html").read_text()
    section = html.split('<section id="sweep">')[1].split("</section>")[0]
    assert '<img alt="Cost against quality with the Pareto front" src="data:image/png;base64,' in section
    assert section.count("<tr>") == 1 + len(points)  # header + one row per point


def _parse(argv):
    return add_budget_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_errors_name_the_flag_and_the_limit(digits_mlp, tmp_path):
    _, folder = digits_mlp
    base = ["--input", str(folder / "x.npy"), "--weight-bits", "8"]
    console = Console(file=io.StringIO())
    with pytest.raises(ParameterError, match=r"--time-steps 3.*>= 4"):
        run_budget_command(_parse([str(folder / "mlp.pt"), *base, "--time-steps", "3"]), console)
    with pytest.raises(ParameterError, match=r"--weight-bits.*2\.\.8"):
        run_budget_command(_parse([str(folder / "mlp.pt"), "--input", str(folder / "x.npy"), "--weight-bits", "1"]),
                           console)
    with pytest.raises(ParameterError, match=r"--time-steps apply to float ANN files"):
        run_budget_command(_parse([str(tmp_path / "snn.nir"), *base, "--time-steps", "8"]), console)
    torch.save(nn.Sequential(nn.Linear(64, 4), nn.Tanh()), tmp_path / "tanh.pt")
    with pytest.raises(ModelFileError, match=r"torch.nn.modules.activation.Tanh"):
        run_budget_command(_parse([str(tmp_path / "tanh.pt"), *base]), console)


def _signed_bits(values: np.ndarray) -> int:
    """Two's-complement width holding every integer in `values` (by search, not bit_length)."""
    lo, hi = int(values.min()), int(values.max())
    return next(b for b in range(1, 64) if -(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1)


def _state_trajectory(qnet, x) -> tuple[int, float]:
    """(state width, NeuroBench membrane updates per sample) of the two-phase chip of a
    1-hidden-layer MLP, from the integer network
    alone: per step input a_t (u = 64 a_t) and A_t = A_{t-1} + a_t reset to 0 on A_t > 0 (v = 64 A_t).
    Hidden: a_1 = B - M (M = max(0, max B)), a_2 = W n0 + kick + D (kick = M - (L+1) D + 1), then D
    for L - 1 steps; readout: a_1 = B_r, then W_r s_{t-1} from the hidden spikes. Membrane updates:
    every neuron on step 0, then each (step, neuron) whose A changed."""
    hidden, readout = (m for m in qnet.layers if isinstance(m, IntGridLayer))
    W, B = hidden.int_weight().numpy().astype(np.int64), hidden.int_bias().numpy().astype(np.int64)
    Wr, Br = readout.int_weight().numpy().astype(np.int64), readout.int_bias().numpy().astype(np.int64)
    L, D = int(hidden.levels), int(hidden.step)
    n0 = np.rint(x).astype(np.int64)
    M = max(0, int(B.max()))
    kick = M - (L + 1) * D + 1
    steps = L + 3
    a = np.zeros((steps, len(x), len(B)), np.int64)
    a[1], a[2] = B - M, n0 @ W.T + kick + D
    a[3:L + 2] = D
    A, spikes, states = np.zeros((len(x), len(B)), np.int64), np.zeros_like(a), [a]
    for t in range(steps):
        A = A + a[t]
        spikes[t] = A > 0
        A = np.where(A > 0, 0, A)
        states.append(A[None])
    np.testing.assert_array_equal(spikes.sum(0), _numpy_logits_hidden(qnet, x))  # the scheme's counts are n
    ar = np.zeros((steps, len(x), len(Br)), np.int64)
    ar[1] = Br
    ar[2:] = spikes[1:-1] @ Wr.T
    vr = np.cumsum(ar, axis=0)
    states += [ar, vr]
    updates = sum(v[0].size + np.count_nonzero(np.diff(v, axis=0)) for v in (np.concatenate(states[1:steps + 1]), vr))
    return _signed_bits(64 * np.concatenate([s.reshape(-1) for s in states])), updates / len(x)


def _numpy_logits_hidden(qnet, x):
    hidden = next(m for m in qnet.layers if isinstance(m, IntGridLayer))
    z = np.rint(x).astype(np.int64) @ hidden.int_weight().numpy().astype(np.int64).T + hidden.int_bias().numpy().astype(np.int64)
    return np.clip(np.floor_divide(z, hidden.step), 0, hidden.levels)


def test_cli_state_bits_axis_needs_and_prices(digits_mlp, tmp_path):
    """--state-bits 12,16,24: each point's required state width equals the width of the integer
    network's own state trajectory; points below it are infeasible ('needs N state bits' in the
    table, off the Pareto front); state memory is 2 x S bits per neuron; membrane updates are
    those of that trajectory."""
    model, folder = digits_mlp
    out, text = tmp_path / "grid.json", io.StringIO()
    args = _parse([str(folder / "mlp.pt"), "--input", str(folder / "x.npy"), "--labels", str(folder / "y.npy"),
                   "--calibrate", str(folder / "calib.npy"), "--weight-bits", "3,8", "--levels", "3",
                   "--state-bits", "12,16,24", "--cost", "memory_bits", "--json", str(out)])
    assert run_budget_command(args, Console(file=text, width=250)) == 0
    grid = json.loads(out.read_text())
    points = grid["points"]
    assert [(p["weight_bits"], p["state_bits"]) for p in points] == [(b, s) for b in (3, 8) for s in (12, 16, 24)]
    x, calib = np.load(folder / "x.npy"), np.load(folder / "calib.npy")
    for p in points:
        qnet = quantize_model(model, calib, levels=3, weight_bits=p["weight_bits"], input_range=(0, 16))
        needed, updates = _state_trajectory(qnet, x)
        assert p["state_bits_needed"] == needed and p["feasible"] == (needed <= p["state_bits"])
        assert p["neurobench"]["membrane_updates"] == updates
        chip = convert_to_chip(qnet, (64,)).chip
        full = bit_budget(chip, warn=False)
        neurons = sum(pop.size for pop in chip.populations.values())
        assert p["memory_bits"] == full.memory_bits - full.state_bits + neurons * 2 * p["state_bits"]
    infeasible = [p for p in points if not p["feasible"]]
    assert infeasible and any(p["feasible"] for p in points)
    assert f"needs {infeasible[0]['state_bits_needed']} state bits" in text.getvalue()
    front = {(f["weight_bits"], f["state_bits"]) for f in grid["pareto"]}
    assert front and not front & {(p["weight_bits"], p["state_bits"]) for p in infeasible}
