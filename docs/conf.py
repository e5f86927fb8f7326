"""Sphinx configuration of the hackrisk documentation site (``make docs``).

The source folder is the repository root, so that the tutorial notebooks in ``notebooks/`` are
executed where they live (the same working directory as under nbmake); only ``docs/`` pages,
``notebooks/*.ipynb`` and the README are read. Notebooks are executed at build time and cached
(jupyter-cache under ``.cache/jupyter_cache``): a notebook is run again only when its code changes.
``HACKRISK_DOCS_NOTEBOOKS=quickstart,mitigation`` builds with those tutorials only (the quick
build of the default test suite).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

project = "hackrisk"
author = "hackrisk developers"
copyright = "hackrisk developers"  # noqa: A001
try:
    from importlib.metadata import version as _version

    release = _version("hackrisk")
except Exception:  # noqa: BLE001  (building from a checkout without installing)
    release = "0.1.0"

root_doc = "docs/index"
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
templates_path = [str(ROOT / "docs" / "_templates")]  # absolute: autosummary joins it to the source folder

_only = [n.strip() for n in os.environ.get("HACKRISK_DOCS_NOTEBOOKS", "").split(",") if n.strip()]
include_patterns = ["docs/**"]
include_patterns += [f"notebooks/{n}.ipynb" for n in _only] if _only else ["notebooks/*.ipynb"]
exclude_patterns = [".venv", ".cache", "node_modules", "**/.ipynb_checkpoints", "docs/_build", "docs/_templates",
                    "demo-output", "binder", "widgets", "tests", "benchmarks"]

# MyST and MyST-NB
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("HACKRISK_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(ROOT / ".cache" / "jupyter_cache")
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_in_temp = False  # run in notebooks/, as under nbmake
nb_merge_streams = True
# the explorer's static picture: its PNG, not an empty widget view (no widget state is stored)
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "image/png", 5),
]
suppress_warnings = ["mystnb.unknown_mime_type"]

# API reference: one page per public function, from the numpydoc docstrings
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"hackrisk {release}"
html_static_path: list[str] = []
html_theme_options = {"description": "LLM hacking risk: measure it, mitigate it", "fixed_sidebar": True}


def _root_redirect(app, exception):
    """``index.html`` at the top of the site, pointing at ``docs/index.html``."""
    if exception is None and app.builder.format == "html":
        Path(app.outdir, "index.html").write_text(
            '<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=docs/index.html">'
            '<a href="docs/index.html">hackrisk documentation</a>\n', encoding="utf-8")


def _docstring_fixups(app, what, name, obj, options, lines):
    """Layout slips in docstrings of modules being edited elsewhere, mended for the site only.

    ``hackrisk.analysis.risk``: its numbered list needs a blank line before the next paragraph
    (docutils would warn). The fix applies only while the slip is there.
    """
    if what == "module" and name == "hackrisk.analysis.risk":
        for i in range(1, len(lines)):
            if lines[i].lstrip().startswith("Type I is averaged") and lines[i - 1].lstrip().startswith("3."):
                lines.insert(i, "")
                break


def _cli_reference(app):
    """The help of every ``hackrisk`` subcommand and the keys of each study-file section, written by
    the build (``.cache/docs/``) so that the reference is the command's own text."""
    import argparse

    from hackrisk import cli, study

    out = ROOT / ".cache" / "docs"
    out.mkdir(parents=True, exist_ok=True)
    parser = cli._parser()
    parts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts.append(f"\n{'-' * 72}\nhackrisk {name}\n\n{sub.format_help()}")
    (out / "cli-help.txt").write_text("".join(parts), encoding="utf-8")
    keys = [f"[{'[models]' if s == 'models' else s}]".ljust(14) + ", ".join(sorted(k))
            for s, k in study._SECTIONS.items()]
    (out / "study-keys.txt").write_text("\n".join(keys) + "\n", encoding="utf-8")


def setup(app):
    app.connect("builder-inited", _cli_reference)
    app.connect("autodoc-process-docstring", _docstring_fixups)
    app.connect("build-finished", _root_redirect)
