"""The runner: annotate items under every model × prompt × temperature, into the label cube.

Results go to a content-addressed cache (one transaction per batch) and, one configuration block
(model, prompt, all temperatures) at a time, into the zarr store. Killing the process at any
moment loses at most the batch in flight; running the same call again resumes from the cache and
rewrites the blocks, so no label is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import NOT_ANNOTATED, OUTSIDE, make_cube
from ..io import open_cube, save_cube, write_labels
from .cache import ResultCache, cache_key
from .task import TaskSpec, parse_response

__all__ = ["annotate", "STATUS_TRUNCATED", "STATUS_EMPTY", "STATUS_REPLACED", "STATUS_FAILED"]

log = logging.getLogger(__name__)

#: per-item status bits stored in the cube variable ``annotate_status``
STATUS_TRUNCATED = 1  # text cut to fit the model's context
STATUS_EMPTY = 2  # empty or whitespace-only text (annotated as given, with on_empty="annotate")
STATUS_REPLACED = 4  # text was not valid UTF-8; undecodable bytes replaced by U+FFFD
STATUS_FAILED = 8  # the backend gave no answer for this item (label stays -1)


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
                temps: list[float], mode: str) -> xr.Dataset:
    items = df.copy()
    items["task"] = spec.name
    if "truth" in items.columns:
        items["truth"] = items["truth"].astype(object).where(items["truth"].notna(), None)
    rows = [(spec.name, m.name, p, t, items["item_id"].iloc[0], OUTSIDE)
            for m in backends for p in prompt_ids for t in temps]
    labels = pd.DataFrame(rows, columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    models = pd.DataFrame({"identity": [m.identity for m in backends]}, index=[m.name for m in backends])
    cube = make_cube(labels, items, {spec.name: list(spec.labels)},
                     prompts={spec.name: {p: spec.template_string(p) for p in prompt_ids}}, models=models,
                     attrs={"created_by": "hackrisk.annotate", "annotate_mode": mode,
                            "answer_keys": list(spec.answer_keys)})
    cube["label"][:] = NOT_ANNOTATED
    shape4 = tuple(cube.sizes[d] for d in ("task", "model", "prompt", "temperature"))
    dims4 = ("task", "model", "prompt", "temperature")
    cube["seconds"] = (dims4, np.full(shape4, np.nan))
    cube["seconds"].attrs["description"] = "wall seconds spent annotating the configuration in the last run"
    cube["outside_share"] = (dims4, np.full(shape4, np.nan))
    cube["outside_share"].attrs["description"] = "share of annotated items whose reply was outside the label set"
    cube["annotate_status"] = (cube["label"].dims, np.zeros(cube["label"].shape, dtype=np.int8))
    cube["annotate_status"].attrs["description"] = ("bits: 1 truncated, 2 empty text, 4 invalid UTF-8 replaced, "
                                                    "8 backend failed (label -1)")
    if mode == "score":
        cube["prob"] = (*cube["label"].dims, "class"), np.full((*cube["label"].shape, cube.sizes["class"]),
                                                               np.nan, dtype=np.float32)
        cube["label_mass"] = (dims4, np.full(shape4, np.nan))
        cube["label_mass"].attrs["description"] = "mean probability the model gives to the answer keys"
    return cube


def _open_store(path: Path, cube: xr.Dataset) -> None:
    """Create the store atomically, or check that an existing one has the same layout."""
    if path.exists():
        have = open_cube(path, lazy=True)
        for dim in ("task", "model", "prompt", "temperature"):
            a, b = list(map(str, have[dim].values)), list(map(str, cube[dim].values))
            if a != b:
                raise ValueError(f"store {path} has {dim} {a}, this run needs {b}. Fix: use a new store path "
                                 "(results already computed come from the cache), or the same configurations.")
        if list(have["item_id"].values[0]) != list(cube["item_id"].values[0]):
            raise ValueError(f"store {path} holds other items. Fix: use a new store path.")
        missing = [v for v in ("seconds", "outside_share", "annotate_status") if v not in have]
        if missing:
            raise ValueError(f"store {path} was not written by hackrisk.annotate (no {missing}). Fix: use a new path.")
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_cube(cube, tmp)
    os.rename(tmp, path)  # atomic: the store appears complete or not at all


def annotate(items: Any, task: TaskSpec, *, models: Any = None, prompts: Sequence[str] | None = None,
             temperatures: Sequence[float] = (0.0,), store: str | os.PathLike | None = None,
             mode: str = "score", batch_size: int | None = None, rng: Any = 0,
             cache: str | os.PathLike | None = "auto", on_empty: str = "error",
             max_new_tokens: int | None = None, progress: bool = True) -> xr.Dataset:
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
    backends = _norm_models(models)
    seed = _seed_of(rng)
    mnt = int(max_new_tokens or task.max_new_tokens)
    cube = _empty_cube(df, task, backends, prompt_ids, temps, mode)
    store_path = None if store is None else Path(store)
    if store_path is not None:
        _open_store(store_path, cube)
    if cache == "auto":
        cache = None if store_path is None else store_path.with_name(store_path.name + ".cache.sqlite")
    rc = ResultCache(cache)
    covs = [c for c in df.columns if c not in ("item_id", "text", "truth")]
    cov_rows = df[covs].to_dict("records") if covs else [{}] * len(df)
    keys = task.answer_keys
    sentinel = _sentinel()
    try:
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

                    res = _run_cached(rc, ikeys, bs, desc, progress, tqdm, score_fn)
                    logp = np.stack([res[k]["logp"] for k in ikeys])
                    u = np.stack([_uniforms(ikeys, seed, t) for t in temps])
                    lab, prob = labels_from_logp(logp, temps, u)
                    failed = ~np.isfinite(logp).any(axis=1)
                    st = np.broadcast_to(status | np.where(failed, STATUS_FAILED, 0).astype(np.int8), lab.shape)
                    mass = float(np.nanmean(np.exp(logp).sum(axis=1)[~failed])) if (~failed).any() else np.nan
                    outside = np.zeros(len(temps))
                else:
                    labs, sts, outside = [], [], []
                    for t in temps:
                        tseed = int(cache_key(seed, t)[:8], 16)
                        ikeys = [cache_key("generate", be.identity, mm, t, mnt, tseed) for mm in msgs]
                        def gen_fn(idx: list[int], _t: float = t, _s: int = tseed, _be: Any = be,
                                   _msgs: list = msgs) -> list:
                            replies = _be.generate([_msgs[i] for i in idx], temperature=_t, max_new_tokens=mnt,
                                                   seed=_s + int(idx[0]))
                            return [{"reply": r, "status": 0 if r is not None else STATUS_FAILED} for r in replies]

                        res = _run_cached(rc, ikeys, bs, f"{desc}/T={t:g}", progress, tqdm, gen_fn)
                        replies = [res[k]["reply"] for k in ikeys]
                        lab_t = np.array([NOT_ANNOTATED if r is None else parse_response(r, task).code
                                          for r in replies], dtype=np.int16)
                        failed = np.array([r is None for r in replies])
                        labs.append(lab_t)
                        sts.append(status | np.where(failed, STATUS_FAILED, 0).astype(np.int8))
                        done = lab_t != NOT_ANNOTATED
                        outside.append(float((lab_t[done] == OUTSIDE).mean()) if done.any() else np.nan)
                    lab, st, prob, mass = np.stack(labs), np.stack(sts), None, None
                secs = (time.perf_counter() - t0) / len(temps)
                _store_block(cube, store_path, m, p, lab, st, prob, secs, np.asarray(outside), mass)
    finally:
        rc.close()
    return cube


def _run_cached(rc: ResultCache, ikeys: list[str], bs: int, desc: str, progress: bool, tqdm: Any,
                compute: Any) -> dict[str, dict[str, Any]]:
    """Look keys up; compute the missing ones batch by batch, committing each batch."""
    have = rc.get_many(ikeys)
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
            rc.put_many(entries)
            have.update(entries)
            bar.update(len(idx))
    finally:
        bar.close()
    return have


def _store_block(cube: xr.Dataset, path: Path | None, m: int, p: int, lab: np.ndarray, st: np.ndarray,
                 prob: np.ndarray | None, secs: float, outside: np.ndarray, mass: float | None) -> None:
    """Put one (model, prompt) block, all temperatures, into the cube and the store."""
    n = lab.shape[1]
    cube["label"].values[0, m, p, :, :n] = lab
    cube["annotate_status"].values[0, m, p, :, :n] = st
    cube["seconds"].values[0, m, p, :] = secs
    cube["outside_share"].values[0, m, p, :] = outside
    if prob is not None:
        cube["prob"].values[0, m, p, :, :n, : prob.shape[2]] = prob
        cube["label_mass"].values[0, m, p, :] = mass
    if path is None:
        return
    sel = {"model": slice(m, m + 1), "prompt": slice(p, p + 1)}
    block = cube.isel(sel)
    extra = {v: block[v] for v in ("annotate_status", "seconds", "outside_share", "label_mass") if v in block}
    write_labels(path, block["label"], prob=block["prob"] if prob is not None else None, extra=extra)
