"""load_netx: lava-dl netx files into the chip IR, checked against Lava recordings and Lava's rules.

Time alignment with lava-dl's tinynet recordings (`gts/tinynet`, arrays [1, C, H, W, T]): the
recordings index time as slayer does, without synaptic latency. Lava adds one step per synapse
layer, so recording index m of layer l is Lava step m + l (1-based); the sim backend's output
index t is the state after Lava step t + 1, hence sim index m + l - 1. lava-dl's own test
(`test_hdf5.py::test_tinynet`) clears each layer's u and v after Lava step l (io.reset.Reset with
offset l - 1): the layer has then seen only the bias transient of the layer before. The same
protocol here is Lava's LIFReset (reset_interval 17, reset_offset l + 1: u = v = 0 before step
l + 1).
"""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.base import get_backend
from snnc.compiler.frontends.netx import dense_weight_format, load_netx
from snnc.ir.bits import truncate_weights
from snnc.ir.chip import OutputPort
from snnc.ir.errors import ModelFileError, QuantizationError, SnncError, UnsupportedNodeError

pytestmark = pytest.mark.refdata
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], derandomize=True)


@pytest.fixture(scope="module")
def tiny(refdata):
    d = refdata / "lava-dl" / "tinynet"
    arrays = {k: np.load(d / f"{k}.npy") for k in ("input", "input_bias", "layer1_kernel", "layer1_bias", "current", "layer1", "output")}
    return d / "tiny.net", arrays


def test_tinynet_structure_keeps_the_trained_integers(tiny):
    path, gt = tiny
    g = load_netx(path)
    assert list(g.populations) == ["layer0", "layer1", "layer2"]
    for pop in g.populations.values():  # iDecay 4096 -> du 4095, vDecay 1024, vThMant 25, bias_exp 6
        assert (pop.du, pop.dv, pop.vth, pop.bias_exp) == (4095, 1024, 25, 6)
    conv = g.projections["layer0->layer1"]
    # lava-dl hands Lava the kernel spatially flipped in (out, x, y, in) layout; Lava's Conv flips it
    # back (torch does correlation), so the torch-layout kernel (out, in, y, x) is the file's own
    lava_kernel = gt["layer1_kernel"]
    np.testing.assert_array_equal(conv.weights, lava_kernel.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])
    assert conv.conv.stride == (2, 2) and conv.weight_exp == 0
    np.testing.assert_array_equal(g.populations["layer1"].bias_mant[:, 0, 0], gt["layer1_bias"])
    assert g.meta["netx"]["input_transform"] == {"weight": 36.0, "bias": 34.0}
    assert list(load_netx(path, num_layers=2).populations) == ["layer0", "layer1"]


def _tinynet_as_recorded(path, gt):
    """tiny.net with lava-dl's test protocol (each layer reset after its own first step) and probes."""
    g = load_netx(path, input_bias=gt["input_bias"])  # (W, H, C) as lava-dl stores it
    for layer in (1, 2):
        pop = g.populations[f"layer{layer}"]
        pop.model, pop.reset_interval, pop.reset_offset = "lif_reset", 17, layer + 1
    g.outputs.update(s0=OutputPort("layer0"), s1=OutputPort("layer1"), u1=OutputPort("layer1", "u"))
    return g.validate()


@pytest.mark.parametrize("backend", ["sim", pytest.param("lava", marks=pytest.mark.lava)])
def test_tinynet_reproduced_exactly(tiny, backend):
    """The .net file, read into the chip IR, reproduces lava-dl's recordings on sim and as Lava processes."""
    path, gt = tiny
    g = _tinynet_as_recorded(path, gt)
    res = get_backend(backend).build(g).run({"input": np.zeros((1, 17, 3, 16, 16))})
    sim = {k: np.moveaxis(v[0], 0, -1) for k, v in res.outputs.items()}  # [C, H, W, T]
    m = np.arange(1, 16)  # recorded indices 1..15 (index 0 is the reset step)
    np.testing.assert_array_equal(sim["s0"][..., m - 1], gt["input"][0][..., m])
    np.testing.assert_array_equal(sim["s1"][..., m], gt["layer1"][0][..., m])
    np.testing.assert_array_equal(sim["u1"][..., m], 64 * gt["current"][0][..., m])
    np.testing.assert_array_equal(sim["output"][..., m + 1], gt["output"][0][..., m])
    assert gt["output"][0][..., m].sum() > 50 and gt["layer1"].sum() > 500


