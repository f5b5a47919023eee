"""Pipelines as text: every default pass by name, options as literals, clear errors, and a text
spec compiling to exactly the graph the equivalent Pass objects give."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler.cli import main
from snnc.compiler.passes import PASSES, parse_pipeline, pipeline_text, register_pass
from snnc.compiler.passes.base import Pass
from snnc.compiler.pipeline import compile, default_passes
from snnc.compiler.frontends.loader import load_model
from snnc.ir.errors import ParameterError


def test_default_pipeline_round_trips_through_text():
    passes = default_passes(weight_bits=6, target="loihi1")
    spec = pipeline_text(passes)
    assert spec.split(",")[0] == "canonicalize" and "quantize(weight_bits=6)" in spec and "legalize(target='loihi1')" in spec
    assert parse_pipeline(spec) == passes


def test_every_pass_is_registered_by_its_name():
    parse_pipeline("map")  # the mapping package registers `map` when first needed
    assert set(PASSES) >= {"canonicalize", "fuse", "timing", "quantize", "legalize", "map"}
    assert all(cls.name == name for name, cls in PASSES.items())


@pytest.mark.parametrize("spec, fragment", [
    ("canonicalize,nosuchpass", "unknown pass"),
    ("quantize(bits=4)", "unknown pass option"),
    ("quantize(4)", "must be named"),
    ("quantize(weight_bits=4", "unbalanced"),
    ("quantize(weight_bits=1+x)", "literals"),
    ("", "empty pipeline"),
])
def test_bad_specs_name_what_is_wrong(spec, fragment):
    with pytest.raises(ParameterError, match=fragment):
        parse_pipeline(spec)


def test_only_named_pass_subclasses_register():
    with pytest.raises(ParameterError):
        register_pass(Pass)
    with pytest.raises(ParameterError):
        register_pass(int)  # type: ignore[arg-type]


def _dense(w) -> np.ndarray:
    return np.asarray(w.todense()) if hasattr(w, "todense") else np.asarray(w)


def test_text_spec_compiles_like_pass_objects(refdata):
    path = refdata / "nir-paper/braille/braille_noDelay_bias_zero.nir"
    x = np.load(refdata / "nir-paper/braille/sample0_input.npy")[:64]
    by_objects = compile(path, weight_bits=6, calibrate=x)
    by_text = compile(path, passes="canonicalize,fuse,timing,quantize(weight_bits=6),legalize", calibrate=x)
    a, b = by_objects.chip, by_text.chip
    assert list(a.populations) == list(b.populations) and list(a.projections) == list(b.projections)
    for name in a.projections:
        assert np.array_equal(_dense(a.projections[name].effective_weights()), _dense(b.projections[name].effective_weights()))
    for name in a.populations:
        assert np.array_equal(a.populations[name].vth, b.populations[name].vth)


def test_cli_passes_option(refdata, tmp_path, capsys):
    path = refdata / "nir-paper/braille/braille_noDelay_bias_zero.nir"
    out = tmp_path / "chip.nir"
    assert main(["compile", str(path), "-o", str(out), "--passes", "canonicalize,fuse,timing,quantize(weight_bits=4),legalize"]) == 0
    chip = load_model(out)
    expected = compile(path, weight_bits=4).chip
    assert {n: p.num_weight_bits for n, p in chip.projections.items()} == {n: p.num_weight_bits for n, p in expected.projections.items()}
    assert 4 in {p.num_weight_bits for p in chip.projections.values()}
    assert main(["compile", str(path), "-o", str(tmp_path / "x.nir"), "--passes", "fuse,bogus"]) == 2
    assert "unknown pass" in capsys.readouterr().err
