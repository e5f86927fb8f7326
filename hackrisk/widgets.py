"""Notebook explorer of a multiverse's results (anywidget).

:func:`explore` returns an :class:`Explorer` widget: selectors for task, models, prompts,
temperatures and ``alpha``, and five linked views of the *selected* part of a tests result
(see ``docs/results.md``):

* error-type bars (Type I, II, S and the pooled risk) for the selection;
* risk versus the human effect size (one point per hypothesis, plus a binned curve);
* the specification curve of the chosen hypothesis (log odds ratio and its Wald CI under every
  selected configuration, the human estimate as reference, wrong conclusions marked); with
  ``corrected=`` (a :func:`hackrisk.analysis.mitigation.correct` result) the corrected interval of
  every configuration is drawn beside the LLM-only one, on the corrected estimand's scale (the
  difference in shares, or the log odds ratio for ``estimand="logistic"``);
* a model × prompt heatmap of the risk;
* the "hack" list: configurations that would fabricate (Type I), hide (Type II) or reverse
  (Type S) the chosen finding.

The widget only slices and counts: it reads ``p_value``, ``estimate``, ``log_or``, ``se``,
``conclusion``, ``annotated`` and their human counterparts, and the ``error`` codes of
:func:`hackrisk.analysis.risk.classify_errors`.  Changing ``alpha`` re-reads the conclusions at the
new level (``p_value < alpha``); nothing is re-estimated.

The view state is computed in Python by :func:`view_state` (a pure function, unit-tested) from
arrays extracted once by :func:`prepare`; per-hypothesis and per-configuration arrays travel to
the browser as binary buffers.  The front-end is the ES module ``widgets/explorer.js`` (installed
as ``hackrisk/_frontend/explorer.js``).  Where widgets cannot render (static HTML, nbconvert,
GitHub) the widget's MIME bundle carries a PNG of the same views drawn with
:mod:`hackrisk.plots`.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cube import CONFIG_DIMS

__all__ = ["explore", "prepare", "view_state", "frontend_dir", "ERROR_NAMES"]

logger = logging.getLogger(__name__)

#: Error codes of :func:`hackrisk.analysis.risk.classify_errors`.
ERROR_NAMES = {0: "correct", 1: "Type I", 2: "Type II", 3: "Type S"}
_HACK_KIND = {1: "fabricate", 2: "hide", 3: "reverse"}
_N_BINS = 8
_MAX_HACK_ROWS = 200


# --------------------------------------------------------------------------- front-end files
def frontend_dir() -> Path:
    """Folder holding ``explorer.js`` and ``explorer.css``.

    The installed wheel ships them as ``hackrisk/_frontend``; in a source checkout (editable
    install) they live in the top-level ``widgets/`` folder.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_frontend", here.parent / "widgets"):
        if (candidate / "explorer.js").is_file():
            return candidate
    raise FileNotFoundError(
        f"hackrisk front-end files (explorer.js) not found in {here / '_frontend'} or "
        f"{here.parent / 'widgets'}. Fix: reinstall hackrisk (the wheel ships them as "
        "hackrisk/_frontend)."
    )


# --------------------------------------------------------------------------- state logic
def _require(results: xr.Dataset, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in results.variables]
    if missing:
        raise ValueError(
            f"results is missing {missing}. Fix: pass the output of "
            "hackrisk.analysis.frequentist.test_hypotheses (optionally through "
            "hackrisk.analysis.risk.classify_errors); see docs/results.md."
        )


def _with_errors(results: xr.Dataset) -> xr.Dataset:
    if "error" in results:
        return results
    from .analysis.risk import classify_errors

    return classify_errors(results)


def _coord_strings(results: xr.Dataset, name: str, default: str = "") -> list[str]:
    if name in results.coords or name in results.variables:
        return [str(v) for v in np.asarray(results[name].values).ravel()]
    return [default] * results.sizes["hypothesis"]


