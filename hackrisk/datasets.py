"""Human-labelled text data: the paper's public tasks, the VADER crowd ratings, your own tables.

Every loader returns a :class:`TaskData`: a tidy **items** table (``task, item_id, text, truth``
and covariates with proper dtypes), the task's **classes** (fixed order = label codes), the
individual human **ratings** where several people rated each item (for
:mod:`hackrisk.analysis.agreement`), and provenance.  ``items, classes = load_task(...)`` also
works.  :func:`empty_cube` turns one or more of them into a label cube with no LLM labels yet,
ready for :mod:`hackrisk.annotate`.

Where the files come from (first hit wins):

1. an explicit ``source=`` (a mirror folder, a file, or for VADER the vaderSentiment sdist);
2. the local mirror named by the environment variable ``HACKRISK_DATA_DIR`` (layout
   ``llmhacking/<name>.csv.gz`` and ``vader/<name>_{GroundTruth,anonDataRatings}.tsv.gz``);
3. the download cache (``$HACKRISK_CACHE/data``, default ``~/.cache/hackrisk/data``);
4. a download with SHA-256 verification and an atomic rename into the cache, unless
   ``HACKRISK_OFFLINE=1``.

The paper's task files are checked by content (columns, ids, labels, texts without invisible
characters; :mod:`hackrisk.tasks`) and the SHA-256 of the bytes read is kept in
``TaskData.info["provenance"]``; the VADER files are checked against the SHA-256 recorded here. A
missing file raises
:class:`DataNotFoundError` (a ``FileNotFoundError`` and a ``ValueError``) that names the file,
the environment variables and how to obtain it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
import re
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._files import ENV_CACHE, cache_root, sha256_file

__all__ = [
    "TaskData",
    "DataNotFoundError",
    "LLMHACKING_TASKS",
    "VADER_TASKS",
    "list_tasks",
    "load_task",
    "load_llmhacking",
    "load_vader",
    "load_table",
    "empty_cube",
    "data_dir",
    "cache_dir",
]

logger = logging.getLogger(__name__)

ENV_DATA_DIR = "HACKRISK_DATA_DIR"
ENV_CACHE_DIR = ENV_CACHE
ENV_OFFLINE = "HACKRISK_OFFLINE"

LLMHACKING_COMMIT = "3f662887b97915476ce6ad92e0673a6b14a8c0c1"
LLMHACKING_URL = (
    "https://raw.githubusercontent.com/joebaumann/llmhacking/{commit}/data/all_data_processed/{name}.csv"
)
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SDIST_URL = (
    "https://files.pythonhosted.org/packages/source/v/vaderSentiment/vaderSentiment-3.3.2.tar.gz"
)
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
_VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"

_CITE_LLMHACKING = (
    "Baumann et al. (2025), Large Language Model Hacking, arXiv:2509.08825; data: Gilardi, Alizadeh "
    "& Kubli (2023), PNAS 120(30). Repository joebaumann/llmhacking (MIT licence)."
)
_CITE_VADER = (
    "Hutto & Gilbert (2014), VADER: A Parsimonious Rule-based Model for Sentiment Analysis of "
    "Social Media Text, ICWSM-14 (MIT licence)."
)

# Prompt templates written for hackrisk (not the paper's prompts; those are in the repository
# joebaumann/llmhacking, data/gilardi_et_al_pnas/load_data_and_prompts.py). `{text}` is filled in.
_CM = (
    "Content moderation means that social media platforms screen, flag, label, suspend or remove "
    "what users post, following their rules or government regulation."
)
_PROMPTS: dict[str, tuple[str, ...]] = {
    "relevance_tweets23": (
        _CM + "\nIs the following tweet about content moderation? Answer with one word, "
        "'relevant' or 'irrelevant'.\n\nTweet: {text}\nAnswer:",
        "Classify the tweet as relevant if it discusses content moderation (platform rules, "
        "bans, suspensions, flagging, regulation of online content), otherwise irrelevant.\n"
        "Tweet: {text}\nLabel (relevant/irrelevant):",
        "{text}\n\nDoes this tweet talk about content moderation on social media? "
        "Reply 'relevant' or 'irrelevant'.",
    ),
    "framesI_tweets23": (
        _CM + "\nDoes the following tweet present content moderation as a problem (e.g. "
        "censorship, a threat to free speech), as a solution (e.g. protection from hate speech, "
        "spam or misinformation), or neither (neutral)? Answer with one word: problem, "
        "solution or neutral.\n\nTweet: {text}\nAnswer:",
        "Tweet: {text}\nHow does this tweet frame content moderation? "
        "Reply 'problem', 'solution' or 'neutral'.",
        "Label the framing of content moderation in this tweet as problem, solution or neutral.\n"
        "{text}\nLabel:",
    ),
}
_SENTIMENT_PROMPTS = (
    "What is the sentiment of the following text? Answer with one word: negative, neutral or "
    "positive.\n\nText: {text}\nSentiment:",
    "Text: {text}\nIs the overall tone of this text negative, neutral or positive?",
    "Classify the sentiment (negative/neutral/positive) of: {text}",
)


@dataclass(frozen=True)
class _LLMHackingEntry:
    path: str  # relative to the mirror root
    sha256_gz: str  # of the mirror file (gzip as stored)
    sha256_csv: str  # of the repository file (plain CSV, what a download gets)
    rows: int
    classes: tuple[str, ...]
    covariates: tuple[str, ...]
    description: str


#: The paper's public tasks with verified checksums (more can be added with their SHA-256).
#: The paper used no task-specific covariates for these two tasks: their hypotheses come from
#: random, text-length and keyword groupings only.  The tweet metadata kept as covariates here
#: (posting time, account) allows the temporal and per-account splits the paper used on other
#: tasks.  The expert and crowd codes are *human labels*, not covariates: they live in
#: ``TaskData.ratings``.
LLMHACKING_TASKS: dict[str, _LLMHackingEntry] = {
    "relevance_tweets23": _LLMHackingEntry(
        path="llmhacking/relevance_tweets23.csv.gz",
        sha256_gz="ab9ae88ae67698ff744a98863b81e3aac9a1a652f63273a1e0345ed6ca07ddcd",
        sha256_csv="0f98c28577c57e1faf76d5c7607d7ae2d328700ccaff5b8f45bfea5783d6e039",
        rows=411,
        classes=("irrelevant", "relevant"),
        covariates=("created_at", "user_id", "screen_name"),
        description="Tweets (Jan 2023): is the tweet about content moderation? (Gilardi et al. 2023)",
    ),
    "framesI_tweets23": _LLMHackingEntry(
        path="llmhacking/framesI_tweets23.csv.gz",
        sha256_gz="0af71632800d17bf0f9b50a39c09045c0f861a7b2a72077158350b5722003484",
        sha256_csv="86c92790c6e6f27f745759db8e88a9ce8bdf35cd7999fa64e1a0aa0410aebace",
        rows=150,
        classes=("problem", "solution", "neutral"),
        covariates=("created_at", "user_id", "screen_name"),
        description="Relevant tweets (Jan 2023): content moderation framed as problem / solution / "
        "neutral (Gilardi et al. 2023)",
    ),
}


@dataclass(frozen=True)
class _VaderEntry:
    rows: int
    sha256_gz: dict[str, str]  # kind -> sha256 of the mirror .tsv.gz
    sha256_txt: dict[str, str]  # kind -> sha256 of the member inside hutto_ICWSM_2014.tar.gz
    description: str


#: The four crowd-rated VADER sets (names without the ``vader_`` prefix used by :func:`load_task`).
VADER_TASKS: dict[str, _VaderEntry] = {
    "tweets": _VaderEntry(
        4200,
        {"GroundTruth": "83cab29400830cb5016514a255fe44820dd93eeb8f8c0ea33cd378bd7a61724d",
         "anonDataRatings": "1e62c7daff287e159a9b150f9509fdd4af88cf2cc8b4898262a325e795d08cdd"},
        {"GroundTruth": "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f",
         "anonDataRatings": "390d6f8f1b5c7e6f9f94ad7fea1e461ed718312d1856ae71c5812ab8ae943fa6"},
        "Tweet-like texts rated by 20+ crowd workers each (-4..+4)",
    ),
    "movieReviewSnippets": _VaderEntry(
        10605,
        {"GroundTruth": "37611f57b61de5d323e2be66fb813b9d7dc7117aa1cc6817ad3c73619ee2e4b5",
         "anonDataRatings": "dd6cfe3cd23bcde57a64fb19858d85a3086827b8781011eec336a7bda6358035"},
        {"GroundTruth": "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
         "anonDataRatings": "658a086bc7239b98b750baa232cab80e6447789020f96a6c847cc1248d7c82f4"},
        "Movie-review sentences (Pang & Lee 2004) rated by 15-29 crowd workers each",
    ),
    "nytEditorialSnippets": _VaderEntry(
        5190,
        {"GroundTruth": "9c99b967ca69f0fd71a8ab287f8a22feb17bf0b605853689fdc5d481f524f7ce",
         "anonDataRatings": "980a8667520f60eb3f745f5e0f99cf85a672347a470633f9e2e7cdaaf70cb60b"},
        {"GroundTruth": "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e",
         "anonDataRatings": "803c87c5bb529334bb5ed5fca244aa935e5f342bc0a930d91a0f22e978ee39f2"},
        "New York Times editorial sentences rated by 20 crowd workers each",
    ),
    "amazonReviewSnippets": _VaderEntry(
        3708,
        {"GroundTruth": "8708699dfabf5bfdde695608c0ce7a5d3f404c1063304d6e995a9db22fde6770",
         "anonDataRatings": "f7701c9ab9a7a0416bda8b290b9f4b8626c69a60e2060dcb5aa2b0e09d5dff24"},
        {"GroundTruth": "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2",
         "anonDataRatings": "d7d909adab91e0b4d5084251fc825f15baff66277c52eaa705b40fc464fa274b"},
        "Amazon product-review sentences (Hu & Liu 2004) rated by 20 crowd workers each",
    ),
}
VADER_CLASSES = ("negative", "neutral", "positive")


class DataNotFoundError(FileNotFoundError, ValueError):
    """A data file is neither in the mirror nor in the cache, and may not be downloaded."""


@dataclass(frozen=True)
class TaskData:
    """One task's human-labelled data.

    Attributes
    ----------
    name
        Task name (the ``task`` column of ``items``).
    items
        One row per item: ``task, item_id, text, truth`` (class name, missing = no human label)
        and covariates (datetimes parsed, categories as ``pandas.Categorical``, numbers numeric).
    classes
        Label set; the order defines the label codes of the cube.
    ratings
        Individual human ratings, long format ``item_id, rater, rating`` (+ ``kind``), or None.
        Pass it to :func:`hackrisk.analysis.agreement.krippendorff_alpha`.
    prompts
        Suggested prompt templates (each with ``{text}``) for annotation.
    source
        Where the data were read from (path or URL).
    info
        Provenance: citation, licence, notes.
    """

    name: str
    items: pd.DataFrame
    classes: tuple[str, ...]
    ratings: pd.DataFrame | None = None
    prompts: tuple[str, ...] = ()
    source: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        """``items, classes = task_data``."""
        return iter((self.items, self.classes))

    @property
    def covariates(self) -> list[str]:
        """Names of the covariate columns of ``items``."""
        return [c for c in self.items.columns if c not in ("task", "item_id", "text", "truth")]


# ---- locating files ------------------------------------------------------------------------------


def data_dir() -> Path | None:
    """The local mirror named by ``HACKRISK_DATA_DIR`` (None when unset)."""
    value = os.environ.get(ENV_DATA_DIR, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Download cache: ``$HACKRISK_CACHE/data``, else ``~/.cache/hackrisk/data``.

    The root is shared with :func:`hackrisk.annotate.models.cache_dir` (models live next to it).
    """
    return cache_root() / "data"


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(path_or_name: str | Path, got: str, expected: str) -> None:
    if got != expected:
        raise ValueError(
            f"checksum mismatch for {str(path_or_name)!r}: sha256 {got}, expected {expected}. "
            "Fix: the file is corrupt or a different version; delete it (and the cached copy) and "
            "fetch it again, or point HACKRISK_DATA_DIR at a verified mirror."
        )


