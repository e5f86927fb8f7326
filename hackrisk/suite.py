"""Suite files: one TOML file that runs the same design over several tasks (the paper's tasks, say).

A suite file is a study file (see :mod:`hackrisk.study`) whose ``[data]`` / ``[task]`` sections are
replaced by one ``[[tasks]]`` table per task::

    [study]
    name = "paper-tasks"
    output = "paper-tasks-output"     # each task writes to <output>/<task>, the suite to <output>
    seed = 0

    [annotate]
    temperatures = [0.0, 0.7, 1.0]

    [[models]]
    name = "smollm2-135m"
    model = "default"

    [[tasks]]
    dataset = "stance_climate"        # a registered dataset (hackrisk.datasets.list_tasks())
    n_items = 120                     # the item cap of this task (seeded subset)
    # prompts = ["...{text}..."]      # default: the dataset's prompts (TaskData.prompts);
                                      # "registry": those of hackrisk.tasks.PAPER_TASKS[dataset]
    # labels = ["...", "..."]         # default: the task's classes
    # source = "path/to/copy.csv"     # default: mirror, cache, then download

Every ``[[tasks]]`` entry becomes an ordinary study (:func:`load_suite`), validated by
:func:`hackrisk.study.parse_study`. The ``hackrisk`` command takes the suite file itself:

``hackrisk validate SUITE.toml``  every check of ``hackrisk validate``, per task (:func:`validate_suite`)
``hackrisk annotate SUITE.toml``  every task in turn, after all were checked (:func:`annotate_suite`)
``hackrisk analyze SUITE.toml``   per task the tests, then the cross-task summary (:func:`analyze_suite`)
``hackrisk report SUITE.toml``    per-task reports and the suite report (:func:`report_suite`)

:func:`write_suite` writes one ordinary study file per task (``python -m hackrisk.suite write
SUITE.toml FOLDER``), to run or change a task on its own.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

from .study import Study, StudyError, parse_study

__all__ = ["load_suite", "suite_texts", "suite_output", "write_suite", "check_suite", "validate_suite",
           "annotate_suite", "analyze_suite", "report_suite"]

logger = logging.getLogger(__name__)

_SHARED = ("study", "annotate", "models", "hypotheses", "analysis")
_TASK_KEYS = {"dataset", "n_items", "source", "prompts", "labels", "name"}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def _table(name: str, entries: Mapping[str, Any], array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    return "\n".join([head] + [f"{json.dumps(k)} = {_value(v)}" for k, v in entries.items()]) + "\n"


def suite_texts(path: str | Path) -> dict[str, str]:
    """The study file text of every task of the suite ``path``, by task name (in file order).

    Raises :class:`hackrisk.study.StudyError` naming the suite file, the ``[[tasks]]`` entry and the fix.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path}: not valid TOML ({err}). Fix: check quotes, brackets and '=' signs.") from err
    except OSError as err:
        raise StudyError(f"{path}: cannot read the suite file ({err}). Fix: check the path.") from err
    entries = raw.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise StudyError(f"{path}: no [[tasks]] tables. Fix: add one [[tasks]] table with dataset = \"...\" per "
                         "task (or use an ordinary study file with [data] for a single task).")
    extra = sorted(set(raw) - set(_SHARED) - {"tasks"})
    if extra:
        raise StudyError(f"{path}: section(s) {extra} are not allowed in a suite file. Fix: use {list(_SHARED)} "
                         "and [[tasks]]; [data] / [task] go into each [[tasks]] entry.")
    study = dict(raw.get("study", {}))
    output = Path(study.get("output", "suite-output"))
    out: dict[str, str] = {}
    for k, entry in enumerate(entries, start=1):
        where = f"{path}: [[tasks]] entry {k}"
        if not isinstance(entry, Mapping) or "dataset" not in entry:
            raise StudyError(f"{where}: needs dataset = \"<registered task>\". Fix: e.g. dataset = \"stance_climate\".")
        bad = sorted(set(entry) - _TASK_KEYS)
        if bad:
            raise StudyError(f"{where}: unknown key(s) {bad}. Fix: use {sorted(_TASK_KEYS)}.")
        name = str(entry.get("name", entry["dataset"]))
        if name in out:
            raise StudyError(f"{where}: task {name!r} appears twice. Fix: give the second a different name = \"...\".")
        st = dict(study, name=f"{study.get('name', path.stem)}: {name}", output=str(output / name))
        data = {k2: entry[k2] for k2 in ("dataset", "source", "n_items") if k2 in entry}
        task = {"name": name} | {k2: entry[k2] for k2 in ("labels", "prompts") if k2 in entry}
        if task.get("prompts") == "registry":
            from .tasks import PAPER_TASKS

            reg = PAPER_TASKS.get(str(entry["dataset"]))
            if reg is None or not reg.prompts:
                raise StudyError(f"{where}: prompts = \"registry\" but {entry['dataset']!r} has no registered "
                                 "prompts. Fix: list the prompts, or use a task of hackrisk.tasks.PAPER_TASKS.")
            task["prompts"] = [t for _, t, _ in reg.prompts]
        parts = [_table("study", st), _table("data", data), _table("task", task)]
        for section in ("annotate", "hypotheses", "analysis"):
            if section in raw:
                parts.append(_table(section, raw[section]))
        parts += [_table("models", m, array=True) for m in raw.get("models", [])]
        out[name] = f"# task {name} of the suite {path.name}\n\n" + "\n".join(parts)
    return out


