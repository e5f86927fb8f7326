"""Replication packages: everything a reviewer needs to check a study's numbers, in one folder.

:func:`package` writes, for an annotated study, a self-contained folder (optionally a ``.zip``)::

    README.md              what the package holds and the three commands a reviewer runs
    study.toml             the study as analysed, with every path inside the package
    data/items.parquet     the items: id, text, human label (empty = none), covariates
    data/items.csv         the same as text, for reading
    data/human_labels.csv  the [human] labels file, when the study has one
    cube.zarr/             the label cube
    cube.nc                the same cube as one netCDF file
    *.nc, tables/*.csv     every result (netCDF and CSV), headline.json
    report.html, figures/  the self-contained HTML report and its figures
    replicate.ipynb        an executed notebook that re-runs the analysis and checks each headline number
    environment.json       Python, platform, package versions, model identities and file hashes, seeds
    package.json           what each result is (deterministic, bootstrap, Monte Carlo) and its seed
    binder/                a Binder environment: the hackrisk source that made the package, pinned
                           requirements, runtime.txt, postBuild
    MANIFEST.sha256        SHA-256 of every other file (``sha256sum -c MANIFEST.sha256`` reads it)

:func:`verify_package` checks the checksums, re-runs the analysis from the packaged cube and
study file, and compares every packaged number with the re-run: deterministic results to 1e-12,
bootstrap, Monte-Carlo and Bayesian results exactly when the re-run uses the same software and
otherwise within four Monte-Carlo standard errors (their seeds are in the study file; the standard
errors used are listed in ``docs/replication.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .study import Study, StudyError, format_study, load_study, parse_study

__all__ = ["package", "verify_package", "Verification", "load_package_study", "MANIFEST", "RTOL"]

logger = logging.getLogger(__name__)

MANIFEST = "MANIFEST.sha256"
RTOL = 1e-12  # relative and absolute tolerance of deterministic numbers
MC_K = 4.0  # Monte-Carlo results agree within MC_K Monte-Carlo standard errors
_FORMAT = 1
# Kinds of results: how a re-run is compared with the packaged number.
_BOOTSTRAP = ("risk", "risk_by_model", "risk_by_prompt", "risk_by_temperature", "effect_curve")
_MONTE_CARLO = ("hacking_curve", "mitigation")
_BAYESIAN_PREFIX = ("bayes_", "prospective_")
_VERSIONS = ("hackrisk", "numpy", "scipy", "pandas", "xarray", "zarr", "h5netcdf", "dask", "statsmodels",
             "matplotlib", "pymc", "pytensor", "arviz", "nutpie", "torch", "transformers", "tokenizers",
             "gguf", "httpx", "nbclient", "ipykernel")


def result_kind(key: str) -> str:
    """How the result ``key`` is compared on verification: ``deterministic``, ``bootstrap``,
    ``monte_carlo`` or ``bayesian``."""
    if key in _BOOTSTRAP:
        return "bootstrap"
    if key in _MONTE_CARLO:
        return "monte_carlo"
    if key.startswith(_BAYESIAN_PREFIX):
        return "bayesian"
    return "deterministic"


# ---------------------------------------------------------------------------------------------
# writing a package


def package(study: Study | str | os.PathLike, output: str | os.PathLike, *, zip: bool = False,  # noqa: A002
            execute: bool = True, overwrite: bool = False) -> Path:
    """Write the replication package of an annotated study.

    The analysis is run again from the packaged cube and the packaged study file, so every result
    in the package follows from what the package holds; the report and the notebook are made
    from those results.

    Parameters
    ----------
    study
        A :class:`hackrisk.study.Study` or the path of a study file, annotated with
        ``hackrisk annotate`` (its cube must be complete, or ``allow_incomplete`` set).
    output
        Folder to write. It must not exist, or be empty, or (with ``overwrite=True``) hold an
        earlier package of hackrisk.
    zip
        Also write ``<output>.zip`` holding the folder.
    execute
        Execute ``replicate.ipynb`` so that it is stored with its outputs (needs ``nbclient``
        and a Python kernel); ``False`` stores it unexecuted.
    overwrite
        Replace an earlier package in ``output``.

    Returns
    -------
    pathlib.Path
        The package folder (or the ``.zip`` when ``zip=True``).

    Raises
    ------
    StudyError
        When the study is not annotated, its data changed since, or ``output`` holds something
        other than a package.
    """
    from .io import open_cube
    from .pipeline import analyze_study, report_study
    from .study import check_annotations

    if not isinstance(study, Study):
        study = load_study(study)
    out = Path(output).resolve()
    if not study.cube_path.exists():
        raise StudyError(f"{study.path}: no annotations at {study.cube_path}. Fix: run `hackrisk annotate` on "
                         "this study first.")
    cube = open_cube(study.cube_path, lazy=False)
    check_annotations(study, cube)  # the cube belongs to the study's current data
    if out.resolve() in (study.output.resolve(), *study.output.resolve().parents):
        raise StudyError(f"package: {out} is the study's output folder (or holds it). Fix: write the package "
                         "into a folder of its own, e.g. -o package.")
    _prepare_folder(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir()
    shutil.copytree(study.cube_path, out / "cube.zarr")
    from .io import save_cube

    save_cube(cube, out / "cube.nc")
    for lock in (out / "cube.nc.lock", out / "cube.zarr.lock"):  # released write locks: not part of the package
        lock.unlink(missing_ok=True)
    items = _write_items(cube, out / "data")
    pstudy = _packaged_study(study, cube, out, items)
    (out / "study.toml").write_text(format_study(pstudy, base=out), encoding="utf-8")
    pstudy = load_package_study(out)  # exactly what verification and the notebook will read
    res = analyze_study(pstudy, cube)
    report_study(pstudy, res, cube)
    (out / "environment.json").write_text(json.dumps(environment(study, cube), indent=2), encoding="utf-8")
    keys = sorted(k for k, v in res.items() if isinstance(v, (xr.Dataset, pd.DataFrame)))
    meta = {"format": _FORMAT, "study": pstudy.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seed": pstudy.seed, "n_boot": int(pstudy.analysis.get("n_boot", 500)),
            "n_draws": int(pstudy.analysis.get("n_draws", 10)), "rtol": RTOL, "mc_k": MC_K,
            "results": {k: {"kind": result_kind(k), "netcdf": (out / f"{k}.nc").is_file()} for k in keys}}
    (out / "package.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    _write_binder(out / "binder")
    _write_readme(out, pstudy)
    _write_notebook(out, execute=execute)
    write_manifest(out)
    if zip:
        return _zip(out)
    return out


def _prepare_folder(out: Path, *, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise StudyError(f"package: {out} is a file. Fix: give a folder path for the package.")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise StudyError(f"package: {out} is not empty and holds no hackrisk package. Fix: give a new or "
                             "empty folder.")
        if not overwrite:
            raise StudyError(f"package: {out} already holds a package. Fix: give another folder, or replace it "
                             "(--overwrite).")
        shutil.rmtree(out)


def _write_items(cube: xr.Dataset, folder: Path) -> pd.DataFrame:
    """The items of the cube (one task) as ``items.parquet`` and ``items.csv``; returns the table."""
    from .cube import items_table

    if cube.sizes["task"] != 1:
        raise StudyError(f"package: the cube has {cube.sizes['task']} tasks; a study has one. Fix: package "
                         "each task's study separately.")
    tab = items_table(cube, names=True).drop(columns="task")
    tab = tab.rename(columns={"truth": "label"})
    tab.to_parquet(folder / "items.parquet", index=False)
    tab.to_csv(folder / "items.csv", index=False)
    return tab


def _packaged_study(study: Study, cube: xr.Dataset, out: Path, items: pd.DataFrame) -> Study:
    """The study with its data, human labels and output inside the package folder."""
    from .study import check_budgets

    covs = [c for c in items.columns if c not in ("item_id", "text", "label")]
    data = {"path": str(out / "data" / "items.parquet"), "text": "text", "label": "label", "id": "item_id",
            "covariates": covs}
    names = [str(c) for c in cube["class_name"].values[0] if str(c)]
    prompts = [str(p) for p in cube["prompt_template"].values[0] if str(p)]
    task = {"name": str(cube["task"].values[0]), "labels": names, "prompts": prompts}
    analysis = {k: v for k, v in study.analysis.items() if k != "budgets_given"}
    n_lab = int((cube["truth"] >= 0).sum("item").min())
    if study.human:
        from .pipeline import merge_human_labels

        n_lab = int((merge_human_labels(study, cube)["truth"] >= 0).sum("item").min())
    analysis["budgets"] = check_budgets(study, n_lab)  # the budgets the analysis used, written out
    human = {}
    if study.human:
        shutil.copyfile(study.human["labels"], out / "data" / "human_labels.csv")
        human = {"labels": str(out / "data" / "human_labels.csv"), "methods": list(study.human["methods"])}
    return replace(study, path=out / "study.toml", output=out, data=data, task=task, analysis=analysis,
                   human=human)


def load_package_study(folder: str | os.PathLike) -> Study:
    """The study file of a package (``study.toml``), with its output set to the package folder.

    Model paths in ``[[models]]`` need not exist: the package holds the labels, not the models.
    """
    folder = Path(folder).resolve()
    path = folder / "study.toml"
    if not path.is_file():
        raise StudyError(f"{folder}: no study.toml; this is not a hackrisk replication package. Fix: give the "
                         "folder written by `hackrisk package`.")
    study = parse_study(path.read_text(encoding="utf-8"), path, check_models=False)
    return replace(study, output=folder)


def environment(study: Study, cube: xr.Dataset) -> dict[str, Any]:
    """Python, platform, package versions, model identities and file hashes, and seeds."""
    from importlib import metadata

    versions = {}
    for name in _VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    identity = dict(zip([str(m) for m in cube["model"].values],
                        [str(i) for i in cube["identity"].values], strict=True)) if "identity" in cube.coords else {}
    models = []
    for m in study.models:
        entry = {k: v for k, v in m.items() if k != "api_key_env"}
        entry["identity"] = identity.get(m["name"], "")
        entry["files"] = _model_files(m, study)
        if "base_url" in entry:
            entry["base_url"] = _mask_url(entry["base_url"])
        models.append(entry)
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": versions,
        "models": models,
        "annotation_options": cube.attrs.get("options", {}),
        "annotation_options_fingerprint": cube.attrs.get("options_fingerprint", ""),
        "seed": study.seed,
    }


def _model_files(model: dict[str, Any], study: Study) -> dict[str, str]:
    """SHA-256 of the model's weight and tokenizer files (the embedded model: its GGUF file)."""
    spec = str(model.get("model", "default"))
    if model.get("backend", "transformers") != "transformers" or spec == "tiny-random":
        return {}
    if spec == "default":
        try:
            from .annotate.models import default_gguf_path

            path = Path(default_gguf_path())
        except Exception as err:  # noqa: BLE001 (the environment record says why there is no hash)
            return {"unavailable": f"{type(err).__name__}: {err}"}
        return {path.name: _sha256(path)} if path.is_file() else {}
    path = Path(spec) if Path(spec).is_absolute() else study.path.parent / spec
    if path.is_file():
        return {path.name: _sha256(path)}
    if path.is_dir():
        return {str(p.relative_to(path)): _sha256(p) for p in sorted(path.rglob("*")) if p.is_file()}
    return {}


