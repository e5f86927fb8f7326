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
   (a beta-binomial was tried: its special functions made paper-scale fits 10x slower).  Results:
   posterior risk curves with credible bands (overall and per model), per-level risks, and
   :func:`prob_riskier`, the posterior probability that one model (prompt, ...) is riskier.

2. **Prospective risk of one study** (:func:`prospective_risk`). A researcher has LLM labels
   from every configuration for all items and human labels for a subset.  Each configuration
   has a confusion matrix ``θ_cfg`` (rows: true class) with a Dirichlet prior; the human-labelled
   items update it exactly (conjugacy).  The true class of every other item is summed out:

       P(labels_i | cell g) = Σ_c π_{g,c} Π_cfg θ_{cfg, c, label_{i,cfg}}

   where the *cells* are the distinct group memberships of the items across the hypotheses
   (for one grouping: A, B, neither), with class shares ``π_g ~ Dirichlet``.  Configurations are
   conditionally independent given the true class (a Dawid–Skene model); errors that depend on
   the grouping beyond the true class are not modelled (see "when to trust" in the notebook).

   **Definition of the true conclusion.** For every posterior draw the latent true classes of
   the unlabelled items are drawn from their posterior (given θ, π and all LLM labels), joined
   with the known human labels, and the *human* test of ``test_hypotheses`` (same Wald test, same
   zero rule) is run on this completed data: the conclusion a full human labelling of this study
   would reach.  A configuration's conclusion (its own test on its own LLM labels) is then a
   Type I, II or S error exactly as in :func:`hackrisk.analysis.risk.classify_errors`; averaging
   over draws gives P(Type I), P(Type II), P(Type S) per configuration.  The population effect
   ``π_A,c − π_B,c`` (group shares weighted by the cells' item counts) is reported as well; it
   uses every configuration through their estimated confusion matrices, so it is the combined
   posterior of the effect that does not depend on which configuration one picked.

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

from ..cube import CONFIG_DIMS, NOT_ANNOTATED

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
    "plot_posterior_risk_curve",
    "plot_prospective_risk",
]

log = logging.getLogger(__name__)