def test_graded_input_equals_bias_at_the_same_step(tiny):
    """The `input` port adds a << 6 to layer0's u in the same step (direct, as netx wires `net.inp`
    to the input layer's a_in; du = 4095): the same as bias_mant = a, with no delay."""
    path, gt = tiny
    g = load_netx(path)
    g.outputs["s0"] = OutputPort("layer0")
    drive = np.broadcast_to(gt["input_bias"].transpose(2, 1, 0), (1, 16, 3, 16, 16))
    res = get_backend("sim").build(g).run({"input": drive})
    s0 = np.moveaxis(res.outputs["s0"][0], 0, -1)
    m = np.arange(1, 16)
    np.testing.assert_array_equal(s0[..., m - 1], gt["input"][0][..., m])  # as the bias-driven run above


# -- synthetic files in lava-dl's export layout -----------------------------------------------------
def _neuron(grp, i_decay=4096, v_decay=1024, vth=25, **extra):
    grp.create_dataset("neuron/type", data=b"CUBA")
    grp.create_dataset("neuron/iDecay", data=i_decay)
    grp.create_dataset("neuron/vDecay", data=v_decay)
    grp.create_dataset("neuron/vThMant", data=vth)
    grp.create_dataset("neuron/refDelay", data=1)
    for key, value in extra.items():
        grp.create_dataset(f"neuron/{key}", data=value)


def _type(grp, name):
    grp.create_dataset("type", (1,), "S10", [name.encode()])


def write_dense_net(path, w1, w2, b1, b2, delay1, n_in, i_decay=(3000, 4096), v_decay=(500, 0), vth=(40, 30), pool=False):
    """input (spikes) -> [pool 2x2 ->] flatten -> dense(delay) -> dense."""
    with h5py.File(path, "w") as f:
        lay = f.create_group("layer")
        g = lay.create_group("0")
        _type(g, "input")
        g.create_dataset("shape", data=np.array([2, 4, 4]) if pool else np.array([n_in]))
        idx = 1
        if pool:
            g = lay.create_group(str(idx))
            _type(g, "pool")
            g.create_dataset("shape", data=np.array([2, 2, 2]))
            g.create_dataset("kernelSize", data=np.array([2, 2]))
            g.create_dataset("stride", data=np.array([2, 2]))
            g.create_dataset("padding", data=np.array([0, 0]))
            g.create_dataset("dilation", data=np.array([1, 1]))
            g.create_dataset("weight", data=np.full((1, 1, 2, 2), 24.0, dtype=np.float32))
            _neuron(g, 4096, 0, 30)
            idx += 1
            g = lay.create_group(str(idx))
            _type(g, "flatten")
            g.create_dataset("shape", data=np.array([8, 1, 1]))
            idx += 1
        for j, (w, b, d) in enumerate(((w1, b1, delay1), (w2, b2, None))):
            g = lay.create_group(str(idx))
            _type(g, "dense")
            g.create_dataset("shape", data=np.array([w.shape[0]]))
            g.create_dataset("weight", data=w.astype(np.float32))
            g.create_dataset("bias", data=b.astype(np.float32))
            if d is not None:
                g.create_dataset("delay", data=d.astype(np.float32))
            _neuron(g, i_decay[j], v_decay[j], vth[j])
            idx += 1


def lava_reference(spikes_in, layers, steps):
    """Lava 0.10.0 fixed_pt, written from docs/loihi-fixed-point.md: DelayDense row k sends at t+1+delay[k],
    u = trunc(u (4096 - du - 1) / 4096) + (a << 6), v = trunc(v (4096 - dv) / 4096) + u + (b << 6)."""
    batch = spikes_in.shape[0]
    src = spikes_in.reshape(batch, steps, -1).astype(np.int64)
    for lay in layers:
        w, delay = lay["w"], lay["delay"]
        n = w.shape[0]
        arrive = np.zeros((batch, steps + 64, n), np.int64)
        for t in range(steps):
            for j in np.nonzero(src[:, t].any(axis=0))[0]:
                for k in range(n):
                    d = 1 + (int(delay[k]) if delay is not None else 0)
                    arrive[:, t + d, k] += src[:, t, j] * w[k, j]
        u = np.zeros((batch, n), np.int64)
        v = np.zeros((batch, n), np.int64)
        out = np.zeros((batch, steps, n), np.int64)
        for t in range(steps):
            p = u * (4096 - lay["du"] - 1)
            u = np.sign(p) * (np.abs(p) >> 12) + (arrive[:, t] << 6)
            q = v * (4096 - lay["dv"])
            v = np.clip(np.sign(q) * (np.abs(q) >> 12) + u + (lay["b"] << 6), -(2**23 - 1), 2**23 - 1)
            s = v > (lay["vth"] << 6)
            v[s] = 0
            out[:, t] = s
        src = out
    return src


