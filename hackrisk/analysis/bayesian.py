"""Bayesian analysis of LLM hacking risk (PyMC models, ArviZ ``InferenceData`` results).

Two models:

1. **Hierarchical risk model** (:func:`fit_risk_model`). The probability that a configuration's
   conclusion is wrong, as a smooth function of how far the *human* result is from the
   significance threshold, with partial pooling over task, model, prompt and temperature (and,
   optionally, annotation quality as a covariate).  It is fitted on aggregated counts
   (:func:`aggregate_errors`: group = task × model × prompt × temperature × bin of the human
   result → n wrong of N), so it scales with the number of groups, not of tests::

       logit p_g = B(x_g) β + a_task + a_model + a_prompt + a_temperature + u_task×bin + γ q_g
       n_wrong_g ~ Binomial(N_g, p_g)

   ``x`` is the human p-value's distance to the threshold on the z scale,
   ``x = Φ⁻¹(1 − p/2) − Φ⁻¹(1 − α/2)`` (0 at the threshold, negative = not significant), ``B``
   a cubic B-spline basis whose coefficients β follow a random walk (a P-spline), each ``a_f`` a
   zero-sum normal random effect with its own scale, ``q`` standardised annotation quality.
   The task × bin effect ``u`` absorbs the correlation of conclusions that share hypotheses
   (a beta-binomial was tried: its special functions made paper-scale fits 10x slower); it sums
   to zero within each task, so it is the bin-to-bin deviation around ``a_task`` and not a second
   task intercept; with a single task it is orthogonal to the spline basis (what the curve
   cannot express), since one task cannot tell a bin's deviation from the curve.
   Random effects are partially centred, with weights chosen from the data (:func:`_centring`),
   which removes the funnels of both the centred and the non-centred form; with nutpie the log
   density is a single numba function (:mod:`._risk_kernel`, compiled once for any data size
   and cached on disk).  Every fit checks divergences, R-hat and bulk ESS of every
   reported quantity and warns naming the one that falls short.  Results:
   posterior risk curves with credible bands (overall and per model), per-level risks, and
   :func:`prob_riskier`, the posterior probability that one model (prompt, ...) is riskier.

2. **Prospective risk of one study** (:func:`prospective_risk`, :func:`prospective_summary`,
   :func:`calibration_study`): defined in :mod:`hackrisk.analysis.prospective` and re-exported
   here; see that module and ``docs/prospective.md``.

Sampling uses nutpie when installed, PyMC's NUTS otherwise (``sampler="auto"``), with as many
parallel chains as cores.  ``sampler="prior"`` lays out prior draws as a posterior: for
structure tests and prior predictive checks only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import CONFIG_DIMS

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    from matplotlib.axes import Axes

__all__ = [
    "aggregate_errors",
    "fit_risk_model",
    "risk_curves",
    "prob_riskier",
    "prospective_risk",
    "prospective_summary",
    "calibration_table",
    "calibration_study",
    "plot_posterior_risk_curve",
    "plot_prospective_risk",
]

log = logging.getLogger(__name__)

_FACTORS = ("task", *CONFIG_DIMS)
_X_KINDS = ("z_distance", "effect")
_TARGET_ACCEPT = 0.9


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _seed(rng: int | np.random.Generator | None) -> tuple[np.random.Generator, int]:
    gen = np.random.default_rng(rng)
    return gen, int(gen.integers(0, 2**31 - 1))


def _chains(chains: int | None) -> int:
    if chains is None:
        from ._bayes_models import n_cores

        return max(2, n_cores())
    if chains < 1:
        raise ValueError(f"chains={chains}: need at least one chain. Fix: pass chains >= 1.")
    return int(chains)


def _flat_draws(da: xr.DataArray) -> np.ndarray:
    """(chain, draw, ...) → (sample, ...) numpy array."""
    v = np.asarray(da.transpose("chain", "draw", ...).values)
    return v.reshape(-1, *v.shape[2:])


def _unflat(values: np.ndarray, chains: int, draws: int) -> np.ndarray:
    return values.reshape(chains, draws, *values.shape[1:])


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bspline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Cubic B-spline design matrix on the full knot vector ``knots`` (rows sum to one)."""
    from scipy.interpolate import BSpline

    lo, hi = knots[0], knots[-1]
    xc = np.clip(np.asarray(x, dtype=float), lo, hi)
    return BSpline.design_matrix(xc, knots, 3, extrapolate=True).toarray()


