"""Quantize: integer chip parameters that reproduce the canonical float layer."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.backends.base import get_backend
from snnc.backends.reference import ReferenceBackend
from snnc.compiler.passes.base import PassManager
from snnc.compiler.passes.canonicalize import Canonicalize
from snnc.compiler.passes.fuse import Fuse
from snnc.compiler.passes.quantize import Quantize, quantize_values
from snnc.compiler.passes.timing import Timing
from snnc.ir.bits import representable_weight_range, truncate_weights
from snnc.ir.graph import Graph

DT = 1e-4


@pytest.fixture(scope="module")
def braille(refdata):
    g = Graph.from_nir(refdata / "nir-paper/braille/braille_noDelay_bias_zero.nir")
    x = np.load(refdata / "nir-paper/braille/sample0_input.npy")
    return g, x


def quantize(graph, **options):
    return PassManager([Canonicalize(dt=DT), Fuse(), Timing(), Quantize(**options)]).run(graph)


def dense_of(chip, part_of: str) -> tuple[np.ndarray, dict]:
    """Sum of a float projection's chip parts, in chip units of v (w << (6 + weight_exp))."""
    total, exps = 0, {}
    for p in chip.projections.values():
        if p.meta.get("part_of") == part_of:
            w = p.effective_weights()
            w = w.toarray() if hasattr(w, "toarray") else w
            total = total + w * 2.0 ** (6 + p.weight_exp)
            exps[p.name] = p.weight_exp
    return total, exps


def test_decays_follow_the_documented_formulas(braille):
    g, _ = braille
    chip = quantize(g).graph
    # lif1: tau_syn = 2.222e-4, tau_mem = 1e-3; lif2: tau_syn = 2e-4, tau_mem = 2.222e-4 (dt = 1e-4)
    assert (chip.populations["lif1.lif"].du, chip.populations["lif1.lif"].dv) == (round(4096 * 0.45) - 1, round(4096 * 0.1))
    assert (chip.populations["lif2"].du, chip.populations["lif2"].dv) == (round(4096 * 0.5) - 1, round(4096 * 0.45))


def test_weights_and_biases_are_co_scaled_with_the_threshold(braille):
    g, _ = braille
    chip = quantize(g).graph
    for name, dst in [("fc1", "lif1.lif"), ("lif1.w_rec", "lif1.lif"), ("fc2", "lif2")]:
        w_chip, exps = dense_of(chip, name)
        assert len(exps) >= 2 and all(e >= 0 for e in exps.values())  # sign parts and exponent groups
        w_float = w_chip / (chip.populations[dst].vth * 64)  # in units of the threshold (1.0)
        w_nir = np.asarray(g.nodes[name].weight, dtype=np.float64)  # snnTorch export: gains are exactly 1
        big = np.abs(w_nir) >= np.abs(w_nir).max() / 8
        rel = np.abs(w_float - w_nir)[big] / np.abs(w_nir)[big]
        assert rel.max() < 1 / 200, name  # 8 bits of magnitude per weight, plus the threshold rounding
        assert np.abs(w_float - w_nir).max() < np.abs(w_nir).max() / 256
    b_chip, _ = dense_of(chip, "lif1.lif.bias")
    b_float = b_chip[:, 0] / (chip.populations["lif1.lif"].vth * 64)
    b_nir = np.asarray(g.nodes["fc1"].bias, dtype=np.float64) + np.asarray(g.nodes["lif1.w_rec"].bias, dtype=np.float64)
    # one synaptic unit (64 units of u) is the resolution of a drive entering through synapses
    vth = chip.populations["lif1.lif"].vth
    np.testing.assert_allclose(b_float, b_nir, rtol=1 / 200, atol=0.51 / vth)
    # the bias neuron fires every step; its projection starts the drive at the layer's first float step
    assert chip.populations["snnc.bias"].meta["role"] == "bias"
    assert {p.delay for p in chip.projections.values() if p.src == "snnc.bias" and p.dst == "lif2"} == {1}


