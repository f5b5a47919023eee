"""Resonate-and-fire (RF / RF_IZ) `.net` files: written by lava-dl slayer's own `block.rf` / `block.rf_iz`
(and `block.adrf`) export_hdf5, run by lava-dl netx in Lava fixed_pt (ComplexDense -> Lava RF / RF_IZ),
and by snnc's sim and lava backends: every output spike at every step must be equal. Also the
layers netx cannot build, refused with an snnc error naming the layer and the key."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("lava.lib.dl.netx", reason="lava-dl 0.6.0 is installed by `make venv`")

import lavadl_oracle as oracle  # noqa: E402

from snnc.backends.base import get_backend  # noqa: E402
from snnc.compiler.frontends.netx import load_netx  # noqa: E402
from snnc.ir.errors import ModelFileError, UnsupportedNodeError  # noqa: E402
from snnc.ir.reset_mode import AssumptionWarning  # noqa: E402

pytestmark = pytest.mark.lava
STEPS = 48


def _rf(module: str, n_in: int, n_out: int, *, seed: int, threshold=0.1, period=10, decay=0.1, weight_scale=4, **kw):
    import torch

    torch.manual_seed(seed)
    params = dict(threshold=threshold, period=period, decay=decay, **kw)
    if module == "adrf":
        params.update(threshold_step=0.05, threshold_decay=0.1, refractory_decay=0.1)
    return getattr(oracle._slayer().block, module).Dense(params, n_in, n_out, weight_scale=weight_scale)


def _input(n: int, seed: int, graded: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(-200, 200, (STEPS, n)) if graded else (rng.random((STEPS, n)) < 0.4).astype(np.int64)
    x[STEPS - 12:] = 0  # the resonators ring on without input
    return x.astype(np.int32)


def _equal_to_netx(path, x, *, input_message_bits=0, **load_kw):
    ref = oracle.run_netx(path, x, input_message_bits=input_message_bits)
    g = load_netx(path, input_message_bits=input_message_bits or None, **load_kw)
    for backend in ("sim", "lava"):
        out = get_backend(backend).build(g).run({"input": x[None]}).outputs["output"][0]
        np.testing.assert_array_equal(out, ref, err_msg=backend)
    return g, ref


@pytest.mark.parametrize("module, model", [("rf", "rf"), ("rf_iz", "rf_iz")])
def test_rf_networks_equal_lavadl(tmp_path, module, model):
    """Two resonator layers (binary input): the phase-locked RF and the Izhikevich RF_IZ."""
    blocks = [_rf(module, 8, 6, seed=1), _rf(module, 6, 4, seed=2, period=7, decay=0.05, weight_scale=8)]
    path = oracle.export(blocks, tmp_path / f"{module}.net", (8,))
    g, ref = _equal_to_netx(path, _input(8, 0))
    assert [p.model for p in g.populations.values()] == [model, model]
    assert [p.port for p in g.projections.values()] == ["a_real_in", "a_imag_in"] * 2
    assert ref.sum() >= 8
    # the input matters: another input gives another netx output, which snnc follows
    _equal_to_netx(path, _input(8, 1))


def test_per_neuron_decays_graded_input_and_cuba_neighbours_equal_lavadl(tmp_path):
    """CUBA dense -> RF with per-neuron periods and decays (slayer's shared_param=False) -> CUBA dense
    readout, and an RF first layer fed graded input (netx's input_message_bits)."""
    blocks = [oracle.cuba_dense(8, 10, seed=3, threshold=0.5),
              _rf("rf", 10, 6, seed=4, shared_param=False, period=(5, 20), decay=(0.02, 0.2), weight_scale=8),
              oracle.cuba_dense(6, 3, seed=5, threshold=0.3, weight_scale=6)]
    path = oracle.export(blocks, tmp_path / "mixed.net", (8,))
    g, ref = _equal_to_netx(path, _input(8, 2))
    assert np.ndim(g.populations["layer1"].sin_decay) == 1 and len(np.unique(g.populations["layer1"].sin_decay)) > 1
    assert [p.model for p in g.populations.values()] == ["lif", "rf", "lif"]
    assert ref.sum() >= 5
    graded = oracle.export([_rf("rf_iz", 8, 5, seed=6, threshold=0.5, weight_scale=1)], tmp_path / "graded.net", (8,))
    g, ref = _equal_to_netx(graded, _input(8, 3, graded=True), input_message_bits=9)
    assert [p.num_message_bits for p in g.projections.values()] == [9, 9] and ref.sum() >= 5


def test_adaptive_rf_runs_as_netx_runs_it(tmp_path):
    """slayer's ADRF (adaptive threshold): netx builds a plain RF and drops thDecay/refDecay/vThStep;
    snnc says so and runs the same network."""
    path = oracle.export([_rf("adrf", 6, 4, seed=7, weight_scale=8)], tmp_path / "adrf.net", (6,))
    with pytest.warns(AssumptionWarning, match="thDecay, refDecay, vThStep"):
        _equal_to_netx(path, _input(6, 4))


def _edit(path, dst, fn):
    import shutil

    shutil.copy(path, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


@pytest.fixture(scope="module")
def rf_file(tmp_path_factory):
    return oracle.export([_rf("rf", 6, 4, seed=8), _rf("rf_iz", 4, 3, seed=9)], tmp_path_factory.mktemp("rf") / "rf.net", (6,))


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize("edit, error, words", [
    (lambda f: f.__delitem__("layer/1/weight/imag"), ModelFileError, ["layer 1", "weight/imag"]),
    (lambda f: _replace(f, "layer/0/neuron/sinDecay", np.array([100, 200])), ModelFileError, ["layer 0", "sinDecay", "1 or 4"]),
    (lambda f: _replace(f, "layer/1/neuron/cosDecay", -600), Exception, ["layer 1", "cosDecay", "12 bits"]),
    (lambda f: _replace(f, "layer/1/type", np.array([b"conv"], "S10")), UnsupportedNodeError, ["layer 1", "neuron.type", "a_real_in"]),
    (lambda f: _replace(f, "layer/1/type", np.array([b"dense_comp"], "S10")), UnsupportedNodeError, ["layer 1", "dense_comp"]),
    (lambda f: _replace(f, "layer/0/neuron/type", b"CUBA"), UnsupportedNodeError, ["layer 0", "weight/imag", "RF"]),
    (lambda f: _replace(f, "layer/1/neuron/vThMant", 2**17), Exception, ["layer 1", "vThMant"]),
])
def test_malformed_rf_layers_are_named(rf_file, tmp_path, edit, error, words):
    with pytest.raises(error) as err:
        load_netx(_edit(rf_file, tmp_path / "bad.net", edit))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_ignored_bias_and_delay_are_said(rf_file, tmp_path):
    def add(f):
        f.create_dataset("layer/0/bias", data=np.arange(4))
        f.create_dataset("layer/0/delay", data=np.ones(4))
    with pytest.warns(AssumptionWarning, match="ComplexDense"):
        g = load_netx(_edit(rf_file, tmp_path / "b.net", add))
    assert not np.any(g.populations["layer0"].bias_mant) and all(p.max_delay == 0 for p in g.projections.values())