def _not_found(what: str, looked: Sequence[Path], how: str) -> DataNotFoundError:
    where = ", ".join(str(p) for p in looked) or "nowhere (HACKRISK_DATA_DIR unset)"
    mode = "downloads are disabled (HACKRISK_OFFLINE=1)" if _offline() else "the download failed"
    return DataNotFoundError(
        f"data file {what!r} not found (looked in: {where}) and {mode}. Fix: set the environment "
        f"variable {ENV_DATA_DIR} to a mirror folder holding {what!r} (the layout of shared/data: "
        f"llmhacking/NAME.csv.gz, vader/NAME.tsv.gz), or allow the download (unset {ENV_OFFLINE}; "
        f"the file is cached under {cache_dir()}). {how}"
    )


def _download(url: str, dest: Path, sha256: str) -> Path:
    """Fetch ``url`` to ``dest`` with SHA-256 verification and an atomic rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s -> %s", url, dest)
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (fixed https URLs)
        data = resp.read()
    _check(url, _sha256(data), sha256)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


# ---- llmhacking ----------------------------------------------------------------------------------


def list_tasks() -> pd.DataFrame:
    """Registered tasks: name, family, rows, classes, description, available (one row each).

    Every task of the paper (29 files; :func:`hackrisk.tasks.list_paper_tasks` has the details) and
    the four VADER sets. ``available`` says where a copy is on this machine: ``"mirror"`` (the
    folder ``HACKRISK_DATA_DIR``), ``"cache"``, ``""`` (none here: the task downloads at the pinned
    commit when online) or ``"no: ..."`` (the redacted survey, with the reason).
    """
    rows = [
        {"name": n, "family": "llmhacking", "rows": e.rows, "classes": list(e.classes),
         "path": e.path, "sha256": e.sha256_gz, "description": e.description}
        for n, e in LLMHACKING_TASKS.items()
    ]
    from .tasks import PAPER_TASKS, _available

    avail = {n: _available(t) for n, t in PAPER_TASKS.items()}
    for r in rows:
        r["available"] = avail[r["name"]]
    rows += [
        {"name": t.name, "family": "llmhacking", "rows": t.rows, "classes": list(t.classes),
         "path": f"llmhacking/{t.file}.csv", "sha256": None, "description": t.description,
         "available": avail[t.name] if not t.unavailable else f"no: {t.unavailable.split(';')[0]}"}
        for t in PAPER_TASKS.values() if t.name not in LLMHACKING_TASKS
    ]
    rows += [
        {"name": f"vader_{n}", "family": "vader", "rows": e.rows, "classes": list(VADER_CLASSES),
         "path": f"vader/{n}_{{GroundTruth,anonDataRatings}}.tsv.gz",
         "sha256": e.sha256_gz["anonDataRatings"], "description": e.description,
         "available": _vader_available(n)}
        for n, e in VADER_TASKS.items()
    ]
    return pd.DataFrame(rows)


def _vader_available(name: str) -> str:
    root = data_dir()
    if root is not None and (root / "vader" / f"{name}_anonDataRatings.tsv.gz").is_file():
        return "mirror"
    return "cache" if (cache_dir() / "vader" / VADER_SDIST).is_file() else ""


def _read_llmhacking_bytes(name: str, source: str | Path | None) -> tuple[bytes, str, dict[str, Any]]:
    """The plain CSV bytes of task ``name``, where they came from and their provenance.

    Verified by content (columns, ids, labels, texts without invisible characters; see
    :mod:`hackrisk.tasks`), not by bytes: a published copy whose bytes differ from the mirror's only
    in invisible characters loads, a copy with a changed label, word or row does not.
    """
    from .tasks import read_task_bytes

    raw, prov = read_task_bytes(name, source)
    return raw, prov["source"], prov


def _parse_list(series: pd.Series) -> pd.Series:
    """``"['a', 'b']"`` → exploded Series of ``a``, ``b`` (index repeated), quotes stripped."""
    inner = series.astype(str).str.strip().str.strip("[]")
    out = inner.str.split(",").explode().str.strip().str.strip("'\"")
    return out[out.notna() & (out != "")]


def load_llmhacking(name: str, *, source: str | Path | None = None) -> TaskData:
    """Load one of the paper's public tasks (processed CSV of joebaumann/llmhacking).

    Parameters
    ----------
    name
        A key of :data:`LLMHACKING_TASKS` (``"relevance_tweets23"``, ``"framesI_tweets23"``).
    source
        A mirror folder or the file itself (``.csv`` or ``.csv.gz``). Default: ``HACKRISK_DATA_DIR``,
        then the cache, then a download of the file at commit :data:`LLMHACKING_COMMIT`.

    Returns
    -------
    TaskData
        ``items`` with covariates ``created_at`` (datetime, UTC), ``user_id`` and ``screen_name``
        (categorical); ``ratings`` holds the two expert coders (``kind="expert"``) and the
        MTurk crowd workers (``kind="crowd"``), labels as class names.
    """
    if name not in LLMHACKING_TASKS:
        raise ValueError(
            f"unknown llmhacking task {name!r}; registered: {sorted(LLMHACKING_TASKS)}. Fix: use one "
            "of those, or read any other CSV with hackrisk.datasets.load_table(path, text=..., label=...)."
        )
    entry = LLMHACKING_TASKS[name]
    raw, where, prov = _read_llmhacking_bytes(name, source)
    df = pd.read_csv(io.BytesIO(raw), dtype={"user_id": str, "status_id": str, "id": str})
    if len(df) != entry.rows:
        raise ValueError(f"{where}: {len(df)} rows, expected {entry.rows}. Fix: fetch the file again.")
    items = pd.DataFrame({
        "task": name,
        "item_id": df["id"].astype(object),
        "text": df["text"].astype(object),
        "truth": df["ground_truth"].astype(object),
        "created_at": pd.to_datetime(df["created_at"], utc=True, format="ISO8601"),
        "user_id": pd.Categorical(df["user_id"].astype(object)),
        "screen_name": pd.Categorical(df["screen_name"].astype(object)),
    })
    bad = ~items["truth"].isin(entry.classes)
    if bad.any():
        raise ValueError(f"{where}: label {items['truth'][bad].iloc[0]!r} outside {entry.classes}.")

    # ratings: experts (fabio, paula) and the crowd
    parts = []
    for coder in ("fabio", "paula"):
        if name.startswith("relevance"):
            lab = df[f"relevant_{coder}"].map({1.0: "relevant", 0.0: "irrelevant"})
        else:
            lab = df[f"ground_truth_{coder}"]
        parts.append(pd.DataFrame({"item_id": df["id"], "rater": coder, "rating": lab, "kind": "expert"}))
    crowd_lab = _parse_list(df["mturk_annotation"])
    crowd_id = _parse_list(df["WorkerId"])
    if len(crowd_lab) != len(crowd_id):
        raise ValueError(f"{where}: mturk_annotation and WorkerId lists differ in length.")
    parts.append(pd.DataFrame({
        "item_id": df["id"].to_numpy()[crowd_lab.index.to_numpy()],
        "rater": crowd_id.to_numpy(), "rating": crowd_lab.str.lower().to_numpy(), "kind": "crowd",
    }))
    ratings = pd.concat(parts, ignore_index=True)
    ratings = ratings[ratings["rating"].notna()].reset_index(drop=True)
    for col in ("item_id", "rater", "rating"):
        ratings[col] = ratings[col].astype(object)
    ratings["kind"] = pd.Categorical(ratings["kind"], categories=["expert", "crowd"])
    return TaskData(
        name=name, items=items, classes=entry.classes, ratings=ratings,
        prompts=_PROMPTS.get(name, ()), source=where,
        info={"citation": _CITE_LLMHACKING, "commit": LLMHACKING_COMMIT,
              "description": entry.description, "provenance": prov,
              "notes": "truth = label on which both expert coders agree (rows where they disagreed "
                       "were dropped by the paper); the paper used no task-specific covariates."},
    )


# ---- VADER ---------------------------------------------------------------------------------------


def _vader_members_from_tar(path: Path, name: str) -> dict[str, bytes]:
    """Read ``<name>_{GroundTruth,anonDataRatings}.txt`` from the sdist or the inner archive."""
    wanted = {kind: f"hutto_ICWSM_2014/{name}_{kind}.txt" for kind in ("GroundTruth", "anonDataRatings")}
    with tarfile.open(path, "r:*") as outer:
        names = outer.getnames()
        inner_name = next((n for n in names if n.endswith(_VADER_INNER)), None)
        if inner_name is not None:  # the vaderSentiment sdist
            fh = outer.extractfile(inner_name)
            assert fh is not None
            inner_bytes = fh.read()
            with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:*") as inner:
                return {k: _extract(inner, m, path) for k, m in wanted.items()}
        return {k: _extract(outer, m, path) for k, m in wanted.items()}


def _extract(tar: tarfile.TarFile, member: str, path: Path) -> bytes:
    try:
        fh = tar.extractfile(member)
    except KeyError:
        fh = None
    if fh is None:
        raise ValueError(
            f"{str(path)!r} has no member {member!r}. Fix: pass the vaderSentiment==3.3.2 sdist "
            f"({VADER_SDIST}) or its {_VADER_INNER}, e.g. from `pip download --no-deps "
            f"--no-binary :all: vaderSentiment==3.3.2 -d <dir>`."
        )
    return fh.read()


def _read_vader_bytes(name: str, source: str | Path | None) -> tuple[dict[str, bytes], str]:
    entry = VADER_TASKS[name]
    kinds = ("GroundTruth", "anonDataRatings")

    def from_mirror(folder: Path) -> dict[str, bytes] | None:
        files = {k: folder / f"{name}_{k}.tsv.gz" for k in kinds}
        if not all(p.is_file() for p in files.values()):
            return None
        out = {}
        for k, p in files.items():
            raw = p.read_bytes()
            _check(p, _sha256(raw), entry.sha256_gz[k])
            out[k] = gzip.decompress(raw)
        return out

    def from_tar(path: Path) -> dict[str, bytes]:
        out = _vader_members_from_tar(path, name)
        for k, raw in out.items():
            _check(f"{path}:{name}_{k}.txt", _sha256(raw), entry.sha256_txt[k])
        return out

    looked: list[Path] = []
    if source is not None:
        src = Path(source).expanduser()
        if src.is_file():
            return from_tar(src), str(src)
        if (src / VADER_SDIST).is_file():  # e.g. the folder `pip download` saved the sdist in
            return from_tar(src / VADER_SDIST), str(src / VADER_SDIST)
        for folder in (src / "vader", src):
            looked.append(folder / f"{name}_anonDataRatings.tsv.gz")
            got = from_mirror(folder)
            if got is not None:
                return got, str(folder)
        raise _not_found(f"vader/{name}_anonDataRatings.tsv.gz", looked,
                         f"Or pass source=<path to {VADER_SDIST}>.")
    root = data_dir()
    if root is not None:
        looked.append(root / "vader" / f"{name}_anonDataRatings.tsv.gz")
        got = from_mirror(root / "vader")
        if got is not None:
            return got, str(root / "vader")
    cached = cache_dir() / "vader" / VADER_SDIST
    looked.append(cached)
    if cached.is_file():
        _check(cached, sha256_file(cached), VADER_SDIST_SHA256)
        return from_tar(cached), str(cached)
    if not _offline():
        try:
            return from_tar(_download(VADER_SDIST_URL, cached, VADER_SDIST_SHA256)), VADER_SDIST_URL
        except OSError as exc:
            logger.warning("download of %s failed: %s", VADER_SDIST_URL, exc)
    raise _not_found(
        f"vader/{name}_anonDataRatings.tsv.gz", looked,
        f"Or get the sdist with `pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 "
        f"-d <dir>` and pass source=<dir>/{VADER_SDIST}.",
    )


def _read_tsv(raw: bytes, names: list[str]) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(raw), sep="\t", header=None, names=names, quoting=csv.QUOTE_NONE,
        encoding="utf-8-sig", dtype={"id": str}, keep_default_na=False, na_values=[],
    )


def load_vader(
    name: str,
    *,
    source: str | Path | None = None,
    neutral_band: float = 0.5,
) -> TaskData:
    """Load a crowd-rated VADER sentiment set (Hutto & Gilbert 2014).

    Parameters
    ----------
    name
        ``"tweets"``, ``"movieReviewSnippets"``, ``"nytEditorialSnippets"`` or
        ``"amazonReviewSnippets"`` (a ``vader_`` prefix is accepted).
    source
        A mirror folder (holding ``vader/<name>_*.tsv.gz`` or the ``.tsv.gz`` files themselves), a
        folder holding ``vaderSentiment-3.3.2.tar.gz``, or the path of the vaderSentiment==3.3.2 sdist (``vaderSentiment-3.3.2.tar.gz``, as
        ``pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`` saves it), or of its
        ``hutto_ICWSM_2014.tar.gz``. Default: ``HACKRISK_DATA_DIR``, the cache, then a download of
        the sdist from PyPI.
    neutral_band
        Human label rule: with ``m`` the mean of the item's individual ratings (-4..+4),
        ``"negative"`` if ``m <= -neutral_band``, ``"positive"`` if ``m >= neutral_band``, else
        ``"neutral"``. With ``neutral_band=0`` only items whose mean is exactly 0 are neutral.

    Returns
    -------
    TaskData
        ``items`` covariates: ``mean_rating`` (mean of the individual ratings), ``sd_rating``
        (their population SD, as published), ``n_raters``, ``published_mean`` (the mean in the
        GroundTruth file; it differs from ``mean_rating`` for 199 tweets with more than 20
        ratings), and ``document`` (the review/editorial an ``a_b`` id belongs to; amazon and NYT).
        ``ratings``: one row per individual rating (``rater`` = position in the published list;
        positions do not identify the same worker across items).
    """
    name = name.removeprefix("vader_")
    if name not in VADER_TASKS:
        raise ValueError(f"unknown VADER set {name!r}; choose one of {sorted(VADER_TASKS)}.")
    if not np.isfinite(neutral_band) or neutral_band < 0:
        raise ValueError(f"neutral_band={neutral_band!r} must be a finite number >= 0 (e.g. 0.5).")
    entry = VADER_TASKS[name]
    raw, where = _read_vader_bytes(name, source)
    gt = _read_tsv(raw["GroundTruth"], ["id", "published_mean", "text"])
    an = _read_tsv(raw["anonDataRatings"], ["id", "mean", "sd", "ratings"])
    for label, frame in (("GroundTruth", gt), ("anonDataRatings", an)):
        if len(frame) != entry.rows or frame["id"].duplicated().any():
            raise ValueError(f"{where}: {name}_{label} has {len(frame)} rows or duplicate ids, "
                             f"expected {entry.rows} unique. Fix: fetch the files again.")
    df = an.merge(gt, on="id", how="inner", validate="one_to_one")  # amazon rows are in other order
    if len(df) != entry.rows:
        raise ValueError(f"{where}: {name} GroundTruth and anonDataRatings ids do not match.")

    flat = df["ratings"].astype(str).str.strip().str.strip("[]").str.split(",").explode()
    values = pd.to_numeric(flat.str.strip(), errors="raise").astype(np.int64)
    pos = values.groupby(level=0).cumcount()
    item_pos = values.index.to_numpy()
    n_raters = np.bincount(item_pos, minlength=len(df))
    mean = np.bincount(item_pos, weights=values.to_numpy(), minlength=len(df)) / n_raters
    truth = np.where(mean >= neutral_band, "positive", np.where(mean <= -neutral_band, "negative", "neutral"))
    if neutral_band == 0:
        truth = np.where(mean > 0, "positive", np.where(mean < 0, "negative", "neutral"))
    task = f"vader_{name}"
    items = pd.DataFrame({
        "task": task,
        "item_id": df["id"].astype(object),
        "text": df["text"].astype(object),
        "truth": truth.astype(object),
        "mean_rating": mean.astype(np.float64),
        "sd_rating": df["sd"].astype(np.float64),
        "n_raters": n_raters.astype(np.int64),
        "published_mean": df["published_mean"].astype(np.float64),
    })
    if df["id"].str.contains("_").all():
        items["document"] = pd.Categorical(df["id"].str.split("_").str[0].astype(object))
    ratings = pd.DataFrame({
        "item_id": df["id"].to_numpy(dtype=object)[item_pos],
        "rater": ("r" + pos.astype(str)).to_numpy(dtype=object),
        "rating": values.to_numpy(),
        "kind": pd.Categorical(["crowd"] * len(values), categories=["expert", "crowd"]),
    })
    return TaskData(
        name=task, items=items, classes=VADER_CLASSES, ratings=ratings,
        prompts=_SENTIMENT_PROMPTS, source=where,
        info={"citation": _CITE_VADER, "description": entry.description,
              "neutral_band": float(neutral_band),
              "notes": "truth = sign of the mean individual rating with |mean| < neutral_band "
                       "labelled neutral; ratings are integers -4..+4."},
    )


# ---- generic -------------------------------------------------------------------------------------


def load_task(name: str, **kwargs: Any) -> TaskData:
    """Load any registered task by name (see :func:`list_tasks`): a task of the paper or ``vader_<set>``."""
    if name in LLMHACKING_TASKS:
        return load_llmhacking(name, **kwargs)
    from .tasks import PAPER_TASKS, load_paper_task

    if name in PAPER_TASKS:
        return load_paper_task(name, **kwargs)
    if name.removeprefix("vader_") in VADER_TASKS and name.startswith("vader_"):
        return load_vader(name, **kwargs)
    raise ValueError(f"unknown task {name!r}; registered: {list(list_tasks()['name'])}. "
                     "Fix: use one of those, or hackrisk.datasets.load_table() for your own file.")


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _tidy_covariate(s: pd.Series, max_levels: int) -> pd.Series:
    """Datetimes from ISO strings, low-cardinality strings as categories, numbers left alone."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        return s
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype):
        return s
    vals = s.dropna().astype(str)
    if len(vals) and vals.str.match(_ISO_DATE).all():
        tz = vals.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$").any()
        return pd.to_datetime(s, utc=bool(tz), format="ISO8601")
    if vals.nunique() <= max_levels:
        return pd.Series(pd.Categorical(s.astype(object)), index=s.index)
    return s.astype(object)


