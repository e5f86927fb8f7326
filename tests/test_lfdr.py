"""Local fdr (Efron): null share recovered on simulated two-group mixtures; risk weighted by it."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hackrisk.analysis import risk as R
from hackrisk.analysis.lfdr import human_lfdr, lfdr_weights, local_fdr


def _mixture(seed, n=4000, p0=0.8, mu=3.5):
    g = np.random.default_rng(seed)
    null = g.random(n) < p0
    z = np.where(null, g.normal(0, 1, n), g.choice([-1, 1], n) * g.normal(mu, 1, n))
    return z, null


def test_null_share_recovered_within_monte_carlo_error():
    p0 = np.array([local_fdr(_mixture(s)[0])["p0"] for s in range(20)])
    se = p0.std(ddof=1) / np.sqrt(p0.size)
    assert abs(p0.mean() - 0.8) < 3 * se, (p0.mean(), se)
    assert 0.005 < p0.std() < 0.05  # a real estimate, not a constant


def test_mle_null_recovers_null_share_when_alternatives_are_outside_its_window():
    """nulltype='mle' (the authors' locfdr nulltype = 1): unbiased when the non-null z-scores lie
    outside the central window (here at +-6); with alternatives reaching into it (+-3.5) the
    truncated-normal fit absorbs some of them and p0 comes out high — a property of the method."""
    est = np.array([[local_fdr(_mixture(s, mu=6.0)[0], nulltype="mle")[k] for k in ("p0", "delta0", "sigma0")]
                    for s in range(20)])
    se = est.std(0, ddof=1) / np.sqrt(len(est))
    assert (np.abs(est.mean(0) - [0.8, 0.0, 1.0]) < 3 * se).all(), (est.mean(0), se)
    near = np.mean([local_fdr(_mixture(s)[0], nulltype="mle")["p0"] for s in range(5)])
    assert 0.8 < near < 0.9


def test_empirical_null_found_when_shifted_and_wider():
    """Null N(0.3, 1.2^2) for 90 %: central matching recovers it (df=10: the spline must bend enough)."""
    est = []
    for s in range(10):
        g = np.random.default_rng(s)
        n = 6000
        null = g.random(n) < 0.9
        z = np.where(null, g.normal(0.3, 1.2, n), g.normal(4.5, 1, n))
        res = local_fdr(z, df=10)
        est.append((res["delta0"], res["sigma0"], res["p0"]))
    est = np.array(est)
    se = est.std(0, ddof=1) / np.sqrt(len(est))
    assert (np.abs(est.mean(0) - [0.3, 1.2, 0.9]) < 3 * se).all(), (est.mean(0), se)
    theo = local_fdr(z, nulltype="theoretical")
    assert theo["delta0"] == 0 and theo["sigma0"] == 1


def test_fdr_shape_and_poisson_fit():
    z, null = _mixture(7)
    res = local_fdr(z, df=15)
    # Poisson regression with an intercept keeps the total count
    np.testing.assert_allclose(res["fitted"].sum(), res["counts"].sum(), rtol=1e-6)
    fdr = res["fdr"]
    assert (fdr >= 0).all() and (fdr <= 1).all()
    assert fdr[null].mean() > 0.85 and fdr[~null].mean() < 0.2
    assert fdr[np.argmin(np.abs(z))] > 0.9 and fdr[np.argmax(np.abs(z))] < 0.01
    # the authors: |z| >= 10 set aside with fdr 1e-4; NaN stays NaN
    z2 = np.r_[z, 12.0, np.nan]
    out = local_fdr(z2, extreme=10)["fdr"]
    assert out[-2] == 1e-4 and np.isnan(out[-1])
    with pytest.raises(ValueError, match="at least"):
        local_fdr(z[:20])


def _tests_with_z(seed=0, h=1000):
    g = np.random.default_rng(seed)
    null = g.random(h) < 0.85
    z = np.where(null, g.normal(0, 1, h), g.choice([-1, 1], h) * g.normal(3.5, 1, h))
    hc = np.where(np.abs(z) > 1.96, np.sign(z), 0).astype(np.int8)
    c = np.where(g.random((h, 2, 1, 1)) < 0.8, hc[:, None, None, None], 0).astype(np.int8)
    dims = ("hypothesis", "model", "prompt", "temperature")
    return xr.Dataset(
        {"conclusion": (dims, c), "estimate": (dims, c * 0.1 + 0.01), "annotated": (dims, np.ones(c.shape, bool)),
         "human_conclusion": ("hypothesis", hc), "human_estimate": ("hypothesis", z / 10),
         "human_z": ("hypothesis", z), "human_p_value": ("hypothesis", 2 * (1 - _phi(np.abs(z))))},
        coords={"hypothesis": np.arange(h), "task": ("hypothesis", np.array(["a", "b"] * (h // 2), dtype=object)),
                "model": ["m0", "m1"], "prompt": ["p"], "temperature": [0.0]},
    ), null


def _phi(x):
    from scipy.stats import norm

    return norm.cdf(x)


def test_risk_weighted_by_lfdr():
    tests, _ = _tests_with_z()
    lf = human_lfdr(tests)
    assert lf.dims == ("hypothesis",) and 0.75 < lf.attrs["p0"] < 0.95
    w = lfdr_weights(tests, lf)
    sig = tests.human_conclusion.values != 0
    np.testing.assert_allclose(w.values[sig], 1 - lf.values[sig])
    np.testing.assert_allclose(w.values[~sig], lf.values[~sig])
    plain = R.risk(tests, n_boot=0)
    ones = R.risk(tests, n_boot=0, weights=xr.ones_like(w))
    np.testing.assert_allclose(plain.type_i.values, ones.type_i.values)
    weighted = R.risk(tests, n_boot=20, weights=w)
    assert weighted.attrs["weighted"] == 1 and np.isfinite(weighted.type_ii.sel(ci="lower"))
    # by hand: per task, weighted mean over its human-significant hypotheses of the Type II rate
    e = R.classify_errors(tests)
    rate = (e.error == 2).mean(("model", "prompt", "temperature")).values
    want = []
    for task in ("a", "b"):
        m = sig & (tests.task.values == task)
        want.append(np.sum(w.values[m] * rate[m]) / np.sum(w.values[m]))
    np.testing.assert_allclose(float(weighted.type_ii.sel(ci="estimate")), np.mean(want), rtol=1e-10)
    # weight 0 = the hypothesis is left out
    w0 = xr.where(tests.hypothesis < 100, 0.0, 1.0)
    np.testing.assert_allclose(R.risk(tests, n_boot=0, weights=w0).type_i.values,
                               R.risk(tests.isel(hypothesis=slice(100, None)), n_boot=0).type_i.values)
    with pytest.raises(ValueError, match="weights"):
        R.risk(tests, n_boot=0, weights=np.ones(3))