def _mask_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _write_binder(folder: Path) -> None:
    """``binder/``: the hackrisk source that made the package (installable), pinned requirements,
    the Python version and a ``postBuild`` that installs it."""
    from importlib import metadata

    import hackrisk

    folder.mkdir()
    src = folder / "hackrisk"
    code = Path(hackrisk.__file__).resolve().parent
    shutil.copytree(code, src / "hackrisk", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    front = code / "_frontend" if (code / "_frontend").is_dir() else code.parent / "widgets"
    if (front / "explorer.js").is_file() and not (src / "hackrisk" / "_frontend").exists():
        shutil.copytree(front, src / "hackrisk" / "_frontend", ignore=shutil.ignore_patterns(
            "node_modules", "*.test.*", "test*", "package*.json"))
    pins = []
    for name in ("numpy", "scipy", "pandas", "xarray", "zarr", "h5netcdf", "dask", "matplotlib", "pyarrow",
                 "tqdm", "threadpoolctl", "nbclient", "nbformat", "ipykernel"):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    version = getattr(hackrisk, "__version__", "0.1.0")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.21"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "hackrisk"\nversion = "{version}"\nrequires-python = ">=3.10"\n'
        'dependencies = [' + ", ".join(f'"{p}"' for p in pins) + ']\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["hackrisk"]\n', encoding="utf-8")
    (folder / "requirements.txt").write_text(
        "# Binder (repo2docker) environment of this replication package: the versions it was made with.\n"
        "# hackrisk itself is installed from binder/hackrisk (the code that made the package) by postBuild.\n"
        + "\n".join(pins) + "\n", encoding="utf-8")
    (folder / "postBuild").write_text(
        "#!/usr/bin/env bash\n# Binder: install the hackrisk that made this package (its source is in binder/hackrisk).\n"
        "set -euo pipefail\npython -m pip install --no-cache-dir --no-deps ./binder/hackrisk\n", encoding="utf-8")
    (folder / "postBuild").chmod(0o755)
    (folder / "runtime.txt").write_text(f"python-{sys.version_info.major}.{sys.version_info.minor}\n",
                                        encoding="utf-8")


