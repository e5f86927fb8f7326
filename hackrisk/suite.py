"""Suite files: one TOML file that runs the same design over several tasks (the paper's tasks, say).

A suite file is a study file (see :mod:`hackrisk.study`) whose ``[data]`` / ``[task]`` sections are
replaced by one ``[[tasks]]`` table per task::

    [study]
    name = "paper-tasks"
    output = "paper-tasks-output"     # each task writes to <output>/<task>
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
:func:`hackrisk.study.parse_study`; :func:`write_suite` writes those study files so that the
existing ``hackrisk validate / annotate / analyze / report`` run each task unchanged (resumable, one
progress bar per task). :func:`validate_suite` runs, per task, every check ``hackrisk validate`` runs.
From a shell: ``python -m hackrisk.suite validate SUITE.toml`` and
``python -m hackrisk.suite write SUITE.toml FOLDER``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

from .study import Study, StudyError, parse_study

__all__ = ["load_suite", "suite_texts", "write_suite", "validate_suite"]

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


def validate_suite(path: str | Path) -> list[dict[str, Any]]:
    """Run, for every task of the suite, the checks ``hackrisk validate`` runs; one summary row per task.

    Returns
    -------
    list of dict
        ``task, items, prompts, classes, temperatures, models, labels`` (labels to annotate:
        items x prompts x temperatures x models).
    """
    from .study import check_inputs, check_output

    rows = []
    for study in load_suite(path):
        td = check_inputs(study)
        check_output(study)
        n = len(td.items) * len(td.prompts) * len(study.temperatures) * len(study.models)
        rows.append({"task": td.name, "items": len(td.items), "prompts": len(td.prompts),
                     "classes": len(td.classes), "temperatures": len(study.temperatures),
                     "models": len(study.models), "labels": n})
    return rows


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "validate":
        rows = validate_suite(argv[1])
        for r in rows:
            sys.stdout.write(f"{r['task']}: valid ({r['items']} items, {r['prompts']} prompt(s), "
                             f"{r['temperatures']} temperature(s), {r['labels']} labels to annotate)\n")
        sys.stdout.write(f"{argv[1]}: valid ({len(rows)} tasks, {sum(r['labels'] for r in rows)} labels)\n")
        return 0
    if len(argv) == 3 and argv[0] == "write":
        for p in write_suite(argv[1], argv[2]):
            sys.stdout.write(f"{p}\n")
        return 0
    sys.stderr.write("usage: python -m hackrisk.suite validate SUITE.toml | write SUITE.toml FOLDER\n")
    return 2


if __name__ == "__main__":  # pragma: no cover
    try:
        raise SystemExit(_main(sys.argv[1:]))
    except StudyError as err:
        sys.stderr.write(f"hackrisk: {err}\n")
        raise SystemExit(2) from None
