"""Study files: one TOML file describes data, task, models, temperatures, hypotheses and analysis.

A complete example (every key shown; only ``[data]`` and ``[[models]]`` are required)::

    [study]
    name = "tweets-sentiment"
    output = "study-output"          # folder for the cube, results, figures and report
    alpha = 0.05
    seed = 0

    [data]
    dataset = "vader_tweets"         # a registered dataset (hackrisk.datasets.list_tasks()) ...
    source = ""                      # ... optionally read from a mirror folder or the vaderSentiment sdist
    # path = "my_texts.csv"          # ... or your own CSV / Parquet file:
    # text = "text"
    # label = "label"                # human label column (optional)
    # id = "id"
    # covariates = ["source", "date"]
    n_items = 300                    # seeded random subset (omit for all items)

    [task]
    name = "sentiment"               # default: the dataset's name
    labels = ["negative", "neutral", "positive"]   # default: the dataset's label set
    prompts = ["Is the sentiment of this text negative, neutral or positive?\\n{text}"]

    [annotate]
    temperatures = [0.0, 0.7, 1.0]
    mode = "score"                   # or "generate" (free generation + parsing, as in the paper)
    batch_size = 16
    confidence = false               # true: ask each reply's verbalized confidence (mode "generate");
                                     # "paper": the authors' separate 0-1 prompt per (item, label)

    [[models]]
    name = "smollm2-135m"
    backend = "transformers"         # or "openai" (any OpenAI-compatible server)
    model = "default"                # model folder / GGUF path; "default" = embedded SmolLM2-135M
    # base_url = "http://127.0.0.1:8080/v1"
    # api_key_env = "OPENAI_API_KEY"

    [hypotheses]
    groupings = ["random", "length", "keyword", "covariate"]
    custom = { long_texts = "length > 20" }

    [analysis]
    n_boot = 500
    budgets = [25, 50, 100]          # human-label budgets for the mitigation table ([] to skip)
    bayes = false                    # Bayesian risk curves (needs the [bayes] extra)
    conventions = "hackrisk"         # or "paper": the authors' decisions (docs/conventions.md)

    [human]                          # human labels you collected on some items (optional)
    labels = "human_labels.csv"      # columns item_id, label (class name), optional pi; see `hackrisk suggest`
    methods = ["ppi", "human"]       # corrections run by `analyze` (also "dsl", "cdi", "substitution")

Every problem raises :class:`StudyError` (a ``ValueError``) naming the file, the line, the key and
the fix; the ``hackrisk`` command turns it into exit code 2.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["Study", "StudyError", "load_study", "parse_study", "format_study", "check_human_labels"]

_SECTIONS: dict[str, set[str]] = {
    "study": {"name", "output", "alpha", "seed"},
    "data": {"dataset", "source", "path", "text", "label", "id", "covariates", "n_items"},
    "task": {"name", "labels", "prompts"},
    "annotate": {"temperatures", "mode", "batch_size", "max_new_tokens", "confidence"},
    "models": {"name", "backend", "model", "base_url", "api_key_env", "concurrency", "timeout", "max_retries"},
    "hypotheses": {"groupings", "custom", "top_k", "n_keywords"},
    "analysis": {"n_boot", "budgets", "bayes", "n_draws", "allow_incomplete", "conventions"},
    "human": {"labels", "methods"},
}
_HUMAN_METHODS = ("ppi", "dsl", "cdi", "human", "substitution")
_BACKENDS = ("transformers", "openai")
_GROUPINGS = ("random", "length", "keyword", "covariate")


class StudyError(ValueError):
    """A study file is invalid; the message names the file, line, key and fix."""


@dataclass(frozen=True)
class Study:
    """A validated study (see the module docstring for the file format)."""

    path: Path
    name: str
    output: Path
    alpha: float
    seed: int
    data: dict[str, Any]
    task: dict[str, Any]
    models: list[dict[str, Any]]
    temperatures: list[float]
    mode: str
    batch_size: int
    max_new_tokens: int
    hypotheses: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    human: dict[str, Any] = field(default_factory=dict)
    confidence: bool | str = False

    @property
    def cube_path(self) -> Path:
        """Where the label cube (zarr) is written."""
        return self.output / "cube.zarr"


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """1-based line of ``key =`` (inside ``[section]`` when given), else of the section header."""
    lines = text.splitlines()
    in_section = section is None
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*$")
    found_section = None
    for i, line in enumerate(lines, 1):
        m = header.match(line)
        if m:
            in_section = section is None or m.group(1) == section
            if in_section and found_section is None:
                found_section = i
            continue
        if in_section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return i
    return found_section


def parse_study(text: str, path: str | Path = "<study>", *, check_models: bool = True) -> Study:
    """Validate the TOML ``text`` of a study file; relative paths are taken from ``path``'s folder.

    ``check_models=False`` accepts model folders / files that do not exist here (a replication
    package holds the labels, not the models).
    """
    path = Path(path)

    def fail(section: str | None, key: str, problem: str, fix: str) -> None:
        line = _line_of(text, section, key)
        where = f"{path}:{line}" if line else str(path)
        name = f"[{section}] {key}" if section else key
        raise StudyError(f"{where}: {name}: {problem}. Fix: {fix}")

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path}: not valid TOML ({err}). Fix: check quotes, brackets and '=' signs.") from err

    for section, value in raw.items():
        if section not in _SECTIONS:
            fail(None, section, f"unknown section [{section}]", f"use one of {sorted(_SECTIONS)}")
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not isinstance(entry, Mapping):
                fail(None, section, "must be a table", f"write [{section}] followed by key = value lines")
            for key in entry:
                if key not in _SECTIONS[section]:
                    fail(section, key, "unknown key", f"use one of {sorted(_SECTIONS[section])}")

    base = path.parent if path.name != "<study>" else Path.cwd()
    st = raw.get("study", {})
    for key, kind in (("name", str), ("output", str), ("seed", int)):
        if key in st and (not isinstance(st[key], kind) or isinstance(st[key], bool)):
            fail("study", key, f"must be a {'string' if kind is str else 'whole number'}, got {st[key]!r}",
                 'e.g. output = "study-output"' if key == "output" else
                 ('e.g. name = "my-study"' if key == "name" else "e.g. seed = 0"))
    data = dict(raw.get("data", {}))
    if not data:
        fail(None, "data", "missing [data] section", "add [data] with dataset = \"...\" or path = \"...\"")
    if ("dataset" in data) == ("path" in data):
        fail("data", "dataset", "give exactly one of 'dataset' and 'path'",
             "name a registered dataset (hackrisk.datasets.list_tasks()) or the path of your CSV/Parquet")
    if "path" in data:
        if not isinstance(data["path"], str) or not data["path"].strip():
            fail("data", "path", f"must be the path of a CSV / Parquet file, got {data['path']!r}",
                 'e.g. path = "my_texts.csv"')
        data["path"] = str((base / data["path"]).resolve())
        if not Path(data["path"]).exists():
            fail("data", "path", f"file {data['path']} does not exist", "check the path (relative to the study file)")
        if Path(data["path"]).is_dir():
            fail("data", "path", f"{data['path']} is a folder, not a file",
                 "give the path of the CSV / Parquet file inside it")
        for key in ("text", "label", "id"):
            if key in data and not isinstance(data[key], str):
                fail("data", key, f"must be a column name (a string), got {data[key]!r}", f'e.g. {key} = "{key}"')
        if "text" not in data:
            fail("data", "text", "missing the text column name", "add text = \"<column>\"")
    if data.get("source"):
        data["source"] = str((base / data["source"]).resolve())
    if isinstance(data.get("covariates"), str):  # one column: a one-element list, never letter by letter
        data["covariates"] = [data["covariates"]]
    if "covariates" in data and (not isinstance(data["covariates"], list)
                                 or not all(isinstance(c, str) for c in data["covariates"])):
        fail("data", "covariates", f"must be a list of column names, got {data['covariates']!r}",
             'e.g. covariates = ["source", "date"]')
    if "n_items" in data and (not isinstance(data["n_items"], int) or isinstance(data["n_items"], bool)
                              or data["n_items"] < 2):
        fail("data", "n_items", f"must be an integer >= 2, got {data['n_items']!r}", "e.g. n_items = 300")

    task = dict(raw.get("task", {}))
    if "path" in data and "prompts" not in task:
        fail("task" if "task" in raw else None, "prompts" if "task" in raw else "task",
             "your own data (path = ...) needs prompt templates",
             '[task] with prompts = ["...{text}..."] (and labels = [...] unless the label column holds every class)')
    if "path" in data and "label" not in data and "labels" not in task:
        fail("task", "labels", "without a label column the class names are unknown",
             'add labels = ["...", "..."] to [task], or label = "<column>" to [data]')
    if "labels" in task:
        labels = task["labels"]
        if not isinstance(labels, list) or len(labels) < 2 or len(set(map(str, labels))) != len(labels):
            fail("task", "labels", f"need at least two distinct labels, got {labels!r}",
                 "e.g. labels = [\"negative\", \"positive\"]")
    if "prompts" in task:
        prompts = task["prompts"]
        if not isinstance(prompts, list) or not prompts:
            fail("task", "prompts", "must be a non-empty list of templates", "e.g. prompts = [\"Label this: {text}\"]")
        for p in prompts:
            if not isinstance(p, str):
                fail("task", "prompts", f"each template must be a string, got {p!r}", 'e.g. prompts = ["Label: {text}"]')
            if "{text}" not in str(p):
                fail("task", "prompts", f"template without {{text}}: {str(p)[:50]!r}",
                     "put {text} where the annotated text goes")
            problem = _template_problem(p)
            if problem:
                fail("task", "prompts", f"template {p[:50]!r}: {problem}",
                     "write literal braces (e.g. in JSON examples) doubled: {{ and }}; placeholders are "
                     "{text}, {labels}, {keys}, {options} or a covariate column")

    ann = raw.get("annotate", {})
    temps = ann.get("temperatures", [0.0])
    if not isinstance(temps, list) or not temps or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0 for t in temps):
        fail("annotate", "temperatures", f"must be a list of finite numbers >= 0, got {temps!r}",
             "e.g. temperatures = [0.0, 1.0]")
    for key, default in (("batch_size", 16), ("max_new_tokens", 20)):
        value = ann.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail("annotate", key, f"must be a whole number >= 1, got {value!r}", f"e.g. {key} = {default}")
    mode = ann.get("mode", "score")
    if mode not in ("score", "generate"):
        fail("annotate", "mode", f"unknown mode {mode!r}", "use \"score\" or \"generate\"")
    confidence = ann.get("confidence", False)
    if not isinstance(confidence, bool) and confidence != "paper":
        fail("annotate", "confidence", f"must be true or false (a TOML boolean, no quotes) or \"paper\", got "
             f"{confidence!r}", "write confidence = true, confidence = false or confidence = \"paper\" (the "
             "authors' separate 0-1 prompt)")
    if confidence and mode != "generate":
        fail("annotate", "confidence", "verbalized confidence follows a free reply, so it needs mode = \"generate\"",
             "set mode = \"generate\" or drop confidence")

    models = raw.get("models", [])
    if isinstance(models, Mapping):
        models = [models]
    if not models:
        fail(None, "models", "no [[models]] given", "add a [[models]] table with name, backend and model")
    names = set()
    for m in models:
        if "name" not in m:
            fail("models", "name", "a model has no name", "add name = \"...\"")
        if m["name"] in names:
            fail("models", "name", f"duplicate model name {m['name']!r}", "give each model a unique name")
        names.add(m["name"])
        backend = m.get("backend", "transformers")
        if backend not in _BACKENDS:
            fail("models", "backend", f"unknown backend {backend!r} for model {m['name']!r}", f"use one of {list(_BACKENDS)}")
        if backend == "openai" and "base_url" not in m:
            fail("models", "base_url", f"model {m['name']!r} uses the openai backend without base_url",
                 "add base_url = \"http://host:port/v1\"")
        if "base_url" in m and (not isinstance(m["base_url"], str)
                                or not m["base_url"].startswith(("http://", "https://"))):
            fail("models", "base_url", f"model {m['name']!r}: base_url must start with http:// or https://",
                 'e.g. base_url = "http://127.0.0.1:8080/v1"')
        if "api_key_env" in m and not (isinstance(m["api_key_env"], str) and m["api_key_env"].strip()):
            fail("models", "api_key_env", f"must name an environment variable, got {m['api_key_env']!r}",
                 'e.g. api_key_env = "OPENAI_API_KEY" (the key itself never goes in the study file)')
        for key, lo in (("concurrency", 1), ("max_retries", 0), ("timeout", 0)):
            v = m.get(key)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
                                  or v < lo or (key != "timeout" and not isinstance(v, int)) or (key == "timeout" and v <= 0)):
                fail("models", key, f"model {m['name']!r}: {key} = {v!r} is not valid",
                     {"concurrency": "a whole number >= 1, e.g. concurrency = 4",
                      "max_retries": "a whole number >= 0, e.g. max_retries = 6",
                      "timeout": "seconds > 0, e.g. timeout = 60"}[key])
        spec = str(m.get("model", "default"))
        if check_models and backend == "transformers" and spec not in ("default", "tiny-random") \
                and not (base / spec).exists() \
                and not Path(spec).exists():
            fail("models", "model", f"unknown model {spec!r} for {m['name']!r}: no such folder or file",
                 "use \"default\" (embedded SmolLM2), \"tiny-random\", or the path of a model folder / GGUF file")

    hyp = dict(raw.get("hypotheses", {}))
    if isinstance(hyp.get("groupings"), str):  # one grouping: a one-element list, never letter by letter
        hyp["groupings"] = [hyp["groupings"]]
    if "groupings" in hyp and not isinstance(hyp["groupings"], list):
        fail("hypotheses", "groupings", f"must be a list, got {hyp['groupings']!r}", 'e.g. groupings = ["random", "length"]')
    for g in hyp.get("groupings", []):
        if g not in _GROUPINGS:
            fail("hypotheses", "groupings", f"unknown grouping {g!r}", f"use some of {list(_GROUPINGS)}")
    if "custom" in hyp and not isinstance(hyp["custom"], Mapping):
        fail("hypotheses", "custom", "must be a table of name = \"pandas query\"", "e.g. custom = { long = \"length > 20\" }")

    analysis = dict(raw.get("analysis", {}))
    budgets = analysis.get("budgets", [25, 50, 100])
    if not isinstance(budgets, list) or not all(isinstance(b, int) and b > 1 for b in budgets):
        fail("analysis", "budgets", f"must be a list of integers > 1, got {budgets!r}", "e.g. budgets = [25, 50, 100]")
    analysis["budgets_given"] = "budgets" in analysis  # given budgets must fit; default ones shrink to fit
    analysis["budgets"] = budgets
    for key in ("bayes", "allow_incomplete"):
        if key in analysis and not isinstance(analysis[key], bool):
            fail("analysis", key, f"must be true or false (a TOML boolean, no quotes), got {analysis[key]!r}",
                 f"write {key} = true or {key} = false")
    for key, lo in (("n_boot", 1), ("n_draws", 1)):
        if key in analysis and (not isinstance(analysis[key], int) or isinstance(analysis[key], bool)
                                or analysis[key] < lo):
            fail("analysis", key, f"must be a whole number >= {lo}, got {analysis[key]!r}", f"e.g. {key} = 100")
    if "conventions" in analysis and analysis["conventions"] not in ("hackrisk", "paper"):
        fail("analysis", "conventions", f"unknown preset {analysis['conventions']!r}",
             "use \"hackrisk\" (the default) or \"paper\" (the authors' decisions; docs/conventions.md)")

    human = _parse_human(raw.get("human", {}), base, text, path, fail)

    alpha = st.get("alpha", 0.05)
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        fail("study", "alpha", f"must be in (0, 1), got {alpha!r}", "e.g. alpha = 0.05")
    return Study(
        path=path,
        name=str(st.get("name", path.stem)),
        output=(base / st.get("output", f"{path.stem}-output")).resolve(),
        alpha=float(alpha),
        seed=int(st.get("seed", 0)),
        data=data,
        task=task,
        models=[dict(m) for m in models],
        temperatures=[float(t) for t in temps],
        mode=mode,
        batch_size=int(ann.get("batch_size", 16)),
        max_new_tokens=int(ann.get("max_new_tokens", 20)),
        hypotheses=hyp,
        analysis=analysis,
        human=human,
        confidence=confidence if confidence == "paper" else bool(confidence),
    )


def check_human_labels(study: Study, td: Any) -> None:
    """Check the ``[human] labels`` file against the study's data before any annotation.

    The checks of :func:`hackrisk.human.add_human_labels` that need no cube: the file reads as
    text with ``item_id`` and ``label``, every id is an item of the data (after ``n_items``), no id
    repeats, every label is a class of ``[task] labels``, a ``pi`` is in (0, 1], and a label does
    not contradict a human label of the data file. Raises :class:`StudyError` at the ``labels`` line.
    """
    human = getattr(study, "human", None)
    if not human:
        return
    from .human import read_human_labels

    where = human.get("where", str(study.path))

    def fail(problem: str, fix: str) -> None:
        raise StudyError(f"{where}: [human] labels: {problem}. Fix: {fix}")

    try:
        tab = read_human_labels(human["labels"])
    except ValueError as err:
        raise StudyError(f"{where}: [human] labels: {err}") from err
    if "task" in tab.columns:
        other = sorted(set(tab["task"]) - {str(td.name)})
        if other:
            fail(f"task(s) {other[:5]} are not the study's task {td.name!r}", "drop the task column or fix its values")
    ids = td.items["item_id"].astype(str)
    unknown = sorted(set(tab["item_id"]) - set(ids))
    if unknown:
        fail(f"{len(unknown)} item id(s) are not in the data: {unknown[:5]}",
             "use the ids of the data's id column (compared as text; after [data] n_items)")
    dup = tab["item_id"][tab["item_id"].duplicated()].unique().tolist()
    if dup:
        fail(f"item id(s) {dup[:5]} appear more than once", "keep one label per item")
    classes = [str(c) for c in td.classes]
    bad = sorted(set(tab["label"]) - set(classes))
    if bad:
        fail(f"label(s) {bad[:5]} are not among the classes {classes}", "use the class names of [task] labels")
    if "truth" in td.items.columns:
        known = td.items.assign(item_id=ids).dropna(subset=["truth"]).set_index("item_id")["truth"].astype(str)
        both = tab.set_index("item_id")["label"].reindex(known.index).dropna()
        clash = both[both != known.loc[both.index]]
        if len(clash):
            fail(f"{len(clash)} item(s) have another human label in the data file: {clash.index[:5].tolist()}",
                 "drop them from the labels file or from the data's label column")


def _parse_human(sec: Mapping[str, Any], base: Path, text: str, path: Path, fail) -> dict[str, Any]:
    """The ``[human]`` section: the labels file (resolved, must exist) and the correction methods.

    ``where`` (``file:line`` of the ``labels`` key) is kept so that problems found later in the
    file's content are reported at that line.
    """
    human = dict(sec)
    if not human:
        return {}
    if "labels" not in human:
        fail("human", "labels", "missing the human labels file", "add labels = \"human_labels.csv\" (columns "
             "item_id, label, optional pi), or remove [human]")
    if not isinstance(human["labels"], str) or not human["labels"].strip():
        fail("human", "labels", f"must be the path of a CSV file, got {human['labels']!r}",
             "e.g. labels = \"human_labels.csv\" (relative to the study file)")
    human["labels"] = str((base / human["labels"]).resolve())
    if not Path(human["labels"]).is_file():
        fail("human", "labels", f"file {human['labels']} does not exist",
             "check the path (relative to the study file); `hackrisk suggest` writes the items to label")
    methods = human.get("methods", ["ppi", "human"])
    if isinstance(methods, str) or not isinstance(methods, list) or not methods \
            or not all(m in _HUMAN_METHODS for m in methods):
        fail("human", "methods", f"must be a non-empty list of {list(_HUMAN_METHODS)}, got {methods!r}",
             "e.g. methods = [\"ppi\", \"human\"]")
    human["methods"] = list(dict.fromkeys(methods))
    line = _line_of(text, "human", "labels")
    human["where"] = f"{path}:{line}" if line else str(path)
    return human


def format_study(study: Study, *, base: str | Path | None = None) -> str:
    """The TOML text of a study file that :func:`parse_study` reads back as ``study``.

    Paths (data, human labels, output) are written relative to ``base`` (default: the study
    file's folder) when they lie inside it, else absolute. Internal keys (``budgets_given``,
    ``where``) are left out: the budgets written are those given.
    """
    base = Path(base if base is not None else study.path.parent).resolve()

    def rel(p: str | Path) -> str:
        p = Path(p).resolve()
        try:
            return p.relative_to(base).as_posix() or "."
        except ValueError:
            return str(p)

    sections: list[tuple[str, dict[str, Any]]] = [
        ("study", {"name": study.name, "output": rel(study.output), "alpha": study.alpha, "seed": study.seed})]
    data = dict(study.data)
    for key in ("path", "source"):
        if data.get(key):
            data[key] = rel(data[key])
    sections.append(("data", data))
    sections.append(("task", dict(study.task)))
    sections.append(("annotate", {"temperatures": list(study.temperatures), "mode": study.mode,
                                  "batch_size": study.batch_size, "max_new_tokens": study.max_new_tokens,
                                  **({"confidence": study.confidence} if study.confidence else {})}))
    for m in study.models:
        sections.append(("[models]", dict(m)))
    if study.hypotheses:
        sections.append(("hypotheses", dict(study.hypotheses)))
    sections.append(("analysis", {k: v for k, v in study.analysis.items() if k != "budgets_given"}))
    if study.human:
        sections.append(("human", {"labels": rel(study.human["labels"]), "methods": list(study.human["methods"])}))
    lines = ["# written by hackrisk (format_study)"]
    for name, values in sections:
        lines.append(f"\n[{name}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(v: Any) -> str:
    """One TOML value (strings escaped, floats written so that they read back as floats)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        out = []
        for ch in v:
            if ch in ('"', "\\"):
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\u{ord(ch):04X}"))
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Path):
        return _toml_value(str(v))
    raise TypeError(f"format_study: cannot write {v!r} ({type(v).__name__}) as a TOML value.")