def _write_readme(out: Path, study: Study) -> None:
    text = f"""# Replication package: {study.name}

Made by hackrisk. Everything the study's numbers follow from is in this folder: the label cube
(`cube.zarr`, and `cube.nc` as one file), the items with their human labels (`data/`), the study
file (`study.toml`), every result (`*.nc`, `tables/*.csv`, `headline.json`), the report
(`report.html`), the environment it was made in (`environment.json`) and the SHA-256 of every
file (`{MANIFEST}`).

## Check it

```bash
hackrisk verify .            # checksums, then the analysis re-run from cube.zarr and study.toml;
                             # every number compared (exit 0: all match, 2: what differs is named)
open report.html             # the report (any browser; it is self-contained)
jupyter lab replicate.ipynb  # the notebook that re-runs the analysis and checks each headline number
```

`sha256sum -c {MANIFEST}` checks the files without hackrisk. On Binder, the `binder/` folder
installs the environment.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def _notebook_cells() -> list[tuple[str, str]]:
    return [
        ("markdown", "# Replication of the headline numbers\n\n"
                     "This notebook uses only the files of this package: it reads the study file and the label cube, "
                     "runs the analysis again, and compares each headline number with the packaged one "
                     "(`headline.json`).\n\n"
                     "It needs hackrisk; the code that made this package is in `binder/hackrisk` "
                     "(`pip install ./binder/hackrisk`)."),
        ("code", "import json, tempfile\nfrom dataclasses import replace\nfrom pathlib import Path\n\n"
                 "import pandas as pd\nimport hackrisk\nfrom hackrisk.package import load_package_study\n"
                 "from hackrisk.pipeline import analyze_study, headline\n\n"
                 "PACKAGE = Path('.').resolve()\nstudy = load_package_study(PACKAGE)\n"
                 "cube = hackrisk.open_cube(PACKAGE / 'cube.zarr', lazy=False)\n"
                 "print(study.name, '| seed', study.seed, '| alpha', study.alpha)\n"
                 "print(dict(cube.sizes))"),
        ("markdown", "## The analysis, again\n\nThe results go to a temporary folder; the packaged ones are not touched."),
        ("code", "with tempfile.TemporaryDirectory() as tmp:\n"
                 "    res = analyze_study(replace(study, output=Path(tmp)), cube)\n"
                 "    again = headline(res)\n"
                 "packaged = json.loads((PACKAGE / 'headline.json').read_text())"),
        ("markdown", "## Each headline number: packaged and reproduced"),
        ("code", "def flat(d, prefix=''):\n"
                 "    for k, v in d.items():\n"
                 "        if isinstance(v, dict):\n"
                 "            yield from flat(v, f'{prefix}{k}.')\n"
                 "        else:\n"
                 "            yield f'{prefix}{k}', v\n\n"
                 "a, b = dict(flat(packaged)), dict(flat(again))\n"
                 "table = pd.DataFrame({'packaged': pd.Series(a, dtype=object), "
                 "'reproduced': pd.Series(b, dtype=object)})\n"
                 "table['match'] = [x == y or (x != x and y != y) for x, y in zip(table['packaged'], table['reproduced'])]\n"
                 "table"),
        ("code", "assert table['match'].all(), table[~table['match']]\n"
                 "print(f\"all {len(table)} headline numbers reproduced\")"),
    ]


def _write_notebook(out: Path, *, execute: bool) -> None:
    import importlib.util

    missing = [m for m in (("nbformat", "nbclient", "ipykernel") if execute else ("nbformat",))
               if importlib.util.find_spec(m) is None]
    if missing:
        raise StudyError(f"package: writing the executed notebook needs {missing}, which are not installed. Fix: "
                         "pip install 'hackrisk[docs]' (or nbclient ipykernel), or package without executing it "
                         "(--no-execute).")
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == "markdown" else nbformat.v4.new_code_cell(s)
                for kind, s in _notebook_cells()]
    if execute:
        execute_notebook(nb, out)
    nbformat.write(nb, out / "replicate.ipynb")


def execute_notebook(nb: Any, folder: Path, *, timeout: int = 600) -> Any:
    """Execute a notebook in a fresh kernel with ``folder`` as its working directory (in place)."""
    from nbclient import NotebookClient

    env_keep = os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION")
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        if env_keep is None:
            os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
    return nb


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != MANIFEST and ".ipynb_checkpoints" not in p.parts)


def write_manifest(folder: str | os.PathLike) -> Path:
    """Write ``MANIFEST.sha256`` (``<sha256>  <path>`` per file, as ``sha256sum`` writes it)."""
    folder = Path(folder)
    lines = [f"{_sha256(folder / rel)}  {rel}" for rel in _package_files(folder)]
    path = folder / MANIFEST
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _zip(folder: Path) -> Path:
    target = folder.with_suffix(".zip")
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, (Path(folder.name) / p.relative_to(folder)).as_posix())
    tmp.replace(target)
    return target


# ---------------------------------------------------------------------------------------------
# verifying a package


@dataclass
class Verification:
    """What :func:`verify_package` found.

    ``checks`` is a table with one row per checked thing (``check``, ``what``, ``n_numbers``,
    ``max_diff``, ``status``: ``match``, ``within MC error`` or ``MISMATCH``); ``problems`` lists
    one line per failure, naming the file or the number.
    """

    folder: Path
    checks: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check matched."""
        return not self.problems

    def __str__(self) -> str:
        with pd.option_context("display.max_rows", 500, "display.width", 140, "display.max_colwidth", 60):
            table = self.checks.to_string(index=False)
        lines = [f"verify {self.folder}", table]
        if self.ok:
            lines.append("OK: every file and every number of the package matches.")
        else:
            lines.append(f"FAILED: {len(self.problems)} problem(s)")
            lines += [f"  - {p}" for p in self.problems]  # at most a few per file
        return "\n".join(lines)


