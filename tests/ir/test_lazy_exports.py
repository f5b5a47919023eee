"""snnc.ir exports the chip-level classes lazily: the two lists of them (the names `__getattr__`
serves and the import the type checker reads) must agree, and `snnc.ir.errors` stays light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import snnc.ir
from snnc.ir import chip

INIT = Path(snnc.ir.__file__)


def test_the_lazy_names_are_the_type_checkers_names_and_resolve_to_the_chip_classes():
    tree = ast.parse(INIT.read_text())
    checked = {alias.name for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for stmt in node.body if isinstance(stmt, ast.ImportFrom) for alias in stmt.names}
    assert checked == set(snnc.ir._CHIP_NAMES)
    for name in snnc.ir._CHIP_NAMES:
        assert getattr(snnc.ir, name) is getattr(chip, name)


def test_importing_the_errors_loads_no_scipy():
    code = "import sys, snnc.ir.errors; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
