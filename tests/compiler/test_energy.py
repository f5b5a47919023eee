"""Energy and latency model: micro-networks reproduce the published per-operation figures exactly,
counters are per inference, latency follows the slowest core, and the Blouw et al. 2019 keyword
spotter is estimated beside its measured energy."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from snnc.backends.base import Activity, PopulationActivity, ProjectionActivity
from snnc.compiler.analysis.energy import BLOUW_2019, COST_TYPES, compare_kws, estimate_energy, kws_blouw2019
from snnc.compiler.mapping import map_to_cores
from snnc.compiler.targets import LOIHI1, LOIHI2, get_cost_table
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, Population, Projection
from snnc.ir.errors import ParameterError

PJ, NS = 1e-12, 1e-9
PUBLISHED = {
    # table: (dense, sparse, conv synaptic op, inactive, active neuron update), in pJ
    "loihi1-davies2018": (23.6, 23.6, 23.6, 52.0, 81.0),
    "loihi1-sanafe": (35.5, 33.6, 24.0, 51.2, 51.2 + 21.6),
}


def one_to_one(kind: str) -> ChipGraph:
    """input(1) -> p(1) through one synapse of the given kind."""
    g = ChipGraph()
    if kind == "conv":
        g.add(InputPopulation("x", (1, 1, 1)))
        g.add(Population("p", (1, 1, 1), du=4095, vth=10))
        g.add(Projection("s", "x", "p", np.full((1, 1, 1, 1), 2), kind="conv",
                         conv=ConvGeometry((1, 1, 1), (1, 1, 1), (1, 1))))
    else:
        g.add(InputPopulation("x", (1,)))
        g.add(Population("p", (1,), du=4095, vth=10))
        g.add(Projection("s", "x", "p", np.array([[2]]), kind=kind))
    return g


def only(energy, cost_type):
    """The dynamic energy must be exactly this one cost type."""
    others = {t: v for t, v in energy.by_type.items() if t != cost_type}
    assert all(v == 0 for v in others.values()), others
    return energy.by_type[cost_type]


@pytest.mark.parametrize("table", sorted(PUBLISHED))
@pytest.mark.parametrize("kind", ["dense", "sparse", "conv"])
def test_one_synaptic_op_costs_the_published_figure(table, kind):
    m = map_to_cores(one_to_one(kind), LOIHI2)
    act = Activity(batch=1, steps=1, projections={"s": ProjectionActivity(synaptic_ops=1)},
                   populations={"p": PopulationActivity(neurons=1)})
    e = estimate_energy(act, m, costs=table)
    expected = PUBLISHED[table][("dense", "sparse", "conv").index(kind)] * PJ
    assert only(e, "synaptic") == pytest.approx(expected, rel=1e-12)
    assert e.layers["p"].energy["synaptic"] == e.dynamic_j


@pytest.mark.parametrize("table", sorted(PUBLISHED))
@pytest.mark.parametrize("active", [True, False])
def test_one_neuron_update_costs_the_published_figure(table, active):
    m = map_to_cores(one_to_one("dense"), LOIHI2)
    act = Activity(batch=1, steps=1, populations={
        "p": PopulationActivity(neurons=1, neuron_updates=1, active_updates=int(active))})
    e = estimate_energy(act, m, costs=table)
    expected = PUBLISHED[table][4 if active else 3] * PJ
    assert only(e, "neuron_active" if active else "neuron_inactive") == pytest.approx(expected, rel=1e-12)


def two_neurons(profile):
    """a(1) -> b(1) on two cores one router hop apart."""
    g = ChipGraph()
    g.add(InputPopulation("x", (1,)))
    g.add(Population("a", (1,), du=4095, vth=10))
    g.add(Population("b", (1,), du=4095, vth=10))
    g.add(Projection("xa", "x", "a", np.array([[2]])))
    g.add(Projection("ab", "a", "b", np.array([[2]])))
    return map_to_cores(g, profile, placement="greedy")


def one_spike_of_a():
    return Activity(batch=1, steps=1, populations={
        "a": PopulationActivity(neurons=1, spikes=1, spike_counts=np.array([1])),
        "b": PopulationActivity(neurons=1)})


def test_one_east_west_hop_costs_the_published_figure():
    m = two_neurons(LOIHI2)  # 1 core per tile: a at (0,0), b at (0,1)
    link = next(l for l in m.links if l.src == "a")
    assert (link.hops_ew, link.hops_ns, link.chip_crossings) == (1, 0, 0)
    e = estimate_energy(one_spike_of_a(), m, costs="loihi1-davies2018")
    assert e.by_type["hop_ew"] == pytest.approx(3.0 * PJ, rel=1e-12)
    assert e.by_type["message"] == pytest.approx(1.7 * PJ, rel=1e-12)  # within-tile spike energy
    assert e.dynamic_j == pytest.approx(4.7 * PJ, rel=1e-12)
    assert e.layers["a"].messages == 1 and e.layers["a"].hops == 1


def test_one_north_south_hop_costs_the_published_figure():
    column = dataclasses.replace(LOIHI2, name="column", cores_per_chip=2, mesh_shape=(2, 1))
    m = two_neurons(column)
    e = estimate_energy(one_spike_of_a(), m, costs="loihi1-davies2018")
    assert e.by_type["hop_ns"] == pytest.approx(4.0 * PJ, rel=1e-12)
    assert e.by_type["hop_ew"] == 0
    sanafe = estimate_energy(one_spike_of_a(), m, costs="loihi1-sanafe")
    assert sanafe.by_type["hop_ns"] == pytest.approx(4.2 * PJ, rel=1e-12)
    assert sanafe.by_type["spike_out"] == pytest.approx(69.3 * PJ, rel=1e-12)
    assert sanafe.by_type["message"] == pytest.approx(111.0 * PJ, rel=1e-12)


def test_spikes_within_one_tile_cost_no_hop():
    m = two_neurons(LOIHI1)  # 4 cores per tile: both in tile (0, 0)
    e = estimate_energy(one_spike_of_a(), m, costs="loihi1-davies2018")
    assert e.by_type["hop_ew"] == e.by_type["hop_ns"] == 0
    assert e.by_type["message"] == pytest.approx(1.7 * PJ, rel=1e-12)


def test_chip_crossing_is_priced_and_flagged_as_assumed():
    one_core_chips = dataclasses.replace(LOIHI2, name="1-core", cores_per_chip=1, mesh_shape=(1, 1))
    m = two_neurons(one_core_chips)
    assert m.chips_used == 2
    e = estimate_energy(one_spike_of_a(), m, costs="loihi1-davies2018")
    assert e.by_type["chip_crossing"] == pytest.approx(100 * PJ, rel=1e-12)
    assert e.by_type["hop_ew"] == pytest.approx(3.0 * PJ, rel=1e-12)
    assert any("chip-to-chip" in a for a in e.assumptions)


def test_counters_are_divided_by_the_batch():
    m = map_to_cores(one_to_one("dense"), LOIHI1)

    def act(batch):
        return Activity(batch=batch, steps=3,
                        projections={"s": ProjectionActivity(synaptic_ops=5 * batch, messages_in=5 * batch)},
                        populations={"p": PopulationActivity(neurons=1, neuron_updates=3 * batch,
                                                             active_updates=2 * batch, spikes=batch)})

    one, four = estimate_energy(act(1), m), estimate_energy(act(4), m)
    for t in COST_TYPES:
        assert four.by_type[t] == pytest.approx(one.by_type[t], rel=1e-12)
    assert one.dynamic_j == pytest.approx((5 * 23.6 + 2 * 81 + 1 * 52 + 5 * 1.7) * PJ, rel=1e-12)


def test_static_energy_is_power_times_chips_times_run_time():
    m = map_to_cores(one_to_one("dense"), LOIHI1)
    act = Activity(batch=1, steps=1, populations={"p": PopulationActivity(neurons=1, neuron_updates=1)})
    e = estimate_energy(act, m, run_time_s=2e-3)
    assert e.static_j == pytest.approx(0.104 * 1 * 2e-3)
    assert e.total_j == pytest.approx(e.dynamic_j + e.static_j)
    assert e.run_time_source.startswith("given")
    modelled = estimate_energy(act, m)
    assert modelled.static_j == pytest.approx(0.104 * modelled.latency.per_inference_s)


def test_latency_is_the_slowest_core_plus_route_plus_barrier():
    g = ChipGraph()
    g.add(InputPopulation("x", (10,)))
    g.add(Population("p", (100,), du=4095, vth=10))
    g.add(Projection("s", "x", "p", np.full((100, 10), 2)))
    m = map_to_cores(g, LOIHI1)
    act = Activity(batch=1, steps=2,
                   projections={"s": ProjectionActivity(synaptic_ops=1000, messages_in=10,
                                                        synaptic_ops_per_step=np.array([1000, 0]))},
                   populations={"p": PopulationActivity(neurons=100, neuron_updates=200, active_updates=100,
                                                        spikes=5, spikes_per_step=np.array([0, 5]))})
    lat = estimate_energy(act, m, costs="loihi1-davies2018").latency
    neuron = 100 * (5.3 + 0.5 * (8.4 - 5.3))  # half the updates active
    route = 2.1  # host entry tile = the core's tile: no hop, one within-tile spike
    assert lat.barrier_s == pytest.approx(113 * NS)
    assert lat.step_s[0] == pytest.approx((1000 * 3.5 + neuron + route + 113) * NS)
    assert lat.step_s[1] == pytest.approx((neuron + route + 113) * NS)
    assert lat.per_inference_s == pytest.approx(lat.step_s.sum())


def test_baselines_are_labelled_and_computed_from_synops_and_macs():
    g = ChipGraph()
    g.add(InputPopulation("x", (2, 8, 8)))
    g.add(Population("c", (4, 8, 8), du=4095, vth=10))
    g.add(Population("d", (10,), du=4095, vth=10))
    g.add(Projection("conv", "x", "c", np.full((4, 2, 3, 3), 2), kind="conv",
                     conv=ConvGeometry((2, 8, 8), (4, 8, 8), (3, 3), padding=(1, 1))))
    g.add(Projection("fc", "c", "d", np.full((10, 256), 2)))
    m = map_to_cores(g, LOIHI2)
    act = Activity(batch=1, steps=4, projections={"conv": ProjectionActivity(synaptic_ops=700),
                                                  "fc": ProjectionActivity(synaptic_ops=300)})
    e = estimate_energy(act, m)
    comp = {c.name: c for c in e.comparisons}
    macs = 4 * 8 * 8 * 2 * 3 * 3 + 10 * 256
    assert comp["synops_convention"].energy_j == pytest.approx(1000 * 0.9 * PJ)
    assert comp["ann_fp32"].energy_j == pytest.approx(macs * 4.6 * PJ)
    assert comp["ann_int8"].energy_j == pytest.approx(macs * 0.23 * PJ)
    assert all("Horowitz" in c.source for c in e.comparisons)
    assert "SynOps" in comp["synops_convention"].label and "ANN baseline" in comp["ann_fp32"].label
    json.dumps(e.to_dict())


def test_missing_layer_activity_is_counted_and_stated():
    m = map_to_cores(one_to_one("dense"), LOIHI1)
    e = estimate_energy(Activity(batch=1, steps=7), m)
    assert e.by_type["neuron_inactive"] == pytest.approx(7 * 52 * PJ)
    assert any("no activity for layer 'p'" in a for a in e.assumptions)


def test_activity_without_steps_is_rejected():
    m = map_to_cores(one_to_one("dense"), LOIHI1)
    with pytest.raises(ParameterError) as err:
        estimate_energy(Activity(batch=0, steps=3), m)
    assert "batch" in str(err.value)


# -- Blouw et al. 2019: keyword spotting on Loihi 1 ---------------------------------------------------------
def test_keyword_spotter_estimate_beside_the_measurement():
    """390 -> 256 -> 256 on Loihi 1, 10 steps, 0.1 spikes/neuron/step (assumptions printed).

    Hand computation from the per-operation figures: input spikes 0.1 x 390 x 10 = 390 and layer-1
    spikes 0.1 x 256 x 10 = 256 each reach 256 synapses: 165,376 synaptic ops; 2 x 256 x 10 =
    5,120 active neuron updates; 390 + 256 messages, no hop (both cores share a tile)."""
    measured = BLOUW_2019["dynamic_j_per_inference"]
    hand = {
        "loihi1-davies2018": (165_376 * 23.6 + 5_120 * 81 + 646 * 1.7) * PJ,
        "loihi1-sanafe": (165_376 * 35.5 + 5_120 * (51.2 + 21.6) + 512 * 69.3 + 646 * 111) * PJ,
    }
    print(f"\nBlouw et al. 2019 keyword spotter, measured on Loihi 1: {measured * 1e3:.2f} mJ dynamic per inference "
          f"at {BLOUW_2019['inferences_per_s']:.0f} inferences/s")
    for table, expected in hand.items():
        r = compare_kws(table)
        assert r["cores"] == 2
        assert all(l.hops_ew == l.hops_ns == 0 for l in r["mapping"].links)
        assert r["estimate_dynamic_j"] == pytest.approx(expected, rel=1e-9)
        print(f"  estimate ({get_cost_table(table).label}): {r['estimate_dynamic_j'] * 1e6:.2f} uJ, "
              f"measured/estimate = {r['ratio_measured_over_estimate']:.0f}x; modelled "
              f"{1 / r['modelled_time_per_inference_s']:.0f} inferences/s")
        # The model leaves out host I/O: it must predict a faster chip than the one measured.
        assert r["modelled_time_per_inference_s"] < r["measured_time_per_inference_s"]
    print("  assumptions: " + "; ".join(r["assumptions"]))


def test_keyword_spotter_cannot_reach_the_measurement_on_neurocore_work_alone():
    """Even if every input and neuron spiked at every step (the largest activity possible), the
    per-operation model stays below the measured dynamic energy: the rest is not neurocore work."""
    for table in PUBLISHED:
        r = compare_kws(table, rate=1.0, input_rate=1.0)
        assert r["estimate_dynamic_j"] < BLOUW_2019["dynamic_j_per_inference"]
        assert r["report"].synaptic_ops == (390 + 256) * 10 * 256


def test_keyword_spotter_structure():
    g, act, assumptions = kws_blouw2019()
    assert g.inputs["mfcc"].size == 390
    assert [p.size for p in g.populations.values()] == [256, 256]
    assert g.num_synapses == 390 * 256 + 256 * 256
    assert act.total_synaptic_ops == 165_376
    assert any("10 time steps" in a for a in assumptions)


def test_counters_of_the_sim_backend_feed_the_model():
    """The real `sim` backend's Activity, priced: synaptic energy = its synaptic ops x 23.6 pJ per
    inference, input messages = spikes sent from the host x 1.7 pJ."""
    from snnc.backends.base import get_backend

    graph, _, _ = kws_blouw2019()
    x = (np.random.default_rng(3).random((2, 10, 390)) < 0.1).astype(np.int8)
    act = get_backend("sim").build(graph).run(x).activity
    assert act.batch == 2 and act.steps == 10
    m = map_to_cores(graph, LOIHI1, traffic=act)
    e = estimate_energy(act, m, costs="loihi1-davies2018")
    assert e.by_type["synaptic"] == pytest.approx(act.total_synaptic_ops / 2 * 23.6 * PJ, rel=1e-12)
    sent = act.projections["mfcc->layer1"].messages_in
    assert sent == int(x.sum())
    assert e.layers["mfcc"].energy["message"] == pytest.approx(sent / 2 * 1.7 * PJ, rel=1e-12)
    pops = act.populations
    updates = sum(p.neuron_updates for p in pops.values()) / 2
    active = sum(p.active_updates for p in pops.values()) / 2
    assert e.by_type["neuron_active"] + e.by_type["neuron_inactive"] == pytest.approx(
        (active * 81 + (updates - active) * 52) * PJ, rel=1e-12)


def test_ann_baseline_counts_recurrent_networks_once_per_step():
    """A feed-forward ANN runs once per inference; an RNN runs every layer at every time step."""
    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.energy import estimate_energy
    from snnc.compiler.mapping import map_to_cores
    from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection

    def graph(recurrent: bool) -> ChipGraph:
        g = ChipGraph()
        g.add(InputPopulation("in", (3,)))
        g.add(Population("h", (4,), du=4095, dv=0, vth=1))
        g.add(Projection("w", "in", "h", np.full((4, 3), 100)))
        if recurrent:
            g.add(Projection("r", "h", "h", np.full((4, 4), 2)))
        g.outputs["out"] = OutputPort("h")
        return g

    steps = 7
    x = np.ones((1, steps, 3))
    macs = {}
    for rec in (False, True):
        g = graph(rec)
        run = get_backend("sim").build(g).run(x)
        report = estimate_energy(run.activity, map_to_cores(g, "loihi2", traffic=run.activity))
        ann = next(c for c in report.comparisons if c.name == "ann_fp32")
        macs[rec] = ann.energy_j / 4.6e-12
    assert macs[False] == pytest.approx(4 * 3)  # one forward pass of the 3 -> 4 layer
    assert macs[True] == pytest.approx((4 * 3 + 4 * 4) * steps)  # the RNN: both maps at every step
