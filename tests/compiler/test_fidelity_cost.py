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