def test_single_exponent_mode_emits_lava_exact_mixed_weights_with_the_best_exponent(braille):
    g, _ = braille
    res = quantize(g, split_sign=False, exponent_groups=1)
    chip = res.graph
    proj = chip.projections["lif1.w_rec"]
    assert proj.sign_mode == "mixed" and np.all(proj.weights % 2 == 0)  # Lava drops the lowest bit of mixed weights
    assert np.array_equal(proj.effective_weights(), proj.weights)
    k = chip.populations["lif1.lif"].meta["scale"]
    w = np.asarray(g.nodes["lif1.w_rec"].weight, dtype=np.float64)
    errors = {e: np.sum((quantize_values(w, k, e, 8, "mixed") * 2.0 ** (6 + e) / k - w) ** 2) for e in range(0, 8)}
    assert proj.weight_exp == min(errors, key=errors.get)
    # the brute-force best is not simply the first exponent that fits
    lo, hi, _ = representable_weight_range(8, "mixed")
    first_fit = min(e for e in range(0, 8) if np.abs(w).max() * k / 2.0 ** (6 + e) <= hi)
    assert errors[proj.weight_exp] <= errors[first_fit]


def test_lif_reference_model_spikes_like_loihi(refdata):
    g = Graph.from_nir(refdata / "nir-paper/lif/lif_norse.nir")
    data = np.loadtxt(refdata / "nir-paper/lif/lif_exact.csv", delimiter=",")
    lava = np.loadtxt(refdata / "nir-paper/lif/lif_lava_loihi_fixed.csv", delimiter=",")
    chip = quantize(g).graph
    pop = chip.populations["1"]
    assert (pop.du, pop.dv) == (4095, round(4096 * 1e-4 / 2.5e-3))  # no synaptic current; tau 2.5 ms
    out = get_backend("sim").build(chip).run(data[None, :, :1])
    raw = np.nonzero(out.outputs["output"][0, :, 0])[0]
    assert raw.tolist() == np.nonzero(lava[:, 2])[0].tolist() == [461, 511, 711, 761]  # the Loihi 2 recording
    assert np.nonzero(out.aligned(out.outputs["output"])[0, :, 0])[0].tolist() == [460, 510, 710, 760]


def test_conv_projections_use_no_exponent(refdata):
    g = Graph.from_nir(refdata / "nir-paper/cnn/cnn_sinabs.nir")
    chip = quantize(g).graph
    convs = [p for p in chip.projections.values() if p.kind == "conv"]
    assert len(convs) == 3
    for p in convs:
        assert p.weight_exp == 0 and np.array_equal(truncate_weights(p.weights, p.num_weight_bits), p.weights)
        kernel = next(n for n in chip.projections if n == p.name)
        assert kernel


def test_graded_inputs_carry_analog_values():
    rng = np.random.default_rng(0)
    w = rng.uniform(0.2, 1.0, size=(3, 2))
    nodes = {
        "in": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=w, bias=np.zeros(3)),
        "lif": nir.LIF(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, 0.5)),
        "out": nir.Output(output_type=np.array([3])),
    }
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False))
    x = np.clip(0.5 + 0.4 * np.sin(np.arange(400)[:, None] / np.array([17.0, 29.0])), 0, 1)[None]  # analog current
    res = quantize(g, calibrate=x)
    chip = res.graph
    assert chip.inputs["in"].num_message_bits == 8 and res.report("quantize")["inputs"]["in"]["encoding"] == "graded"
    scale = chip.meta["input_scale"]["in"]
    assert scale == pytest.approx(255 / x.max())  # non-negative data: the full unsigned payload range
    payload = np.rint(x * scale)
    # the float model fed the same 8-bit input values: what the graded spikes carry exactly
    ref = ReferenceBackend().build(g, dt=DT).run(payload / scale).outputs["out"][0]
    out = get_backend("sim").build(chip).run(payload, steps=401)
    got = out.aligned(out.outputs["out"])[0, :400]
    assert ref.sum() > 30
    for n in range(3):
        a, b = np.nonzero(ref[:, n])[0], np.nonzero(got[:, n])[0]
        assert len(a) == len(b) and np.all(np.abs(a - b) <= 1)
    with pytest.raises(Exception, match="binary"):
        get_backend("sim").build(quantize(g, input_encoding="spikes").graph).run(x)


def test_non_spiking_readout_is_read_as_voltage():
    w = np.array([[0.5, -0.3], [0.2, 0.8]])
    nodes = {
        "in": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=w, bias=np.array([0.05, 0.0])),
        "li": nir.LI(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.array([0.1, -0.2])),
        "out": nir.Output(output_type=np.array([2])),
    }
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "li"), ("li", "out")], type_check=False))
    x = (np.random.default_rng(1).random((1, 200, 2)) < 0.4).astype(float)
    chip = quantize(g).graph
    assert chip.outputs["out"].var == "v" and chip.populations["li"].vth == 2**17 - 1
    out = get_backend("sim").build(chip).run(x, steps=201)
    v = out.aligned(out.outputs["out"])[0, :200] * chip.meta["output_scale"]["out"]
    v = v + np.asarray(chip.meta["output_offset"]["out"])
    ref = ReferenceBackend().build(g, dt=DT).run(x).outputs["out"][0]
    assert np.abs(v - ref).max() < 0.01 * np.abs(ref).max()


