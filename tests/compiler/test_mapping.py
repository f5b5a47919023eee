"""Mapping onto cores: block costs match the documented cost model, big networks spill onto more
chips, impossible ones fail with an actionable ResourceError, placement reduces hops."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp

from snnc.backends.base import Activity, PopulationActivity
from snnc.compiler.mapping import RESOURCES, Mapping, map_to_cores
from snnc.compiler.targets import LOIHI1, LOIHI2
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, Population, Projection
from snnc.ir.errors import ResourceError

RNG = np.random.default_rng(1)


def dense_w(rows, cols):
    """Nonzero, even (exact in mixed mode) 8-bit weights."""
    return RNG.integers(1, 128, size=(rows, cols)) * RNG.choice([-2, 2], size=(rows, cols))


def chain(sizes, kinds=None, profile_inputs=None):
    """input(sizes[0]) -> p1(sizes[1]) -> p2 ... with dense (or given) projections."""
    g = ChipGraph()
    g.add(InputPopulation("in", (sizes[0],)))
    prev = "in"
    for i, n in enumerate(sizes[1:], 1):
        g.add(Population(f"p{i}", (n,), du=4095, vth=10))
        kind = (kinds or {}).get(i, "dense")
        if kind == "identity":
            g.add(Projection(f"w{i}", prev, f"p{i}", sp.identity(n, format="csr") * 2, kind="sparse"))
        else:
            g.add(Projection(f"w{i}", prev, f"p{i}", dense_w(n, sizes[i - 1])))
        prev = f"p{i}"
    return g


def assert_within_limits(m: Mapping):
    limits = m.profile.limits()
    for b in m.blocks:
        for r in RESOURCES:
            assert getattr(b, r) <= limits[r], (b, r)
    cores = {(b.chip, b.core) for b in m.blocks}
    assert len(cores) == len(m.blocks), "two blocks on one core"
    assert all(0 <= b.core < m.profile.cores_per_chip for b in m.blocks)


# -- cost model, hand-computed ------------------------------------------------------------------------
def test_dense_block_costs_are_axons_times_word_rounded_runs():
    g = chain([390, 256, 256])
    m = map_to_cores(g, LOIHI1)
    assert m.cores_used == 2 and m.chips_used == 1
    b1, b2 = m.blocks_of("p1")[0], m.blocks_of("p2")[0]
    # 8-bit weights, no delay: one axon's list of 256 weights = 2048 bits = 32 words.
    assert b1.synaptic_memory_bits == 390 * 2048 and b1.input_axons == 390
    assert b2.synaptic_memory_bits == 256 * 2048 and b2.input_axons == 256
    assert b1.output_axons == 256 and b2.output_axons == 0  # every p1 neuron reaches one core
    u = m.utilization()
    assert u["synaptic_memory_bits"]["max"] == pytest.approx(390 * 2048 / (128 * 1024 * 8))
    assert u["neurons"]["used"] == 512 and u["cores"]["used"] == 2
    assert_within_limits(m)


def test_dense_layer_is_split_into_the_fewest_blocks_that_fit_memory():
    # 600 inputs -> 1000 neurons: blocks of s neurons need 600 * ceil(8 s / 64) * 64 bits <= 1 Mibit.
    # s = 250 (4 blocks) needs 1,228,800 bits: too much; s = 200 (5 blocks) needs 960,000.
    m = map_to_cores(chain([600, 1000]), LOIHI1)
    blocks = m.blocks_of("p1")
    assert [b.neurons for b in blocks] == [200] * 5
    assert all(b.synaptic_memory_bits == 960_000 for b in blocks)
    assert [(b.start, b.stop) for b in blocks] == [(i * 200, (i + 1) * 200) for i in range(5)]


def test_sparse_cost_counts_index_bits_and_delays():
    g = ChipGraph()
    g.add(InputPopulation("in", (100,)))
    g.add(Population("p", (100,), du=4095, vth=10))
    # Each source reaches 5 targets: a list of 5 x (8 weight + 7 index) = 75 bits -> 2 words.
    rows = np.concatenate([(np.arange(100) + k) % 100 for k in range(5)])
    cols = np.tile(np.arange(100), 5)
    w = sp.csr_matrix((np.full(500, 4), (rows, cols)), shape=(100, 100))
    g.add(Projection("w", "in", "p", w, kind="sparse"))
    m = map_to_cores(g, LOIHI1)
    assert m.blocks[0].synaptic_memory_bits == 100 * 128
    assert m.blocks[0].synapses == {"w": 500}
    # With delays up to 5 (3 bits): 5 x 18 = 90 bits -> still 2 words; up to 62 (6 bits): 105 -> 2 words.
    g.projections["w"] = Projection("w", "in", "p", sp.csr_matrix(w), kind="sparse", delay=5)
    assert map_to_cores(g, LOIHI1).blocks[0].synaptic_memory_bits == 100 * 128


def test_dense_delays_widen_every_synapse():
    g = chain([64, 64])
    g.projections["w1"] = dataclasses.replace(g.projections["w1"], delay=62)  # 6 delay bits
    m = map_to_cores(g, LOIHI1)
    # 64 targets x (8 weight + 6 delay bits) = 896 bits = 14 words per axon, 64 axons.
    assert m.blocks[0].synaptic_memory_bits == 64 * 896


# -- spilling onto several chips -------------------------------------------------------------------------
def test_network_too_large_for_one_chip_maps_onto_several():
    n = 150_000  # two layers of 147 Loihi 1 cores each: 294 cores = 3 chips
    g = chain([n, n, n], kinds={1: "identity", 2: "identity"})
    m = map_to_cores(g, LOIHI1)
    assert m.cores_used == 2 * -(-n // 1024) == 294
    assert m.chips_used == 3
    assert {b.chip for b in m.blocks} == {0, 1, 2}
    for chip in range(3):
        assert sum(b.chip == chip for b in m.blocks) <= 128
    assert_within_limits(m)
    crossing = [l for l in m.links if l.chip_crossings > 0]
    assert crossing, "some traffic must cross chips"
    assert m.utilization()["cores"]["capacity"] == 3 * 128
    json.dumps(m.to_dict())


def test_chip_limit_gives_an_actionable_error():
    n = 150_000
    g = chain([n, n, n], kinds={1: "identity", 2: "identity"})
    with pytest.raises(ResourceError) as e:
        map_to_cores(g, dataclasses.replace(LOIHI1, max_chips=2))
    msg = str(e.value)
    assert "294 cores" in msg and "256" in msg and "max_chips" in msg
    assert e.value.resource == "cores" and e.value.need == 294 and e.value.limit == 256


# -- impossible networks -------------------------------------------------------------------------------------
def test_fan_in_beyond_the_input_axons_of_a_core_fails_clearly():
    g = ChipGraph()
    g.add(InputPopulation("pixels", (5000,)))
    g.add(Population("wide", (10,), du=4095, vth=10))
    g.add(Projection("pixels->wide", "pixels", "wide", dense_w(10, 5000)))
    with pytest.raises(ResourceError) as e:
        map_to_cores(g, LOIHI1)
    msg = str(e.value)
    for frag in ("'wide'", "needs 5000 input axons", "a core has 4096", "fan-in", "loihi1"):
        assert frag in msg, (frag, msg)
    assert (e.value.layer, e.value.resource, e.value.need, e.value.limit) == ("wide", "input_axons", 5000, 4096)


def test_fan_in_beyond_the_synaptic_memory_fails_clearly():
    small = dataclasses.replace(LOIHI1, name="tiny", synaptic_memory_bits=8192)
    g = chain([200, 4])
    with pytest.raises(ResourceError) as e:
        map_to_cores(g, small)
    msg = str(e.value)
    # One neuron alone: 200 axons x one 64-bit word each = 12,800 bits > 8,192.
    for frag in ("'p1'", "needs 12800 bits of synaptic memory", "a core has 8192", "fan-in"):
        assert frag in msg, (frag, msg)


def test_fan_out_beyond_the_output_axons_fails_clearly():
    small = dataclasses.replace(LOIHI1, name="tiny", neurons_per_core=4, output_axons_per_core=2)
    g = chain([1, 1, 12])  # p1's one neuron feeds 3 blocks of p2
    with pytest.raises(ResourceError) as e:
        map_to_cores(g, small)
    msg = str(e.value)
    for frag in ("'p1'", "needs 3 output axons", "a core has 2", "fan-out"):
        assert frag in msg, (frag, msg)


def test_output_axons_force_a_finer_split_of_the_source():
    # p1 (8 neurons) feeds p2 split into 4 blocks: each p1 neuron needs 4 output axons; with
    # 16 per core at most 4 p1 neurons share a core.
    prof = dataclasses.replace(LOIHI1, name="tiny", neurons_per_core=8, output_axons_per_core=16)
    g = chain([8, 8, 32])
    m = map_to_cores(g, prof)
    assert [b.neurons for b in m.blocks_of("p1")] == [4, 4]
    assert all(b.output_axons == 16 for b in m.blocks_of("p1"))
    assert_within_limits(m)


def test_graded_spikes_need_a_target_that_carries_them():
    g = ChipGraph()
    g.add(InputPopulation("x", (4,), num_message_bits=8))
    g.add(Population("p", (4,), du=4095, vth=10))
    g.add(Projection("x->p", "x", "p", dense_w(4, 4), num_message_bits=8))
    with pytest.raises(ResourceError) as e:
        map_to_cores(g, LOIHI1)
    assert "graded" in str(e.value) and "'x->p'" in str(e.value)
    assert map_to_cores(g, LOIHI2).cores_used == 1


# -- placement ------------------------------------------------------------------------------------------------
def _row_profile():
    return dataclasses.replace(
        LOIHI2, name="2x8", cores_per_chip=16, mesh_shape=(2, 8), neurons_per_core=4, max_chips=1
    )


def test_locality_placement_cuts_the_hops_of_greedy():
    # in(16) -> A(16) -> B(16), one-to-one: 4 blocks each. Greedy puts A at (0,0..3), B at
    # (0,4..7): each A_i -> B_i link is 4 hops, input -> A_i is i hops from the corner.
    g = chain([16, 16, 16], kinds={1: "identity", 2: "identity"})
    greedy = map_to_cores(g, _row_profile(), placement="greedy")
    local = map_to_cores(g, _row_profile(), placement="locality")
    assert greedy.message_hops() == 4 * (4 * 4 + (0 + 1 + 2 + 3))  # 4 messages per link (uniform)
    assert local.message_hops() < greedy.message_hops()
    assert local.message_hops() <= 4 * (4 * 1 + (0 + 1 + 2 + 3))
    assert local.placement_cost["locality"] < local.placement_cost["greedy"]
    assert local.placement_cost["greedy"] == pytest.approx(greedy.placement_cost["greedy"])
    assert_within_limits(local)


def test_measured_traffic_weights_the_links():
    g = chain([8, 8, 8], kinds={1: "identity", 2: "identity"})
    prof = dataclasses.replace(LOIHI2, name="small", neurons_per_core=4)
    counts = np.array([10, 0, 0, 0, 3, 3, 0, 0])
    act = Activity(batch=2, steps=5, populations={
        "p1": PopulationActivity(neurons=8, spikes=int(counts.sum()), spike_counts=counts),
    })
    m = map_to_cores(g, prof, traffic=act)
    assert m.traffic_source.startswith("measured")
    by_src = {l.src_block: l.traffic for l in m.links if l.src == "p1"}
    b0, b1 = m.blocks_of("p1")
    assert by_src[b0.id] == pytest.approx(10 / 2) and by_src[b1.id] == pytest.approx(6 / 2)


def test_mapping_round_trips_through_json():
    m = map_to_cores(chain([64, 300, 10]), LOIHI1)
    back = Mapping.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back.to_dict() == json.loads(json.dumps(m.to_dict()))
    assert back.blocks == m.blocks and back.profile == m.profile


# -- a CNN shaped like the NIR paper's (cnn_sinabs.nir) ---------------------------------------------------------
def _quantize(w):
    w = np.asarray(w, dtype=float)
    return (2 * np.round(w / np.abs(w).max() * 127)).astype(np.int64)


def cnn_from_nir(path) -> ChipGraph:
    """The NIR paper's CNN with each SumPool folded into the next layer's weights:
    conv(5x5,s2) -> IF 16x16x16 -> conv(3x3) -> IF 16x16x16 -> [pool+conv = conv(6x6,s2,p2)] ->
    IF 8x8x8 -> [pool+flatten+affine = dense 256x512] -> IF 256 -> dense 10x256 -> IF 10."""
    import nir

    nodes = nir.read(str(path)).nodes
    c0, c2, c5 = (nodes[k] for k in ("0", "2", "5"))
    a9, a11 = nodes["9"], nodes["11"]
    g = ChipGraph()
    g.add(InputPopulation("input", (2, 34, 34)))
    for name, shape in (("if1", (16, 16, 16)), ("if3", (16, 16, 16)), ("if6", (8, 8, 8)), ("if10", (256,)), ("if12", (10,))):
        g.add(Population(name, shape, du=4095, vth=100))
    g.add(Projection("conv0", "input", "if1", _quantize(c0.weight), kind="conv",
                     conv=ConvGeometry((2, 34, 34), (16, 16, 16), (5, 5), (2, 2), (1, 1))))
    g.add(Projection("conv2", "if1", "if3", _quantize(c2.weight), kind="conv",
                     conv=ConvGeometry((16, 16, 16), (16, 16, 16), (3, 3), (1, 1), (1, 1))))
    # SumPool(2) then conv(3x3, p1) == conv with every kernel tap repeated 2x2, stride 2, padding 2.
    k5 = np.repeat(np.repeat(_quantize(c5.weight), 2, axis=2), 2, axis=3)
    g.add(Projection("pool4+conv5", "if3", "if6", k5, kind="conv",
                     conv=ConvGeometry((16, 16, 16), (8, 8, 8), (6, 6), (2, 2), (2, 2))))
    # SumPool(2) + Flatten + Affine: each weight reaches the 2x2 window it pooled.
    w9 = _quantize(a9.weight).reshape(256, 8, 4, 4)
    w9 = np.repeat(np.repeat(w9, 2, axis=2), 2, axis=3).reshape(256, 512)
    g.add(Projection("pool7+affine9", "if6", "if10", w9))
    g.add(Projection("affine11", "if10", "if12", _quantize(a11.weight)))
    return g.validate()


@pytest.mark.refdata
def test_cnn_maps_onto_loihi2_with_cores_and_utilization(refdata):
    g = cnn_from_nir(refdata / "nir-paper" / "cnn" / "cnn_sinabs.nir")
    m = map_to_cores(g, LOIHI2)
    assert_within_limits(m)
    # Every layer fits one Loihi 2 core (<= 8192 neurons, <= 4096 input axons, kernels shared).
    assert m.cores_used == 5 and m.chips_used == 1
    blk = {name: m.blocks_of(name)[0] for name in m.layers}
    # Shared conv kernels: channels x C_in x kh x kw x 8 bits, rounded to 64-bit words.
    assert blk["if1"].synaptic_memory_bits == 16 * 2 * 5 * 5 * 8
    assert blk["if3"].synaptic_memory_bits == 16 * 16 * 3 * 3 * 8
    assert blk["if6"].synaptic_memory_bits == 8 * 16 * 6 * 6 * 8
    assert blk["if1"].input_axons == 2 * 34 * 34
    assert blk["if3"].input_axons == 16 * 16 * 16 == blk["if6"].input_axons
    w9 = g.projections["pool7+affine9"].weights
    axons9 = int(np.count_nonzero(np.any(w9 != 0, axis=0)))
    assert blk["if10"].input_axons == axons9
    assert blk["if10"].synaptic_memory_bits == axons9 * 256 * 8
    u = m.utilization()
    assert set(RESOURCES) <= set(u) and all(0 < u[r]["max"] <= 1 for r in RESOURCES)
    rows = m.core_table()
    assert len(rows) == 5 and all(set(r["utilization"]) == set(RESOURCES) for r in rows)
    json.dumps(m.to_dict())

    # Loihi 1 (1,024 neurons per core, convolutions expanded into synapses) needs more cores.
    m1 = map_to_cores(g, LOIHI1)
    assert_within_limits(m1)
    assert len(m1.blocks_of("if1")) >= 4 and len(m1.blocks_of("if3")) >= 4
    assert m1.cores_used > m.cores_used


def test_mapping_pass_reports_the_mapping_and_keeps_the_graph():
    from snnc.compiler.passes.base import PassManager
    from snnc.compiler.mapping import MapToCores

    g = chain([64, 300, 10])
    result = PassManager([MapToCores(profile="loihi1")]).run(g)
    rep = result.report("map")
    assert result.graph is g
    assert rep["cores"] == 2 and rep["cores_per_layer"] == {"p1": 1, "p2": 1}
    assert Mapping.from_dict(rep["mapping"]).blocks == map_to_cores(g, LOIHI1).blocks


def test_expanded_conv_pattern_matches_a_direct_loop():
    from snnc.ir.conv import conv_pattern

    geo = ConvGeometry((4, 7, 6), (6, 4, 3), (3, 2), stride=(2, 2), padding=(1, 1), dilation=(2, 1), groups=2)
    w = RNG.integers(-3, 4, size=(6, 2, 3, 2)) * 2
    p = Projection("c", "x", "y", w, kind="conv", conv=geo)
    expect = np.zeros((6 * 4 * 3, 4 * 7 * 6), dtype=bool)
    for o in range(6):
        grp = o // 3
        for ci in range(2):
            c = grp * 2 + ci
            for ky in range(3):
                for kx in range(2):
                    if w[o, ci, ky, kx] == 0:
                        continue
                    for y in range(4):
                        for x in range(3):
                            iy, ix = y * 2 - 1 + ky * 2, x * 2 - 1 + kx
                            if 0 <= iy < 7 and 0 <= ix < 6:
                                expect[(o * 4 + y) * 3 + x, (c * 7 + iy) * 6 + ix] = True
    assert np.array_equal(conv_pattern(p.weights, p.conv).toarray().astype(bool), expect)


def test_recurrent_layer_maps_and_links_to_itself():
    g = chain([16, 32])
    g.add(Projection("rec", "p1", "p1", dense_w(32, 32)))
    prof = dataclasses.replace(LOIHI2, name="small", neurons_per_core=16)
    m = map_to_cores(g, prof)
    assert [b.neurons for b in m.blocks_of("p1")] == [16, 16]
    assert all(b.output_axons == 16 * 2 for b in m.blocks_of("p1"))  # every neuron reaches both blocks
    assert {(l.src_block, l.dst_block) for l in m.links if l.src == "p1"} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert_within_limits(m)
