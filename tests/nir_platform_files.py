"""NIR files written the way the platforms write them, each with its flat, tidy equivalent.

- `recurrent_net`: a network with an RLeaky and an RSynaptic layer as snnTorch exports them: each a
  nested NIRGraph whose inner nodes are `input`, `lif`, `lin`, `output` (snnTorch's
  `_extract_snntorch_module`, parameters as it computes them from beta/alpha at dt = 1e-4), the
  outer edges addressing the inner nodes by dotted names and restating the inner loop
  (`lif1.lif -> lif1.lin`); `layout="paper"` is the NIR paper's RNN subgraph (inner names already
  prefixed, `lif1.lif` inside `lif1`, outer edges naming the subgraph); `layout="flat"` is the same
  network with no nesting (`lif1.lif` as a top-level name, like the paper's braille file).
- `rockpool_lif`: a LIF whose parameters (hence its output type) are (1, 1, 1), fed by a 1x1
  Affine and feeding an Output of (1,) (Rockpool's export of the NIR paper's LIF task).
All are written with nir.write, as the platforms do; quirks nir's classes refuse to construct are
then made in the HDF5 file itself with h5py.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np

DT = 1e-4


def _lif(beta, thr):
    tau = DT / (1 - beta)
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros_like(beta), v_threshold=thr, v_reset=np.zeros_like(thr))


def _cuba(alpha, beta, thr):
    tau_syn, tau_mem = DT / (1 - alpha), DT / (1 - beta)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / DT, v_leak=np.zeros_like(beta), w_in=tau_syn / DT,
                       v_threshold=thr, v_reset=np.zeros_like(thr))


def recurrent_parts(seed: int = 0, n_in: int = 4, n1: int = 6, n2: int = 3) -> dict:
    """The layers of the test network: fc1 -> RLeaky(lif1) -> fc2 -> RSynaptic(lif2)."""
    rng = np.random.default_rng(seed)
    return {
        "fc1": nir.Affine(rng.uniform(-0.2, 0.8, (n1, n_in)), rng.uniform(0, 0.05, n1)),
        "lif1": (_lif(np.full(n1, 0.9), np.full(n1, 1.0)), nir.Linear(rng.uniform(-0.3, 0.3, (n1, n1)))),
        "fc2": nir.Affine(rng.uniform(-0.2, 0.7, (n2, n1)), np.zeros(n2)),
        "lif2": (_cuba(np.full(n2, 0.5), np.full(n2, 0.85), np.full(n2, 1.0)), nir.Linear(rng.uniform(-0.2, 0.2, (n2, n2)))),
        "shape": (n_in, n1, n2),
    }


def recurrent_net(layout: str = "snntorch", seed: int = 0) -> nir.NIRGraph:
    """The network as a nir.NIRGraph in one of three layouts (see module docstring)."""
    p = recurrent_parts(seed)
    n_in, n1, n2 = p["shape"]
    nodes: dict = {"input": nir.Input(np.array([n_in])), "fc1": p["fc1"]}
    edges = [("input", "fc1")]
    sizes = {"lif1": n1, "lif2": n2}
    for layer, before in (("lif1", "fc1"), ("lif2", "fc2")):
        neuron, w_rec = p[layer]
        n = sizes[layer]
        if layout == "flat":
            nodes[f"{layer}.lif"], nodes[f"{layer}.lin"] = neuron, w_rec
            edges += [(before, f"{layer}.lif"), (f"{layer}.lif", f"{layer}.lin"), (f"{layer}.lin", f"{layer}.lif")]
        elif layout == "snntorch":
            nodes[layer] = nir.NIRGraph(
                nodes={"input": nir.Input(np.array([n])), "lif": neuron, "lin": w_rec, "output": nir.Output(np.array([n]))},
                edges=[("input", "lif"), ("lif", "lin"), ("lin", "lif"), ("lif", "output")],
                type_check=False,
            )
            edges += [(before, f"{layer}.lif"), (f"{layer}.lif", f"{layer}.lin"), (f"{layer}.lin", f"{layer}.lif")]
        elif layout == "paper":
            inner = {f"{layer}.input": nir.Input(np.array([n])), f"{layer}.lif": neuron, f"{layer}.w_rec": w_rec,
                     f"{layer}.output": nir.Output(np.array([n]))}
            nodes[layer] = nir.NIRGraph(
                nodes=inner,
                edges=[(f"{layer}.lif", f"{layer}.w_rec"), (f"{layer}.w_rec", f"{layer}.lif"),
                       (f"{layer}.lif", f"{layer}.output"), (f"{layer}.input", f"{layer}.lif")],
                type_check=False,
            )
            edges.append((before, layer))
        else:
            raise ValueError(layout)
        if layer == "lif1":
            nodes["fc2"] = p["fc2"]
    last = {"flat": "lif2.lif", "snntorch": "lif2.lif", "paper": "lif2"}[layout]
    edges += [("lif1.lif" if layout != "paper" else "lif1", "fc2"), (last, "output")]
    nodes["output"] = nir.Output(np.array([n2]))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "snntorch"}, type_check=False)


def write(graph: nir.NIRGraph, path: Path, *, version: str | None = None) -> Path:
    """nir.write, optionally stamping the file with an older NIR version as older writers did."""
    nir.write(str(path), graph)
    if version is not None:
        with h5py.File(path, "r+") as f:
            del f["version"]
            f.create_dataset("version", data=version, dtype=h5py.string_dtype())
    return path


def rockpool_lif(quirk: bool = True) -> nir.NIRGraph:
    """Affine(1x1) -> LIF -> Output(1,), the LIF's parameters (1, 1, 1) when `quirk` (Rockpool)."""
    shape = (1, 1, 1) if quirk else (1,)
    lif = nir.LIF(tau=np.full(shape, 2.5e-3), r=np.full(shape, 25.0), v_leak=np.zeros(shape), v_threshold=np.full(shape, 0.1),
                  v_reset=np.zeros(shape))
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([1])), "affine": nir.Affine(np.array([[0.02]]), np.array([0.0])), "lif": lif,
               "output": nir.Output(np.array([1]))},
        edges=[("input", "affine"), ("affine", "lif"), ("lif", "output")],
        type_check=False,
    )


