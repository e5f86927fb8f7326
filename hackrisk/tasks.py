"""The paper's tasks: a registry of the 29 files of the authors' repository, loaded and checked by content.

Baumann et al. (2025) annotate 29 published task files (``data/all_data_processed`` of the repository
joebaumann/llmhacking, pinned here at commit ``3f66288``); 28 are public, one (``issue_survey``) has
its texts removed. :func:`list_paper_tasks` lists all of them with study, citation, classes, the
authors' prompts, the covariates their hypotheses use, a fingerprint of the published file, and
whether a copy is available on this machine; :func:`load_paper_task` loads one as a
:class:`hackrisk.datasets.TaskData` (``hackrisk.load_task(name)`` does the same).

Where a file comes from (first hit wins): ``source=`` (the file or a folder holding it), the mirror
``$HACKRISK_DATA_DIR/llmhacking/<name>.csv[.gz]``, the cache ``<cache>/llmhacking/<name>.csv``, and a
download of the pinned raw URL into the cache (unless ``HACKRISK_OFFLINE=1``). Offline, a file found
nowhere raises :class:`hackrisk.datasets.DataNotFoundError` naming the file, the commit, the URL and
the folders to put a copy in.

**Verification by content, not bytes.** The 9 mirrored copies were transcribed from the published
files: the characters count the same, but a few invisible characters (carriage returns inside fields,
zero-width joiners, C1 controls, no-break spaces) may differ from the published bytes. Every copy,
from any source, is therefore checked by content: its columns, ids, labels and texts are compared with
the reference with invisible characters removed and every kind of space read as one space
(:func:`visible_text`); a changed label, a changed word, a missing or an added row raises a
``ValueError`` naming the row and the difference. The published character count is checked too: for
the 9 mirrored tasks a different count with identical content is accepted (and recorded), for the
19 others the count is the only content check available and must match. The SHA-256 of the bytes
actually read is recorded in ``TaskData.info["provenance"]`` (and in the attributes of a cube
built with :func:`hackrisk.datasets.empty_cube`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import unicodedata
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import _paper_tasks as _facts

__all__ = ["PaperTask", "PAPER_TASKS", "COMMIT", "list_paper_tasks", "get_paper_task", "load_paper_task",
           "read_task_bytes", "verify_task_content", "visible_text", "content_fingerprint"]

logger = logging.getLogger(__name__)

COMMIT = _facts.COMMIT
_FINGERPRINT_FILE = Path(__file__).parent / "data" / "paper_tasks_content.json.gz"


@dataclass(frozen=True)
class PaperTask:
    """One task file of the paper's repository (see :func:`list_paper_tasks`).

    Attributes
    ----------
    name
        Task name (the file name without ``.csv``; ``issue_survey`` for the redacted file).
    study, citation, description
        The authors' study folder, the data's citation (with the authors' BibTeX key) and the task.
    classes
        Class names in the authors' order; where ``classes_complete`` is False only those seen in the
        first 16,000 characters of the file are known here and the rest are added, sorted, on load.
    prompts
        ``(prompt id, template with {text}, origin)``; origin ``"authors"`` (quoted from the authors'
        loader, see ``prompt_note``) or ``"hackrisk"`` (written for hackrisk, named as such).
    covariates
        Columns kept as item covariates when the task is loaded.
    hypothesis_covariates
        The columns the authors' own hypotheses split on (``()``: none, their hypotheses use random,
        length and keyword groupings only; ``None``: not recorded here).
    chars, columns, id_pattern, rows
        Fingerprint of the published file: length in Unicode code points, header, the form of every
        id (regular expression), data rows (``None`` where unknown here).
    mirrored
        A content reference (ids, labels, text digests) is shipped with hackrisk.
    """

    name: str
    file: str
    study: str
    citation: str
    description: str
    classes: tuple[str, ...]
    classes_complete: bool
    covariates: tuple[str, ...]
    hypothesis_covariates: tuple[str, ...] | None
    chars: int
    columns: tuple[str, ...]
    id_pattern: str
    rows: int | None
    prompts: tuple[tuple[str, str, str], ...] = ()
    prompt_note: str = ""
    text: str | None = "text"
    label: str = "ground_truth"
    id: str = "id"
    commit: str = COMMIT
    unavailable: str = ""
    long_texts: bool = False
    id_gaps: bool = False
    answers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The raw URL of the file at the pinned commit."""
        return _facts.RAW_URL.format(commit=self.commit, name=self.file)

    @property
    def repo_path(self) -> str:
        """The file's path inside the authors' repository."""
        return f"data/all_data_processed/{self.file}.csv"

    @property
    def mirrored(self) -> bool:
        """Whether hackrisk ships a content reference for this task (the 9 mirrored files)."""
        return self.name in _reference()