def _corrected_arrays(res: xr.Dataset, corrected: xr.Dataset, alpha: float) -> dict[str, Any]:
    """Corrected intervals aligned with ``res`` (by hypothesis id and configuration coords), and
    the LLM-only / human intervals on the same scale."""
    need = ("estimate", "ci_lower", "ci_upper")
    if not isinstance(corrected, xr.Dataset) or any(v not in corrected for v in need):
        raise ValueError("corrected must be the Dataset of hackrisk.analysis.mitigation.correct (estimate, "
                         "ci_lower, ci_upper over hypothesis, model, prompt, temperature).")
    missing = np.setdiff1d(np.asarray(res["hypothesis"].values), np.asarray(corrected["hypothesis"].values))
    if missing.size:
        raise ValueError(f"corrected lacks hypotheses {missing[:5].tolist()} of the results. Fix: correct the "
                         "same hypotheses the tests were run on.")
    idx = {"hypothesis": res["hypothesis"].values} | {d: res[d].values for d in CONFIG_DIMS}
    corr = corrected[list(need)].reindex(idx).transpose("hypothesis", *CONFIG_DIMS)
    out = {f"corr_{k}": np.asarray(corr[v].values, dtype=np.float32)
           for k, v in (("estimate", "estimate"), ("lower", "ci_lower"), ("upper", "ci_upper"))}
    out["corr_method"] = str(corrected.attrs.get("method", "corrected"))
    estimand = str(corrected.attrs.get("estimand", "difference"))
    out["corr_estimand"] = estimand
    if estimand == "difference":  # the LLM-only and human intervals on the difference scale (Wald)
        z = _z(alpha)

        def wald(ka, na, kb, nb):
            with np.errstate(invalid="ignore", divide="ignore"):
                pa, pb = ka / na, kb / nb
                se = np.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
            return (pa - pb).astype(np.float32), (z * se).astype(np.float32)

        if {"k_a", "n_a", "k_b", "n_b"} <= set(res.data_vars):
            d, h = wald(*(np.asarray(res[v].values, dtype=np.float64) for v in ("k_a", "n_a", "k_b", "n_b")))
            out["diff"], out["diff_half"] = d, h
        if {"human_k_a", "human_n_a", "human_k_b", "human_n_b"} <= set(res.data_vars):
            d, h = wald(*(np.asarray(res[v].values, dtype=np.float64)
                          for v in ("human_k_a", "human_n_a", "human_k_b", "human_n_b")))
            out["human_diff"], out["human_diff_half"] = d, h
    return out


def _p_effect(res: xr.Dataset, lfdr: Any) -> np.ndarray:
    """``1 − lfdr`` of each hypothesis' human z-score (NaN where unknown or not computed)."""
    h = res.sizes["hypothesis"]
    if lfdr is False:
        return np.full(h, np.nan, np.float32)
    if not isinstance(lfdr, xr.DataArray):
        from .analysis.lfdr import human_lfdr

        try:
            lfdr = human_lfdr(res)
        except ValueError as exc:  # too few hypotheses for the two-group fit
            logger.info("explorer: no local fdr (%s)", exc)
            return np.full(h, np.nan, np.float32)
    fdr = lfdr.reindex(hypothesis=res["hypothesis"].values)
    return (1 - np.asarray(fdr.values, dtype=np.float64)).astype(np.float32)


