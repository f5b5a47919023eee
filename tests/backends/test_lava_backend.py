"""The lava backend: ChipGraphs become real Lava processes that compute what the compiler chose.

Expectations are worked out by hand from docs/loihi-fixed-point.md (Lava 0.10.0's fixed-point
models), from torch's conv2d, or from lava-dl's recordings; never from snnc's own simulator.
Time convention: input index t is sent at Lava step t+1; output index t is the state after Lava
step t+1, so a spike at input index t changes a target's `u` at index t+1.
"""
from __future__ import annotations


import numpy as np
import psutil
import pytest
import scipy.sparse as sp

from snnc.backends.base import get_backend
from snnc.backends.lava import LavaBackend, conv_kernel_from_lava, conv_kernel_to_lava, emit
from snnc.backends.lava.runner import group_pids, import_lava, make_run_config
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import BackendError, ShapeError

T = 16


# -- a graph of small independent circuits, each with a hand-computed trajectory -------------------
def hand_graph() -> ChipGraph:
    """Input channels: 0 spikes every step; 1 at t=0 only; 2,3 at t=0; 4 at t=2; 5 at t=0."""
    g = ChipGraph()
    g.add(InputPopulation("unused", (2,)))  # connected to nothing, and first: Lava must still run the rest
    g.add(InputPopulation("x", (6,)))
    g.add(InputPopulation("graded", (3,), num_message_bits=8))

    def one_hot(rows, cols, n_in=6):
        w = np.zeros((len(rows), n_in), dtype=np.int64)
        for r, (c, val) in enumerate(zip(cols, rows)):
            w[r, c] = val
        return w

    # a: integrate-and-fire, no decay. u = 10 << 6 = 640 from t=1 on; v > 20 << 6 = 1280 every 3rd.
    g.add(Population("a", (1,), du=4095, dv=0, vth=20))
    g.add(Projection("x_a", "x", "a", one_hot([10], [0])))
    # b: u and v both halve each step (du=2047 -> factor 2048/4096, dv=2048), truncated toward 0.
    g.add(Population("b", (1,), du=2047, dv=2048, vth=100_000))
    g.add(Projection("x_b", "x", "b", one_hot([100], [1])))
    # c: mixed weights 3, -3 at 8 bits lose their low bit (2, -4), then weight_exp=1 doubles.
    g.add(Population("c", (2,), du=4095, dv=0, vth=100_000))
    g.add(Projection("x_c", "x", "c", one_hot([3, -3], [2, 3]), weight_exp=1))
    # c6: 13, -13 at 6 bits (mixed: drop 3 bits) -> 8, -16; weight_exp=-2 floors: 2, -4.
    g.add(Population("c6", (2,), du=4095, dv=0, vth=100_000))
    g.add(Projection("x_c6", "x", "c6", one_hot([13, -13], [2, 3]), weight_exp=-2, num_weight_bits=6))
    # d: delay 3 (dense) and 2 (sparse): the t=0 spike reaches u at 1+3 and 1+2.
    g.add(Population("d", (2,), du=4095, dv=0, vth=100_000))
    g.add(Projection("x_d", "x", "d", one_hot([5, 0], [1, 1]), delay=3))
    g.add(Projection("x_d_sparse", "x", "d", sp.csr_matrix(one_hot([0, 7], [1, 1])), kind="sparse", delay=2))
    # e: a spike ping-pongs between two neurons through a recurrent projection (and x also feeds e0).
    g.add(Population("e", (2,), du=4095, dv=0, vth=10))
    g.add(Projection("x_e", "x", "e", one_hot([20, 0], [5, 5])))
    g.add(Projection("e_e", "e", "e", np.array([[0, 20], [20, 0]])))
    # f: LIFReset every 4 steps (time_step % 4 == 0 -> indices 3, 7, 11, 15); bias 1 per step.
    g.add(Population("f", (1,), du=0, dv=0, vth=100_000, bias_mant=1, model="lif_reset", reset_interval=4))
    # t: ternary, +1 above 5 << 6, -1 below -5 << 6.
    g.add(Population("t", (2,), du=4095, dv=0, model="ternary", vth_hi=5, vth_lo=-5))
    g.add(Projection("x_t", "x", "t", one_hot([10, -10], [1, 4])))
    # h: graded input payloads [5, 0, 3] at t=0 times weights [2, 4, 6] = 28.
    g.add(Population("h", (1,), du=4095, dv=4095, vth=100_000))
    g.add(Projection("g_h", "graded", "h", np.array([[2, 4, 6]]), num_message_bits=8))
    # i: bias 3 << 2 = 12 per step; spikes once v > 1 << 6 = 64, i.e. at v = 72.
    g.add(Population("i", (1,), du=0, dv=0, vth=1, bias_mant=3, bias_exp=2))
    # j: two projections into one population are summed: (10 + 7) << 6 at t=1.
    g.add(Population("j", (1,), du=4095, dv=4095, vth=100_000))
    g.add(Projection("x_j1", "x", "j", one_hot([10], [0])))
    g.add(Projection("x_j2", "x", "j", one_hot([7], [1])))
    g.outputs["a"] = OutputPort("a", "s")
    g.outputs["e"] = OutputPort("e", "s")
    g.outputs["t"] = OutputPort("t", "s")
    g.outputs["i"] = OutputPort("i", "s")
    return g.validate()