def _make(entry: dict) -> PaperTask:
    e = dict(entry)
    e.setdefault("file", e["name"])
    e.setdefault("id_pattern", rf"{re.escape(_facts.ID_PREFIX.get(e['name'], e['name']))}_\d+")
    e.setdefault("prompts", ())
    e.setdefault("prompt_note", "The authors' prompts for this task are in data/" + e["study"]
                 + "/load_data_and_prompts.py; not transcribed here (no prompts listed).")
    return PaperTask(**e)


#: Every task file of the repository at the pinned commit, by name.
PAPER_TASKS: dict[str, PaperTask] = {e["name"]: _make(e) for e in _facts.TASKS}


def get_paper_task(name: str) -> PaperTask:
    """The registry entry of task ``name``."""
    try:
        return PAPER_TASKS[name]
    except KeyError:
        raise ValueError(f"unknown paper task {name!r}; the registry has {sorted(PAPER_TASKS)}. Fix: use one of "
                         "those (hackrisk.tasks.list_paper_tasks()).") from None


# ---- content ---------------------------------------------------------------------------------------


def visible_text(text: str) -> str:
    """``text`` without invisible characters: format (Cf) and control (Cc) characters removed, every
    kind of space and line break read as one space, leading / trailing space dropped.

    Two texts with the same ``visible_text`` differ only in characters a reader cannot see (a
    carriage return before a line feed, a zero-width joiner, a no-break space for a space, a C1
    control inside mojibake).
    """
    out = []
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cf", "Cc"):
            out.append(ch)
    return " ".join("".join(out).split())


def _digest(text: str) -> str:
    return hashlib.sha256(visible_text(text).encode("utf-8")).hexdigest()[:16]


def _parse(raw: bytes, where: str) -> tuple[str, list[str], list[list[str]]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not UTF-8 text (byte {err.start}). Fix: use the published file "
                         "(UTF-8) or a copy saved as UTF-8.") from err
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))  # long documents in one field
    try:
        rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    except csv.Error as err:
        raise ValueError(f"{where}: not a readable CSV file ({err}). Fix: fetch the published file again.") from err
    if not rows:
        raise ValueError(f"{where}: the file is empty. Fix: fetch it again.")
    return text, rows[0], rows[1:]


def content_fingerprint(raw: bytes, name: str) -> dict[str, Any]:
    """The content reference of a copy of task ``name``: rows, ids, labels, text digests, chars.

    Used to build hackrisk's shipped reference from the mirror (and by the tests to check it).
    """
    task = get_paper_task(name)
    text, header, body = _parse(raw, name)
    col = {c: i for i, c in enumerate(header)}
    return {"chars": len(text), "rows": len(body), "columns": header,
            "visible": hashlib.sha256(visible_text(text).encode("utf-8")).hexdigest(),
            "ids": [r[col[task.id]] for r in body], "labels": [r[col[task.label]] for r in body],
            "text": [_digest(r[col[task.text]]) for r in body] if task.text else []}


_REFERENCE: dict[str, Any] | None = None


def _reference() -> dict[str, Any]:
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = json.loads(gzip.decompress(_FINGERPRINT_FILE.read_bytes())) if _FINGERPRINT_FILE.is_file() else {}
    return _REFERENCE