def _knot_vector(x: np.ndarray, weights: np.ndarray, n_interior: int) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo < 1e-9:
        hi = lo + 1.0
    order = np.argsort(x)
    cw = np.cumsum(weights[order]) / weights.sum()
    qs = np.arange(1, n_interior + 1) / (n_interior + 1)
    inner = np.interp(qs, cw, x[order])
    inner = np.unique(np.clip(inner, lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo)))
    return np.concatenate([[lo] * 4, inner, [hi] * 4])


# ---------------------------------------------------------------------------------------------
# model 1: aggregation
# ---------------------------------------------------------------------------------------------
def _human_x(tests: xr.Dataset, x: str, alpha: float) -> np.ndarray:
    from scipy import stats

    if x == "z_distance":
        if "human_p_value" not in tests:
            raise ValueError("tests has no 'human_p_value'. Fix: pass the output of "
                             "hackrisk.analysis.frequentist.test_hypotheses (or x='effect').")
        p = np.asarray(tests["human_p_value"].values, dtype=float)
        z = stats.norm.isf(np.clip(p, 1e-300, 1.0) / 2)
        return np.clip(z, 0.0, 8.0) - stats.norm.isf(alpha / 2)
    if x == "effect":
        if "human_estimate" not in tests:
            raise ValueError("tests has no 'human_estimate'. Fix: pass test_hypotheses output.")
        return np.abs(np.asarray(tests["human_estimate"].values, dtype=float))
    raise ValueError(f"x={x!r} is not one of {_X_KINDS}. Fix: pick one of them.")