@settings(max_examples=6, **SETTINGS)
@given(seed=st.integers(0, 2**16), pool=st.booleans(), wmax=st.sampled_from([1, 7, 60, 127]))
def test_dense_delay_pool_files_match_lava_semantics(tmp_path, seed, pool, wmax):
    rng = np.random.default_rng(seed)
    n_in = 8 if pool else 10
    w1 = rng.integers(-wmax, wmax + 1, size=(6, n_in))
    w2 = rng.integers(0, wmax + 1, size=(3, 6))  # excitatory
    b1, b2 = rng.integers(-3, 4, size=6), rng.integers(0, 3, size=3)
    delay1 = rng.integers(0, 5, size=6)
    path = tmp_path / f"net{seed}_{pool}_{wmax}.net"
    vth = max(1, wmax // 3)
    write_dense_net(path, w1, w2, b1, b2, delay1, n_in, vth=(vth, vth), pool=pool)
    g = load_netx(path, input_message_bits=0)
    steps = 40
    x = (rng.random((2, steps, *((2, 4, 4) if pool else (n_in,)))) < 0.3).astype(np.int64)
    got = get_backend("sim").build(g).run({"input": x}).output
    layers = []
    if pool:
        wp = np.zeros((8, 32), np.int64)  # 2x2/2 sum pool per channel, weight 24, as a matrix
        for c in range(2):
            for i in range(2):
                for j in range(2):
                    for di in range(2):
                        for dj in range(2):
                            wp[c * 4 + i * 2 + j, c * 16 + (2 * i + di) * 4 + 2 * j + dj] = 24
        layers.append(dict(w=wp, delay=None, du=4095, dv=0, vth=30, b=np.zeros(8, np.int64)))
    layers.append(dict(w=w1, delay=delay1, du=2999, dv=500, vth=vth, b=b1))  # netx: delays of layer 1's own synapses
    layers.append(dict(w=w2, delay=None, du=4095, dv=0, vth=vth, b=b2))
    expect = lava_reference(x, layers, steps)
    assert expect.sum() > 0, "test network is silent"
    np.testing.assert_array_equal(got.reshape(expect.shape), expect)
    (delayed,) = [p for p in g.projections.values() if np.ndim(p.delay)]
    np.testing.assert_array_equal(delayed.delay, np.broadcast_to(delay1[:, None], (6, n_in)))  # rows of layer 1


def test_dense_weight_format_matches_netx_and_is_exact():
    # netx's optimize_weight_bits on [[2, -4], [6, 8]]: mixed, scale_bits 4, 4 weight bits
    w = np.array([[2, -4], [6, 8]])
    wl, bits, exp = dense_weight_format(w)
    np.testing.assert_array_equal(wl, w << 4)
    assert (bits, exp) == (4, -4)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    lo=st.integers(-256, 255), span=st.integers(0, 300), mult=st.sampled_from([1, 2, 4, 8]), seed=st.integers(0, 99)
)
def test_dense_weight_format_is_always_exact(lo, span, mult, seed):
    rng = np.random.default_rng(seed)
    hi = min(lo + span, 255)
    w = (rng.integers(lo, hi + 1, size=(4, 5)) // mult) * mult
    wl, bits, exp = dense_weight_format(w)
    eff = truncate_weights(wl, bits)
    np.testing.assert_array_equal(eff, wl)
    np.testing.assert_array_equal(eff << exp if exp >= 0 else eff >> -exp, w)


def test_weights_beyond_8_bits_are_an_error():
    with pytest.raises(QuantizationError, match="8-bit"):
        dense_weight_format(np.array([[301, -5]]))


# -- unsupported features and malformed files -------------------------------------------------------
def _edit(src, dst, fn):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


@pytest.mark.parametrize(
    "edit, error, words",
    [
        (lambda f: f["layer/1/neuron/wgtExp"].__setitem__((), 2), UnsupportedNodeError, ["layer 1", "wgtExp"]),
        (lambda f: (f["layer/1/neuron"].__delitem__("type"), f["layer/1/neuron"].create_dataset("type", data=b"RF_IZ")), UnsupportedNodeError, ["layer 1", "RF_IZ", "resonate"]),
        (lambda f: (f["layer/2"].__delitem__("type"), _type(f["layer/2"], "average")), UnsupportedNodeError, ["layer 2", "average"]),
        (lambda f: f["layer/1/weight"].__setitem__((0, 0, 0, 0, 0), 300.0), QuantizationError, ["layer 1", "weight", "-256..255"]),
        (lambda f: f["layer/1/weight"].__setitem__((0, 0, 0, 0, 0), 2.5), QuantizationError, ["layer 1", "weight", "integers"]),
        (lambda f: f["layer/1/neuron/iDecay"].__setitem__((), 0), SnncError, ["layer 1", "iDecay"]),
        (lambda f: f["layer/2/bias"].__setitem__(0, 5000.0), QuantizationError, ["layer 2", "bias", "13-bit"]),
        (lambda f: f["layer/2"].__delitem__("weight"), ModelFileError, ["layer 2", "weight"]),
        (lambda f: f["layer"].__delitem__("1"), ModelFileError, ["numbered"]),
    ],
)
def test_unsupported_or_broken_fields_name_layer_and_field(tiny, tmp_path, edit, error, words):
    path = _edit(tiny[0], tmp_path / "bad.net", edit)
    with pytest.raises(error) as err:
        load_netx(path)
    for word in words:
        assert word in str(err.value)


def _mutations(f, rng):
    """One random corruption of an open netx file: delete, retype or reshape a dataset."""
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    name = names[int(rng.integers(len(names)))]
    kind = int(rng.integers(5))
    data = f[name][()]
    del f[name]
    if kind == 1:
        f.create_dataset(name, data=b"garbage")
    elif kind == 2:
        f.create_dataset(name, data=np.full(3, np.nan))
    elif kind == 3:
        f.create_dataset(name, data=np.zeros((2, 2, 2), np.int64))
    elif kind == 4:
        arr = np.asarray(data)
        f.create_dataset(name, data=(arr * -7).astype(np.float32) if arr.dtype.kind in "iuf" else np.int64(-1))


@settings(max_examples=40, **SETTINGS)
@given(seed=st.integers(0, 2**31), mode=st.sampled_from(["truncate", "mutate", "mutate2", "bytes"]))
def test_fuzzed_files_raise_only_snnc_errors(tiny, tmp_path, seed, mode):
    rng = np.random.default_rng(seed)
    path = tmp_path / f"fuzz_{seed}_{mode}.net"
    raw = tiny[0].read_bytes()
    if mode == "truncate":
        path.write_bytes(raw[: int(rng.integers(0, len(raw)))])
    elif mode == "bytes":
        path.write_bytes(rng.integers(0, 256, size=int(rng.integers(0, 4000)), dtype=np.uint8).tobytes())
    else:
        shutil.copy(tiny[0], path)
        with h5py.File(path, "r+") as f:
            for _ in range(1 if mode == "mutate" else 3):
                _mutations(f, rng)
    try:
        g = load_netx(path)
    except SnncError as err:
        assert str(err)
        return
    assert g.populations  # a mutation the format tolerates (e.g. a transform scalar) still loads


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_netx(tmp_path / "nope.net")
    (tmp_path / "x.net").write_text("not hdf5")
    with pytest.raises(ModelFileError, match="HDF5"):
        load_netx(tmp_path / "x.net")
    with h5py.File(tmp_path / "e.net", "w") as f:
        f.create_group("other")
    with pytest.raises(ModelFileError, match="no 'layer' group"):
        load_netx(tmp_path / "e.net")


def test_conv_delay_is_ignored_as_netx_does_with_a_warning(tiny, tmp_path):
    """netx builds conv layers without their delay: snnc runs the same network and says so."""
    from snnc.ir.reset_mode import AssumptionWarning

    path = _edit(tiny[0], tmp_path / "d.net", lambda f: f["layer/1"].create_dataset("delay", data=np.ones(24, np.float32)))
    with pytest.warns(AssumptionWarning, match=r"layer 1.*delay.*conv"):
        g = load_netx(path)
    assert not any(np.any(p.delay) for p in g.projections.values())



def test_cli_netx_options_reach_the_reader(tmp_path, capsys):
    """`snnc run X.net --reset-interval N --reset-offset K` runs what load_netx(reset_interval=...) builds
    (checked against lava-dl itself in test_netx_lavadl); the flags on a non-.net model are one error."""
    from snnc.compiler.cli import main

    rng = np.random.default_rng(5)
    w1, w2 = rng.integers(-40, 60, size=(6, 10)), rng.integers(0, 60, size=(3, 6))
    write_dense_net(tmp_path / "n.net", w1, w2, np.zeros(6), np.zeros(3), None, 10, v_decay=(0, 0), vth=(30, 30))
    x = (rng.random((1, 30, 10)) < 0.4).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(tmp_path / "n.net"), "--input", str(tmp_path / "x.npy"), "--raw", "--out", str(tmp_path / "o.npz"),
                 "--reset-interval", "7", "--reset-offset", "2"])
    assert code == 0, capsys.readouterr().err
    want = get_backend("sim").build(load_netx(tmp_path / "n.net", reset_interval=7, reset_offset=2)).run({"input": x}).output
    plain = get_backend("sim").build(load_netx(tmp_path / "n.net")).run({"input": x}).output
    got = np.load(tmp_path / "o.npz")["output"]
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(want, plain)
    (tmp_path / "m.nir").write_bytes(b"")
    code = main(["run", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npz"), "--reset-interval", "7"])
    err = capsys.readouterr().err
    assert code != 0 and "--reset-interval" in err and "only to lava-dl .net" in err
