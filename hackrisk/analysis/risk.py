"""Errors and LLM hacking risk: how often, how and why LLM-based conclusions are wrong.

Every function takes the ``tests`` Dataset of :func:`hackrisk.analysis.frequentist.test_hypotheses`
(see ``docs/results.md``): LLM-side variables on ``(hypothesis, model, prompt, temperature)``,
human-side variables ``human_*`` on ``(hypothesis,)``, a ``task`` coordinate on ``hypothesis``.

Error types (per hypothesis and configuration, :func:`classify_errors`)
    ``0`` correct, ``1`` Type I (human null, LLM significant), ``2`` Type II (human significant,
    LLM null), ``3`` Type S (both significant, opposite signs), ``-1`` not annotated (the
    configuration lacks labels, or the human test is undefined). Type M is the exaggeration ratio
    ``|Δ_LLM| / |Δ_human|`` where both are significant with the same sign.

Aggregation (:func:`risk`), as in Baumann et al. (2025)
    1. per hypothesis, the mean over its annotated configurations (within a ``by`` slice);
    2. per task, the mean over its hypotheses that the rate is defined for;
    3. the mean over tasks.
    Type I is averaged over human-null hypotheses; Type II, Type S and Type M over
    human-significant ones; the pooled risk (share of wrong conclusions) over all hypotheses. The
    balanced risk is ``½·Type I + ½·(Type II + Type S)``. Type M is reported as the mean
    exaggeration ratio (``type_m_mean``; 1 = magnitudes right on average), the share of ratios
    above 1 (``type_m_share``) and the mean relative error ``|ratio − 1|`` (``type_m_relerr``).
    Bootstrap CIs resample hypotheses with replacement within each task.

What drives it
    :func:`risk_by_effect_size` (binned curves over ``|human effect|`` or the human p-value),
    :func:`error_regression` (logit of a wrong conclusion on the distance of the human p-value
    to ``alpha``), :func:`variance_explained` (ANOVA-style R² of task, model, prompt,
    temperature, annotation quality, effect size) and :func:`annotation_quality` (accuracy,
    macro-F1, Cohen's κ per configuration).

Intentional hacking
    :func:`hacking` (can some configuration fabricate, hide or reverse each finding?) and
    :func:`hacking_curve` (success as a function of how many models and prompts are searched).

Baselines (random conclusions, random labels, random noise at a given accuracy) live in
:mod:`hackrisk.analysis.baselines`.

The numpy work is vectorised over hypotheses and configurations; the only Python loops run over
tasks (a few dozen) or over the terms of a model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from ..cube import CONFIG_DIMS

__all__ = [
    "ERROR_CODES",
    "classify_errors",
    "risk",
    "risk_by_effect_size",
    "error_regression",
    "risk_on_model_features",
    "variance_explained",
    "annotation_quality",
    "hacking",
    "hacking_curve",
]

logger = logging.getLogger(__name__)

ERROR_CODES = {"not_annotated": -1, "correct": 0, "type_i": 1, "type_ii": 2, "type_s": 3}
_RISK_VARS = ("type_i", "type_ii", "type_s", "type_m_mean", "type_m_share", "type_m_relerr",
              "risk_pooled")
_CI_LABELS = np.array(["estimate", "lower", "upper"], dtype=object)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _require(tests: xr.Dataset, names: Sequence[str], func: str) -> None:
    if not isinstance(tests, xr.Dataset):
        raise ValueError(f"{func}: expected the tests Dataset of hackrisk.analysis.frequentist."
                         f"test_hypotheses, got {type(tests).__name__}.")
    missing = [n for n in names if n not in tests.variables]
    if missing:
        raise ValueError(f"{func}: the tests Dataset lacks {missing}. Fix: pass the output of "
                         "hackrisk.analysis.frequentist.test_hypotheses (see docs/results.md).")
    if "hypothesis" not in tests.dims:
        raise ValueError(f"{func}: the tests Dataset has no 'hypothesis' dimension.")
    if tests.sizes["hypothesis"] == 0 and func != "classify_errors":
        raise ValueError(f"{func}: the tests Dataset holds no hypothesis (an empty result), so there is no "
                         "risk to estimate. Fix: form hypotheses first (hackrisk.hypotheses.generate_hypotheses; "
                         "when it finds none, use more items or other groupings), and do not select them all away.")


def _config_dims(tests: xr.Dataset) -> list[str]:
    return [d for d in CONFIG_DIMS if d in tests["conclusion"].dims]


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return [str(b) for b in by]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=np.broadcast_to(den > 0, out.shape))
    return out


def _human_valid(tests: xr.Dataset) -> xr.DataArray:
    hc = tests["human_conclusion"]
    ok = hc.isin([-1, 0, 1])
    if "human_p_value" in tests:
        ok = ok & np.isfinite(tests["human_p_value"])
    return ok


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def classify_errors(tests: xr.Dataset) -> xr.Dataset:
    """Classify every (hypothesis, configuration) conclusion against the human one.

    Parameters
    ----------
    tests
        Output of ``test_hypotheses`` (needs ``conclusion``, ``human_conclusion``, ``estimate``,
        ``human_estimate``; ``annotated`` and ``human_p_value`` are honoured when present).

    Returns
    -------
    xarray.Dataset
        A copy of ``tests`` with ``error`` (int8: 0 correct, 1 Type I, 2 Type II, 3 Type S,
        -1 not annotated), ``type_m`` (``|estimate| / |human_estimate|`` where both are
        significant with the same sign, else NaN), ``effect_error`` (the signed error of the
        effect, ``Δ_LLM − Δ_human`` = ``estimate - human_estimate``, wherever the conclusion is
        classified, as the authors' ``effect_size_error``) and, when the tests carry the counts
        (``k_a``, ``n_a``, ``human_k_a``, ...), ``share_error_a`` / ``share_error_b`` (LLM minus
        human class share in group A / B, the authors' ``group_*_proportion_error``) on the
        LLM-side dims.
    """
    _require(tests, ["conclusion", "human_conclusion", "estimate", "human_estimate"],
             "classify_errors")
    c = tests["conclusion"]
    hc = tests["human_conclusion"]
    valid = _human_valid(tests) & c.isin([-1, 0, 1])
    if "annotated" in tests:
        valid = valid & tests["annotated"].astype(bool)
    err = xr.where(hc == 0, (c != 0).astype(np.int8),
                   xr.where(c == 0, np.int8(2), xr.where(c != hc, np.int8(3), np.int8(0))))
    err = xr.where(valid, err, np.int8(-1)).astype(np.int8).transpose(*c.dims)
    same = valid & (err == 0) & (hc != 0)
    ratio = np.abs(tests["estimate"]) / np.abs(tests["human_estimate"])
    type_m = xr.where(same & np.isfinite(ratio), ratio, np.nan).transpose(*c.dims)
    err.attrs = {"description": "0 correct, 1 Type I, 2 Type II, 3 Type S, -1 not annotated"}
    type_m.attrs = {"description": "|estimate| / |human_estimate| where both are significant "
                                   "with the same sign (Type M exaggeration ratio)"}
    extra = {}
    eff = (tests["estimate"] - tests["human_estimate"]).where(valid).transpose(*c.dims)
    eff.attrs = {"description": "signed effect error: estimate - human_estimate (Delta_LLM - Delta_human)"}
    extra["effect_error"] = eff
    if all(v in tests for v in ("k_a", "n_a", "k_b", "n_b", "human_k_a", "human_n_a", "human_k_b", "human_n_b")):
        for side in ("a", "b"):
            share = tests[f"k_{side}"] / tests[f"n_{side}"]
            hshare = tests[f"human_k_{side}"] / tests[f"human_n_{side}"].where(tests[f"human_n_{side}"] > 0)
            se = (share - hshare).where(valid).transpose(*c.dims)
            se.attrs = {"description": f"LLM minus human class share in group {side.upper()}"}
            extra[f"share_error_{side}"] = se
    return tests.assign(error=err, type_m=type_m, **extra)


# ---------------------------------------------------------------------------------------------
# risk
# ---------------------------------------------------------------------------------------------
def _slice_codes(tests: xr.Dataset, names: list[str], template: xr.DataArray,
                 func: str) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    """Code every position of ``template`` by the combination of the ``names`` values."""
    if not names:
        return np.zeros(template.size, dtype=np.int64), [], []
    codes, sizes, levels = [], [], []
    for name in names:
        vals = xr.broadcast(tests[name], template)[0].transpose(*template.dims).values.ravel()
        if pd.isna(pd.Series(vals, dtype=object)).any():
            raise ValueError(f"{func}: by={name!r} has missing values. Fix: fill them in.")
        code, uniq = pd.factorize(pd.Series(vals), sort=True)
        codes.append(code.astype(np.int64))
        sizes.append(len(uniq))
        levels.append(np.asarray(uniq))
    return np.ravel_multi_index(codes, sizes), sizes, levels


def _split_by(tests: xr.Dataset, by: list[str], cfg: list[str], func: str):
    cfg_by, hyp_by = [], []
    for name in by:
        if name not in tests.variables:
            raise ValueError(f"{func}: by={name!r} is neither a configuration dimension {cfg}, a "
                             "coordinate on them (e.g. 'family'), 'task' nor a hypothesis "
                             f"coordinate. Available: {sorted(map(str, tests.coords))}.")
        dims = set(tests[name].dims)
        if name == "hypothesis":
            raise ValueError(f"{func}: by='hypothesis' is per-hypothesis; use classify_errors().")
        if dims and dims <= set(cfg):
            cfg_by.append(name)
        elif dims == {"hypothesis"}:
            hyp_by.append(name)
        else:
            raise ValueError(f"{func}: by={name!r} has dims {tuple(dims)}; it must lie on the "
                             f"configuration dims {cfg} or on 'hypothesis'.")
    return cfg_by, hyp_by


def _hypothesis_rates(tests: xr.Dataset, cfg_codes: np.ndarray, n_slices: int):
    """Per-hypothesis rates over configurations in each configuration slice: dict of (H, S)."""
    cfg = _config_dims(tests)
    err = tests["error"].transpose("hypothesis", *cfg).values.reshape(tests.sizes["hypothesis"], -1)
    tm = tests["type_m"].transpose("hypothesis", *cfg).values.reshape(err.shape)
    onehot = np.zeros((err.shape[1], n_slices))
    onehot[np.arange(err.shape[1]), cfg_codes] = 1.0
    finite_m = np.isfinite(tm)
    tm0 = np.where(finite_m, tm, 0.0)
    stacked = np.concatenate([
        (err >= 0), (err == 1), (err == 2), (err == 3), (err > 0), finite_m,
        tm0, finite_m & (tm > 1), np.abs(tm0 - 1.0) * finite_m,
    ], axis=1).astype(np.float64).reshape(err.shape[0], 9, err.shape[1])
    sums = (stacked.reshape(-1, err.shape[1]) @ onehot).reshape(err.shape[0], 9, n_slices)
    n, n1, n2, n3, nw, nm, msum, mgt, mrel = sums.transpose(1, 0, 2)
    return {
        "type_i": _safe_div(n1, n), "type_ii": _safe_div(n2, n), "type_s": _safe_div(n3, n),
        "risk_pooled": _safe_div(nw, n), "type_m_mean": _safe_div(msum, nm),
        "type_m_share": _safe_div(mgt, nm), "type_m_relerr": _safe_div(mrel, nm),
    }, n


def _aggregate(values: np.ndarray, valid: np.ndarray, task_code: np.ndarray, n_tasks: int,
               n_boot: int, gen: np.random.Generator, weights: np.ndarray | None = None) -> np.ndarray:
    """Task-then-hypothesis means of ``values`` (H, Z) where ``valid``; bootstrap over hypotheses.

    ``weights`` (H,): weighted means over the hypotheses of a task. Returns (1 + n_boot, Z): row 0
    the estimate, then one row per replicate.
    """
    y = np.concatenate([np.where(valid, values, 0.0), valid.astype(np.float64)], axis=1)
    if weights is not None:
        y = y * weights[:, None]
    y32 = y.astype(np.float32)
    z = values.shape[1]
    # running sums over tasks of the task means (and of the tasks that have one): O(n_boot · z)
    total = np.zeros((1 + n_boot, z))
    count = np.zeros((1 + n_boot, z))
    acc = np.zeros((1 + n_boot, 2 * z))
    for t in range(n_tasks):
        idx = np.flatnonzero(task_code == t)
        n_t = idx.size
        if n_t == 0:
            continue
        acc[0] = y[idx].sum(0)
        if n_boot:
            # counts of each hypothesis in each replicate; float32 products (replicates only)
            draws = gen.integers(0, n_t, size=(n_boot, n_t))
            flat = (np.arange(n_boot)[:, None] * n_t + draws).ravel()
            weights = np.bincount(flat, minlength=n_boot * n_t).reshape(n_boot, n_t)
            acc[1:] = weights.astype(np.float32) @ y32[idx]
        task_mean = _safe_div(acc[:, :z], acc[:, z:])
        has = np.isfinite(task_mean)
        total += np.where(has, task_mean, 0.0)
        count += has
    return _safe_div(total, count)


def risk(
    tests: xr.Dataset,
    *,
    by: str | Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
    weights: xr.DataArray | np.ndarray | None = None,
) -> xr.Dataset:
    """LLM hacking risk: Type I, II, S, M and overall error rates, with bootstrap CIs.

    Parameters
    ----------
    tests
        Output of ``test_hypotheses`` (or of :func:`classify_errors`).
    by
        Slice the risk by configuration dimension(s) (``"model"``, ``"prompt"``,
        ``"temperature"``), by non-index coordinates on them (e.g. ``"family"``, a size class), by
        ``"task"`` or by any coordinate on ``hypothesis`` (e.g. ``"kind"``). Several names give
        the grid of their combinations (empty cells are NaN).
    n_boot
        Bootstrap replicates (hypotheses resampled with replacement within each task); 0 skips the
        CIs (``lower``/``upper`` are NaN).
    ci
        Coverage of the percentile intervals.
    rng
        Seed or generator of the bootstrap.
    weights
        Optional weight per hypothesis (a DataArray on ``hypothesis``, aligned by its coordinate,
        or an array in hypothesis order), e.g. :func:`hackrisk.analysis.lfdr.lfdr_weights`: the
        probability that the human conclusion is right about whether an effect exists, so that
        errors against doubtful human "truths" count less. The mean over hypotheses within a task
        becomes a weighted mean; hypotheses of weight 0 drop out.

    Returns
    -------
    xarray.Dataset
        Variables on ``(*by, ci)`` with ``ci`` = ``estimate, lower, upper``:

        ``type_i``
            share of significant LLM conclusions on human-null hypotheses;
        ``type_ii``, ``type_s``
            share of null / opposite-sign LLM conclusions on human-significant hypotheses;
        ``type_m_mean``
            mean exaggeration ratio ``|Δ_LLM|/|Δ_human|`` over same-sign significant conclusions
            (1 = unbiased magnitude);
        ``type_m_share``
            share of those conclusions whose ratio exceeds 1 (the effect is exaggerated);
        ``type_m_relerr``
            mean relative error of the magnitude, ``mean |ratio − 1|``;
        ``risk_pooled``
            share of all conclusions that are wrong (Type I, II or S);
        ``risk_balanced``
            ``½·type_i + ½·(type_ii + type_s)``.

        Counts without ``ci``: ``n_null``, ``n_significant`` (hypotheses contributing) and
        ``n_conclusions`` (annotated conclusions). Each rate is a mean over configurations, then
        over hypotheses within a task, then over tasks.
    """
    _require(tests, ["conclusion", "human_conclusion", "estimate", "human_estimate", "task"], "risk")
    if not 0 < ci < 1:
        raise ValueError(f"risk: ci={ci} must lie in (0, 1), e.g. 0.95.")
    if n_boot < 0:
        raise ValueError(f"risk: n_boot={n_boot} must be >= 0.")
    if "error" not in tests or "type_m" not in tests:
        tests = classify_errors(tests)
    cfg = _config_dims(tests)
    by_list = _as_list(by)
    cfg_by, hyp_by = _split_by(tests, by_list, cfg, "risk")
    template_cfg = tests["error"].isel(hypothesis=0, drop=True).transpose(*cfg)
    cfg_codes, cfg_sizes, cfg_levels = _slice_codes(tests, cfg_by, template_cfg, "risk")
    n_s = int(np.prod(cfg_sizes)) if cfg_sizes else 1
    hyp_template = tests["human_conclusion"]
    hyp_codes, hyp_sizes, hyp_levels = _slice_codes(tests, hyp_by, hyp_template, "risk")
    n_r = int(np.prod(hyp_sizes)) if hyp_sizes else 1

    rates, n_valid = _hypothesis_rates(tests, cfg_codes, n_s)
    hc = tests["human_conclusion"].values
    hvalid = _human_valid(tests).values
    null = hvalid & (hc == 0)
    sig = hvalid & (hc != 0)
    subsets = {"type_i": null, "type_ii": sig, "type_s": sig, "type_m_mean": sig,
               "type_m_share": sig, "type_m_relerr": sig, "risk_pooled": hvalid}
    n_h = hc.shape[0]
    in_r = np.zeros((n_h, n_r), dtype=bool)
    in_r[np.arange(n_h), hyp_codes] = True
    vals, masks = [], []
    for name in _RISK_VARS:
        v = rates[name]
        ok = np.isfinite(v) & subsets[name][:, None]
        vals.append(np.broadcast_to(v[:, None, :], (n_h, n_r, n_s)))
        masks.append(ok[:, None, :] & in_r[:, :, None])
    values = np.stack(vals, axis=1).reshape(n_h, -1)
    valid = np.stack(masks, axis=1).reshape(n_h, -1)
    task_code, tasks = pd.factorize(pd.Series(tests["task"].values))
    gen = np.random.default_rng(rng)
    w = None
    if weights is not None:
        if isinstance(weights, xr.DataArray):
            w = weights.sel(hypothesis=tests["hypothesis"]).values.astype(np.float64)
        else:
            w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (n_h,) or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"risk: weights must be {n_h} finite non-negative numbers, one per hypothesis "
                             "(NaN: use .fillna(0)). Fix: pass lfdr_weights(tests).")
    agg = _aggregate(values, valid, task_code, len(tasks), n_boot, gen, w)
    agg = agg.reshape(1 + n_boot, len(_RISK_VARS), n_r, n_s)
    out = {name: agg[:, q] for q, name in enumerate(_RISK_VARS)}
    out["risk_balanced"] = 0.5 * out["type_i"] + 0.5 * (out["type_ii"] + out["type_s"])

    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    by_dims = [*hyp_by, *cfg_by]
    shape = [*hyp_sizes, *cfg_sizes]
    coords: dict[str, Any] = {"ci": _CI_LABELS}
    for name, lev in zip([*hyp_by, *cfg_by], [*hyp_levels, *cfg_levels]):
        coords[name] = lev
    data_vars = {}
    for name, arr in out.items():
        if n_boot:
            with np.errstate(invalid="ignore"), _quiet_nan():
                lo = np.nanquantile(arr[1:], lo_q, axis=0)
                hi = np.nanquantile(arr[1:], hi_q, axis=0)
        else:
            lo = hi = np.full(arr.shape[1:], np.nan)
        stacked = np.stack([arr[0], lo, hi], axis=-1).reshape(*shape, 3)
        data_vars[name] = ((*by_dims, "ci"), stacked)
    counts = {
        "n_null": (null[:, None] & in_r).sum(0)[:, None] * np.ones(n_s),
        "n_significant": (sig[:, None] & in_r).sum(0)[:, None] * np.ones(n_s),
        "n_conclusions": np.einsum("hr,hs->rs", in_r & hvalid[:, None], n_valid),
    }
    for name, arr in counts.items():
        data_vars[name] = (tuple(by_dims), arr.astype(np.int64).reshape(shape))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({
        "method": "hierarchical mean: configurations -> hypotheses within task -> tasks",
        "ci_kind": "percentile bootstrap, hypotheses resampled within tasks",
        "ci_prob": ci, "n_boot": int(n_boot), "by": ",".join(by_list),
        "alpha": tests.attrs.get("alpha", np.nan),
        "weighted": int(w is not None),
    })
    return ds


class _quiet_nan:
    """Silence 'All-NaN slice' warnings of nanquantile for slices without any replicate."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.filterwarnings("ignore", message="All-NaN slice")
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


# ---------------------------------------------------------------------------------------------
# what drives it
# ---------------------------------------------------------------------------------------------
_P_EDGES = (0.0, 1e-4, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0)


def risk_by_effect_size(
    tests: xr.Dataset,
    *,
    bins: int | Sequence[float] | None = None,
    by: str = "estimate",
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
) -> xr.Dataset:
    """Error rates as a function of the human effect size or the human p-value.

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``.
    bins
        An int: that many quantile bins of the binning variable; a sequence: the bin edges.
        Default: 6 quantile bins of ``|human_estimate|``, or the p-value edges
        ``0, 1e-4, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1``.
    by
        ``"estimate"`` bins hypotheses by ``|human_estimate|`` (the absolute human difference in
        proportions); ``"p_value"`` by ``human_p_value``.
    n_boot, ci, rng
        As in :func:`risk`.

    Returns
    -------
    xarray.Dataset
        :func:`risk`'s variables on ``(bin, ci)`` with coordinates ``bin_lower``, ``bin_upper``,
        ``bin_mid`` and ``n_hypotheses`` per bin. Bins are closed on the right (the first also
        on the left).
    """
    if by not in ("estimate", "p_value"):
        raise ValueError(f"risk_by_effect_size: by={by!r}; use 'estimate' or 'p_value'.")
    var = "human_estimate" if by == "estimate" else "human_p_value"
    _require(tests, [var, "conclusion", "human_conclusion", "task"], "risk_by_effect_size")
    x = tests[var].values.astype(np.float64)
    if by == "estimate":
        x = np.abs(x)
    ok = np.isfinite(x)
    if not ok.any():
        raise ValueError(f"risk_by_effect_size: {var} is NaN for every hypothesis.")
    if bins is None:
        bins = 6 if by == "estimate" else _P_EDGES
    if np.ndim(bins) == 0:
        nb = int(bins)
        if nb < 1:
            raise ValueError(f"risk_by_effect_size: bins={bins} must be >= 1.")
        edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, nb + 1)))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"risk_by_effect_size: bins={list(bins)} must be increasing edges.")
    if edges.size < 2:
        edges = np.array([edges[0], edges[0]])
    code = np.searchsorted(edges, x, side="left") - 1
    code = np.where(x == edges[0], 0, code)
    inside = ok & (code >= 0) & (code < edges.size - 1)
    if not inside.any():
        raise ValueError(f"risk_by_effect_size: no hypothesis falls inside the bins {edges}.")
    sub = tests.isel(hypothesis=np.flatnonzero(inside))
    sub = sub.assign_coords(effect_bin=("hypothesis", code[inside]))
    res = risk(sub, by="effect_bin", n_boot=n_boot, ci=ci, rng=rng)
    present = res["effect_bin"].values.astype(int)
    res = res.rename({"effect_bin": "bin"})
    n_hyp = np.bincount(code[inside], minlength=edges.size - 1)[present]
    res = res.assign_coords(
        bin_lower=("bin", edges[present]), bin_upper=("bin", edges[present + 1]),
        bin_mid=("bin", 0.5 * (edges[present] + edges[present + 1])),
    )
    res["n_hypotheses"] = ("bin", n_hyp)
    res.attrs.update({"binned_by": f"|{var}|" if by == "estimate" else var,
                      "bin_edges": edges.tolist()})
    return res


