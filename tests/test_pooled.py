"""Pooled GT-vs-LLM regression: parity with statsmodels' clustered GLM, edge cases, speed."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import xarray as xr

import hackrisk
from hackrisk.analysis.pooled import pooled_from_counts, pooled_regression

sm = pytest.importorskip("statsmodels.api")


@pytest.fixture(scope="module")
def sim():
    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=[300, 200], n_classes=[3, 2], models=2,
                                           n_prompts=2, temperatures=(0.0, 1.0), rng=1)
    gen = np.random.default_rng(2)
    lab = cube["label"].values.copy()
    real = cube["item_id"].values != ""
    lab[(gen.random(lab.shape) < 0.03) & real[:, None, None, None, :]] = -2  # unparseable answers
    truth = cube["truth"].values.copy()
    truth[(gen.random(truth.shape) < 0.3) & real] = -1  # partial human labels
    cube = cube.assign(label=(cube["label"].dims, lab), truth=(cube["truth"].dims, truth))
    return cube, hackrisk.hypotheses.generate_hypotheses(cube)


def _statsmodels_fit(cube, hyps, h, m, p, k, use_correction):
    t = list(cube["task"].values).index(hyps["task"].values[h])
    c = int(hyps["class_code"].values[h])
    g = hyps["group"].values[h]
    tr = cube["truth"].values[t]
    lab = cube["label"].values[t, m, p, k]
    ok = (g >= 0) & (tr >= 0)
    x = (g[ok] == 1).astype(float)
    yh, yl = (tr[ok] == c).astype(float), (lab[ok] == c).astype(float)
    n = x.size
    design = np.column_stack([np.ones(2 * n), np.r_[x, x], np.r_[np.zeros(n), np.ones(n)], np.r_[np.zeros(n), x]])
    ids = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.GLM(np.r_[yh, yl], design, family=sm.families.Binomial()).fit(
            cov_type="cluster", cov_kwds={"groups": np.r_[ids, ids], "use_correction": use_correction}, tol=1e-14)


@pytest.mark.parametrize(("correction", "use_correction"), [("none", False), ("statsmodels", True)])
def test_parity_with_statsmodels_cluster_robust(sim, correction, use_correction):
    cube, hyps = sim
    res = pooled_regression(cube, hyps, correction=correction)
    gen = np.random.default_rng(0)
    checked = 0
    for _ in range(25):
        h = int(gen.integers(hyps.sizes["hypothesis"]))
        m, p, k = (int(gen.integers(2)) for _ in range(3))
        cell = res.isel(hypothesis=h, model=m, prompt=p, temperature=k)
        if bool(cell.separated):
            continue
        fit = _statsmodels_fit(cube, hyps, h, m, p, k, use_correction)
        cov = fit.cov_params()
        np.testing.assert_allclose(float(cell.delta), fit.params[3], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(float(cell.delta_se), fit.bse[3], rtol=1e-8)
        np.testing.assert_allclose(float(cell.delta_p_value), fit.pvalues[3], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(float(res.human_coef[h]), fit.params[1], rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(float(res.human_se[h]), fit.bse[1], rtol=1e-8)
        np.testing.assert_allclose(float(cell.llm_coef), fit.params[1] + fit.params[3], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(float(cell.llm_se), np.sqrt(cov[1, 1] + cov[3, 3] + 2 * cov[1, 3]), rtol=1e-8)
        checked += 1
    assert checked >= 15


def test_r_vcovcl_factor_and_signs():
    """Default = R's sandwich::vcovCL on a glm: HC0 times G/(G-1); effects A minus B."""
    base = pooled_from_counts(40, 60, 30, 20, 25, 30, 22, 15, correction="none")
    r = pooled_from_counts(40, 60, 30, 20, 25, 30, 22, 15)
    np.testing.assert_allclose(r["delta_se"], base["delta_se"] * np.sqrt(100 / 99), rtol=1e-12)
    assert r["human_coef"] > 0  # 30/40 in A vs 20/60 in B
    np.testing.assert_allclose(r["human_coef"], np.log(30 / 10) - np.log(20 / 40), rtol=1e-12)
    np.testing.assert_allclose(r["delta"], (np.log(25 / 15) - np.log(30 / 30)) - r["human_coef"], rtol=1e-12)


def test_identical_sources_give_zero_delta_and_separation_is_nan():
    r = pooled_from_counts(50, 50, 20, 10, 20, 10, 20, 10)
    assert r["delta"] == 0 and r["delta_se"] < 1e-7 and r["delta_p_value"] == 1 and not r["differs"]
    s = pooled_from_counts(50, 50, 50, 10, 20, 10, 20, 10)  # human share 1 in group A
    assert s["separated"] and np.isnan(s["delta"]) and not s["differs"]
    with pytest.raises(ValueError, match="correction="):
        pooled_from_counts(1, 1, 1, 1, 1, 1, 1, 1, correction="HC3")


def test_not_annotated_configuration_is_nan(sim):
    cube, hyps = sim
    lab = cube["label"].values.copy()
    lab[0, 1, 0, 0, 0] = -1
    res = pooled_regression(cube.assign(label=(cube["label"].dims, lab)), hyps)
    on0 = res["task"].values == cube["task"].values[0]
    assert not res["annotated"].values[on0, 1, 0, 0].any()
    assert np.isnan(res["delta"].values[on0, 1, 0, 0]).all()
    assert res["annotated"].values[on0, 0, 0, 0].all()


def test_paper_scale_in_seconds():
    """About 1,000 hypotheses x 100 configurations x 2,000 items."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=2000, n_classes=3, models=10, n_prompts=5,
                                           temperatures=(0.0, 1.0), rng=3)
    hyps = hackrisk.hypotheses.generate_hypotheses(cube)
    reps = max(1, 1000 // hyps.sizes["hypothesis"])
    big = xr.concat([hyps] * reps, dim="hypothesis", data_vars="minimal", coords="minimal", compat="override")
    big = big.assign_coords(hypothesis=np.arange(big.sizes["hypothesis"]))
    t0 = time.perf_counter()
    res = pooled_regression(cube, big)
    elapsed = time.perf_counter() - t0
    assert res.sizes["hypothesis"] >= 900 and np.isfinite(res["delta"]).mean() > 0.5
    assert elapsed < 20, elapsed
