"""PassManager: order, validation between passes, error wrapping, timing, dumps, purity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import nir
import numpy as np
import pytest

from snnc.compiler.passes.base import Pass, PassManager, PassResult
from snnc.compiler.passes.canonicalize import Canonicalize
from snnc.compiler.passes.fuse import Fuse
from snnc.compiler.passes.quantize import Quantize
from snnc.compiler.passes.timing import Timing
from snnc.ir.chip_nir import chip_from_nir
from snnc.ir.errors import ParameterError, PassError
from snnc.ir.graph import Graph, read_nir_file


def small_graph() -> Graph:
    w = np.array([[1.0, -0.5], [0.25, 0.75]])
    nodes = {
        "in": nir.Input(input_type=np.array([2])),
        "fc": nir.Linear(weight=w),
        "lif": nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.full(2, 0.05)),
        "out": nir.Output(output_type=np.array([2])),
    }
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False))


@dataclass(frozen=True)
class Record(Pass):
    """Appends its tag to the graph metadata (to observe the order)."""

    tag: str = "a"
    name: ClassVar[str] = "record"

    def run(self, graph):
        g = graph.copy()
        g.metadata["order"] = str(g.metadata.get("order", "")) + self.tag
        return PassResult(g, {"tag": self.tag})


@dataclass(frozen=True)
class Corrupt(Pass):
    name: ClassVar[str] = "corrupt"

    def run(self, graph):
        g = graph.copy()
        g.edges.append(("fc", "nowhere"))
        return PassResult(g, {})


@dataclass(frozen=True)
class Buggy(Pass):
    name: ClassVar[str] = "buggy"

    def run(self, graph):
        return {}["missing"]


@dataclass(frozen=True)
class Refuses(Pass):
    name: ClassVar[str] = "refuses"

    def run(self, graph):
        raise ParameterError("tau too small", where="node 'lif'.tau", got=1e-9)


def test_runs_in_order_and_collects_reports_and_times():
    res = PassManager([Record(tag="a"), Record(tag="b"), Record(tag="c")]).run(small_graph())
    assert res.graph.metadata["order"] == "abc"
    assert [r.report["tag"] for r in res.records] == ["a", "b", "c"]
    assert all(r.seconds >= 0 for r in res.records)
    assert res.records[0].options == {"tag": "a"}


def test_invalid_graph_is_caught_at_the_pass_that_broke_it():
    with pytest.raises(PassError) as info:
        PassManager([Record(), Corrupt(), Record(tag="z")]).run(small_graph())
    assert "'corrupt'" in str(info.value) and "nowhere" in str(info.value)


def test_errors_are_wrapped_with_the_pass_name_and_keep_the_cause():
    with pytest.raises(PassError) as info:
        PassManager([Refuses()]).run(small_graph())
    msg = str(info.value)
    assert "'refuses'" in msg and "tau too small" in msg and "node 'lif'.tau" in msg
    assert isinstance(info.value.__cause__, ParameterError)
    with pytest.raises(PassError) as info:
        PassManager([Buggy()]).run(small_graph())
    assert "'buggy'" in str(info.value) and "KeyError" in str(info.value)


def test_passes_do_not_modify_their_input():
    g = small_graph()
    before = np.array(g.nodes["fc"].weight, copy=True)
    PassManager([Canonicalize(), Fuse(), Timing(), Quantize()]).run(g)
    assert isinstance(g.nodes["fc"], nir.Linear)
    assert np.array_equal(g.nodes["fc"].weight, before)
    assert "snnc_dt" not in g.metadata


def test_dump_after_writes_readable_nir_files(tmp_path):
    res = PassManager([Canonicalize(), Fuse(), Timing(), Quantize()], dump_after=["canonicalize", "quantize"], dump_dir=tmp_path).run(
        small_graph()
    )
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["00_canonicalize.nir", "03_quantize.nir"]
    canon = Graph.from_nir(tmp_path / "00_canonicalize.nir")
    assert {type(n).__name__ for n in canon.nodes.values()} == {"Input", "Affine", "CubaLIF", "Output"}
    chip = chip_from_nir(read_nir_file(tmp_path / "03_quantize.nir"))
    assert set(chip.projections) == set(res.graph.projections)
    assert res.records[0].dumped.endswith("00_canonicalize.nir")


def test_dump_in_memory_and_unknown_dump_name():
    res = PassManager([Canonicalize(), Fuse()], dump_after="canonicalize").run(small_graph())
    assert isinstance(res.dumps["canonicalize"].nodes["lif"], nir.CubaLIF)
    with pytest.raises(PassError, match="not in the pipeline"):
        PassManager([Canonicalize()], dump_after="quantize")


def test_level_mismatch_is_a_clear_error():
    with pytest.raises(PassError, match="'quantize'.*run the canonicalize pass first"):
        PassManager([Quantize()]).run(small_graph())
    chip = PassManager([Canonicalize(), Fuse(), Timing(), Quantize()]).run(small_graph()).graph
    with pytest.raises(PassError, match="runs on NIR-level Graph"):
        PassManager([Fuse()]).run(chip)
