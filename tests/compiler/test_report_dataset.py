"""`snnc report --data`: the report's accuracy, activity and energy come from the dataset engine and
equal `snnc evaluate`'s on the same data; `--input` keeps its one-run report."""
from __future__ import annotations

import json

import numpy as np

from snnc.compiler.cli import main

from dataset_cases import if_case


def test_report_over_a_dataset_equals_evaluate_and_the_one_array_report(tmp_path, capsys):
    _, y = if_case(tmp_path)
    model, common = str(tmp_path / "if.nir"), ["--reset-mode", "zero", "--dt", "1e-4"]

    assert main(["evaluate", model, "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r.json"), "--no-progress",
                 *common]) == 0
    assert main(["report", model, "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "rep"), "--workers", "2",
                 "--batch-size", "3", *common]) == 0
    out = capsys.readouterr().out
    assert "LocalCluster of 2 worker processes" in out and "accuracy over 10 samples" in out
    evaluated = json.loads((tmp_path / "r.json").read_text())
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    dataset = report["meta"]["dataset"]
    assert dataset["accuracy"] == evaluated["accuracy"] == float(np.mean(np.array(evaluated["predictions"]) == y))
    assert dataset["predictions"] == evaluated["predictions"] and dataset["fidelity"] == evaluated["fidelity"]
    assert report["energy"]["total_j"] == evaluated["energy"]["per_inference_j"]
    assert report["activity"]["total_synaptic_ops"] / report["activity"]["batch"] == evaluated["activity"]["synaptic_ops_per_inference"]
    assert report["run"] is None and report["bit_budget"] is not None

    # the one-array report (one sim run of all 10 samples, calibrated on them as --data is) prices the same activity
    assert main(["report", model, "--input", str(tmp_path / "x.npy"), "--calibrate", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "one"), *common]) == 0
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert one["run"]["backend"] == "sim" and "dataset" not in one["meta"]
    assert one["activity"]["total_synaptic_ops"] == report["activity"]["total_synaptic_ops"] > 0
    assert one["energy"]["total_j"] == report["energy"]["total_j"]


def test_data_flags_are_checked(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 3), np.float32))
    assert main(["report", "m.nir", "--data", "d.npz", "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o")]) != 0
    assert "--data and --input both give the data" in capsys.readouterr().err
    assert main(["report", "m.nir", "-o", str(tmp_path / "o")]) != 0
    assert "no data given" in capsys.readouterr().err
    assert main(["report", "m.nir", "--input", str(tmp_path / "x.npy"), "--workers", "2", "-o", str(tmp_path / "o")]) != 0
    assert "--workers run a dataset's batches" in capsys.readouterr().err
    assert main(["report", "m.net", "--data", "d.npz", "--reset-interval", "4", "-o", str(tmp_path / "o")]) != 0
    assert "--reset-interval are not passed to the dataset engine" in capsys.readouterr().err
