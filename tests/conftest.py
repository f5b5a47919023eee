"""Shared test fixtures: where the reference recordings live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