def load_study(path: str | Path) -> Study:
    """Read and validate a study file (see the module docstring for the format)."""
    path = Path(path)
    if not path.exists():
        raise StudyError(f"{path}: study file does not exist. Fix: check the path, or start from the "
                         "example in the README ('Study files').")
    if path.is_dir():
        raise StudyError(f"{path}: is a folder, not a study file. Fix: give the path of the .toml file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise StudyError(f"{path}: not valid UTF-8 text (byte {err.start}). Fix: save the study file as "
                         "UTF-8.") from err
    except OSError as err:
        raise StudyError(f"{path}: cannot be read ({err.strerror}). Fix: check the path and its "
                         "permissions.") from err
    return parse_study(text, path)


def _template_problem(template: str) -> str | None:
    """Why ``template`` is not a valid format string (stray / JSON braces), or None."""
    import string

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        return f"not a valid template ({err})"
    odd = [f for f in fields if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f)]
    if odd:
        return f"{{{odd[0]}}} is not a placeholder (literal braces, e.g. JSON?)"
    return None


# ---- one validation path: the checks `validate`, `annotate` and `analyze` share ----------------------


def study_error(study: Study, section: str | None, key: str, problem: str, fix: str) -> StudyError:
    """A :class:`StudyError` at the line of ``key`` in the study file (when it can be read)."""
    line = None
    try:
        if study.path.is_file():
            line = _line_of(study.path.read_text(encoding="utf-8"), section, key)
    except (OSError, UnicodeDecodeError):
        line = None
    where = f"{study.path}:{line}" if line else str(study.path)
    name = f"[{section}] {key}" if section else key
    return StudyError(f"{where}: {name}: {problem}. Fix: {fix}")


