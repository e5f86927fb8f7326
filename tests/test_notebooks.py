"""Every notebook in notebooks/ executes top to bottom under nbmake and is committed without outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
# Notebooks that load the real embedded model share one xdist worker with the other model tests.
MODEL_NOTEBOOKS = {"annotate_real_data.ipynb", "paper_replication.ipynb"}
BUDGET_S = {"paper_replication.ipynb": 300, "bayesian_risk.ipynb": 240, "annotate_real_data.ipynb": 300}


def test_every_notebook_is_listed():
    assert {"quickstart.ipynb", "explorer.ipynb", "paper_replication.ipynb"} <= set(NOTEBOOKS)


@pytest.mark.parametrize(
    "notebook",
    [pytest.param(n, marks=pytest.mark.xdist_group("smollm2")) if n in MODEL_NOTEBOOKS else n for n in NOTEBOOKS],
)
def test_notebook_runs(notebook, tmp_path):
    pytest.importorskip("nbmake")
    nb = json.loads((ROOT / "notebooks" / notebook).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    budget = BUDGET_S.get(notebook, 120)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", f"notebooks/{notebook}", "-q",
                        "-p", "no:cacheprovider", "-p", "no:xdist", f"--nbmake-timeout={budget}",
                        f"--basetemp={tmp_path}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=budget + 120,
                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout
    assert took < budget + 60, f"{notebook} took {took:.0f} s (budget {budget} s plus start-up)"
