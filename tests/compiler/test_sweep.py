"""Bit-budget sweep: the fidelity metrics by hand, the CLI surface, and the real Braille model."""
from __future__ import annotations

import argparse
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from snnc.compiler.analysis.sweep import accuracy, budget_sweep, predictions, spike_fidelity
from snnc.compiler.cli.budget import add_budget_arguments, run_budget_command
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import ModelFileError, ParameterError, QuantizationError, ShapeError


def test_spike_fidelity_by_hand():
    ref = np.zeros((1, 4, 2))
    ref[0, 1, 0] = ref[0, 3, 1] = ref[0, 2, 0] = 1  # 3 spikes
    chip = np.zeros((1, 4, 2))
    chip[0, 1, 0] = chip[0, 0, 1] = 1  # 2 spikes, one shared with ref
    f = spike_fidelity("x", chip, ref)
    assert f.agreement == pytest.approx(2 * 1 / (2 + 3))
    # counts per neuron: chip (1, 1), ref (2, 1) -> 1 - 1/5
    assert f.count_agreement == pytest.approx(0.8)
    assert (f.mismatches, f.chip_spikes, f.reference_spikes) == (3, 2, 3)


def test_spike_fidelity_identical_silent_and_shape_error():
    a = (np.random.default_rng(0).random((2, 5, 3)) > 0.5).astype(float)
    f = spike_fidelity("a", a, a)
    assert (f.agreement, f.count_agreement, f.mismatches) == (1.0, 1.0, 0)
    f = spike_fidelity("z", np.zeros((1, 3, 2)), np.zeros((1, 3, 2)))
    assert (f.agreement, f.count_agreement) == (1.0, 1.0)
    shifted = np.roll(a, 1, axis=1)  # same counts where nothing wraps around, wrong times
    g = spike_fidelity("s", shifted, a)
    assert g.agreement < 1.0
    with pytest.raises(ShapeError, match="'bad'"):
        spike_fidelity("bad", np.zeros((1, 3, 2)), np.zeros((1, 4, 2)))


def test_predictions_and_accuracy():
    out = np.zeros((3, 5, 4))
    out[0, :3, 2] = 1  # class 2
    out[1, :, 1] = 1
    out[1, :4, 3] = 1  # class 1 (5 vs 4)
    # sample 2 silent -> argmax picks class 0
    assert predictions(out).tolist() == [2, 1, 0]
    assert accuracy(out, np.array([2, 3, 0])) == pytest.approx(2 / 3)


def parse(argv):
    parser = argparse.ArgumentParser(prog="snnc budget")
    add_budget_arguments(parser)
    return parser.parse_args(argv)


def test_cli_arguments():
    args = parse(["m.nir", "--input", "x.npy", "--weight-bits", "2,8", "--steps", "10", "--labels", "l.npy"])
    assert (args.model, args.input, args.weight_bits, args.steps, args.labels) == ("m.nir", "x.npy", [2, 8], 10, "l.npy")
    assert parse(["m.nir", "--input", "x.npy"]).weight_bits == [2, 4, 6, 8]
    with pytest.raises(SystemExit):
        parse(["m.nir", "--input", "x.npy", "--weight-bits", "two"])


def test_bad_widths_and_missing_files_are_snnc_errors(tmp_path):
    with pytest.raises(ParameterError, match="1..8"):
        budget_sweep("m.nir", weight_bits=(4, 9), inputs=np.zeros((3, 2)))
    with pytest.raises(ParameterError, match="inputs"):
        budget_sweep("m.nir", weight_bits=(4,))
    with pytest.raises(ModelFileError, match="not found"):
        run_budget_command(parse(["m.nir", "--input", str(tmp_path / "nope.npy")]))
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    with pytest.raises(ModelFileError, match="cannot read the input array"):
        run_budget_command(parse(["m.nir", "--input", str(bad)]))


# -- the sweep end to end on the real sim and reference backends, with a hand-written compiler ----
W1 = np.array([[40, -20, 30], [-30, 50, 10], [20, 20, -40], [60, -10, 0]])  # even: exact at 8 bits
W2 = np.array([[30, 30, -20, 10], [-10, 20, 40, 30]])
THR1, THR2 = 50, 40