def hand_inputs():
    x = np.zeros((T, 6), dtype=np.int64)
    x[:, 0] = 1
    x[0, 1] = x[0, 2] = x[0, 3] = x[0, 5] = 1
    x[2, 4] = 1
    graded = np.zeros((T, 3), dtype=np.int64)
    graded[0] = [5, 0, 3]
    return {"x": x, "graded": graded, "unused": np.ones((T, 2), dtype=np.int64)}


HAND_PROBES = ["a/u", "a/v", "b/u", "b/v", "c/u", "c6/u", "d/u", "f/v", "h/u", "j/u", "graded", "x/s", "unused"]


def expected_hand():
    exp = {}
    exp["a/u"] = np.array([0] + [640] * (T - 1))
    v, spikes = [], []
    acc = 0
    for u in exp["a/u"]:
        acc += u
        spikes.append(int(acc > 1280))
        acc = 0 if acc > 1280 else acc
        v.append(acc)
    exp["a/v"], exp["a"] = np.array(v), np.array(spikes)
    assert list(np.flatnonzero(exp["a"])) == [3, 6, 9, 12, 15]
    exp["b/u"] = np.array([0, 6400, 3200, 1600, 800, 400, 200, 100, 50, 25, 12, 6, 3, 1, 0, 0])
    exp["b/v"] = np.array([0, 6400, 6400, 4800, 3200, 2000, 1200, 700, 400, 225, 124, 68, 37, 19, 9, 4])
    exp["c/u"] = np.zeros((T, 2), dtype=np.int64)
    exp["c/u"][1] = [2 * 2 * 64, -4 * 2 * 64]
    exp["c6/u"] = np.zeros((T, 2), dtype=np.int64)
    exp["c6/u"][1] = [(8 >> 2) * 64, (-16 >> 2) * 64]
    exp["d/u"] = np.zeros((T, 2), dtype=np.int64)
    exp["d/u"][4, 0] = 5 * 64
    exp["d/u"][3, 1] = 7 * 64
    e = np.zeros((T, 2), dtype=np.int64)
    e[1::2, 0] = 1  # e0: driven by x at t=1, then by e1 every other step
    e[2::2, 1] = 1
    exp["e"] = e
    exp["f/v"] = np.array([1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1])
    tern = np.zeros((T, 2), dtype=np.int64)
    tern[1, 0] = 1
    tern[3, 1] = -1
    exp["t"] = tern
    exp["h/u"] = np.zeros(T, dtype=np.int64)
    exp["h/u"][1] = 28 * 64
    i = np.zeros(T, dtype=np.int64)
    i[[5, 11]] = 1
    exp["i"] = i
    exp["j/u"] = np.array([0, (10 + 7) * 64] + [640] * (T - 2))
    exp["graded"], exp["x/s"], exp["unused"] = (hand_inputs()[k] for k in ("graded", "x", "unused"))
    return exp


@pytest.fixture(scope="module")
def hand_result():
    program = LavaBackend().build(hand_graph())
    return program.run(hand_inputs(), probes=HAND_PROBES)