def prepare(results: xr.Dataset, corrected: xr.Dataset | None = None, lfdr: Any = None) -> dict[str, Any]:
    """Extract, once, the arrays the explorer slices.

    Parameters
    ----------
    results : xarray.Dataset
        Tests with dims ``(hypothesis, model, prompt, temperature)`` (``docs/results.md``); an
        ``error`` variable is added with ``classify_errors`` when missing.
    corrected : xarray.Dataset, optional
        Corrected conclusions (:func:`hackrisk.analysis.mitigation.correct`) of the same
        hypotheses, aligned by hypothesis id and configuration coordinates; their intervals are
        shown in the specification curve beside the LLM-only ones.
    lfdr : xarray.DataArray or bool, optional
        Local fdr of the human z-scores on ``hypothesis``
        (:func:`hackrisk.analysis.lfdr.human_lfdr`); default: computed when there are enough
        hypotheses (50), ``False``: none. The explorer shows ``P(human effect) = 1 − lfdr``.

    Returns
    -------
    dict
        numpy arrays in (hypothesis, model, prompt, temperature) order and the option lists.
    """
    _require(results, ["p_value", "conclusion", "human_p_value", "human_conclusion", "estimate"])
    res = _with_errors(results).transpose("hypothesis", *CONFIG_DIMS, ...)
    h = res.sizes["hypothesis"]
    annotated = (
        np.asarray(res["annotated"].values, dtype=bool)
        if "annotated" in res
        else np.isfinite(np.asarray(res["p_value"].values))
    )
    conclusion = np.asarray(res["conclusion"].values, dtype=np.int8)
    estimate = np.asarray(res["estimate"].values, dtype=np.float32)
    sign = np.sign(np.nan_to_num(estimate)).astype(np.int8)
    # where the stored conclusion is non-zero it carries the direction (also under zero rules)
    sign = np.where(conclusion != 0, conclusion, sign).astype(np.int8)
    human_concl = np.asarray(res["human_conclusion"].values, dtype=np.int8)
    human_est = np.asarray(res["human_estimate"].values, dtype=np.float32) if "human_estimate" in res else np.full(h, np.nan, np.float32)
    human_sign = np.where(human_concl != 0, human_concl, np.sign(np.nan_to_num(human_est))).astype(np.int8)
    log_or = res["log_or"].values if "log_or" in res else estimate
    se = res["se"].values if "se" in res else np.full(estimate.shape, np.nan)
    tasks_h = _coord_strings(res, "task", "all")
    grouping = _coord_strings(res, "grouping")
    cname = _coord_strings(res, "class_name")
    labels = [f"{g} · {c}".strip(" ·") or f"hypothesis {i}" for i, (g, c) in enumerate(zip(grouping, cname, strict=True))]
    tasks = list(dict.fromkeys(tasks_h))
    zero = np.asarray(res["zero_decided"].values, dtype=bool) if "zero_decided" in res else np.zeros(conclusion.shape, bool)
    human_zero = np.asarray(res["human_zero_decided"].values, dtype=bool) if "human_zero_decided" in res else np.zeros(h, bool)
    extra = {} if corrected is None else _corrected_arrays(res, corrected, float(res.attrs.get("alpha", 0.05)))
    return extra | {
        "alpha": float(res.attrs.get("alpha", 0.05)),
        "error": np.asarray(res["error"].values, dtype=np.int8),
        "p": np.asarray(res["p_value"].values, dtype=np.float64),
        "sign": sign,
        "conclusion": conclusion,
        "zero": zero,
        "annotated": annotated,
        "estimate": estimate,
        "log_or": np.asarray(log_or, dtype=np.float32),
        "se": np.asarray(se, dtype=np.float32),
        "human_p": np.asarray(res["human_p_value"].values, dtype=np.float64),
        "human_sign": human_sign,
        "human_conclusion": human_concl,
        "human_zero": human_zero,
        "human_estimate": human_est,
        "p_effect": _p_effect(res, lfdr),
        "human_log_or": np.asarray(res["human_log_or"].values, dtype=np.float32) if "human_log_or" in res else human_est,
        "human_se": np.asarray(res["human_se"].values, dtype=np.float32) if "human_se" in res else np.full(h, np.nan, np.float32),
        "task_of": np.array([tasks.index(t) for t in tasks_h], dtype=np.int32),
        "labels": labels,
        "tasks": tasks,
        "models": [str(v) for v in res["model"].values],
        "prompts": [str(v) for v in res["prompt"].values],
        "temperatures": [float(v) for v in res["temperature"].values],
        "attrs": dict(res.attrs),
    }


def _conclusions_at(p: np.ndarray, sign: np.ndarray, stored: np.ndarray, zero: np.ndarray, alpha: float) -> np.ndarray:
    """Conclusions at level ``alpha`` read from the p-values (zero-rule decisions kept as stored)."""
    out = np.where(p < alpha, sign, 0).astype(np.int8)
    return np.where(zero, stored, out)


