"""The Dask engine: a LocalCluster of 2 worker processes gives exactly the in-process numbers (digits
conversion, NIR paper CNN on event files, the bit-budget sweep), builds each program once per
worker, survives a worker killed mid-run; and the sweep resumes after an interruption."""
from __future__ import annotations

import io
import json
import os
import signal
import time

import numpy as np
import pytest
from rich.console import Console

from dataset_cases import BIN_MS, CNN, STEPS, cnn_event_folder, digits_case
from test_sweep import hand_compile, if_network
from snnc.compiler.analysis.dataset_eval import evaluate_dataset, prepare, run_prepared
from snnc.compiler.analysis.distributed import DaskEngine, LocalEngine, engine_for
from snnc.compiler.analysis.sweep import budget_sweep
from snnc.compiler.data.dataset import NpzDataset, open_dataset


@pytest.fixture(scope="module")
def cluster():
    with DaskEngine(workers=2) as engine:
        yield engine


def test_this_process_keeps_its_environment_while_workers_run(cluster):
    # Nanny.start writes the workers' NUMBA_NUM_THREADS=1 into the parent; numba then refuses to compile anything
    # new here ("Cannot set NUMBA_NUM_THREADS to a different value once the threads have been launched").
    assert "NUMBA_NUM_THREADS" not in os.environ or os.environ["NUMBA_NUM_THREADS"] != "1"
    assert cluster.client.run(lambda: os.environ.get("NUMBA_NUM_THREADS")) == dict.fromkeys(
        cluster.client.scheduler_info(n_workers=-1)["workers"], "1")  # the workers still have theirs


def _same(a, b) -> None:
    assert json.loads(json.dumps(a.to_dict())) == json.loads(json.dumps(b.to_dict()))


def test_engine_for_the_cli_options():
    assert isinstance(engine_for(), LocalEngine) and isinstance(engine_for(workers=1), LocalEngine)
    from snnc.ir.errors import ParameterError

    with pytest.raises(ParameterError, match="exclude each other"):
        engine_for(workers=2, scheduler="tcp://127.0.0.1:1")


def test_digits_on_a_local_cluster_equals_in_process_and_builds_once_per_worker(tmp_path, cluster):
    model, data, pred_q, labels = digits_case(tmp_path, samples=20)
    local = evaluate_dataset(model, data, batch_size=20)
    before = cluster.stats()
    remote = evaluate_dataset(model, data, batch_size=4, engine=cluster)  # 5 batches on 2 workers
    _same(local, remote)
    assert remote.predictions.tolist() == pred_q.tolist()
    after = cluster.stats()
    builds = {w: after[w]["builds"] - before.get(w, {"builds": 0})["builds"] for w in after}
    hits = {w: after[w]["hits"] - before.get(w, {"hits": 0})["hits"] for w in after}
    assert all(b <= 1 for b in builds.values())  # one program per worker, whatever it ran
    assert sum(builds.values()) + sum(hits.values()) == 5 and sum(hits.values()) >= 3


@pytest.mark.refdata
def test_nir_cnn_event_files_on_a_local_cluster_equal_in_process(tmp_path, refdata, cluster):
    folder, frames, labels = cnn_event_folder(tmp_path, refdata, per_class=2, classes=2)
    dataset = open_dataset(folder, steps=STEPS, bin_ms=BIN_MS, sensor_size=(34, 34, 2))
    prepared = prepare(refdata / CNN, calibrate=frames, reset_mode="zero", guard=False)  # compiled once, here
    local = run_prepared(prepared, dataset, batch_size=4)
    remote = run_prepared(prepared, dataset, batch_size=1, engine=cluster)
    _same(local, remote)
    assert remote.labels.tolist() == labels.tolist() and remote.energy.total_j > 0
    assert remote.reference_predictions is not None