@pytest.mark.lava
@pytest.mark.parametrize("key", HAND_PROBES + ["a", "e", "t", "i"])
def test_hand_computed_trajectories(hand_result, key):
    """Every circuit follows the trajectory computed by hand from the fixed-point rules."""
    exp = expected_hand()[key]
    got = hand_result.probes[key] if key in HAND_PROBES else hand_result.outputs[key]
    shape = got.shape
    assert shape[:2] == (1, T)
    np.testing.assert_array_equal(got[0].reshape(T, -1), np.asarray(exp).reshape(T, -1))


@pytest.mark.lava
def test_result_contract(hand_result):
    """Outputs are [batch, T, *shape] integer arrays keyed by output name; probes by request."""
    assert set(hand_result.outputs) == {"a", "e", "t", "i"}
    assert set(hand_result.probes) == set(HAND_PROBES)
    assert hand_result.outputs["e"].shape == (1, T, 2)
    assert hand_result.outputs["e"].dtype == np.int64
    assert hand_result.backend == "lava"
    assert hand_result.activity is None


# -- the processes carry the compiler's values ------------------------------------------------------
def param_graph() -> ChipGraph:
    g = ChipGraph()
    g.add(InputPopulation("x", (2, 3, 4)))
    g.add(Population("p", (6,), du=123, dv=456, vth=789, bias_mant=-7, bias_exp=3))
    g.add(Population("r", (2, 4, 2), du=11, dv=22, vth=33, bias_mant=np.arange(16).reshape(2, 4, 2) - 8, bias_exp=1,
                     model="lif_reset", reset_interval=5, reset_offset=2))
    g.add(Population("q", (3,), du=1, dv=2, model="ternary", vth_hi=40, vth_lo=-30))
    rng = np.random.default_rng(3)
    w_dense = rng.integers(-100, 100, size=(6, 24))
    g.add(Projection("dense", "x", "p", w_dense, weight_exp=-3, num_weight_bits=5))
    w_sparse = sp.random(3, 6, density=0.5, random_state=4, format="csr", data_rvs=lambda n: -rng.integers(2, 200, n))
    g.add(Projection("sparse", "p", "q", w_sparse, kind="sparse", weight_exp=2, num_weight_bits=7))
    delays = rng.integers(0, 5, size=(6, 6))
    g.add(Projection("delayed", "p", "p", rng.integers(0, 50, size=(6, 6)) * 4, delay=delays, num_weight_bits=6))
    g.add(Projection("sparse_delayed", "q", "q", sp.csr_matrix(np.eye(3, dtype=int) * 9), kind="sparse", delay=4,
                     num_message_bits=2))
    kernel = rng.integers(-60, 60, size=(2, 1, 2, 3)) * 2
    geom = ConvGeometry((2, 3, 4), (2, 4, 2), kernel=(2, 3), stride=(1, 1), padding=(1, 0), dilation=(1, 1), groups=2)
    g.add(Projection("conv", "x", "r", kernel, kind="conv", conv=geom))
    return g.validate()


