"""Chip graphs through NIR: lossless round trip, float values equal to the integer model, errors.

The float expectations are computed here by hand from the documented mapping (forward Euler at
dt, input scaled by 2**(6 + weight_exp)), not by calling the module's own helpers.
"""
from __future__ import annotations

import json
import os

import h5py
import nir
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.chip_nir import DV0_TAU_STEPS, chip_from_nir, chip_to_nir, is_chip_nir
from snnc.ir.errors import ModelFileError, ParameterError, SnncError
from snnc.ir.graph import Graph, read_nir_file, write_nir


def full_graph() -> ChipGraph:
    """Every ChipGraph field with a non-default value somewhere."""
    rng = np.random.default_rng(7)
    g = ChipGraph(meta={
        "dt": 1e-3, "target": "loihi2", "time_shift": 3, "scales": {"conv1": 0.125, 1: "int key"},
        "tuple": (1, 2.5, "x", None), "array": np.arange(4, dtype=np.float32).reshape(2, 2), "np_scalar": np.int16(-7),
        "set": {3, 1}, "nan": float("nan"), "flag": True,
    })
    g.add(InputPopulation("in", (2, 5, 5)))
    g.add(InputPopulation("graded", (4,), num_message_bits=8))
    g.add(Population("conv1", (4, 3, 3), du=4095, dv=0, vth=10, bias_mant=np.arange(36).reshape(4, 3, 3) - 13, bias_exp=2,
                     meta={"source": ["n0", "n1"], "scale": np.float64(0.3)}))
    g.add(Population("fc", (6,), du=np.arange(6) * 100, dv=np.array([0, 1, 2, 4095, 100, 7]), vth=np.arange(1, 7),
                     model="lif_reset", reset_interval=16, reset_offset=5))
    g.add(Population("tern", (4,), du=17, dv=300, vth=3, model="ternary", vth_hi=9, vth_lo=-4))
    g.add(Population("bias_only", (2,), bias_mant=-4096, bias_exp=7, vth=2**17 - 1, reset_mode="subtract"))
    g.add(Population("relay", (3,), du=4095, dv=40, model="relay", relay_shift=5))
    g.add(Population("reset_v", (3,), vth=4, reset_mode="zero", v_reset=np.array([-9, 0, 70])))
    g.add(Population("free", (3,), vth=4, reset_mode="none"))
    w_conv = rng.integers(-64, 64, size=(4, 1, 3, 3)) * 2
    geometry = ConvGeometry((2, 5, 5), (4, 3, 3), (3, 3), stride=(2, 2), padding=(2, 2), dilation=(2, 2), groups=2)
    g.add(Projection("p_conv", "in", "conv1", w_conv, kind="conv", conv=geometry, meta={"src_node": "conv"}))
    g.add(Projection("p_dense", "conv1", "fc", rng.integers(-256, 256, size=(6, 36)), weight_exp=-3, num_weight_bits=6,
                     delay=rng.integers(0, 63, size=(6, 36))))
    g.add(Projection("p_sparse", "fc", "tern", sp.random(4, 6, density=0.5, random_state=1, data_rvs=lambda n: np.arange(1, n + 1) * 3),
                     kind="sparse", delay=5, weight_exp=7, num_weight_bits=3))
    g.add(Projection("p_graded", "graded", "fc", rng.integers(0, 200, size=(6, 4)), num_message_bits=8, weight_exp=2))
    g.add(Projection("p_rec", "tern", "tern", -np.eye(4, dtype=np.int64) * 5))
    g.add(Projection("p_relay_in", "tern", "relay", rng.integers(-9, 9, size=(3, 4))))
    g.add(Projection("p_relay_out", "relay", "reset_v", rng.integers(-9, 9, size=(3, 3)), num_message_bits=19))
    g.add(Projection("p_free", "reset_v", "free", rng.integers(0, 9, size=(3, 3))))
    g.outputs["spikes"] = OutputPort("tern", "s")
    g.outputs["voltage"] = OutputPort("fc", "v")
    g.outputs["current"] = OutputPort("conv1", "u")
    return g.validate()


