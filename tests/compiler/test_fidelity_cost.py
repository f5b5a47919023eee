"""What the fidelity guard skips to stay cheap, it may skip only where the skipped work provably finds
nothing: the magnitude bound that spares `step_overflows` is checked against `step_overflows` itself."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from snnc.compiler.analysis import fidelity as F
from snnc.compiler.pipeline import compile
from snnc.ir.fixed_point.neuron import NeuronState, step_overflows
from snnc.ir.fixed_point.units import V_MAX


def _case(rng, batch=2, steps=6, n=5):
    """Recorded states, input sums and parameters whose magnitudes straddle the wrap and clip limits."""
    def spread(top):
        return rng.integers(-top, top + 1, (batch, steps, n)) if top else np.zeros((batch, steps, n), np.int64)

    u_top = int(2 ** rng.uniform(14, 23.2))
    a_top = int(2 ** rng.uniform(8, 17.5))
    v_top = int(2 ** rng.uniform(14, 23.1))
    u, v, a = spread(u_top), np.clip(spread(v_top), -V_MAX, V_MAX), spread(a_top)
    bias = rng.integers(-2**12, 2**12, n)
    vth = rng.integers(0, 2**17, n) << 6
    return u, v, a, bias, vth


@pytest.mark.parametrize("mode", ["zero", "subtract", "none"])
def test_overflow_free_bound_never_hides_an_event(mode):
    """Wherever the bound says no step can wrap or clip, the exact check finds no event; the bound
    is tight enough to hold on a fair share of cases near the limits."""
    rng = np.random.default_rng({"zero": 1, "subtract": 2, "none": 3}[mode])
    free = 0
    for _ in range(600):
        u, v, a, bias, vth = _case(rng)
        spiked = rng.random(u.shape) < 0.3
        du, dv = rng.integers(0, 4096, u.shape[2]), rng.integers(0, 4096, u.shape[2])
        events = step_overflows(NeuronState(u=u, v=v, spiked=spiked), a, du=du, dv=dv, bias=bias, vth_e=vth,
                                kind="lif", reset_mode=mode)
        if F._overflow_free(u, v, a, du, dv, bias, vth if mode == "subtract" else 0):
            free += 1
            assert not any(e.any() for e in events)
    assert 60 < free < 540  # both outcomes occur, so the assertion above was exercised


def test_healthy_model_skips_the_exact_check_and_a_saturating_one_does_not(monkeypatch):
    """The healthy test network takes the shortcut for every layer (its u and v stay far from the
    limits); a network that saturates still runs the exact check and is still named."""
    from test_fidelity import net

    calls = []
    original = F._overflow_free
    monkeypatch.setattr(F, "_overflow_free", lambda *a: calls.append(original(*a)) or calls[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        healthy = compile(net())
        assert calls and all(calls) and healthy.fidelity.ok
        calls.clear()
        saturating = compile(net(w1=50.0, mode="none"))
    assert not all(calls)
    assert any(b.check == "saturation" for b in saturating.fidelity.breaches)


def _counting_float_runs(monkeypatch) -> list:
    """Count the float model's runs (FloatModel.run calls)."""
    from snnc.ir.float_model import FloatModel

    calls: list = []
    original = FloatModel.run
    monkeypatch.setattr(FloatModel, "run", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    return calls


def _report(report) -> dict:
    """A FidelityReport's content but its time."""
    d = report.to_dict()
    d.pop("seconds")
    return d


def test_guard_reuses_the_quantizers_float_run_only_on_its_own_inputs(monkeypatch):
    """On the quantizer's own calibration data the guard takes the quantizer's float run, handed over
    by the compile (one float run per compile), and reports what a float run of its own gives; on a
    slice of it (the guard's first MAX_SAMPLES samples) it runs its own. The handoff lives for the
    compile only."""
    from test_fidelity import net

    from snnc.compiler.passes import quantize

    assert quantize.HANDOFF_SAMPLE_STEPS >= F.MAX_SAMPLE_STEPS  # any slice the guard runs may be handed over
    x = (np.random.default_rng(3).random((2, 40, 10)) < 0.3).astype(np.float64)
    calls = _counting_float_runs(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compile(net(), calibrate=x)
        assert len(calls) == 1  # the quantizer's run, reused by the guard
        assert all(not rec.handoff for rec in result.records)  # dropped when compile returned
        alone = F.check_fidelity(result, x, assumptions=result.assumptions)  # nothing handed over: its own float run
        assert len(calls) == 2
        assert _report(result.fidelity) == _report(alone)
        many = np.concatenate([x] * 5)  # 10 samples: the guard checks the first 8, not the quantizer's inputs
        calls.clear()
        compile(net(), calibrate=many)
    assert len(calls) == 2


@pytest.mark.parametrize("change", ["none", "same values, other dtype", "input value", "fewer steps", "another view", "no run"])
def test_the_handed_over_run_is_taken_only_for_the_same_run(change):
    """_quantizers_run gives the quantizer's run only to a guard that would compute the very same run:
    the same lowered view, inputs equal value for value and shape for shape."""
    from test_fidelity import net

    from snnc.compiler.passes import netlist

    graph = compile(net(), guard=False).graph  # the canonical graph the quantizer lowered
    lowered = netlist.lower(graph)
    x = {"input": (np.random.default_rng(4).random((1, 30, 10)) < 0.3).astype(np.float64)}
    run = netlist.simulate(lowered, x)
    handoff = {"net": lowered, "float_run": (x, run)}
    y, view = dict(x), lowered
    if change == "same values, other dtype":
        y["input"] = x["input"].astype(bool)
    elif change == "input value":
        y["input"] = x["input"].copy()
        y["input"][0, 5, 2] = 1 - y["input"][0, 5, 2]
    elif change == "fewer steps":
        y["input"] = x["input"][:, :29]
    elif change == "another view":
        view = netlist.lower(graph)
    elif change == "no run":
        del handoff["float_run"]
    taken = F._quantizers_run(handoff, view, y)
    assert (taken is run) == (change in ("none", "same values, other dtype"))
    if change == "input value":  # and taking it would have been wrong: the guard's own run differs
        own = netlist.simulate(view, y, ranges=False)
        assert not all(np.array_equal(own.outputs[n], run.outputs[n]) for n in run.outputs)