def verify_package(folder: str | os.PathLike) -> Verification:
    """Check a replication package: checksums, then the analysis re-run and every number compared.

    Parameters
    ----------
    folder
        A folder written by :func:`package`, or its ``.zip``.

    Returns
    -------
    Verification
        The table of checks and the list of problems (empty when everything matches).
    """
    folder = Path(folder).resolve()
    if folder.suffix == ".zip" and folder.is_file():
        with tempfile.TemporaryDirectory(prefix="hackrisk-verify-") as tmp:
            with zipfile.ZipFile(folder) as zf:
                zf.extractall(tmp)
            inner = [p for p in Path(tmp).iterdir() if p.is_dir()]
            if len(inner) != 1:
                raise StudyError(f"{folder}: expected one package folder inside the zip, found {len(inner)}. "
                                 "Fix: give a .zip written by `hackrisk package --zip`.")
            v = verify_package(inner[0])
            v.folder = folder
            return v
    if not (folder / MANIFEST).is_file():
        raise StudyError(f"{folder}: no {MANIFEST}; this is not a hackrisk replication package. Fix: give the "
                         "folder written by `hackrisk package`.")
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    _check_manifest(folder, rows, problems)
    try:
        meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problems.append(f"package.json: cannot be read ({err})")
        return Verification(folder, pd.DataFrame(rows), problems)
    from .io import open_cube

    try:
        study = load_package_study(folder)
        cube = open_cube(folder / "cube.zarr", lazy=False)
    except (ValueError, OSError) as err:
        problems.append(f"cannot re-run the analysis: {' '.join(str(err).split())}")
        rows.append({"check": "re-run", "what": "study.toml, cube.zarr", "n_numbers": 0, "max_diff": np.nan,
                     "status": "FAILED"})
        return Verification(folder, pd.DataFrame(rows), problems)
    _check_cube(folder, cube, rows, problems)
    with tempfile.TemporaryDirectory(prefix="hackrisk-verify-") as tmp:
        from .pipeline import analyze_study

        try:
            analyze_study(replace(study, output=Path(tmp)), cube)
        except Exception as err:  # noqa: BLE001 (a package whose analysis fails does not verify, whatever the cause)
            reason = ' '.join(str(err).split()) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            problems.append(f"the analysis cannot be re-run from the package: {reason}")
            rows.append({"check": "re-run", "what": "study.toml, cube.zarr", "n_numbers": 0, "max_diff": np.nan,
                         "status": "FAILED"})
            return Verification(folder, pd.DataFrame(rows), problems)
        _compare_results(folder, Path(tmp), meta, study, rows, problems)
    return Verification(folder, pd.DataFrame(rows), problems)