def assert_same_value(a, b, where):
    if sp.issparse(a) or sp.issparse(b):
        assert sp.issparse(a) and sp.issparse(b), where
        a, b = sp.csr_matrix(a), sp.csr_matrix(b)
        assert a.shape == b.shape and a.dtype == b.dtype, where
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data), where
        return
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same_value(a[k], b[k], f"{where}[{k!r}]")
        return
    if isinstance(a, (list, tuple, set, frozenset)):
        assert type(a) is type(b) and len(a) == len(b), where
        if isinstance(a, (set, frozenset)):
            assert a == b, where
            return
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_value(x, y, f"{where}[{i}]")
        return
    if isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
        return
    if isinstance(a, (np.ndarray, np.generic)):
        assert type(a) is type(b) and a.dtype == b.dtype and np.shape(a) == np.shape(b), f"{where}: {a!r} vs {b!r}"
        assert np.array_equal(a, b), where
        return
    assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def assert_same_chip(g1: ChipGraph, g2: ChipGraph):
    assert_same_value(g1.meta, g2.meta, "meta")
    for table in ("inputs", "populations", "projections", "outputs"):
        t1, t2 = getattr(g1, table), getattr(g2, table)
        assert list(t1) == list(t2), table  # insertion order too: it fixes the simulation order
        for name in t1:
            for field in vars(t1[name]):
                a, b = getattr(t1[name], field), getattr(t2[name], field)
                if field == "conv" and a is not None:
                    a, b = vars(a), vars(b)
                assert_same_value(a, b, f"{table}[{name}].{field}")


def test_round_trip_in_memory():
    g = full_graph()
    n = chip_to_nir(g)
    assert is_chip_nir(n)
    assert_same_chip(g, chip_from_nir(n))


def test_round_trip_through_nir_write_and_read(tmp_path):
    g = full_graph()
    nir.write(str(tmp_path / "chip.nir"), chip_to_nir(g))
    # a dense projection into a multi-dimensional population has no NIR reshape, so nir's own
    # type check would refuse this particular file; without it nir reads it back unchanged
    back = nir.read(str(tmp_path / "chip.nir"), type_check=False)
    assert_same_chip(g, chip_from_nir(back))
    # and through snnc's reader and writer
    write_nir(chip_to_nir(g), tmp_path / "chip2.nir")
    assert_same_chip(g, chip_from_nir(read_nir_file(tmp_path / "chip2.nir")))


def small_graph(dt=1e-4) -> ChipGraph:
    """Type-consistent for nir's checker: 1-D populations and a conv between (C, H, W) ones."""
    g = ChipGraph(meta={"dt": dt})
    g.add(InputPopulation("x", (1, 4, 4)))
    g.add(Population("c", (2, 2, 2), du=4095, dv=0, vth=5))
    g.add(Population("h", (3,), du=1000, dv=200, vth=8, bias_mant=5, bias_exp=1))
    g.add(Population("lonely", (2,), bias_mant=3))  # no input and no output: nir.read adds ports
    g.add(Projection("conv", "x", "c", np.full((2, 1, 3, 3), 4), kind="conv", conv=ConvGeometry((1, 4, 4), (2, 2, 2), (3, 3))))
    g.add(Projection("fc", "c", "h", np.arange(24).reshape(3, 8) - 12, weight_exp=1))
    g.add(Projection("rec", "h", "h", np.eye(3, dtype=int) * 2))
    g.outputs["y"] = OutputPort("h")
    return g.validate()


def test_nir_read_with_its_type_check_still_round_trips(tmp_path):
    g = small_graph()
    nir.write(str(tmp_path / "small.nir"), chip_to_nir(g))
    back = nir.read(str(tmp_path / "small.nir"))  # type_check=True adds Input/Output nodes
    assert len(back.nodes) > len(chip_to_nir(g).nodes)
    assert_same_chip(g, chip_from_nir(back))


