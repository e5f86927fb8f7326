"""Local false discovery rate of the human z-scores: how sure is a human "effect"?

Efron's two-group model (Efron 2004, "Large-scale simultaneous hypothesis testing"; Efron 2010,
*Large-Scale Inference*, ch. 5–6): the z-scores of many hypotheses come from a mixture
``f(z) = p0 f0(z) + (1 - p0) f1(z)``; the local false discovery rate ``fdr(z) = p0 f0(z) / f(z)``
is the posterior probability that a hypothesis with score ``z`` is null, and ``1 - fdr(z)`` the
probability that its effect exists.

* ``f`` is estimated by Lindsey's method: the z-scores are binned (``bins`` equal bins over their
  range) and the bin counts fitted by a Poisson regression on a natural cubic spline basis with
  ``df`` degrees of freedom (R: ``glm(counts ~ ns(midpoints, df), poisson)``, as in ``locfdr``).
* the empirical null ``f0 = N(δ0, σ0²)`` and ``p0`` come from central matching: a quadratic is
  fitted to ``log f̂`` over the central part of the z-scores (between their ``pct0`` and
  ``1 - pct0`` quantiles); its curvature gives ``σ0``, its location ``δ0``, its height ``p0``
  (``nulltype="central"``, ``locfdr``'s ``nulltype = 2``). ``nulltype="mle"`` (``locfdr``'s
  ``nulltype = 1``, the authors' choice) fits ``N(δ0, σ0²)`` by maximum likelihood to the z-scores
  inside a central window, as a normal truncated to that window, and sets ``p0`` to the share of
  z-scores in the window divided by the null's probability of it; the window is the median ±
  ``b · IQR / 1.349`` with ``b = 4.3 exp(-0.26 log10 N)`` (``locfdr``'s default). ``nulltype=
  "theoretical"`` uses ``N(0, 1)`` with ``p0`` matched over the central bins.

The authors of Baumann et al. (2025) ran R's ``locfdr(z, nulltype = 1, df = 15)`` on the human
z-scores with ``|z| >= 10`` set aside (given ``fdr = 1e-4``); ``nulltype="mle", df=15,
extreme=10`` follow those settings (the MLE window and fit are re-stated from ``locfdr``'s
description, not checked against R, which is not installed here). The default is central
matching (``docs/conventions.md``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special, stats

__all__ = ["local_fdr", "human_lfdr", "lfdr_weights"]


def _natural_spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Natural cubic spline basis (truncated-power form, ESL eq. 5.4–5.5) incl. the constant."""
    k = knots.size
    cols = [np.ones_like(x), x]

    def d(j):
        return (np.maximum(x - knots[j], 0) ** 3 - np.maximum(x - knots[-1], 0) ** 3) / (knots[-1] - knots[j])

    last = d(k - 2)
    for j in range(k - 2):
        cols.append(d(j) - last)
    return np.column_stack(cols)