def check_output(study: Study) -> None:
    """The output folder can be created and written (checked without creating it)."""
    out = study.output
    if out.exists() and not out.is_dir():
        raise study_error(study, "study", "output", f"{out} is a file, not a folder",
                          "give a folder path (it is created if needed)")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise study_error(study, "study", "output", f"cannot create {out}: {probe} is a file",
                          "set output to a folder path you can write to")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise study_error(study, "study", "output", f"cannot write to {out} ({probe} is not writable)",
                          "set output to a folder you can write to")


def check_inputs(study: Study):
    """Load the study's data and run every check that ``annotate`` and ``analyze`` would run on it.

    Returns the :class:`hackrisk.datasets.TaskData` (subset applied). Raises :class:`StudyError`
    with the study file's line, key and fix: data that cannot be read, labels outside the label set,
    empty or whitespace-only texts, templates that are not valid format strings or use a column
    the data lack, mitigation budgets the human labels cannot support.
    """
    from .pipeline import load_items

    td = load_items(study)
    items = td.items
    text_key = ("data", "text") if "path" in study.data else ("data", "dataset")
    blank = items["text"].map(lambda t: not str(t).strip()).to_numpy(bool)
    if blank.any():
        ids = items["item_id"][blank].astype(str).tolist()
        raise study_error(study, *text_key, f"{int(blank.sum())} item(s) have empty or whitespace-only text "
                          f"(ids {ids[:5]})", "drop those rows from the data file, or give them a text")
    from .annotate import TaskSpec

    if not td.prompts:
        raise study_error(study, "task", "prompts", "no prompt templates", 'add prompts = ["...{text}..."] to [task]')
    try:
        spec = TaskSpec(td.name, list(td.classes), list(td.prompts), max_new_tokens=study.max_new_tokens)
    except ValueError as err:
        raise study_error(study, "task", "prompts" if "template" in str(err) else "labels", str(err).split(" Fix:")[0],
                          str(err).split("Fix: ")[-1] if "Fix: " in str(err) else "check [task]") from err
    unknown = sorted(spec.fields() - set(items.columns))
    if unknown:
        raise study_error(study, "task", "prompts", f"placeholders {unknown} are not columns of the data",
                          "write literal braces doubled ({{ and }}), or add the columns as covariates")
    if not getattr(study, "human", None):
        check_budgets(study, int(items["truth"].notna().sum()))
    check_human_labels(study, td)
    return td