def test_float_parameters_equal_the_integer_model():
    dt = 1e-4
    g = small_graph(dt)
    n = chip_to_nir(g)
    h = n.nodes["h"]
    assert isinstance(h, nir.CubaLIF)
    # du=1000: u keeps (4096-1001)/4096 per step; forward Euler keeps 1 - dt/tau_syn
    assert np.allclose(1 - dt / h.tau_syn, (4096 - 1001) / 4096, rtol=1e-12)
    assert np.allclose(1 - dt / h.tau_mem, (4096 - 200) / 4096, rtol=1e-12)
    assert np.allclose(h.w_in * dt / h.tau_syn, 1.0) and np.allclose(h.r * dt / h.tau_mem, 1.0)
    assert np.allclose(h.v_leak * dt / h.tau_mem, 5 * 2**1)  # bias_mant << bias_exp per step
    assert np.array_equal(h.v_threshold, np.full(3, 8 * 64.0)) and np.array_equal(h.v_reset, np.zeros(3))
    assert h.tau_syn.shape == (3,)
    c = n.nodes["c"]
    assert np.allclose(c.tau_syn, dt)  # du=4095: u is just this step's input
    assert np.allclose(c.tau_mem, dt * DV0_TAU_STEPS) and DV0_TAU_STEPS >= 2**30  # dv=0: effectively no leak
    assert isinstance(n.nodes["fc"], nir.Affine)
    want = (np.arange(24).reshape(3, 8) - 12).astype(float)
    want = np.where(want % 2 == 0, want, want - 1)  # mixed sign: Lava drops the lowest bit (floor)
    assert np.array_equal(n.nodes["fc"].weight, want * 2.0 ** (6 + 1))
    assert np.array_equal(n.nodes["fc"].bias, np.zeros(3))
    conv = n.nodes["conv"]
    assert isinstance(conv, nir.Conv2d) and np.array_equal(conv.weight, np.full((2, 1, 3, 3), 4 * 64.0))
    assert list(conv.input_shape) == [4, 4]
    # the flattened (C, H, W) source goes through a Flatten before the dense projection
    flat = [k for k, v in n.nodes.items() if isinstance(v, nir.Flatten)]
    assert len(flat) == 1 and ("c", flat[0]) in n.edges and (flat[0], "fc") in n.edges
    meta = json.loads(n.metadata["snnc"])
    assert meta["level"] == "chip" and meta["dt"] == dt


def test_chip_nir_file_is_a_valid_nir_level_graph(tmp_path):
    """Other NIR tools (and snnc's NIR-level reader) can load the file as a float network."""
    g = small_graph()
    g.populations.pop("lonely")
    nir.write(str(tmp_path / "s.nir"), chip_to_nir(g))
    graph = Graph.from_nir(tmp_path / "s.nir")
    assert graph.out_shapes["h"] == (3,) and graph.out_shapes["c"] == (2, 2, 2)
    assert ("h", "rec") in graph.edges and ("rec", "h") in graph.recurrent


def test_is_chip_nir_rejects_plain_graphs(refdata):
    assert not is_chip_nir(nir.read(str(refdata / "nir-paper/lif/lif_norse.nir"), type_check=False))
    assert not is_chip_nir(object())
    with pytest.raises(ModelFileError, match="not a chip-level"):
        chip_from_nir(nir.read(str(refdata / "nir-paper/lif/lif_norse.nir"), type_check=False))


def test_names_hdf5_cannot_store_are_mapped_and_restored(tmp_path):
    g = ChipGraph()
    g.add(InputPopulation("in/put", (2,)))
    g.add(Population("layer/1", (2,), vth=3))
    g.add(Projection("w", "in/put", "layer/1", np.eye(2, dtype=int)))
    g.outputs["layer/1"] = OutputPort("layer/1")  # output named like a population
    write_nir(chip_to_nir(g), tmp_path / "names.nir")
    assert_same_chip(g, chip_from_nir(read_nir_file(tmp_path / "names.nir")))