def aggregate_errors(
    tests: xr.Dataset,
    *,
    x: str = "z_distance",
    n_bins: int = 8,
    quality: xr.DataArray | None = None,
) -> xr.Dataset:
    """Aggregate per-(hypothesis, configuration) errors into binomial counts.

    Parameters
    ----------
    tests
        Output of :func:`hackrisk.analysis.risk.classify_errors` (``test_hypotheses`` plus
        ``error``): dims ``(hypothesis, model, prompt, temperature)``, coord ``task`` on
        ``hypothesis``, and ``human_p_value`` (or ``human_estimate`` for ``x="effect"``).
    x
        The smooth covariate: ``"z_distance"`` (default), the human p-value's distance to the
        threshold on the z scale, ``Φ⁻¹(1 − p/2) − Φ⁻¹(1 − α/2)``; or ``"effect"``, the absolute
        human difference in proportions.
    n_bins
        Bins of ``x`` (quantiles over hypotheses); the group's ``x`` is the mean over its
        hypotheses, so the bins only set the resolution of the aggregation.
    quality
        Optional annotation quality on ``(task, model, prompt, temperature)``, e.g.
        ``annotation_quality(cube)["accuracy"]``.

    Returns
    -------
    xarray.Dataset
        On dim ``group``: ``n_wrong``, ``n``, ``x`` (and ``quality``), with coords ``task``,
        ``model``, ``prompt``, ``temperature``, ``bin``; groups without an annotated test are
        dropped. attrs: ``x``, ``alpha``.
    """
    if "error" not in tests:
        raise ValueError("tests has no 'error' variable. Fix: pass "
                         "hackrisk.analysis.risk.classify_errors(test_hypotheses(cube, hyps)).")
    if "task" not in tests.coords:
        raise ValueError("tests has no 'task' coordinate on 'hypothesis'. Fix: pass the output "
                         "of test_hypotheses, which carries it.")
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}: need at least one bin. Fix: pass n_bins >= 1.")
    alpha = float(tests.attrs.get("alpha", 0.05))
    err = tests["error"].transpose("hypothesis", *CONFIG_DIMS)
    e = np.asarray(err.values)
    xh = _human_x(tests, x, alpha)
    ok_h = np.isfinite(xh)
    valid = (e >= 0) & ok_h[:, None, None, None]
    if not valid.any():
        raise ValueError("tests has no annotated (hypothesis, configuration) with a valid human "
                         "result. Fix: annotate the cube / check the hypotheses.")
    task_names, t_idx = np.unique(np.asarray(tests["task"].values).astype(str), return_inverse=True)
    edges = np.quantile(xh[ok_h], np.linspace(0, 1, n_bins + 1))
    b_idx = np.clip(np.searchsorted(edges, np.where(ok_h, xh, edges[0]), side="right") - 1,
                    0, n_bins - 1)
    n_m, n_p, n_t = e.shape[1:]
    shape = (len(task_names), n_m, n_p, n_t, n_bins)
    hh, mm, pp, tt = np.indices(e.shape, sparse=False)
    key = np.ravel_multi_index((t_idx[hh], mm, pp, tt, b_idx[hh]), shape)[valid]
    size = int(np.prod(shape))
    n = np.bincount(key, minlength=size)
    n_wrong = np.bincount(key, weights=(e[valid] > 0).astype(float), minlength=size)
    x_sum = np.bincount(key, weights=np.broadcast_to(xh[:, None, None, None], e.shape)[valid],
                        minlength=size)
    keep = np.flatnonzero(n > 0)
    ti, mi, pi_, ki, bi = np.unravel_index(keep, shape)
    data = {
        "n_wrong": ("group", n_wrong[keep].astype(np.int64)),
        "n": ("group", n[keep].astype(np.int64)),
        "x": ("group", x_sum[keep] / n[keep]),
    }
    coords = {
        "task": ("group", task_names[ti].astype(object)),
        "model": ("group", np.asarray(err["model"].values)[mi]),
        "prompt": ("group", np.asarray(err["prompt"].values)[pi_]),
        "temperature": ("group", np.asarray(err["temperature"].values)[ki]),
        "bin": ("group", bi.astype(np.int64)),
    }
    if quality is not None:
        missing = [d for d in _FACTORS if d not in quality.dims]
        if missing:
            raise ValueError(f"quality lacks dims {missing}. Fix: pass a DataArray on "
                             "(task, model, prompt, temperature), e.g. annotation_quality(cube)['accuracy'].")
        q = quality.sel(task=xr.DataArray(coords["task"][1], dims="group"),
                        model=xr.DataArray(coords["model"][1], dims="group"),
                        prompt=xr.DataArray(coords["prompt"][1], dims="group"),
                        temperature=xr.DataArray(coords["temperature"][1], dims="group"))
        data["quality"] = ("group", np.asarray(q.values, dtype=float))
        if not np.all(np.isfinite(data["quality"][1])):
            raise ValueError("quality is NaN for some annotated configuration. Fix: compute it on "
                             "the same cube (every configuration needs human-labelled items).")
    out = xr.Dataset(data, coords={**coords, "group": np.arange(keep.size)})
    out.attrs.update({"x": x, "alpha": alpha, "n_bins": n_bins,
                      "description": "aggregated error counts for fit_risk_model"})
    return out


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _centring(k: np.ndarray, n: np.ndarray, unit: np.ndarray, bin_of_unit: np.ndarray,
              unit_fac: dict, group_fac: dict, basis: np.ndarray) -> dict[str, Any]:
    """Partial-centring weights ``w = σ̂² / (σ̂² + v)`` of the risk model's random effects.

    ``v`` is the data variance of a level's logit offset (1 / binomial Fisher information
    ``Σ n p (1 − p)``) and ``σ̂²`` a moment estimate of the effect variance: the mean squared
    one-step (score) estimate of the level offsets minus their mean data variance.  Expected
    rates: pooled per unit for the configuration factors, pooled per bin for the task, per bin
    and task for the units.  The spline steps are centred when the data carry at least 10 units
    of binomial information per basis function.  The estimates are crude, but they only steer
    the sampler's geometry (:func:`hackrisk.analysis._bayes_models.risk_model`), never the model.
    Also returns the cluster design ``cluster_q`` (unit, free): zero-sum within each task when
    the task effect is in the model, else orthogonal to the spline basis ``basis`` (unit, basis).
    """
    from ._bayes_models import zero_sum_basis

    n_basis = basis.shape[1]
    n_unit = bin_of_unit.size
    kf, nf = k.astype(float), n.astype(float)

    def _offsets(idx: np.ndarray, n_levels: int, expected: np.ndarray):
        info = np.bincount(idx, weights=nf * expected * (1 - expected), minlength=n_levels)
        score = np.bincount(idx, weights=kf - nf * expected, minlength=n_levels)
        info = np.maximum(info, 1e-9)
        return score / info, 1.0 / info

    def _weight(dev: np.ndarray, var: np.ndarray, prior_sd: float = 1.0) -> np.ndarray:
        # the optimal weight σ² / (σ² + v) at the lower 1% point of an approximate posterior of σ
        # (the offsets as N(0, σ² + v) draws, σ's half-normal prior, on a log grid): the low end
        # of σ is where a too-centred form opens a funnel, and with few levels or little data σ
        # ranges down far below its typical value
        s2 = np.geomspace(1e-3, 5.0 * prior_sd, 160) ** 2
        tot = s2[:, None] + var[None, :]
        lp = -0.5 * (np.log(tot) + dev[None, :] ** 2 / tot).sum(1) - 0.5 * s2 / prior_sd**2
        lp += 0.5 * np.log(s2)  # log-spaced grid
        cdf = np.cumsum(np.exp(lp - lp.max()))
        s2_low = s2[np.searchsorted(cdf / cdf[-1], 0.01)]
        return np.clip(s2_low / (s2_low + var), 0.05, 0.95)

    def _pooled(idx: np.ndarray, n_levels: int) -> np.ndarray:
        return (np.bincount(idx, weights=kf, minlength=n_levels) + 0.5) / (
            np.bincount(idx, weights=nf, minlength=n_levels) + 1.0)

    p_unit = _pooled(unit, n_unit)[unit]
    g_bin = bin_of_unit[unit]
    p_bin = _pooled(g_bin, int(bin_of_unit.max()) + 1)[g_bin]
    out: dict[str, Any] = {"steps_centred": bool((nf * p_bin * (1 - p_bin)).sum() >= 10.0 * n_basis)}
    out["group_factors"] = {}
    for f, (levels, idx) in group_fac.items():
        dev, var = _offsets(idx, levels.size, p_unit)
        out["group_factors"][f] = (levels, idx, float(np.mean(_weight(dev, var))))
    out["task"] = None
    logit = np.log(p_bin / (1 - p_bin))
    if "task" in unit_fac:
        levels, t_of_unit = unit_fac["task"]
        t_dev, t_var = _offsets(t_of_unit[unit], levels.size, p_bin)
        logit = logit + t_dev[t_of_unit[unit]]
    dev, var = _offsets(unit, n_unit, 1.0 / (1.0 + np.exp(-logit)))
    w_unit = _weight(dev, var, 0.5)
    if "task" in unit_fac:
        # cluster effects zero-sum within each task (not a second task intercept): a Helmert
        # block per task, its units' mean weight
        q = np.zeros((n_unit, n_unit))
        w_free = np.zeros(n_unit)
        col = 0
        for t in range(levels.size):
            members = np.flatnonzero(t_of_unit == t)
            if members.size > 1:
                q[members, col:col + members.size - 1] = zero_sum_basis(members.size)
                w_free[col:col + members.size - 1] = w_unit[members].mean()
                col += members.size - 1
        out["cluster_q"], out["w_cluster"] = q[:, :col], w_free[:col]
    else:
        # one task: a bin's deviation from the curve is told apart from the curve only by the
        # priors (a ridge: 1-66 divergences per demo fit), so the cluster effects keep just what
        # the spline cannot express: an orthonormal basis of the unit effects orthogonal to the
        # spline basis, each column's weight the mean of its units' (by squared loadings)
        u_svd, sv, _ = np.linalg.svd(basis, full_matrices=True)
        q = np.ascontiguousarray(u_svd[:, int((sv > sv[0] * 1e-10).sum()):])
        out["cluster_q"], out["w_cluster"] = q, (q**2).T @ w_unit
    if "task" in unit_fac:
        out["task"] = (levels, t_of_unit, float(np.mean(_weight(t_dev, t_var))))
    return out

