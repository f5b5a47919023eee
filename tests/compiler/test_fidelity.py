"""The fidelity guard (snnc.compiler.analysis.fidelity): deliberately broken models each produce the
named warning, `strict` / `--strict` fail them, healthy models and the NIR paper's files pass."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest

from snnc.backends.base import get_backend
from snnc.compiler.analysis.fidelity import (
    DEFAULT_TOLERANCE, GENERATED_STEPS, MAX_SAMPLE_STEPS, MAX_SAMPLES, FidelityWarning, generated_input, parse_tolerance,
)
from snnc.compiler.analysis.sweep import budget_sweep
from snnc.compiler.cli import main
from snnc.compiler.pipeline import compile
from snnc.ir.bits import SPECS
from snnc.ir.errors import BackendError, ParameterError, PassError, QuantizationError
from snnc.ir.reset_mode import AssumptionWarning

REFDATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "nir-paper"


def net(w1=3.0, w2=3.0, vth=1.0, vth2=None, mode="zero", n=10, h=8, o=4) -> nir.NIRGraph:
    """input -> Affine -> LIF -> Affine -> LIF with positive random weights (scaled by w1, w2)."""
    rng = np.random.default_rng(0)

    def meta():
        return {} if mode is None else {"reset_mode": mode}

    return nir.NIRGraph.from_list(
        nir.Affine(np.abs(rng.normal(0, 1, (h, n))) * w1, np.zeros(h)),
        nir.LIF(tau=np.full(h, 2e-3), r=np.ones(h), v_leak=np.zeros(h), v_threshold=np.full(h, vth), metadata=meta()),
        nir.Affine(np.abs(rng.normal(0, 1, (o, h))) * w2, np.zeros(o)),
        nir.LIF(tau=np.full(o, 2e-3), r=np.ones(o), v_leak=np.zeros(o),
                v_threshold=np.full(o, vth if vth2 is None else vth2), metadata=meta()),
    )


def guarded(graph, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compile(graph, **options)
    return result, [w for w in caught if issubclass(w.category, AssumptionWarning)]


def breaches(result) -> dict[tuple[str, str], object]:
    return {(b.layer, b.check): b for b in result.fidelity.breaches}


# -- tolerances ------------------------------------------------------------------------------------
def test_the_guards_sim_program_serves_the_first_run(monkeypatch):
    from snnc.backends.sim import SimBackend

    result, _ = guarded(net())
    x = (np.random.default_rng(4).random((2, 20, 10)) < 0.3).astype(np.float32)
    builds = []
    build = SimBackend.build
    monkeypatch.setattr(SimBackend, "build", lambda self, graph, **o: builds.append(graph) or build(self, graph, **o))
    first = result.run(x)
    assert builds == []  # built once, by the guard
    fresh = compile(net(), guard=False).run(x)
    assert len(builds) == 1  # an unguarded compile builds on its first run
    assert all(np.array_equal(first.outputs[k], fresh.outputs[k]) for k in fresh.outputs)


def test_tolerance_parsing():
    assert parse_tolerance(None) == DEFAULT_TOLERANCE
    tol = parse_tolerance("weight_error=0.1, agreement=0.9")
    assert tol["weight_error"] == 0.1 and tol["agreement"] == 0.9 and tol["dead"] == DEFAULT_TOLERANCE["dead"]
    assert parse_tolerance({"wraps": 3})["wraps"] == 3.0
    for bad in ("nonsense=1", "weight_error", "weight_error=-1", "agreement=nan"):
        with pytest.raises(ParameterError):
            parse_tolerance(bad)


# -- healthy ---------------------------------------------------------------------------------------
def test_healthy_model_passes_and_agrees_with_the_sweep():
    result, warned = guarded(net())
    f = result.fidelity
    assert f.ok and warned == []
    assert "generated input" in f.input_source and (f.batch, f.steps) == (1, GENERATED_STEPS + result.time_shift)
    # every layer fires, none saturates, weights are kept to < 1 %
    for name, m in f.layers.items():
        assert m["spikes"] > 0 and m["saturation"] == 0 and m["wraps"] == 0 and m["weight_error"] < 0.01, name
    # independent: the budget sweep's own float-vs-chip comparison (its own runs and alignment) on the same input
    data = generated_input({"input": (10,)}, steps=f.steps)
    sweep = budget_sweep(net(), [8], data["input"])
    row = sweep.rows[0]
    for name, fid in {**row.hidden, **row.outputs}.items():
        layer = name if name in f.layers else result.chip.outputs[name].population
        assert f.layers[layer]["timing"] == pytest.approx(fid.agreement)
        assert f.layers[layer]["reference_spikes"] == fid.reference_spikes


def test_report_and_summary_state_results_and_assumptions():
    result, _ = guarded(net())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["fidelity"]["ok"] is True and set(data["fidelity"]["layers"]) == {"lif", "lif_1"}
    assert data["fidelity"]["tolerance"] == DEFAULT_TOLERANCE
    text = result.summary_text()
    assert "fidelity: ok" in text
    for needle in ("reset: zero (2 spiking node(s))", "dt: 0.0001 s", "input 'input': binary spikes", "lag the float model by 2 step(s)"):
        assert any(needle in a for a in data["assumptions"]), needle
        assert needle in text
    off = compile(net(), guard=False)
    assert off.fidelity is None and off.assumptions and "fidelity guard: not run" in off.summary_text()


def test_calibration_data_is_used_and_capped():
    rng = np.random.default_rng(3)
    calib = (rng.random((MAX_SAMPLES + 4, 30, 10)) < 0.3).astype(np.float64)
    result, _ = guarded(net(), calibrate=calib)
    assert result.fidelity.input_source.startswith("calibration data")
    assert (result.fidelity.batch, result.fidelity.steps) == (MAX_SAMPLES, 30)
    long = (rng.random((3, MAX_SAMPLE_STEPS // 2 + 1, 10)) < 0.3).astype(np.float64)  # two samples would exceed the cap
    result, _ = guarded(net(), calibrate=long)
    assert (result.fidelity.batch, result.fidelity.steps) == (1, MAX_SAMPLE_STEPS // 2 + 1)
    assert "first 1 of 3 samples" in result.fidelity.input_source


# -- broken models: each produces its named warning --------------------------------------------------
def test_tiny_weights_named_weight_error_and_dead():
    result, warned = guarded(net(w1=1e-12))
    b = breaches(result)
    # every weight of 'lif' quantized to 0: the relative error of an all-zero approximation is exactly 1
    assert b[("lif", "weight_error")].value == 1.0 and b[("lif", "weight_error")].limit == DEFAULT_TOLERANCE["weight_error"]
    assert "rescale" in b[("lif", "weight_error")].fix
    assert ("lif", "dead") in b and result.layers["lif"]["synapses"] == 0
    assert any("layer 'lif': weight_error 1 is above the limit 0.25" in str(w.message) for w in warned)
    assert all(w.category is FidelityWarning for w in warned)


def test_huge_weights_are_refused_loudly():
    with pytest.raises(PassError, match="too large for its threshold"):
        compile(net(w1=1e12))


def test_saturating_layer_named_with_the_measured_fraction():
    result, _ = guarded(net(w1=50.0, mode="none"))  # no reset: v climbs to its 24-bit ceiling
    b = breaches(result)
    assert ("lif", "saturation") in b and "calibrate" in b[("lif", "saturation")].fix
    # independent: run the chip ourselves and count v at the ceiling of ir.bits
    shift = result.latency("lif")
    steps = result.fidelity.steps
    data = generated_input({"input": (10,)}, steps=steps)
    run = get_backend("sim").build(result.chip).run(result.encode_inputs(data), steps=steps + 2, probes=["lif/v"])
    v = run.probes["lif/v"]
    assert b[("lif", "saturation")].value == np.mean(v >= SPECS["v"].hi)
    assert b[("lif", "saturation")].value > 0.1 and shift >= 1


def test_dead_layer_named():
    result, _ = guarded(net(w2=-3.0))  # inhibitory weights only: the output layer can never fire
    b = breaches(result)
    assert set(b) == {("lif_1", "dead")}
    ref = get_backend("reference").build(result.source).run(generated_input({"input": (10,)}, steps=result.fidelity.steps))
    assert next(iter(ref.outputs.values())).sum() == 0  # the float model is silent too: the model, not the chip
    assert "threshold" in b[("lif_1", "dead")].fix


def test_zero_threshold_named():
    result, _ = guarded(net(vth=0.0, vth2=1.0))
    b = breaches(result)
    assert b[("lif", "vth")].value == 0 and "check the threshold" in b[("lif", "vth")].fix


def test_unstated_reset_mode_is_stated_and_strict_fails():
    result, warned = guarded(net(mode=None))
    assert [w.category for w in warned] == [AssumptionWarning]
    assert any("not stated by the model file" in a for a in result.assumptions)
    with pytest.raises(QuantizationError, match="NIR cannot state how spiking neurons reset"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(net(mode=None), strict=True)


def test_tolerance_changes_the_verdict():
    result, _ = guarded(net(w1=1e-12), tolerance={"weight_error": 1.0, "dead": 1})
    assert result.fidelity.ok and result.fidelity.tolerance["dead"] == 1
    result, _ = guarded(net(), tolerance="agreement=1.01")  # an impossible minimum breaches on every spiking layer
    assert {b.check for b in result.fidelity.breaches} == {"agreement"}
    with pytest.raises(QuantizationError, match="agreement"):
        compile(net(), tolerance="agreement=1.01", strict=True)
    # 2-bit weights keep every spike count here but move spikes in time: only `timing` sees it
    rng = np.random.default_rng(1)
    calib = (rng.random((50, 10)) < 0.3).astype(np.float64)
    result, _ = guarded(net(), weight_bits=2, calibrate=calib, tolerance="timing=0.9")
    sweep = budget_sweep(net(), [2], calib, calibrate=calib)
    for (layer, check), b in breaches(result).items():
        assert check == "timing" and b.value == pytest.approx({**sweep.rows[0].hidden, **{
            result.chip.outputs[k].population: v for k, v in sweep.rows[0].outputs.items()}}[layer].agreement)
    assert breaches(result) and all(m["agreement"] >= 0.5 for m in result.fidelity.layers.values())


# -- CLI ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, graph, needle", [
    ("tiny", net(w1=1e-12), "layer 'lif': weight_error 1 is above the limit 0.25"),
    ("saturating", net(w1=50.0, mode="none"), "layer 'lif': saturation"),
    ("dead", net(w2=-3.0), "layer 'lif_1': dead 1"),
    ("zero_threshold", net(vth=0.0, vth2=1.0), "layer 'lif': vth 0 is below the minimum 1"),
    ("unstated_reset", net(mode=None), "NIR cannot state how spiking neurons reset"),
])
def test_cli_warns_and_strict_fails(tmp_path, capsys, name, graph, needle):
    model = tmp_path / f"{name}.nir"
    nir.write(str(model), graph)
    out = tmp_path / "out.nir"
    assert main(["compile", str(model), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert any(line.startswith("snnc: warning: ") and needle in line for line in err.splitlines()) and out.exists()
    previous = out.read_bytes()
    assert main(["compile", str(model), "-o", str(out), "--strict", "--report", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert any(line.startswith("snnc: error: strict: ") and needle in line for line in err.splitlines())
    assert out.read_bytes() == previous and not (tmp_path / "r.json").exists()  # nothing written


def test_cli_healthy_strict_passes_and_tolerance_flag(tmp_path, capsys):
    model = tmp_path / "ok.nir"
    nir.write(str(model), net())
    assert main(["compile", str(model), "-o", str(tmp_path / "o.nir"), "--strict", "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["fidelity"]["ok"] is True
    assert main(["compile", str(model), "-o", str(tmp_path / "o.nir"), "--strict", "--tolerance", "agreement=1.01"]) == 1
    assert main(["compile", str(model), "-o", str(tmp_path / "o.nir"), "--strict", "--no-guard",
                 "--tolerance", "agreement=1.01"]) == 0
    capsys.readouterr()
    assert main(["compile", str(model), "-o", str(tmp_path / "o.nir"), "--tolerance", "bogus=1"]) == 2


def test_cli_report_strict(tmp_path, capsys):
    model = tmp_path / "dead.nir"
    nir.write(str(model), net(w2=-3.0))
    np.save(tmp_path / "in.npy", (np.random.default_rng(1).random((40, 10)) < 0.3).astype(np.float64))
    args = ["report", str(model), "--input", str(tmp_path / "in.npy"), "-o", str(tmp_path / "rep")]
    assert main(args + ["--strict"]) == 1 and not (tmp_path / "rep").exists()
    assert main(args) == 0
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [b["check"] for b in data["fidelity"]["breaches"]] == ["dead"]
    assert any("reset: zero" in a for a in data["assumptions"])
    assert "layer &#x27;lif_1&#x27;: dead 1" in (tmp_path / "rep" / "report.html").read_text() or \
        "layer 'lif_1': dead 1" in (tmp_path / "rep" / "report.html").read_text()


# -- the NIR paper's files: no breach ---------------------------------------------------------------
@pytest.mark.parametrize("path, calibrate", [
    ("lif/lif_norse.nir", None),
    ("braille/braille_noDelay_bias_zero.nir", None),
    ("braille/braille_noDelay_bias_zero.nir", "braille/sample0_input.npy"),
    ("cnn/cnn_sinabs.nir", None),
])
def test_nir_paper_files_pass(path, calibrate):
    if not REFDATA.exists():
        pytest.fail(f"reference data missing: {REFDATA}")
    calib = None if calibrate is None else np.load(REFDATA / calibrate)
    result, warned = guarded(str(REFDATA / path), calibrate=calib)
    assert result.fidelity.ok, [b.message for b in result.fidelity.breaches]
    # the one warning is the reset mode NIR cannot state, and it is in the stated assumptions
    assert [w.category for w in warned] == [AssumptionWarning]
    assert any("not stated by the model file" in a for a in result.assumptions)


def test_u_wraps_are_counted_and_named():
    """Max weights at the largest exponent push the 24-bit current past its range: the guard names
    the layer (the count itself is checked exactly against hand-computed runs below)."""
    import dataclasses

    from snnc.compiler.analysis.fidelity import check_fidelity

    result = compile(net(), guard=False)
    for name, p in list(result.chip.projections.items()):
        if p.src == "input":  # every input synapse of 'lif' at weight 255 << 7
            result.chip.projections[name] = dataclasses.replace(p, weights=p.weights.sign() * 255, weight_exp=SPECS["weight_exp"].hi)
    report = check_fidelity(result)
    assert report.layers["lif"]["wraps"] > 0 and report.layers["lif_1"]["wraps"] == 0
    b = {(x.layer, x.check): x for x in report.breaches}[("lif", "wraps")]
    assert b.limit == 0 and "u overflows" in b.fix


# -- exact overflow counts (snnc.ir.fixed_point.step_overflows on the sim's own input sums) ----------
BIG = 255 << 7  # the largest synaptic value of one spike: 32640; 4 of them << 6 = 8355840 < 2**23, 5 wrap u
VTH_MAX = SPECS["vth"].hi  # vth << 6 = 8388544 < V_MAX: no spike below the ceiling


def _chip(looped: bool):
    """input (5) -> [r (5) ->] q (1): q's du=4095 makes u = a << 6 afresh each step, so q's u wraps
    exactly at the steps where all five of its synapses carry a spike. With `looped`, the spikes
    come through r (one step later), and a zero-weight q -> r projection puts r and q in one loop."""
    from snnc.ir.chip import ChipGraph, InputPopulation, Population, Projection

    g = ChipGraph()
    g.add(InputPopulation("in", (5,)))
    g.add(Population("q", (1,), du=4095, dv=4095, vth=VTH_MAX))
    src = "in"
    if looped:
        g.add(Population("r", (5,), du=4095, dv=4095, vth=1))  # u = 2 << 6 = 128 > 64: fires when driven
        g.add(Projection("in_r", "in", "r", kind="dense", weights=np.eye(5, dtype=np.int64) * 2))
        g.add(Projection("q_r", "q", "r", kind="dense", weights=np.zeros((5, 1), np.int64)))
        src = "r"
    g.add(Projection("to_q", src, "q", kind="dense", weights=np.full((1, 5), 255), weight_exp=7))
    return g.validate()


def _events(chip, x, steps):
    from snnc.compiler.analysis.fidelity import _in_loops, overflow_events

    probes = [f"{p}/{v}" for p in chip.populations for v in "suv"] + [f"{p}/a" for p in chip.populations if p not in _in_loops(chip)]
    run = get_backend("sim").build(chip).run({"in": x}, steps=steps, probes=probes)
    return run, overflow_events(chip, run, {"in": x})


@pytest.mark.parametrize("looped", [False, True])
def test_wraps_are_exact(looped):
    active = [5, 4, 1, 5, 0, 4, 2, 5, 3, 0]  # synapses carrying a spike per step: 5 wraps, 4 does not
    x = np.zeros((1, len(active), 5))
    for t, k in enumerate(active):
        x[0, t, :k] = 1
    run, events = _events(_chip(looped), x, len(active) + 2)
    wrapped, above, below = events["q"]
    lag = 1 + looped  # input index t reaches q's u at index t + 1 (through r: t + 2)
    want = np.zeros(len(active) + 2, bool)
    want[[t + lag for t, k in enumerate(active) if k == 5]] = True
    assert np.array_equal(wrapped[0, :, 0], want) and int(wrapped.sum()) == 3
    # hand values: 5 x 32640 << 6 = 10444800 wraps to 10444800 - 2**24; 4 x 32640 << 6 stays
    u = run.probes["q/u"][0, :, 0]
    assert all(u[t + lag] == (10444800 - 2**24 if k == 5 else k * BIG << 6) for t, k in enumerate(active))
    assert not above.any() and not below.any()
    if looped:
        assert not events["r"][0].any()
        with pytest.raises(BackendError, match="feed-forward populations only"):  # the loop's sums stay in the kernel
            get_backend("sim").build(_chip(looped)).run({"in": x}, probes=["q/a"])
    # the old heuristic (|u jump| > 2**23) misses the first wrap (0 -> -6332416) and flags a 4-spike step
    jumps = np.abs(np.diff(u.astype(np.int64), prepend=0)) > 2**23
    assert not np.array_equal(jumps, want)


def test_loop_replay_is_skipped_only_where_no_wrap_is_possible(monkeypatch):
    """A looped population's sums come from a replay of its loop, unless a bound (|W| x |messages|)
    proves its u cannot have wrapped; both ways give the same events."""
    import snnc.compiler.analysis.fidelity as F
    from snnc.backends.sim.plan import Plan

    chip = _chip(looped=True)
    for active, free in (([4, 4, 1, 4, 0, 3], True), ([5, 4, 1], False)):  # 4 x 32640 << 6 < 2**23 <= 5 x ...
        x = np.zeros((1, len(active), 5))
        for t, k in enumerate(active):
            x[0, t, :k] = 1
        run, events = _events(chip, x, len(active) + 2)
        assert F._wrap_free(chip, "q", run, {"in": x}, Plan(chip)) is free
        with monkeypatch.context() as m:
            m.setattr(F, "_wrap_free", lambda *args: False)
            _, replayed = _events(chip, x, len(active) + 2)
        for name in events:
            assert all(np.array_equal(a, b) for a, b in zip(events[name], replayed[name])), (active, name)
        assert int(events["q"][0].sum()) == active.count(5)


def test_saturation_events_are_exact_even_where_a_spike_resets_v():
    """4 x (128 << 7) << 6 = 2**22 per driven step into v without leak: v passes V_MAX at the 2nd
    driven step. Without reset v stays clipped (one event per further driven step); with reset to
    zero the clipped v spikes and is reset, so the recorded v never shows the ceiling (every 2nd
    step clips). The inhibited mirror neuron never fires, so it clips at -V_MAX in both modes."""
    from snnc.ir.chip import ChipGraph, InputPopulation, Population, Projection

    steps = 7
    x = np.ones((1, steps, 4))
    for mode, want in (("none", steps - 1), ("zero", steps // 2)):
        g = ChipGraph()
        g.add(InputPopulation("in", (4,)))
        g.add(Population("q", (1,), du=4095, dv=0, vth=VTH_MAX, reset_mode=mode))
        g.add(Population("n", (1,), du=4095, dv=0, vth=VTH_MAX, reset_mode=mode))  # the mirror image: floor
        g.add(Projection("pos", "in", "q", kind="dense", weights=np.full((1, 4), 128), weight_exp=7))
        g.add(Projection("neg", "in", "n", kind="dense", weights=np.full((1, 4), -128), weight_exp=7))
        run, events = _events(g.validate(), x, steps + 1)
        assert int(events["q"][1].sum()) == want and not events["q"][2].any() and not events["q"][0].any(), mode
        assert int(events["n"][2].sum()) == steps - 1 and not events["n"][1].any(), mode  # never fires: never reset
        v = run.probes["q/v"][0, :, 0]
        if mode == "zero":  # what the recorded v shows: never the ceiling
            assert not np.any(v >= SPECS["v"].hi) and int(run.probes["q/s"].sum()) == want
        else:
            assert int(np.sum(v >= SPECS["v"].hi)) == want


# -- the guard's float side is the reference model ---------------------------------------------------
def _float_side_cases():
    yield "healthy", net(), None
    yield "tiny", net(w1=1e-12), None
    yield "saturating", net(w1=50.0, mode="none"), None
    yield "dead", net(w2=-3.0), None
    yield "zero_threshold", net(vth=0.0, vth2=1.0), None
    yield "subtract", net(mode="subtract"), None
    yield "readout", readout_net(), None
    for path in ("lif/lif_norse.nir", "braille/braille_noDelay_bias_zero.nir", "cnn/cnn_sinabs.nir"):
        yield path, str(REFDATA / path), None
    yield "braille + calibration", str(REFDATA / "braille/braille_noDelay_bias_zero.nir"), np.load(REFDATA / "braille/sample0_input.npy")


def readout_net() -> nir.NIRGraph:
    """input -> Affine -> LIF -> Affine -> LI: a graded (voltage) output, measured as trace_error."""
    rng = np.random.default_rng(2)
    return nir.NIRGraph.from_list(
        nir.Affine(np.abs(rng.normal(0, 1, (8, 10))) * 3, np.zeros(8)),
        nir.LIF(tau=np.full(8, 2e-3), r=np.ones(8), v_leak=np.zeros(8), v_threshold=np.ones(8), metadata={"reset_mode": "zero"}),
        nir.Affine(rng.normal(0, 1, (3, 8)), np.zeros(3)),
        nir.LI(tau=np.full(3, 5e-3), r=np.ones(3), v_leak=np.full(3, 0.5)),
    )


def test_float_side_equals_the_reference_backend():
    """The guard runs the float model as the quantizer's netlist (`simulate`, layer at a time for a
    feed-forward network); on every model this file builds it gives the reference backend's spikes
    exactly and its voltages to rounding, so the guard measures against the golden model."""
    from snnc.compiler.analysis.fidelity import _float_output, _float_series
    from snnc.compiler.passes.netlist import lower, simulate

    for label, model, calib in _float_side_cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = compile(model, calibrate=calib, guard=False)
        net_ = lower(result.graph)
        shapes = {n: p.shape for n, p in net_.pops.items() if p.kind == "input"}
        data = generated_input(shapes, steps=40) if calib is None else {next(iter(shapes)): calib[None]}
        floats = simulate(net_, data)
        names = [n for n, p in net_.pops.items() if p.kind == "neuron" and n in result.source.nodes]
        ref = get_backend("reference").build(result.source, dt=result.dt).run(data, probes=names)
        spiking = [n for n in names if n in floats.resets]
        assert spiking, label
        for n in spiking:
            assert np.array_equal(_float_series(net_, floats, n), ref.probes[n]), (label, n)
        for port in ref.outputs:
            assert np.allclose(_float_output(net_, floats, port), ref.outputs[port], rtol=1e-9, atol=1e-9), (label, port)


def test_graded_output_trace_error_against_the_reference():
    result, _ = guarded(readout_net())
    m = result.fidelity.layers[result.chip.outputs["output"].population]
    # independent: the chip's aligned float-unit output (CompileResult.run) against the reference backend
    data = generated_input({"input": (10,)}, steps=result.fidelity.steps)
    want = get_backend("reference").build(result.source, dt=result.dt).run(data).outputs["output"]
    got = result.run(data).outputs["output"]
    expect = np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want**2))
    assert m["trace_error"] == pytest.approx(expect, rel=1e-9) and 0 < m["trace_error"] < DEFAULT_TOLERANCE["trace_error"]