def _irls_binomial(x: np.ndarray, k: np.ndarray, n: np.ndarray, *, max_iter: int = 100,
                   tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, bool]:
    """Logistic regression on binomial counts by IRLS; returns (beta, fitted p, converged)."""
    beta = np.zeros(x.shape[1])
    p_obs = (k + 0.5) / (n + 1.0)
    eta = special.logit(p_obs)
    beta = np.linalg.lstsq(x * np.sqrt(n)[:, None], eta * np.sqrt(n), rcond=None)[0]
    converged = False
    for _ in range(max_iter):
        eta = x @ beta
        p = special.expit(eta)
        w = n * p * (1 - p)
        z = eta + (k - n * p) / np.maximum(w, 1e-300)
        sw = np.sqrt(w)
        new = np.linalg.lstsq(x * sw[:, None], z * sw, rcond=None)[0]
        if np.max(np.abs(new - beta)) < tol * (1 + np.max(np.abs(beta))):
            beta = new
            converged = True
            break
        beta = new
    return beta, special.expit(x @ beta), converged


def error_regression(
    tests: xr.Dataset,
    *,
    alpha: float | None = None,
    by_side: bool = False,
    cov_type: str = "cluster",
    ci: float = 0.95,
) -> xr.Dataset:
    """Logistic regression of a wrong conclusion on the human p-value's distance to ``alpha``.

    The unit is the hypothesis: its annotated configurations give a binomial count of wrong
    conclusions (Type I, II or S), modelled as ``logit P(wrong) = b0 + b1 · d`` with
    ``d = |log10 p_human − log10 alpha|`` (orders of magnitude between the human p-value and the
    threshold). With ``by_side=True`` the model is
    ``b0 + b1·d + b2·s + b3·d·s`` with ``s = 1`` for human-significant hypotheses, i.e. separate
    lines for would-be Type I and Type II/S errors.

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``.
    alpha
        Threshold; default ``tests.attrs["alpha"]`` (else 0.05).
    by_side
        Fit separate intercepts and slopes for human-null and human-significant hypotheses.
    cov_type
        ``"cluster"`` (default): sandwich SEs clustered by hypothesis (configurations of one
        hypothesis share its items, so their errors are not independent); ``"task"``: clustered by
        task; ``"binomial"``: the model-based SEs (as ``statsmodels`` GLM Binomial).
    ci
        Coverage of the Wald intervals.

    Returns
    -------
    xarray.Dataset
        On ``term``: ``coef``, ``se``, ``z``, ``p_value``, ``lower``, ``upper``, ``odds_ratio``.
        attrs: ``n_hypotheses``, ``n_conclusions``, ``converged``, ``cov_type``, ``alpha``.
    """
    from scipy import stats

    _require(tests, ["human_p_value", "conclusion", "human_conclusion", "task"], "error_regression")
    if cov_type not in ("cluster", "task", "binomial"):
        raise ValueError(f"error_regression: cov_type={cov_type!r}; use 'cluster', 'task' or 'binomial'.")
    if alpha is None:
        alpha = float(tests.attrs.get("alpha", 0.05))
    if "error" not in tests:
        tests = classify_errors(tests)
    cfg = _config_dims(tests)
    err = tests["error"].transpose("hypothesis", *cfg).values.reshape(tests.sizes["hypothesis"], -1)
    n = (err >= 0).sum(1).astype(np.float64)
    k = (err > 0).sum(1).astype(np.float64)
    p = tests["human_p_value"].values.astype(np.float64)
    keep = (n > 0) & np.isfinite(p)
    if keep.sum() < 3:
        raise ValueError("error_regression: fewer than 3 hypotheses have both a human p-value and "
                         "annotated configurations.")
    d = np.abs(np.log10(np.clip(p[keep], 1e-300, None)) - np.log10(alpha))
    s = (tests["human_conclusion"].values[keep] != 0).astype(np.float64)
    n, k = n[keep], k[keep]
    if k.sum() == 0 or (k == n).all():
        raise ValueError("error_regression: every conclusion is " + ("right" if k.sum() == 0 else "wrong")
                         + ", so the logistic regression has no finite solution. Nothing to model.")
    if by_side:
        terms = ["intercept", "distance", "significant", "distance:significant"]
        x = np.column_stack([np.ones_like(d), d, s, d * s])
    else:
        terms = ["intercept", "distance"]
        x = np.column_stack([np.ones_like(d), d])
    beta, fit, converged = _irls_binomial(x, k, n)
    if not converged:
        logger.warning("error_regression: IRLS did not converge (separation?); check the coefs.")
    w = n * fit * (1 - fit)
    bread = np.linalg.pinv(x.T @ (x * w[:, None]))
    if cov_type == "binomial":
        cov = bread
    else:
        scores = x * (k - n * fit)[:, None]
        if cov_type == "task":
            tcode = pd.factorize(pd.Series(tests["task"].values[keep]))[0]
            g = np.zeros((tcode.max() + 1, x.shape[1]))
            np.add.at(g, tcode, scores)
            scores = g
        cov = bread @ (scores.T @ scores) @ bread
    se = np.sqrt(np.diag(cov))
    z = beta / se
    q = stats.norm.ppf(0.5 + ci / 2)
    ds = xr.Dataset(
        {"coef": ("term", beta), "se": ("term", se), "z": ("term", z),
         "p_value": ("term", 2 * stats.norm.sf(np.abs(z))),
         "lower": ("term", beta - q * se), "upper": ("term", beta + q * se),
         "odds_ratio": ("term", np.exp(beta))},
        coords={"term": np.array(terms, dtype=object)},
    )
    ds.attrs.update({"method": "binomial logit of wrong conclusions on |log10 p_human - log10 alpha|",
                     "n_hypotheses": int(keep.sum()), "n_conclusions": int(n.sum()),
                     "converged": bool(converged), "cov_type": cov_type, "alpha": alpha,
                     "ci_prob": ci})
    return ds