@pytest.mark.lava
@pytest.mark.timeout(120)  # Lava runs inside the test process here, outside the backend's time limit
def test_vars_hold_the_compilers_values():
    """Read every parameter back from the Lava processes' Vars (Lava ignores misspelt kwargs)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFReset, TernaryLIF
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode

    g = param_graph()
    x = np.zeros((3, 2, 3, 4), dtype=np.int64)
    x[1, 0, 1, 2] = 1
    net = emit(g, inputs={"x": x})
    assert type(net.inputs["x"]) is RingBuffer
    np.testing.assert_array_equal(net.inputs["x"].data.init, np.moveaxis(x, 0, -1))

    p, r, q = (net.populations[n] for n in "prq")
    assert type(p) is LIF and type(r) is LIFReset and type(q) is TernaryLIF
    for proc, pop in ((p, g.populations["p"]), (r, g.populations["r"]), (q, g.populations["q"])):
        assert proc.du.init == pop.du and proc.dv.init == pop.dv
        np.testing.assert_array_equal(np.broadcast_to(proc.bias_mant.init, pop.shape), np.broadcast_to(pop.bias_mant, pop.shape))
        np.testing.assert_array_equal(np.broadcast_to(proc.bias_exp.init, pop.shape), np.broadcast_to(pop.bias_exp, pop.shape))
        assert tuple(proc.u.shape) == pop.shape and tuple(proc.v.shape) == pop.shape
    assert p.vth.init == 789 and r.vth.init == 33
    assert (q.vth_hi.init, q.vth_lo.init) == (40, -30)
    assert (r.proc_params["reset_interval"], r.proc_params["reset_offset"]) == (5, 2)

    dense, sparse, delayed, sdel, conv = (net.projections[n] for n in ("dense", "sparse", "delayed", "sparse_delayed", "conv"))
    assert type(dense) is Dense and type(sparse) is Sparse and type(delayed) is DelayDense
    assert type(sdel) is DelaySparse and type(conv) is Conv
    np.testing.assert_array_equal(dense.weights.init, g.projections["dense"].weights)
    assert dense.proc_params["weight_exp"] == -3 and dense.proc_params["num_weight_bits"] == 5
    assert dense.proc_params["sign_mode"] is SignMode.MIXED
    np.testing.assert_array_equal(sparse.weights.init.toarray(), g.projections["sparse"].weights.toarray())
    assert sparse.proc_params["weight_exp"] == 2 and sparse.proc_params["num_weight_bits"] == 7
    assert sparse.proc_params["sign_mode"] is SignMode.INHIBITORY
    np.testing.assert_array_equal(delayed.delays.init, g.projections["delayed"].delay)
    assert delayed.proc_params["num_weight_bits"] == 6
    assert sdel.delays.init.toarray().max() == 4 and sdel.num_message_bits.init == 2
    np.testing.assert_array_equal(conv.weight.init, conv_kernel_to_lava(g.projections["conv"].weights))
    assert tuple(conv.input_shape) == (4, 3, 2)  # Lava's (W, H, C)
    np.testing.assert_array_equal(conv.padding.init, (0, 1))  # Lava's (x=w, y=h)
    assert conv.groups.init == 2 and conv.weight_exp.init == 0 and conv.num_weight_bits.init == 8

    # Inside a running Lava: the models hold the same values; Dense/Sparse truncated their weights.
    import_lava()
    from lava.magma.core.run_conditions import RunSteps

    proc = net.any_process()
    proc.run(condition=RunSteps(num_steps=2), run_cfg=make_run_config("fixed_pt"))
    try:
        assert p.du.get()[0] == 123 and p.dv.get()[0] == 456 and p.vth.get()[0] == 789
        np.testing.assert_array_equal(p.bias_mant.get(), np.full(6, -7))
        np.testing.assert_array_equal(p.bias_exp.get(), np.full(6, 3))
        np.testing.assert_array_equal(r.bias_mant.get(), g.populations["r"].bias_mant)
        assert q.vth_hi.get()[0] == 40 and q.vth_lo.get()[0] == -30
        np.testing.assert_array_equal(dense.weights.get(), g.projections["dense"].effective_weights())
        np.testing.assert_array_equal(delayed.weights.get(), g.projections["delayed"].effective_weights())
        np.testing.assert_array_equal(delayed.delays.get(), g.projections["delayed"].delay)
        np.testing.assert_array_equal(sparse.weights.get().toarray(), g.projections["sparse"].effective_weights().toarray())
        np.testing.assert_array_equal(conv.weight.get(), conv_kernel_to_lava(g.projections["conv"].weights))
    finally:
        proc.stop()


# -- floating point models --------------------------------------------------------------------------
@pytest.mark.lava
def test_floating_pt_runs_lavas_float_models_in_fixed_units():
    """tag="floating_pt": same network on Lava's float models, same units, no truncation."""
    g = ChipGraph()
    g.add(InputPopulation("x", (2,)))
    g.add(Population("a", (1,), du=4095, dv=0, vth=20))
    g.add(Projection("x_a", "x", "a", np.array([[5, 0]]), weight_exp=1))  # 5 << 1 = 10 per spike
    g.add(Population("b", (1,), du=2047, dv=1024, vth=100_000, bias_mant=3, bias_exp=1))
    g.add(Projection("x_b", "x", "b", np.array([[0, 100]])))
    g.outputs["a"] = OutputPort("a")
    x = np.zeros((T, 2), dtype=np.int64)
    x[:, 0] = 1
    x[0, 1] = 1
    res = LavaBackend().build(g, tag="floating_pt").run(x, probes=["a/v", "b/u", "b/v"])
    exp = expected_hand()
    assert res.outputs["a"].dtype == np.float64
    np.testing.assert_array_equal(res.outputs["a"][0, :, 0], exp["a"])  # nothing to round: as fixed
    np.testing.assert_array_equal(res.probes["a/v"][0, :, 0], exp["a/v"])
    # b: u halves exactly ((2047 + 1) / 4096), v keeps 3/4 and gains u and bias 3 * 2 each step.
    u, v, us, vs = 0.0, 0.0, [], []
    for t in range(T):
        u = u * 0.5 + (6400.0 if t == 1 else 0.0)
        v = v * 0.75 + u + 6.0
        us.append(u)
        vs.append(v)
    np.testing.assert_array_equal(res.probes["b/u"][0, :, 0], us)
    np.testing.assert_array_equal(res.probes["b/v"][0, :, 0], vs)
    assert res.probes["b/u"][0, 10, 0] == 12.5  # the fixed model truncates this to 12