# ---------------------------------------------------------------------------------------------
# model 1: fit
# ---------------------------------------------------------------------------------------------
def fit_risk_model(
    data: xr.Dataset,
    *,
    x: str = "z_distance",
    n_bins: int = 8,
    quality: xr.DataArray | None = None,
    factors: Sequence[str] = _FACTORS,
    n_knots: int = 3,
    cluster_effect: bool = True,
    n_grid: int = 40,
    draws: int = 2000,
    tune: int = 300,
    chains: int | None = None,
    sampler: str = "auto",
    rng: int | np.random.Generator | None = None,
) -> az.InferenceData:
    """Fit the hierarchical risk model (see the module docstring).

    Parameters
    ----------
    data
        Either ``classify_errors`` output (then :func:`aggregate_errors` is applied with ``x``,
        ``n_bins``, ``quality``) or an :func:`aggregate_errors` result.
    x, n_bins, quality
        Passed to :func:`aggregate_errors` when ``data`` is not aggregated yet.
    factors
        Which of ``task``, ``model``, ``prompt``, ``temperature`` get random intercepts
        (a factor with a single level is skipped).
    n_knots
        Interior knots of the cubic B-spline in ``x`` (placed at weighted quantiles).
    cluster_effect
        Add a random effect per task × bin (zero-sum within each task; with one task, orthogonal
        to the spline): the conclusions of different configurations on the same hypotheses are correlated, and
        this effect carries that correlation (without it the credible bands are too narrow).
    n_grid
        Points of the ``x`` grid on which the risk curves are evaluated.
    draws, tune, chains
        Sampler settings; ``chains=None`` runs one chain per core (at least two).  2,000 draws
        per chain: with about 1,000 reported elements, the largest R-hat of 1,000-draw runs
        exceeded 1.01 in half the paper-scale fits, and σ of a 6-level factor fell below 400 ESS
        (nutpie's 300 tuning steps suffice).  The fit checks
        its own diagnostics (:func:`hackrisk.analysis._sampling.check_diagnostics`): a
        ``UserWarning`` names the quantity with divergences, R-hat > 1.01 or bulk ESS < 400;
        the figures are in ``posterior.attrs["diagnostics_*"]``.
    sampler
        ``"auto"`` (nutpie if installed, else PyMC), ``"nutpie"``, ``"pymc"`` or ``"prior"``
        (prior draws laid out as a posterior; for tests and prior checks).
    rng
        Seed or generator.

    Returns
    -------
    arviz.InferenceData
        ``posterior``: ``beta`` (basis), ``effect_<factor>`` (zero-sum) and ``sigma_<factor>``,
        ``sigma_cluster``, ``gamma_quality``; derived ``risk_curve`` (x_grid), ``risk_curve_model``
        (model, x_grid) and ``risk_<factor>`` (factor level; the risk for a typical level of the
        other factors at the observed mix of ``x``).  ``observed_data``: ``n_wrong``;
        ``constant_data``: ``n``, ``x``, ``quality``, ``knots`` and the group coords.
    """
    from . import _bayes_models as bm  # numpy at import; pymc only inside its model builders

    agg = data if "n_wrong" in data else aggregate_errors(data, x=x, n_bins=n_bins, quality=quality)
    for f in factors:
        if f not in _FACTORS:
            raise ValueError(f"factors contains {f!r}; allowed: {_FACTORS}. Fix: drop it.")
    gen, seed = _seed(rng)
    chains = _chains(chains)
    xg = np.asarray(agg["x"].values, dtype=float)
    n = np.asarray(agg["n"].values, dtype=np.int64)
    k = np.asarray(agg["n_wrong"].values, dtype=np.int64)
    knots = _knot_vector(xg, n.astype(float), n_knots)
    # units = task × bin: spline, task and cluster effects are computed once per unit
    ukey = pd.MultiIndex.from_arrays([np.asarray(agg["task"].values).astype(str),
                                      np.asarray(agg["bin"].values)])
    unit, ulev = pd.factorize(ukey)
    unit = unit.astype(np.int64)
    n_unit = len(ulev)
    x_unit = np.bincount(unit, weights=xg * n, minlength=n_unit) / np.bincount(
        unit, weights=n.astype(float), minlength=n_unit)
    basis = _bspline_basis(x_unit, knots)
    unit_fac: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    group_fac: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f in factors:
        levels, idx = np.unique(np.asarray(agg[f].values), return_inverse=True)
        if levels.size > 1:
            if f == "task":
                first = np.zeros(n_unit, dtype=np.int64)
                first[unit] = idx
                unit_fac[f] = (levels, first)
            else:
                group_fac[f] = (levels, idx)
    fac = {**unit_fac, **group_fac}
    q = None
    q_mean = q_sd = np.nan
    if "quality" in agg:
        qv = np.asarray(agg["quality"].values, dtype=float)
        q_mean, q_sd = float(np.average(qv, weights=n)), float(np.std(qv)) or 1.0
        q = (qv - q_mean) / q_sd
    rate = (k.sum() + 0.5) / (n.sum() + 1.0)
    spec: dict[str, Any] = {
        "basis": basis, "unit": unit, "n_wrong": k, "n_total": n,
        "n_basis": basis.shape[1], "n_unit": n_unit,
        "base_logit": float(np.log(rate / (1 - rate))), "quality": q,
        "cluster": bool(cluster_effect and n_unit > 1),
        **_centring(k, n, unit, np.asarray([b for _, b in ulev], dtype=np.int64), unit_fac, group_fac,
                     basis),
    }
    spec["cluster"] = spec["cluster"] and spec["cluster_q"].shape[1] > 0
    log.info("risk model: %d groups, %d tests, factors %s", n.size, n.sum(), list(fac))
    if bm.resolve_sampler(sampler) == "prior":
        raw = bm.risk_model_prior(spec, draws=chains * draws, gen=gen)
        idata = None
        n_chain, n_draw = chains, draws
        post_attrs = {"sampler": "prior (mock)"}
    elif bm.resolve_sampler(sampler) == "nutpie" and _has_numba():
        # the model's density written out for numba: compiled once per process, for any size
        from . import _risk_kernel
        from ._sampling import sample_nutpie

        idata = sample_nutpie(_risk_kernel.nutpie_model(spec), draws=draws, tune=tune,
                              chains=chains, seed=seed, low_rank=True, target_accept=_TARGET_ACCEPT)
    else:
        idata = bm.sample(lambda: bm.risk_model(spec), sampler=sampler, draws=draws, tune=tune,
                          chains=chains, seed=seed, cache_key=bm.risk_model_key(spec),
                          data=bm.risk_model_data(spec), low_rank=True)
    if idata is not None:
        post = idata.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        raw = {name: _flat_draws(post[name]) for name in post.data_vars}
        post_attrs = dict(post.attrs)
    values = bm.risk_model_transform(spec, raw)
    keep = ["beta", "tau"] + [f"{p}_{f}" for f in fac for p in ("effect", "sigma")]
    if q is not None:
        keep.append("gamma_quality")
    if spec["cluster"]:
        keep.append("sigma_cluster")
    new = {}
    for name in keep:
        dims = ["chain", "draw"]
        if name == "beta":
            dims.append("basis")
        elif name.startswith("effect_"):
            dims.append(name[len("effect_"):])
        new[name] = (dims, _unflat(values[name], n_chain, n_draw))
    coords: dict[str, Any] = {"chain": np.arange(n_chain), "draw": np.arange(n_draw),
                              "basis": np.arange(basis.shape[1])}
    for f, (levels, _) in fac.items():
        coords[f] = levels
    # derived curves ------------------------------------------------------------------------
    grid = np.linspace(knots[0], knots[-1], n_grid)
    coords["x_grid"] = grid
    beta = new["beta"][1].reshape(n_chain * n_draw, -1)
    bg = _bspline_basis(grid, knots)
    eta_grid = beta @ bg.T  # (S, grid)
    new["risk_curve"] = (["chain", "draw", "x_grid"],
                         _unflat(_expit(eta_grid), n_chain, n_draw))
    bins = np.asarray(agg["bin"].values)
    ub = np.unique(bins)
    xb = np.array([np.average(xg[bins == b], weights=n[bins == b]) for b in ub])
    wb = np.array([n[bins == b].sum() for b in ub], dtype=float)
    wb /= wb.sum()
    eta_b = beta @ _bspline_basis(xb, knots).T  # (S, bins)
    for f in fac:
        eff = new[f"effect_{f}"][1].reshape(n_chain * n_draw, -1)
        r = (_expit(eta_b[:, None, :] + eff[:, :, None]) * wb).sum(-1)
        new[f"risk_{f}"] = (["chain", "draw", f], _unflat(r, n_chain, n_draw))
        if f == "model":
            curve = _expit(eta_grid[:, None, :] + eff[:, :, None])
            new["risk_curve_model"] = (["chain", "draw", "model", "x_grid"],
                                       _unflat(curve, n_chain, n_draw))
    posterior = xr.Dataset(new, coords=coords)
    posterior.attrs.update(post_attrs)
    posterior.attrs["sampler"] = post_attrs.get("sampler", sampler)
    gcoords = {c: ("group", np.asarray(agg[c].values)) for c in (*_FACTORS, "bin")}
    gcoords["group"] = np.arange(n.size)
    observed = xr.Dataset({"n_wrong": ("group", k)}, coords=gcoords)
    const = {"n": ("group", n), "x": ("group", xg), "knots": ("knot", knots)}
    if q is not None:
        const["quality"] = ("group", np.asarray(agg["quality"].values, dtype=float))
    constant = xr.Dataset(const, coords=gcoords)
    import arviz as az

    out = az.InferenceData(posterior=posterior, observed_data=observed, constant_data=constant)
    if idata is not None and "sample_stats" in idata.groups():
        out.add_groups(sample_stats=idata.sample_stats)
    out.posterior.attrs.update({
        "model": "hierarchical risk model (binomial P-spline, hackrisk.analysis.bayesian)",
        "n_units": int(n_unit),
        "x": agg.attrs.get("x", x), "alpha": float(agg.attrs.get("alpha", 0.05)),
        "quality_mean": q_mean, "quality_sd": q_sd,
    })
    if idata is not None:  # every reported quantity: 0 divergences, R-hat <= 1.01, bulk ESS >= 400
        from ._sampling import check_diagnostics, diagnostics_attrs

        diag = check_diagnostics(out, what="fit_risk_model (hierarchical risk model)")
        out.posterior.attrs.update(diagnostics_attrs(diag))
    return out


