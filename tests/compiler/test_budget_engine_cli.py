"""`snnc budget --data --workers --batch-size --results`: the weight-width sweep over a dataset file,
on a Dask LocalCluster and resumed from its rows file, gives the in-process table."""
from __future__ import annotations

import json

import numpy as np
import pytest

from snnc.compiler.cli import main

from dataset_cases import if_case
from test_sweep import if_network

WIDTHS = "2,4,8"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The integrate-and-fire network as a .nir, 10 random spike trains (.npz with labels y, and the
    same as .npy arrays for --input/--labels)."""
    folder = tmp_path_factory.mktemp("budget_engine")
    x, y = if_case(folder)
    return folder, x, y


def _sweep(folder, name, *extra, widths=WIDTHS):
    out = folder / f"{name}.json"
    code = main(["budget", str(folder / "if.nir"), "--reset-mode", "zero", "--weight-bits", widths,
                 "--json", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_dataset_sweep_on_two_workers_equals_the_in_process_one(case, capsys):
    folder, x, y = case
    local = _sweep(folder, "local", "--data", str(folder / "d.npz"))
    arrays = _sweep(folder, "arrays", "--input", str(folder / "x.npy"), "--labels", str(folder / "y.npy"))
    dask = _sweep(folder, "dask", "--data", str(folder / "d.npz"), "--workers", "2", "--batch-size", "3")
    out = capsys.readouterr().out
    assert "LocalCluster of 2 worker processes" in out and "batches of 3" in out
    assert dask == local == arrays  # same rows, fidelity and accuracy whatever the engine or batching
    assert [r["weight_bits"] for r in local["rows"]] == [2, 4, 8]
    assert local["reference_accuracy"] == pytest.approx(_reference_accuracy(x, y))


def _reference_accuracy(x, y) -> float:
    """Accuracy of the float network on the reference backend, argmax of output spike counts."""
    from snnc.backends.base import get_backend

    spikes = get_backend("reference").build(if_network()).run(x).outputs["output"]
    return float(np.mean(spikes.sum(1).argmax(1) == y))


def test_an_interrupted_sweep_resumes_with_only_the_missing_widths(case, capsys, tmp_path):
    folder, _, _ = case
    rows = tmp_path / "rows.jsonl"
    data = ["--data", str(folder / "d.npz"), "--results", str(rows)]
    _sweep(folder, "first", *data, widths="4,8")
    assert "computed widths [" in capsys.readouterr().out
    lines = rows.read_text().splitlines()
    assert sorted(json.loads(line)["weight_bits"] for line in lines) == [4, 8]
    kept = next(line for line in lines if json.loads(line)["weight_bits"] == 4)
    rows.write_text(kept + "\n")  # interrupted before the 8-bit row was written
    resumed = _sweep(folder, "resumed", *data)
    out = capsys.readouterr().out
    assert "computed widths [2, 8]" in out.replace("[8, 2]", "[2, 8]") and "taken from earlier runs [4]" in out
    fresh = _sweep(folder, "fresh", "--data", str(folder / "d.npz"))
    assert resumed == fresh
    again = _sweep(folder, "again", *data)
    assert "computed widths none, taken from earlier runs [2, 4, 8]" in capsys.readouterr().out
    assert again == fresh
