"""The runner: annotate items under every model × prompt × temperature, into the label cube.

Results go to a content-addressed cache (one transaction per batch) and, one configuration block
(model, prompt, all temperatures) at a time, into the zarr store. Killing the process at any
moment loses at most the batch in flight; running the same call again resumes from the cache and
rewrites the blocks, so no label is lost or duplicated.

Nothing silently wrong:

* a failed request (rejected, unreachable) is a *failure*: label -1 with status bit 8, never
  cached, and asked again on the next run; when every item of a configuration's first batch
  fails, the run stops with :class:`AnnotationError` before anything of it is stored;
* the store records a fingerprint of every item (id, text, human label, covariates) and of the
  options that shape labels (label set, answer keys, templates, mode, seed, models,
  temperatures). A re-run whose items changed rebuilds the store from the cache, so exactly the
  changed items are sent again; a re-run whose options changed stops with
  :class:`StoreMismatchError` saying what changed and how to proceed;
* one run at a time writes a store (:func:`hackrisk.io.store_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import NOT_ANNOTATED, OUTSIDE, OUTSIDE_NAME, make_cube
from ..io import open_cube, save_cube, store_lock, write_labels
from .cache import ResultCache, cache_key
from .task import (
    CONFIDENCE_QUESTION,
    PAPER_CONFIDENCE_TEMPLATE,
    TaskSpec,
    check_confidence_template,
    confidence_messages,
    paper_confidence_messages,
    parse_confidence,
    parse_response,
)

__all__ = ["annotate", "missing_labels", "item_fingerprints", "AnnotationError", "StoreMismatchError",
           "STATUS_TRUNCATED", "STATUS_EMPTY", "STATUS_REPLACED", "STATUS_FAILED"]

log = logging.getLogger(__name__)

#: per-item status bits stored in the cube variable ``annotate_status``
STATUS_TRUNCATED = 1  # text cut to fit the model's context
STATUS_EMPTY = 2  # empty or whitespace-only text (annotated as given, with on_empty="annotate")
STATUS_REPLACED = 4  # text was not valid UTF-8; undecodable bytes replaced by U+FFFD
STATUS_FAILED = 8  # the backend gave no answer for this item (label stays -1)


class AnnotationError(RuntimeError):
    """Annotation cannot go on: every request of a configuration's first batch failed."""


class StoreMismatchError(ValueError):
    """The store was written for other configurations or options than this run's."""


