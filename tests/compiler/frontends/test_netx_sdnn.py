"""Sigma-delta (SDNN) `.net` files: written by lava-dl slayer's `block.sigma_delta.*` export_hdf5, run by
lava-dl netx in Lava fixed_pt (Delta input, SigmaDelta hidden, Sigma output), and by snnc's sim and
lava backends: every output value at every step must be equal."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lava.lib.dl.netx", reason="lava-dl 0.6.0 is installed by `make venv`")

import lavadl_oracle as oracle  # noqa: E402

from snnc.backends.base import get_backend  # noqa: E402
from snnc.compiler.frontends.netx import load_netx  # noqa: E402
from snnc.ir.errors import ParameterError  # noqa: E402
from snnc.ir.reset_mode import AssumptionWarning  # noqa: E402

pytestmark = pytest.mark.lava


def _run(graph, x, backend, probes=()):
    return get_backend(backend).build(graph).run({"input": x[None]}, probes=probes)


def test_sdnn_dense_network_equals_lavadl(tmp_path):
    """Delta input -> SigmaDelta (with bias) -> SigmaDelta -> Sigma output, graded input values."""
    blocks = [
        oracle.sdnn_input(),
        oracle.sdnn_dense(10, 8, seed=1, bias_scale=0.5),
        oracle.sdnn_dense(8, 6, seed=2, threshold=0.3),
        oracle.sdnn_dense(6, 3, seed=3, output=True),
    ]
    path = oracle.export(blocks, tmp_path / "sdnn.net", (10,))
    x = np.random.default_rng(0).integers(-300, 300, (24, 10)).astype(np.int32)
    x[12:] = x[11]  # a constant input: the deltas stop, the outputs (sigma) hold
    ref = oracle.run_netx(path, x)
    g = load_netx(path)
    assert [p.model for p in g.populations.values()] == ["delta", "sigma_delta", "sigma_delta", "sigma"]
    assert np.any(g.populations["layer1"].act_bias)  # lava-dl wrote a bias, and it is used
    assert [p.num_message_bits for p in g.projections.values()][1:] == [16, 16, 16]  # netx's default messageBits
    assert np.count_nonzero(ref) > 30 and len(np.unique(ref)) > 20  # graded, varied outputs
    for backend in ("sim", "lava"):
        np.testing.assert_array_equal(_run(g, x, backend).outputs["output"][0], ref, err_msg=backend)
    # the input matters: another input gives another netx output, which snnc follows
    x2 = x.copy()
    x2[3] += 50
    ref2 = oracle.run_netx(path, x2)
    assert not np.array_equal(ref, ref2)
    np.testing.assert_array_equal(_run(g, x2, "sim").outputs["output"][0], ref2)


def test_sdnn_hidden_states_equal_lava(tmp_path):
    """Every hidden message and sigma/act state of a lava-dl SDNN file: sim equals Lava's sdn processes."""
    blocks = [oracle.sdnn_input(), oracle.sdnn_dense(6, 5, seed=4, bias_scale=1.0), oracle.sdnn_dense(5, 2, seed=5, output=True)]
    g = load_netx(oracle.export(blocks, tmp_path / "s.net", (6,)))
    x = np.random.default_rng(1).integers(-500, 500, (16, 6)).astype(np.int32)
    probes = ["layer0", "layer1", "layer1/u", "layer1/v", "layer2/u"]
    sim, lava = _run(g, x, "sim", probes), _run(g, x, "lava", probes)
    for key in probes:
        np.testing.assert_array_equal(sim.probes[key], lava.probes[key], err_msg=key)
    assert np.any(sim.probes["layer1"]) and np.any(sim.probes["layer1/v"] != sim.probes["layer1/u"])  # ReLU and bias acted


