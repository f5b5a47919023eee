"""snnc's `.net` writer against lava-dl itself: a chip graph written by `write_netx` and run by
lava-dl's netx in Lava fixed_pt gives, at every step, the spikes snnc's sim gives for the graph;
snnc's netx reader reads the file back to the same network; what netx cannot express is one snnc
error naming the construct."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("lava.lib.dl.netx", reason="lava-dl 0.6.0 is installed by `make venv`")

import lavadl_oracle as oracle  # noqa: E402
from netx_cases import assert_same_network, sim_outputs as _sim  # noqa: E402

from snnc.compiler.export.netx import netx_layers, write_netx  # noqa: E402
from snnc.compiler.frontends.netx import load_netx  # noqa: E402
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection  # noqa: E402
from snnc.ir.errors import SnncError, UnsupportedNodeError  # noqa: E402

pytestmark = pytest.mark.lava


# -- lava-dl's own files: read by snnc, written back by snnc, run by lava-dl -------------------------
@pytest.mark.parametrize("case", ["dense_delay", "recurrent", "conv"])
def test_lavadl_files_round_trip_through_the_writer(tmp_path, case):
    """lava-dl file -> snnc chip graph -> snnc's .net -> lava-dl netx: the spikes of the original
    file under netx at every step; the reader gives back the same network."""
    if case == "conv":
        blocks = [oracle.cuba_conv(2, 3, 3, padding=1, seed=3, weight_scale=3), oracle.flatten(), oracle.cuba_dense(3 * 36, 5, seed=4)]
        shape, kw, lava_kw = (2, 6, 6), {"input_shape": (2, 6, 6)}, {"input_shape": (6, 6, 2)}
    elif case == "recurrent":
        blocks = [oracle.cuba_dense(12, 10, seed=4, recurrent=True, weight_scale=3), oracle.cuba_dense(10, 4, seed=5)]
        shape, kw, lava_kw = (12,), {}, {}
    else:
        blocks = [oracle.cuba_dense(16, 12, seed=1, delay=True), oracle.cuba_dense(12, 6, seed=2, current_decay=0.1)]
        shape, kw, lava_kw = (16,), {}, {}
    original = oracle.export(blocks, tmp_path / "lavadl.net", shape)
    x = (np.random.default_rng(5).random((30, *shape)) < 0.3).astype(np.int32)
    lava_x = x if len(shape) == 1 else x.transpose(0, 3, 2, 1)
    ref = oracle.run_netx(original, lava_x, **lava_kw)
    assert ref.sum() > 3
    g = load_netx(original, **kw)
    options = write_netx(g, tmp_path / "snnc.net")
    assert options.input_message_bits == 0 and options.reset_interval is None
    np.testing.assert_array_equal(oracle.run_netx(tmp_path / "snnc.net", lava_x), ref)  # no input_shape: the file has it
    back = load_netx(tmp_path / "snnc.net")
    assert_same_network(g, back)
    np.testing.assert_array_equal(_sim(back, x)["output"][0], ref)


def test_input_layer_with_neurons_and_reset_schedule_round_trip(tmp_path):
    """An input layer (direct input) and netx's reset_interval: the writer returns the Network
    options; lava-dl runs the written file with them as snnc runs the graph."""
    blocks = [oracle.cuba_input(threshold=0.05, current_decay=0.5), oracle.cuba_dense(10, 8, seed=11, weight_scale=4, threshold=0.5),
              oracle.cuba_dense(8, 5, seed=12, threshold=0.5, weight_scale=4)]
    original = oracle.export(blocks, tmp_path / "in.net", (10,))
    g = load_netx(original, input_message_bits=0, reset_interval=7, reset_offset=1)
    options = write_netx(g, tmp_path / "snnc.net")
    assert options.network_kwargs() == {"input_message_bits": 0, "reset_interval": 7, "reset_offset": 1}
    x = (np.random.default_rng(2).random((28, 10)) < 0.6).astype(np.int32)
    ref = oracle.run_netx(tmp_path / "snnc.net", x, **options.network_kwargs())
    assert ref.sum() > 3
    np.testing.assert_array_equal(_sim(g, x)["output"][0], ref)
    assert_same_network(g, load_netx(tmp_path / "snnc.net", input_message_bits=0, reset_interval=7, reset_offset=1))


# -- chip graphs snnc builds: random netx-expressible networks ----------------------------------------
def _chain_graph(rng, sizes, *, graded_bits, weight_exp, delay, conv):
    g = ChipGraph()
    shape_in = (2, 5, 5) if conv else (sizes[0],)
    g.add(InputPopulation("x", shape_in, num_message_bits=graded_bits))
    src, src_shape = "x", shape_in

    def neurons(name, shape):
        return Population(name, shape, du=int(rng.integers(1024, 4096)), dv=int(rng.integers(0, 1024)), vth=int(rng.integers(5, 60)),
                          bias_mant=int(rng.integers(-3, 4)) * 8, bias_exp=3)

    if conv:
        geom = ConvGeometry(shape_in, (3, 5, 5), (3, 3), padding=(1, 1))
        g.add(neurons("c", (3, 5, 5)))
        g.add(Projection("x->c", "x", "c", rng.integers(-30, 81, (3, 2, 3, 3)), kind="conv", conv=geom,
                         num_message_bits=graded_bits))
        src, src_shape = "c", (3, 5, 5)
    for i, n in enumerate(sizes[1:]):
        name = f"h{i}"
        g.add(neurons(name, (n,)))
        n_in = int(np.prod(src_shape))
        w = rng.integers(-8, 21, (n, n_in)) * (1 if weight_exp >= 0 else 4)
        w[0, 0] = 15 if weight_exp >= 0 else 60  # never an all-zero layer
        d = np.repeat(rng.integers(0, 5, (n, 1)), n_in, axis=1) if delay and i == 0 else 0
        g.add(Projection(f"{src}->{name}", src, name, w, weight_exp=weight_exp, delay=d,
                         num_message_bits=graded_bits))  # graded from a LIF population: its 0/1 spikes, written binary
        src, src_shape = name, (n,)
    g.outputs["out"] = OutputPort(src)
    return g.validate()


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.tuples(st.integers(2, 12), st.integers(1, 10), st.integers(1, 6)),
    graded_bits=st.sampled_from([0, 4]),
    weight_exp=st.sampled_from([-2, 0, 1, 2]),
    delay=st.booleans(),
    conv=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_random_chip_graphs_run_on_lavadl_as_on_sim(tmp_path_factory, sizes, graded_bits, weight_exp, delay, conv, seed):
    """snnc-built chains (graded or binary input, graded projections from LIF layers, weight exponents,
    delays, conv -> flatten -> dense, biases with bias_exp 3): lava-dl netx runs the written file
    exactly as snnc's sim runs the graph."""
    rng = np.random.default_rng(seed)
    g = _chain_graph(rng, sizes, graded_bits=graded_bits, weight_exp=weight_exp, delay=delay, conv=conv)
    path = tmp_path_factory.mktemp("w") / "g.net"
    options = write_netx(g, path)
    shape = g.inputs["x"].shape
    high = 2 if not graded_bits else 16
    x = (rng.integers(0, high, (24, *shape)) * (rng.random((24, *shape)) < 0.5)).astype(np.int32)
    ref = oracle.run_netx(path, x if not conv else x.transpose(0, 3, 2, 1), **options.network_kwargs())
    np.testing.assert_array_equal(_sim(g, x)["out"][0], ref)
    assert ref.sum() > 0  # an active network: the equality is not between two silent runs
    assert_same_network(g, load_netx(path, input_message_bits=graded_bits))