def test_cli_in_process_on_a_cluster_by_address_and_on_its_own_local_cluster(tmp_path, cluster, capsys):
    import nir

    from snnc.compiler.cli import main
    from snnc.ir.chip_nir import chip_to_nir

    chip, data = _tiny_model_and_data(tmp_path)
    model, reference = tmp_path / "tiny_chip.nir", tmp_path / "tiny.nir"
    nir.write(str(model), chip_to_nir(chip))
    nir.write(str(reference), if_network())
    outs = []
    for flags in ([], ["--scheduler", cluster.client.scheduler.address], ["--workers", "2"]):
        out = tmp_path / f"r{len(outs)}.json"
        code = main(["evaluate", str(model), "--data", str(data), "--out", str(out), "--batch-size", "5", "--no-progress",
                     "--reference", str(reference), "--reset-mode", "zero", *flags])
        assert code == 0, capsys.readouterr().err
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1] == outs[2] and outs[1]["fidelity"]["agreement"] == 1.0  # the exact twin of its float model
    printed = capsys.readouterr().out
    assert "Dask cluster at tcp://" in printed and "LocalCluster of 2 worker processes" in printed


def _tiny_model_and_data(tmp_path, samples=16):
    rng = np.random.default_rng(3)
    x = (rng.random((samples, 12, 3)) < 0.4).astype(np.float32)
    np.savez(tmp_path / "tiny.npz", x=x, y=rng.integers(0, 2, samples))
    return hand_compile(None, 8).chip, tmp_path / "tiny.npz"


class SlowNpz(NpzDataset):
    """An .npz whose batches take a while to read: a worker is surely busy when it is killed."""

    def read(self, start, stop):
        time.sleep(0.4)
        return super().read(start, stop)


class KillOneWorker(DaskEngine):
    """Kills a worker that is running a batch, by SIGKILL, when the first result arrives."""

    killed: str | None = None

    def as_completed(self, handles):
        for i, item in enumerate(super().as_completed(handles)):
            if i == 0:
                busy = [w for w, keys in self.client.processing().items() if keys]
                self.killed = busy[0]
                pid = self.client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
            yield item


def test_a_killed_worker_loses_no_batch(tmp_path):
    chip, data = _tiny_model_and_data(tmp_path)
    local = evaluate_dataset(chip, data, batch_size=2, reference=if_network())
    slow = SlowNpz(**{k: getattr(NpzDataset.open(data), k) for k in ("path", "ports", "size", "has_labels", "description")})
    prepared = prepare(chip, reference=if_network())
    with KillOneWorker(workers=2) as engine:
        remote = run_prepared(prepared, slow, batch_size=2, engine=engine)  # 8 batches
        assert engine.killed is not None and engine.killed not in engine.client.scheduler_info()["workers"]
    _same(local, remote)
    assert remote.samples == 16 and remote.agreement is not None


# -- the bit-budget sweep on the engine ------------------------------------------------------------
CALLS: list[int] = []
FAIL_AT: list[int] = []


def flaky_compile(model, weight_bits, **options):
    """hand_compile, counting its calls; raises (a crash, not an snnc error) at the widths in FAIL_AT."""
    CALLS.append(weight_bits)
    if weight_bits in FAIL_AT:
        raise RuntimeError(f"injected crash at {weight_bits} bits")
    return hand_compile(model, weight_bits, **options)


def _table(result) -> str:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(result.render())
    return out.getvalue()