def risk_on_model_features(
    tests: xr.Dataset,
    features: str | Sequence[str],
    *,
    error: str = "any",
    standardize: bool = False,
    ci: float = 0.95,
) -> xr.Dataset:
    """Logistic regression of a wrong conclusion on numeric model features (e.g. size, a benchmark).

    The features are numeric coordinates on ``model`` (columns of the ``models=`` table given to
    :func:`hackrisk.make_cube`, e.g. parameter count or a benchmark score; ``log_params`` etc. can be
    added with ``tests.assign_coords``). The unit is a (hypothesis, model) pair: its annotated
    configurations (prompts x temperatures) give a binomial count of wrong conclusions, modelled as
    ``logit P(wrong) = b0 + sum_j b_j feature_j``. Standard errors are clustered by hypothesis (a
    hypothesis' items are shared by every model, so its errors are not independent).

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``, carrying the model coordinates.
    features
        Name(s) of numeric coordinates on ``model``.
    error
        ``"any"`` (Type I, II or S; every hypothesis), ``"type_i"`` (human-null hypotheses only),
        ``"type_ii"`` / ``"type_s"`` (human-significant hypotheses only).
    standardize
        Centre and scale each feature (coefficients per standard deviation).
    ci
        Coverage of the Wald intervals.

    Returns
    -------
    xarray.Dataset
        On ``term`` (``intercept`` and the features): ``coef``, ``se``, ``z``, ``p_value``,
        ``lower``, ``upper``, ``odds_ratio``; ``risk`` and ``n_conclusions`` on ``model`` (the
        observed rate per model). attrs: ``n_hypotheses``, ``n_models``, ``converged``, ``error``.
    """
    from scipy import stats

    _require(tests, ["conclusion", "human_conclusion", "estimate", "human_estimate"], "risk_on_model_features")
    feats = [features] if isinstance(features, str) else [str(f) for f in features]
    for f in feats:
        if f not in tests.coords or tests[f].dims != ("model",) or not np.issubdtype(tests[f].dtype, np.number):
            raise ValueError(f"risk_on_model_features: {f!r} is not a numeric coordinate on 'model'. Fix: "
                             "give make_cube a models= table with that column, or "
                             "tests.assign_coords(name=('model', values)).")
    codes = {"any": None, "type_i": 1, "type_ii": 2, "type_s": 3}
    if error not in codes:
        raise ValueError(f"risk_on_model_features: error={error!r}; use one of {list(codes)}.")
    if "error" not in tests:
        tests = classify_errors(tests)
    err = tests["error"].transpose("hypothesis", "model", ...).values
    err = err.reshape(err.shape[0], err.shape[1], -1)
    hc = tests["human_conclusion"].values
    keep_h = np.ones(hc.shape, dtype=bool)
    if error == "type_i":
        keep_h = hc == 0
    elif error in ("type_ii", "type_s"):
        keep_h = hc != 0
    err = err[keep_h]
    n = (err >= 0).sum(-1).astype(np.float64)  # (H, M)
    k = ((err > 0) if codes[error] is None else (err == codes[error])).sum(-1).astype(np.float64)
    fx = np.column_stack([tests[f].values.astype(np.float64) for f in feats])  # (M, q)
    if not np.isfinite(fx).all():
        raise ValueError("risk_on_model_features: a feature is missing (NaN) for some model. Fix: fill it or "
                         "select the models that have it (tests.sel(model=...)).")
    if standardize:
        sd = fx.std(0)
        fx = (fx - fx.mean(0)) / np.where(sd > 0, sd, 1.0)
    h_idx, m_idx = np.nonzero(n > 0)
    if np.unique(m_idx).size < len(feats) + 1:
        raise ValueError("risk_on_model_features: fewer models with annotated conclusions than terms.")
    x = np.column_stack([np.ones(h_idx.size), fx[m_idx]])
    kk, nn = k[h_idx, m_idx], n[h_idx, m_idx]
    if kk.sum() == 0 or (kk == nn).all():
        raise ValueError("risk_on_model_features: every conclusion is " + ("right" if kk.sum() == 0 else "wrong")
                         + ", so the logistic regression has no finite solution.")
    beta, fit, converged = _irls_binomial(x, kk, nn)
    w = nn * fit * (1 - fit)
    bread = np.linalg.pinv(x.T @ (x * w[:, None]))
    scores = x * (kk - nn * fit)[:, None]
    g = np.zeros((err.shape[0], x.shape[1]))
    np.add.at(g, h_idx, scores)
    cov = bread @ (g.T @ g) @ bread
    se = np.sqrt(np.diag(cov))
    z = beta / se
    q = stats.norm.ppf(0.5 + ci / 2)
    terms = np.array(["intercept", *feats], dtype=object)
    per_model_n = n.sum(0)
    ds = xr.Dataset(
        {"coef": ("term", beta), "se": ("term", se), "z": ("term", z),
         "p_value": ("term", 2 * stats.norm.sf(np.abs(z))),
         "lower": ("term", beta - q * se), "upper": ("term", beta + q * se), "odds_ratio": ("term", np.exp(beta)),
         "risk": ("model", _safe_div(k.sum(0), per_model_n)),
         "n_conclusions": ("model", per_model_n.astype(np.int64))},
        coords={"term": terms, "model": tests["model"].values} | {f: ("model", tests[f].values) for f in feats},
    )
    ds.attrs.update({"method": "binomial logit of wrong conclusions per (hypothesis, model) on model features, "
                               "SE clustered by hypothesis",
                     "n_hypotheses": int(np.unique(h_idx).size), "n_models": int(np.unique(m_idx).size),
                     "converged": bool(converged), "error": error, "standardize": int(standardize), "ci_prob": ci})
    return ds


