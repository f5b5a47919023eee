"""Shared pieces of the examples: argument parsing, data, seeding, checks and rich output.

Kept in one place so that every example verifies and prints the same way: a verification that
fails is recorded in `Checks`, printed in red, and turns into a non-zero exit status.
"""
from __future__ import annotations

import argparse
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def refdata_dir() -> Path:
    """The reference data: $SNNC_REFDATA, else `../shared/data` beside the repo."""
    return Path(os.environ.get("SNNC_REFDATA", REPO.parent / "shared" / "data"))


def base_parser(doc: str | None, default_out: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0] if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fast", action="store_true", help="small sizes and few epochs (what the test suite runs)")
    parser.add_argument("--out", default=default_out, help="folder for the outputs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same run")
    return parser


@contextmanager
def seeded(seed: int):
    """Seed python, numpy and torch and make torch deterministic, for the duration of a run.

    torch's global settings (deterministic algorithms, thread count) are restored afterwards, so
    running an example in-process (the tests do) leaves the caller's torch as it was.
    """
    random.seed(seed)
    np.random.seed(seed)
    import torch

    saved = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # The examples' networks are tiny: one thread is faster than two fighting over a busy CPU.
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.set_num_threads(saved[1])


def load_digits_split(seed: int, test_size: float = 0.25):
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), scaled to [0, 1].

    Returns (x_train, x_test, y_train, y_test); images are float32 [N, 8, 8], split stratified.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)


def spike_count_predictions(spikes: np.ndarray) -> np.ndarray:
    """Class per sample from output spikes [batch, T, classes]: the most spikes (ties: lowest index)."""
    return np.asarray(spikes).reshape(spikes.shape[0], spikes.shape[1], -1).sum(axis=1).argmax(axis=1)


def energy_numbers(report) -> dict[str, float]:
    """The headline figures of an `EnergyReport` (per inference)."""
    d = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    return {
        "total_j": float(d["total_j"]),
        "dynamic_j": float(d["dynamic_j"]),
        "static_j": float(d["static_j"]),
        "synaptic_ops": float(d["synaptic_ops"]),
        "latency_s": float(d["latency"]["per_inference_s"]),
        "cost_table": d["cost_table"].get("name", "") if isinstance(d.get("cost_table"), dict) else "",
    }


def fmt_energy(joules: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(joules) >= scale or unit == "pJ":
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"  # pragma: no cover


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"  # pragma: no cover


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


@dataclass
class Checks:
    """Verifications of one example run; any failure makes the example exit non-zero."""

    items: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.items.append((name, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.items)

    def as_dict(self) -> dict[str, bool]:
        return {name: ok for name, ok, _ in self.items}

    def table(self):
        from rich.table import Table

        table = Table(title="Verifications", title_justify="left", show_header=True, header_style="bold")
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for name, ok, detail in self.items:
            table.add_row(name, "[green]pass[/green]" if ok else "[bold red]FAIL[/bold red]", detail)
        return table


class Timer:
    """Wall-clock stages, printed at the end so the user sees where the time went."""

    def __init__(self):
        self.stages: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def stage(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.stages[name] = timer.stages.get(name, 0.0) + time.perf_counter() - self.t

        return _Ctx()

    @property
    def total(self) -> float:
        return time.perf_counter() - self._t0

    def line(self) -> str:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items())
        return f"total {self.total:.1f} s ({parts})"


def console():
    """A rich console; 120 columns when the output is not a terminal (logs, tests), so tables stay whole."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def jsonable(obj: Any) -> Any:
    """Numbers and arrays as plain JSON types (for summary.json)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def train_classifier(net, x, y, epochs: int, lr: float, batch: int = 64, clip_norm: float | None = None):
    """Adam + cross-entropy over shuffled mini-batches (the training loop the examples share)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
            opt.step()
    net.eval()
    return net
