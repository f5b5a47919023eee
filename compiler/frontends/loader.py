"""One entry point that turns whatever the user hands snnc into a graph.

`load_model` accepts a file path (.nir: NIR-level or chip-level; .net: lava-dl netx), a
`nir.NIRGraph`, a torch module, or an already built `Graph`/`ChipGraph`. The torch and netx
frontends are imported only when needed, so reading a NIR file never pulls in torch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nir

from snnc.ir.chip import ChipGraph
from snnc.ir.chip_nir import chip_from_nir, is_chip_nir
from snnc.ir.errors import ModelFileError, ParameterError
from snnc.ir.graph import Graph, read_nir_file
from snnc.ir.repairs import emit
from snnc.ir.reset_mode import state_reset_modes

SUPPORTED = (
    ".nir file (NIR-level or chip-level, written by nir.write or snnc)",
    ".net file (lava-dl netx HDF5)",
    "nir.NIRGraph object",
    "torch.nn.Module",
    "snnc Graph or ChipGraph",
)


def load_model(source: Any, *, reset_mode: str | None = None, **options: Any) -> Graph | ChipGraph:
    """Load `source` as a validated NIR-level `Graph` or a chip-level `ChipGraph`.

    `reset_mode` ("zero", "subtract", "none") is what spiking neurons do after a spike where the
    model cannot say (NIR files); None assumes NIR's reset to v_reset and warns (`snnc.ir.reset_mode`).
    `options` go to the torch frontend (e.g. an example input or dt) and the netx frontend.
    """
    takes_options = _is_torch_module(source) or (isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".net")
    if options and not takes_options:
        raise ParameterError(
            "loading options apply only to torch modules and .net files",
            where="load_model",
            got=sorted(options),
            hint="a NIR file or graph carries everything it needs; drop the options",
        )
    if isinstance(source, ChipGraph):
        return source
    if isinstance(source, Graph):
        if reset_mode is not None:
            state_reset_modes(source.nodes, reset_mode)
        return source
    if isinstance(source, nir.NIRGraph):
        if is_chip_nir(source):
            return chip_from_nir(source)
        if _is_attention_nir(source):
            return _attention_chip(source, "<nir.NIRGraph>")
        return Graph.from_nir(source, reset_mode=reset_mode)
    if isinstance(source, (str, Path)):
        return _load_path(Path(source), options, reset_mode)
    if _is_torch_module(source):
        if type(source).__module__ == "snnc.compiler.frontends.attention":
            return _attention_module_chip(source, options)
        from snnc.compiler.frontends.torch import from_torch

        return _as_graph(from_torch(source, **options), f"<torch module {type(source).__name__}>")
    raise ModelFileError(
        "cannot load a model from this object",
        got=type(source).__name__,
        hint="snnc loads: " + "; ".join(SUPPORTED),
    )


def _load_path(path: Path, options: dict, reset_mode: str | None = None) -> Graph | ChipGraph:
    suffix = path.suffix.lower()
    if suffix == ".nir":
        notes: list[str] = []  # quirks repaired while reading (snnc.ir.repairs), stated once below
        model = read_nir_file(path, notes=notes)
        if is_chip_nir(model):
            chip = chip_from_nir(model, where=str(path))
            emit(notes)
            return chip
        if _is_attention_nir(model):
            return _attention_chip(model, str(path))
        return Graph.from_nir(model, source=str(path), reset_mode=reset_mode, notes=notes)
    if suffix == ".net":
        if not path.exists():
            raise ModelFileError("file not found", where=str(path), hint="check the path")
        from snnc.compiler.frontends.netx import load_netx

        return _as_graph(load_netx(path, **options), str(path))
    raise ModelFileError(
        f"unknown model file type {path.suffix or '(no suffix)'!r}",
        where=str(path),
        hint="snnc loads: " + "; ".join(SUPPORTED) + ". Export the model to NIR (nir.write) and pass the .nir file",
    )


def _is_attention_nir(model: Any) -> bool:
    """True for the NIR form of snnc's attention/SSM blocks (nodes with the snnc extension key)."""
    return any("snnc_ext" in (getattr(node, "metadata", None) or {}) for node in getattr(model, "nodes", {}).values())


def _attention_chip(model: Any, where: str) -> ChipGraph:
    """Product neurons have no NIR-level meaning: such a file goes straight to its chip form."""
    from snnc.compiler.frontends.attention import nir_to_chip

    return nir_to_chip(model, where=where).chip


def _attention_module_chip(model: Any, options: dict) -> ChipGraph:
    """A SequenceClassifier of snnc's attention/SSM blocks: its NIR form lowered to the chip.

    Options: sample_input_shape (features per time step, required), calibration (integer rows
    [N, T, d] that size the readout), input_bits (default 5)."""
    from snnc.compiler.frontends.attention import nir_to_chip, to_nir

    unknown = sorted(set(options) - {"sample_input_shape", "calibration", "input_bits"})
    if unknown or "sample_input_shape" not in options:
        raise ParameterError(
            "an attention/SSM model needs its features per time step and takes no other loading options",
            where=f"load_model(<{type(model).__name__}>)", expected="sample_input_shape=d [, calibration=rows, input_bits=5]",
            got=unknown or "no sample_input_shape",
        )
    shape = options["sample_input_shape"]
    d_in = math.prod(int(d) for d in (shape if isinstance(shape, (tuple, list)) else [shape]))
    graph = to_nir(model, d_in, input_bits=int(options.get("input_bits", 5)))
    return nir_to_chip(graph, where=f"<{type(model).__name__}>", calibration=options.get("calibration")).chip


def _as_graph(result: Any, source: str) -> Graph | ChipGraph:
    """Frontends may hand back a nir.NIRGraph; the loader always returns snnc graphs."""
    if isinstance(result, nir.NIRGraph):
        return chip_from_nir(result, where=source) if is_chip_nir(result) else Graph.from_nir(result, source=source)
    return result


def _is_torch_module(obj: Any) -> bool:
    """True for a torch.nn.Module, without importing torch when the caller has not."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