def _error_codes(llm: np.ndarray, human: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """Error codes (docs/results.md) from LLM and human conclusions; ``human`` broadcasts."""
    err = np.where(
        human == 0,
        np.where(llm != 0, 1, 0),
        np.where(llm == 0, 2, np.where(llm != human, 3, 0)),
    ).astype(np.int8)
    return np.where(annotated, err, -1).astype(np.int8)


def _index(values: Sequence, chosen: Sequence | None, name: str) -> np.ndarray:
    if chosen is None:
        return np.arange(len(values))
    pos = {v: i for i, v in enumerate(values)}
    out = []
    for c in chosen:
        key = float(c) if isinstance(values[0], float) else str(c)
        if key not in pos:
            raise ValueError(f"{name}={c!r} is not in the results; choose from {list(values)}.")
        out.append(pos[key])
    return np.array(sorted(set(out)), dtype=np.intp)


def _bounds(estimate: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``estimate -/+ half``, NaN (no interval drawn) where either is not finite.

    A zero count gives an infinite log odds ratio and standard error (and a configuration a task
    lacks gives NaN): such a test has no Wald interval, and ``inf - inf`` must not be computed.
    """
    ok = np.isfinite(estimate) & np.isfinite(half)
    lower = np.full(np.shape(estimate), np.nan, dtype=np.float64)
    upper = lower.copy()
    np.subtract(estimate, half, out=lower, where=ok)
    np.add(estimate, half, out=upper, where=ok)
    return lower, upper


def _buf(a: np.ndarray, dtype) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def _rates(err: np.ndarray, human_nonnull: np.ndarray) -> dict[str, Any]:
    """Error rates of ``err`` (hypothesis first) as :func:`hackrisk.analysis.risk.risk` defines
    them within one task: per hypothesis the share over its annotated configurations, then the
    mean over hypotheses (Type I over human-null ones, Type II / S over human-significant ones,
    the pooled risk over all)."""
    h = err.shape[0]
    flat = err.reshape(h, -1)
    ann = (flat >= 0).sum(axis=1)
    counts = np.stack([(flat == k).sum(axis=1) for k in range(4)], axis=1)  # (h, 4)
    ok = ann > 0
    share = counts[ok] / ann[ok, None]
    nn = np.asarray(human_nonnull, bool).reshape(-1)[ok]

    def mean(x):
        return float(x.mean()) if x.size else None

    total = counts[ok].sum(axis=0)
    return {
        "n_cells": int(ann.sum()),
        "n_hypotheses": int(ok.sum()),
        "n_null": int((~nn).sum()),
        "n_significant": int(nn.sum()),
        "counts": {ERROR_NAMES[k]: int(total[k]) for k in range(4)},
        "type_i": mean(share[~nn, 1]),
        "type_ii": mean(share[nn, 2]),
        "type_s": mean(share[nn, 3]),
        "risk": mean(share[:, 1:].sum(axis=1)),
    }


def view_state(
    prep: dict[str, Any],
    *,
    task: str | None = None,
    models: Sequence[str] | None = None,
    prompts: Sequence[str] | None = None,
    temperatures: Sequence[float] | None = None,
    alpha: float | None = None,
    hypothesis: int | None = None,
) -> dict[str, Any]:
    """Everything the five views show for one selection.

    Parameters
    ----------
    prep
        Output of :func:`prepare`.
    task, models, prompts, temperatures
        The selection (``None`` = the first task / every model, prompt, temperature).
    alpha
        Significance level; default the level the tests were run at.
    hypothesis
        Global index of the chosen hypothesis; default the task's hypothesis with the highest
        risk in the selection.

    Returns
    -------
    dict
        JSON-able state; arrays (per hypothesis of the task, per selected configuration) are
        ``bytes`` of little-endian float32 / int8 / int16 (sent as binary buffers).
    """
    t0 = time.perf_counter()
    task = prep["tasks"][0] if task is None else str(task)
    if task not in prep["tasks"]:
        raise ValueError(f"task={task!r} is not in the results; choose from {prep['tasks']}.")
    alpha = prep["alpha"] if alpha is None else float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must lie in (0, 1).")
    hyp = np.flatnonzero(prep["task_of"] == prep["tasks"].index(task))
    mi = _index(prep["models"], models, "models")
    pi = _index(prep["prompts"], prompts, "prompts")
    ti = _index(prep["temperatures"], temperatures, "temperatures")
    empty = len(mi) == 0 or len(pi) == 0 or len(ti) == 0
    sel = np.ix_(hyp, mi, pi, ti)

    if np.isclose(alpha, prep["alpha"]):
        err = prep["error"][sel]
        llm = prep["conclusion"][sel]
        human = prep["human_conclusion"][hyp]
    else:
        llm = _conclusions_at(prep["p"][sel], prep["sign"][sel], prep["conclusion"][sel], prep["zero"][sel], alpha)
        human = _conclusions_at(prep["human_p"][hyp], prep["human_sign"][hyp], prep["human_conclusion"][hyp], prep["human_zero"][hyp], alpha)
        err = _error_codes(llm, human[:, None, None, None], prep["error"][sel] >= 0)
    nonnull = human != 0

    # per hypothesis: share of wrong conclusions over the selected configurations
    ann_h = (err >= 0).sum(axis=(1, 2, 3))
    wrong_h = (err > 0).sum(axis=(1, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        risk_h = np.where(ann_h > 0, wrong_h / np.maximum(ann_h, 1), np.nan)
    effect = prep["human_estimate"][hyp]
    # binned curve: equal-count bins of |human effect|
    curve = []
    ok = np.isfinite(effect) & (ann_h > 0)
    if ok.any():
        mag = np.abs(effect[ok])
        edges = np.unique(np.quantile(mag, np.linspace(0, 1, _N_BINS + 1)))
        which = np.clip(np.searchsorted(edges, mag, side="right") - 1, 0, max(len(edges) - 2, 0))
        rk = risk_h[ok]
        for b in range(max(len(edges) - 1, 1)):
            m = which == b
            if m.any():
                curve.append({"lo": float(edges[b]), "hi": float(edges[min(b + 1, len(edges) - 1)]),
                              "x": float(np.median(mag[m])), "risk": float(rk[m].mean()),
                              "n": int(m.sum())})

    # model x prompt heatmap (over selected temperatures and the task's hypotheses)
    ann_hmp = (err >= 0).sum(axis=3)
    share_hmp = np.where(ann_hmp > 0, (err > 0).sum(axis=3) / np.maximum(ann_hmp, 1), np.nan)
    n_hmp = (ann_hmp > 0).sum(axis=0)
    heat = np.where(n_hmp > 0, np.nansum(share_hmp, axis=0) / np.maximum(n_hmp, 1), np.nan)

    # the chosen hypothesis
    if hypothesis is None or int(hypothesis) not in set(hyp.tolist()):
        finite = np.where(np.isfinite(risk_h), risk_h, -1)
        hypothesis = int(hyp[int(np.argmax(finite))]) if len(hyp) else -1
    hypothesis = int(hypothesis)
    spec: dict[str, Any] = {"n": 0}
    hack: list[dict[str, Any]] = []
    n_hack = {"fabricate": 0, "hide": 0, "reverse": 0}
    if hypothesis >= 0 and not empty:
        k = int(np.flatnonzero(hyp == hypothesis)[0])
        mm, pp, tt = np.meshgrid(mi, pi, ti, indexing="ij")
        mm, pp, tt = mm.ravel(), pp.ravel(), tt.ravel()
        z = _z(alpha)
        lo = prep["log_or"][hypothesis, mm, pp, tt]
        half = z * prep["se"][hypothesis, mm, pp, tt]
        h_lo = float(prep["human_log_or"][hypothesis])
        h_half = z * float(prep["human_se"][hypothesis])
        scale_name = "log odds ratio (A vs B)" if np.isfinite(h_half) else "estimate"
        if "diff" in prep:  # corrected on the difference scale: show everything on that scale
            lo = prep["diff"][hypothesis, mm, pp, tt]
            half = prep["diff_half"][hypothesis, mm, pp, tt] * (z / _z(prep["alpha"]))
            if "human_diff" in prep:
                h_lo = float(prep["human_diff"][hypothesis])
                h_half = float(prep["human_diff_half"][hypothesis]) * (z / _z(prep["alpha"]))
            scale_name = "difference in shares (A − B)"
        e = err[k].ravel()
        keep = e >= 0
        order = np.argsort(np.where(np.isfinite(lo[keep]), lo[keep], np.inf), kind="stable")
        cfg = np.flatnonzero(keep)[order]
        lower, upper = _bounds(lo[cfg], half[cfg])
        spec = {
            "n": int(len(cfg)),
            "estimate": _buf(lo[cfg], "<f4"),
            "lower": _buf(lower, "<f4"),
            "upper": _buf(upper, "<f4"),
            "error": _buf(e[cfg], "i1"),
            "model": _buf(mm[cfg], "<i2"),
            "prompt": _buf(pp[cfg], "<i2"),
            "temperature": _buf(tt[cfg], "<i2"),
            "human": _finite_or_none(h_lo),
            "human_lower": _finite_or_none(h_lo - h_half),
            "human_upper": _finite_or_none(h_lo + h_half),
            "human_conclusion": int(human[k]),
            "scale": scale_name,
        }
        if "corr_estimate" in prep:  # the corrected interval of each shown configuration (at its own level)
            spec["corrected_method"] = prep["corr_method"]
            for key in ("estimate", "lower", "upper"):
                spec[f"corrected_{key}"] = _buf(prep[f"corr_{key}"][hypothesis, mm, pp, tt][cfg], "<f4")
        bad = np.flatnonzero(e > 0)
        pvals = prep["p"][hypothesis, mm[bad], pp[bad], tt[bad]]
        est = prep["estimate"][hypothesis, mm[bad], pp[bad], tt[bad]]
        rank = np.lexsort((pvals, e[bad]))
        for kind in n_hack:
            n_hack[kind] = int(np.count_nonzero(e[bad] == {"fabricate": 1, "hide": 2, "reverse": 3}[kind]))
        for j in rank[:_MAX_HACK_ROWS]:
            c = bad[j]
            hack.append({
                "kind": _HACK_KIND[int(e[c])],
                "model": prep["models"][mm[c]],
                "prompt": prep["prompts"][pp[c]],
                "temperature": prep["temperatures"][tt[c]],
                "estimate": _finite_or_none(float(est[j])),
                "p_value": _finite_or_none(float(pvals[j])),
                "conclusion": int(llm[k].ravel()[c]),
            })

    state = {
        "task": task,
        "alpha": alpha,
        "hypothesis": hypothesis,
        "hypothesis_label": prep["labels"][hypothesis] if hypothesis >= 0 else "",
        "human_estimate": _finite_or_none(float(prep["human_estimate"][hypothesis])) if hypothesis >= 0 else None,
        "human_p_effect": (_finite_or_none(float(prep["p_effect"][hypothesis]))
                           if hypothesis >= 0 and "p_effect" in prep else None),
        "human_conclusion": int(prep["human_conclusion"][hypothesis]) if hypothesis >= 0 and np.isclose(alpha, prep["alpha"]) else (int(human[int(np.flatnonzero(hyp == hypothesis)[0])]) if hypothesis >= 0 else 0),
        "n_configurations": int(len(mi) * len(pi) * len(ti)),
        "summary": _rates(err, nonnull),
        "points": {
            "n": int(len(hyp)),
            "hypothesis": _buf(hyp, "<i4"),
            "effect": _buf(effect, "<f4"),
            "risk": _buf(risk_h, "<f4"),
            "significant": _buf(nonnull, "i1"),
            **({"p_effect": _buf(prep["p_effect"][hyp], "<f4")} if "p_effect" in prep else {}),
        },
        "curve": curve,
        "heatmap": {"models": [prep["models"][i] for i in mi], "prompts": [prep["prompts"][i] for i in pi],
                    "risk": _buf(heat, "<f4")},
        "spec": spec,
        "hack": hack,
        "hack_counts": n_hack,
    }
    state["compute_ms"] = round((time.perf_counter() - t0) * 1000, 2)
    return state


@cache
def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def decode(state: dict[str, Any]) -> dict[str, Any]:
    """Copy of a :func:`view_state` with its byte buffers turned back into numpy arrays."""
    kinds = {"estimate": "<f4", "lower": "<f4", "upper": "<f4", "error": "i1", "model": "<i2",
             "prompt": "<i2", "temperature": "<i2", "hypothesis": "<i4", "effect": "<f4",
             "risk": "<f4", "significant": "i1"}

    def walk(obj, key=None):
        if isinstance(obj, dict):
            return {k: walk(v, k) for k, v in obj.items()}
        if isinstance(obj, (bytes, memoryview)):
            return np.frombuffer(bytes(obj), dtype=kinds.get(key, "<f4"))
        return obj

    return walk(state)


# --------------------------------------------------------------------------- the widget
@cache
def _explorer_class():
    import anywidget
    import traitlets as t

    root = frontend_dir()

    class Explorer(anywidget.AnyWidget):
        """The multiverse explorer; build it with :func:`hackrisk.widgets.explore`."""

        _esm = root / "explorer.js"
        _css = root / "explorer.css"
        options = t.Dict().tag(sync=True)
        task = t.Unicode("").tag(sync=True)
        models = t.List(t.Unicode()).tag(sync=True)
        prompts = t.List(t.Unicode()).tag(sync=True)
        temperatures = t.List(t.Float()).tag(sync=True)
        alpha = t.Float(0.05).tag(sync=True)
        hypothesis = t.Int(-1).tag(sync=True)
        view = t.Dict().tag(sync=True)
        error = t.Unicode("").tag(sync=True)

        def __init__(self, results: xr.Dataset, corrected: xr.Dataset | None = None, lfdr: Any = None,
                     **selection):
            prep = prepare(results, corrected, lfdr)
            super().__init__()
            self._prep = prep
            self._busy = False
            self._figure_cache: bytes | None = None
            self.options = {
                "tasks": prep["tasks"],
                "models": prep["models"],
                "prompts": prep["prompts"],
                "temperatures": prep["temperatures"],
                "labels": prep["labels"],
                "task_of": _buf(prep["task_of"], "<i4"),
                "alpha_levels": sorted({0.001, 0.01, 0.05, 0.1, prep["alpha"]}),
            }
            with self.hold_trait_notifications():
                self.task = str(selection.get("task") or prep["tasks"][0])
                self.models = list(selection.get("models") or prep["models"])
                self.prompts = list(selection.get("prompts") or prep["prompts"])
                self.temperatures = [float(v) for v in (selection.get("temperatures") or prep["temperatures"])]
                self.alpha = float(selection.get("alpha") or prep["alpha"])
                self.hypothesis = int(selection.get("hypothesis", -1))
            self._recompute()
            self.observe(self._on_change, names=["task", "models", "prompts", "temperatures", "alpha", "hypothesis"])

        def selection(self) -> dict[str, Any]:
            """The current selection as keyword arguments of :func:`view_state`."""
            return {"task": self.task, "models": list(self.models), "prompts": list(self.prompts),
                    "temperatures": list(self.temperatures), "alpha": self.alpha,
                    "hypothesis": self.hypothesis if self.hypothesis >= 0 else None}

        def _on_change(self, change) -> None:
            if self._busy:
                return
            if change["name"] == "task":
                self._set_quietly(hypothesis=-1)  # the chosen hypothesis belongs to another task
            self._recompute()

        def _set_quietly(self, **values) -> None:
            self._busy = True
            try:
                for k, v in values.items():
                    setattr(self, k, v)
            finally:
                self._busy = False

        def _recompute(self) -> None:
            self._figure_cache = None
            try:
                state = view_state(self._prep, **self.selection())
            except ValueError as exc:
                self.error = str(exc)
                return
            self.error = ""
            self.view = state
            if state["hypothesis"] != self.hypothesis:
                self._set_quietly(hypothesis=state["hypothesis"])

        def figure_png(self) -> bytes:
            """The five views of the current selection as one PNG (static fallback)."""
            if self._figure_cache is None:
                self._figure_cache = _static_png(self._prep, self.view)
            return self._figure_cache

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            if data is None:
                data = {}
            try:
                data["image/png"] = base64.b64encode(self.figure_png()).decode("ascii")
            except Exception:  # noqa: BLE001  (a fallback must never break the display)
                logger.exception("hackrisk explorer: static fallback figure failed")
            data["text/plain"] = repr(self)
            return bundle if isinstance(bundle, tuple) else data

        def __repr__(self) -> str:
            s = self.view.get("summary", {})
            risk = s.get("risk")
            return (f"<hackrisk Explorer task={self.task!r} models={len(self.models)} "
                    f"prompts={len(self.prompts)} temperatures={len(self.temperatures)} "
                    f"alpha={self.alpha} risk={'n/a' if risk is None else f'{risk:.3f}'}>")

    return Explorer


def __getattr__(name: str):
    if name == "Explorer":
        return _explorer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def explore(results: xr.Dataset, corrected: xr.Dataset | None = None, lfdr: Any = None, **selection) -> Any:
    """Open the multiverse explorer on a tests result.

    Parameters
    ----------
    results : xarray.Dataset
        Output of :func:`hackrisk.analysis.frequentist.test_hypotheses` (with or without the
        ``error`` codes of :func:`hackrisk.analysis.risk.classify_errors`).
    corrected : xarray.Dataset, optional
        :func:`hackrisk.analysis.mitigation.correct` of the same hypotheses: the specification
        curve then shows each configuration's corrected interval beside its LLM-only one.
    lfdr : xarray.DataArray or bool, optional
        Local fdr of the human z-scores (:func:`hackrisk.analysis.lfdr.human_lfdr`); default
        computed when there are at least 50 hypotheses. Each point of the risk curve and the
        specification curve's title then show ``P(human effect) = 1 − lfdr``.
    **selection
        Initial ``task``, ``models``, ``prompts``, ``temperatures``, ``alpha``, ``hypothesis``.

    Returns
    -------
    Explorer
        An anywidget; display it in JupyterLab 4 / Notebook 7.
    """
    return _explorer_class()(results, corrected, lfdr, **selection)


def _static_png(prep: dict[str, Any], view: dict[str, Any]) -> bytes:
    """Draw the explorer's views of ``view`` with matplotlib (fallback where widgets cannot render)."""
    import matplotlib

    from . import plots

    with matplotlib.rc_context({"figure.dpi": 80}):
        fig = plots._figure(figsize=(13, 8))
        axes = fig.subplots(2, 3)
        v = decode(view)
        plots._draw_error_bars(axes[0, 0], v["summary"])
        plots._draw_risk_curve(axes[0, 1], v["points"]["effect"], v["points"]["risk"], v["curve"])
        hm = v["heatmap"]
        plots._draw_heatmap(axes[0, 2], hm["risk"].reshape(len(hm["models"]), len(hm["prompts"])), hm["models"], hm["prompts"])
        sp = v["spec"]
        if sp.get("n"):
            plots._draw_spec_curve(axes[1, 0], sp["estimate"], sp["lower"], sp["upper"], sp["error"], sp["human"], sp["scale"])
            if "corrected_estimate" in sp:
                xs = np.arange(sp["n"]) + 0.3
                ce, cl, cu = sp["corrected_estimate"], sp["corrected_lower"], sp["corrected_upper"]
                axes[1, 0].errorbar(xs, ce, yerr=[ce - cl, cu - ce], fmt="s", ms=3, color="#0072B2", lw=1,
                                    label=f"corrected ({sp['corrected_method']})")
                axes[1, 0].legend(fontsize=7, loc="best")
        axes[1, 0].set_title(f"Specification curve: {view['hypothesis_label']}"[:60], fontsize=9)
        plots._draw_hack_counts(axes[1, 1], view["hack_counts"])
        axes[1, 2].axis("off")
        s = view["summary"]
        axes[1, 2].text(0, 0.9, f"task {view['task']}  alpha {view['alpha']}\n"
                        f"{view['n_configurations']} configurations, {s['n_cells']} tests\n"
                        f"risk {_fmt(s['risk'])}", va="top", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


# --------------------------------------------------------------------------- fake results
def _fake_results(
    *,
    n_hypotheses: int = 200,
    models: int | Sequence[str] = 4,
    prompts: int = 3,
    temperatures: Sequence[float] = (0.0, 0.5, 1.0),
    n_tasks: int = 2,
    alpha: float = 0.05,
    rng: int | np.random.Generator | None = 0,
) -> xr.Dataset:
    """A tests result in the ``docs/results.md`` format with random values and its error codes.

    For tests, demos and the explorer's speed check only: the numbers are not the output of a
    real analysis.
    """
    from scipy.stats import norm

    gen = np.random.default_rng(rng)
    if isinstance(models, int):
        models = [f"model{m}" for m in range(models)]
    m, p, t = len(models), prompts, len(temperatures)
    h = n_hypotheses
    n_a = gen.integers(40, 400, h)
    n_b = gen.integers(40, 400, h)
    truth = np.where(gen.random(h) < 0.5, 0.0, gen.uniform(-0.3, 0.3, h))
    human_est = truth + gen.normal(0, 0.03, h)
    quality = np.linspace(0.01, 0.08, m)[:, None, None] + gen.uniform(0, 0.02, (1, p, 1)) + 0.03 * np.asarray(temperatures)[None, None, :]
    bias = gen.normal(0, 1, (h, m, p, t)) * quality[None]
    est = human_est[:, None, None, None] * (1 - quality[None]) + bias
    base = 0.4
    se_d = np.sqrt(base * (1 - base) * (1 / n_a + 1 / n_b))
    z_h = human_est / se_d
    z = est / se_d[:, None, None, None]
    p_h = 2 * norm.sf(np.abs(z_h))
    p_l = 2 * norm.sf(np.abs(z))
    concl = np.where(p_l < alpha, np.sign(est), 0).astype(np.int8)
    h_concl = np.where(p_h < alpha, np.sign(human_est), 0).astype(np.int8)
    annotated = np.ones((h, m, p, t), bool)
    annotated[:, 0, 0, -1] = False  # one configuration not annotated yet
    est = np.where(annotated, est, np.nan)
    p_l = np.where(annotated, p_l, np.nan)
    concl = np.where(annotated, concl, 0).astype(np.int8)
    se_lor = se_d / (base * (1 - base))
    dims = ("hypothesis", *CONFIG_DIMS)
    task_names = np.array([f"task{i}" for i in np.arange(h) * n_tasks // h], dtype=object)
    groupings = np.array([["random:50/50", "length:median", "cov:x0", "cov:x1", "keyword:climate"][i % 5] + f"#{i}" for i in range(h)], dtype=object)
    ds = xr.Dataset(
        {
            "estimate": (dims, est.astype(np.float64)),
            "log_or": (dims, est / (base * (1 - base))),
            "se": (dims, np.broadcast_to(se_lor[:, None, None, None], est.shape).copy()),
            "z": (dims, z),
            "p_value": (dims, p_l),
            "conclusion": (dims, concl),
            "zero_decided": (dims, np.zeros(est.shape, bool)),
            "annotated": (dims, annotated),
            "human_estimate": ("hypothesis", human_est),
            "human_log_or": ("hypothesis", human_est / (base * (1 - base))),
            "human_se": ("hypothesis", se_lor),
            "human_p_value": ("hypothesis", p_h),
            "human_conclusion": ("hypothesis", h_concl),
            "human_n_a": ("hypothesis", n_a),
            "human_n_b": ("hypothesis", n_b),
        },
        coords={
            "hypothesis": np.arange(h),
            "model": np.array(models, dtype=object),
            "prompt": np.array([f"p{i}" for i in range(p)], dtype=object),
            "temperature": np.asarray(temperatures, dtype=float),
            "task": ("hypothesis", task_names),
            "grouping": ("hypothesis", groupings),
            "kind": ("hypothesis", np.array([g.split(":")[0] for g in groupings], dtype=object)),
            "class_code": ("hypothesis", np.zeros(h, np.int64)),
            "class_name": ("hypothesis", np.full(h, "class0", dtype=object)),
        },
        attrs={"method": "wald (fake)", "alpha": alpha, "zero_rule": "none"},
    )
    from .analysis.risk import classify_errors

    return classify_errors(ds)