# -- convolution and layouts ------------------------------------------------------------------------
@pytest.mark.lava
def test_conv_and_reshapes_match_torch():
    """Conv (stride, padding, dilation, groups) equals torch's conv2d; flatten/reshape keep C order."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    g = ChipGraph()
    g.add(InputPopulation("img", (4, 5, 6)))
    geom = ConvGeometry((4, 5, 6), (4, 3, 4), kernel=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    kernel = rng.integers(-10, 11, size=(4, 2, 3, 2)) * 2
    g.add(Population("fm", (4, 3, 4), du=4095, dv=0, vth=3))
    g.add(Projection("conv", "img", "fm", kernel, kind="conv", conv=geom))
    w_fc = rng.integers(-30, 31, size=(3, 48)) * 2
    g.add(Population("fc", (3,), du=4095, dv=0, vth=100_000))
    g.add(Projection("flat", "fm", "fc", w_fc))
    g.add(InputPopulation("vec", (12,)))
    w_cube = rng.integers(0, 40, size=(12, 12))
    g.add(Population("cube", (3, 2, 2), du=4095, dv=0, vth=100_000))
    g.add(Projection("to_cube", "vec", "cube", w_cube))
    steps = 5
    img = (rng.random((steps, 4, 5, 6)) < 0.5).astype(np.int64)
    vec = (rng.random((steps, 12)) < 0.5).astype(np.int64)
    res = LavaBackend().build(g).run({"img": img, "vec": vec}, probes=["fm/u", "fm/s", "fc/u", "cube/u"])
    fm_u, fm_s, fc_u, cube_u = (res.probes[k][0] for k in ("fm/u", "fm/s", "fc/u", "cube/u"))
    ref = F.conv2d(torch.tensor(img, dtype=torch.float64), torch.tensor(kernel, dtype=torch.float64),
                   stride=geom.stride, padding=geom.padding, dilation=geom.dilation, groups=geom.groups).numpy()
    assert fm_s.sum() > 0
    np.testing.assert_array_equal(fm_u[0], 0)
    np.testing.assert_array_equal(fm_u[1:], ref[:-1] * 64)
    w_eff = g.projections["flat"].effective_weights()
    for t in range(1, steps):
        np.testing.assert_array_equal(fc_u[t], (w_eff @ fm_s[t - 1].reshape(-1)) * 64)
        np.testing.assert_array_equal(cube_u[t], (w_cube @ vec[t - 1]).reshape(3, 2, 2) * 64)


def test_conv_kernel_layout_round_trip():
    """torch [Cout, Cin/g, kh, kw] <-> Lava (Cout, kx, ky, Cin/g), spatially flipped, both ways."""
    k = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    lava = conv_kernel_to_lava(k)
    assert lava.shape == (2, 5, 4, 3)
    assert lava[1, 0, 0, 2] == k[1, 2, 3, 4]  # x=0, y=0 of the flipped kernel = torch's last (h, w)
    np.testing.assert_array_equal(conv_kernel_from_lava(lava), k)


# -- lava-dl's tinynet, from its kernel and bias files ---------------------------------------------
def _with_lava_dl_kernel(proj_args: dict, kernel: np.ndarray) -> Projection:
    """A conv Projection holding lava-dl's kernel as is.

    ChipGraph demands conv weights on the num_weight_bits grid (even numbers for mixed signs at 8
    bits) although Lava's fixed-point Conv applies no truncation; lava-dl's tinynet kernel has odd
    entries, so the projection is built with an even kernel and then given the real one.
    """
    proj = Projection(**proj_args, weights=kernel - (kernel % 2))
    proj.weights = kernel
    return proj


@pytest.mark.lava
@pytest.mark.refdata
def test_tinynet_layer1_reproduces_lava_dl_recordings(refdata):
    """Input block (bias driven) -> conv 5x5/2 -> LIF layer: spikes and currents as lava-dl recorded."""
    h5py = pytest.importorskip("h5py")
    d = refdata / "lava-dl" / "tinynet"
    kernel = conv_kernel_from_lava(np.load(d / "layer1_kernel.npy"))
    with h5py.File(d / "tiny.net", "r") as f:
        np.testing.assert_array_equal(f["layer/1/weight"][()][..., 0], kernel)  # netx agrees on the layout
        neuron = {k: int(f[f"layer/1/neuron/{k}"][()]) for k in ("iDecay", "vDecay", "vThMant")}
        stride = tuple(int(s) for s in f["layer/1/stride"][()])
    in_bias = np.load(d / "input_bias.npy").transpose(2, 1, 0)  # lava (W, H, C) -> (C, H, W)
    l1_bias = np.load(d / "layer1_bias.npy")
    lif = dict(du=neuron["iDecay"] - 1, dv=neuron["vDecay"], vth=neuron["vThMant"], bias_exp=6)
    g = ChipGraph()
    g.add(Population("input_block", (3, 16, 16), bias_mant=in_bias, **lif))
    # lava-dl's test zeroes layer 1's u and v after step 1; a LIFReset at step 2 does the same.
    g.add(Population("layer1", (24, 6, 6), bias_mant=np.broadcast_to(l1_bias[:, None, None], (24, 6, 6)),
                     model="lif_reset", reset_interval=1000, reset_offset=2, **lif))
    geom = ConvGeometry((3, 16, 16), (24, 6, 6), kernel=(5, 5), stride=stride)
    g.add(_with_lava_dl_kernel(dict(name="conv1", src="input_block", dst="layer1", kind="conv", conv=geom), kernel))
    g.outputs["input_block"] = OutputPort("input_block")
    g.outputs["layer1"] = OutputPort("layer1")
    res = LavaBackend().build(g.validate()).run(None, steps=16, probes=["layer1/u"])

    spikes_in = np.load(d / "input.npy")[0].transpose(3, 0, 1, 2)  # -> [T, C, H, W]
    current = np.load(d / "current.npy")[0].transpose(3, 0, 1, 2)
    spikes_l1 = np.load(d / "layer1.npy")[0].transpose(3, 0, 1, 2)
    assert spikes_in.sum() > 1000 and spikes_l1[1:].sum() > 500
    # lava-dl's input recording is one step ahead of Lava's time steps
    np.testing.assert_array_equal(res.outputs["input_block"][0, :15], spikes_in[1:])
    np.testing.assert_array_equal(res.probes["layer1/u"][0], current * 64)
    np.testing.assert_array_equal(res.outputs["layer1"][0, 1:], spikes_l1[1:])


# -- robustness: time limits, crashes, teardown -----------------------------------------------------
def _descendants() -> set[int]:
    """Our live descendants, except Python's shared-memory resource tracker (lives as long as we do)."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE or "resource_tracker" in " ".join(child.cmdline()):
                continue
            out.add(child.pid)
        except psutil.Error:
            continue
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """After every test in this file, no process it started is still running."""
    before = _descendants()
    yield
    left = _descendants() - before
    assert not left, f"processes left behind: {[psutil.Process(p).cmdline() for p in left]}"