def test_sweep_resumes_after_an_interruption(tmp_path):
    rng = np.random.default_rng(1)
    inputs = (rng.random((6, 20, 3)) < 0.3).astype(np.float32)
    labels = rng.integers(0, 2, 6)
    widths = (1, 2, 4, 6, 8)
    full = budget_sweep(if_network(), widths, inputs, labels=labels, compile_fn=hand_compile)
    rows = tmp_path / "rows.jsonl"
    CALLS.clear()
    FAIL_AT[:] = [6]
    with pytest.raises(RuntimeError, match="injected crash at 6 bits"):
        budget_sweep(if_network(), widths, inputs, labels=labels, compile_fn=flaky_compile, batch_size=4, results=rows)
    assert CALLS == [1, 2, 4, 6]
    assert [json.loads(line)["weight_bits"] for line in rows.read_text().splitlines()] == [1, 2, 4]  # written as finished
    CALLS.clear()
    FAIL_AT.clear()
    resumed = budget_sweep(if_network(), widths, inputs, labels=labels, compile_fn=flaky_compile, batch_size=4, results=rows)
    assert CALLS == [6, 8]  # only the rest
    assert json.loads(json.dumps(resumed.to_dict())) == json.loads(json.dumps(full.to_dict()))
    assert _table(resumed) == _table(full)
    CALLS.clear()
    again = budget_sweep(if_network(), widths, inputs, labels=labels, compile_fn=flaky_compile, results=rows)
    assert CALLS == [] and _table(again) == _table(full)  # everything from the file
    budget_sweep(if_network(), (8,), inputs[:3], labels=labels[:3], compile_fn=flaky_compile, results=rows)
    assert CALLS == [8]  # other data: another key, computed


def test_a_row_torn_by_a_crash_mid_write_is_recomputed_and_the_next_row_survives(tmp_path):
    rng = np.random.default_rng(3)
    inputs = (rng.random((4, 20, 3)) < 0.3).astype(np.float32)
    widths = (2, 4, 8)
    full = budget_sweep(if_network(), widths, inputs, compile_fn=hand_compile)
    rows = tmp_path / "rows.jsonl"
    budget_sweep(if_network(), (2, 4), inputs, compile_fn=flaky_compile, results=rows)
    text = rows.read_text()
    rows.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # the 4-bit line cut in half
    CALLS.clear()
    resumed = budget_sweep(if_network(), widths, inputs, compile_fn=flaky_compile, results=rows)
    assert CALLS == [4, 8]  # the torn row is not trusted
    assert json.loads(json.dumps(resumed.to_dict())) == json.loads(json.dumps(full.to_dict()))
    CALLS.clear()
    budget_sweep(if_network(), widths, inputs, compile_fn=flaky_compile, results=rows)
    assert CALLS == []  # the rows written after the torn line were not glued onto it


def test_sweep_over_a_data_file_equals_the_sweep_over_its_arrays(tmp_path):
    rng = np.random.default_rng(5)
    inputs = (rng.random((7, 20, 3)) < 0.3).astype(np.float32)
    labels = rng.integers(0, 2, 7)
    np.savez(tmp_path / "d.npz", x=inputs, y=labels)
    arrays = budget_sweep(if_network(), (2, 8), inputs, labels=labels, compile_fn=hand_compile)
    files = budget_sweep(if_network(), (2, 8), NpzDataset.open(tmp_path / "d.npz"), compile_fn=hand_compile, batch_size=3)
    assert json.loads(json.dumps(files.to_dict())) == json.loads(json.dumps(arrays.to_dict()))
    assert files.row(2).accuracy is not None and (files.steps, files.batch) == (20, 7)


def test_sweep_on_a_local_cluster_equals_in_process(cluster):
    rng = np.random.default_rng(2)
    inputs = (rng.random((5, 20, 3)) < 0.3).astype(np.float32)
    labels = rng.integers(0, 2, 5)
    local = budget_sweep(if_network(), (1, 2, 8), inputs, labels=labels, compile_fn=hand_compile)
    remote = budget_sweep(if_network(), (1, 2, 8), inputs, labels=labels, compile_fn=hand_compile, engine=cluster,
                          batch_size=2)
    assert json.loads(json.dumps(remote.to_dict())) == json.loads(json.dumps(local.to_dict()))
    assert remote.row(8).fidelity == 1.0 and "1-bit weights refused" in remote.row(1).error
