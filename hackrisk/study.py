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

Every problem raises :class:`StudyError` (a ``ValueError``) naming the file, the line, the key and
the fix; the ``hackrisk`` command turns it into exit code 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["Study", "StudyError", "load_study", "parse_study"]

_SECTIONS: dict[str, set[str]] = {
    "study": {"name", "output", "alpha", "seed"},
    "data": {"dataset", "source", "path", "text", "label", "id", "covariates", "n_items"},
    "task": {"name", "labels", "prompts"},
    "annotate": {"temperatures", "mode", "batch_size", "max_new_tokens"},
    "models": {"name", "backend", "model", "base_url", "api_key_env", "concurrency", "timeout"},
    "hypotheses": {"groupings", "custom", "top_k", "n_keywords"},
    "analysis": {"n_boot", "budgets", "bayes", "n_draws"},
}
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


def parse_study(text: str, path: str | Path = "<study>") -> Study:
    """Validate the TOML ``text`` of a study file; relative paths are taken from ``path``'s folder."""
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
    data = dict(raw.get("data", {}))
    if not data:
        fail(None, "data", "missing [data] section", "add [data] with dataset = \"...\" or path = \"...\"")
    if ("dataset" in data) == ("path" in data):
        fail("data", "dataset", "give exactly one of 'dataset' and 'path'",
             "name a registered dataset (hackrisk.datasets.list_tasks()) or the path of your CSV/Parquet")
    if "path" in data:
        data["path"] = str((base / data["path"]).resolve())
        if not Path(data["path"]).exists():
            fail("data", "path", f"file {data['path']} does not exist", "check the path (relative to the study file)")
        if "text" not in data:
            fail("data", "text", "missing the text column name", "add text = \"<column>\"")
    if data.get("source"):
        data["source"] = str((base / data["source"]).resolve())
    if "n_items" in data and (not isinstance(data["n_items"], int) or data["n_items"] < 2):
        fail("data", "n_items", f"must be an integer >= 2, got {data['n_items']!r}", "e.g. n_items = 300")

    task = dict(raw.get("task", {}))
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
            if "{text}" not in str(p):
                fail("task", "prompts", f"template without {{text}}: {str(p)[:50]!r}",
                     "put {text} where the annotated text goes")

    ann = raw.get("annotate", {})
    temps = ann.get("temperatures", [0.0])
    if not isinstance(temps, list) or not temps or not all(isinstance(t, (int, float)) and t >= 0 for t in temps):
        fail("annotate", "temperatures", f"must be a list of numbers >= 0, got {temps!r}", "e.g. temperatures = [0.0, 1.0]")
    mode = ann.get("mode", "score")
    if mode not in ("score", "generate"):
        fail("annotate", "mode", f"unknown mode {mode!r}", "use \"score\" or \"generate\"")

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
        spec = str(m.get("model", "default"))
        if backend == "transformers" and spec not in ("default", "tiny-random") and not (base / spec).exists() \
                and not Path(spec).exists():
            fail("models", "model", f"unknown model {spec!r} for {m['name']!r}: no such folder or file",
                 "use \"default\" (embedded SmolLM2), \"tiny-random\", or the path of a model folder / GGUF file")

    hyp = dict(raw.get("hypotheses", {}))
    for g in hyp.get("groupings", []):
        if g not in _GROUPINGS:
            fail("hypotheses", "groupings", f"unknown grouping {g!r}", f"use some of {list(_GROUPINGS)}")
    if "custom" in hyp and not isinstance(hyp["custom"], Mapping):
        fail("hypotheses", "custom", "must be a table of name = \"pandas query\"", "e.g. custom = { long = \"length > 20\" }")

    analysis = dict(raw.get("analysis", {}))
    budgets = analysis.get("budgets", [25, 50, 100])
    if not isinstance(budgets, list) or not all(isinstance(b, int) and b > 1 for b in budgets):
        fail("analysis", "budgets", f"must be a list of integers > 1, got {budgets!r}", "e.g. budgets = [25, 50, 100]")
    analysis["budgets"] = budgets

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
    )


def load_study(path: str | Path) -> Study:
    """Read and validate a study file (see the module docstring for the format)."""
    path = Path(path)
    if not path.exists():
        raise StudyError(f"{path}: study file does not exist. Fix: check the path, or start from the "
                         "example in the README ('Study files').")
    return parse_study(path.read_text(encoding="utf-8"), path)
