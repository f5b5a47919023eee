"""CUBA layers with refDelay > 1: read as lava-dl netx 0.6 runs them (refDelay ignored, plain LIF)
with a warning, or, with `refractory=True` / `--refractory`, as Lava's LIFRefractory."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import lava_oracle  # noqa: F401,I001  (imports Lava before numba's threading layer starts)
import lavadl_oracle as oracle
from test_netx import write_dense_net

from snnc.backends.base import get_backend
from snnc.compiler.frontends.netx import load_netx
from snnc.ir.errors import ParameterError
from snnc.ir.reset_mode import AssumptionWarning

STEPS = 30


@pytest.fixture
def ref_net(tmp_path):
    """input (10) -> dense (6, refDelay 3, no leak, strong drive) -> dense (3); and its input."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.integers(0, 60, size=(6, 10)), rng.integers(0, 60, size=(3, 6))
    path = tmp_path / "r.net"
    write_dense_net(path, w1, w2, np.zeros(6), np.zeros(3), None, 10, v_decay=(0, 0), vth=(30, 30))
    with h5py.File(path, "r+") as f:
        f["layer/1/neuron/refDelay"][()] = 3
    x = (rng.random((1, STEPS, 10)) < 0.5).astype(np.int64)
    return path, x


def _run(graph, x):
    return get_backend("sim").build(graph).run({"input": x}, probes=["layer1/s", "layer1/v"]).probes


def test_default_runs_as_netx_with_a_warning(ref_net):
    path, x = ref_net
    with pytest.warns(AssumptionWarning, match=r"layer 1.*refDelay=3 is ignored by lava-dl netx 0.6.*--refractory"):
        g = load_netx(path)
    assert all(p.model == "lif" for p in g.populations.values())
    with h5py.File(path, "r+") as f:  # the same file with refDelay 1 runs identically
        f["layer/1/neuron/refDelay"][()] = 1
    plain = load_netx(path)
    assert np.array_equal(_run(g, x)["layer1/s"], _run(plain, x)["layer1/s"])


def test_refractory_option_holds_v_after_each_spike(ref_net):
    """refDelay 3 = refractory period 2: after a spike, v stays 0 and the neuron silent for 2 steps
    (though its input keeps it above threshold otherwise: the plain reading fires there)."""
    path, x = ref_net
    with pytest.warns(AssumptionWarning, match=r"layer 1.*refDelay=3 compiled as a refractory period of 2 steps"):
        g = load_netx(path, refractory=True)
    pop = g.populations["layer1"]
    assert pop.model == "lif_refractory" and pop.refractory_period == 2
    rec = _run(g, x)
    s, v = rec["layer1/s"][0], rec["layer1/v"][0]
    assert s.sum() > 5
    for t, j in zip(*np.nonzero(s)):
        held = slice(t + 1, min(t + 3, STEPS))
        assert not s[held, j].any() and not v[held, j].any(), (t, j)
    with pytest.warns(AssumptionWarning):
        plain = _run(load_netx(path), x)["layer1/s"][0]
    assert not np.array_equal(plain, s)


def test_cli_refractory_flag(ref_net, tmp_path, capsys):
    from snnc.compiler.cli import main

    path, x = ref_net
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--raw", "--out", str(tmp_path / "o.npz"), "--refractory"])
    assert code == 0, capsys.readouterr().err
    want = get_backend("sim").build(load_netx(path, refractory=True)).run({"input": x}).output
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["output"], want)
    capsys.readouterr()
    assert main(["inspect", str(path), "--refractory"]) == 0
    assert "lif_refractory (v held 2" in capsys.readouterr().out
    (tmp_path / "m.nir").write_bytes(b"")
    code = main(["run", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npz"), "--refractory"])
    err = capsys.readouterr().err
    assert code != 0 and "--refractory" in err and "only to lava-dl .net" in err


def test_refractory_and_reset_interval_are_one_error(ref_net):
    with pytest.raises(ParameterError, match="refractory and reset_interval"):
        load_netx(ref_net[0], refractory=True, reset_interval=5)


def test_refdelay_beyond_the_counter_is_an_error(ref_net):
    path, _ = ref_net
    with h5py.File(path, "r+") as f:
        f["layer/1/neuron/refDelay"][()] = 100
    with pytest.raises(ParameterError, match=r"layer 1.*refDelay.*1\.\.63"):
        load_netx(path, refractory=True)


@pytest.mark.lava
def test_default_equals_lavadl_netx_on_a_refdelay_file(tmp_path):
    """A lava-dl-written file whose first layer says refDelay 3: lava-dl netx itself runs it exactly
    as snnc's default reading does (refDelay ignored); the refractory reading differs."""
    blocks = [oracle.cuba_dense(16, 12, seed=1, weight_scale=3), oracle.cuba_dense(12, 5, seed=2)]
    path = oracle.export(blocks, tmp_path / "ref.net", (16,))
    with h5py.File(path, "r+") as f:
        f["layer/0/neuron/refDelay"][()] = 3
    spikes = (np.random.default_rng(4).random((40, 16)) < 0.4).astype(np.int32)
    ref = oracle.run_netx(path, spikes)
    with pytest.warns(AssumptionWarning, match="refDelay=3"):
        g = load_netx(path)
    out = get_backend("sim").build(g).run({"input": spikes[None]}).outputs["output"][0]
    assert ref.sum() > 5
    np.testing.assert_array_equal(out, ref)
    refractory = get_backend("sim").build(load_netx(path, refractory=True)).run({"input": spikes[None]}).outputs["output"][0]
    assert not np.array_equal(refractory, ref)
