"""Shared by the example tests: import an example script as a module."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    """Import examples/<name>.py as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"snnc_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_example():
    return _load