def check_budgets(study: Study, n_labelled: int) -> list[int]:
    """The mitigation budgets to use: each must be below 70 % of the human-labelled items.

    Budgets written in the study file that do not fit are an error (never dropped silently); the
    default budgets (no ``budgets`` key) shrink to those that fit, with a logged note.
    """
    budgets = list(study.analysis.get("budgets", []))
    cap = 0.7 * n_labelled
    too_big = [b for b in budgets if b >= cap]
    if not too_big:
        return budgets
    if not study.analysis.get("budgets_given", True):
        import logging

        logging.getLogger(__name__).warning(
            "default mitigation budgets %s are left out: not below 70%% of the %d human-labelled items; set "
            "[analysis] budgets to choose others", too_big, n_labelled)
        return [b for b in budgets if b < cap]
    example = f"[{max(2, int(cap // 4))}, {max(2, int(cap // 2))}]" if cap > 4 else "[]"
    raise study_error(study, "analysis", "budgets",
                      f"budget(s) {too_big} are not below 70% of the {n_labelled} human-labelled items "
                      f"({cap:.0f}); the mitigation table needs labelled items left over to check against",
                      f"use budgets below {cap:.0f} (e.g. budgets = {example}), or budgets = [] to skip the "
                      "mitigation table")


def check_annotations(study: Study, cube: Any) -> None:
    """The annotated store belongs to the study's current data and is complete.

    Raises :class:`StudyError` when items (texts, human labels, covariates) changed since they were
    annotated, or when configurations have missing labels and neither ``[analysis]
    allow_incomplete = true`` nor ``--allow-incomplete`` says to analyse the complete ones only.
    """
    from .annotate.runner import item_fingerprints, missing_labels

    if "item_fingerprint" in cube:
        td = check_inputs(study)
        now = dict(zip(td.items["item_id"].astype(str), item_fingerprints(td.items), strict=True))
        ids = [str(i) for i in cube["item_id"].values[0] if i != ""]
        then = dict(zip(ids, (str(f) for f in cube["item_fingerprint"].values[0][: len(ids)]), strict=True))
        changed = sorted(i for i in now if i in then and now[i] != then[i])
        added = sorted(set(now) - set(then))
        removed = sorted(set(then) - set(now))
        if changed or added or removed:
            raise StudyError(
                f"{study.path}: the data changed since they were annotated ({len(changed)} item(s) with another "
                f"text, human label or covariate, e.g. {changed[:5]}; {len(added)} added; {len(removed)} removed), "
                "so the stored labels and human labels would not belong together. Fix: run `hackrisk annotate` "
                "again (only the changed items are sent to the models), then analyze.")
    missing = missing_labels(cube)
    if len(missing) and not study.analysis.get("allow_incomplete", False):
        n_cfg = int(np.prod([cube.sizes[d] for d in ("model", "prompt", "temperature")]))
        names = ", ".join(f"{r.model}/{r.prompt}/T={r.temperature:g} ({r.n_missing} of {r.n_items})"
                          for r in missing.head(4).itertuples())
        raise StudyError(
            f"{study.path}: {int(missing['n_missing'].sum())} label(s) are missing in {len(missing)} of {n_cfg} "
            f"configuration(s): {names}{' ...' if len(missing) > 4 else ''}. Fix: run `hackrisk annotate` again "
            "(failed requests are retried), or analyse the complete configurations only with "
            "`--allow-incomplete` (or [analysis] allow_incomplete = true).")
