"""The examples are user stories: each must run end to end in --fast mode and verify what it claims.

The tests check the results the examples return (or write to summary.json), not only that they
exit: the Braille model reproduces snnTorch and runs bit-exact on sim and Lava, the snnTorch export
keeps its predictions, the converted SNN equals the quantized CNN on every test image and the
demo writes its report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.refdata
@pytest.mark.lava
@pytest.mark.timeout(300)
def test_braille_to_loihi(load_example, tmp_path, refdata):
    result = load_example("braille_to_loihi").main(["--fast", "--out", str(tmp_path), "--data", str(refdata)])
    assert result["ok"], result["checks"]
    assert all(result["checks"].values())
    assert result["reference_vs_snntorch_mismatches"] == 0
    assert result["sim_vs_lava_mismatches"] == 0
    assert result["lava_steps"] == 128  # --fast runs Lava on the first 128 aligned steps
    assert result["time_shift"] >= 1  # the chip adds a step per projection
    assert result["predictions"] == {"reference": 1, "sim": 1, "lava": 1}
    assert result["hidden_agreement"] == 1.0 and result["output_agreement"] == 1.0
    assert result["energy"]["total_j"] > result["energy"]["dynamic_j"] > 0
    assert Path(result["report_html"]).is_file()
    report = json.loads(Path(result["report_json"]).read_text())
    assert report["energy"]["total_j"] == pytest.approx(result["energy"]["total_j"])
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] is True


@pytest.mark.timeout(300)
def test_digits_snntorch(load_example, tmp_path):
    result = load_example("digits_snntorch").main(["--fast", "--out", str(tmp_path), "--seed", "0"])
    assert result["ok"], result["checks"]
    acc = result["accuracy"]
    assert result["reference_vs_snntorch"] == 1.0  # the NIR export predicts what snnTorch predicts
    assert acc["reference"] == acc["snntorch"]
    assert acc["reference"] >= 0.75  # clearly learned (chance is 0.10)
    assert acc["sim"] >= acc["reference"] - 0.03
    assert result["sim_vs_reference"] >= 0.95
    assert result["lava_equals_sim"] is True  # the compiled network runs identically as Lava processes
    assert result["test_size"] == 450
    assert result["energy"]["synaptic_ops"] > 0


@pytest.mark.timeout(300)
def test_digits_snntorch_is_deterministic(load_example, tmp_path):
    """Same seed, same numbers; another seed, another split and network."""
    example = load_example("digits_snntorch")
    a = example.main(["--fast", "--out", str(tmp_path / "a"), "--seed", "3"])
    b = example.main(["--fast", "--out", str(tmp_path / "b"), "--seed", "3"])
    c = example.main(["--fast", "--out", str(tmp_path / "c"), "--seed", "4"])
    assert a["accuracy"] == b["accuracy"]
    assert a["energy"] == b["energy"]
    assert (a["accuracy"], a["energy"]) != (c["accuracy"], c["energy"])


@pytest.mark.lava
@pytest.mark.timeout(400)
def test_digits_conversion_demo(tmp_path):
    """What `make demo` runs, as a script: one integer CNN, exact on reference, sim and Lava, report written."""
    out = tmp_path / "demo"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "digits_conversion.py"), "--fast", "--out", str(out), "--seed", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=380,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is True and all(summary["checks"].values())
    assert summary["checks"]["spike counts = integer activations"] is True
    # the SNN on sim (8-bit chip) and on reference (float IF) = the quantized CNN on 100 % of the test split
    assert summary["agreement"]["sim"] == 1.0
    assert summary["agreement"]["reference"] == 1.0
    acc = summary["accuracy"]
    assert acc["snn_sim"] == acc["snn_reference"] == acc["quantized_cnn"]
    assert acc["quantized_cnn"] >= 0.8
    # Lava (fixed_pt) = sim bit for bit on its samples
    assert summary["lava_samples"] == 2 and summary["lava_equal"] == 2
    assert summary["agreement"]["lava"] == 1.0
    assert summary["energy"]["total_j"] > 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<html" in html.lower()
    report = json.loads((out / "report.json").read_text())
    assert report["energy"]["total_j"] > 0
    assert report["energy"]["total_j"] == pytest.approx(summary["energy"]["total_j"])
    for text in ("quantized CNN", "SNN on reference", "SNN on sim", "lava", "energy per inference", "report"):
        assert text in proc.stdout


@pytest.mark.parametrize("name", ["braille_to_loihi", "digits_snntorch", "digits_conversion", "spikformer_digits", "ssm_digits"])
def test_exit_status_follows_the_verifications(load_example, name, monkeypatch):
    """`cli()` (what `python examples/X.py` exits with) is 1 when a check failed, 0 otherwise."""
    example = load_example(name)
    monkeypatch.setattr(example, "main", lambda argv=None: {"ok": False})
    assert example.cli([]) == 1
    monkeypatch.setattr(example, "main", lambda argv=None: {"ok": True})
    assert example.cli([]) == 0


@pytest.mark.lava
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name, kinds", [
    ("spikformer_digits", {"lif", "product", "relay"}),
    ("ssm_digits", {"lif", "product", "relay"}),
])
def test_sequence_examples(load_example, tmp_path, name, kinds):
    """Attention / SSM on digit rows: trained, written to NIR and read back, run on sim and Lava."""
    import nir

    from snnc.compiler.frontends.attention import nir_to_chip

    result = load_example(name).main(["--fast", "--out", str(tmp_path), "--seed", "0"])
    assert result["ok"], result["checks"]
    acc = result["accuracy"]
    assert acc["float"] >= 0.5  # clearly learned (chance is 0.10)
    assert abs(result["gap_points"]) < 2.0 and result["gap_points"] == pytest.approx(100 * (acc["float"] - acc["chip"]))
    assert result["lava_equals_sim"] is True and result["lava_images"] == 2
    assert set(result["neurons_by_kind"]) == kinds  # the products run as Lava ProdNeuron populations
    assert result["energy"]["total_j"] > result["energy"]["dynamic_j"] > 0 and result["energy"]["synaptic_ops"] > 0
    assert result["test_size"] == 450
    seq = nir_to_chip(nir.read(result["nir_file"]))  # the saved file reads back into the same chip
    assert seq.latency == result["latency_steps"]
    if name == "spikformer_digits":
        assert result["max_logit_error"] == 0.0  # IF neurons, 0/1 and count products: the chip holds the float numbers
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] is True