def if_network():
    """input(3) -> fc1 -> if1(4) -> fc2 -> if2(2) -> output: integrate-and-fire, reset to 0."""
    import nir

    return nir.NIRGraph(
        nodes={
            "input": nir.Input({"input": np.array([3])}),
            "fc1": nir.Affine(W1.astype(float), np.zeros(4)),
            "if1": nir.IF(np.ones(4), np.full(4, float(THR1)), np.zeros(4)),
            "fc2": nir.Affine(W2.astype(float), np.zeros(2)),
            "if2": nir.IF(np.ones(2), np.full(2, float(THR2)), np.zeros(2)),
            "output": nir.Output({"output": np.array([2])}),
        },
        edges=[("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2"), ("if2", "output")],
    )


class Compiled:
    def __init__(self, chip):
        self.chip = chip


def hand_compile(model, weight_bits, dt=None):
    """The chip twin of `if_network`: du=4095 makes u the step's input x 64, dv=0 keeps v, so chip
    v = 64 x float v and thresholds match; one step of latency per projection."""
    if weight_bits == 1:
        raise QuantizationError("1-bit weights refused by this test compiler", where="hand_compile")
    g = ChipGraph()
    g.add(InputPopulation("in", (3,)))
    g.add(Population("if1", (4,), du=4095, dv=0, vth=THR1, meta={"latency": 1}))
    g.add(Population("if2", (2,), du=4095, dv=0, vth=THR2, meta={"latency": 2}))
    g.add(Projection("fc1", "in", "if1", W1, num_weight_bits=weight_bits))
    g.add(Projection("fc2", "if1", "if2", W2, num_weight_bits=weight_bits))
    g.outputs["out"] = OutputPort("if2")
    g.meta["time_shift"] = 2
    return Compiled(g)


def test_sweep_with_real_backends_on_an_exact_chip_twin():
    rng = np.random.default_rng(1)
    inputs = (rng.random((4, 30, 3)) < 0.3).astype(np.float32)
    from snnc.backends.base import get_backend

    ref = get_backend("reference").build(if_network()).run(inputs)
    labels = predictions(ref.outputs["output"])
    result = budget_sweep(if_network(), (1, 2, 8), inputs, labels=labels, compile_fn=hand_compile)
    assert [r.weight_bits for r in result.rows] == [1, 2, 8] and (result.steps, result.batch) == (30, 4)
    assert "1-bit weights refused" in result.row(1).error and result.row(1).budget is None
    exact = result.row(8)
    assert exact.error is None and exact.time_shift == 2
    # the twin is exact at 8 bits: every output and hidden spike at the same (aligned) step
    assert exact.fidelity == 1.0 and exact.outputs["out"].mismatches == 0
    assert exact.outputs["out"].reference_spikes == int(ref.outputs["output"].sum()) > 0
    assert exact.hidden["if1"].agreement == 1.0 and exact.hidden["if1"].reference_spikes > 0
    assert exact.accuracy == 1.0 and result.reference_accuracy == 1.0
    # 2 bits mixed keeps multiples of 128 only: the chip drifts away from the float model
    assert result.row(2).fidelity < 1.0
    # weight memory = num_weight_bits (sign included) x all dense entries (12 + 8)
    assert result.row(2).budget.weight_memory_bits == 2 * 20
    assert exact.budget.weight_memory_bits == 8 * 20
    # the budget counts the chip's run: 30 + 2 steps
    assert exact.budget.steps == 32 and exact.budget.spike_bits > 0
    d = json.loads(json.dumps(result.to_dict()))
    assert d["rows"][2]["fidelity"] == 1.0 and d["rows"][0]["error"]
    # Pareto (memory vs accuracy): 2 bits is cheaper; 8 bits is on the front iff it is more accurate
    expected_front = [2, 8] if result.row(2).accuracy < 1.0 else [2]
    assert d["pareto_weight_bits"] == expected_front == result.pareto()
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(result.render())
    assert "if1 agreement" in out.getvalue() and "1-bit weights refused" in out.getvalue()
    assert "Pareto" in out.getvalue() and "bit ops/sample" in out.getvalue()
    # the plot's front line holds exactly the Pareto widths' (memory, accuracy) points
    (line,) = [ln for ln in result.figure().axes[0].lines if ln.get_label() == "Pareto front"]
    drawn = sorted(zip(line.get_xdata(), line.get_ydata()))
    want = sorted((result.row(b).budget.weight_memory_bits + result.row(b).budget.state_bits, result.row(b).accuracy)
                  for b in expected_front)
    assert drawn == want
    assert exact.budget.bit_ops > result.row(2).budget.bit_ops > 0  # 8 vs 2 bits per op (spike counts differ by far less than 4x)


