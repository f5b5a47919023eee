"""The event-driven conv kernel (`kernels_conv.scatter_conv`) against an independent integer
expectation: the conv's explicit matrix (`ir.conv.conv_matrix`, itself held equal to torch by
tests/ir/test_conv.py) times the messages in int64, then what Lava's Conv sends (int32 cast,
INT32_MIN out of range, 24-bit wrap). Sums are pushed past float32's exact range (2**24) and past
int32 (the kernel's int64 buffer), on geometries with groups, padding, stride and dilation."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chip_strategies as cs
from snnc.backends.sim import SimBackend, kernels_conv
from snnc.backends.sim.plan import _fanout, _row_l1, conv_fanout, conv_l1
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.conv import conv_matrix


def _lava_conv_send(x: np.ndarray, w: np.ndarray, geom: ConvGeometry, graded: bool) -> np.ndarray:
    """[rows, n_dst] what Lava's fixed_pt Conv sends for messages x [rows, n_src] (exact sums)."""
    m = conv_matrix(w, geom).toarray().astype(object)  # Python ints: no overflow anywhere
    msgs = x.astype(np.int64) if graded else (x != 0).astype(np.int64)
    y = np.array([[sum(int(a) * int(b) for a, b in zip(row, msg) if b) for row in m] for msg in msgs], dtype=object)
    y = np.where((y >= 2**31) | (y < -(2**31)), -(2**31), y)  # float64 -> int32 cast of an out-of-range value on x86
    return (((y + 2**23) % 2**24) - 2**23).astype(np.int64)


def _run_kernel(x: np.ndarray, proj: Projection, graded: bool, wide: bool) -> np.ndarray:
    rows = x.shape[0]
    n_dst = int(np.prod(proj.conv.out_shape))
    acc = np.zeros((1, rows + 1, n_dst), np.int32)
    kernels_conv.scatter_conv(np.ascontiguousarray(x), np.zeros(1, np.uint8), graded, wide, *kernels_conv.kernel_args(proj),
                              rows, acc, 1, 0)
    assert not acc[0, 0].any()  # t_off respected
    return acc[0, 1:].astype(np.int64)


@st.composite
def _cases(draw):
    c_in = draw(st.integers(1, 4))
    shape = (c_in, draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    geom = draw(cs.conv_geometries(shape, max_out_channels=6))
    w = draw(cs.weight_arrays((geom.out_shape[0], c_in // geom.groups, *geom.kernel)))
    seed = draw(st.integers(0, 2**16))
    magnitude = draw(st.sampled_from([1, 255, 2**16, 2**23, 2**31 - 1]))  # past 2**24 and 2**31 sums
    density = draw(st.sampled_from([0.05, 0.3, 1.0]))
    graded = draw(st.booleans())
    return geom, w, seed, magnitude, density, graded


@settings(max_examples=40, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=_cases())
def test_scatter_conv_equals_lava_conv_on_random_messages(case):
    geom, w, seed, magnitude, density, graded = case
    rng = np.random.default_rng(seed)
    rows, n_src = 5, int(np.prod(geom.in_shape))
    x = rng.integers(-magnitude, magnitude + 1, (rows, n_src)) * (rng.random((rows, n_src)) < density)
    x[0] = 0  # a row without messages sends nothing
    proj = Projection("c", "x", "n", w, kind="conv", num_message_bits=24, conv=geom)
    expected = _lava_conv_send(x, w, geom, graded)
    bound = conv_l1(proj) * (int(np.abs(x).max()) if graded else 1)
    for dtype in (np.float64, np.float32):
        if dtype == np.float32 and np.abs(x).max() >= 2**24:
            continue  # the program sends such messages as float64
        xd = x.astype(dtype)
        assert np.array_equal(_run_kernel(xd, proj, graded, wide=True), expected)
        if bound < kernels_conv.I32_EXACT:  # the int32 buffer is exact: the program picks it
            assert np.array_equal(_run_kernel(xd, proj, graded, wide=False), expected)


@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=_cases())
def test_conv_l1_and_fanout_from_the_kernel_equal_the_explicit_matrix(case):
    geom, w, *_ = case
    proj = Projection("c", "x", "n", w, kind="conv", conv=geom)
    m = conv_matrix(w, geom)
    assert conv_l1(proj) == _row_l1(m)
    assert np.array_equal(conv_fanout(proj), _fanout(m))


def _conv_graph(weight_scale: int) -> ChipGraph:
    """A graded input through a strided, padded conv onto a sigma population (sums pass 2**24)."""
    geom = ConvGeometry((3, 9, 11), (5, 5, 6), (3, 3), (2, 2), (1, 1), (1, 1), 1)
    g = ChipGraph()
    g.add(InputPopulation("x", geom.in_shape, num_message_bits=24))
    g.add(Population("s", geom.out_shape, model="sigma"))
    w = np.random.default_rng(3).integers(-weight_scale, weight_scale + 1, (5, 3, 3, 3))
    g.add(Projection("c", "x", "s", w, kind="conv", num_message_bits=24, conv=geom))
    g.outputs["s"] = OutputPort("s")
    return g.validate()


@pytest.mark.parametrize("weight_scale", [2, 255])
def test_program_conv_events_equal_torch_conv(weight_scale):
    g = _conv_graph(weight_scale)
    rng = np.random.default_rng(4)
    x = rng.integers(-(2**23) + 1, 2**23, (2, 7, 3, 9, 11)) * (rng.random((2, 7, 3, 9, 11)) < 0.2)
    dense = SimBackend().build(g, synapses="dense").run({"x": x}, probes=["s/u"])
    events = SimBackend().build(g, synapses="events").run({"x": x}, probes=["s/u"])
    assert np.any(dense.outputs["s"] != 0)
    assert np.array_equal(dense.outputs["s"], events.outputs["s"])
    assert np.array_equal(dense.probes["s/u"], events.probes["s/u"])
    assert dense.activity.projections["c"].synaptic_ops == events.activity.projections["c"].synaptic_ops > 0
    assert set(kernels_conv.scatter_conv.signatures) <= set(kernels_conv.SIGNATURES["scatter_conv"])
