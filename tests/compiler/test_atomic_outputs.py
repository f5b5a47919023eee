"""Atomic outputs (snnc.ir.io): a writer that fails or is killed midway leaves the previous file intact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nir
import numpy as np
import pytest

from snnc.compiler.cli.common import write_npz
from snnc.compiler.report.data import write_report
from snnc.ir.errors import ModelFileError
from snnc.ir.graph import write_nir
from snnc.ir.io import atomic_open, write_text


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_success_replaces_and_keeps_permissions(tmp_path):
    target = tmp_path / "out.json"
    write_text(target, "old")
    os.chmod(target, 0o640)
    write_text(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert _leftovers(tmp_path) == []


def test_new_file_gets_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_raise_midway_keeps_previous(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "wb") as f:
            f.write(b"half of the new")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_npz_writer_failing_midway_keeps_previous(tmp_path, monkeypatch):
    target = tmp_path / "run.npz"
    write_npz(target, {"a": np.arange(3)})

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 truncated")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(ModelFileError, match="No space left"):
        write_npz(target, {"a": np.arange(5)})
    monkeypatch.undo()
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert _leftovers(tmp_path) == []


def _tiny_nir(weight: float) -> nir.NIRGraph:
    return nir.NIRGraph.from_list(nir.Affine(np.full((2, 2), weight), np.zeros(2)))


def test_nir_writer_failing_midway_keeps_previous(tmp_path, monkeypatch):
    target = tmp_path / "model.nir"
    write_nir(_tiny_nir(1.0), target)
    real_write = nir.write

    def broken_write(path, graph):
        real_write(path, graph)  # a complete file at the temporary path ...
        with open(path, "r+b") as f:
            f.truncate(100)  # ... cut short, then the writer fails
        raise OSError("interrupted")

    monkeypatch.setattr(nir, "write", broken_write)
    with pytest.raises(ModelFileError, match="interrupted"):
        write_nir(_tiny_nir(2.0), target)
    monkeypatch.undo()
    weight = next(n for n in nir.read(str(target)).nodes.values() if isinstance(n, nir.Affine)).weight
    assert np.all(weight == 1.0)
    assert _leftovers(tmp_path) == []


def test_report_writer_failing_midway_keeps_previous(tmp_path, monkeypatch):
    write_report(tmp_path, meta={"run": 1})
    before = {p: (tmp_path / p).read_bytes() for p in ("report.json", "report.html")}
    from snnc.compiler.report import html

    def broken_render(*_a, **_k):
        raise MemoryError("render failed")

    monkeypatch.setattr(html, "render_html", broken_render)
    with pytest.raises(MemoryError):
        write_report(tmp_path, meta={"run": 2})
    # report.json of run 2 is complete (written first); report.html is still run 1's, whole
    assert json.loads((tmp_path / "report.json").read_text())["meta"] == {"run": 2}
    assert (tmp_path / "report.html").read_bytes() == before["report.html"]
    assert _leftovers(tmp_path) == []


def test_sigkill_mid_write_keeps_previous(tmp_path):
    """A process killed (SIGKILL: no cleanup at all) while writing leaves the old file readable."""
    target = tmp_path / "big.npz"
    write_npz(target, {"a": np.arange(4)})
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from snnc.compiler.cli import common
        real = np.savez
        def savez_then_die(f, **arrays):
            f.write(b"PK" + b"x" * 100000)  # part of the new file is on disk ...
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # ... when the process dies
        np.savez = savez_then_die
        common.write_npz({str(target)!r}, {{"a": np.arange(10**6)}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert np.load(target)["a"].tolist() == [0, 1, 2, 3]
    # the killed writer's partial data is only in a hidden temporary, never at the target
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".big.npz.")
