"""The package's layers import one way (issue 15): execution helpers below the analyses that use
them, plots above the analyses, colours in a leaf module.

Checked on the source (every ``import`` / ``from ... import`` statement, also those inside
functions), so a lazy import that climbs back up is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "hackrisk"


def _imports(module: str) -> set[str]:
    """Absolute names of the hackrisk modules that ``module`` (dotted, e.g. 'analysis.bayesian') imports."""
    path = ROOT.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = ["hackrisk", *module.split(".")[:-1]]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            if not name.startswith("hackrisk"):
                continue
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)  # from . import x
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hackrisk"))
    return out


@pytest.mark.parametrize(("module", "forbidden"), [
    ("_chunked", ["hackrisk.scale", "hackrisk.hypotheses", "hackrisk.analysis.frequentist"]),
    ("analysis.frequentist", ["hackrisk.scale"]),
    ("hypotheses", ["hackrisk.scale"]),
    ("analysis.bayesian", ["hackrisk.plots"]),
    ("analysis.prospective", ["hackrisk.plots"]),
    ("_colors", ["hackrisk"]),
])
def test_imports_are_one_way(module, forbidden):
    found = _imports(module)
    bad = sorted(n for n in found for f in forbidden if n == f or n.startswith(f + "."))
    assert not bad, f"hackrisk.{module} imports {bad}, a layer above it"


def test_scan_sees_relative_imports():
    """The checker itself: it finds the imports this test relies on."""
    assert "hackrisk.analysis.frequentist" in _imports("scale")
    assert "hackrisk._chunked" in _imports("analysis.frequentist")
    assert "hackrisk._colors" in _imports("plots")