def annotation_quality(cube: xr.Dataset, *, conventions: str = "hackrisk") -> xr.Dataset:
    """Accuracy, macro- and weighted F1 and Cohen's κ of every configuration against the human labels.

    Items without a human label (``truth == -1``) and labels not yet annotated (``-1``) are left
    out; answers outside the label set (``-2``) count as wrong (an extra predicted category).
    With a ``sample`` dimension all samples are pooled.

    Parameters
    ----------
    cube
        A label cube.
    conventions
        ``"hackrisk"`` (default) or ``"paper"``. The authors score the unparseable answer
        (``"na"``) as one more label with ``sklearn.metrics.f1_score``, so under ``"paper"`` it
        enters the macro average as a class (F1 0: never a human label) wherever a configuration
        gave one; and a configuration with more than 1 % unparseable answers is left out
        (metrics NaN, ``unparseable_excluded`` True), as the authors' reliability tables do.

    Returns
    -------
    xarray.Dataset
        On ``(task, model, prompt, temperature)``: ``accuracy``, ``macro_f1`` (mean F1 over the
        task's classes that occur in the human or the LLM labels, as
        ``sklearn.metrics.f1_score(average="macro")`` over those classes), ``weighted_f1`` (F1 per
        class weighted by its number of human labels, ``average="weighted"``; the outside
        answers have no human label, so weight 0), ``kappa`` (Cohen's κ,
        the outside answers being one more category), ``outside_rate`` and ``n_items``; and
        ``confusion`` on ``(..., true_class, pred_class)`` with ``pred_class = -2`` for outside
        answers.
    """
    from .. import conventions as _conv
    from ..cube import validate_cube

    _conv.check_conventions(conventions, "annotation_quality")
    validate_cube(cube, check_values=False)
    lab = cube["label"]
    if "sample" in lab.dims:
        lab = lab.stack(_obs=("item", "sample"))
        truth = cube["truth"].broadcast_like(cube["label"].isel(model=0, prompt=0, temperature=0))
        truth = truth.stack(_obs=("item", "sample")).transpose("task", "_obs").values
        lab = lab.transpose("task", *CONFIG_DIMS, "_obs").values
    else:
        lab = lab.transpose("task", *CONFIG_DIMS, "item").values
        truth = cube["truth"].transpose("task", "item").values
    n_task = lab.shape[0]
    cfg_shape = lab.shape[1:4]
    n_cfg = int(np.prod(cfg_shape))
    k_max = cube.sizes["class"]
    kc = np.asarray((cube["class_name"] != "").sum("class").values)
    conf = np.zeros((n_task, n_cfg, k_max, k_max + 1), dtype=np.int64)
    for t in range(n_task):
        k = int(kc[t])
        y = truth[t].astype(np.int64)
        lt = lab[t].reshape(n_cfg, -1).astype(np.int64)
        ok = (y >= 0)[None, :] & (lt != -1)
        pred = np.where(lt == -2, k, lt)
        flat = (np.arange(n_cfg)[:, None] * (k * (k + 1)) + y[None, :] * (k + 1) + pred)[ok]
        cnt = np.bincount(flat, minlength=n_cfg * k * (k + 1)).reshape(n_cfg, k, k + 1)
        conf[t, :, :k, :k] = cnt[:, :, :k]
        conf[t, :, :k, k_max] = cnt[:, :, k]
    conf = conf.reshape(n_task, *cfg_shape, k_max, k_max + 1)
    n = conf.sum((-1, -2)).astype(np.float64)
    tp = np.diagonal(conf[..., :k_max], axis1=-2, axis2=-1).astype(np.float64)
    row = conf.sum(-1).astype(np.float64)  # true counts
    col = conf.sum(-2).astype(np.float64)  # predicted counts (incl. outside at k_max)
    acc = _safe_div(tp.sum(-1), n)
    f1 = _safe_div(2 * tp, row + col[..., :k_max])
    present = (row + col[..., :k_max]) > 0
    n_present = present.sum(-1).astype(np.float64)
    if conventions == "paper":  # sklearn sees "na" as one more label, F1 0
        n_present = n_present + (col[..., k_max] > 0)
    macro = _safe_div(np.where(present, f1, 0.0).sum(-1), n_present)
    weighted = _safe_div((np.where(present, f1, 0.0) * row).sum(-1), row.sum(-1))
    pe = _safe_div((row * col[..., :k_max]).sum(-1), n**2)
    kappa = np.where(n > 0, _safe_div(acc - pe, 1 - pe), np.nan)
    kappa = np.where((n > 0) & (pe >= 1) & (acc >= 1), np.nan, kappa)
    outside = _safe_div(col[..., k_max], n)
    dims = ("task", *CONFIG_DIMS)
    pred_codes = np.concatenate([np.arange(k_max), [-2]])
    data = {"accuracy": acc, "macro_f1": macro, "weighted_f1": weighted, "kappa": kappa}
    excluded = None
    if conventions == "paper":
        excluded = outside > _conv.PAPER_MAX_UNPARSEABLE
        data = {k: np.where(excluded, np.nan, v) for k, v in data.items()}
    acc, macro, weighted, kappa = data["accuracy"], data["macro_f1"], data["weighted_f1"], data["kappa"]
    ds = xr.Dataset(
        {"accuracy": (dims, acc), "macro_f1": (dims, macro), "weighted_f1": (dims, weighted), "kappa": (dims, kappa),
         "outside_rate": (dims, outside), "n_items": (dims, n.astype(np.int64)),
         "confusion": ((*dims, "true_class", "pred_class"), conf)},
        coords={d: cube[d].values for d in dims} | {"true_class": np.arange(k_max),
                                                     "pred_class": pred_codes},
    )
    for name, coord in cube["model"].coords.items():
        if name != "model" and coord.dims == ("model",):
            ds = ds.assign_coords({name: ("model", coord.values)})
    if excluded is not None:
        ds["unparseable_excluded"] = (dims, excluded)
    ds.attrs["method"] = "confusion counts vs human labels; -2 answers count as wrong"
    ds.attrs["conventions"] = conventions
    return ds


