"""The tree's dependency rules (docs/architecture.md), read from the source's import statements.

`ir` <- `backends` <- `compiler`; a pass never imports a backend; and no import cycle between
modules at import time (imports inside functions and under TYPE_CHECKING run later or never, so
they cannot make a cycle at import time and are not counted)."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"ir": "snnc.ir", "backends": "snnc.backends", "compiler": "snnc.compiler"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[parts[0]], *parts[1:]])


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules named by the import statements that run when `module` is imported."""
    out: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`

    visit(tree.body)
    return out


def _graph() -> nx.DiGraph:
    modules = {}
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            modules[_module_name(path)] = path
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for target in _top_level_imports(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            if target in modules and target != name:
                g.add_edge(name, target)
    return g


GRAPH = _graph()


def test_the_scan_finds_the_tree():
    assert len(GRAPH) > 100
    assert GRAPH.has_edge("snnc.backends.program_cache", "snnc.ir.digest")  # a known import
    assert GRAPH.has_edge("snnc.compiler.passes.quantize", "snnc.compiler.passes.netlist")


@pytest.mark.parametrize("lower, higher", [("snnc.ir", "snnc.backends"), ("snnc.ir", "snnc.compiler"),
                                           ("snnc.backends", "snnc.compiler"),
                                           ("snnc.compiler.passes", "snnc.backends")])
def test_lower_levels_never_import_higher_ones(lower, higher):
    wrong = sorted((a, b) for a, b in GRAPH.edges if a.startswith(lower + ".") or a == lower
                   if b.startswith(higher + ".") or b == higher)
    assert not wrong, f"{lower} must not import {higher}: {wrong}"


def test_no_import_cycle():
    # a package's __init__ importing its submodules, which import siblings through the package, is
    # how Python packages work; any other cycle is a defect
    real = [c for c in nx.simple_cycles(GRAPH) if not _through_own_init(c)]
    assert not real, f"import cycles: {real[:5]}"


def _through_own_init(cycle: list[str]) -> bool:
    """A cycle made only of a package's __init__ and modules inside that package."""
    packages = [m for m in cycle if any(o != m and o.startswith(m + ".") for o in cycle)]
    return any(all(o == p or o.startswith(p + ".") for o in cycle) for p in packages)