def small_graph() -> ChipGraph:
    g = ChipGraph()
    g.add(InputPopulation("x", (3,)))
    g.add(Population("hidden", (3,), du=4095, dv=0, vth=1))
    g.add(Projection("w", "x", "hidden", np.eye(3, dtype=np.int64) * 100))
    g.outputs["out"] = OutputPort("hidden")
    return g.validate()


@pytest.mark.lava
def test_time_limit_stops_a_long_run_and_ends_every_process():
    """A 200k-step run with a 0.5 s limit: clean BackendError, worker and all Lava processes gone."""
    program = LavaBackend().build(small_graph(), timeout=0.5, progress=False)
    x = np.zeros((200_000, 3), dtype=np.int64)
    with pytest.raises(BackendError, match="time limit") as info:
        program.run(x)
    msg = str(info.value)
    assert "sample 0" in msg and "at most 0.5 s" in msg
    assert "Lava process" in msg or "not started its processes" in msg
    pgid = program.last_worker_pid  # the worker leads the process group of every Lava process
    assert pgid is not None and group_pids(pgid) == []


@pytest.mark.lava
def test_time_limit_names_the_hanging_lava_process(monkeypatch):
    """A LIF model stuck in a loop at step 3: the error names population 'hidden' as the culprit."""
    from lava.proc.lif import models

    original = models.PyLifModelBitAcc.spiking_activation

    def stuck(self):
        while self.time_step == 3:
            pass
        return original(self)

    monkeypatch.setattr(models.PyLifModelBitAcc, "spiking_activation", stuck)
    program = LavaBackend().build(small_graph(), timeout=2.5, progress=False)
    with pytest.raises(BackendError, match="time limit") as info:
        program.run(np.zeros((20, 3), dtype=np.int64))
    assert "population 'hidden' (LIF)" in str(info.value)
    assert group_pids(program.last_worker_pid) == []