# -- what netx cannot express ----------------------------------------------------------------------
def _small():
    g = ChipGraph()
    g.add(InputPopulation("x", (4,)))
    g.add(Population("a", (3,), du=100, dv=200, vth=50))
    g.add(Projection("x->a", "x", "a", np.arange(12).reshape(3, 4) - 5))
    g.outputs["out"] = OutputPort("a")
    return g


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda g: setattr(g.populations["a"], "reset_mode", "subtract"), ["population 'a'", "subtract"]),
        (lambda g: setattr(g.populations["a"], "vth", np.full(3, 50)), ["population 'a'.vth", "per-neuron"]),
        (lambda g: setattr(g.projections["x->a"], "weight_exp", 6), ["projection 'x->a'", "optimize_weight_bits"]),
        (lambda g: setattr(g.projections["x->a"], "weight_exp", -2), ["projection 'x->a'.weight_exp", "floors"]),
        (lambda g: setattr(g.projections["x->a"], "delay", np.arange(12).reshape(3, 4) % 3), ["projection 'x->a'.delay", "per-synapse"]),
        (lambda g: g.outputs.__setitem__("out", OutputPort("a", "v")), ["output 'out'", "spikes"]),
        (lambda g: (g.add(Population("b", (2,), vth=9)), g.add(Projection("x->b", "x", "b", np.ones((2, 4), np.int64)))),
         ["node 'x'", "chain"]),
        (lambda g: setattr(g.populations["a"], "bias_mant", 3), ["population 'a'.bias_mant", "bias_exp 6"]),
        (lambda g: (g.add(Population("r", (2,), vth=9, model="relay")), g.add(Population("b", (2,), vth=9)),
                    g.add(Projection("a->r", "a", "r", np.ones((2, 3), np.int64))),
                    g.add(Projection("r->b", "r", "b", np.ones((2, 2), np.int64), num_message_bits=16)),
                    g.outputs.__setitem__("out", OutputPort("b"))),
         ["population 'r'", "graded payloads", "lava-dl 0.6.0", "messageBits", "py_builder.py:403"]),
    ],
)
def test_what_netx_cannot_express_is_one_error_naming_it(tmp_path, edit, words):
    g = _small()
    netx_layers(g)  # the unedited network is expressible
    edit(g)
    with pytest.raises(UnsupportedNodeError) as err:
        write_netx(g, tmp_path / "bad.net")
    for word in words:
        assert word in str(err.value)
    assert not (tmp_path / "bad.net").exists()


