"""End to end through the `hackrisk` command: a reduced demo study, then re-run from the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

import hackrisk
from tests._data import vader_source


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "hackrisk.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def check_outputs(out: Path, n_items: int, n_prompts: int, n_temps: int) -> dict:
    for name in ("cube.zarr", "tests.nc", "risk.nc", "hacking.nc", "headline.json", "report.html",
                 "figures/risk_curve.png", "figures/error_bars.png", "tables/risk_by_model.csv"):
        assert (out / name).exists(), name
    head = json.loads((out / "headline.json").read_text())
    assert head["n_configurations"] == n_prompts * n_temps
    assert head["n_hypotheses"] > 0
    for key in ("risk_balanced", "type_i", "type_ii"):
        est = head[key]
        assert 0 <= est["lower"] <= est["estimate"] <= est["upper"] <= 1 or est["estimate"] != est["estimate"]
    cube = hackrisk.open_cube(out / "cube.zarr")
    assert cube.sizes["prompt"] == n_prompts and cube.sizes["temperature"] == n_temps
    assert int((cube["item_id"] != "").sum()) == n_items
    assert int((cube["label"] == -1).sum()) == 0  # every configuration annotated
    html = (out / "report.html").read_text()
    assert f"{100 * head['risk_balanced']['estimate']:.1f}" in html
    return head


@pytest.mark.xdist_group("smollm2")
def test_reduced_demo_with_tiny_model(tmp_path):
    """`hackrisk demo` with a tiny random model on a few items, then again from the cache."""
    args = ["demo", "--output", str(tmp_path / "out"), "--items", "60", "--model", "tiny-random",
            "--prompts", "2", "--temperatures", "0,1", "--source", str(vader_source()), "--no-package"]
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "LLM hacking risk" in r.stdout and "report:" in r.stdout
    head = check_outputs(tmp_path / "out", 60, 2, 2)
    t0 = time.perf_counter()
    r2 = run_cli(*args, "--quiet", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout == ""
    assert json.loads((tmp_path / "out" / "headline.json").read_text()) == head  # same result from the cache
    assert time.perf_counter() - t0 < 120


@pytest.mark.model
@pytest.mark.xdist_group("smollm2")
def test_real_demo_path_small(tmp_path):
    """The real `make demo` path (embedded SmolLM2, 5 prompts × 3 temperatures) on a few items."""
    r = run_cli("demo", "--output", str(tmp_path / "out"), "--items", "40", "--source", str(vader_source()),
                cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    check_outputs(tmp_path / "out", 40, 5, 3)
    quality = xr.open_dataset(tmp_path / "out" / "quality.nc")
    assert float(quality["accuracy"].max()) > 0.34  # the real model beats chance on 3 classes somewhere


def test_bad_study_exit_code(tmp_path):
    (tmp_path / "s.toml").write_text('[data]\ndataset = "vader_tweets"\n[[models]]\nname = "m"\nmodel = "nope"\n')
    r = run_cli("annotate", str(tmp_path / "s.toml"), cwd=tmp_path)
    assert r.returncode == 2
    assert "s.toml:5: [models] model: unknown model 'nope'" in r.stderr