def _check_manifest(folder: Path, rows: list, problems: list) -> None:
    listed: dict[str, str] = {}
    for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, _, rel = line.partition("  ")
            listed[rel] = digest
    present = set(_package_files(folder))
    changed = sorted(rel for rel in listed if rel in present and _sha256(folder / rel) != listed[rel])
    missing = sorted(set(listed) - present)
    extra = sorted(present - set(listed))
    for rel in changed:
        problems.append(f"{rel}: changed (its SHA-256 differs from {MANIFEST})")
    for rel in missing:
        problems.append(f"{rel}: missing (listed in {MANIFEST})")
    for rel in extra:
        problems.append(f"{rel}: not in {MANIFEST} (added after packaging)")
    bad = len(changed) + len(missing) + len(extra)
    rows.append({"check": "checksums", "what": f"{len(listed)} files", "n_numbers": len(listed),
                 "max_diff": np.nan, "status": "match" if not bad else f"MISMATCH ({bad} file(s))"})


def _check_cube(folder: Path, cube: xr.Dataset, rows: list, problems: list) -> None:
    """The cube's items are those annotated (fingerprints) and cube.nc holds the same cube."""
    from .annotate.runner import item_fingerprints
    from .cube import items_table
    from .io import open_cube

    n_bad = 0
    if "item_fingerprint" in cube:
        tab = items_table(cube, names=True)
        now = item_fingerprints(tab)
        then = np.asarray(cube["item_fingerprint"].values)[0][: len(now)].astype(str)
        diff = np.flatnonzero(now != then)
        for k in diff[:10]:
            problems.append(f"cube.zarr: item {tab['item_id'].iloc[k]!r}: text, human label or covariates differ "
                            "from what was annotated (item_fingerprint)")
        n_bad += len(diff)
    try:
        nc = open_cube(folder / "cube.nc", lazy=False)
    except (ValueError, OSError) as err:
        problems.append(f"cube.nc: cannot be read ({' '.join(str(err).split())})")
        n_bad += 1
    else:
        for name in ("label", "truth", "item_id", "text"):
            a, b = np.asarray(cube[name].values), np.asarray(nc[name].values) if name in nc else None
            if b is None or a.shape != b.shape or not np.array_equal(a, b):
                problems.append(f"cube.nc: {name} differs from cube.zarr")
                n_bad += 1
    try:
        same = pd.read_parquet(folder / "data" / "items.parquet").to_csv(index=False) == \
            (folder / "data" / "items.csv").read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        problems.append(f"data/items.csv, data/items.parquet: cannot be read ({err})")
        n_bad += 1
    else:
        if not same:
            problems.append("data/items.csv: differs from data/items.parquet (the items the analysis reads)")
            n_bad += 1
    rows.append({"check": "cube", "what": "items annotated; cube.nc = cube.zarr; items.csv = items.parquet",
                 "n_numbers": int(cube["label"].size), "max_diff": np.nan,
                 "status": "match" if not n_bad else "MISMATCH"})


