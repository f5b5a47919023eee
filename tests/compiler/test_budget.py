"""Bit budget: every term checked against numbers worked out by hand on tiny chip graphs."""
from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from rich.console import Console

from snnc.backends.base import Activity, PopulationActivity
from snnc.compiler.analysis.budget import AccumulatorOverflowWarning, BitBudget, bit_budget
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import GraphError, SnncError

SHARED_PARAM_BITS = 12 + 12 + 17 + 13 + 3  # du, dv, vth, bias_mant, bias_exp: one profile


def dense_graph(num_weight_bits=8, weight_exp=2, du=4095) -> ChipGraph:
    """in(3) -> h(2), mixed-sign dense weights, all even so 8-bit mixed truncation keeps them."""
    g = ChipGraph()
    g.add(InputPopulation("in", (3,)))
    g.add(Population("h", (2,), du=du, dv=100, vth=50))
    g.add(Projection("w", "in", "h", np.array([[10, -20, 30], [0, 4, -6]]),
                     weight_exp=weight_exp, num_weight_bits=num_weight_bits))
    g.outputs["out"] = OutputPort("h")
    return g


def layer(budget: BitBudget, name: str):
    (found,) = [l for l in budget.layers if l.name == name]
    return found


def test_dense_mixed_memory_state_params_and_headroom():
    b = bit_budget(dense_graph())
    h = layer(b, "h")
    (p,) = h.projections
    # mixed mode keeps 8 bits including the sign (Lava drops 8-8+1 = 1 of 9 bits) x all 2x3 entries
    assert (p.sign_mode, p.bits_per_weight, p.stored, p.synapses) == ("mixed", 8, 6, 5)
    assert (p.weight_bits, p.index_bits, p.delay_bits, p.memory_bits) == (48, 0, 0, 48)
    assert h.weight_memory_bits == 48
    assert h.state_bits == 2 * 48
    assert h.param_bits == SHARED_PARAM_BITS and h.per_neuron_params == []
    # row 0: pos 10+30=40, neg 20; row 1: pos 4, neg 6; << weight_exp 2 -> 160/80, 16/24
    # worst A = 160; into u: 160 << 6 = 10240 -> 14 bits + sign = 15 -> margin 24 - 15 = 9
    assert p.max_input == 10240
    assert (h.max_input, h.input_bits, h.margin_bits, h.overflow_possible) == (10240, 15, 9, False)
    # du = 4095 clears u: the sustained bound equals one step
    assert (h.max_u_accumulated, h.margin_bits_accumulated) == (10240, 9)
    assert b.memory_bits == 48 + 96 + SHARED_PARAM_BITS
    assert b.synapses == dense_graph().num_synapses == 5
    assert b.warnings == []
    # no activity: spikes unknown, not zero
    assert b.spike_bits is None and h.spikes.spikes is None and h.spikes.payload_bits == 1


def test_truncation_is_applied_before_the_headroom_bound():
    # 4 bits mixed: drop 8-4+1 = 5 low bits: [10,-20,30] -> [0,-32,0], [0,4,-6] -> [0,0,-32]
    h = layer(bit_budget(dense_graph(num_weight_bits=4, weight_exp=0)), "h")
    assert h.projections[0].bits_per_weight == 4 and h.weight_memory_bits == 4 * 6
    assert h.max_input == 32 * 64


def test_accumulated_bound_uses_the_current_decay():
    # u keeps (4095-du)/4096 per step: bound 10240 * 4096 / (du+1)
    h = layer(bit_budget(dense_graph(du=1023)), "h")
    assert (h.max_u_accumulated, h.margin_bits_accumulated) == (40960, 24 - 17)
    h = layer(bit_budget(dense_graph(du=0)), "h")
    assert h.max_u_accumulated == 10240 * 4096  # 2**25 < . < 2**26: 27 bits with sign
    assert h.margin_bits_accumulated == -3 and h.overflow_possible is False