def _read_text_table(p: Path) -> pd.DataFrame:
    """Every cell of a CSV / TSV as the exact text written (no NA inference, no numbers)."""
    suffixes = "".join(p.suffixes).lower()
    if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
        try:
            return pd.read_parquet(p)
        except Exception as err:  # noqa: BLE001 (pyarrow raises many types)
            raise ValueError(f"load_table: {str(p)!r} cannot be read as Parquet ({type(err).__name__}: {err}). "
                             "Fix: check that the file is a complete Parquet file.") from err
    if ".tsv" in suffixes or ".tab" in suffixes:
        sep = "\t"
    elif ".csv" in suffixes:
        sep = ","
    else:
        raise ValueError(f"load_table: cannot read {str(p)!r} (suffix {suffixes!r}). "
                         "Fix: give a .csv, .csv.gz, .tsv or .parquet file, or a DataFrame.")
    try:
        return pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"load_table: {str(p)!r} is not valid UTF-8 text (byte {err.start}: "
                         f"{err.object[err.start:err.start + 4]!r}). Fix: save the file as UTF-8 "
                         "(e.g. in a spreadsheet: 'CSV UTF-8').") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as err:
        raise ValueError(f"load_table: {str(p)!r} cannot be read as a table ({err}). Fix: check the file "
                         "(one header row, the same number of fields in every row).") from err


