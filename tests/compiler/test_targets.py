"""Chip profiles: built-in limits and cost tables match their sources; user files parse or fail clearly."""
from __future__ import annotations

import json

import pytest

from snnc.compiler.targets import (
    COST_TABLES,
    LOIHI1,
    LOIHI2,
    get_cost_table,
    get_profile,
    load_profile,
    profile_from_dict,
)
from snnc.ir.errors import ModelFileError, ParameterError

PJ, NS = 1e-12, 1e-9


def test_loihi1_limits_are_those_of_the_hardware_table():
    p = LOIHI1
    assert p.cores_per_chip == 128
    assert p.neurons_per_core == 1024
    assert p.synaptic_memory_bits == 128 * 1024 * 8  # 128 KiB
    assert p.input_axons_per_core == 4096 and p.output_axons_per_core == 4096
    assert p.mesh_shape[0] * p.mesh_shape[1] * p.cores_per_tile == 128
    assert (p.max_weight_bits, p.max_delay, p.max_message_bits) == (8, 62, 0)


def test_loihi2_limits_are_those_of_the_hardware_table():
    p = LOIHI2
    assert p.cores_per_chip == 128 and p.mesh_shape == (8, 16) and p.cores_per_tile == 1
    assert p.neurons_per_core == 8192
    assert p.synaptic_memory_bits == 128 * 1024 * 8
    assert (p.max_weight_bits, p.max_delay, p.max_message_bits) == (8, 62, 24)
    assert p.shared_conv_kernels and not LOIHI1.shared_conv_kernels


def test_davies_table_holds_the_published_figures():
    t = get_cost_table("loihi1-davies2018")
    assert (t.e_syn_dense, t.e_syn_sparse, t.e_syn_conv) == (23.6 * PJ,) * 3
    assert (t.e_neuron_inactive, t.e_neuron_active) == (52 * PJ, 81 * PJ)
    assert t.e_message == 1.7 * PJ
    assert (t.e_hop_ew, t.e_hop_ns) == (3.0 * PJ, 4.0 * PJ)
    assert (t.t_hop_ew, t.t_hop_ns) == (4.1 * NS, 6.5 * NS)
    assert t.barrier_time(1) == pytest.approx(113 * NS) and t.barrier_time(32) == pytest.approx(465 * NS)
    assert "Davies" in t.source and "Table 2" in t.source


def test_sanafe_table_holds_the_silicon_calibrated_figures():
    t = get_cost_table("loihi1-sanafe")
    assert (t.e_syn_dense, t.e_syn_sparse, t.e_syn_conv) == (35.5 * PJ, 33.6 * PJ, 24.0 * PJ)
    assert t.e_neuron_inactive == 51.2 * PJ
    assert t.e_neuron_active == pytest.approx((51.2 + 21.6) * PJ, rel=1e-12)
    assert t.e_spike_out == 69.3 * PJ
    assert "SANA-FE" in t.source


def test_loihi2_table_is_marked_as_an_assumption():
    t = LOIHI2.costs
    assert t is COST_TABLES["loihi2-assumed"]
    assert "ASSUMED" in t.label and t.source.startswith("ASSUMPTION")
    assert t.static_source.startswith("ASSUMPTION")
    assert any("Loihi 1" in a for a in t.assumptions)


def test_barrier_interpolates_and_extrapolates_linearly():
    t = get_cost_table("loihi1-davies2018")
    assert t.barrier_time(0) == pytest.approx(113 * NS)
    slope = (465 - 113) / 31
    assert t.barrier_time(11) == pytest.approx((113 + 10 * slope) * NS)
    assert t.barrier_time(63) == pytest.approx((465 + 31 * slope) * NS)


def test_core_positions_follow_tiles_and_chips():
    # Loihi 1: 4 cores per tile, 8 tiles per row, 4 chips per row of the board.
    assert LOIHI1.core_position(0, 0) == (0, 0)
    assert LOIHI1.core_position(0, 3) == (0, 0)
    assert LOIHI1.core_position(0, 4) == (0, 1)
    assert LOIHI1.core_position(0, 35) == (1, 0)
    assert LOIHI1.core_position(1, 0) == (0, 8)
    assert LOIHI1.core_position(4, 0) == (4, 0)
    assert LOIHI2.core_position(0, 17) == (1, 1)


def test_profiles_by_name_and_unknown_name():
    assert get_profile("loihi1") is LOIHI1
    assert get_profile("Loihi 2") is LOIHI2
    with pytest.raises(ParameterError) as e:
        get_profile("loihi3")
    assert "loihi3" in str(e.value) and "loihi1" in str(e.value)