def sparse_graph() -> ChipGraph:
    """in(5) -> h(2) through an excitatory and an inhibitory sparse projection."""
    g = ChipGraph()
    g.add(InputPopulation("in", (5,)))
    g.add(Population("h", (2,), du=4095, vth=10))
    exc = np.zeros((2, 5), dtype=int)
    exc[0, 1], exc[0, 4] = 255, 9
    inh = np.zeros((2, 5), dtype=int)
    inh[1, 0], inh[1, 2] = -255, -9
    g.add(Projection("exc", "in", "h", exc, kind="sparse", num_weight_bits=6, weight_exp=-1, delay=3))
    g.add(Projection("inh", "in", "h", inh, kind="sparse", num_weight_bits=6, weight_exp=-3))
    return g


def test_sparse_index_delay_bits_and_rounding_of_negative_exponents():
    h = layer(bit_budget(sparse_graph()), "h")
    exc, inh = h.projections
    # 6 bits, one shared sign; 2 stored synapses; index ceil(log2 5) = 3 bits each; one delay register
    assert (exc.bits_per_weight, exc.stored, exc.weight_bits) == (6, 2, 12)
    assert (exc.index_bits_per_synapse, exc.index_bits, exc.delay_bits, exc.memory_bits) == (3, 6, 6, 24)
    assert (inh.sign_mode, inh.memory_bits, inh.delay_bits) == ("inhibitory", 12 + 6, 0)
    assert h.weight_memory_bits == 24 + 18
    # 6-bit truncation drops 2 bits: 255 -> 252, 9 -> 8; exc: 260 >> 1 = 130
    assert exc.max_input == 130 * 64
    # inh: -(252 + 8) = -260 over 2**3 floors to -33 (not -32)
    assert inh.max_input == 33 * 64
    # the two projections reach different neurons: A = max(130, 33)
    assert h.max_input == 130 * 64


def test_projections_into_one_neuron_add_up():
    g = ChipGraph()
    g.add(InputPopulation("a", (2,)))
    g.add(InputPopulation("b", (1,)))
    g.add(Population("h", (1,), du=4095))
    g.add(Projection("pa", "a", "h", np.array([[100, 50]]), weight_exp=1))  # 150 << 1 = 300
    g.add(Projection("pb", "b", "h", np.array([[-40]]), weight_exp=0))  # -40
    g.add(Projection("pc", "b", "h", np.array([[25]]), weight_exp=-1))  # 25 >> 1 = 12
    h = layer(bit_budget(g), "h")
    assert [p.max_input for p in h.projections] == [300 * 64, 40 * 64, 12 * 64]
    assert h.max_input == (300 + 12) * 64  # positive extreme beats the negative 40


def test_conv_counts_kernel_entries_and_per_channel_bounds():
    g = ChipGraph()
    g.add(InputPopulation("img", (1, 3, 3)))
    g.add(Population("c", (2, 2, 2), du=4095))
    kernel = np.array([[[[2, -4], [6, 8]]], [[[-2, -2], [-2, 0]]]])  # [2, 1, 2, 2], mixed, even
    geo = ConvGeometry((1, 3, 3), (2, 2, 2), kernel=(2, 2))
    g.add(Projection("k", "img", "c", kernel, kind="conv", conv=geo))
    c = layer(bit_budget(g), "c")
    (p,) = c.projections
    assert (p.stored, p.bits_per_weight, p.weight_bits, p.index_bits) == (8, 8, 64, 0)
    assert p.synapses == 8  # shared kernel: not 8 output neurons x 4 taps
    # channel 0: pos 16, neg 4; channel 1: pos 0, neg 6 -> A = 16
    assert c.max_input == 16 * 64
    assert c.state_bits == 8 * 48


def test_per_synapse_delays_per_neuron_params_and_models():
    g = ChipGraph()
    g.add(InputPopulation("in", (2,)))
    g.add(Population("h", (2,), du=np.array([0, 4095]), vth=np.array([5, 6]), model="lif_reset",
                     reset_interval=10, reset_offset=0))
    g.add(Population("t", (1,), model="ternary", vth_hi=5, vth_lo=-5))
    delays = np.array([[0, 4], [0, 0]])
    g.add(Projection("d", "in", "h", np.array([[8, 8], [8, 8]]), num_weight_bits=5, delay=delays))
    g.add(Projection("ht", "h", "t", np.array([[1, 1]])))
    b = bit_budget(g)
    h, t = layer(b, "h"), layer(b, "t")
    (d,) = h.projections
    # 5 weight bits x 4 entries + 6 delay bits x 4 entries
    assert (d.weight_bits, d.delay_bits, d.memory_bits) == (20, 24, 44)
    # du, vth per neuron (x2); dv, bias_mant, bias_exp shared; lif_reset adds 16 + 16
    assert h.per_neuron_params == ["du", "vth"]
    assert h.param_bits == 12 * 2 + 12 + 17 * 2 + 13 + 3 + 32
    assert t.param_bits == SHARED_PARAM_BITS + 36
    # per-neuron du: neuron 0 (du=0) gets A=16 (8+8 at 5 bits) -> 16*64*4096; neuron 1 clears u
    assert h.max_u_accumulated == 16 * 64 * 4096
    assert b.param_bits == h.param_bits + t.param_bits