def _text_or_none(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    return str(v)


def item_fingerprints(items: pd.DataFrame) -> np.ndarray:
    """One SHA-256 (hex, 16 characters) per item of its id, text, human label and covariates.

    ``items`` has ``item_id`` and ``text`` (a ``task`` column is ignored), optionally ``truth``
    (missing = no human label) and covariate columns.
    """
    if not isinstance(items, pd.DataFrame):
        raise TypeError(f"item_fingerprints: items must be a DataFrame, got {type(items).__name__}.")
    cols = sorted(c for c in items.columns if c not in ("task", "item_id", "text", "truth"))
    truth = items["truth"] if "truth" in items.columns else pd.Series([None] * len(items), index=items.index)
    rows = zip(items["item_id"].tolist(), items["text"].tolist(), truth.tolist(),
               *[items[c].tolist() for c in cols], strict=True)
    out = np.empty(len(items), dtype=object)
    for i, row in enumerate(rows):
        parts = [str(row[0]), str(row[1]), _text_or_none(row[2]),
                 *[[c, _text_or_none(v)] for c, v in zip(cols, row[3:], strict=True)]]
        out[i] = cache_key(*parts)[:16]
    return out


def missing_labels(cube: xr.Dataset) -> pd.DataFrame:
    """Configurations with real items still at label -1 (not annotated, or failed).

    Returns
    -------
    pandas.DataFrame
        One row per incomplete (task, model, prompt, temperature): ``n_missing`` and ``n_items``.
        Prompts a task does not have are not counted. Empty when every label is there.
    """
    if not isinstance(cube, xr.Dataset) or "label" not in cube:
        raise TypeError(f"missing_labels: expected a label cube (xarray.Dataset), got {type(cube).__name__}.")
    real = cube["item_id"] != ""
    lab = cube["label"]
    if "sample" in lab.dims:
        lab = lab.min("sample")
    n_missing = ((lab == NOT_ANNOTATED) & real).sum("item")
    if "prompt_template" in cube:
        n_missing = n_missing.where(cube["prompt_template"] != "", 0)
    df = n_missing.rename("n_missing").to_dataframe().reset_index()
    df = df[df["n_missing"] > 0]
    n_items = real.sum("item").to_series()
    df["n_items"] = df["task"].map(n_items).astype(int)
    return df[["task", "model", "prompt", "temperature", "n_missing", "n_items"]].reset_index(drop=True)


def _options(spec: TaskSpec, backends: list[Any], prompt_ids: list[str], temps: list[float], mode: str,
             seed: int, mnt: int, question: str | None = None) -> dict[str, Any]:
    """The options that shape the labels (JSON-able; recorded in the store)."""
    out = {"labels": list(spec.labels), "answer_keys": list(spec.answer_keys), "mode": mode,
           "templates": {p: spec.template_string(p) for p in prompt_ids}, "seed": seed,
           "max_new_tokens": mnt if mode == "generate" else None,
           "models": {be.name: be.identity for be in backends}, "temperatures": temps}
    if question is not None:  # absent otherwise, so stores written without confidence still resume
        out["confidence_question"] = question
    return out


def _sentinel() -> str:
    from .backends.local import SENTINEL

    return SENTINEL


def _norm_items(items: Any, spec: TaskSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """DataFrame with item_id, text (+ truth, covariates) and the per-item status bits."""
    if isinstance(items, pd.DataFrame):
        df = items.copy()
        if "item_id" not in df.columns:
            if "id" in df.columns:
                df = df.rename(columns={"id": "item_id"})
            else:
                df["item_id"] = [str(i) for i in range(len(df))]
        if "text" not in df.columns:
            raise ValueError(f"items table has no 'text' column (columns: {list(df.columns)}). Fix: name the "
                             "column holding the texts 'text'.")
    elif isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ValueError("items must be a DataFrame with a 'text' column or a list of texts. "
                         f"Got {type(items).__name__}.")
    else:
        df = pd.DataFrame({"item_id": [str(i) for i in range(len(items))], "text": list(items)})
    if "task" in df.columns:
        df = df.drop(columns="task")
    df["item_id"] = df["item_id"].astype(object).map(str)
    status = np.zeros(len(df), dtype=np.int8)
    texts = []
    for i, t in enumerate(df["text"].tolist()):
        if t is None or (isinstance(t, float) and np.isnan(t)):
            raise ValueError(f"items: text of item {df['item_id'].iloc[i]!r} is missing. Fix: drop the row or give a text.")
        if isinstance(t, (bytes, bytearray)):
            try:
                t = bytes(t).decode("utf-8")
            except UnicodeDecodeError:
                t = bytes(t).decode("utf-8", errors="replace")
                status[i] |= STATUS_REPLACED
        t = str(t)
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape decoding)
            t = t.encode("utf-8", errors="surrogateescape" if _is_escape(t) else "replace").decode("utf-8", "replace")
            status[i] |= STATUS_REPLACED
        if not t.strip():
            status[i] |= STATUS_EMPTY
        texts.append(t)
    df["text"] = texts
    missing = spec.fields() - set(df.columns)
    if missing:
        raise ValueError(f"prompt placeholders {sorted(missing)} are not columns of the items table. "
                         "Fix: add the columns or remove the placeholders.")
    return df.reset_index(drop=True), status


def _is_escape(t: str) -> bool:
    return all(not (0xD800 <= ord(c) <= 0xDFFF) or 0xDC80 <= ord(c) <= 0xDCFF for c in t)


def _norm_models(models: Any) -> list[Any]:
    if models is None:
        from .backends.local import TransformersBackend

        return [TransformersBackend.default()]
    if isinstance(models, Mapping):
        out = []
        for name, be in models.items():
            be.name = str(name)
            out.append(be)
        models = out
    elif not isinstance(models, (list, tuple)):
        models = [models]
    out = []
    for m in models:
        if isinstance(m, (str, os.PathLike)):
            from .backends.local import TransformersBackend

            m = TransformersBackend.default() if str(m) == "default" else TransformersBackend.from_path(str(m))
        for attr in ("name", "identity", "score", "generate"):
            if not hasattr(m, attr):
                raise ValueError(f"model {m!r} is not a backend (no {attr!r}). Fix: pass a TransformersBackend, "
                                 "an OpenAIBackend, a model path or 'default'.")
        out.append(m)
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValueError(f"model names {names} are not unique. Fix: pass models as {{name: backend}}.")
    return out


def _seed_of(rng: Any) -> int:
    if isinstance(rng, (int, np.integer)):
        return int(rng)
    return int(np.random.default_rng(rng).integers(0, 2**62))


def _uniforms(keys: Sequence[str], seed: int, temperature: float) -> np.ndarray:
    """One U(0,1) per item, a pure function of (seed, item key, temperature)."""
    out = np.empty(len(keys))
    for i, k in enumerate(keys):
        d = hashlib.sha256(f"{seed}|{temperature!r}|{k}".encode()).digest()
        out[i] = (int.from_bytes(d[:8], "big") >> 11) / float(1 << 53)
    return out


def labels_from_logp(logp: np.ndarray, temperatures: Sequence[float], u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and distributions for every temperature from one set of key log-probabilities.

    Parameters
    ----------
    logp
        ``(n, K)`` log-probabilities (``-inf`` allowed; rows all ``-inf`` = no answer).
    temperatures
        ``T`` values; 0 means arg-max, else a draw from the renormalised ``p^(1/T)``.
    u
        ``(len(temperatures), n)`` uniforms for the draws.

    Returns
    -------
    labels, prob
        ``(T, n)`` int16 (-1 where no answer) and ``(T, n, K)`` float32.
    """
    logp = np.asarray(logp, dtype=np.float64)
    n, k = logp.shape
    ok = np.isfinite(logp).any(axis=1)
    safe = np.where(ok[:, None], logp, 0.0)
    labels = np.full((len(temperatures), n), NOT_ANNOTATED, dtype=np.int16)
    prob = np.full((len(temperatures), n, k), np.nan, dtype=np.float32)
    for j, t in enumerate(temperatures):
        z = safe if t == 0 else safe / float(t)
        z = z - z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        if t == 0:
            lab = safe.argmax(axis=1)
        else:
            lab = np.minimum((np.cumsum(q, axis=1) < u[j][:, None]).sum(axis=1), k - 1)
        labels[j] = np.where(ok, lab, NOT_ANNOTATED)
        prob[j] = np.where(ok[:, None], q, np.nan)
    return labels, prob


def _empty_cube(df: pd.DataFrame, spec: TaskSpec, backends: list[Any], prompt_ids: list[str],
                temps: list[float], mode: str, options: dict[str, Any] | None = None,
                question: str | None = None) -> xr.Dataset:
    items = df.copy()
    items["task"] = spec.name
    if "truth" in items.columns:
        items["truth"] = items["truth"].astype(object).where(items["truth"].notna(), None)
    rows = [(spec.name, m.name, p, t, items["item_id"].iloc[0], OUTSIDE_NAME)
            for m in backends for p in prompt_ids for t in temps]
    labels = pd.DataFrame(rows, columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    models = pd.DataFrame({"identity": [m.identity for m in backends]}, index=[m.name for m in backends])
    try:
        cube = make_cube(labels, items, {spec.name: list(spec.labels)},
                         prompts={spec.name: {p: spec.template_string(p) for p in prompt_ids}}, models=models,
                         attrs={"created_by": "hackrisk.annotate", "annotate_mode": mode,
                                "answer_keys": list(spec.answer_keys)})
    except ValueError as err:
        if "named like integers" not in str(err):
            raise
        raise ValueError(f"items: the human labels (truth) are integers and the labels {list(spec.labels)} are "
                         "named like integers, so codes and names cannot be told apart. Fix: give truth as "
                         "class names (text), e.g. items['truth'].astype(str) when 1 means the class \"1\".") from err
    cube["label"][:] = NOT_ANNOTATED
    fp = np.full(cube["item_id"].shape, "", dtype=object)
    fp[0, : len(df)] = item_fingerprints(df)
    cube["item_fingerprint"] = (("task", "item"), fp)
    cube["item_fingerprint"].attrs["description"] = ("SHA-256 (16 hex) of each item's id, text, human label and "
                                                     "covariates when it was annotated")
    if options is not None:
        cube.attrs["options"] = options
        cube.attrs["options_fingerprint"] = cache_key(options)[:16]
    shape4 = tuple(cube.sizes[d] for d in ("task", "model", "prompt", "temperature"))
    dims4 = ("task", "model", "prompt", "temperature")
    cube["seconds"] = (dims4, np.full(shape4, np.nan))
    cube["seconds"].attrs["description"] = "wall seconds spent annotating the configuration in the last run"
    cube["outside_share"] = (dims4, np.full(shape4, np.nan))
    cube["outside_share"].attrs["description"] = "share of annotated items whose reply was outside the label set"
    cube["annotate_status"] = (cube["label"].dims, np.zeros(cube["label"].shape, dtype=np.int8))
    cube["annotate_status"].attrs["description"] = ("bits: 1 truncated, 2 empty text, 4 invalid UTF-8 replaced, "
                                                    "8 backend failed (label -1)")
    if question is not None:
        paper = (options or {}).get("confidence_style") == "paper"
        cube["confidence"] = (cube["label"].dims, np.full(cube["label"].shape, np.nan, dtype=np.float32))
        cube["confidence"].attrs["description"] = (
            "verbalized confidence in [0, 1]: the model's 0-1 answer to a separate prompt holding the text and "
            "the label it gave (the authors' question); NaN where the item is not annotated, its reply is "
            "outside the label set (not asked), the request failed or the answer was malformed" if paper else
            "verbalized confidence in [0, 1] (the model's 0-100 answer to a follow-up question / 100); NaN "
            "where the item is not annotated, the request failed or the answer was malformed")
        cube["confidence"].attrs["question"] = question
        cube["confidence"].attrs["style"] = "paper" if paper else "followup"
        cube["confidence_unparseable"] = (dims4, np.full(shape4, np.nan))
        cube["confidence_unparseable"].attrs["description"] = (
            "share of asked items whose confidence answer was malformed (no number, several, negative or above "
            "1, or with %)" if paper else
            "share of answered items whose confidence answer was malformed (no number, several, out of 0-100, "
            "or an ambiguous decimal below 1)")
    if mode == "score":
        cube["prob"] = (*cube["label"].dims, "class"), np.full((*cube["label"].shape, cube.sizes["class"]),
                                                               np.nan, dtype=np.float32)
        cube["label_mass"] = (dims4, np.full(shape4, np.nan))
        cube["label_mass"].attrs["description"] = "mean probability the model gives to the answer keys"
    return cube


def _open_store(path: Path, cube: xr.Dataset) -> None:
    """Create the store atomically; resume one that matches; rebuild one whose items changed.

    Raises :class:`StoreMismatchError` when the store holds other configurations or was made with
    other options (nothing is overwritten then).
    """
    if not path.exists():
        save_cube(cube, path)  # written to a temporary sibling and renamed: complete or absent
        return
    have = open_cube(path, lazy=True)
    fix = (f"Fix: use another output folder / store path, or delete {path} to start over (answers already "
           "computed stay in the cache next to it and are not requested again).")
    for dim in ("task", "model", "prompt", "temperature"):
        a, b = list(map(str, have[dim].values)), list(map(str, cube[dim].values))
        if a != b:
            raise StoreMismatchError(f"store {path} has {dim} {a}, this run needs {b}. {fix}")
    missing = [v for v in ("seconds", "outside_share", "annotate_status") if v not in have]
    if missing:
        raise StoreMismatchError(f"store {path} was not written by hackrisk.annotate (no {missing}). Fix: use "
                                 "another store path.")
    old_opts, new_opts = have.attrs.get("options"), cube.attrs.get("options")
    if old_opts is not None and new_opts is not None and old_opts != new_opts:
        changed = sorted(k for k in set(old_opts) | set(new_opts) if old_opts.get(k) != new_opts.get(k))
        raise StoreMismatchError(f"store {path} was annotated with other options: {', '.join(changed)} changed "
                                 f"(before: {_short({k: old_opts.get(k) for k in changed})}; now: "
                                 f"{_short({k: new_opts.get(k) for k in changed})}). Its labels would not match "
                                 f"this run's. {fix}")
    new_ids = [str(x) for x in cube["item_id"].values[0] if x != ""]
    new_fp = [str(x) for x in cube["item_fingerprint"].values[0][: len(new_ids)]]
    if "item_fingerprint" in have and old_opts is not None:
        old_ids = [str(x) for x in have["item_id"].values[0] if x != ""]
        old_fp = dict(zip(old_ids, (str(x) for x in have["item_fingerprint"].values[0][: len(old_ids)]),
                          strict=True))
        if old_ids == new_ids and [old_fp[i] for i in old_ids] == new_fp:
            return  # same items, same options: resume
        changed = [i for i, f in zip(new_ids, new_fp, strict=True) if i in old_fp and old_fp[i] != f]
        added = [i for i in new_ids if i not in old_fp]
        removed = [i for i in old_ids if i not in set(new_ids)]
        log.warning("the items changed since %s was written (%d changed: %s; %d added; %d removed): rebuilding "
                    "it; unchanged items come from the cache, changed ones are annotated again.",
                    path, len(changed), changed[:5], len(added), len(removed))
    else:
        log.warning("%s was written without item fingerprints (an older hackrisk): rebuilding it from the cache.",
                    path)
    save_cube(cube, path, mode="w")


def _short(value: Any, n: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def annotate(items: Any, task: TaskSpec, *, models: Any = None, prompts: Sequence[str] | None = None,
             temperatures: Sequence[float] = (0.0,), store: str | os.PathLike | None = None,
             mode: str = "score", batch_size: int | None = None, rng: Any = 0,
             cache: str | os.PathLike | None = "auto", on_empty: str = "error",
             max_new_tokens: int | None = None, progress: bool = True,
             confidence: bool | str = False, confidence_tokens: int | None = None,
             conventions: str = "hackrisk", confidence_template: str | None = None) -> xr.Dataset:
    """Annotate items under every model × prompt × temperature and return the label cube.

    Parameters
    ----------
    items
        DataFrame with ``text`` (str or bytes), optional ``item_id`` (or ``id``), ``truth`` (human
        label name/code) and covariate columns; or a list of texts.
    task
        The :class:`TaskSpec`.
    models
        A backend, a list of backends, ``{name: backend}``, model paths, or ``None`` / ``"default"``
        for the embedded SmolLM2-135M-Instruct.
    prompts
        Prompt ids of ``task`` to run (default all).
    temperatures
        Decoding temperatures; 0 is greedy.
    store
        zarr store to create (atomically) and fill block by block; an existing store of the same
        layout is resumed. ``None`` keeps the cube in memory only.
    mode
        ``"score"`` (one pass per item gives every key's probability; all temperatures from it) or
        ``"generate"`` (free replies, parsed; one generation per item and temperature).
    batch_size
        Items per backend call (default: the backend's own).
    rng
        Seed of the temperature draws (score) and of sampling (generate).
    cache
        SQLite cache file; ``"auto"``: ``<store>.cache.sqlite`` next to the store (in memory
        without a store); ``None``: in memory.
    on_empty
        ``"error"`` (default) raises on empty / whitespace texts; ``"annotate"`` sends them as
        they are and sets status bit 2.
    max_new_tokens
        Reply length in ``generate`` mode (default ``task.max_new_tokens``).
    progress
        Show a tqdm bar with ETA per configuration.
    confidence
        Verbalized confidence (``generate`` mode). ``True`` (or a question as a string): after
        each reply the model is asked a follow-up question in the same chat (default
        :data:`~hackrisk.annotate.task.CONFIDENCE_QUESTION`, a whole number from 0 to 100),
        answered greedily. ``"paper"``: the authors' style — a separate single-turn prompt holding
        the text and the label the reply was mapped to (``confidence_template``, default
        :data:`~hackrisk.annotate.task.PAPER_CONFIDENCE_TEMPLATE`: "How likely is it that the
        following text is {label}? Output only a single number between 0 and 1, …"), greedy, 10
        tokens, asked once per (item, label, model) — configurations that gave the same label
        share the answer — and not asked for replies outside the label set (the authors' "na").
        Answers are read strictly by :func:`~hackrisk.annotate.parse_confidence` (percent or
        unit scale). Stored as the cube variable ``confidence`` (label dims, float32 in [0, 1],
        NaN where missing or malformed; nothing is guessed; attrs ``question``, ``style``) and
        per configuration ``confidence_unparseable`` (share of the asked items whose answer was
        malformed). For API models without token probabilities; ``item_confidence`` and the
        confidence sampling scheme of :mod:`hackrisk.analysis.mitigation` read it when the cube
        has no ``prob``.
    confidence_tokens
        Reply length of the confidence answer (default 16; 10 with ``confidence="paper"``, as
        the authors).
    confidence_template
        With ``confidence="paper"``: the prompt, a format string with ``{label}`` and ``{text}``
        (the authors word it per task). Default :data:`~hackrisk.annotate.task.PAPER_CONFIDENCE_TEMPLATE`.
    conventions
        How ``generate`` replies are mapped to classes: ``"hackrisk"`` (default) or ``"paper"``
        (the authors' output mapping; :func:`~hackrisk.annotate.parse_response`,
        ``docs/conventions.md``). Replies come from the cache either way, so switching costs no
        request (but a store made under one preset does not resume under the other).

    Returns
    -------
    xarray.Dataset
        The cube, with ``label`` (and ``prob`` in score mode) plus per-configuration ``seconds``,
        ``outside_share`` (and ``label_mass``) and per-item ``annotate_status`` bits
        (:data:`STATUS_TRUNCATED`, :data:`STATUS_EMPTY`, :data:`STATUS_REPLACED`,
        :data:`STATUS_FAILED`). Texts longer than the context are truncated, never dropped.
    """
    from tqdm.auto import tqdm

    if not isinstance(task, TaskSpec):
        raise ValueError(f"task must be a TaskSpec, got {type(task).__name__}. Fix: hackrisk.annotate.TaskSpec(...).")
    if mode not in ("score", "generate"):
        raise ValueError(f"mode={mode!r} unknown. Fix: use 'score' or 'generate'.")
    if on_empty not in ("error", "annotate"):
        raise ValueError(f"on_empty={on_empty!r} unknown. Fix: use 'error' or 'annotate'.")
    temps = sorted({float(t) for t in temperatures})
    if not temps or any(t < 0 or not np.isfinite(t) for t in temps):
        raise ValueError(f"temperatures {list(temperatures)} must be finite and >= 0.")
    prompt_ids = list(task.prompt_ids if prompts is None else [str(p) for p in prompts])
    for p in prompt_ids:
        task.messages(p)  # raises on unknown ids
    df, status0 = _norm_items(items, task)
    if len(df) == 0:
        raise ValueError("items: no texts to annotate. Fix: pass at least one item.")
    if on_empty == "error" and (status0 & STATUS_EMPTY).any():
        bad = df["item_id"][(status0 & STATUS_EMPTY) > 0].tolist()[:5]
        raise ValueError(f"items {bad} have empty or whitespace-only text. Fix: drop them, or pass "
                         "on_empty='annotate' to annotate them as they are (status bit 2).")
    if conventions not in ("hackrisk", "paper"):
        raise ValueError(f"conventions={conventions!r} unknown. Fix: use 'hackrisk' or 'paper'.")
    paper_conf = confidence == "paper"
    question = _confidence_question(confidence, mode, confidence_template)
    if confidence_tokens is None:
        confidence_tokens = 10 if paper_conf else 16
    backends = _norm_models(models)
    seed = _seed_of(rng)
    mnt = int(max_new_tokens or task.max_new_tokens)
    options = _options(task, backends, prompt_ids, temps, mode, seed, mnt, question)
    if question is not None:
        options["confidence_tokens"] = int(confidence_tokens)
    if paper_conf:  # absent otherwise, so stores written before still resume
        options["confidence_style"] = "paper"
    if conventions != "hackrisk" and mode == "generate":  # absent by default: older stores still resume
        options["parser"] = conventions
    cube = _empty_cube(df, task, backends, prompt_ids, temps, mode, options, question)
    store_path = None if store is None else Path(store)
    if cache == "auto":
        cache = None if store_path is None else store_path.with_name(store_path.name + ".cache.sqlite")
    covs = [c for c in df.columns if c not in ("item_id", "text", "truth")]
    cov_rows = df[covs].to_dict("records") if covs else [{}] * len(df)
    keys = task.answer_keys
    sentinel = _sentinel()
    with contextlib.ExitStack() as stack:
        if store_path is not None:
            stack.enter_context(store_lock(store_path))  # one run per store at a time
            _open_store(store_path, cube)
        rc = ResultCache(cache)
        stack.callback(rc.close)
        for m, be in enumerate(backends):
            bs = int(batch_size or getattr(be, "batch_size", 16))
            for p, pid in enumerate(prompt_ids):
                t0 = time.perf_counter()

                def msgs_fn(text: str, _pid: str = pid) -> list[dict[str, str]]:
                    return task.render(_pid, text, cov_rows[0])

                texts, cut = be.prepare_texts(df["text"].tolist(), msgs_fn)
                status = status0 | np.where(cut, STATUS_TRUNCATED, 0).astype(np.int8)
                msgs = [task.render(pid, t, c) for t, c in zip(texts, cov_rows, strict=True)]
                desc = f"{task.name}/{be.name}/{pid}"
                if mode == "score":
                    ikeys = [cache_key("score", be.identity, mm, list(keys)) for mm in msgs]
                    def score_fn(idx: list[int], _be: Any = be, _msgs: list = msgs, _pid: str = pid) -> list:
                        lp = _be.score([_msgs[i] for i in idx], keys,
                                       sentinel=task.render(_pid, sentinel, cov_rows[idx[0]]))
                        return [{"logp": x} for x in lp]

                    res = _run_cached(rc, ikeys, bs, desc, progress, tqdm, score_fn, be)
                    logp = np.stack([res[k]["logp"] for k in ikeys])
                    u = np.stack([_uniforms(ikeys, seed, t) for t in temps])
                    lab, prob = labels_from_logp(logp, temps, u)
                    failed = ~np.isfinite(logp).any(axis=1)
                    st = np.broadcast_to(status | np.where(failed, STATUS_FAILED, 0).astype(np.int8), lab.shape)
                    mass = float(np.nanmean(np.exp(logp).sum(axis=1)[~failed])) if (~failed).any() else np.nan
                    outside = np.zeros(len(temps))
                else:
                    labs, sts, outside, confs, unparsed = [], [], [], [], []
                    for t in temps:
                        tseed = int(cache_key(seed, t)[:8], 16)
                        ikeys = [cache_key("generate", be.identity, mm, t, mnt, tseed) for mm in msgs]
                        def gen_fn(idx: list[int], _t: float = t, _s: int = tseed, _be: Any = be,
                                   _msgs: list = msgs) -> list:
                            replies = _be.generate([_msgs[i] for i in idx], temperature=_t, max_new_tokens=mnt,
                                                   seed=_s + int(idx[0]))
                            return [{"reply": r, "status": 0 if r is not None else STATUS_FAILED} for r in replies]

                        res = _run_cached(rc, ikeys, bs, f"{desc}/T={t:g}", progress, tqdm, gen_fn, be)
                        replies = [res[k]["reply"] for k in ikeys]
                        lab_t = np.array([NOT_ANNOTATED if r is None else parse_response(r, task, conventions=conventions).code
                                          for r in replies], dtype=np.int16)
                        failed = np.array([r is None for r in replies])
                        labs.append(lab_t)
                        sts.append(status | np.where(failed, STATUS_FAILED, 0).astype(np.int8))
                        done = lab_t != NOT_ANNOTATED
                        outside.append(float((lab_t[done] == OUTSIDE).mean()) if done.any() else np.nan)
                        if question is not None:
                            if paper_conf:  # a fresh prompt per (item, label), one seed for all configurations
                                chats = [paper_confidence_messages(texts[i], task.labels[c], question) if c >= 0
                                         else None for i, c in enumerate(lab_t)]
                                cseed, scale = seed, "unit"
                            else:
                                chats = [None if r is None else confidence_messages(msgs[i], r, question)
                                         for i, r in enumerate(replies)]
                                cseed, scale = tseed, "percent"
                            conf_t = _ask_confidence(rc, be, chats, int(confidence_tokens), cseed, scale, bs,
                                                     f"{desc}/T={t:g}/confidence", progress, tqdm)
                            confs.append(conf_t)
                            asked = np.array([c is not None for c in chats])
                            unparsed.append(float(np.isnan(conf_t[asked]).mean()) if asked.any() else np.nan)
                    lab, st, prob, mass = np.stack(labs), np.stack(sts), None, None
                    if question is not None:
                        conf_block = (np.stack(confs), np.asarray(unparsed))
                secs = (time.perf_counter() - t0) / len(temps)
                _store_block(cube, store_path, m, p, lab, st, prob, secs, np.asarray(outside), mass,
                             conf_block if question is not None else None)
    missing = missing_labels(cube)
    if len(missing):
        log.warning("%d labels are missing in %d configuration(s) (failed requests: never cached, asked again "
                    "on the next run): %s", int(missing["n_missing"].sum()), len(missing),
                    ", ".join(f"{r.model}/{r.prompt}/T={r.temperature:g}" for r in missing.head(5).itertuples()))
    return cube


def _confidence_question(confidence: bool | str, mode: str, template: str | None = None) -> str | None:
    """The follow-up question, or the paper-style template (``None``: no verbalized confidence)."""
    if template is not None and confidence != "paper":
        raise ValueError("confidence_template is the prompt of confidence='paper'. Fix: pass confidence='paper' "
                         "with it, or drop confidence_template (a follow-up question is confidence='...').")
    if confidence is False or confidence is None:
        return None
    if confidence == "paper":
        question = check_confidence_template(PAPER_CONFIDENCE_TEMPLATE if template is None else template)
    else:
        question = CONFIDENCE_QUESTION if confidence is True else confidence
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"confidence={confidence!r}: pass True (the default question) or the question as a "
                         "non-empty string.")
    if mode != "generate":
        raise ValueError("confidence: verbalized confidence asks a follow-up question after a free reply, so it "
                         "needs mode='generate' (score mode stores the class probabilities, prob, instead). "
                         "Fix: pass mode='generate' or drop confidence.")
    return question


def _ask_confidence(rc: ResultCache, be: Any, chats: list, n_tokens: int, seed: int, scale: str, bs: int,
                    desc: str, progress: bool, tqdm: Any) -> np.ndarray:
    """Ask each confidence chat (``None``: not asked) greedily; parsed confidence per item (NaN = missing)."""
    idx = [i for i, c in enumerate(chats) if c is not None]
    out = np.full(len(chats), np.nan, dtype=np.float32)
    if not idx:
        return out
    follow = [chats[i] for i in idx]
    ckeys = [cache_key("confidence", be.identity, f, 0.0, n_tokens, seed) for f in follow]

    def ask(sub: list[int]) -> list:
        got = be.generate([follow[j] for j in sub], temperature=0.0, max_new_tokens=n_tokens, seed=seed)
        return [{"reply": r, "status": 0 if r is not None else STATUS_FAILED} for r in got]

    res = _run_cached(rc, ckeys, bs, desc, progress, tqdm, ask, be)
    for i, k in zip(idx, ckeys, strict=True):
        value = parse_confidence(res[k]["reply"], scale=scale).value
        out[i] = np.nan if value is None else value
    return out


def _is_failure(entry: Mapping[str, Any]) -> bool:
    """A result that is no answer: a failed request, or no probability on any answer key."""
    if int(entry.get("status", 0) or 0) & STATUS_FAILED:
        return True
    if "logp" in entry and entry.get("reply") is None:
        logp = entry.get("logp")
        return logp is None or not np.isfinite(np.asarray(logp, dtype=np.float64)).any()
    return entry.get("reply") is None


def _run_cached(rc: ResultCache, ikeys: list[str], bs: int, desc: str, progress: bool, tqdm: Any,
                compute: Any, backend: Any = None) -> dict[str, dict[str, Any]]:
    """Look keys up; compute the missing ones batch by batch, committing each batch.

    Failures are returned (label -1) but never cached, so the next run asks again; cached
    failures of older versions are asked again too. When every item of the first batch computed
    here fails, :class:`AnnotationError` is raised before anything is stored.
    """
    have = {k: e for k, e in rc.get_many(ikeys).items() if not _is_failure(e)}
    todo = [i for i, k in enumerate(ikeys) if k not in have]
    seen: set[str] = set()
    todo = [i for i in todo if not (ikeys[i] in seen or seen.add(ikeys[i]))]  # identical prompts once
    bar = tqdm(total=len(ikeys), initial=len(ikeys) - len(todo), desc=desc, disable=not progress,
               unit="item", leave=False)
    try:
        for s in range(0, len(todo), bs):
            idx = todo[s:s + bs]
            out = compute(idx)
            entries = {ikeys[i]: e for i, e in zip(idx, out, strict=True)}
            good = {k: e for k, e in entries.items() if not _is_failure(e)}
            if s == 0 and not good:
                why = getattr(backend, "last_failure", None) or (
                    "no reply gave any probability to an answer key" if "logp" in out[0] else "no reply")
                raise AnnotationError(
                    f"{desc}: every request of the first batch ({len(idx)} item(s)) failed: {why}. Nothing of "
                    "this configuration was stored, and failures are never cached. Fix: correct the cause "
                    "above (server, model name, decoding options) and re-run.")
            rc.put_many(good)
            have.update(entries)
            bar.update(len(idx))
    finally:
        bar.close()
    return have


def _store_block(cube: xr.Dataset, path: Path | None, m: int, p: int, lab: np.ndarray, st: np.ndarray,
                 prob: np.ndarray | None, secs: float, outside: np.ndarray, mass: float | None,
                 conf: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Put one (model, prompt) block, all temperatures, into the cube and the store."""
    n = lab.shape[1]
    cube["label"].values[0, m, p, :, :n] = lab
    cube["annotate_status"].values[0, m, p, :, :n] = st
    cube["seconds"].values[0, m, p, :] = secs
    cube["outside_share"].values[0, m, p, :] = outside
    if prob is not None:
        cube["prob"].values[0, m, p, :, :n, : prob.shape[2]] = prob
        cube["label_mass"].values[0, m, p, :] = mass
    if conf is not None:
        cube["confidence"].values[0, m, p, :, :n] = conf[0]
        cube["confidence_unparseable"].values[0, m, p, :] = conf[1]
    if path is None:
        return
    sel = {"model": slice(m, m + 1), "prompt": slice(p, p + 1)}
    block = cube.isel(sel)
    extra = {v: block[v] for v in ("annotate_status", "seconds", "outside_share", "label_mass", "confidence",
                                   "confidence_unparseable") if v in block}
    write_labels(path, block["label"], prob=block["prob"] if prob is not None else None, extra=extra)