def load_suite(path: str | Path, *, check_models: bool = True) -> list[Study]:
    """The suite ``path`` as one validated :class:`hackrisk.study.Study` per task."""
    path = Path(path)
    studies = []
    for name, text in suite_texts(path).items():
        try:
            studies.append(parse_study(text, path, check_models=check_models))
        except StudyError as err:
            raise StudyError(f"{path}: [[tasks]] {name}: {err}") from err
    return studies


def suite_output(path: str | Path) -> Path:
    """The suite's output folder (``[study] output``, relative to the suite file): each task writes
    to ``<output>/<task>``, the cross-task results go to ``<output>`` itself."""
    path = Path(path)
    study = tomllib.loads(path.read_text(encoding="utf-8")).get("study", {})
    return (path.parent / str(study.get("output", "suite-output"))).resolve()


def write_suite(path: str | Path, folder: str | Path) -> list[Path]:
    """Write one ordinary study file per task of the suite ``path`` into ``folder``; return the paths.

    Relative paths (``output``, ``source``) are resolved against the suite file's folder, so the
    written files work from anywhere: ``hackrisk annotate <folder>/<task>.toml``.
    """
    path, folder = Path(path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for study in load_suite(path):
        name = study.task.get("name", study.data.get("dataset"))
        text = suite_texts(path)[name]
        raw = tomllib.loads(text)
        raw["study"]["output"] = str(study.output)
        if "source" in raw.get("data", {}):
            raw["data"]["source"] = study.data["source"]
        parts = [_table(s, raw[s]) for s in ("study", "data", "task", "annotate", "hypotheses", "analysis") if s in raw]
        parts += [_table("models", m, array=True) for m in raw.get("models", [])]
        target = folder / f"{name}.toml"
        target.write_text(f"# task {name} of the suite {path.resolve()}\n\n" + "\n".join(parts), encoding="utf-8")
        written.append(target)
    return written


def check_suite(path: str | Path) -> list[tuple[Study, Any]]:
    """Every task of the suite ``path``, each checked as ``hackrisk validate`` checks a study.

    Returns ``(study, task data)`` per task (the data with the subset applied,
    :func:`hackrisk.study.check_inputs`). All tasks are checked before the first one runs, so a
    task whose data cannot be had here (an unmirrored file offline, say) stops the suite before any
    annotation: the error names the task and, from :mod:`hackrisk.tasks`, the file, the commit,
    the URL and the folder to put a copy in.
    """
    from .study import check_inputs, check_output

    checked = []
    for study in load_suite(path):
        try:
            td = check_inputs(study)
            check_output(study)
        except StudyError as err:
            raise StudyError(f"[[tasks]] {_task_name(study)}: {err}") from err
        checked.append((study, td))
    return checked


def _task_name(study: Study) -> str:
    return str(study.task.get("name", study.data.get("dataset")))


def validate_suite(path: str | Path) -> list[dict[str, Any]]:
    """Run, for every task of the suite, the checks ``hackrisk validate`` runs; one summary row per task.

    Returns
    -------
    list of dict
        ``task, items, prompts, classes, temperatures, models, labels`` (labels to annotate:
        items x prompts x temperatures x models).
    """
    rows = []
    for study, td in check_suite(path):
        n = len(td.items) * len(td.prompts) * len(study.temperatures) * len(study.models)
        rows.append({"task": td.name, "items": len(td.items), "prompts": len(td.prompts),
                     "classes": len(td.classes), "temperatures": len(study.temperatures),
                     "models": len(study.models), "labels": n})
    return rows


def annotate_suite(path: str | Path, *, progress: bool = True) -> Iterator[tuple[Study, Any, float]]:
    """Annotate every task of the suite in turn; yields ``(study, cube, seconds)`` per task.

    Every task is checked first (:func:`check_suite`), so nothing is annotated when one task
    cannot run. Each task is an ordinary study annotated by
    :func:`hackrisk.pipeline.annotate_study` into ``<output>/<task>/cube.zarr``: cached and
    resumable (after a crash or Ctrl-C, run again and only what is missing is asked), one progress
    bar per task. The models are loaded once for all tasks. The checks run when the iteration starts.
    """
    from .pipeline import annotate_study, make_backends

    checked = check_suite(path)
    backends = make_backends(checked[0][0])  # [[models]], seed and batch size are shared by every task
    for study, td in checked:
        t0 = time.perf_counter()
        try:
            cube = annotate_study(study, progress=progress, backends=backends, items=td)
        except ValueError as err:  # e.g. a prompt longer than a model's context: name the task
            raise StudyError(f"[[tasks]] {_task_name(study)}: {err}") from err
        except Exception:
            logger.error("suite %s: annotating task %s failed", path, _task_name(study))
            raise
        yield study, cube, time.perf_counter() - t0


def analyze_suite(path: str | Path, *, allow_incomplete: bool = False, bayes: bool | None = None) -> dict[str, Any]:
    """Per task the tests the cross-task picture needs, then the cross-task summary; saved to disk.

    Each task is analysed by :func:`hackrisk.pipeline.analyze_study` with ``lean=True`` (hypotheses,
    tests, overall risk, hacking, annotation quality, saved in ``<output>/<task>``; none of the
    per-task extras such as risk by configuration, curves, mitigation or Bayesian fits). A task on
    whose items no hypothesis can be formed is left out, named with the reason in ``left_out``. The
    others go into :func:`hackrisk.analysis.crosstask.suite_summary`, saved in ``<output>``:

    ``suite_tests.nc``
        the combined tests (open with :func:`hackrisk.widgets.explore`; task is a slice);
    ``task_risk``, ``quality_risk``, ``variance``, ``task_curves``
        ``.nc`` and ``tables/<name>.csv``: risk per task, risk against accuracy / F1 per task x
        configuration, the variance decomposition, the Bayesian curves (with ``bayes``);
    ``suite_summary.json``
        the tasks, those left out and why, each task's headline, the risk per task, the
        quality relation, the variance shares and the seconds each part took.

    ``bayes``: fit the cross-task Bayesian curve (task as a level); default the suite file's
    ``[analysis] bayes``, else true.

    Returns
    -------
    dict
        ``output`` (the folder), ``studies`` / ``results`` / ``cubes`` (by task, analysed tasks
        only), ``left_out`` ({task: reason}), ``summary`` (:func:`~hackrisk.analysis.crosstask.suite_summary`)
        and ``json`` (what ``suite_summary.json`` holds).
    """
    from dataclasses import replace

    from .analysis.crosstask import suite_summary
    from .io import open_cube
    from .pipeline import NoHypothesisError, _save_results, analyze_study, headline

    path = Path(path)
    studies = load_suite(path)
    missing = [_task_name(s) for s in studies if not s.cube_path.exists()]
    if missing:
        raise StudyError(f"{path}: no annotations for the task(s) {missing}. Fix: run `hackrisk annotate {path}` "
                         "first (it resumes where it stopped).")
    out: dict[str, Any] = {"output": suite_output(path), "studies": {}, "results": {}, "cubes": {}, "left_out": {}}
    seconds: dict[str, float] = {}
    for study in studies:
        name = _task_name(study)
        if allow_incomplete:
            study = replace(study, analysis=dict(study.analysis, allow_incomplete=True))
        t0 = time.perf_counter()
        cube = open_cube(study.cube_path, lazy=False)
        try:
            res = analyze_study(study, cube, lean=True)
        except NoHypothesisError as err:
            out["left_out"][name] = " ".join(str(err).split())
            logger.warning("suite %s: task %s is left out of the cross-task analysis: no hypothesis could be formed "
                           "on its items (the reasons are in left_out / suite_summary.json)", path, name)
            continue
        except StudyError as err:
            raise StudyError(f"[[tasks]] {name}: {err}") from err
        seconds[name] = round(time.perf_counter() - t0, 2)
        out["studies"][name], out["results"][name], out["cubes"][name] = study, res, cube
    if not out["results"]:
        raise StudyError(f"{path}: no task could be analysed ({out['left_out']}). Fix: raise the tasks' n_items.")
    first = studies[0]
    if bayes is None:
        bayes = bool(first.analysis.get("bayes", True))
    t0 = time.perf_counter()
    summary = suite_summary({name: res["tests"] for name, res in out["results"].items()}, out["cubes"],
                            n_boot=int(first.analysis.get("n_boot", 500)), bayes=bayes, rng=first.seed)
    seconds["suite_summary"] = round(time.perf_counter() - t0, 2)
    out["summary"] = summary
    root = out["output"]
    root.mkdir(parents=True, exist_ok=True)
    saved = {"suite_tests": summary["combined"], "task_risk": summary["task_table"], "quality_risk": summary["quality"],
             "variance": summary["variance"], "task_curves": (summary["curve"] or {}).get("curves")}
    _save_results({k: v for k, v in saved.items() if v is not None}, root)
    table = summary["task_table"]
    relation = summary["quality"].attrs.get("relation") if summary["quality"] is not None else None
    out["json"] = {
        "suite": str(path), "tasks": list(out["results"]), "left_out": out["left_out"],
        "n_hypotheses": int(summary["combined"].sizes["hypothesis"]),
        "task_risk": table[[c for c in ("task", "rank", "risk_balanced", "risk_balanced_lower", "risk_balanced_upper",
                                        "type_i", "type_ii", "type_s", "n_conclusions") if c in table]
                           ].to_dict(orient="records"),
        "quality_relation": relation,
        "variance": {str(t): {v: float(summary["variance"][v].sel(term=t)) for v in ("r2_sequential", "r2_alone")
                              if v in summary["variance"]} for t in summary["variance"]["term"].values},
        "per_task": {name: headline(res) for name, res in out["results"].items()},
        "bayes": bool(bayes),
        "seconds": seconds | {f"suite_{k}": round(v, 2) for k, v in summary["seconds"].items()},
    }
    (root / "suite_summary.json").write_text(json.dumps(out["json"], indent=2, default=_plain), encoding="utf-8")
    return out


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and the like (NaN stays NaN, as Python's json writes it)."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def report_suite(path: str | Path, analysis: dict[str, Any] | None = None, *,
                 allow_incomplete: bool = False) -> Path:
    """Per-task reports (``<output>/<task>/report.html``) and the suite report ``<output>/report.html``.

    The suite report (:func:`hackrisk.report.write_suite_report`) links each task's report and lists
    the tasks left out of the cross-task analysis, with the reason.
    ``analysis`` is the output of :func:`analyze_suite` (computed when not given). Returns the path
    of the suite report.
    """
    import os

    from .pipeline import report_study
    from .report import write_suite_report

    res = analysis if analysis is not None else analyze_suite(path, allow_incomplete=allow_incomplete)
    root = res["output"]
    links = {}
    for name, study in res["studies"].items():
        task_report = report_study(study, res["results"][name], res["cubes"][name])
        links[name] = Path(os.path.relpath(task_report, root)).as_posix()
    name = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("study", {}).get("name", Path(path).stem)
    return write_suite_report(root / "report.html", res["summary"], task_reports=links,
                              title=f"hackrisk report: {name} ({len(links)} tasks)", left_out=res.get("left_out"))


def _main(argv: list[str]) -> int:
    """``python -m hackrisk.suite write SUITE.toml FOLDER``; any other command is ``hackrisk COMMAND ...``."""
    if len(argv) == 3 and argv[0] == "write":
        for p in write_suite(argv[1], argv[2]):
            sys.stdout.write(f"{p}\n")
        return 0
    if argv and argv[0] in ("validate", "annotate", "analyze", "report", "explore"):
        from .cli import main

        return main(argv)
    sys.stderr.write("usage: python -m hackrisk.suite write SUITE.toml FOLDER | "
                     "validate|annotate|analyze|report|explore SUITE.toml (the same as `hackrisk ...`)\n")
    return 2


if __name__ == "__main__":  # pragma: no cover
    try:
        raise SystemExit(_main(sys.argv[1:]))
    except StudyError as err:
        sys.stderr.write(f"hackrisk: {err}\n")
        raise SystemExit(2) from None