def test_graded_messages_bound_and_payload_bits():
    g = ChipGraph()
    g.add(InputPopulation("in", (2,), num_message_bits=3))
    g.add(Population("h", (1,), du=4095))
    g.add(Population("o", (1,), du=4095))
    g.add(Projection("p", "in", "h", np.array([[6, -4]]), num_message_bits=3))
    g.add(Projection("q", "h", "o", np.array([[2]]), num_message_bits=4))
    b = bit_budget(g)
    # graded payload up to 2**3 - 1 = 7 times sum |w| = 10 -> 70 per step
    assert layer(b, "h").max_input == 70 * 64
    assert layer(b, "o").max_input == 15 * 2 * 64
    # payload: h sends 4-bit messages; o sends none (binary, 1 bit); the input 3 bits
    assert layer(b, "h").spikes.payload_bits == 4
    assert layer(b, "o").spikes.payload_bits == 1
    assert b.inputs[0].payload_bits == 3


def test_spike_bits_from_activity():
    g = ChipGraph()
    g.add(InputPopulation("in", (2,), num_message_bits=3))
    g.add(Population("h", (1,), du=4095))
    g.add(Population("o", (1,), du=4095))
    g.add(Projection("p", "in", "h", np.array([[6, -4]]), num_message_bits=3))
    g.add(Projection("q", "h", "o", np.array([[2]]), num_message_bits=4))
    act = Activity(batch=2, steps=10, populations={
        "h": PopulationActivity(neurons=1, spikes=12),
        "o": PopulationActivity(neurons=1, spikes=5),
        "in": PopulationActivity(neurons=2, spikes=8),
    })
    b = bit_budget(g, act)
    h = layer(b, "h").spikes
    assert (h.spikes, h.spike_bits, h.spike_bits_per_sample, h.spike_bits_per_step) == (12, 48, 24.0, 2.4)
    assert layer(b, "o").spikes.spike_bits == 5
    assert b.inputs[0].spike_bits == 24
    assert (b.steps, b.batch, b.spike_bits, b.spike_bits_per_sample) == (10, 2, 48 + 5 + 24, 38.5)


def test_input_spikes_from_projection_messages():
    # no population entry for the input: its projection's messages_in (the sim's count) is used
    from snnc.backends.base import ProjectionActivity

    act = Activity(batch=2, steps=4, populations={"h": PopulationActivity(neurons=2, spikes=0)},
                   projections={"w": ProjectionActivity(synaptic_ops=30, messages_in=10)})
    b = bit_budget(dense_graph(), act)
    assert (b.inputs[0].spikes, b.inputs[0].spike_bits, b.spike_bits_per_sample) == (10, 10, 5.0)


def test_activity_of_another_graph_is_an_error():
    act = Activity(batch=1, steps=5, populations={"other": PopulationActivity(neurons=2, spikes=1)})
    with pytest.raises(GraphError, match="no counters") as info:
        bit_budget(dense_graph(), act)
    assert "['h']" in str(info.value) and "same graph" in str(info.value)
    with pytest.raises(SnncError, match="batch"):
        bit_budget(dense_graph(), Activity(batch=0, steps=5, populations={"h": PopulationActivity(neurons=2)}))


def overflow_graph(last_weight: int) -> ChipGraph:
    """8 excitatory inputs at weight 128 (last one `last_weight`), weight_exp 7 into u."""
    g = ChipGraph()
    g.add(InputPopulation("in", (8,)))
    g.add(Population("big", (1,), du=4095))
    w = np.full((1, 8), 128)
    w[0, -1] = last_weight
    g.add(Projection("w", "in", "big", w, weight_exp=7))
    return g