def test_edited_float_weights_are_detected(tmp_path):
    g = small_graph()
    nir.write(str(tmp_path / "e.nir"), chip_to_nir(g))
    with h5py.File(tmp_path / "e.nir", "r+") as f:
        w = f["node/nodes/fc/weight"][()]
        f["node/nodes/fc/weight"][...] = w * 2
    with pytest.raises(ModelFileError, match="disagrees with the snnc integers") as err:
        chip_from_nir(read_nir_file(tmp_path / "e.nir"), where=str(tmp_path / "e.nir"))
    assert "'fc'" in str(err.value) and "weight" in str(err.value)


def test_corrupt_integer_metadata_is_a_bit_width_error():
    n = chip_to_nir(small_graph())
    rec = json.loads(n.nodes["h"].metadata["snnc"])
    rec["du"] = 5000  # 12-bit field
    n.nodes["h"].metadata["snnc"] = json.dumps(rec)
    with pytest.raises(ParameterError, match="du out of its 12-bit range"):
        chip_from_nir(n)


def test_rewired_edges_are_detected():
    n = chip_to_nir(small_graph())
    n.edges = [e for e in n.edges if e != ("rec", "h")] + [("rec", "lonely")]
    with pytest.raises(ModelFileError, match="edges disagree"):
        chip_from_nir(n)


def test_foreign_node_is_rejected():
    n = chip_to_nir(small_graph())
    n.nodes["extra"] = nir.Scale(np.ones(3))
    with pytest.raises(ModelFileError, match="no snnc metadata") as err:
        chip_from_nir(n)
    assert "'extra'" in str(err.value)


def test_meta_that_json_cannot_hold_is_an_error():
    g = small_graph()
    g.meta["callback"] = print
    with pytest.raises(ParameterError, match="cannot store") as err:
        chip_to_nir(g)
    assert "callback" in str(err.value)


def test_bad_dt():
    with pytest.raises(ParameterError, match="dt"):
        chip_to_nir(small_graph(), dt=-1.0)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["__ndarray__", "shape", "data", "__csr__", "x"]), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning")  # numpy casts of garbage values
@settings(max_examples=int(os.environ.get("SNNC_FUZZ_EXAMPLES", 150)), deadline=None, database=None)
@given(data=st.data())
def test_corrupted_snnc_metadata_raises_only_snnc_errors(data):
    """Any edit of a node's or the graph's snnc JSON is either still a valid graph or an SnncError."""
    n = chip_to_nir(small_graph())
    holders = [n] + [n.nodes[k] for k in n.nodes]
    holder = data.draw(st.sampled_from(holders))
    record = json.loads(holder.metadata["snnc"])
    key = data.draw(st.sampled_from(sorted(record)))
    if data.draw(st.booleans()):
        record[key] = data.draw(JSON_VALUES)
    else:
        del record[key]
    holder.metadata["snnc"] = json.dumps(record) if data.draw(st.integers(0, 9)) else "{not json"
    try:
        chip_from_nir(n)
    except SnncError as exc:
        assert str(exc).strip()


def test_files_from_before_reset_modes_load_as_reset_to_zero():
    g = small_graph()
    n = chip_to_nir(g)
    for node in n.nodes.values():
        record = json.loads(node.metadata.get("snnc", "{}")) if getattr(node, "metadata", None) else {}
        if record.get("kind") == "population":
            for key in ("reset_mode", "v_reset", "relay_shift"):
                record.pop(key)
            node.metadata["snnc"] = json.dumps(record)
    back = chip_from_nir(n)
    assert all(p.reset_mode == "zero" and p.v_reset == 0 and p.relay_shift == 0 for p in back.populations.values())

