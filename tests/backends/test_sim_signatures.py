"""The sim calls its numba kernels only with the argument types it declares (`kernels.SIGNATURES`,
compiled at install time by `warmup`), whatever dtype the caller's inputs have: so one compile
serves every caller, and a fresh process loads kernels instead of compiling them."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chip_strategies as cs
from snnc.backends.sim import SimBackend
from snnc.backends.sim import kernels as K
from snnc.backends.sim import kernels_atrlif, kernels_conv, kernels_prodneuron, kernels_refractory, kernels_sdn, warmup
from snnc.ir.chip import ChipGraph, InputPopulation, Population, Projection
from snnc.ir.errors import ShapeError


def _dtypes_for(inputs: dict[str, np.ndarray], graph) -> list[str]:
    binary = all(graph.inputs[k].num_message_bits == 0 for k in inputs)
    return (["bool"] if binary else []) + ["int8", "int16", "int32", "int64", "float32", "float64"]


@settings(max_examples=12, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    case=cs.chip_cases(kinds=cs.ALL_KINDS, models=cs.ALL_MODELS, recurrent=True, delays=True, graded=True, per_neuron=True),
    synapses=st.sampled_from(["auto", "events", "dense"]),
)
def test_every_input_dtype_runs_the_declared_signatures_with_equal_results(case, synapses):
    probes = [f"{p}/{v}" for p in case.graph.populations for v in "suv"]
    program = SimBackend().build(case.graph, synapses=synapses)
    first = None
    for dtype in _dtypes_for(case.inputs, case.graph):
        res = program.run({k: v[None].astype(dtype) for k, v in case.inputs.items()}, probes=probes)
        if first is None:
            first = res
        for key in probes:
            assert np.array_equal(res.probes[key], first.probes[key]), (dtype, key)
    _assert_declared(K)
    _assert_declared(kernels_conv)


def _assert_declared(mod) -> None:
    for name, declared in mod.SIGNATURES.items():
        used = set(getattr(mod, name).signatures)
        assert used <= set(declared), (mod.__name__, name, used - set(declared))


@settings(max_examples=6, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    sd_case=cs.chip_cases(kinds=("dense",), models=cs.SIGMA_DELTA_MODELS, graded=True),
    prog_graph=cs.programmable_graphs(),
)
def test_sigma_delta_product_and_atrlif_kernels_run_their_declared_signatures(sd_case, prog_graph):
    """Whatever the input dtype, the kernel modules beside `kernels` are called only with the types
    they declare, so `warmup` compiling those makes the first run load instead of compile."""
    cases = [(sd_case.graph, sd_case.inputs), (prog_graph, {"x": cs.programmable_inputs(prog_graph, 6, 0)})]
    for graph, inputs in cases:
        probes = [f"{p}/{v}" for p, pop in graph.populations.items() for v in ("s" if pop.model == "product" else "suv")]
        program = SimBackend().build(graph)
        for dtype in ("int16", "int64", "float64"):
            program.run({k: v[None].astype(dtype) for k, v in inputs.items()}, probes=probes)
    for mod in (kernels_sdn, kernels_prodneuron, kernels_atrlif):
        _assert_declared(mod)
        for name in mod.SIGNATURES:
            assert getattr(mod, name).signatures, (mod.__name__, name)  # the runs above did call it


def test_out_of_range_input_values_are_still_reported_after_the_dtype_change():
    """An int64 or float64 input that float32 cannot hold exactly keeps its value for the range check."""
    g = ChipGraph()
    g.add(InputPopulation("x", (3,)))
    g.add(Population("n", (2,), du=10, dv=10, vth=10))
    g.add(Projection("w", "x", "n", np.ones((2, 3), np.int64)))
    program = SimBackend().build(g)
    for bad in (np.int64(2**24 + 1), np.float64(1 + 2**-30)):
        x = np.zeros((1, 4, 3), bad.dtype)
        x[0, 2, 1] = bad
        with pytest.raises(ShapeError, match=r"index \[0, 2, 1\]: input values out of range"):
            program.run(x)


def test_warmup_finds_the_kernel_modules_and_their_kernels():
    mods = warmup.kernel_modules()
    assert {K, kernels_conv, kernels_sdn, kernels_prodneuron, kernels_atrlif, kernels_refractory} <= set(mods)
    for mod in mods:
        for name, sigs in mod.SIGNATURES.items():
            assert callable(getattr(mod, name)) and sigs, name
