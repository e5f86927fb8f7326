"""The documentation site: Sphinx + MyST-NB + numpydoc, warnings as errors, opened in headless Chromium.

The default suite builds the whole site with one tutorial (quickstart) executed; the full build
(`make docs`, every tutorial) runs under `-m slow`. Both build into a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HACKRISK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]

pytestmark = pytest.mark.xdist_group("docs")  # one build at a time: they share docs/generated


def build(out: Path, *, notebooks: str | None, timeout: int) -> subprocess.CompletedProcess:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("numpydoc")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("HACKRISK_DOCS_NOTEBOOKS", None)
    if notebooks:
        env["HACKRISK_DOCS_NOTEBOOKS"] = notebooks
    cmd = [sys.executable, "-m", "sphinx", "-c", "docs", "-b", "html", "-W", "--keep-going", "-q",
           "-d", str(out / ".doctrees"), ".", str(out / "html")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def dump_dom(path: Path) -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI: `apt-get install -y chromium` (make system-deps)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    r = subprocess.run([CHROMIUM, *CHROMIUM_ARGS, "--dump-dom", path.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def check_site(html: Path, tutorial: str) -> None:
    """The API page of hackrisk.analysis.risk.risk and an executed figure of ``tutorial``."""
    dom = dump_dom(html / "docs" / "generated" / "hackrisk.analysis.risk.risk.html")
    assert 'id="hackrisk.analysis.risk.risk"' in dom  # the function's own entry, from its docstring
    assert "Parameters" in dom and "Returns" in dom and "bootstrap" in dom.lower()
    api = dump_dom(html / "docs" / "api.html")
    assert "hackrisk.analysis.risk.html" in api and "hackrisk.package.html" in api
    module = dump_dom(html / "docs" / "generated" / "hackrisk.analysis.risk.html")
    assert 'href="hackrisk.analysis.risk.risk.html' in module
    page = dump_dom(html / "notebooks" / f"{tutorial}.html")
    images = re.findall(r'<img[^>]+src="([^"]+\.png)"', page)
    assert images, f"no executed figure in {tutorial}.html"
    for src in images:
        png = (html / "notebooks" / src).resolve()
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    assert 'class="cell_output' in page  # outputs come from executing the notebook, not from the file
    assert 'url=docs/index.html' in (html / "index.html").read_text()  # the site's top redirects to its start page
    start = dump_dom(html / "docs" / "index.html")
    assert "Getting started" in start and "API reference" in start and "Replication packages" in start


def test_site_builds_without_warnings_and_opens_in_chromium(tmp_path):
    """The whole site (API reference, concepts, CLI reference) with the quickstart tutorial executed."""
    r = build(tmp_path, notebooks="quickstart", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    # Sphinx's own messages; the executing kernel's log lines ("[IPKernelApp] WARNING | ... TCP ...")
    # are not about the site
    sphinx = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("[IPKernelApp]"))
    assert "WARNING" not in sphinx and "ERROR" not in sphinx, sphinx[-5000:]
    html = tmp_path / "html"
    check_site(html, "quickstart")
    cli = dump_dom(html / "docs" / "cli.html")
    assert "hackrisk verify" in cli and "hackrisk package" in cli and "[analysis]" in cli
    assert not (html / "notebooks" / "mitigation.html").exists()  # only the one tutorial in the quick build


@pytest.mark.slow
def test_make_docs_builds_every_tutorial(tmp_path):
    """`make docs`: every notebook of notebooks/ executed (cached under .cache/jupyter_cache)."""
    r = build(tmp_path, notebooks=None, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    html = tmp_path / "html"
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (html / "notebooks" / f"{nb.stem}.html").is_file(), nb.name
    check_site(html, "risk_real_data")
    explorer = dump_dom(html / "notebooks" / "explorer.html")
    assert re.search(r'<img[^>]+src="[^"]+\.png"', explorer), "the explorer's static picture is missing"
    shutil.rmtree(tmp_path / ".doctrees", ignore_errors=True)