def _poisson_fit(x: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Fitted means of a Poisson regression with log link (IRLS from ``log(y + 1)``)."""
    eta = np.log(y + 1.0)
    beta = np.linalg.lstsq(x, eta, rcond=None)[0]
    dev_old = np.inf
    for _ in range(max_iter):
        eta = x @ beta
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        w = mu
        beta = np.linalg.lstsq(x * np.sqrt(w)[:, None], z * np.sqrt(w), rcond=None)[0]
        mu = np.exp(x @ beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2 * np.sum(np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            break
        dev_old = dev
    return np.exp(x @ beta)


def _truncated_normal_null(z: np.ndarray) -> tuple[float, float, float]:
    """(δ0, σ0, p0) by maximum likelihood of a normal truncated to a central window of ``z``."""
    from scipy import optimize

    n = z.size
    q1, q3 = np.quantile(z, [0.25, 0.75])
    b = 4.3 * np.exp(-0.26 * np.log10(n))
    half = b * (q3 - q1) / (2 * stats.norm.ppf(0.75))
    med = np.median(z)
    lo, hi = med - half, med + half
    z0 = z[(z >= lo) & (z <= hi)]

    def nll(par):
        d, log_s = par
        s = np.exp(log_s)
        mass = special.ndtr((hi - d) / s) - special.ndtr((lo - d) / s)
        return -(stats.norm.logpdf(z0, d, s).sum() - z0.size * np.log(mass))

    sd0 = (q3 - q1) / (2 * stats.norm.ppf(0.75))
    res = optimize.minimize(nll, x0=[med, np.log(sd0)], method="Nelder-Mead",
                            options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 2000})
    d, s = float(res.x[0]), float(np.exp(res.x[1]))
    mass = special.ndtr((hi - d) / s) - special.ndtr((lo - d) / s)
    return d, s, float(z0.size / n / mass)


def local_fdr(z, *, bins: int = 120, df: int = 7, pct0: float = 0.25, nulltype: str = "central",
              extreme: float | None = None) -> dict:
    """Efron's local false discovery rate of a vector of z-scores.

    Parameters
    ----------
    z
        z-scores (NaN allowed: their fdr is NaN).
    bins
        Histogram bins over the range of the z-scores (``locfdr``'s ``bre = 120``).
    df
        Degrees of freedom of the natural spline of the Poisson regression (``locfdr`` default 7;
        the authors used 15).
    pct0
        Central matching uses the z-scores between the ``pct0`` and ``1 - pct0`` quantiles.
    nulltype
        ``"central"`` (empirical null by central matching), ``"mle"`` (truncated-normal maximum
        likelihood on a central window, ``locfdr``'s ``nulltype = 1``) or ``"theoretical"``
        (``N(0, 1)``).
    extreme
        z-scores with ``|z| >= extreme`` are set aside before the fit and get ``fdr = 1e-4`` (the
        authors: 10); ``None`` keeps all.

    Returns
    -------
    dict
        ``fdr`` (same shape as ``z``, capped at 1), ``p0`` (null share), ``delta0``, ``sigma0``
        (the null), ``midpoints``, ``counts``, ``fitted`` (the Poisson fit of the counts).
    """
    if nulltype not in ("central", "mle", "theoretical"):
        raise ValueError(f"local_fdr: nulltype={nulltype!r}; use 'central', 'mle' or 'theoretical'.")
    z = np.asarray(z, dtype=np.float64)
    out_fdr = np.full(z.shape, np.nan)
    ok = np.isfinite(z)
    far = ok & (np.abs(z) >= extreme) if extreme is not None else np.zeros(z.shape, dtype=bool)
    use = ok & ~far
    zz = z[use]
    if zz.size < max(50, 2 * df):
        raise ValueError(f"local_fdr: {zz.size} usable z-scores; the two-group fit needs at least "
                         f"{max(50, 2 * df)}. Fix: pool more hypotheses (e.g. all tasks of the study).")
    lo, hi = zz.min(), zz.max()
    pad = 1e-9 * max(1.0, hi - lo)
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    counts = np.histogram(zz, bins=edges)[0].astype(np.float64)
    mid = 0.5 * (edges[:-1] + edges[1:])
    width = edges[1] - edges[0]
    u = (mid - mid[0]) / (mid[-1] - mid[0])  # scaled for conditioning
    knots = np.quantile(u, np.linspace(0, 1, df + 1))
    basis = _natural_spline_basis(u, knots)
    fitted = _poisson_fit(basis, counts)
    n = zz.size
    if nulltype == "central":
        lo_q, hi_q = np.quantile(zz, [pct0, 1 - pct0])
        centre = (mid >= lo_q) & (mid <= hi_q)
        a, b, c = np.polynomial.polynomial.polyfit(mid[centre], np.log(fitted[centre]), 2)
        if c >= 0:
            raise ValueError("local_fdr: central matching found no peak (log density not concave at the "
                             "centre). Fix: nulltype='theoretical' or more z-scores.")
        sigma0 = np.sqrt(-1 / (2 * c))
        delta0 = b * sigma0**2
        p0 = np.exp(a + delta0**2 / (2 * sigma0**2)) * np.sqrt(2 * np.pi) * sigma0 / (n * width)
    elif nulltype == "mle":
        delta0, sigma0, p0 = _truncated_normal_null(zz)
    else:
        delta0, sigma0 = 0.0, 1.0
        lo_q, hi_q = np.quantile(zz, [pct0, 1 - pct0])
        centre = (mid >= lo_q) & (mid <= hi_q)
        p0 = fitted[centre].sum() / (n * width * stats.norm.pdf(mid[centre]).sum())
    p0 = float(min(p0, 1.0))

    def fdr_at(x):
        f = np.interp(x, mid, fitted, left=fitted[0], right=fitted[-1]) / (n * width)
        f0 = stats.norm.pdf(x, delta0, sigma0)
        return np.minimum(1.0, p0 * f0 / f)

    out_fdr[use] = fdr_at(zz)
    out_fdr[far] = 1e-4
    return {"fdr": out_fdr, "p0": p0, "delta0": float(delta0), "sigma0": float(sigma0), "midpoints": mid,
            "counts": counts, "fitted": fitted}


def human_lfdr(tests: xr.Dataset, **kwargs) -> xr.DataArray:
    """Local fdr of every hypothesis' human z-score (all hypotheses of ``tests`` pooled).

    The z-score is ``human_z`` where present, else the signed normal quantile of
    ``human_p_value``. Keyword arguments go to :func:`local_fdr`. Returns a DataArray on
    ``hypothesis`` (NaN where the human test has no statistic) with attrs ``p0``, ``delta0``,
    ``sigma0``.
    """
    if "human_z" in tests:
        z = np.asarray(tests["human_z"].values, dtype=np.float64)
    elif "human_p_value" in tests and "human_estimate" in tests:
        p = np.asarray(tests["human_p_value"].values, dtype=np.float64)
        z = np.sign(tests["human_estimate"].values) * -special.ndtri(p / 2)
    else:
        raise ValueError("human_lfdr: tests need 'human_z' (or 'human_p_value' and 'human_estimate'). "
                         "Fix: pass the output of test_hypotheses.")
    res = local_fdr(z, **kwargs)
    da = xr.DataArray(res["fdr"], dims=("hypothesis",), coords={"hypothesis": tests["hypothesis"].values})
    da.attrs.update({"p0": res["p0"], "delta0": res["delta0"], "sigma0": res["sigma0"],
                     "description": "local false discovery rate of the human z-score (P(no effect | z))"})
    return da


def lfdr_weights(tests: xr.Dataset, lfdr: xr.DataArray | None = None, **kwargs) -> xr.DataArray:
    """Weight of each hypothesis = probability that its human conclusion is right about existence.

    ``1 - fdr`` where the human test is significant (the effect exists), ``fdr`` where it is not
    (there is no effect). Passed to :func:`hackrisk.analysis.risk.risk` as ``weights=``, errors
    against doubtful human "truths" count less. Hypotheses without a human z-score get weight 0.
    """
    if lfdr is None:
        lfdr = human_lfdr(tests, **kwargs)
    sig = tests["human_conclusion"] != 0
    w = xr.where(sig, 1 - lfdr, lfdr).fillna(0.0)
    w.attrs["description"] = "P(the human conclusion is right about the existence of an effect)"
    return w