_FACTORS = ("task", *CONFIG_DIMS)
_X_KINDS = ("z_distance", "effect")


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
    draws: int = 500,
    tune: int = 500,
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
        Add a random intercept per task × bin: the conclusions of different configurations on
        the same hypotheses are correlated, and this effect carries that correlation (without
        it the credible bands are too narrow).
    n_grid
        Points of the ``x`` grid on which the risk curves are evaluated.
    draws, tune, chains
        Sampler settings; ``chains=None`` runs one chain per core (at least two).
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
    from . import _bayes_models as bm

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
    model = bm.risk_model(basis=basis, unit=unit, n_wrong=k, n_total=n, unit_factors=unit_fac,
                          group_factors=group_fac, cluster=cluster_effect, quality=q,
                          base_logit=float(np.log(rate / (1 - rate))))
    log.info("risk model: %d groups, %d tests, factors %s", n.size, n.sum(), list(fac))
    idata = bm.sample(model, sampler=sampler, draws=draws, tune=tune, chains=chains, seed=seed,
                      low_rank=True)
    post = idata.posterior
    keep = ["beta", "tau"] + [f"{p}_{f}" for f in fac for p in ("effect", "sigma")]
    if q is not None:
        keep.append("gamma_quality")
    if "sigma_cluster" in post:
        keep.append("sigma_cluster")
    new = {}
    for name in keep:
        da = post[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        dims = ["chain", "draw"]
        if name == "beta":
            dims.append("basis")
        elif name.startswith("effect_"):
            dims.append(name[len("effect_"):])
        new[name] = (dims, np.asarray(da.transpose("chain", "draw", *extra).values))
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
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
    posterior.attrs.update(post.attrs)
    posterior.attrs["sampler"] = post.attrs.get("sampler", sampler)
    gcoords = {c: ("group", np.asarray(agg[c].values)) for c in (*_FACTORS, "bin")}
    gcoords["group"] = np.arange(n.size)
    observed = xr.Dataset({"n_wrong": ("group", k)}, coords=gcoords)
    const = {"n": ("group", n), "x": ("group", xg), "knots": ("knot", knots)}
    if q is not None:
        const["quality"] = ("group", np.asarray(agg["quality"].values, dtype=float))
    constant = xr.Dataset(const, coords=gcoords)
    import arviz as az

    out = az.InferenceData(posterior=posterior, observed_data=observed, constant_data=constant)
    if "sample_stats" in idata.groups():
        out.add_groups(sample_stats=idata.sample_stats)
    out.posterior.attrs.update({
        "model": "hierarchical risk model (binomial P-spline, hackrisk.analysis.bayesian)",
        "n_units": int(n_unit),
        "x": agg.attrs.get("x", x), "alpha": float(agg.attrs.get("alpha", 0.05)),
        "quality_mean": q_mean, "quality_sd": q_sd,
    })
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
# model 2: one study
# ---------------------------------------------------------------------------------------------
def _study_arrays(cube: xr.Dataset, hypotheses: xr.Dataset, human: Any, sample: int | None):
    """Numpy inputs of model 2 for the single task of ``hypotheses``."""
    if "group" not in hypotheses or "class_code" not in hypotheses.coords:
        raise ValueError("hypotheses needs 'group' (hypothesis, item) and coord 'class_code'. "
                         "Fix: pass hackrisk.hypotheses.generate_hypotheses(cube) (or a selection).")
    if hypotheses.sizes.get("hypothesis", 0) == 0:
        raise ValueError("hypotheses is empty. Fix: select at least one hypothesis.")
    tasks = np.unique(np.asarray(hypotheses["task"].values).astype(str))
    if tasks.size != 1:
        raise ValueError(f"hypotheses span tasks {list(tasks)}; the prospective model is for one "
                         "study (task). Fix: select one, e.g. hyps.isel(hypothesis=hyps.task == 't').")
    task = str(tasks[0])
    sub = cube.sel(task=task)
    lab = sub["label"]
    if "sample" in lab.dims:
        if sample is None and lab.sizes["sample"] > 1:
            raise ValueError("the cube has several samples. Fix: pass sample= (which draw to use).")
        lab = lab.isel(sample=sample or 0)
    real = np.asarray(sub["item_id"].values).astype(str) != ""
    labels = np.asarray(lab.transpose(*CONFIG_DIMS, "item").values)  # (M, P, T, I)
    cfg_shape = labels.shape[:3]
    labels = labels.reshape(-1, labels.shape[-1])[:, real]  # (C_all, N)
    annotated = (labels != NOT_ANNOTATED).all(axis=1)
    if not annotated.any():
        raise ValueError(f"no configuration has labels for every item of task {task!r}. "
                         "Fix: annotate the task first.")
    truth = np.asarray(sub["truth"].values)[real]
    if human is None:
        hmask = truth >= 0
    else:
        hmask = np.asarray(human, dtype=bool)
        if hmask.shape != (sub.sizes["item"],) and hmask.shape != (int(real.sum()),):
            raise ValueError(f"human has shape {hmask.shape}; expected ({sub.sizes['item']},) "
                             "(the cube's item dim). Fix: pass a boolean mask over items.")
        if hmask.shape == (sub.sizes["item"],):
            hmask = hmask[real]
        if (hmask & (truth < 0)).any():
            raise ValueError("human marks items without a human label (truth == -1). Fix: only "
                             "mark items whose human label is in the cube.")
    k_cls = int((np.asarray(sub["class_name"].values).astype(str) != "").sum())
    group = np.asarray(hypotheses["group"].transpose("hypothesis", "item").values)[:, real]
    cls = np.asarray(hypotheses["class_code"].values).astype(np.int64)
    return {
        "task": task, "labels": labels, "annotated": annotated, "cfg_shape": cfg_shape,
        "truth": truth, "human": hmask, "k": k_cls, "group": group, "cls": cls,
        "item_index": np.flatnonzero(real),
    }


def _cells(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct membership columns across hypotheses → (cell per item, membership per cell)."""
    memb, cell = np.unique(group.T, axis=0, return_inverse=True)
    return cell.reshape(-1), memb.T  # memb: (H, G)


def _llm_tests(labels: np.ndarray, group: np.ndarray, cls: np.ndarray, alpha: float,
               zero_rule: str) -> dict[str, np.ndarray]:
    """Each configuration's own test of each hypothesis, (H, C)."""
    from . import _kernels as K

    in_a = (group == 1).astype(np.float32)
    in_b = (group == 0).astype(np.float32)
    hit = (labels[None, :, :] == cls[:, None, None]).astype(np.float32)  # (H, C, N)
    k_a = np.einsum("hcn,hn->hc", hit, in_a)
    k_b = np.einsum("hcn,hn->hc", hit, in_b)
    n_a = in_a.sum(1)[:, None]
    n_b = in_b.sum(1)[:, None]
    return K.two_by_two(k_a, n_a, k_b, n_b, zero_rule=zero_rule, alpha=alpha, zero_conclusion="llm")


def _classify(llm: np.ndarray, human: np.ndarray) -> np.ndarray:
    """Error codes as classify_errors: 0 correct, 1 Type I, 2 Type II, 3 Type S."""
    return np.where(human == 0, (llm != 0).astype(np.int8),
                    np.where(llm == 0, 2, np.where(llm != human, 3, 0))).astype(np.int8)


def prospective_risk(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    human: Sequence[bool] | np.ndarray | None = None,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    theta_prior: tuple[float, float] = (2.0, 1.0),
    pi_prior: float = 1.0,
    draws: int = 500,
    tune: int = 500,
    chains: int | None = None,
    sampler: str = "auto",
    sample: int | None = None,
    rng: int | np.random.Generator | None = None,
) -> az.InferenceData:
    """Posterior LLM hacking risk of one study with partial human labels.

    Parameters
    ----------
    cube
        Label cube with LLM labels of every configuration to assess for all items of the task.
        Configurations with any unlabelled item (``-1``) are left out (NaN results); ``-2``
        (outside the label set) counts as "not the class" in the tests and as a missing label
        in the misclassification model.
    hypotheses
        Hypotheses of ONE task (``generate_hypotheses`` output, or a selection of it).
    human
        Boolean mask over the cube's ``item`` dim: the items whose human label the researcher
        has.  Default: every item with ``truth >= 0``.
    alpha, zero_rule
        The frequentist test applied to each configuration and to the completed human labels
        (as :func:`hackrisk.analysis.frequentist.test_hypotheses`).
    theta_prior
        Dirichlet prior of each confusion-matrix row: ``(diagonal, off-diagonal)`` concentration.
    pi_prior
        Dirichlet concentration of each cell's class shares.
    draws, tune, chains, sampler, sample, rng
        Sampler settings (see :func:`fit_risk_model`); ``sample`` picks a draw of a cube with a
        ``sample`` dim.

    Returns
    -------
    arviz.InferenceData
        ``posterior``: ``theta`` (model, prompt, temperature, true_class, class), ``pi``
        (cell, true_class), ``effect`` (hypothesis; population difference π_A − π_B of the
        hypothesis' class).  ``posterior_predictive`` (same draws): ``true_estimate`` and
        ``true_conclusion`` (hypothesis) of the full-human-label test on completed labels, and
        ``error`` (hypothesis, model, prompt, temperature; int8 codes as ``classify_errors``,
        -1 for left-out configurations).  ``constant_data``: each configuration's ``conclusion``
        and ``estimate``, ``item_cell`` and ``human`` per item, ``membership`` (hypothesis, cell).  Summarise with
        :func:`prospective_summary`.
    """
    from . import _bayes_models as bm

    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1).")
    d = _study_arrays(cube, hypotheses, human, sample)
    gen, seed = _seed(rng)
    chains = _chains(chains)
    labels, annotated, k = d["labels"], d["annotated"], d["k"]
    lab = labels[annotated]  # (C, N)
    n_cfg, n_item = lab.shape
    cell, memb = _cells(d["group"])
    n_cell = memb.shape[1]
    if n_cell > max(3, n_item // 5):
        log.warning("prospective_risk: %d cells for %d items (many distinct groupings); class "
                    "shares per cell are weakly identified. Consider fewer hypotheses per fit.",
                    n_cell, n_item)
    hm = d["human"]
    y = d["truth"]
    # Dirichlet parameters updated with the human-labelled items (exact by conjugacy)
    diag, off = theta_prior
    a_theta = np.full((n_cfg, k, k), float(off)) + (diag - off) * np.eye(k)
    hl = lab[:, hm]
    ok = (hl >= 0) & (hl < k)
    cfg_i = np.broadcast_to(np.arange(n_cfg)[:, None], hl.shape)
    yh = np.broadcast_to(y[hm][None, :], hl.shape)
    np.add.at(a_theta, (cfg_i[ok], yh[ok], hl[ok]), 1.0)
    a_pi = np.full((n_cell, k), float(pi_prior))
    np.add.at(a_pi, (cell[hm], y[hm]), 1.0)
    # unlabelled items collapsed to distinct (cell, label pattern)
    u = ~hm
    rows = np.column_stack([cell[u], lab[:, u].T]).astype(np.int64)
    if rows.shape[0] == 0:
        rows = np.zeros((0, n_cfg + 1), dtype=np.int64)
    pat, inv, w = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    pat_cell = pat[:, 0]
    pat_lab = pat[:, 1:]
    onehot = np.zeros((pat.shape[0], n_cfg * k))
    rr, cc = np.nonzero((pat_lab >= 0) & (pat_lab < k))
    onehot[rr, cc * k + pat_lab[rr, cc]] = 1.0
    log.info("prospective risk: %d items (%d human), %d configurations, %d cells, %d patterns",
             n_item, hm.sum(), n_cfg, n_cell, pat.shape[0])
    if bm.resolve_sampler(sampler) == "prior":
        # mock sampler: draws of the Dirichlet prior updated with the human-labelled items only
        # (no NUTS, no compile); for structure tests
        g_t = gen.gamma(a_theta, size=(chains * draws, *a_theta.shape))
        g_p = gen.gamma(a_pi, size=(chains * draws, *a_pi.shape))
        theta, pi = g_t / g_t.sum(-1, keepdims=True), g_p / g_p.sum(-1, keepdims=True)
        idata = None
        n_chain, n_draw = chains, draws
        post_attrs = {"sampler": "prior (mock: labelled-item Dirichlet draws)"}
    else:
        model = bm.misclassification_model(onehot=onehot, weight=w.astype(float),
                                           cell=pat_cell, a_theta=a_theta, a_pi=a_pi)
        idata = bm.sample(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                          seed=seed, cache_key=("misclassification", n_cfg, k, n_cell),
                          data={"onehot": onehot, "weight": w.astype(float), "cell": pat_cell,
                                "a_theta": a_theta, "a_pi": a_pi})
        post = idata.posterior
        post_attrs = dict(post.attrs)
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        theta = np.exp(bm.log_softmax_pinned(_flat_draws(post["eta_theta"])))  # (S, C, k, k)
        pi = np.exp(bm.log_softmax_pinned(_flat_draws(post["eta_pi"])))  # (S, G, k)
    n_s = theta.shape[0]

    # configurations' own tests
    llm = _llm_tests(lab, d["group"], d["cls"], alpha, zero_rule)
    # population effect per hypothesis
    in_a = (memb == 1).astype(float)
    in_b = (memb == 0).astype(float)
    cell_n = np.bincount(cell, minlength=n_cell).astype(float)
    wa = in_a * cell_n / np.maximum((in_a * cell_n).sum(1, keepdims=True), 1)
    wb = in_b * cell_n / np.maximum((in_b * cell_n).sum(1, keepdims=True), 1)
    cls = d["cls"]
    pi_c = pi[:, :, cls]  # (S, G, H)
    effect = np.einsum("sgh,hg->sh", pi_c, wa) - np.einsum("sgh,hg->sh", pi_c, wb)

    # completed-data human tests
    from . import _kernels as K

    lab_counts = np.zeros((n_cell, k))
    np.add.at(lab_counts, (cell[hm], y[hm]), 1.0)
    cell_onehot = np.zeros((pat.shape[0], n_cell))
    cell_onehot[np.arange(pat.shape[0]), pat_cell] = 1.0
    log_theta = np.log(np.clip(theta, 1e-300, None)).transpose(0, 1, 3, 2).reshape(n_s, n_cfg * k, k)
    true_est = np.empty((n_s, cls.size))
    true_con = np.empty((n_s, cls.size), dtype=np.int8)
    for s0 in range(0, n_s, 100):
        s1 = min(n_s, s0 + 100)
        lr = onehot[None] @ log_theta[s0:s1] + np.log(np.clip(pi[s0:s1], 1e-300, None))[:, pat_cell, :]
        lr -= lr.max(-1, keepdims=True)
        r = np.exp(lr)
        r /= r.sum(-1, keepdims=True)
        counts = _multinomial(gen, np.broadcast_to(w, r.shape[:2]), r)  # (s, P, k)
        per_cell = np.einsum("spk,pg->sgk", counts, cell_onehot) + lab_counts
        tot = per_cell.sum(-1)  # (s, G)
        k_a = np.einsum("sgh,hg->sh", per_cell[:, :, cls], in_a)
        k_b = np.einsum("sgh,hg->sh", per_cell[:, :, cls], in_b)
        n_a = tot @ in_a.T
        n_b = tot @ in_b.T
        res = K.two_by_two(k_a, n_a, k_b, n_b, zero_rule=zero_rule, alpha=alpha,
                           zero_conclusion="human")
        true_est[s0:s1] = res["estimate"]
        true_con[s0:s1] = res["conclusion"]
    err_c = _classify(llm["conclusion"][None, :, :], true_con[:, :, None])  # (S, H, C)

    # back onto the cube's configuration dims ---------------------------------------------------
    n_all = annotated.size
    cfg_shape = d["cfg_shape"]
    cfg_dims = list(CONFIG_DIMS)
    sub = cube.sel(task=d["task"])
    cfg_coords = {c: sub[c].values for c in CONFIG_DIMS}

    def _full(arr: np.ndarray, fill: Any, axis: int) -> np.ndarray:
        shape = list(arr.shape)
        shape[axis] = n_all
        out = np.full(shape, fill, dtype=np.result_type(arr.dtype, np.asarray(fill).dtype))
        idx = [slice(None)] * arr.ndim
        idx[axis] = annotated
        out[tuple(idx)] = arr
        return out.reshape(*shape[:axis], *cfg_shape, *shape[axis + 1:])

    hyp_coords = {c: ("hypothesis", hypotheses[c].values)
                  for c in hypotheses["group"].coords if hypotheses[c].dims == ("hypothesis",)}
    hyp_coords["hypothesis"] = hypotheses["hypothesis"].values
    base = {"chain": np.arange(n_chain), "draw": np.arange(n_draw)}
    classes = np.arange(k)
    posterior = xr.Dataset(
        {
            "theta": (["chain", "draw", *cfg_dims, "true_class", "class"],
                      _unflat(_full(theta, np.nan, 1), n_chain, n_draw)),
            "pi": (["chain", "draw", "cell", "true_class"], _unflat(pi, n_chain, n_draw)),
            "effect": (["chain", "draw", "hypothesis"], _unflat(effect, n_chain, n_draw)),
        },
        coords={**base, **cfg_coords, **hyp_coords, "true_class": classes, "class": classes,
                "cell": np.arange(n_cell)},
    )
    posterior.attrs.update(post_attrs)
    pred = xr.Dataset(
        {
            "true_estimate": (["chain", "draw", "hypothesis"], _unflat(true_est, n_chain, n_draw)),
            "true_conclusion": (["chain", "draw", "hypothesis"], _unflat(true_con, n_chain, n_draw)),
            "error": (["chain", "draw", "hypothesis", *cfg_dims],
                      _unflat(_full(err_c, np.int8(-1), 2).astype(np.int8), n_chain, n_draw)),
        },
        coords={**base, **cfg_coords, **hyp_coords},
    )
    const = xr.Dataset(
        {
            "conclusion": (["hypothesis", *cfg_dims],
                           _full(llm["conclusion"], np.int8(0), 1).astype(np.int8)),
            "estimate": (["hypothesis", *cfg_dims], _full(llm["estimate"], np.nan, 1)),
            "annotated": (cfg_dims, annotated.reshape(cfg_shape)),
            "item_cell": ("item", np.full(cube.sizes["item"], -1, dtype=np.int64)),
            "human": ("item", np.zeros(cube.sizes["item"], dtype=bool)),
            "membership": (["hypothesis", "cell"], memb.astype(np.int8)),
        },
        coords={**cfg_coords, **hyp_coords, "item": cube["item"].values, "cell": np.arange(n_cell)},
    )
    const["item_cell"].values[d["item_index"]] = cell
    const["human"].values[d["item_index"]] = hm
    import arviz as az

    out = az.InferenceData(posterior=posterior, posterior_predictive=pred, constant_data=const)
    if idata is not None and "sample_stats" in idata.groups():
        out.add_groups(sample_stats=idata.sample_stats)
    attrs = {
        "model": "misclassification (Dawid-Skene) model, latent classes summed out",
        "task": d["task"], "alpha": alpha, "zero_rule": zero_rule,
        "n_items": int(n_item), "n_human": int(hm.sum()),
        "true_conclusion": "the test_hypotheses human test on labels completed with posterior "
                           "draws of the unlabelled items' true classes",
    }
    for g in (out.posterior, out.posterior_predictive):
        g.attrs.update(attrs)
    return out


def _multinomial(gen: np.random.Generator, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vectorised multinomial draws by sequential binomials; ``p`` (..., k) rows sum to 1."""
    n = np.asarray(n, dtype=np.int64)
    out = np.zeros(p.shape)
    rest_n = n.copy()
    rest_p = np.ones(p.shape[:-1])
    for c in range(p.shape[-1] - 1):
        q = np.clip(p[..., c] / np.maximum(rest_p, 1e-300), 0.0, 1.0)
        x = gen.binomial(rest_n, q)
        out[..., c] = x
        rest_n = rest_n - x
        rest_p = rest_p - p[..., c]
    out[..., -1] = rest_n
    return out


def prospective_summary(idata: az.InferenceData, *, ci: float = 0.9) -> xr.Dataset:
    """Per-configuration error probabilities and the effect posterior of :func:`prospective_risk`.

    Returns
    -------
    xarray.Dataset
        On ``(hypothesis, model, prompt, temperature)``: ``p_type_i``, ``p_type_ii``,
        ``p_type_s``, ``p_wrong`` (their sum), ``conclusion`` (the configuration's own).  On
        ``hypothesis``: ``effect`` (ci: estimate = median, lower, upper), ``p_effect_positive``,
        ``p_true_conclusion`` (true_conclusion: -1, 0, 1) of the full-human-label test.
    """
    pp = idata.posterior_predictive
    err = pp["error"]
    valid = err >= 0
    out = xr.Dataset()
    for name, code in (("p_type_i", 1), ("p_type_ii", 2), ("p_type_s", 3)):
        out[name] = (err == code).mean(("chain", "draw")).where(valid.all(("chain", "draw")))
    out["p_wrong"] = out["p_type_i"] + out["p_type_ii"] + out["p_type_s"]
    out["conclusion"] = idata.constant_data["conclusion"]
    eff = idata.posterior["effect"]
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    q = eff.quantile([0.5, lo, hi], dim=("chain", "draw")).rename(quantile="ci")
    out["effect"] = q.assign_coords(ci=["estimate", "lower", "upper"])
    out["p_effect_positive"] = (eff > 0).mean(("chain", "draw"))
    tc = pp["true_conclusion"]
    out["p_true_conclusion"] = xr.concat([(tc == v).mean(("chain", "draw")) for v in (-1, 0, 1)],
                                         dim=pd.Index([-1, 0, 1], name="true_conclusion"))
    out.attrs.update({k: v for k, v in pp.attrs.items() if isinstance(v, (str, int, float))})
    return out


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------
def calibration_table(
    p_pred: np.ndarray | xr.DataArray,
    wrong: np.ndarray | xr.DataArray,
    *,
    n_bins: int = 5,
    cluster: np.ndarray | xr.DataArray | None = None,
) -> pd.DataFrame:
    """Predicted probability of a wrong conclusion against the observed error frequency.

    Parameters
    ----------
    p_pred
        Predicted probabilities (any shape; NaN = left out).
    wrong
        Observed 0/1 outcomes, same shape.
    n_bins
        Equal-width bins of ``p_pred`` on [0, 1].
    cluster
        Optional cluster label per prediction (e.g. the hypothesis or study): outcomes that share
        a cluster are correlated, so the Monte-Carlo SE is computed from cluster sums of the
        residuals ``wrong − p_pred``.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin_lower``, ``bin_upper``, ``n``, ``predicted`` (mean),
        ``observed`` (frequency), ``se`` (SE of observed − predicted under calibration: binomial
        ``sqrt(Σ p(1−p))/n``, or the cluster-robust one, whichever is larger), ``z``.
    """
    p = np.asarray(p_pred, dtype=float).ravel()
    o = np.asarray(wrong, dtype=float).ravel()
    if p.shape != o.shape:
        raise ValueError(f"p_pred has {p.size} values, wrong {o.size}. Fix: pass equal shapes.")
    cl = None if cluster is None else np.asarray(cluster).ravel()
    ok = np.isfinite(p) & np.isfinite(o)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    rows = []
    for i in range(n_bins):
        m = ok & (b == i)
        if not m.any():
            continue
        n = int(m.sum())
        res = o[m] - p[m]
        se_bin = np.sqrt(np.sum(p[m] * (1 - p[m]))) / n
        se = se_bin
        if cl is not None:
            _, ci = np.unique(cl[m], return_inverse=True)
            sums = np.bincount(ci, weights=res)
            se = max(se_bin, np.sqrt(np.sum(sums**2)) / n)
        rows.append({"bin_lower": edges[i], "bin_upper": edges[i + 1], "n": n,
                     "predicted": float(p[m].mean()), "observed": float(o[m].mean()),
                     "se": float(se), "z": float(res.mean() / se) if se > 0 else 0.0})
    return pd.DataFrame(rows)


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
    from ..plots import OKABE_ITO

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


def plot_prospective_risk(
    result: az.InferenceData | xr.Dataset,
    *,
    hypothesis: Any = None,
    ax: Axes | None = None,
) -> Axes:
    """Stacked P(Type I / II / S) per configuration for one hypothesis of a study.

    ``result`` is :func:`prospective_risk` output or its :func:`prospective_summary`;
    ``hypothesis`` a coordinate value (default: the first).
    """
    from ..plots import ERROR_COLORS

    s = result if isinstance(result, xr.Dataset) else prospective_summary(result)
    h = s["hypothesis"].values[0] if hypothesis is None else hypothesis
    s = s.sel(hypothesis=h).stack(configuration=list(CONFIG_DIMS))
    s = s.dropna("configuration", subset=["p_wrong"])
    order = np.argsort(np.asarray(s["p_wrong"].values))
    s = s.isel(configuration=order)
    labels = [f"{m}/{p}/T={t:g}" for m, p, t in s["configuration"].values]
    ax = _axes(ax, figsize=(6.4, max(3.0, 0.22 * len(labels) + 1)))
    left = np.zeros(len(labels))
    y = np.arange(len(labels))
    for name, key in (("Type I", "p_type_i"), ("Type II", "p_type_ii"), ("Type S", "p_type_s")):
        v = np.asarray(s[key].values)
        ax.barh(y, v, left=left, color=ERROR_COLORS[name], label=name)
        left += v
    ax.set_yticks(y, labels, fontsize="x-small")
    ax.set_xlim(0, 1)
    ax.set_xlabel("posterior probability that this configuration's conclusion is wrong")
    ax.set_title(f"Prospective LLM hacking risk, hypothesis {h}")
    ax.legend(fontsize="small", loc="lower right")
    return ax
