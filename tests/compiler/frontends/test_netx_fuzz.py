"""Malformed `.net` files: whatever is missing, mistyped, reshaped or cut short, `load_netx` either
reads the file or raises one snnc error that names the layer and the key (like test_fuzz_nir.py
for NIR files). The valid files come from snnc's netx writer (checked against lava-dl itself in
tests/compiler/export/test_netx_write.py), and one resonate-and-fire file (`_rf_file`) is written
with h5py in the layout of lava-dl's own `block.rf` export (the datasets and dtypes its export_hdf5
writes; tests/compiler/frontends/test_netx_rf.py reads files lava-dl itself wrote)."""
from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.compiler.export.netx import write_netx
from snnc.compiler.frontends.netx import load_netx
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import SnncError

MUTATIONS = ("delete", "string", "reshape", "nan", "fraction", "truncate", "huge", "unknown_type")


def _base_graphs() -> dict[str, ChipGraph]:
    rng = np.random.default_rng(0)
    a = ChipGraph()  # input layer with neurons (direct input) -> dense (delays) -> dense_rec
    a.add(InputPopulation("x", (6,), num_message_bits=8))
    a.add(Population("in", (6,), du=4095, dv=100, vth=30))
    a.add(Projection("x->in", "x", "in", np.eye(6, dtype=np.int64), kind="sparse", num_message_bits=8, direct=True))
    a.add(Population("h", (5,), du=200, dv=300, vth=40, bias_mant=64, bias_exp=0))
    a.add(Projection("in->h", "in", "h", rng.integers(-20, 30, (5, 6)), delay=np.repeat(np.arange(5)[:, None], 6, axis=1)))
    a.add(Population("o", (3,), du=300, dv=400, vth=20))
    a.add(Projection("h->o", "h", "o", rng.integers(-20, 30, (3, 5))))
    a.add(Projection("o->o", "o", "o", rng.integers(-10, 10, (3, 3))))
    a.outputs["out"] = OutputPort("o")
    b = ChipGraph()  # shape-only input layer -> conv -> flatten -> dense
    b.add(InputPopulation("x", (2, 4, 4)))
    b.add(Population("c", (3, 4, 4), du=4095, dv=0, vth=10))
    b.add(Projection("x->c", "x", "c", rng.integers(-30, 60, (3, 2, 3, 3)), kind="conv",
                     conv=ConvGeometry((2, 4, 4), (3, 4, 4), (3, 3), padding=(1, 1))))
    b.add(Population("d", (4,), du=4095, dv=10, vth=15))
    b.add(Projection("c->d", "c", "d", rng.integers(-5, 20, (4, 48))))
    b.outputs["out"] = OutputPort("d")
    return {"input_dense_rec": a.validate(), "conv_flatten_dense": b.validate()}


def _rf_file(path) -> None:
    """Two complex dense layers, RF_PHASE (per-neuron decays) then RF_IZHIKEVICH, as lava-dl's
    `block.rf.Dense` / `block.rf_iz.Dense` export_hdf5 writes them."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        for i, (n_in, n_out, ntype, sin, cos) in enumerate([(6, 4, "RF_PHASE", rng.integers(500, 2000, 4), rng.integers(2000, 3500, 4)),
                                                            (4, 3, "RF_IZHIKEVICH", 3042, 2426)]):
            g = f.create_group(f"layer/{i}")
            g.create_dataset("type", (1,), "S10", [b"dense"])
            g.create_dataset("shape", data=np.array([n_out]))
            g.create_dataset("inFeatures", data=n_in)
            g.create_dataset("outFeatures", data=n_out)
            g.create_dataset("weight/real", data=rng.integers(-30, 30, (n_out, n_in)).astype(np.float32))
            g.create_dataset("weight/imag", data=rng.integers(-30, 30, (n_out, n_in)).astype(np.float32))
            g.create_dataset("neuron/type", data=ntype, dtype=h5py.string_dtype("ascii"))
            g.create_dataset("neuron/sinDecay", data=sin)
            g.create_dataset("neuron/cosDecay", data=cos)
            g.create_dataset("neuron/vThMant", data=6)
            g.create_dataset("neuron/gradedSpike", data=False)


@pytest.fixture(scope="module")
def base_files(tmp_path_factory):
    out = {}
    for name, graph in _base_graphs().items():
        path = tmp_path_factory.mktemp("netx") / f"{name}.net"
        write_netx(graph, path)
        load_netx(path)  # the unmutated file reads
        out[name] = (path, _datasets(path))
    path = tmp_path_factory.mktemp("netx") / "rf_dense.net"
    _rf_file(path)
    assert [p.model for p in load_netx(path).populations.values()] == ["rf", "rf_iz"]  # the unmutated file reads
    out["rf_dense"] = (path, _datasets(path))
    return out


def _datasets(path) -> list[str]:
    names: list[str] = []
    with h5py.File(path) as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def _mutate(f: h5py.File, name: str, kind: str) -> None:
    data = np.asarray(f[name][()])
    if kind == "unknown_type" and not name.endswith("type"):
        kind = "string"
    del f[name]
    if kind == "delete":
        return
    if kind == "string":
        f.create_dataset(name, data=b"garbage")
    elif kind == "unknown_type":
        f.create_dataset(name, data=np.bytes_("sparkle"))
    elif kind == "reshape":
        f.create_dataset(name, data=np.zeros((2, 3, 2), np.int64))
    elif kind == "nan":
        f.create_dataset(name, data=np.full(data.shape or (), np.nan))
    elif kind == "fraction":
        f.create_dataset(name, data=(data.astype(np.float64) + 0.5) if data.dtype.kind in "iuf" else np.float64(0.5))
    elif kind == "truncate":
        flat = data.reshape(-1)
        f.create_dataset(name, data=flat[: max(0, flat.size // 2 - 1)])
    elif kind == "huge":
        f.create_dataset(name, data=np.full(data.shape or (), 2**40, np.int64))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(base=st.sampled_from(["input_dense_rec", "conv_flatten_dense", "rf_dense"]), pick=st.integers(0, 10_000),
       kind=st.sampled_from(MUTATIONS), second=st.booleans())
def test_malformed_net_files_raise_one_snnc_error_naming_layer_and_key(base_files, tmp_path, base, pick, kind, second):
    import shutil

    src, names = base_files[base]
    path = tmp_path / f"{base}_{pick}_{kind}_{second}.net"
    shutil.copy(src, path)
    name = names[pick % len(names)]
    with h5py.File(path, "r+") as f:
        _mutate(f, name, kind)
        if second:  # a second, independent corruption elsewhere
            other = names[(pick * 7 + 3) % len(names)]
            if other in f and other != name:
                _mutate(f, other, MUTATIONS[pick % len(MUTATIONS)])
    try:
        load_netx(path, input_message_bits=8 if base == "input_dense_rec" else None)
    except SnncError as err:
        text = str(err)
        assert re.search(r"layer \d+", text) or "layer/" in text, text
        layer, _, key = name.partition("/")[2].partition("/")
        if not second and f"layer {layer}" in text:  # reported at the mutated layer: the key is named
            assert key.split("/")[-1] in text or key.split("/")[0] in text, (name, kind, text)
