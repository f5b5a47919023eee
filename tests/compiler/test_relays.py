"""Non-spiking state feeding other layers (issue 13): leaky integrators become relay populations
that send their voltage as a graded spike. LI -> LI cascades, LI -> Linear -> LIF, CubaLI and I
sources and an LMU-style self-recurrent linear memory compile, follow the float model, and run
identically on sim and Lava."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.backends.base import get_backend
from snnc.compiler.pipeline import compile

N_IN, H = 5, 8


def li(n, tau, leak=0.0):
    return nir.LI(tau=np.full(n, tau), r=np.ones(n), v_leak=np.full(n, leak))


def graph(kind: str, seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    aff = lambda o, i, s=1.0, b=0.0: nir.Affine(rng.normal(0, s, (o, i)), np.full(o, b))  # noqa: E731
    lif = nir.LIF(tau=np.full(4, 1e-3), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.full(4, 0.05), v_reset=np.zeros(4),
                  metadata={"reset_mode": "zero"})
    first = {"li": li(H, 5e-4, 0.1), "cubali": nir.CubaLI(tau_syn=np.full(H, 3e-4), tau_mem=np.full(H, 1e-3), r=np.ones(H),
                                                            v_leak=np.zeros(H), w_in=np.ones(H)),
             "i": nir.I(r=np.full(H, 0.05)), "lmu": li(H, 2e-3)}[kind]
    nodes = {"in": nir.Input(np.array([N_IN])), "fc1": aff(H, N_IN), "mem": first, "fc2": aff(H, H), "li2": li(H, 1e-3),
             "fc3": aff(4, H, 2.0, 0.05), "lif": lif, "out": nir.Output(np.array([4])), "out_li": nir.Output(np.array([H]))}
    edges = [("in", "fc1"), ("fc1", "mem"), ("mem", "fc2"), ("fc2", "li2"), ("li2", "fc3"), ("fc3", "lif"), ("lif", "out"),
             ("li2", "out_li")]
    if kind == "lmu":  # a linear memory: the state feeds back into itself through a rotation-like map
        q, _ = np.linalg.qr(rng.normal(size=(H, H)))
        nodes["rec"] = nir.Affine(0.5 * q, np.zeros(H))
        edges += [("mem", "rec"), ("rec", "mem")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("kind", ["li", "cubali", "i", "lmu"])
@pytest.mark.parametrize("batch", [1, 3])
def test_relayed_state_follows_the_float_model(kind, batch):
    g = graph(kind)
    x = (np.random.default_rng(batch).random((batch, 200, N_IN)) < 0.3).astype(float)
    ref = get_backend("reference").build(g).run(x)
    result = compile(g, calibrate=x)
    relays = [p for p in result.chip.populations.values() if p.model == "relay"]
    assert {p.name for p in relays} == {"mem", "li2"}
    assert all(q.num_message_bits > 0 for q in result.chip.projections.values() if q.src in {"mem", "li2"})
    sim = result.run(x, steps=x.shape[1] + result.time_shift, raw=True)
    scale = np.asarray(result.chip.meta["output_scale"]["out_li"])
    offset = np.asarray(result.chip.meta["output_offset"]["out_li"])
    trace = result.align(sim.outputs["out_li"], output="out_li")[:, : x.shape[1]] * scale + offset
    nrmse = np.sqrt(np.mean((trace - ref.outputs["out_li"]) ** 2)) / np.std(ref.outputs["out_li"])
    spikes = result.align(sim.outputs["out"], output="out")[:, : x.shape[1]]
    corr = np.corrcoef(spikes.sum(axis=1).ravel(), ref.outputs["out"].sum(axis=1).ravel())[0, 1]
    print(f"{kind}, batch {batch}: relayed trace NRMSE {nrmse:.4f}, output spike-count correlation {corr:.4f}")
    assert ref.outputs["out"].sum() > 20 and nrmse < 0.05 and corr >= 0.95


def test_a_self_fed_integrator_needs_calibration():
    with pytest.raises(Exception, match="calibrat"):
        compile(graph("lmu"))


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["li", "lmu"])
def test_relays_run_identically_on_lava(kind):
    g = graph(kind)
    x = (np.random.default_rng(4).random((1, 50, N_IN)) < 0.3).astype(float)
    result = compile(g, calibrate=x)
    sim, lava = result.run(x, backend="sim"), result.run(x, backend="lava")
    for k in sim.outputs:
        assert np.array_equal(sim.outputs[k], lava.outputs[k]), k
