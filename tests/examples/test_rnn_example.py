"""The sequential-digits RNN example (examples/digits_rnn_conversion.py) in --fast mode: the integer
Elman RNN, its chip-exact SNN on sim and its float SNN on reference agree on every test sequence."""
from __future__ import annotations

import json

import pytest


def _check_exact(result: dict) -> None:
    assert result["ok"] is True and all(result["checks"].values()), result["checks"]
    assert result["agreement"]["sim"] == 1.0
    assert result["agreement"]["reference"] == 1.0
    assert result["hidden_counts_equal"] is True  # every neuron, every frame, every sequence
    acc = result["accuracy"]
    assert acc["snn_sim"] == acc["snn_reference"] == acc["quantized_rnn"]
    assert acc["float_rnn"] >= 0.85 and acc["quantized_rnn"] >= 0.75
    assert result["frames"] == 8 and result["step_D"] & (result["step_D"] - 1) == 0


@pytest.mark.timeout(300)
def test_rnn_example_fast_sim_and_reference_agree(load_example, tmp_path):
    result = load_example("digits_rnn_conversion").main(["--fast", "--out", str(tmp_path), "--lava-samples", "0"])
    _check_exact(result)
    assert "lava" not in result["agreement"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["agreement"]["sim"] == 1.0 and summary["ok"] is True


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_rnn_example_fast_with_lava(load_example, tmp_path):
    result = load_example("digits_rnn_conversion").main(["--fast", "--out", str(tmp_path)])
    _check_exact(result)
    assert result["lava_equal"] == result["lava_samples"] == 1
    assert result["agreement"]["lava"] == 1.0


def test_exit_status_follows_the_verifications(load_example, monkeypatch):
    example = load_example("digits_rnn_conversion")
    monkeypatch.setattr(example, "main", lambda argv=None: {"ok": False})
    assert example.cli([]) == 1
    monkeypatch.setattr(example, "main", lambda argv=None: {"ok": True})
    assert example.cli([]) == 0