def test_calibration_reports_the_membrane_input_error(braille):
    g, x = braille
    rep = quantize(g, calibrate=x).report("quantize")
    assert rep["calibrated"]
    for name in ("lif1.lif", "lif2"):
        layer = rep["layers"][name]
        assert 0 < layer["membrane_input_error"] < 0.01
        assert layer["calibration_refinement"]["flips"] <= layer["calibration_refinement"]["flips_before"]
    coarse = quantize(g, calibrate=x, weight_bits=4).report("quantize")["layers"]["lif1.lif"]["membrane_input_error"]
    assert coarse > 4 * rep["layers"]["lif1.lif"]["membrane_input_error"]


def test_output_of_an_affine_is_read_through_an_exact_relay():
    nodes = {
        "in": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=np.array([[0.5, -0.2], [0.1, 0.3]]), bias=np.array([0.05, -0.1])),
        "out": nir.Output(output_type=np.array([2])),
    }
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "out")], type_check=False))
    x = (np.random.default_rng(0).random((1, 50, 2)) < 0.5).astype(float)
    chip = quantize(g).graph
    (relay,) = [p for p in chip.populations.values() if p.meta.get("role") == "relay"]
    assert relay.model == "lif_reset" and chip.outputs["out"] == type(chip.outputs["out"])(relay.name, "v")
    out = get_backend("sim").build(chip).run(x, steps=51)
    v = out.aligned(out.outputs["out"])[0, :50] * chip.meta["output_scale"]["out"]
    np.testing.assert_allclose(v, ReferenceBackend().build(g, dt=DT).run(x).outputs["out"][0], atol=1e-6)


def test_per_channel_scales_need_per_neuron_thresholds(braille):
    from snnc.compiler.passes.legalize import Legalize
    from snnc.ir.errors import QuantizationError

    g, _ = braille
    layer = quantize(g).report("quantize")["layers"]["lif1.lif"]
    res = quantize(g, per_channel=True)
    per = res.report("quantize")["layers"]["lif1.lif"]
    vth = res.graph.populations["lif1.lif"].vth
    assert np.ndim(vth) == 1 and len(np.unique(vth)) > 1
    assert per["weight_error"] <= layer["weight_error"]
    with pytest.raises(QuantizationError, match="vth"):
        Legalize().run(res.graph)
    Legalize(shared=("du", "dv")).run(res.graph)


def test_a_gain_that_could_not_be_folded_is_applied_by_the_lowering():
    # two inputs into one LIF: canonicalize keeps dt/tau * r / v_th in w_in; the chip must apply it
    nodes = {
        "a": nir.Input(input_type=np.array([2])),
        "b": nir.Input(input_type=np.array([2])),
        "fa": nir.Affine(weight=np.array([[1.0, 0.5], [0.2, 1.0]]), bias=np.zeros(2)),
        "fb": nir.Affine(weight=np.array([[0.5, -0.5], [1.0, 0.3]]), bias=np.array([0.02, 0.0])),
        "lif": nir.LIF(tau=np.full(2, 2e-3), r=np.array([1.0, 2.0]), v_leak=np.zeros(2), v_threshold=np.array([0.1, 0.3])),
        "out": nir.Output(output_type=np.array([2])),
    }
    edges = [("a", "fa"), ("b", "fb"), ("fa", "lif"), ("fb", "lif"), ("lif", "out")]
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    rng = np.random.default_rng(4)
    x = {k: (rng.random((1, 300, 2)) < 0.3).astype(float) for k in ("a", "b")}
    res = quantize(g)
    assert res.report("canonicalize")["gain_folded"] == []
    ref = ReferenceBackend().build(g, dt=DT).run(x).outputs["out"][0]
    out = get_backend("sim").build(res.graph).run(x, steps=301)
    got = out.aligned(out.outputs["out"])[0, :300]
    assert ref.sum() > 20
    assert np.abs(got - ref).sum() <= 2