_VE_TERMS = ("task", "model", "prompt", "temperature", "quality", "effect_size")


def variance_explained(
    tests: xr.Dataset,
    cube: xr.Dataset | None = None,
    *,
    terms: Sequence[str] = _VE_TERMS,
    quality: str = "macro_f1",
    n_effect_bins: int = 10,
) -> xr.Dataset:
    """Share of the variance of the error indicator explained by each driver (ANOVA-style R²).

    The response is ``1[wrong]`` over every annotated (hypothesis, configuration); the linear
    probability model is fitted by least squares with an intercept and these terms:

    ``task``, ``model``, ``temperature``
        categorical (one dummy per level but the first);
    ``prompt``
        categorical *within task* (a prompt id names a different paraphrase in each task);
    ``quality``
        the configuration's annotation quality on that task (``annotation_quality(cube)[quality]``),
        linear;
    ``effect_size``
        ``|human_estimate|`` in ``n_effect_bins`` quantile bins, categorical (the error rate is
        far from linear in the effect);
    ``p_distance``
        ``|log10 p_human − log10 alpha|`` in the same kind of bins (optional).

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``.
    cube
        The label cube, or its :func:`annotation_quality` result (e.g.
        :func:`hackrisk.analysis.crosstask.task_quality` of several tasks); needed only for
        ``quality``.
    terms
        Terms in the order of the sequential decomposition.
    quality
        Which column of :func:`annotation_quality` measures quality.
    n_effect_bins
        Quantile bins for ``effect_size`` / ``p_distance``.

    Returns
    -------
    xarray.Dataset
        On ``term``: ``r2_sequential`` (R² gained when the term enters after the ones before it;
        they sum to the full model's R²), ``r2_alone`` (the term alone), ``r2_unique`` (R² lost
        when the term is dropped from the full model), ``df`` (columns). attrs ``r2_total``,
        ``n_obs``.
    """
    _require(tests, ["conclusion", "human_conclusion", "task"], "variance_explained")
    terms = list(terms)
    bad = [t for t in terms if t not in (*_VE_TERMS, "p_distance")]
    if bad or not terms:
        raise ValueError(f"variance_explained: unknown terms {bad}; choose from "
                         f"{[*_VE_TERMS, 'p_distance']}.")
    if "quality" in terms and cube is None:
        raise ValueError("variance_explained: the 'quality' term needs the cube. Fix: pass "
                         "variance_explained(tests, cube) or drop 'quality' from terms.")
    if "error" not in tests:
        tests = classify_errors(tests)
    cfg = list(CONFIG_DIMS)
    if _config_dims(tests) != cfg:
        raise ValueError(f"variance_explained: tests must have the dims {cfg}.")
    err = tests["error"].transpose("hypothesis", *cfg).values
    h_idx, m_idx, p_idx, t_idx = np.nonzero(err >= 0)
    if h_idx.size < 3:
        raise ValueError("variance_explained: fewer than 3 annotated conclusions.")
    y = (err[h_idx, m_idx, p_idx, t_idx] > 0).astype(np.float64)
    task_code, task_levels = pd.factorize(pd.Series(tests["task"].values), sort=True)
    tcode = task_code[h_idx]

    def dummies(code: np.ndarray) -> np.ndarray:
        _, inv = np.unique(code, return_inverse=True)
        d = np.zeros((code.size, inv.max() + 1))
        d[np.arange(code.size), inv] = 1.0
        return d[:, 1:]

    def binned(x: np.ndarray) -> np.ndarray:
        ok = np.isfinite(x)
        edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, n_effect_bins + 1)))
        code = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(edges.size - 2, 0))
        return np.where(ok, code, -1)

    blocks: dict[str, np.ndarray] = {}
    for term in terms:
        if term == "task":
            blocks[term] = dummies(tcode)
        elif term == "model":
            blocks[term] = dummies(m_idx)
        elif term == "temperature":
            blocks[term] = dummies(t_idx)
        elif term == "prompt":
            blocks[term] = dummies(tcode * tests.sizes["prompt"] + p_idx)
        elif term == "quality":
            qual = (cube if "label" not in cube and quality in cube else annotation_quality(cube))[quality]
            qual = qual.sel(task=list(task_levels)).transpose("task", *cfg)
            qual = qual.reindex({d: tests[d].values for d in cfg}).values
            q = qual[tcode, m_idx, p_idx, t_idx]
            if not np.isfinite(q).all():
                raise ValueError(f"variance_explained: {quality} is undefined for some annotated "
                                 "configurations (no human-labelled items).")
            blocks[term] = q[:, None]
        elif term == "effect_size":
            b = binned(np.abs(tests["human_estimate"].values.astype(np.float64)))
            blocks[term] = dummies(b[h_idx])
        else:
            alpha = float(tests.attrs.get("alpha", 0.05))
            pv = tests["human_p_value"].values.astype(np.float64)
            b = binned(np.abs(np.log10(np.clip(pv, 1e-300, None)) - np.log10(alpha)))
            blocks[term] = dummies(b[h_idx])
    x = np.concatenate([np.ones((y.size, 1)), *blocks.values()], axis=1)
    spans = {}
    start = 1
    for term, b in blocks.items():
        spans[term] = np.arange(start, start + b.shape[1])
        start += b.shape[1]
    gram = x.T @ x
    xty = x.T @ y
    yty = y @ y
    sst = yty - y.sum() ** 2 / y.size

    def r2(cols: list[np.ndarray]) -> float:
        idx = np.concatenate([np.array([0]), *cols]) if cols else np.array([0])
        g = gram[np.ix_(idx, idx)]
        b = np.linalg.lstsq(g, xty[idx], rcond=None)[0]
        rss = yty - 2 * b @ xty[idx] + b @ g @ b
        return float(1 - rss / sst) if sst > 0 else np.nan

    names = list(blocks)
    cum = [r2([spans[t] for t in names[: i + 1]]) for i in range(len(names))]
    seq = np.diff(np.concatenate([[0.0], cum]))
    alone = [r2([spans[t]]) for t in names]
    full = cum[-1]
    unique = [full - r2([spans[s] for s in names if s != t]) for t in names]
    ds = xr.Dataset(
        {"r2_sequential": ("term", seq), "r2_cumulative": ("term", np.array(cum)),
         "r2_alone": ("term", np.array(alone)), "r2_unique": ("term", np.array(unique)),
         "df": ("term", np.array([spans[t].size for t in names]))},
        coords={"term": np.array(names, dtype=object)},
    )
    ds.attrs.update({"method": "linear probability model of 1[wrong], sequential (type I) R²",
                     "r2_total": full, "n_obs": int(y.size), "quality": quality})
    return ds