_PER_FILE = 5  # problems listed per file (then a count)


def _compare_results(folder: Path, rerun: Path, meta: dict, study: Study, rows: list, problems: list) -> None:
    """Every result the re-run writes (and every one package.json lists) is compared; its kind and
    tolerance come from the result's name and the study file, not from package.json."""
    n_boot, n_draws = int(study.analysis.get("n_boot", 500)), int(study.analysis.get("n_draws", 10))
    made = {p.stem for p in rerun.glob("*.nc")} | {p.stem for p in (rerun / "tables").glob("*.csv")}
    results = {k: {"netcdf": (rerun / f"{k}.nc").exists() or bool(meta["results"].get(k, {}).get("netcdf"))}
               for k in made | set(meta.get("results", {}))}

    def add(row: dict, found: list[str], name: str) -> None:
        rows.append(row)
        problems.extend(found[:_PER_FILE])
        if len(found) > _PER_FILE:
            problems.append(f"{name}: ... and {len(found) - _PER_FILE} more difference(s)")

    for key, info in sorted(results.items()):
        kind = result_kind(key)
        if info.get("netcdf"):
            found: list[str] = []
            add(_compare_netcdf(folder / f"{key}.nc", rerun / f"{key}.nc", key, kind, n_boot, found, n_draws), found,
                f"{key}.nc")
        csv = folder / "tables" / f"{key}.csv"
        if csv.exists() or (rerun / "tables" / f"{key}.csv").exists():
            found = []
            add(_compare_csv(csv, rerun / "tables" / f"{key}.csv", key, kind, n_boot, n_draws, found), found,
                f"tables/{key}.csv")
    found = []
    add(_compare_headline(folder / "headline.json", rerun / "headline.json", found), found, "headline.json")


def _status(n_bad: int, n_mc: int) -> str:
    if n_bad:
        return f"MISMATCH ({n_bad})"
    return "within MC error" if n_mc else "match"


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isclose(a, b, rtol=RTOL, atol=RTOL, equal_nan=True)


def _label(ds: xr.Dataset, dims: tuple, index: tuple) -> str:
    parts = []
    for d, i in zip(dims, index, strict=True):
        text = f"{d}={ds[d].values[i]}" if d in ds.coords and ds[d].dims == (d,) else f"{d}={i}"
        if d == "hypothesis":  # the hypothesis' own coordinates say which one it is
            names = [str(ds[c].values[i]) for c in ("task", "grouping", "kind", "class_name")
                     if c in ds.coords and ds[c].dims == ("hypothesis",)]
            if names:
                text += f" ({'/'.join(names)})"
        parts.append(text)
    return ", ".join(parts)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _bootstrap_tolerance(ds: xr.Dataset, name: str, n_boot: int) -> np.ndarray | None:
    """4 Monte-Carlo SE of each percentile-bootstrap bound; None where the variable has no bounds.

    The MC SE of a 2.5 % / 97.5 % bootstrap quantile is about ``sqrt(q (1-q) / B) / phi(z_q)``
    bootstrap SDs, with the SD taken as the interval width / 3.92: about 0.68 width / sqrt(B).
    """
    var = ds[name]
    if "ci" not in var.dims or "lower" not in list(ds["ci"].values):
        return None
    width = (var.sel(ci="upper") - var.sel(ci="lower")).broadcast_like(var).transpose(*var.dims)
    tol = MC_K * 0.68 * np.abs(np.asarray(width.values, dtype=float)) / np.sqrt(max(n_boot, 1))
    is_est = (var["ci"] == "estimate").broadcast_like(var).transpose(*var.dims).values
    return np.where(is_est, 0.0, tol)


def _mc_tolerance(ds: xr.Dataset, name: str, key: str, n_draws: int) -> np.ndarray | None:
    """4 MC SE of a Monte-Carlo result: ``<name>_sd / sqrt(draws)`` (hacking curve), binomial SE over
    the cases of the draws (mitigation rates); None where neither applies."""
    x = np.asarray(ds[name].values, dtype=float)
    if f"{name}_sd" in ds:
        return MC_K * np.asarray(ds[f"{name}_sd"].broadcast_like(ds[name]).values, dtype=float) / np.sqrt(max(n_draws, 1))
    if key == "mitigation" and name in ("type_i", "type_ii", "type_s", "risk") and "n_cases" in ds:
        n = np.asarray(ds["n_null" if name == "type_i" and "n_null" in ds else "n_cases"].values, dtype=float)
        n = np.maximum(np.nan_to_num(n, nan=1.0), 1.0)
        return MC_K * np.sqrt(np.maximum(x * (1 - x), 0.25 / n) / n)
    return None