def risk_curves(idata: az.InferenceData, *, by: str | None = None, hdi_prob: float = 0.9) -> xr.Dataset:
    """Posterior median and equal-tailed credible band of the risk curve.

    Parameters
    ----------
    idata
        Output of :func:`fit_risk_model`.
    by
        ``None`` (overall curve) or ``"model"`` (one curve per model).
    hdi_prob
        Mass of the central credible interval.

    Returns
    -------
    xarray.Dataset
        ``risk`` with a ``ci`` dim (``estimate`` = median, ``lower``, ``upper``) on ``x_grid``
        (and ``model``).
    """
    name = "risk_curve" if by is None else f"risk_curve_{by}"
    if name not in idata.posterior:
        raise ValueError(f"idata has no {name!r}. Fix: use by=None or by='model' on a fit whose "
                         "model factor has more than one level.")
    da = idata.posterior[name]
    lo, hi = (1 - hdi_prob) / 2, 1 - (1 - hdi_prob) / 2
    q = da.quantile([0.5, lo, hi], dim=("chain", "draw"))
    q = q.rename(quantile="ci").assign_coords(ci=["estimate", "lower", "upper"])
    out = xr.Dataset({"risk": q})
    out["risk"].attrs.update({"ci_kind": "eti", "ci_prob": hdi_prob})
    return out