def replace_dataset(path: Path, name: str, value) -> None:
    """Store `value` at `name` in an HDF5 file (a quirk nir's node classes refuse to construct)."""
    with h5py.File(path, "r+") as f:
        if name in f:
            del f[name]
        if value is not None:
            f.create_dataset(name, data=value)


def snntorch_nested(model, n_in: int) -> nir.NIRGraph:
    """`model` (fc1 -> lif1 -> fc2 -> lif2, the lif layers RLeaky/RSynaptic) exported node by node
    with snnTorch's own `_extract_snntorch_module` (a recurrent layer becomes its nested NIRGraph
    with inner nodes input, lif, w_rec, output) and joined as the nesting-keeping exporters did: the
    outer edges address the inner nodes by dotted names and restate the inner loop."""
    from snntorch.export_nir import _extract_snntorch_module

    nodes = {"input": nir.Input(np.array([n_in]))}
    edges = [("input", "fc1")]
    for name in ("fc1", "lif1", "fc2", "lif2"):
        nodes[name] = _extract_snntorch_module(getattr(model, name))
    for layer, before in (("lif1", "fc1"), ("lif2", "fc2")):
        edges += [(before, f"{layer}.lif"), (f"{layer}.lif", f"{layer}.w_rec"), (f"{layer}.w_rec", f"{layer}.lif")]
    edges += [("lif1.lif", "fc2"), ("lif2.lif", "output")]
    nodes["output"] = nir.Output(np.array([model.fc2.out_features]))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
