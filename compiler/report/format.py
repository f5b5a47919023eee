"""How reports name their sections and write energies and times: shared by the JSON, terminal and
HTML views so that all three read the same."""
from __future__ import annotations

SECTIONS = (
    ("summary", "Summary"),
    ("mapping", "Mapping onto cores"),
    ("energy", "Energy per inference"),
    ("latency", "Latency"),
    ("raster", "Spike raster"),
    ("bit-budget", "Bit budget"),
    ("sweep", "Bit budget sweep"),
    ("quantization", "Quantization errors"),
    ("fidelity", "Fidelity vs. the float model"),
    ("activity", "Activity"),
    ("neurobench", "NeuroBench metrics"),
    ("assumptions", "Assumptions and sources"),
)


def format_energy(joules: float) -> str:
    """Energy with an SI prefix: 4.32 uJ, 23.6 pJ."""
    if joules == 0:
        return "0 J"
    for scale, unit in ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ"), (1e-12, "pJ"), (1e-15, "fJ")):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"


def format_time(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"