def test_sdnn_conv_network_equals_lavadl(tmp_path):
    """Delta image input -> sigma-delta conv -> flatten -> Sigma output (lava-dl's (W, H, C) layout)."""
    blocks = [oracle.sdnn_input(), oracle.sdnn_conv(2, 3, 3, padding=1, seed=6, weight_scale=3), oracle.flatten(),
              oracle.sdnn_dense(3 * 5 * 5, 4, seed=7, output=True)]
    path = oracle.export(blocks, tmp_path / "c.net", (2, 5, 5))
    x = np.random.default_rng(2).integers(0, 200, (16, 2, 5, 5)).astype(np.int32)  # [T, C, H, W]
    ref = oracle.run_netx(path, x.transpose(0, 3, 2, 1))
    assert np.count_nonzero(ref) > 10
    g = load_netx(path)
    for backend in ("sim", "lava"):
        np.testing.assert_array_equal(_run(g, x, backend).outputs["output"][0], ref, err_msg=backend)


def test_sdnn_without_input_layer_takes_graded_messages(tmp_path):
    """PilotNet's way (netx skips the input layer, an encoder sends delta messages): the first
    SigmaDelta layer receives `input_message_bits`-bit graded messages straight from the input."""
    blocks = [oracle.sdnn_dense(8, 6, seed=8, bias_scale=0.3), oracle.sdnn_dense(6, 3, seed=9, output=True)]
    path = oracle.export(blocks, tmp_path / "n.net", (8,))
    x = np.random.default_rng(3).integers(-2000, 2000, (20, 8)).astype(np.int32)
    ref = oracle.run_netx(path, x, input_message_bits=16)
    g = load_netx(path, input_message_bits=16)
    assert np.count_nonzero(ref) > 10
    for backend in ("sim", "lava"):
        np.testing.assert_array_equal(_run(g, x, backend).outputs["output"][0], ref, err_msg=backend)


def test_sdnn_reset_interval_is_ignored_as_netx_does(tmp_path):
    """netx warns and ignores reset_interval on sigma-delta layers; snnc says so and keeps them."""
    path = oracle.export([oracle.sdnn_input(), oracle.sdnn_dense(4, 2, seed=1, output=True)], tmp_path / "r.net", (4,))
    with pytest.warns(AssumptionWarning, match="sigma-delta"):
        g = load_netx(path, reset_interval=4)
    assert [p.model for p in g.populations.values()] == ["delta", "sigma"]


def test_sdnn_delta_input_layer_takes_no_input_bias(tmp_path):
    path = oracle.export([oracle.sdnn_input(), oracle.sdnn_dense(4, 2, seed=1, output=True)], tmp_path / "b.net", (4,))
    with pytest.raises(ParameterError, match="no bias"):
        load_netx(path, input_bias=np.ones(4, np.int64))


def test_sdnn_chip_file_round_trips(tmp_path):
    """A compiled SDNN graph written as a chip NIR file reads back with every sigma-delta field, and runs the same."""
    from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
    from snnc.ir.graph import read_nir_file, write_nir

    blocks = [oracle.sdnn_input(), oracle.sdnn_dense(5, 4, seed=2, bias_scale=0.5), oracle.sdnn_dense(4, 2, seed=3, output=True)]
    g = load_netx(oracle.export(blocks, tmp_path / "s.net", (5,)))
    g.populations["layer1"].cum_error, g.populations["layer1"].act_mode = True, "unit"  # fields netx never sets
    write_nir(chip_to_nir(g), tmp_path / "chip.nir")
    back = chip_from_nir(read_nir_file(tmp_path / "chip.nir"))
    for name, pop in g.populations.items():
        other = back.populations[name]
        for field in ("model", "vth", "act_mode", "cum_error", "spike_exp", "state_exp"):
            assert getattr(other, field) == getattr(pop, field), (name, field)
        np.testing.assert_array_equal(other.act_bias, pop.act_bias)
    x = np.random.default_rng(4).integers(-400, 400, (12, 5))
    np.testing.assert_array_equal(_run(back, x, "sim").outputs["output"], _run(g, x, "sim").outputs["output"])