def test_toml_profile_with_units_and_cost_overrides(tmp_path):
    f = tmp_path / "mini.toml"
    f.write_text(
        """
name = "mini"
cores_per_chip = 16
mesh_shape = [2, 4]
cores_per_tile = 2
neurons_per_core = 256
synaptic_memory_kib = 64
input_axons_per_core = 1024
output_axons_per_core = 512
max_chips = 3

[costs]
base = "loihi1-sanafe"
syn_dense_pj = 10.0
static_mw = 50
barrier_ns = {"1" = 100, "8" = 300}
"""
    )
    p = load_profile(f)
    assert p.name == "mini" and p.cores_per_chip == 16 and p.mesh_shape == (2, 4)
    assert p.synaptic_memory_bits == 64 * 1024 * 8
    assert p.max_chips == 3 and p.output_axons_per_core == 512
    assert p.costs.e_syn_dense == pytest.approx(10 * PJ)
    assert p.costs.e_syn_sparse == 33.6 * PJ  # inherited from the base table
    assert p.costs.static_power_w == pytest.approx(0.05)
    assert p.costs.barrier_time(8) == pytest.approx(300 * NS)
    assert "user-defined" in p.costs.source
    assert get_profile(str(f)) == p


def test_json_profile_based_on_a_builtin(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"base": "loihi2", "name": "two-loihi2", "max_chips": 2}))
    p = load_profile(f)
    assert p.max_chips == 2 and p.neurons_per_core == 8192 and p.costs == LOIHI2.costs


def test_profile_survives_a_dict_round_trip():
    for p in (LOIHI1, LOIHI2):
        assert profile_from_dict(json.loads(json.dumps(p.to_dict()))) == p


_GOOD = {
    "name": "x", "cores_per_chip": 8, "mesh_shape": [2, 4], "neurons_per_core": 64,
    "synaptic_memory_kib": 16, "input_axons_per_core": 256, "output_axons_per_core": 256,
}


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"neurons_per_cor": 5}, ["neurons_per_cor", "unknown profile key"]),
        ({"neurons_per_core": "many"}, ["neurons_per_core", "integer", "many"]),
        ({"neurons_per_core": True}, ["neurons_per_core", "integer"]),
        ({"neurons_per_core": 2.5}, ["neurons_per_core", "whole number"]),
        ({"max_weight_bits": 12}, ["max_weight_bits", "1..8", "12"]),
        ({"cores_per_chip": 10}, ["cores_per_chip", "2 x 4 x 1 = 8", "10"]),
        ({"mesh_shape": [2]}, ["mesh_shape", "[rows, cols]"]),
        ({"synaptic_memory_kib": 0}, ["synaptic_memory_kib", "> 0"]),
        ({"neurons_per_core": None}, ["neurons_per_core", "missing"]),
        ({"costs": {"syn_dense_pj": -1}}, ["costs.syn_dense_pj", ">= 0", "-1"]),
        ({"costs": {"syn_dense": 1}}, ["costs.syn_dense", "unknown cost key"]),
        ({"costs": {"base": "loihi9"}}, ["costs.base", "loihi1-sanafe"]),
        ({"costs": {"barrier_ns": "fast"}}, ["costs.barrier_ns", "tiles"]),
        ({"base": "truenorth"}, ["base", "loihi1", "truenorth"]),
    ],
)
def test_malformed_profile_names_the_key_and_expectation(tmp_path, change, fragments):
    data = {**_GOOD, **change}
    data = {k: v for k, v in data.items() if v is not None}
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data))
    with pytest.raises(ParameterError) as e:
        load_profile(f)
    msg = str(e.value)
    assert str(f) in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("bad.toml", "name = \n", "not valid TOML"),
        ("bad.json", "{name: 1", "not valid JSON"),
        ("bad.yaml", "name: x", ".toml or .json"),
        ("list.json", "[1, 2]", "top level"),
    ],
)
def test_unreadable_profile_file_is_a_model_file_error(tmp_path, name, text, fragment):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ModelFileError) as e:
        load_profile(f)
    assert fragment in str(e.value) and name in str(e.value)


def test_missing_profile_file(tmp_path):
    with pytest.raises(ModelFileError) as e:
        load_profile(tmp_path / "nope.toml")
    assert "not found" in str(e.value)


def test_builtin_profiles_are_data_files_read_by_the_user_loader(tmp_path):
    from snnc.compiler.targets import BUILTIN_DIR, COST_TABLES, PROFILES

    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.toml")) == sorted([*PROFILES, *COST_TABLES])
    again = load_profile(BUILTIN_DIR / "loihi2.toml", builtin=True)
    assert again == PROFILES["loihi2"] and again.costs is COST_TABLES["loihi2-assumed"]
    # a user file names a shipped cost table by name, and says what its numbers rest on
    user = tmp_path / "mine.toml"
    user.write_text('base = "loihi2"\nname = "mine"\ncosts = "loihi1-sanafe"\n[sources]\nneurons_per_core = "datasheet"\n')
    mine = load_profile(user)
    assert mine.costs is COST_TABLES["loihi1-sanafe"] and mine.sources["neurons_per_core"] == "datasheet"
    user.write_text('base = "loihi2"\ncosts = "loihi9-made-up"\n')
    with pytest.raises(ParameterError, match="unknown cost table"):
        load_profile(user)
    user.write_text('base = "loihi2"\nsources = 3\n')
    with pytest.raises(ParameterError, match="sources"):
        load_profile(user)
