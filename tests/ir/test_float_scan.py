"""The compiled scan (snnc.ir.float_scan) gives the numpy steps' bits: outputs, every recorded state
variable and the state it leaves, for every scanned kind, reset mode and parameter form; and the
float model uses it (when numba is loaded) with the same results as without it."""
from __future__ import annotations

import numpy as np
import nir
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.ir import float_scan
from snnc.ir.float_kernels import make_kernel

SHAPE = (3, 4)
DT = 1e-3


def _node(kind: str, reset: str, per_neuron: bool, unit: bool, rng) -> nir.NIRNode:
    def p(lo, hi):
        return rng.uniform(lo, hi, SHAPE) if per_neuron else np.array(rng.uniform(lo, hi))

    def c(value):  # a constant in the same form (NIR wants one shape for all parameters)
        return np.full(SHAPE, value) if per_neuron else np.array(value)

    leak = c(0.0) if unit else p(-0.3, 0.3)
    spiking = {"metadata": {"reset_mode": reset}, "v_threshold": p(0.2, 1.5), "v_reset": p(-0.2, 0.1)}
    if kind == "LIF":
        return nir.LIF(tau=p(2e-3, 2e-2), r=p(0.5, 2.0), v_leak=leak, **spiking)
    if kind == "LI":
        return nir.LI(tau=p(2e-3, 2e-2), r=p(0.5, 2.0), v_leak=leak)
    if kind == "IF":
        return nir.IF(r=p(0.5, 2.0), **spiking)
    cuba = {"tau_syn": c(DT) if unit else p(2e-3, 2e-2), "tau_mem": p(2e-3, 2e-2),
            "r": c(1.0) if unit else p(0.5, 2.0), "v_leak": leak, "w_in": c(1.0) if unit else p(0.5, 2.0)}
    if kind == "CubaLI":
        return nir.CubaLI(**cuba)
    return nir.CubaLIF(**cuba, **spiking)


def _stepped(kernel, x, state, watch):
    out, rec = [], {v: [] for v in watch}
    for t in range(x.shape[0]):
        out.append(kernel.step(x[t], state))
        for v in watch:
            rec[v].append(state[v])
    return np.stack(out), {v: np.stack(s) for v, s in rec.items()}


@pytest.mark.parametrize("kind", ["LIF", "LI", "IF", "CubaLIF", "CubaLI"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), per_neuron=st.booleans(), unit=st.booleans(), batch=st.integers(1, 3),
       scale=st.sampled_from([0.5, 3.0, 1e6]))
def test_scan_equals_the_numpy_steps_bit_for_bit(kind, reset, seed, per_neuron, unit, batch, scale):
    rng = np.random.default_rng(seed)
    node = _node(kind, reset, per_neuron, unit, rng)
    a, b = make_kernel(node, SHAPE, SHAPE, DT, "test"), make_kernel(node, SHAPE, SHAPE, DT, "test")
    assert type(a) in float_scan.SCANNED
    x = rng.normal(0, scale, (2, 17, batch, *SHAPE))  # two blocks: the second starts from the first's state
    sa, sb = a.init(batch), b.init(batch)
    watch = tuple(v for v in ("i", "v", "v_in", "z") if v in sa or (v == "v_in" and a.spiking))
    for block in x:
        want, want_rec = _stepped(a, block, sa, watch)
        got, got_rec = float_scan.scan(b, block, sb, watch)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got.shape == want.shape
        for v in watch:
            np.testing.assert_array_equal(got_rec[v], want_rec[v], err_msg=v)
        assert sa.keys() == sb.keys()
        for v in sa:
            np.testing.assert_array_equal(sb[v], sa[v], err_msg=v)


def test_the_float_model_with_and_without_the_scan(monkeypatch):
    """A net of every scanned kind, two of them in a recurrent loop (stepped one compiled step at a
    time), the others after it (a block at a time): the reference backend's spikes and probes are
    the same with the compiled steps and without them."""
    import snnc.ir.float_model as FM
    from snnc.backends.base import get_backend

    rng = np.random.default_rng(3)
    n = 5
    nodes = {"in": nir.Input(np.array([n])), "w0": nir.Affine(rng.normal(0, 1, (n, n)), rng.normal(0, 0.1, n))}
    chain = ["w0"]
    for i, kind in enumerate(["LIF", "CubaLIF", "IF", "CubaLI", "LI"]):
        node = _node(kind, ["zero", "subtract", "none"][i % 3], True, False, rng)
        node = type(node)(**{k: (np.resize(v, n) if isinstance(v, np.ndarray) and v.ndim else v) for k, v in node.__dict__.items()
                             if k in node.__dataclass_fields__ and k not in ("input_type", "output_type")})
        nodes[f"n{i}"] = node
        nodes[f"w{i + 1}"] = nir.Affine(rng.normal(0, 1, (n, n)), np.zeros(n))
        chain += [f"n{i}", f"w{i + 1}"]
    nodes["out"] = nir.Output(np.array([n]))
    edges = [("in", "w0"), *zip(chain, chain[1:]), (chain[-1], "out"), ("n1", "w0")]  # n1 -> w0: a loop over w0, n0, w1, n1
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    x = rng.normal(0, 2, (2, 40, n))
    probes = [f"n{i}/v" for i in range(5)]
    plain, fast, scanned = [], [], []
    real = FM._compiled_scan
    for use, runs in ((False, plain), (True, fast)):
        with monkeypatch.context() as m:
            def counted(kernel, use=use):
                scan = real(kernel) if use else None
                if scan is not None:
                    scanned.append(type(kernel).__name__)
                return scan

            m.setattr(FM, "_compiled_scan", counted)
            runs.append(get_backend("reference").build(graph, dt=DT).run(x, probes=probes))
    # every neuron: LIF and CubaLIF a step at a time inside the loop, the other three a block at a time
    assert sorted(scanned) == ["CubaLIFKernel", "CubaLIKernel", "IFKernel", "LIFKernel", "LIKernel"]
    for name in plain[0].outputs:
        np.testing.assert_array_equal(fast[0].outputs[name], plain[0].outputs[name])
    for p in probes:
        np.testing.assert_array_equal(fast[0].probes[p], plain[0].probes[p])
    assert np.count_nonzero(plain[0].outputs[next(iter(plain[0].outputs))]) > 0


def test_the_scan_is_called_only_with_its_declared_signature():
    """Whatever the input's dtype and layout (float32, a transposed view, read-only), the float model
    calls `_scan` with the one signature `warmup` compiles ahead (SIGNATURES), so a fresh process
    loads it instead of compiling it; and warmup lists the module."""
    from snnc.backends.base import get_backend
    from snnc.backends.sim import warmup

    rng = np.random.default_rng(4)
    n = 4
    graph = nir.NIRGraph(nodes={"in": nir.Input(np.array([n])), "w": nir.Affine(rng.normal(0, 1, (n, n)), np.zeros(n)),
                                "lif": nir.LIF(tau=np.full(n, 5e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 0.5),
                                               v_reset=np.zeros(n), metadata={"reset_mode": "subtract"}),
                                "out": nir.Output(np.array([n]))}, edges=[("in", "w"), ("w", "lif"), ("lif", "out")])
    x = rng.normal(0, 2, (3, 20, n))
    frozen = x.copy()
    frozen.flags.writeable = False
    for data in (x, x.astype(np.float32), np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2), frozen):
        get_backend("reference").build(graph, dt=DT).run(data, probes=["lif/v"])
    assert set(float_scan._scan.signatures) <= set(float_scan.SIGNATURES["_scan"])
    assert float_scan in warmup.kernel_modules()