# -- the real compiler on the NIR paper's Braille network ----------------------------------------
@pytest.mark.refdata
def test_braille_sweep_budget_grows_and_fidelity_does_not_drop(refdata):
    folder = refdata / "nir-paper" / "braille"
    x = np.load(folder / "sample0_input.npy")  # 256 steps x 12 channels, label 1
    result = budget_sweep(folder / "braille_noDelay_bias_zero.nir", (2, 4, 6, 8), x, labels=np.array([1]))
    rows = result.rows
    assert [r.error for r in rows] == [None] * 4
    memory = [r.budget.weight_memory_bits for r in rows]
    assert all(a < b for a, b in zip(memory, memory[1:])), memory
    # state does not depend on the weight width: 48 bits x (38 + 7 neurons + the bias neuron)
    assert {r.budget.state_bits for r in rows} == {48 * 46}
    assert all(r.budget.min_margin_bits >= 0 and r.budget.warnings == [] for r in rows)
    assert rows[-1].fidelity >= rows[0].fidelity
    # the hidden layer is compared against the float run, whose spikes snnTorch recorded (119)
    recorded = int(np.load(folder / "snntorch_activity_noDelay_bias_zero.npy").sum())
    assert all(r.hidden["lif1.lif"].reference_spikes == recorded for r in rows)
    assert rows[-1].accuracy == 1.0 and result.reference_accuracy == 1.0


@pytest.mark.refdata
def test_budget_command_prints_the_table_and_writes_json(refdata, tmp_path):
    folder = refdata / "nir-paper" / "braille"
    labels = tmp_path / "labels.npy"
    np.save(labels, np.array([1]))
    out_json = tmp_path / "sweep.json"
    args = parse([str(folder / "braille_noDelay_bias_zero.nir"), "--weight-bits", "3,8", "--steps", "100",
                  "--input", str(folder / "sample0_input.npy"), "--labels", str(labels), "--json", str(out_json),
                  "--plot", str(tmp_path / "pareto.png")])
    text = io.StringIO()
    assert run_budget_command(args, console=Console(file=text, width=200, color_system=None)) == 0
    printed = text.getvalue()
    assert "Bit budget vs. fidelity (100 steps, batch 1)" in printed and "accuracy" in printed
    d = json.loads(out_json.read_text())
    assert [r["weight_bits"] for r in d["rows"]] == [3, 8] and d["steps"] == 100
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 3 in d["pareto_weight_bits"]
    assert d["rows"][0]["budget"]["total"]["weight_memory_bits"] < d["rows"][1]["budget"]["total"]["weight_memory_bits"]
    with pytest.raises(ShapeError, match="one label per input sample"):
        np.save(labels, np.array([1, 2]))
        run_budget_command(args, console=Console(file=io.StringIO()))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_pareto_front_matches_brute_force(points):
    """A point is on the front iff no other point is at least as cheap and as good, one strictly;
    every point off the front is dominated by one on it."""
    from snnc.compiler.analysis.sweep import pareto_front

    front = set(pareto_front(points))
    for i, (c, q) in enumerate(points):
        beaten = any((c2 <= c and q2 >= q) and (c2 < c or q2 > q) for c2, q2 in points)
        assert (i in front) == (not beaten)
        if beaten:
            assert any(points[j][0] <= c and points[j][1] >= q for j in front)
