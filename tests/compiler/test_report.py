"""Reports: report.json holds every part (None where absent), report.html is self-contained and
renders in a real headless browser with every section and every image decoded."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from snnc.backends.base import RunResult
from snnc.compiler.analysis.energy import estimate_energy, kws_blouw2019
from snnc.compiler.mapping import map_to_cores
from snnc.compiler.report import SECTIONS, format_energy, print_energy_table, write_report
from snnc.ir.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]


@dataclass
class FakeBudget:
    """Stands in for the quantizer's bit budget: anything with to_dict()."""

    layers: dict

    def to_dict(self):
        return {"layers": self.layers, "total_bits": sum(sum(v.values()) for v in self.layers.values())}


@pytest.fixture(scope="module")
def kws():
    graph, act, _ = kws_blouw2019()
    mapping = map_to_cores(graph, "loihi1", traffic=act)
    energy = estimate_energy(act, mapping)
    rng = np.random.default_rng(0)
    run = RunResult(
        outputs={"chars": (rng.random((2, 10, 256)) < 0.1).astype(np.int8)},
        probes={"layer1": rng.random((2, 10, 256)) < 0.1, "layer1/v": rng.normal(size=(2, 10, 256))},
        activity=act,
        backend="hand-made",
    )
    budget = FakeBudget({"layer1": {"weights": 390 * 256 * 8, "state": 256 * 48},
                         "layer2": {"weights": 256 * 256 * 8, "state": 256 * 48}})
    quant = {"layer1": {"rmse": 0.012, "max_abs": 0.1}, "layer2": {"rmse": 0.02, "max_abs": 0.2}}
    return dict(graph=graph, mapping=mapping, energy=energy, activity=act, run_result=run, budget=budget,
                quant_errors=quant, meta={"title": "KWS report test", "model": "blouw2019"})


@pytest.fixture(scope="module")
def written(kws, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(out, **kws)


def test_report_json_holds_every_part(kws, written):
    data = json.loads(written["json"].read_text())
    assert data["schema"] == "snnc-report/1" and data["meta"]["model"] == "blouw2019"
    assert data["mapping"]["cores_used"] == kws["mapping"].cores_used == 2
    assert data["mapping"]["utilization"]["synaptic_memory_bits"]["used"] == 390 * 2048 + 256 * 2048
    assert data["energy"]["dynamic_j"] == pytest.approx(kws["energy"].dynamic_j)
    assert data["energy"]["cost_table"]["name"] == "loihi1-davies2018"
    assert data["latency"]["per_inference_s"] == pytest.approx(kws["energy"].latency.per_inference_s)
    assert data["bit_budget"] == kws["budget"].to_dict()
    assert data["quantization_errors"] == kws["quant_errors"]
    assert data["activity"]["projections"]["mfcc->layer1"]["synaptic_ops"] == 99_840
    assert len(data["activity"]["populations"]["layer1"]["spike_counts"]) == 256
    assert data["graph"]["num_synapses"] == 390 * 256 + 256 * 256
    assert data["run"]["outputs"]["chars"]["shape"] == [2, 10, 256]


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_html_is_self_contained_with_decodable_pngs(written):
    html = written["html"].read_text()
    for sid, title in SECTIONS:
        assert f'<section id="{sid}"><h2>{title}</h2>' in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    imgs = _images(html)
    # mesh, utilization, 2 energy figures, latency, 2 rasters (output chars, probe layer1), bit budget
    assert len(imgs) == 8 == html.count("<img ")
    for png in imgs:
        im = Image.open(io.BytesIO(png))
        im.load()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 50
    assert "probe layer1/v" not in html  # voltages are not spike trains


def test_report_accepts_missing_parts(tmp_path):
    paths = write_report(tmp_path / "empty")
    data = json.loads(paths["json"].read_text())
    for key in ("graph", "mapping", "bit_budget", "quantization_errors", "activity", "energy", "latency", "run"):
        assert data[key] is None, key
    html = paths["html"].read_text()
    assert html.count("Not supplied") == len(SECTIONS)
    assert "<img " not in html


def test_report_refuses_a_file_as_folder(tmp_path):
    f = tmp_path / "x"
    f.write_text("")
    with pytest.raises(ParameterError) as e:
        write_report(f)
    assert str(f) in str(e.value)


def test_energy_table_for_the_terminal(kws):
    console = Console(record=True, width=120, file=io.StringIO())
    text = print_energy_table(kws["energy"], console=console)
    shown = console.export_text()
    for needle in ("layer1", "layer2", "mfcc (in)", "dynamic", "static", "total", "ANN baseline",
                   format_energy(kws["energy"].dynamic_j), format_energy(kws["energy"].layers["layer1"].total)):
        assert needle in shown and needle in text, needle


# -- a real browser ------------------------------------------------------------------------------------------
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium; installed by tools/install_chromium.sh when missing."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        subprocess.run(["bash", str(REPO / "tools" / "install_chromium.sh")], check=False, timeout=900)
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is needed for the report test: run tools/install_chromium.sh (apt-get install chromium)")
    return exe


def _run_chromium(exe, tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180,
    )


def test_report_renders_in_headless_chromium(chromium, written, tmp_path):
    url = written["html"].resolve().as_uri()
    dom = _run_chromium(chromium, tmp_path, "--virtual-time-budget=10000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:500]
    total = re.search(r'data-images-total="(\d+)"', body.group(1))
    decoded = re.search(r'data-images-decoded="(\d+)"', body.group(1))
    assert total and decoded, "the page's image check did not run"
    assert int(total.group(1)) == 8 and int(decoded.group(1)) == 8
    assert 'data-decoded="0"' not in dom.stdout
    for sid, title in SECTIONS:
        assert re.search(rf'<section id="{sid}"><h2>{re.escape(title)}</h2>', dom.stdout), sid

    shot = tmp_path / "shot.png"
    res = _run_chromium(chromium, tmp_path, "--window-size=1200,3000", f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    im = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert im.shape == (3000, 1200)
    assert im.std() > 10  # text and charts, not a blank page


def test_summary_cells_read_as_text_not_json():
    """Nested meta values (e.g. accuracies per model) show as `key: value` pairs, floats shortened."""
    from snnc.compiler.report.html import _meta_text

    assert _meta_text({"float_cnn": 0.9688888888, "snn_sim": 0.9622222222}) == "float_cnn: 0.9689, snn_sim: 0.9622"
    assert _meta_text({"outer": {"inner": 2}}) == "outer: inner: 2"
    assert _meta_text([1, 2]) == "[1, 2]" and _meta_text("loihi2") == "loihi2"