def _cell_text(value: Any) -> str | None:
    """A typed cell (Parquet / DataFrame) as text: None when missing, whole-number floats as integers."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return str(value)


def _numeric_or_text(s: pd.Series) -> pd.Series:
    """A covariate column read as text: numbers when every non-empty cell is one, empty = missing."""
    s = s.astype(object)
    s = s.where(s.map(lambda v: isinstance(v, str) and v.strip() != ""), None)
    vals = s.dropna()
    if len(vals):
        try:
            return pd.to_numeric(s, errors="raise")
        except (ValueError, TypeError):
            pass
    return s


def load_table(
    path: str | Path | pd.DataFrame,
    *,
    text: str,
    label: str | None,
    id: str | None = None,  # noqa: A002 (mirrors the column role)
    covariates: Sequence[str] | None = None,
    task: str | None = None,
    classes: Sequence[str] | None = None,
    max_levels: int = 50,
) -> TaskData:
    """Load your own CSV / Parquet (or a DataFrame) as a task.

    CSV and TSV files are read as text: ids, texts and labels stay exactly as written (``"000"``
    stays ``"000"``, ``"None"``, ``"NA"`` and ``"null"`` are ordinary values, ``"1"`` never becomes
    ``"1.0"``). **An empty label cell means "no human label"**; an empty id or text cell is an
    error. Covariates become numbers when every non-empty cell is a number (empty = missing).
    Parquet files and DataFrames keep their types; ``None`` / NaN labels are missing, integer
    (and whole-number float) ids and labels become their decimal text.

    Parameters
    ----------
    path
        ``.csv``, ``.csv.gz``, ``.tsv`` or ``.parquet`` file, or a DataFrame.
    text, label, id
        Column names of the text, the human label (None: no human labels yet; empty cells =
        unlabelled items) and the item id (None: the row number).
    covariates
        Columns to keep as covariates (None: every other column; ``[]``: none). ISO-8601 strings
        become datetimes, strings with at most ``max_levels`` distinct values categoricals.
    task
        Task name (default: the file name without suffixes, or ``"task"``).
    classes
        Label set in code order (default: the sorted distinct labels). Labels outside it raise.

    Returns
    -------
    TaskData
    """
    if isinstance(path, pd.DataFrame):
        df, where, default_task, as_text = path.copy(), "<DataFrame>", "task", False
    elif isinstance(path, (str, os.PathLike)):
        p = Path(path).expanduser()
        if p.is_dir():
            raise ValueError(f"load_table: {str(p)!r} is a folder, not a file. Fix: give the path of the "
                             "CSV / Parquet file inside it.")
        if not p.is_file():
            raise ValueError(f"load_table: file {str(p)!r} does not exist. Fix: check the path.")
        df = _read_text_table(p)
        as_text = not "".join(p.suffixes).lower().endswith((".parquet", ".pq"))
        where, default_task = str(p), p.name.split(".")[0]
    else:
        raise TypeError(f"load_table: path must be a file path or a pandas DataFrame, got "
                        f"{type(path).__name__}. Fix: pass the path of your CSV / Parquet file.")
    if isinstance(covariates, str):
        covariates = [covariates]
    task = task or default_task
    roles = {"text": text, "label": label, "id": id}
    wanted = [c for c in roles.values() if c is not None] + list(covariates or [])
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(
            f"load_table({where}): column(s) {missing} not found; the table has {list(df.columns)}. "
            "Fix: pass the right names to text=, label=, id= and covariates=."
        )

    def as_texts(col: str) -> pd.Series:
        if as_text:
            return pd.Series(df[col].tolist(), index=df.index, dtype=object)
        return df[col].map(_cell_text).astype(object)

    texts = as_texts(text)
    if texts.isna().any():
        raise ValueError(f"load_table({where}): column {text!r} has {int(texts.isna().sum())} "
                         "missing texts. Fix: drop those rows or fill them in.")
    if id is None:
        ids = pd.Series(np.arange(len(df)).astype(str), index=df.index, dtype=object)
    else:
        ids = as_texts(id)
        empty = ids.isna() | (ids.fillna("") == "")
        if empty.any():
            raise ValueError(f"load_table({where}): id column {id!r} is empty in row(s) "
                             f"{[int(i) + 2 for i in np.flatnonzero(empty.to_numpy())[:5]]} (file lines). "
                             "Fix: give every row an id.")
        if ids.duplicated().any():
            raise ValueError(f"load_table({where}): id column {id!r} has duplicate values (e.g. "
                             f"{ids[ids.duplicated()].head(3).tolist()}; ids are compared as written). "
                             "Fix: make ids unique.")
    if label is None:
        truth = pd.Series([None] * len(df), index=df.index, dtype=object)
    else:
        truth = as_texts(label)
        truth = truth.where(truth.notna() & (truth != ""), None).astype(object)
    seen = sorted(set(truth.dropna()))
    if classes is None:
        classes = seen
    elif isinstance(classes, str):
        raise TypeError(f"load_table: classes must be a list of class names, got the string {classes!r}. "
                        "Fix: e.g. classes=['negative', 'positive'].")
    classes = tuple(str(c) for c in classes)
    outside = [v for v in seen if v not in classes]
    if outside:
        raise ValueError(f"load_table({where}): label(s) {outside[:5]} not in classes {list(classes)}. "
                         "Fix: add them to classes= or recode the column; leave a cell empty to mark an "
                         "item without a human label.")
    if len(classes) < 2:
        raise ValueError(f"load_table({where}): need at least two classes, got {list(classes)}. "
                         "Fix: pass classes= with the full label set.")
    used = {c for c in roles.values() if c is not None}
    cov_cols = [c for c in df.columns if c not in used] if covariates is None else list(covariates)
    reserved = {"task", "item_id", "text", "truth"} & set(cov_cols)
    if reserved:
        raise ValueError(f"load_table({where}): covariate name(s) {sorted(reserved)} are reserved. "
                         "Fix: rename those columns.")
    def obj(values: pd.Series) -> pd.Series:  # plain Python str / None (no NaN, no pandas str dtype)
        return pd.Series(values.tolist(), dtype=object)

    items = pd.DataFrame({"task": task, "item_id": obj(ids), "text": obj(texts), "truth": obj(truth)})
    for c in cov_cols:
        col = df[c].reset_index(drop=True)
        if as_text:
            col = _numeric_or_text(col)
        items[c] = _tidy_covariate(col, max_levels)
    return TaskData(name=task, items=items, classes=classes, source=where,
                    info={"columns": {"text": text, "label": label, "id": id}})


# ---- cube ----------------------------------------------------------------------------------------


def empty_cube(
    *tasks: TaskData,
    models: Sequence[str] | pd.DataFrame = ("model",),
    prompts: Mapping[str, Sequence[str] | Mapping[str, str]] | None = None,
    temperatures: Sequence[float] = (0.0,),
    n_items: int | None = None,
    rng: int | np.random.Generator | None = None,
) -> xr.Dataset:
    """A label cube for ``tasks`` with every LLM label ``-1`` (not annotated yet).

    Parameters
    ----------
    *tasks
        One or more :class:`TaskData`.
    models
        Model names, or a table indexed by model name whose columns become model coordinates.
    prompts
        ``{task: templates}``; default: each task's suggested ``prompts``.
    temperatures
        Decoding temperatures.
    n_items
        Keep a random subset of this many items per task (stratified by nothing; seeded by ``rng``).
    rng
        Seed or generator for the subset.

    Returns
    -------
    xarray.Dataset
        A validated cube built with :func:`hackrisk.make_cube`.
    """
    from .cube import NOT_ANNOTATED, make_cube, validate_cube

    if not tasks:
        raise ValueError("empty_cube: give at least one TaskData (e.g. load_task('relevance_tweets23')).")
    gen = np.random.default_rng(rng)
    parts = []
    for td in tasks:
        items = td.items
        if n_items is not None and n_items < len(items):
            keep = np.sort(gen.choice(len(items), size=n_items, replace=False))
            items = items.iloc[keep]
        parts.append(items)
    items = pd.concat(parts, ignore_index=True)
    for col in items.columns:  # concat turns categoricals with different levels into object
        if any(isinstance(p[col].dtype, pd.CategoricalDtype) for p in parts if col in p):
            items[col] = pd.Categorical(items[col].astype(object))
    classes = {td.name: list(td.classes) for td in tasks}
    if prompts is None:
        prompts = {td.name: list(td.prompts) or ["{text}"] for td in tasks}
    missing = [t for t in classes if t not in prompts]
    if missing:
        raise ValueError(f"empty_cube: prompts has no templates for task(s) {missing}. Fix: add them.")
    model_table = models if isinstance(models, pd.DataFrame) else pd.DataFrame(index=[str(m) for m in models])
    if len(model_table) == 0 or len(temperatures) == 0:
        raise ValueError("empty_cube: give at least one model and one temperature.")
    # make_cube takes its temperatures from the labels table, so place one placeholder label per
    # (task, model, prompt, temperature) on the task's first item and reset it to -1 afterwards.
    rows = []
    for td_name in classes:
        first = items.loc[items["task"] == td_name, "item_id"].iloc[0]
        spec = prompts[td_name]
        pids = list(spec) if isinstance(spec, Mapping) else [f"p{i}" for i in range(len(spec))]
        for m in model_table.index:
            for p in pids:
                for t in temperatures:
                    rows.append((td_name, str(m), p, float(t), first, str(classes[td_name][0])))
    labels = pd.DataFrame(rows, columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    cube = make_cube(labels, items, classes, prompts=prompts, models=model_table,
                     attrs={"datasets": [td.source for td in tasks],
                            "data_sha256": [f"{td.name}:{td.info['provenance']['sha256']}" for td in tasks
                                            if isinstance(td.info.get("provenance"), Mapping)]})
    cube["label"] = xr.full_like(cube["label"], NOT_ANNOTATED)
    return validate_cube(cube)
