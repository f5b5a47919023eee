"""Shared test fixtures: where the reference recordings live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]


def refdata_dir() -> Path:
    """`../shared/data` beside the repo, or $SNNC_REFDATA."""
    return Path(os.environ.get("SNNC_REFDATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def refdata() -> Path:
    path = refdata_dir()
    if not (path / "README.md").exists():
        raise FileNotFoundError(
            f"reference data not found at {path}; put the shared/ folder beside the repo or set SNNC_REFDATA"
        )
    return path


# CI must be reproducible: the same examples every run, and no per-example deadline on a loaded
# 2-core machine. Locally, hypothesis keeps exploring new examples (and its failure database).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