def test_snntorch_model_compiled_by_snnc_is_written_or_refused_by_name(tmp_path):
    """A snnTorch model compiled by snnc: its 8-bit weights use weight_exp > 0 (thresholds need the
    range), which netx's weight fit cannot reproduce: the error names the projection."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snnc.compiler.frontends.torch import from_torch
    from snnc.compiler.pipeline import compile as snnc_compile

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 8), snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True),
                              torch.nn.Linear(8, 4), snn.Leaky(beta=0.8, reset_mechanism="zero", init_hidden=True, output=True))
    chip = snnc_compile(from_torch(net, torch.zeros(1, 12), dt=1e-4), dt=1e-4).chip
    with pytest.raises(SnncError) as err:
        write_netx(chip, tmp_path / "m.net")
    assert "projection" in str(err.value) or "population" in str(err.value)


def test_cli_compile_to_net_writes_what_lavadl_runs(tmp_path, capsys):
    """`snnc compile A.net -o B.net`: lava-dl netx runs B as it runs A; a graph netx cannot express
    (compiled from snnTorch with 8-bit weights and weight_exp > 0) is one error line, exit 2, no file."""
    from snnc.compiler.cli import main

    blocks = [oracle.cuba_dense(14, 9, seed=7, weight_scale=3), oracle.cuba_dense(9, 4, seed=8)]
    original = oracle.export(blocks, tmp_path / "a.net", (14,))
    assert main(["compile", str(original), "-o", str(tmp_path / "b.net")]) == 0, capsys.readouterr().err
    assert "netx.hdf5.Network(net_config=" in capsys.readouterr().out
    x = (np.random.default_rng(9).random((25, 14)) < 0.4).astype(np.int32)
    ref = oracle.run_netx(original, x)
    assert ref.sum() > 3
    np.testing.assert_array_equal(oracle.run_netx(tmp_path / "b.net", x), ref)

    g = _small()
    g.projections["x->a"].weight_exp = 6
    from snnc.ir.chip_nir import chip_to_nir
    from snnc.ir.graph import write_nir

    write_nir(chip_to_nir(g), tmp_path / "c.nir")
    code = main(["compile", str(tmp_path / "c.nir"), "-o", str(tmp_path / "c.net")])
    err = capsys.readouterr().err
    assert code == 2 and "projection 'x->a'" in err and "optimize_weight_bits" in err
    assert not (tmp_path / "c.net").exists()


# -- lava-dl 0.6.0 and a CUBA layer's messageBits ------------------------------------------------------
def test_lavadl_cannot_load_a_cuba_layers_message_bits(tmp_path):
    """Why the writer never writes `messageBits` on a CUBA layer (export.netx.LAVADL_MESSAGE_BITS):
    lava-dl 0.6.0 hands the next layer's synapse the HDF5 wrapper instead of the number, which Lava's
    builder cannot store (the run fails in Lava's runtime process and never returns, so it is not run
    here). When a lava-dl release reads the value, this fails and the writer can use it."""
    import h5py
    from lava.lib.dl import netx

    path = oracle.export([oracle.cuba_dense(6, 5, seed=1), oracle.cuba_dense(5, 3, seed=2)], tmp_path / "mb.net", (6,))
    with h5py.File(path, "a") as f:
        f["layer/0/neuron"].create_dataset("messageBits", data=4)
    net = netx.hdf5.Network(net_config=str(path))
    bits = net.layers[1].synapse.proc_params["num_message_bits"]
    assert type(bits).__name__ == "NetDict" and not isinstance(bits, (int, np.integer))
    with pytest.raises((TypeError, ValueError)):
        np.zeros(1, np.int32)[:] = bits  # what Lava's py_builder does with the Var's value
