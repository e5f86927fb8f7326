"""Replication packages: `hackrisk package` / `hackrisk verify`, tampering, the packaged notebook."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from hackrisk.package import MANIFEST, write_manifest
from hackrisk.study import format_study, parse_study
from tests._data import vader_source
from tests.test_cli import run_cli

pytestmark = pytest.mark.xdist_group("package")


# ---- study files written back (fast) -----------------------------------------------------------


def test_format_study_reads_back_as_the_same_study(tmp_path):
    labels = tmp_path / "human.csv"
    labels.write_text("item_id,label\n1,negative\n")
    data = tmp_path / "data.csv"
    data.write_text("id,text,label,src\n1,a,negative,x\n2,b,positive,y\n")
    text = (
        '[study]\nname = "quote \\" back\\\\slash \\u00e9"\nseed = 7\nalpha = 0.1\n'
        '[data]\npath = "data.csv"\ntext = "text"\nlabel = "label"\nid = "id"\ncovariates = "src"\n'
        '[task]\nlabels = ["negative", "positive"]\nprompts = ["Tab\\there {text}\\nA:", "{{json}} {text}"]\n'
        '[annotate]\ntemperatures = [0, 0.5]\nmode = "generate"\n'
        '[[models]]\nname = "a"\nmodel = "tiny-random"\n[[models]]\nname = "b"\nbackend = "openai"\n'
        'base_url = "http://127.0.0.1:1/v1"\n'
        '[hypotheses]\ngroupings = ["random"]\ncustom = { "long one" = "length > 2" }\n'
        '[analysis]\nn_boot = 50\nbudgets = []\nbayes = true\n'
        '[human]\nlabels = "human.csv"\nmethods = ["dsl"]\n')
    study = parse_study(text, tmp_path / "s.toml")
    again = parse_study(format_study(study), tmp_path / "s.toml")
    for name in ("name", "output", "alpha", "seed", "data", "task", "models", "temperatures", "mode",
                 "batch_size", "max_new_tokens", "hypotheses", "analysis"):
        assert getattr(again, name) == getattr(study, name), name
    assert again.human["labels"] == study.human["labels"] and again.human["methods"] == ["dsl"]
    assert again.temperatures == [0.0, 0.5] and isinstance(again.temperatures[0], float)


def test_package_study_accepts_missing_model_paths(tmp_path):
    text = '[data]\ndataset = "vader_tweets"\n[[models]]\nname = "m"\nmodel = "weights/here"\n'
    with pytest.raises(ValueError, match="no such folder"):
        parse_study(text, tmp_path / "s.toml")
    assert parse_study(text, tmp_path / "s.toml", check_models=False).models[0]["model"] == "weights/here"


def test_verify_refuses_a_folder_that_is_no_package(tmp_path):
    r = run_cli("verify", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "not a hackrisk replication package" in r.stderr


# ---- the demo's package, verified and tampered with ------------------------------------------------


@pytest.fixture(scope="module")
def demo_package(tmp_path_factory) -> Path:
    """`hackrisk demo` (tiny random model, 60 items, 2 prompts x 2 temperatures) writes its package."""
    root = tmp_path_factory.mktemp("demo")
    r = run_cli("demo", "--output", str(root / "out"), "--items", "60", "--model", "tiny-random",
                "--prompts", "2", "--temperatures", "0,1", "--source", str(vader_source()), cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "replication package:" in r.stdout and "hackrisk verify" in r.stdout
    return root / "out" / "package"


def _copy(pkg: Path, dest: Path) -> Path:
    shutil.copytree(pkg, dest)
    return dest


def _flip_human_label(pkg: Path) -> str:
    """Give the first labelled item another class in cube.zarr; returns its id."""
    import zarr

    g = zarr.open_group(str(pkg / "cube.zarr"), mode="r+")
    truth = g["truth"][:]
    k = int(np.flatnonzero(truth[0] >= 0)[0])
    truth[0, k] = (truth[0, k] + 1) % 3
    g["truth"][:] = truth
    return str(g["item_id"][0, k])


def _change_result(pkg: Path) -> float:
    """Add 0.01 to the first finite `estimate` of tests.nc; returns the new value."""
    with xr.open_dataset(pkg / "tests.nc", engine="h5netcdf") as ds:
        ds = ds.load()
    vals = ds["estimate"].values
    idx = np.unravel_index(int(np.flatnonzero(np.isfinite(vals))[0]), vals.shape)
    vals[idx] += 0.01
    ds["estimate"].values = vals
    ds.to_netcdf(pkg / "tests.nc", engine="h5netcdf")
    return float(vals[idx])


def test_package_holds_everything(demo_package):
    pkg = demo_package
    for rel in ("cube.zarr/zarr.json", "cube.nc", "study.toml", "data/items.parquet", "data/items.csv",
                "tests.nc", "risk.nc", "mitigation.nc", "tables/tests.csv", "tables/mitigation.csv", "headline.json",
                "report.html", "figures/risk_curve.png", "replicate.ipynb", "environment.json", "package.json",
                "binder/requirements.txt", "binder/runtime.txt", "binder/postBuild", "binder/hackrisk/pyproject.toml",
                "binder/hackrisk/hackrisk/package.py", "README.md", MANIFEST):
        assert (pkg / rel).is_file(), rel
    env = json.loads((pkg / "environment.json").read_text())
    assert env["packages"]["numpy"] == np.__version__
    assert env["models"][0]["identity"].startswith("smollm2-135m@")
    assert env["seed"] == 0
    meta = json.loads((pkg / "package.json").read_text())
    assert meta["results"]["tests"]["kind"] == "deterministic" and meta["results"]["risk"]["kind"] == "bootstrap"
    assert meta["n_boot"] == 300 and meta["results"]["mitigation"] == {"kind": "monte_carlo", "netcdf": True}
    listed = [line.split("  ", 1)[1] for line in (pkg / MANIFEST).read_text().splitlines()]
    assert "cube.zarr/zarr.json" in listed and MANIFEST not in listed and not any(".lock" in p for p in listed)
    items = (pkg / "data" / "items.csv").read_text().splitlines()
    assert items[0].startswith("item_id,text,label") and len(items) == 61
    nb = json.loads((pkg / "replicate.ipynb").read_text())
    out = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert "headline numbers reproduced" in out  # stored executed


def test_verify_passes_and_names_each_change(demo_package, tmp_path):
    pkg = demo_package
    r = run_cli("verify", str(pkg), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "OK: every file and every number" in r.stdout
    assert "MISMATCH" not in r.stdout and "tests.nc (deterministic)" in r.stdout

    # a changed human label: the chunk file is named, and the item (its fingerprint no longer fits)
    a = _copy(pkg, tmp_path / "label")
    item = _flip_human_label(a)
    r = run_cli("verify", str(a), cwd=tmp_path)
    assert r.returncode == 2
    assert "cube.zarr/truth/" in r.stdout and "changed (its SHA-256 differs" in r.stdout
    assert f"cube.zarr: item {item!r}" in r.stdout
    assert "does not verify" in r.stderr
    write_manifest(a)  # a careful forger updates the checksums: the re-run still disagrees, number by number
    r = run_cli("verify", str(a), cwd=tmp_path)
    assert r.returncode == 2 and "SHA-256" not in r.stdout
    assert f"cube.zarr: item {item!r}" in r.stdout
    assert re.search(r"^  - tests\.nc: \w+\[hypothesis=\d+ \(vader_tweets/[^]]*\]: packaged .*, re-run ", r.stdout, re.M)
    assert re.search(r"tests\.nc \(deterministic\) .* MISMATCH", r.stdout)

    # a changed study option (alpha), checksums updated: the re-run's numbers differ and are named
    b = _copy(pkg, tmp_path / "option")
    text = (b / "study.toml").read_text()
    assert "alpha = 0.05" in text
    (b / "study.toml").write_text(text.replace("alpha = 0.05", "alpha = 0.1"))
    r = run_cli("verify", str(b), cwd=tmp_path)
    assert r.returncode == 2 and "study.toml: changed" in r.stdout
    write_manifest(b)
    r = run_cli("verify", str(b), cwd=tmp_path)
    assert r.returncode == 2 and "study.toml: changed" not in r.stdout
    assert "tests.nc: attribute alpha: packaged 0.05, re-run 0.1" in r.stdout

    # a changed result value: the file, and (checksums updated) the number with its coordinates
    c = _copy(pkg, tmp_path / "result")
    new = _change_result(c)
    write_manifest(c)
    r = run_cli("verify", str(c), cwd=tmp_path)
    assert r.returncode == 2
    line = next(s for s in r.stdout.splitlines() if "tests.nc: estimate[" in s)
    assert "hypothesis=" in line and "model=smollm2-135m" in line and f"packaged {new!r}" in line
    assert "MISMATCH" in r.stdout and "tables/tests.csv (deterministic)" in r.stdout


def test_packaged_notebook_runs_in_a_fresh_kernel_from_the_package_alone(demo_package, tmp_path):
    """Only the package folder (copied elsewhere); outputs cleared; a new kernel reproduces the headline."""
    import nbformat

    from hackrisk.package import execute_notebook

    alone = _copy(demo_package, tmp_path / "elsewhere" / "pkg")
    nb = nbformat.read(alone / "replicate.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute_notebook(nb, alone, timeout=300)
    text = "\n".join(o.get("text", "") or str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    head = json.loads((alone / "headline.json").read_text())
    assert f"all {sum(1 for _ in _flat(head))} headline numbers reproduced" in text
    assert "risk_balanced.estimate" in text and "False" not in text.split("match")[-1]
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.slow
def test_package_command_and_zip(demo_package, tmp_path):
    """`hackrisk package STUDY -o DIR --zip` on a study file (the package's own), then verify the zip."""
    src = _copy(demo_package, tmp_path / "src")
    r = run_cli("package", str(src / "study.toml"), "-o", str(tmp_path / "again"), "--zip", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "again.zip").is_file()
    r = run_cli("verify", str(tmp_path / "again.zip"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    r = run_cli("package", str(src / "study.toml"), "-o", str(tmp_path / "again"), cwd=tmp_path)
    assert r.returncode == 2 and "already holds a package" in r.stderr


# ---- tolerances (fast) ------------------------------------------------------------------------------


def _risk_like(lower: float, upper: float, estimate: float = 0.3) -> xr.Dataset:
    ds = xr.Dataset({"type_i": ("ci", [estimate, lower, upper]), "n_null": ((), 20)},
                    coords={"ci": ["estimate", "lower", "upper"]}, attrs={"n_boot": 400, "alpha": 0.05})
    return ds


@pytest.mark.parametrize(("kind", "shift", "status"), [
    ("deterministic", 0.0, "match"),
    ("deterministic", 1e-13, "match"),                   # within 1e-12
    ("deterministic", 1e-9, "MISMATCH (1)"),             # a deterministic number must agree to 1e-12
    ("bootstrap", 0.01, "within MC error"),              # 4 MC SE of a bound: 4 * 0.68 * 0.4 / 20 = 0.054
    ("bootstrap", 0.08, "MISMATCH (1)"),
])
def test_bootstrap_bounds_within_monte_carlo_error_deterministic_numbers_to_1e12(tmp_path, kind, shift, status):
    from hackrisk.package import _compare_netcdf

    _risk_like(0.1, 0.5).to_netcdf(tmp_path / "a.nc", engine="h5netcdf")
    _risk_like(0.1 + shift, 0.5).to_netcdf(tmp_path / "b.nc", engine="h5netcdf")
    found: list[str] = []
    row = _compare_netcdf(tmp_path / "a.nc", tmp_path / "b.nc", "risk", kind, 400, found)
    assert row["status"] == status, found
    assert bool(found) == status.startswith("MISMATCH")
    if found:
        assert found[0].startswith("risk.nc: type_i[ci=lower]: packaged 0.1, re-run ")


def test_the_point_estimate_of_a_bootstrap_result_is_deterministic(tmp_path):
    from hackrisk.package import _compare_netcdf

    _risk_like(0.1, 0.5).to_netcdf(tmp_path / "a.nc", engine="h5netcdf")
    _risk_like(0.1, 0.5, estimate=0.3 + 1e-6).to_netcdf(tmp_path / "b.nc", engine="h5netcdf")
    found: list[str] = []
    row = _compare_netcdf(tmp_path / "a.nc", tmp_path / "b.nc", "risk", "bootstrap", 400, found)
    assert row["status"] == "MISMATCH (1)" and "type_i[ci=estimate]" in found[0]


def test_manifest_names_changed_missing_and_added_files(tmp_path):
    from hackrisk.package import _check_manifest

    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    write_manifest(tmp_path)
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "sub" / "b.txt").unlink()
    (tmp_path / "c.txt").write_text("c")
    rows: list = []
    problems: list = []
    _check_manifest(tmp_path, rows, problems)
    assert problems == ["a.txt: changed (its SHA-256 differs from MANIFEST.sha256)",
                        "sub/b.txt: missing (listed in MANIFEST.sha256)",
                        "c.txt: not in MANIFEST.sha256 (added after packaging)"]
    assert rows[0]["status"] == "MISMATCH (3 file(s))"