def verify_task_content(raw: bytes, name: str, where: str = "<bytes>") -> dict[str, Any]:
    """Check a copy of task ``name`` by content; return its provenance.

    Raises ``ValueError`` naming the difference (columns, an id that is missing, added, duplicated
    or malformed, a changed label or text with its id, a different character count where no
    content reference exists). Differences only in invisible characters pass.

    Returns
    -------
    dict
        ``sha256`` (of ``raw``), ``chars``, ``chars_published``, ``rows``, ``checked``
        (``"content"`` or ``"fingerprint"``), ``invisible_differences`` (True when the count differs
        but the content does not), ``commit``.
    """
    task = get_paper_task(name)
    text, header, body = _parse(raw, where)
    fix = (f"Fix: fetch {task.repo_path} at commit {task.commit} again ({task.url}), or point "
           "HACKRISK_DATA_DIR at a verified mirror.")
    if tuple(header) != task.columns:
        missing = [c for c in task.columns if c not in header]
        extra = [c for c in header if c not in task.columns]
        raise ValueError(f"{where}: the columns differ from the published {task.file}.csv (missing {missing}, "
                         f"unexpected {extra}{', order differs' if not missing and not extra else ''}). {fix}")
    col = {c: i for i, c in enumerate(header)}
    short = [i for i, r in enumerate(body) if len(r) != len(header)]
    if short:
        raise ValueError(f"{where}: data row {short[0] + 1} has {len(body[short[0]])} fields, the header "
                         f"{len(header)} (a broken quote?). {fix}")
    ids = [r[col[task.id]] for r in body]
    pattern = re.compile(task.id_pattern)
    bad = [i for i in ids if not pattern.fullmatch(i)]
    if bad:
        raise ValueError(f"{where}: id {bad[0]!r} does not have the published form {task.id_pattern!r}. {fix}")
    seen: set[str] = set()
    dup = next((i for i in ids if i in seen or seen.add(i)), None)  # type: ignore[func-returns-value]
    if dup is not None:
        raise ValueError(f"{where}: id {dup!r} occurs more than once (an added row?). {fix}")
    ref = _reference().get(name)
    prov = {"task": name, "file": task.repo_path, "commit": task.commit, "source": where,
            "sha256": hashlib.sha256(raw).hexdigest(), "chars": len(text), "chars_published": task.chars,
            "rows": len(body), "invisible_differences": False}
    if ref is None:
        if len(text) != task.chars or (task.rows is not None and len(body) != task.rows):
            raise ValueError(f"{where}: {len(text):,} characters and {len(body):,} rows; the published "
                             f"{task.file}.csv has {task.chars:,} characters"
                             f"{f' and {task.rows:,} rows' if task.rows else ''} (no row-level reference "
                             f"is shipped for this task, so the content cannot be compared further). {fix}")
        return {**prov, "checked": "fingerprint"}
    problems = _compare(ref, ids, [r[col[task.label]] for r in body],
                        [_digest(r[col[task.text]]) for r in body] if task.text else [])
    if not problems and hashlib.sha256(visible_text(text).encode("utf-8")).hexdigest() != ref["visible"]:
        problems = ["a field outside the id, label and text columns differs in visible characters "
                    f"({len(text):,} characters, published {task.chars:,})"]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"{where}: the content differs from the published {task.file}.csv: "
                         f"{'; '.join(problems[:5])}{more}. {fix}")
    if len(text) != task.chars:
        logger.info("%s: %d characters, published %d: differences in invisible characters only",
                    where, len(text), task.chars)
    return {**prov, "checked": "content", "invisible_differences": len(text) != task.chars}


