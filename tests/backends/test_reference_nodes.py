"""Reference backend, node by node: tiny graphs whose outputs are computed by hand in the test.

Most tests build with a round `dt` (e.g. 1 s with tau = 2 s, so dt/tau = 0.5) to keep the hand
arithmetic exact; the Euler rule is the same at any dt.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from snnc.backends.base import get_backend
from snnc.backends.reference import ReferenceBackend
from snnc.ir.errors import BackendError, ParameterError, ShapeError
from snnc.ir.graph import Graph

A = np.array


def chain(*layers, shape=(1,), **named):
    """Input -> layers... -> Output as a validated snnc Graph."""
    nodes = {"in": nir.Input(input_type=A(shape))}
    names = ["in"]
    for i, layer in enumerate(layers):
        nodes[f"n{i}"] = layer
        names.append(f"n{i}")
    nodes["out"] = nir.Output(output_type=None)
    names.append("out")
    edges = list(zip(names, names[1:]))
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def run(graph, x, dt=1.0, probes=()):
    """Run one sample `x` [T, *shape]; returns (output [T, ...], probes [T, ...])."""
    res = ReferenceBackend().build(graph, dt=dt).run(np.asarray(x, dtype=float), probes=probes)
    assert res.backend == "reference"
    return res.output[0], {k: v[0] for k, v in res.probes.items()}


# -- neurons ----------------------------------------------------------------------------------
def test_lif_strict_threshold_and_reset_to_v_reset_in_the_spike_step():
    """dt/tau = 0.5, r = 2: v = 1, 1.5 (= threshold: no spike), 1.75 -> spike, v = v_reset."""
    lif = nir.LIF(tau=A([2.0]), r=A([2.0]), v_leak=A([0.0]), v_threshold=A([1.5]), v_reset=A([0.25]))
    out, pr = run(chain(lif), [[1], [1], [1], [0], [0]], probes=["n0/v"])
    np.testing.assert_array_equal(out[:, 0], [0, 0, 1, 0, 0])
    np.testing.assert_allclose(pr["n0/v"][:, 0], [1.0, 1.5, 0.25, 0.125, 0.0625], rtol=0, atol=1e-15)


def test_lif_starts_at_v_leak_and_per_neuron_parameters():
    """v(0) = v_leak is a fixed point without input; per-neuron thresholds act per neuron."""
    lif = nir.LIF(tau=A([2.0, 2.0]), r=A([1.0, 1.0]), v_leak=A([0.5, 0.0]), v_threshold=A([0.6, 0.4]))
    out, pr = run(chain(lif, shape=(2,)), np.zeros((3, 2)), probes=["n0/v"])
    np.testing.assert_allclose(pr["n0/v"], [[0.5, 0.0]] * 3)
    assert out.sum() == 0
    out, pr = run(chain(lif, shape=(2,)), [[0.2, 1.0]], probes=["n0/v"])
    # neuron 0: 0.5 + 0.5*(0.5 - 0.5 + 0.2) = 0.6, not > 0.6; neuron 1: 0.5 > 0.4 -> spike, v = 0
    np.testing.assert_allclose(pr["n0/v"], [[0.6, 0.0]])
    np.testing.assert_array_equal(out, [[0, 1]])


def test_cubalif_current_then_voltage_from_new_current():
    """dt/tau_syn = .5, dt/tau_mem = .25, w_in = 3, r = 2, threshold .9."""
    node = nir.CubaLIF(
        tau_syn=A([2.0]), tau_mem=A([4.0]), r=A([2.0]), v_leak=A([0.0]), v_threshold=A([0.9]), w_in=A([3.0])
    )
    out, pr = run(chain(node), [[1], [0], [0], [0]], probes=["n0/v", "n0/i"])
    np.testing.assert_allclose(pr["n0/i"][:, 0], [1.5, 0.75, 0.375, 0.1875])
    np.testing.assert_allclose(pr["n0/v"][:, 0], [0.75, 0.0, 0.1875, 0.234375])
    np.testing.assert_array_equal(out[:, 0], [0, 1, 0, 0])


def test_if_integrates_per_step_without_dt():
    """IF: v += r x each step whatever dt is; reset to v_reset (-0.5), not by subtraction."""
    node = nir.IF(r=A([0.5]), v_threshold=A([1.0]), v_reset=A([-0.5]))
    for dt in (1.0, 1e-4):
        out, pr = run(chain(node), np.ones((5, 1)), dt=dt, probes=["n0/v"])
        np.testing.assert_array_equal(out[:, 0], [0, 0, 1, 0, 0])
        np.testing.assert_allclose(pr["n0/v"][:, 0], [0.5, 1.0, -0.5, 0.0, 0.5])


def test_li_leaky_integrator_outputs_voltage():
    node = nir.LI(tau=A([2.0]), r=A([1.0]), v_leak=A([0.0]))
    out, pr = run(chain(node), [[2], [0], [0]], probes=["n0/v"])
    np.testing.assert_allclose(out[:, 0], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(pr["n0/v"][:, 0], out[:, 0])


def test_i_integrator_outputs_voltage_and_probes_input_current():
    node = nir.I(r=A([2.0]))
    out, pr = run(chain(node), [[1], [0], [3]], probes=["n0/v", "n0/i"])
    np.testing.assert_allclose(out[:, 0], [2.0, 2.0, 8.0])
    np.testing.assert_allclose(pr["n0/i"][:, 0], [1.0, 0.0, 3.0])


def test_cubali():
    node = nir.CubaLI(tau_syn=A([2.0]), tau_mem=A([2.0]), r=A([1.0]), v_leak=A([0.0]), w_in=A([1.0]))
    out, pr = run(chain(node), [[2], [0], [0]], probes=["n0/i"])
    np.testing.assert_allclose(pr["n0/i"][:, 0], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(out[:, 0], [0.5, 0.5, 0.375])


# -- stateless nodes --------------------------------------------------------------------------
def test_affine_linear_scale_threshold():
    w = A([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    out, _ = run(chain(nir.Affine(weight=w, bias=A([1.0, 0.0, -1.0])), shape=(2,)), [[1, -1]])
    np.testing.assert_allclose(out, [[0, -1, -2]])
    out, _ = run(chain(nir.Linear(weight=w), shape=(2,)), [[1, -1]])
    np.testing.assert_allclose(out, [[-1, -1, -1]])
    out, _ = run(chain(nir.Scale(scale=A([2.0, -3.0])), shape=(2,)), [[1, 2]])
    np.testing.assert_allclose(out, [[2, -6]])
    out, _ = run(chain(nir.Threshold(threshold=A([0.5, 1.0])), shape=(2,)), [[1, 1], [0.4, 1.5]])
    np.testing.assert_array_equal(out, [[1, 0], [0, 1]])


def _conv2d(weight, **kw):
    opts = dict(input_shape=None, stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(weight.shape[0]))
    opts.update(kw)
    return nir.Conv2d(weight=weight, **opts)


IMG = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [T=1, C=1, 3, 3]: 1..9


def test_conv2d_valid_bias_stride_padding_dilation():
    ones = np.ones((1, 1, 2, 2))
    out, _ = run(chain(_conv2d(ones, bias=A([1.0])), shape=(1, 3, 3)), IMG)
    np.testing.assert_allclose(out[0, 0], [[13, 17], [25, 29]])
    out, _ = run(chain(_conv2d(np.ones((1, 1, 3, 3)), stride=2, padding=1), shape=(1, 3, 3)), IMG)
    np.testing.assert_allclose(out[0, 0], [[12, 16], [24, 28]])
    out, _ = run(chain(_conv2d(ones, dilation=2), shape=(1, 3, 3)), IMG)
    np.testing.assert_allclose(out[0, 0], [[1 + 3 + 7 + 9]])


def test_conv2d_same_padding_is_cross_correlation_and_groups():
    k = np.zeros((1, 1, 3, 3))
    k[0, 0, 0, 0] = 1.0  # picks the upper-left neighbour (a flipped kernel would pick lower-right)
    out, _ = run(chain(_conv2d(k, padding="same"), shape=(1, 3, 3)), IMG)
    np.testing.assert_allclose(out[0, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
    two = np.concatenate([IMG, 10 * IMG], axis=1)  # 2 channels
    k = A([2.0, 3.0]).reshape(2, 1, 1, 1)
    out, _ = run(chain(_conv2d(k, groups=2), shape=(2, 3, 3)), two)
    np.testing.assert_allclose(out[0], [2 * IMG[0, 0], 30 * IMG[0, 0]])


def test_conv1d():
    node = nir.Conv1d(
        input_shape=None, weight=A([[[1.0, -1.0]]]), stride=1, padding="valid", dilation=1, groups=1, bias=A([0.5])
    )
    out, _ = run(chain(node, shape=(1, 4)), [[[1, 2, 3, 4]]])
    np.testing.assert_allclose(out[0, 0], [-0.5, -0.5, -0.5])


def test_sum_and_avg_pooling():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    node = nir.SumPool2d(kernel_size=A([2, 2]), stride=A([2, 2]), padding=A([0, 0]))
    out, _ = run(chain(node, shape=(1, 4, 4)), x)
    np.testing.assert_allclose(out[0, 0], [[10, 18], [42, 50]])
    node = nir.AvgPool2d(kernel_size=A([2, 2]), stride=A([2, 2]), padding=A([0, 0]))
    out, _ = run(chain(node, shape=(1, 4, 4)), x)
    np.testing.assert_allclose(out[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    node = nir.AvgPool2d(kernel_size=A([2, 2]), stride=A([2, 2]), padding=A([1, 1]))
    out, _ = run(chain(node, shape=(1, 2, 2)), [[[[1, 2], [3, 4]]]])
    np.testing.assert_allclose(out[0, 0], [[0.25, 0.5], [0.75, 1.0]])  # padding counts in the mean


def test_flatten_row_major():
    x = np.arange(12.0).reshape(1, 2, 2, 3)
    out, _ = run(chain(nir.Flatten(input_type=None, start_dim=1, end_dim=-1), shape=(2, 2, 3)), x)
    assert out.shape == (1, 2, 6)
    np.testing.assert_allclose(out[0], [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])


def test_delay_in_seconds_scalar_and_per_neuron():
    x = np.arange(1.0, 6.0)[:, None]
    out, _ = run(chain(nir.Delay(delay=A([2e-3]))), x, dt=1e-3)
    np.testing.assert_allclose(out[:, 0], [0, 0, 1, 2, 3])
    x3 = np.repeat(x, 3, axis=1)
    out, _ = run(chain(nir.Delay(delay=A([0.0, 1e-3, 3e-3])), shape=(3,)), x3, dt=1e-3)
    np.testing.assert_allclose(out, [[1, 0, 0], [2, 1, 0], [3, 2, 0], [4, 3, 1], [5, 4, 2]])


def test_delay_off_the_time_grid_is_an_error():
    with pytest.raises(ParameterError, match="whole number of time steps"):
        ReferenceBackend().build(chain(nir.Delay(delay=A([1.5e-3]))), dt=1e-3)


# -- graph structure --------------------------------------------------------------------------
def _loop(weight, bias):
    """x -> acc (Scale 1) -> fb (Affine) -> acc (recurrent) ; acc -> out."""
    nodes = {
        "in": nir.Input(input_type=A([1])),
        "acc": nir.Scale(scale=A([1.0])),
        "fb": nir.Affine(weight=A([[weight]]), bias=A([bias])),
        "out": nir.Output(output_type=None),
    }
    edges = [("in", "acc"), ("acc", "fb"), ("fb", "acc"), ("acc", "out")]
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def test_recurrent_edge_delivers_one_step_later():
    """acc[t] = x[t] + 0.5 acc[t-1]: an impulse decays by halves, one step per round trip."""
    graph = _loop(0.5, 0.0)
    assert graph.recurrent == {("fb", "acc")}
    out, pr = run(graph, [[1], [0], [0], [0]], probes=["fb"])
    np.testing.assert_allclose(out[:, 0], [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(pr["fb"][:, 0], [0.5, 0.25, 0.125, 0.0625])


def test_recurrent_edge_at_step_zero_carries_the_rest_output():
    """At t = 0 the loop delivers fb at rest = its bias 1: acc = 1, 1.5, 1.75."""
    out, _ = run(_loop(0.5, 1.0), np.zeros((3, 1)))
    np.testing.assert_allclose(out[:, 0], [1.0, 1.5, 1.75])


def test_several_inputs_summed_and_several_outputs():
    nodes = {
        "a": nir.Input(input_type=A([2])),
        "b": nir.Input(input_type=A([2])),
        "sa": nir.Scale(scale=A([1.0, 2.0])),
        "sb": nir.Scale(scale=A([10.0, 10.0])),
        "sum": nir.Scale(scale=A([1.0, 1.0])),
        "o1": nir.Output(output_type=None),
        "o2": nir.Output(output_type=None),
    }
    edges = [("a", "sa"), ("b", "sb"), ("sa", "sum"), ("sb", "sum"), ("sum", "o1"), ("sb", "o2"), ("a", "o2")]
    graph = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    prog = ReferenceBackend().build(graph)
    xa = A([[[1.0, 1.0], [2.0, 0.0]]])  # [batch 1, T 2, 2]
    xb = A([[[0.5, 0.0], [0.0, 1.0]]])
    res = prog.run({"a": xa, "b": xb})
    np.testing.assert_allclose(res.outputs["o1"][0], [[6, 2], [2, 10]])
    np.testing.assert_allclose(res.outputs["o2"][0], [[6, 1], [2, 10]])
    with pytest.raises(BackendError, match="several outputs"):
        _ = res.output
    with pytest.raises(ShapeError):
        prog.run(xa)  # one array for a two-input network


def test_probes_of_outputs_inputs_and_unknown_names():
    lif = nir.LIF(tau=A([2.0]), r=A([2.0]), v_leak=A([0.0]), v_threshold=A([1.5]))
    prog = ReferenceBackend().build(chain(lif), dt=1.0)
    res = prog.run(np.ones((2, 3, 1)), probes=["in", "n0", "n0/v"])
    np.testing.assert_array_equal(res.probes["in"], np.ones((2, 3, 1)))
    np.testing.assert_array_equal(res.probes["n0"], res.outputs["out"])
    assert res.probes["n0/v"].shape == (2, 3, 1)
    for bad in ("nope", "n0/i", "in/v"):
        with pytest.raises(BackendError, match="unknown probe"):
            prog.run(np.ones((3, 1)), probes=[bad])


def test_steps_option_pads_with_zero_input_and_counts_spikes():
    node = nir.IF(r=A([1.0]), v_threshold=A([0.5]))
    prog = ReferenceBackend().build(chain(node))
    res = prog.run(np.ones((2, 1)), steps=4)
    np.testing.assert_array_equal(res.output[0, :, 0], [1, 1, 0, 0])
    pop = res.activity.populations["n0"]
    assert (pop.spikes, pop.neuron_updates) == (2, 4)
    np.testing.assert_array_equal(pop.spikes_per_step, [1, 1, 0, 0])


# -- errors -----------------------------------------------------------------------------------
def test_build_errors_name_the_problem():
    lif = nir.LIF(tau=A([2.0]), r=A([1.0]), v_leak=A([0.0]), v_threshold=A([1.0]))
    backend = get_backend("reference")
    assert backend.name == "reference" and backend.level == "nir"
    with pytest.raises(ParameterError, match="dt"):
        backend.build(chain(lif), dt=0)
    with pytest.raises(ParameterError, match="tau") as err:
        backend.build(chain(lif), dt=3.0)
    assert "n0" in str(err.value)
    assert backend.problems(chain(lif), dt=1.0) == []
    problems = backend.problems(chain(lif), dt=3.0)
    assert len(problems) == 1 and "tau" in problems[0]
    with pytest.raises(BackendError, match="unknown build option"):
        backend.build(chain(lif), bits=8)
    with pytest.raises(BackendError, match="NIR-level"):
        backend.build({"not": "a graph"})
    bad = nir.LIF(tau=A([2.0, 2.0, 2.0]), r=A([1.0, 1.0, 1.0]), v_leak=A([0.0] * 3), v_threshold=A([1.0] * 3))
    bad.r = A([1.0, 1.0])  # per-neuron parameter of the wrong length
    with pytest.raises(ShapeError, match="'r'|parameter r"):
        backend.build(chain(bad, shape=(3,)))
    with pytest.raises(ShapeError, match="wrong shape"):
        backend.build(chain(lif)).run(np.ones((4, 2)))


# -- invariants -------------------------------------------------------------------------------
def _linear_net(w):
    """Linear -> CubaLI -> Delay: a linear time-invariant system with zero rest state."""
    n = w.shape[0]
    return chain(
        nir.Linear(weight=w),
        nir.CubaLI(tau_syn=np.full(n, 3e-4), tau_mem=np.full(n, 5e-4), r=np.ones(n), v_leak=np.zeros(n)),
        nir.Delay(delay=np.full(n, 2e-4)),
        shape=(w.shape[1],),
    )


floats = st.floats(-4, 4, allow_nan=False, allow_infinity=False)


@settings(max_examples=25, deadline=None)
@given(
    w=hnp.arrays(np.float64, (3, 2), elements=floats),
    x1=hnp.arrays(np.float64, (6, 2), elements=floats),
    x2=hnp.arrays(np.float64, (6, 2), elements=floats),
    a=floats,
    b=floats,
)
def test_property_linear_nodes_are_linear(w, x1, x2, a, b):
    """Linear/CubaLI/Delay: run(a x1 + b x2) == a run(x1) + b run(x2)."""
    prog = ReferenceBackend().build(_linear_net(w))
    batch = prog.run(np.stack([x1, x2, a * x1 + b * x2])).output
    np.testing.assert_allclose(batch[2], a * batch[0] + b * batch[1], rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    x=hnp.arrays(np.float64, (8, 2), elements=st.sampled_from([0.0, 1.0])),
    shift=st.integers(0, 5),
    v_leak=st.floats(-0.5, 0.5),
)
def test_property_spiking_net_is_time_invariant(x, shift, v_leak):
    """Neurons start at rest, so delaying the input by k steps delays every output by k."""
    lif = nir.LIF(tau=np.full(2, 3e-4), r=np.full(2, 2.0), v_leak=np.full(2, v_leak), v_threshold=np.full(2, 0.6))
    graph = chain(nir.Affine(weight=A([[1.0, 0.5], [-0.5, 1.0]]), bias=np.zeros(2)), lif, shape=(2,))
    prog = ReferenceBackend().build(graph)
    shifted = np.concatenate([np.zeros((shift, 2)), x])
    base = prog.run(x, steps=8 + shift, probes=["n1/v"])
    moved = prog.run(shifted, probes=["n1/v"])
    np.testing.assert_array_equal(moved.output[0, shift:], base.output[0, :8])
    np.testing.assert_allclose(moved.probes["n1/v"][0, shift:], base.probes["n1/v"][0, :8], rtol=0, atol=1e-12)