_BAYES_ESS = 400  # effective sample size assumed for posterior summaries (nutpie / NUTS defaults give more)


def _bayes_tolerance(ds: xr.Dataset, name: str) -> np.ndarray | None:
    """4 MC SE of a posterior summary: quantiles (``ci`` dim, 90 % interval of width w: SD about
    w / 3.29, SE of a quantile about 1.25 SD / sqrt(ESS)), probabilities sqrt(p (1-p) / ESS)."""
    var = ds[name]
    x = np.asarray(var.values, dtype=float)
    if "ci" in var.dims and "lower" in list(ds["ci"].values):
        width = (var.sel(ci="upper") - var.sel(ci="lower")).broadcast_like(var).transpose(*var.dims)
        return MC_K * 1.25 * np.abs(np.asarray(width.values, dtype=float)) / 3.29 / np.sqrt(_BAYES_ESS)
    finite = x[np.isfinite(x)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1:
        return MC_K * np.sqrt(np.maximum(x * (1 - x), 1 / _BAYES_ESS) / _BAYES_ESS)
    return None


def _compare_netcdf(packaged: Path, rerun: Path, key: str, kind: str, n_boot: int, problems: list,
                    n_draws: int = 10) -> dict:
    row = {"check": "result", "what": f"{key}.nc ({kind})", "n_numbers": 0, "max_diff": 0.0, "status": "match"}
    if not packaged.exists() or not rerun.exists():
        problems.append(f"{key}.nc: {'missing in the package' if not packaged.exists() else 'not made by the re-run'}")
        row["status"] = "MISMATCH"
        return row
    with xr.open_dataset(packaged, engine="h5netcdf") as a0, xr.open_dataset(rerun, engine="h5netcdf") as b0:
        a, b = a0.load(), b0.load()
    n_bad = n_mc = 0
    for name in sorted(set(a.attrs) | set(b.attrs)):
        va, vb = a.attrs.get(name), b.attrs.get(name)
        same = (va == vb) if not (isinstance(va, (float, np.floating)) and isinstance(vb, (float, np.floating))) \
            else bool(_close(np.asarray(va), np.asarray(vb)))
        if isinstance(same, np.ndarray):
            same = bool(np.all(same))
        if not same:
            problems.append(f"{key}.nc: attribute {name}: packaged {_plain(va)!r}, re-run {_plain(vb)!r}")
            n_bad += 1
    for name in sorted(set(a.variables) | set(b.variables)):
        if name not in a.variables or name not in b.variables:
            problems.append(f"{key}.nc: variable {name} {'missing in the package' if name not in a else 'not in the re-run'}")
            n_bad += 1
            continue
        x, y = a[name], b[name]
        if x.shape != y.shape:
            problems.append(f"{key}.nc: {name} has shape {x.shape} in the package, {y.shape} in the re-run")
            n_bad += 1
            continue
        xv, yv = np.asarray(x.values), np.asarray(y.values)
        row["n_numbers"] += int(xv.size)
        if xv.dtype.kind not in "fiub" or yv.dtype.kind not in "fiub":
            eq = xv.astype(str) == yv.astype(str)
            if not eq.all():
                idx = tuple(int(i) for i in np.argwhere(~eq)[0])
                problems.append(f"{key}.nc: {name}[{_label(a, x.dims, idx)}]: packaged {_plain(xv[idx])!r}, "
                                f"re-run {_plain(yv[idx])!r}")
                n_bad += 1
            continue
        xf, yf = xv.astype(float), yv.astype(float)
        ok = _close(xf, yf)
        with np.errstate(invalid="ignore"):
            diff = np.where(ok, 0.0, np.abs(xf - yf))
        if not ok.all():
            tol = (_bootstrap_tolerance(a, name, n_boot) if kind == "bootstrap" else
                   _mc_tolerance(a, name, key, n_draws) if kind == "monte_carlo" else
                   _bayes_tolerance(a, name) if kind == "bayesian" else None)
            if tol is not None:
                within = ok | (np.abs(xf - yf) <= tol)
                n_mc += int((~ok & within).sum())
                ok = within
        if not ok.all():
            bad = np.argwhere(~ok)
            for idx in bad[:3]:
                idx = tuple(int(i) for i in idx)
                problems.append(f"{key}.nc: {name}[{_label(a, x.dims, idx)}]: packaged {_plain(xf[idx])!r}, "
                                f"re-run {_plain(yf[idx])!r}")
            n_bad += len(bad)
        finite = np.isfinite(diff)
        if finite.any():
            row["max_diff"] = max(row["max_diff"], float(diff[finite].max()))
    row["status"] = _status(n_bad, n_mc)
    return row


def _mc_table_tolerance(key: str, a: pd.DataFrame, col: str, n_boot: int, n_draws: int) -> np.ndarray | None:
    """Monte-Carlo tolerance of a table column (``a`` read as text), or None (deterministic).

    Bootstrap bounds: 4 MC SE with the interval width bounded by the column's range of bounds;
    hacking curve: 4 SD / sqrt(draws); mitigation rates: 4 binomial SE over the draws' cases.
    """
    num = a.apply(pd.to_numeric, errors="coerce")
    x = num[col].to_numpy(float)
    if key == "hacking_curve" and f"{col}_sd" in a.columns:
        return MC_K * num[f"{col}_sd"].to_numpy(float) / np.sqrt(max(n_draws, 1))
    if key == "mitigation" and "n_cases" in a.columns and col in ("type_i", "type_ii", "type_s", "risk"):
        n = num["n_null" if col == "type_i" and "n_null" in a.columns else "n_cases"].to_numpy(float)
        n = np.maximum(np.nan_to_num(n, nan=1.0), 1.0)
        var = np.maximum(x * (1 - x), 0.25 / n)
        return MC_K * np.sqrt(var / n)
    if key in _BOOTSTRAP and "ci" in a.columns:
        bound = (a["ci"] != "estimate").to_numpy()
        vals = x[bound & np.isfinite(x)]
        if not vals.size:
            return None
        return np.where(bound, MC_K * 0.68 * (vals.max() - vals.min()) / np.sqrt(max(n_boot, 1)), 0.0)
    return None


def _compare_csv(packaged: Path, rerun: Path, key: str, kind: str, n_boot: int, n_draws: int,
                 problems: list) -> dict:
    rel = f"tables/{packaged.name}"
    row = {"check": "table", "what": f"{rel} ({kind})", "n_numbers": 0, "max_diff": 0.0, "status": "match"}
    if not packaged.exists() or not rerun.exists():
        problems.append(f"{rel}: {'missing in the package' if not packaged.exists() else 'not made by the re-run'}")
        row["status"] = "MISMATCH"
        return row
    a = pd.read_csv(packaged, keep_default_na=False, dtype=str)
    b = pd.read_csv(rerun, keep_default_na=False, dtype=str)
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        problems.append(f"{rel}: columns or rows differ (packaged {a.shape}, re-run {b.shape})")
        row["status"] = "MISMATCH"
        return row
    n_bad = n_mc = 0
    for col in a.columns:
        sa, sb = a[col], b[col]
        xa, xb = pd.to_numeric(sa, errors="coerce"), pd.to_numeric(sb, errors="coerce")
        numeric = xa.notna() & xb.notna()
        row["n_numbers"] += int(len(sa))
        text_bad = (~numeric) & (sa != sb)
        xf, yf = xa.to_numpy(float), xb.to_numpy(float)
        ok = ~numeric.to_numpy() | _close(xf, yf)
        if not ok.all() and kind != "deterministic":
            tol = _mc_table_tolerance(key, a, col, n_boot, n_draws)
            if tol is not None:
                with np.errstate(invalid="ignore"):
                    within = ok | (np.abs(xf - yf) <= tol)
                n_mc += int((~ok & within).sum())
                ok = within
        bad = np.flatnonzero(~ok | text_bad.to_numpy())
        for i in bad[:3]:
            problems.append(f"{rel}: row {i + 1}, column {col}: packaged {sa.iloc[i]!r}, re-run {sb.iloc[i]!r}")
        n_bad += len(bad)
        if numeric.any():
            with np.errstate(invalid="ignore"):
                d = np.abs(xf - yf)[numeric.to_numpy()]
            d = d[np.isfinite(d)]
            if d.size:
                row["max_diff"] = max(row["max_diff"], float(d.max()))
    row["status"] = _status(n_bad, n_mc)
    return row


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _compare_headline(packaged: Path, rerun: Path, problems: list) -> dict:
    row = {"check": "headline", "what": "headline.json", "n_numbers": 0, "max_diff": 0.0, "status": "match"}
    try:
        a = dict(_flat(json.loads(packaged.read_text(encoding="utf-8"))))
    except (OSError, ValueError) as err:
        problems.append(f"headline.json: cannot be read ({err})")
        row["status"] = "MISMATCH"
        return row
    b = dict(_flat(json.loads(rerun.read_text(encoding="utf-8"))))
    n_bad = 0
    for k in sorted(set(a) | set(b)):
        row["n_numbers"] += 1
        va, vb = a.get(k), b.get(k)
        same = va == vb or (isinstance(va, float) and isinstance(vb, float)
                            and bool(_close(np.asarray(va), np.asarray(vb))))
        if not same:
            problems.append(f"headline.json: {k}: packaged {va!r}, re-run {vb!r}")
            n_bad += 1
        elif isinstance(va, float) and isinstance(vb, float) and np.isfinite(va) and np.isfinite(vb):
            row["max_diff"] = max(row["max_diff"], abs(va - vb))
    row["status"] = _status(n_bad, 0)
    return row