def _compare(ref: dict[str, Any], ids: list[str], labels: list[str], digests: list[str]) -> list[str]:
    out: list[str] = []
    ref_pos = {i: k for k, i in enumerate(ref["ids"])}
    got = set(ids)
    missing = [i for i in ref["ids"] if i not in got]
    added = [i for i in ids if i not in ref_pos]
    if missing:
        out.append(f"{len(missing)} row(s) missing (id {', '.join(missing[:3])})")
    if added:
        out.append(f"{len(added)} row(s) added (id {', '.join(added[:3])})")
    for k, i in enumerate(ids):
        j = ref_pos.get(i)
        if j is None:
            continue
        if labels[k] != ref["labels"][j]:
            out.append(f"label of id {i} is {labels[k]!r}, published {ref['labels'][j]!r}")
        if digests and digests[k] != ref["text"][j]:
            out.append(f"text of id {i} differs in visible characters (a changed word?)")
    if not missing and not added and ids != ref["ids"]:
        out.append("the rows are in a different order")
    return out


# ---- locating the bytes ----------------------------------------------------------------------------


def _candidates(folder: Path, task: PaperTask) -> list[Path]:
    return [folder / "llmhacking" / f"{task.file}.csv.gz", folder / "llmhacking" / f"{task.file}.csv",
            folder / f"{task.file}.csv.gz", folder / f"{task.file}.csv"]


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def read_task_bytes(name: str, source: str | Path | None = None) -> tuple[bytes, dict[str, Any]]:
    """The verified CSV bytes of task ``name`` and their provenance (see the module docstring).

    Parameters
    ----------
    name
        A registered task (:data:`PAPER_TASKS`).
    source
        The file itself (``.csv`` or ``.csv.gz``) or a folder holding it (or ``llmhacking/`` with it).
        Default: the mirror, the cache, then a download at the pinned commit.
    """
    from .datasets import DataNotFoundError, _offline, cache_dir, data_dir

    task = get_paper_task(name)
    if task.unavailable:
        raise DataNotFoundError(f"task {name!r} is not available: {task.unavailable}. Fix: choose another task "
                                "(hackrisk.tasks.list_paper_tasks()).")
    looked: list[Path] = []
    if source is not None:
        src = Path(source).expanduser()
        paths = [src] if src.is_file() else _candidates(src, task)
    else:
        root = data_dir()
        paths = _candidates(root, task) if root is not None else []
    for path in paths:
        looked.append(path)
        if path.is_file():
            raw = _read(path)
            return raw, verify_task_content(raw, name, str(path))
    cached = cache_dir() / "llmhacking" / f"{task.file}.csv"
    if source is None:
        looked.append(cached)
        if cached.is_file():
            raw = cached.read_bytes()
            return raw, verify_task_content(raw, name, str(cached))
        if not _offline():
            try:
                logger.info("downloading %s -> %s", task.url, cached)
                with urllib.request.urlopen(task.url, timeout=60) as resp:  # noqa: S310 (fixed https URL)
                    raw = resp.read()
            except OSError as exc:  # network errors; content errors below propagate
                logger.warning("download of %s failed: %s", task.url, exc)
            else:
                prov = verify_task_content(raw, name, task.url)
                cached.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=cached.name, suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(raw)
                    os.replace(tmp, cached)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                return raw, prov
    mode = ("the given source holds no copy" if source is not None else
            "downloads are disabled (HACKRISK_OFFLINE=1)" if _offline() else "the download failed")
    mirror = data_dir()
    folders = ([str(mirror / "llmhacking")] if mirror is not None else []) + [str(cached.parent)]
    raise DataNotFoundError(
        f"task {name!r}: file {task.repo_path} (commit {task.commit}) not found (looked in: "
        f"{', '.join(map(str, looked)) or 'nowhere'}) and {mode}. Fix: download {task.url} and put it in "
        f"{' or '.join(folders)} as {task.file}.csv (or pass source=<the file>); set HACKRISK_DATA_DIR to a "
        "mirror folder, or allow the download (unset HACKRISK_OFFLINE)."
    )


# ---- registry views and loading --------------------------------------------------------------------