@pytest.mark.lava
def test_crashing_lava_process_is_named(monkeypatch):
    """A model that raises at step 4: the error names the population and quotes the exception."""
    from lava.proc.lif import models

    original = models.PyLifModelBitAcc.spiking_activation

    def broken(self):
        if self.time_step == 4:
            raise ValueError("membrane on fire")
        return original(self)

    monkeypatch.setattr(models.PyLifModelBitAcc, "spiking_activation", broken)
    program = LavaBackend().build(small_graph(), timeout=30, progress=False)
    with pytest.raises(BackendError, match="membrane on fire") as info:
        program.run(np.zeros((20, 3), dtype=np.int64))
    assert "population 'hidden' (LIF)" in str(info.value)
    assert group_pids(program.last_worker_pid) == []


@pytest.mark.lava
def test_interrupt_in_the_caller_ends_every_process(monkeypatch):
    """Ctrl-C (KeyboardInterrupt) while Lava runs: it propagates and no process is left behind."""
    import tqdm.auto

    class Interrupting(tqdm.auto.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    monkeypatch.setattr(tqdm.auto, "tqdm", Interrupting)
    program = LavaBackend().build(small_graph(), progress=True, timeout=60)
    with pytest.raises(KeyboardInterrupt):
        program.run(np.zeros((100_000, 3), dtype=np.int64))
    assert group_pids(program.last_worker_pid) == []


# -- run configurations and batches -----------------------------------------------------------------
def test_hardware_without_loihi_extension_is_a_clear_error():
    """Loihi2HwCfg needs Intel's extension: the error says what is missing and what to install."""
    from snnc.backends.lava.runner import loihi_extension_missing

    assert loihi_extension_missing(), "this test assumes the Loihi extension is not installed"
    with pytest.raises(BackendError, match="Loihi extension") as info:
        LavaBackend().build(small_graph(), hardware=True)
    msg = str(info.value)
    assert "lava.magma.core.model.nc.model" in msg and "lava-loihi" in msg and "Loihi2SimCfg" in msg
    assert any("Loihi extension" in p for p in LavaBackend().problems(small_graph(), hardware=True))
    assert LavaBackend().problems(small_graph()) == []


def reset_graph() -> ChipGraph:
    """Recurrent, delayed, leaky and LIFReset state: everything that must not leak between samples."""
    g = ChipGraph()
    g.add(InputPopulation("x", (4,)))
    g.add(Population("h", (5,), du=1000, dv=300, vth=30, bias_mant=2, bias_exp=3))
    g.add(Population("r", (3,), du=200, dv=100, vth=400, model="lif_reset", reset_interval=3, reset_offset=1))
    rng = np.random.default_rng(11)
    g.add(Projection("xh", "x", "h", rng.integers(-40, 60, size=(5, 4)) * 2))
    g.add(Projection("hh", "h", "h", rng.integers(-30, 30, size=(5, 5)) * 2, delay=rng.integers(0, 4, (5, 5))))
    g.add(Projection("hr", "h", "r", rng.integers(0, 90, size=(3, 5)), delay=2))
    g.outputs["h"] = OutputPort("h")
    g.outputs["r_v"] = OutputPort("r", "v")
    return g.validate()


@pytest.mark.lava
def test_batch_strategies_agree_and_reset_state_between_samples():
    """'reset' (one network, zeroed Vars, LIFReset-aligned padding) equals 'rebuild' (fresh network)."""
    rng = np.random.default_rng(5)
    x = (rng.random((3, 7, 4)) < 0.4).astype(np.int64)
    x[2] = x[0]  # a repeated sample must give the same result whatever ran before it
    res = {}
    for strategy in ("rebuild", "reset"):
        program = LavaBackend().build(reset_graph(), strategy=strategy, progress=False)
        res[strategy] = program.run(x, probes=["h/u"])
        assert program.last_strategy == strategy
    for key in ("h", "r_v"):
        np.testing.assert_array_equal(res["reset"].outputs[key], res["rebuild"].outputs[key])
        np.testing.assert_array_equal(res["reset"].outputs[key][2], res["reset"].outputs[key][0])
    np.testing.assert_array_equal(res["reset"].probes["h/u"], res["rebuild"].probes["h/u"])
    assert res["rebuild"].outputs["h"].sum() > 0 and np.any(res["rebuild"].outputs["r_v"] != 0)
    auto = LavaBackend().build(reset_graph())
    assert auto.choose_strategy(11, 3) == ("reset", 12)  # LIFReset period 3: pad 11 -> 12 steps
    assert auto.choose_strategy(7, 3) == ("rebuild", 7)  # padding 7 -> 9 costs too much
    assert auto.choose_strategy(7, 1) == ("rebuild", 7)


# -- user errors ------------------------------------------------------------------------------------
def test_user_errors_are_snnc_errors():
    g = small_graph()
    backend = get_backend("lava")
    assert isinstance(backend, LavaBackend) and backend.level == "chip"
    with pytest.raises(BackendError, match="unknown lava backend option"):
        backend.build(g, time_out=3)
    with pytest.raises(BackendError, match="tag"):
        backend.build(g, tag="fixed")
    with pytest.raises(BackendError, match="timeout"):
        backend.build(g, timeout=-1)
    program = backend.build(g)
    with pytest.raises(BackendError, match="unknown population"):
        program.run(np.zeros((4, 3)), probes=["nope/v"])
    with pytest.raises(BackendError, match="s, u or v"):
        program.run(np.zeros((4, 3)), probes=["hidden/w"])
    with pytest.raises(ShapeError, match="out of range") as info:
        program.run(np.full((4, 3), 2))
    assert "binary spikes" in str(info.value)
    with pytest.raises(BackendError, match="only be probed for its spikes"):
        program.run(np.zeros((4, 3)), probes=["x/v"])
    assert backend.problems("not a graph")


@pytest.mark.lava
def test_probing_an_input_that_feeds_nothing():
    """A lone input's recorder is joined to the rest, so the network still runs and records."""
    g = small_graph()
    g.add(InputPopulation("lone", (2,)))
    x = {"x": np.eye(3, dtype=np.int64)[[0, 1, 2, 0]], "lone": np.array([[1, 0], [0, 1], [1, 1], [0, 0]])}
    res = LavaBackend().build(g.validate()).run(x, probes=["lone", "hidden/u"])
    np.testing.assert_array_equal(res.probes["lone"][0], x["lone"])
    np.testing.assert_array_equal(res.probes["hidden/u"][0, 1:], x["x"][:-1] * 6400)