def prob_riskier(idata: az.InferenceData, *, dim: str = "model") -> xr.DataArray:
    """Posterior probability that level ``a`` of ``dim`` is riskier than level ``b``.

    Random intercepts shift the whole risk curve, so "riskier" holds at every ``x`` at once.

    Returns
    -------
    xarray.DataArray
        ``P(effect[a] > effect[b])`` on ``(dim, f"{dim}_other")``; the diagonal is 0.
    """
    name = f"effect_{dim}"
    if name not in idata.posterior:
        raise ValueError(f"idata has no {name!r}. Fix: fit with {dim!r} in factors and more "
                         "than one level.")
    e = _flat_draws(idata.posterior[name])
    p = (e[:, :, None] > e[:, None, :]).mean(axis=0)
    levels = idata.posterior[dim].values
    return xr.DataArray(p, dims=(dim, f"{dim}_other"),
                        coords={dim: levels, f"{dim}_other": levels},
                        name="prob_riskier",
                        attrs={"description": f"posterior P(risk of {dim} > risk of {dim}_other)"})


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------
def _axes(ax: Any, figsize: tuple[float, float] = (6.4, 4.2)) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize).add_subplot()


def plot_posterior_risk_curve(
    idata: az.InferenceData,
    *,
    by: str | None = None,
    hdi_prob: float = 0.9,
    ax: Axes | None = None,
) -> Axes:
    """Posterior risk curve of :func:`fit_risk_model` (median and credible band).

    ``by="model"`` draws one curve per model.  The dashed line marks the significance threshold
    (x = 0 for ``x="z_distance"``).
    """
    from .._colors import OKABE_ITO

    ax = _axes(ax)
    rc = risk_curves(idata, by=by, hdi_prob=hdi_prob)["risk"]
    grid = rc["x_grid"].values
    palette = list(OKABE_ITO.values())[1:] + ["#999999"]
    levels = [None] if by is None else list(rc[by].values)
    for i, lev in enumerate(levels):
        r = rc if lev is None else rc.sel({by: lev})
        color = OKABE_ITO["blue"] if lev is None else palette[i % len(palette)]
        ax.fill_between(grid, r.sel(ci="lower"), r.sel(ci="upper"), color=color, alpha=0.2, lw=0)
        ax.plot(grid, r.sel(ci="estimate"), color=color, label="all" if lev is None else str(lev))
    xkind = idata.posterior.attrs.get("x", "z_distance")
    if xkind == "z_distance":
        ax.axvline(0.0, color="0.4", ls="--", lw=1)
        ax.set_xlabel("human |z| minus critical z (0 = significance threshold)")
    else:
        ax.set_xlabel("|human effect| (difference in proportions)")
    ax.set_ylabel("P(wrong conclusion)")
    ax.set_ylim(0, None)
    ax.set_title(f"Posterior risk curve ({int(hdi_prob * 100)}% band)")
    if by is not None:
        ax.legend(fontsize="small", ncol=2)
    return ax


# model 2 (prospective risk of one study) lives in its own module; re-exported here
from .prospective import (  # noqa: E402, F401  (re-exports)
    calibration_study,
    calibration_table,
    plot_prospective_risk,
    prospective_risk,
    prospective_summary,
)