def _available(task: PaperTask) -> str:
    """Where a copy is here: 'mirror', 'cache', '' (none)."""
    from .datasets import cache_dir, data_dir

    if task.unavailable:
        return ""
    root = data_dir()
    if root is not None and any(p.is_file() for p in _candidates(root, task)):
        return "mirror"
    if (cache_dir() / "llmhacking" / f"{task.file}.csv").is_file():
        return "cache"
    return ""


def list_paper_tasks() -> pd.DataFrame:
    """Every task file of the paper's repository, one row each.

    Columns: ``name, study, citation, description, n_classes, classes, classes_complete, n_prompts,
    authors_prompts, covariates, hypothesis_covariates, chars, rows, columns, id_pattern, mirrored,
    available`` (``"mirror"``, ``"cache"`` or ``""``; a task that is not available here loads online),
    ``public`` and ``url``.
    """
    rows = []
    for t in PAPER_TASKS.values():
        rows.append({
            "name": t.name, "study": t.study, "citation": t.citation, "description": t.description,
            "n_classes": len(t.classes), "classes": list(t.classes), "classes_complete": t.classes_complete,
            "n_prompts": len(t.prompts), "authors_prompts": sum(p[2] == "authors" for p in t.prompts),
            "covariates": list(t.covariates),
            "hypothesis_covariates": None if t.hypothesis_covariates is None else list(t.hypothesis_covariates),
            "chars": t.chars, "rows": t.rows, "columns": list(t.columns), "id_pattern": t.id_pattern,
            "mirrored": t.mirrored, "available": _available(t), "public": not t.unavailable, "url": t.url,
        })
    return pd.DataFrame(rows)


def load_paper_task(name: str, *, source: str | Path | None = None) -> Any:
    """Load a task of the paper as a :class:`hackrisk.datasets.TaskData` (verified by content).

    ``items`` has the text, the label (an empty label cell = no human label) and the registry's
    covariates (dates parsed, numbers numeric, few distinct strings as categories); ids are kept as
    published (gaps included). ``classes`` are the authors' classes, then any other label seen,
    sorted. ``prompts`` are the registry's templates; ``info`` holds the citation, the provenance
    (SHA-256 of the bytes read), the longest text in characters and the prompt ids / origins.
    """
    from .datasets import TaskData, _numeric_or_text, _tidy_covariate

    task = get_paper_task(name)
    raw, prov = read_task_bytes(name, source)
    _, header, body = _parse(raw, prov["source"])
    df = pd.DataFrame(body, columns=header, dtype=object)
    truth = df[task.label].where(df[task.label] != "", None)
    seen = sorted(set(truth.dropna()) - set(task.classes))
    classes = tuple(task.classes) + tuple(seen)
    items = pd.DataFrame({"task": name, "item_id": df[task.id].tolist(), "text": df[task.text].tolist(),
                          "truth": truth.tolist()}, dtype=object)
    for c in task.covariates:
        col = _numeric_or_text(df[c].reset_index(drop=True))
        if c == "created_utc":  # seconds since 1970
            col = pd.to_datetime(pd.to_numeric(col), unit="s", utc=True)
        items[f"{c}" if c not in ("task", "item_id", "text", "truth") else f"{c}_"] = _tidy_covariate(col, 50)
    lengths = items["text"].str.len()
    info = {"citation": task.citation, "study": task.study, "description": task.description,
            "commit": task.commit, "provenance": prov, "longest_text_chars": int(lengths.max()),
            "classes_from_registry": list(task.classes), "classes_seen_only": seen,
            "prompt_ids": [p[0] for p in task.prompts], "prompt_origins": [p[2] for p in task.prompts],
            "prompt_note": task.prompt_note,
            "hypothesis_covariates": task.hypothesis_covariates,
            "notes": ("empty label cells are items without a human label; texts are kept as published "
                      "(annotate truncates a text longer than the model's context and marks it in "
                      "annotate_status, bit 1)")}
    return TaskData(name=name, items=items, classes=classes, prompts=tuple(p[1] for p in task.prompts),
                    source=prov["source"], info=info)