def test_overflow_warning_names_the_layer_and_margin():
    # 8 x 128 << 7 = 2**17; << 6 = 2**23 > 2**23 - 1: 24 bits + sign, margin -1
    with pytest.warns(AccumulatorOverflowWarning, match="'big'.*margin -1 bits"):
        b = bit_budget(overflow_graph(128))
    big = layer(b, "big")
    assert (big.max_input, big.input_bits, big.margin_bits, big.overflow_possible) == (2**23, 25, -1, True)
    assert len(b.warnings) == 1 and "'big'" in b.warnings[0] and "8,388,607" in b.warnings[0]


def test_no_warning_just_below_the_limit():
    # one weight 127: (7*128 + 127) << 7 << 6 = 2**23 - 2**13 fits 24 signed bits, margin 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = bit_budget(overflow_graph(127))
    big = layer(b, "big")
    assert (big.max_input, big.margin_bits, big.overflow_possible) == (2**23 - 2**13, 0, False)
    assert b.warnings == []


def test_warn_false_keeps_the_list_but_issues_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = bit_budget(overflow_graph(128), warn=False)
    assert len(b.warnings) == 1


def test_to_dict_is_json_and_matches_the_objects():
    act = Activity(batch=1, steps=4, populations={"h": PopulationActivity(neurons=2, spikes=3)})
    b = bit_budget(dense_graph(), act)
    d = json.loads(json.dumps(b.to_dict()))
    assert d["total"]["weight_memory_bits"] == 48
    assert d["total"]["memory_bits"] == 48 + 96 + SHARED_PARAM_BITS
    assert d["total"]["spike_bits"] == 3 and d["steps"] == 4
    assert d["layer_details"][0]["projections"][0]["bits_per_weight"] == 8
    assert d["layer_details"][0]["margin_bits"] == 9 and d["layer_details"][0]["synapses"] == 5
    # per layer, bits by quantity only (what the HTML report stacks)
    assert d["layers"] == {"h": {"weight_bits": 48, "index_bits": 0, "delay_bits": 0, "state_bits": 96,
                                 "param_bits": SHARED_PARAM_BITS, "spike_bits_per_sample": 3.0}}
    assert d["inputs"][0]["spikes"] is None  # input not measured


def test_render_shows_layers_totals_and_overflow():
    b = bit_budget(overflow_graph(128), warn=False)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(b.render())
    text = out.getvalue()
    assert "big" in text and "total" in text and "OVERFLOW" in text and "8,388,608" in text


def test_bit_ops_recomputed_from_spikes_and_fan_out():
    """bit ops = sum over projections of (source spikes x nonzero fan-out of each spiking neuron)
    x num_weight_bits: recomputed here from the input and the probed hidden spikes of a sim run."""
    from snnc.backends.base import get_backend

    g = ChipGraph()
    g.add(InputPopulation("in", (3,)))
    g.add(Population("h", (2,), du=4095, dv=0, vth=10))
    g.add(Population("o", (2,), du=4095, dv=0, vth=10))
    wp = np.array([[40, 0, 30], [0, 24, -6]])
    wq = np.array([[20, 0], [16, 14]])
    g.add(Projection("p", "in", "h", wp, num_weight_bits=6))
    g.add(Projection("q", "h", "o", wq, num_weight_bits=5))
    g.outputs["out"] = OutputPort("o")
    rng = np.random.default_rng(0)
    x = (rng.random((3, 20, 3)) < 0.5).astype(np.float32)
    result = get_backend("sim").build(g).run(x, probes=["h"])
    h = np.asarray(result.probes["h"]) != 0
    assert h.sum() > 0
    fan_p, fan_q = (wp != 0).sum(axis=0), (wq != 0).sum(axis=0)  # nonzero targets per source neuron
    expected = 6 * int((x != 0).sum(axis=(0, 1)) @ fan_p) + 5 * int(h.reshape(-1, 2).sum(axis=0) @ fan_q)
    b = bit_budget(g, result.activity)
    assert b.bit_ops == expected and b.bit_ops_per_sample == expected / 3
    total = json.loads(json.dumps(b.to_dict()))["total"]
    assert total["bit_ops"] == expected
    assert bit_budget(g).bit_ops is None