# ---------------------------------------------------------------------------------------------
# intentional hacking
# ---------------------------------------------------------------------------------------------
def _attack_success(tests: xr.Dataset) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Bool (3, H, *cfg) per attack (fabricate, hide, reverse) and (3, H) applicability."""
    cfg = _config_dims(tests)
    c = tests["conclusion"].transpose("hypothesis", *cfg).values
    ann = (tests["annotated"].transpose("hypothesis", *cfg).values.astype(bool)
           if "annotated" in tests else np.ones(c.shape, dtype=bool))
    hc = tests["human_conclusion"].values
    hv = _human_valid(tests).values
    ex = (slice(None),) + (None,) * len(cfg)
    hcx = hc[ex]
    null = hv & (hc == 0)
    sig = hv & (hc != 0)
    fab = ann & (c != 0) & null[ex]
    hide = ann & (c == 0) & sig[ex]
    rev = ann & (c == -hcx) & sig[ex]
    return np.stack([fab, hide, rev]), np.stack([null, sig, sig]), cfg


def hacking(tests: xr.Dataset) -> xr.Dataset:
    """Per hypothesis: can some configuration fabricate, hide or reverse the human finding?

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``.

    Returns
    -------
    xarray.Dataset
        On ``hypothesis`` (coords kept): ``fabricate`` (human null and some configuration
        significant), ``hide`` (human significant and some configuration null), ``reverse``
        (human significant and some configuration significant with the opposite sign), each
        float 1/0 and NaN where the attack does not apply; ``n_fabricate``, ``n_hide``,
        ``n_reverse`` (how many configurations achieve it) and ``n_configs`` (annotated ones).
        attrs ``fabricate_rate``, ``hide_rate``, ``reverse_rate``: shares of the hypotheses the
        attack applies to (the paper's 94.4% / 98.1% / 68.3%).
    """
    _require(tests, ["conclusion", "human_conclusion"], "hacking")
    succ, applies, cfg = _attack_success(tests)
    axes = tuple(range(2, succ.ndim))
    count = succ.sum(axis=axes)
    anyv = np.where(applies, (count > 0).astype(np.float64), np.nan)
    cfg_ann = (tests["annotated"].transpose("hypothesis", *cfg).values.astype(bool)
               if "annotated" in tests else np.ones(succ.shape[1:], dtype=bool))
    ds = xr.Dataset(coords={k: v for k, v in tests["human_conclusion"].coords.items()})
    for q, name in enumerate(("fabricate", "hide", "reverse")):
        ds[name] = ("hypothesis", anyv[q])
        ds[f"n_{name}"] = ("hypothesis", count[q].astype(np.int64))
        with np.errstate(invalid="ignore"):
            ds.attrs[f"{name}_rate"] = float(np.nanmean(anyv[q])) if applies[q].any() else np.nan
    ds["n_configs"] = ("hypothesis", cfg_ann.reshape(cfg_ann.shape[0], -1).sum(1))
    ds.attrs["method"] = "exists a configuration whose conclusion differs from the human one"
    return ds


def hacking_curve(
    tests: xr.Dataset,
    *,
    n_models: Sequence[int] | None = None,
    n_prompts: Sequence[int] | None = None,
    n_draws: int = 200,
    weighting: str = "hypothesis",
    rng: int | np.random.Generator | None = 0,
) -> xr.Dataset:
    """Success of an adversary who may search a limited number of models and prompts.

    For each budget (``m`` models, ``p`` prompts; every temperature) the adversary gets a random
    subset of that size, and succeeds on a hypothesis if some configuration in the subset
    fabricates / hides / reverses its finding. Success rates are averaged over ``n_draws`` random
    subsets ("how many paraphrases does it take").

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``.
    n_models, n_prompts
        Budgets to evaluate (default every size from 1 to all).
    n_draws
        Random subsets per budget.
    weighting
        ``"hypothesis"``: share of the applicable hypotheses (as the paper); ``"task"``: the mean
        within each task, then over tasks.
    rng
        Seed or generator.

    Returns
    -------
    xarray.Dataset
        ``fabricate``, ``hide``, ``reverse`` on ``(n_models, n_prompts)`` (mean success rate over
        the draws), and ``*_sd`` (their SD over draws). The subsets of one draw are nested (the
        first ``m`` of a random order of the models, the first ``p`` of one of the prompts), so
        each draw's curve is monotone; each budget still sees a uniformly random subset.
    """
    _require(tests, ["conclusion", "human_conclusion", "task"], "hacking_curve")
    if weighting not in ("hypothesis", "task"):
        raise ValueError(f"hacking_curve: weighting={weighting!r}; use 'hypothesis' or 'task'.")
    succ, applies, cfg = _attack_success(tests)
    if cfg[:2] != ["model", "prompt"]:
        raise ValueError("hacking_curve: tests need 'model' and 'prompt' dimensions.")
    n_m, n_p = tests.sizes["model"], tests.sizes["prompt"]
    n_models = list(range(1, n_m + 1)) if n_models is None else [int(v) for v in n_models]
    n_prompts = list(range(1, n_p + 1)) if n_prompts is None else [int(v) for v in n_prompts]
    for name, vals, top in (("n_models", n_models, n_m), ("n_prompts", n_prompts, n_p)):
        if not vals or min(vals) < 1 or max(vals) > top:
            raise ValueError(f"hacking_curve: {name}={vals} must lie in 1..{top}.")
    if n_draws < 1:
        raise ValueError(f"hacking_curve: n_draws={n_draws} must be >= 1.")
    gen = np.random.default_rng(rng)
    # (3, H, M, P): any over temperature
    a = succ.reshape(*succ.shape[:4], -1).any(-1) if succ.ndim > 4 else succ
    n_h = a.shape[1]
    # hypotheses sorted by task; each attack's success count per task is exact (integers), and
    # the weights per (attack, task) turn counts into rates
    tcode = pd.factorize(pd.Series(tests["task"].values))[0]
    order_h = np.argsort(tcode, kind="stable")
    tcode = tcode[order_h]
    a = a[:, order_h]
    applies = applies[:, order_h]
    starts = np.flatnonzero(np.r_[True, tcode[1:] != tcode[:-1]])
    n_t = starts.size
    per_task = np.stack([np.bincount(tcode, weights=applies[q], minlength=n_t) for q in range(3)])
    if weighting == "hypothesis":
        wt = np.broadcast_to(1.0 / np.maximum(per_task.sum(1, keepdims=True), 1), per_task.shape)
    else:
        n_tasks = np.maximum((per_task > 0).sum(1, keepdims=True), 1)
        wt = np.where(per_task > 0, 1.0 / np.maximum(per_task, 1) / n_tasks, 0.0)
    # Nested random subsets: per draw, a random order of the models and of the prompts; the
    # first m models and first p prompts form a uniformly random subset of each size, and the
    # successes of every budget follow from cumulative ORs (one pass per model).
    a3 = np.ascontiguousarray(a.transpose(2, 3, 0, 1)).reshape(n_m, n_p, 3 * n_h)  # (M, P, 3H)
    order_m = np.argsort(gen.random((n_draws, n_m)), axis=1)
    order_p = np.argsort(gen.random((n_draws, n_p)), axis=1)
    reached = np.zeros((n_draws, n_p, 3 * n_h), dtype=bool)
    rates = np.full((n_m, n_draws, 3, n_p), np.nan)
    wanted_m = set(n_models)
    draw_idx = np.arange(n_draws)[:, None]
    for i in range(max(n_models)):
        reached |= a3[order_m[:, i]]
        if i + 1 not in wanted_m:
            continue
        hit = reached[draw_idx, order_p]  # prompts in each draw's random order
        for j in range(1, n_p):  # cumulative OR: the first j+1 prompts
            hit[:, j] |= hit[:, j - 1]
        counts = np.add.reduceat(hit.reshape(n_draws, n_p, 3, n_h), starts, axis=3, dtype=np.int64)
        rates[i] = np.einsum("dpqt,qt->dqp", counts, wt)
    sel = rates[np.array(n_models) - 1][..., np.array(n_prompts) - 1]  # (m, d, q, p)
    mean = sel.mean(1).transpose(1, 0, 2)
    sd = (sel.std(1, ddof=1) if n_draws > 1 else np.full(sel.shape[:1] + sel.shape[2:], np.nan))
    sd = sd.transpose(1, 0, 2)
    for q in range(3):
        if not applies[q].any():
            mean[q] = np.nan
            sd[q] = np.nan
    dims = ("n_models", "n_prompts")
    ds = xr.Dataset(
        {name: (dims, mean[q]) for q, name in enumerate(("fabricate", "hide", "reverse"))}
        | {f"{name}_sd": (dims, sd[q]) for q, name in enumerate(("fabricate", "hide", "reverse"))},
        coords={"n_models": n_models, "n_prompts": n_prompts},
    )
    ds.attrs.update({"method": "random subsets of models and prompts (all temperatures)",
                     "n_draws": int(n_draws), "weighting": weighting})
    return ds
