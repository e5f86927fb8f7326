"""Tests of hackrisk.analysis.mitigation: sampling designs, estimators, evaluation.

Correctness is shown by (1) parity with ppi-python (PPI++ mean and logistic, 1e-6), (2) exact
reductions (λ = 0 → human only = statsmodels on the labelled subset; a perfect annotator → the
full-data estimate), (3) seeded Monte-Carlo coverage and size on simulated multiverses whose
true effects are known (fast here, full version marked slow), (4) design invariants.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.special import logit
from scipy.stats import norm

import hackrisk
from hackrisk.analysis import _mitigation_kernels as K
from hackrisk.analysis import mitigation as mt

from ._data import shared_data_dir as _data_dir

Z = norm.ppf(0.975)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def _hyps(cube: xr.Dataset, covs=("x0",), cls: int = 0) -> xr.Dataset:
    """One hypothesis per (covariate, task): group = the binary covariate."""
    gs, tasks = [], []
    real = cube["item_id"].values != ""
    for c in covs:
        gs.append(np.where(real, cube[f"cov_{c}"].values.astype(np.int8), -1))
        tasks.extend(cube["task"].values)
    g = np.concatenate(gs).astype(np.int8)
    return xr.Dataset(
        {"group": (("hypothesis", "item"), g)},
        coords={"hypothesis": np.arange(g.shape[0]), "task": ("hypothesis", np.array(tasks, dtype=object)),
                "class_code": ("hypothesis", np.full(g.shape[0], cls))},
    )


@pytest.fixture(scope="module")
def small():
    cube, truth = hackrisk.simulate_multiverse(n_tasks=2, n_items=500, n_covariates=2, models=2,
                                               n_prompts=2, temperatures=(0.0, 1.0), rng=3)
    return cube, truth, _hyps(cube, ("x0", "x1"))


def _perfect(cube: xr.Dataset) -> xr.Dataset:
    out = cube.copy(deep=True)
    out["label"].values[:] = np.broadcast_to(
        cube["truth"].values[:, None, None, None, :], cube["label"].shape)
    return out


# ---------------------------------------------------------------------------------------------
# parity with ppi-python
# ---------------------------------------------------------------------------------------------


def _toy(rng, n_items=400, n_lab=90, acc=0.8):
    gen = np.random.default_rng(rng)
    y = (gen.random(n_items) < 0.4).astype(float)
    yh = np.where(gen.random(n_items) < acc, y, 1 - y)
    g = (gen.random(n_items) < 0.5).astype(float)
    lab = np.zeros(n_items)
    lab[gen.choice(n_items, n_lab, replace=False)] = 1
    return y, yh, g, lab


@pytest.mark.parametrize("lam", [None, 0.0, 0.4, 1.0])
def test_ppi_mean_matches_ppi_python(lam):
    ppi_py = pytest.importorskip("ppi_py")
    y, yh, _, lab = _toy(0)
    L = lab.astype(bool)
    est, se, lam_hat, _, _ = K.ppi_mean(y, yh, lab, 1 - lab, lam=lam)
    pe = ppi_py.ppi_mean_pointestimate(y[L], yh[L], yh[~L], lam=lam)
    lo, hi = ppi_py.ppi_mean_ci(y[L], yh[L], yh[~L], alpha=0.05, lam=lam)
    assert abs(est - float(np.ravel(pe)[0])) < 1e-10
    assert abs(est - Z * se - float(np.ravel(lo)[0])) < 1e-8
    assert abs(est + Z * se - float(np.ravel(hi)[0])) < 1e-8
    if lam is None:
        assert 0 < lam_hat < 1


def test_ppi_difference_via_mitigate_matches_ppi_python(small):
    """Per-group PPI++ means of mitigate() = ppi_mean_ci on each group (equal weights per group)."""
    ppi_py = pytest.importorskip("ppi_py")
    cube, _, hyp = small
    design = mt.draw_human_sample(cube, hyp, n=120, n_draws=3, rng=0)
    res = mt.mitigate(cube, hyp, design, method="ppi", small_sample=False)
    a = mt._arrays(cube, hyp)
    for h, (m, p, t), d in [(0, (0, 0, 0), 0), (1, (1, 1, 1), 2), (3, (0, 1, 0), 1)]:
        S = design["selected"].values[h, d]
        y, yh, g = a["Y"][h], a["Yh"][h, m, p, t], a["group"][h]
        parts = []
        for grp in (1, 0):
            L, U = (g == grp) & S, (g == grp) & ~S
            pe = float(np.ravel(ppi_py.ppi_mean_pointestimate(y[L], yh[L], yh[U]))[0])
            lo, hi = ppi_py.ppi_mean_ci(y[L], yh[L], yh[U], alpha=0.05)
            parts.append((pe, (float(np.ravel(hi)[0]) - float(np.ravel(lo)[0])) / (2 * Z)))
        r = res.isel(hypothesis=h, model=m, prompt=p, temperature=t, draw=d)
        assert abs(float(r["estimate"]) - (parts[0][0] - parts[1][0])) < 1e-8
        assert abs(float(r["se"]) - np.hypot(parts[0][1], parts[1][1])) < 1e-8


@pytest.mark.filterwarnings("ignore::FutureWarning")  # sklearn's `penalty` deprecation, inside ppi_py
def test_ppi_logistic_matches_ppi_python(small, monkeypatch):
    """PPI++ logistic CIs of mitigate() = ppi_logistic_ci with the same 1/π weights (1e-6).

    Our estimate is the centre of the CI (ppi-python's CI re-tunes λ at its tuned point
    estimate; ``ppi_logistic_pointestimate(lam=our λ)`` gives the same point). ppi-python's numba
    kernels run as their plain-Python originals (``py_func``: same code, no 30-60 s compilation).
    """
    ppi_py = pytest.importorskip("ppi_py")
    for name in ("_logistic_get_stats", "safe_expit"):
        fn = getattr(ppi_py.ppi, name)
        monkeypatch.setattr(ppi_py.ppi, name, getattr(fn, "py_func", fn))
    cube, _, hyp = small
    design = mt.draw_human_sample(cube, hyp, n=150, n_draws=2, rng=1)
    res = mt.mitigate(cube, hyp, design, method="ppi", estimand="logistic", small_sample=False)
    a = mt._arrays(cube, hyp)
    for h, (m, p, t), d in [(0, (0, 0, 0), 0), (2, (1, 0, 1), 1)]:
        S = design["selected"].values[h, d]
        pi = design["pi"].values[h, d]
        ok = a["valid"][h]
        L, U = ok & S, ok & ~S
        X = np.column_stack([np.ones(ok.sum()), (a["group"][h][ok] == 1).astype(float)])
        XL, XU = X[S[ok]], X[~S[ok]]
        y, yh = a["Y"][h], a["Yh"][h, m, p, t]
        kw = {"w": 1 / pi[L], "w_unlabeled": 1 / (1 - pi[U])}
        lo, hi = ppi_py.ppi_logistic_ci(XL, y[L], yh[L], XU, yh[U], alpha=0.05, **kw)
        r = res.isel(hypothesis=h, model=m, prompt=p, temperature=t, draw=d)
        assert abs(float(r["lower"]) - lo[1]) < 1e-6
        assert abs(float(r["upper"]) - hi[1]) < 1e-6
        pe = ppi_py.ppi_logistic_pointestimate(XL, y[L], yh[L], XU, yh[U], lam=float(r["lam"]), **kw)
        assert abs(float(r["estimate"]) - pe[1]) < 1e-6


# ---------------------------------------------------------------------------------------------
# exact reductions
# ---------------------------------------------------------------------------------------------


def test_lambda_zero_is_human_only(small):
    cube, _, hyp = small
    design = mt.draw_human_sample(cube, hyp, n=100, n_draws=4, rng=2)
    for estimand in ("difference", "logistic"):
        hum = mt.mitigate(cube, hyp, design, method="human", estimand=estimand)
        for method in ("ppi", "cdi"):
            if method == "cdi" and estimand == "logistic":
                continue
            z = mt.mitigate(cube, hyp, design, method=method, estimand=estimand, lam=0.0)
            np.testing.assert_allclose(z["estimate"], hum["estimate"], rtol=0, atol=1e-9)
            if method == "ppi":
                np.testing.assert_allclose(z["se"], hum["se"], rtol=1e-9)


def test_human_only_equals_statsmodels_on_labelled_subset(small):
    sm = pytest.importorskip("statsmodels.api")
    cube, _, hyp = small
    design = mt.draw_human_sample(cube, hyp, n=150, n_draws=2, rng=4)
    res = mt.mitigate(cube, hyp, design, method="human", estimand="logistic", small_sample=False)
    dif = mt.mitigate(cube, hyp, design, method="human", estimand="difference", small_sample=False)
    a = mt._arrays(cube, hyp)
    for h, d in [(0, 0), (3, 1)]:
        L = design["selected"].values[h, d] & a["valid"][h]
        x = (a["group"][h][L] == 1).astype(float)
        y = a["Y"][h][L]
        fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0, cov_type="HC0")
        n = L.sum()
        r = res.isel(hypothesis=h, draw=d, model=0, prompt=0, temperature=0)
        assert abs(float(r["estimate"]) - fit.params[1]) < 1e-8
        # ppi-python's covariance uses ddof = 1: HC0 × n / (n − 1)
        assert abs(float(r["se"]) - fit.bse[1] * np.sqrt(n / (n - 1))) < 1e-8
        pa, pb = y[x == 1].mean(), y[x == 0].mean()
        se = np.sqrt(pa * (1 - pa) / (x == 1).sum() + pb * (1 - pb) / (x == 0).sum())
        r = dif.isel(hypothesis=h, draw=d, model=0, prompt=0, temperature=0)
        assert abs(float(r["estimate"]) - (pa - pb)) < 1e-12
        assert abs(float(r["se"]) - se) < 1e-12


def test_perfect_annotator_gives_full_data_estimate(small):
    sm = pytest.importorskip("statsmodels.api")
    cube, _, hyp = small
    perfect = _perfect(cube)
    design = mt.draw_human_sample(perfect, hyp, n=100, n_draws=2, rng=5, scheme="confidence")
    a = mt._arrays(perfect, hyp)
    y, g = a["Y"], (a["group"] == 1)
    full = y[:, :][g].reshape(-1)  # noqa: F841 (shape check only)
    full_diff = np.array([y[h][g[h] & a["valid"][h]].mean() - y[h][~g[h] & a["valid"][h]].mean()
                          for h in range(len(hyp.hypothesis))])
    for method, kw in (("dsl", {}), ("cdi", {"lam": 1.0}), ("substitution", {})):
        r = mt.mitigate(perfect, hyp, design, method=method, **kw)
        np.testing.assert_allclose(r["estimate"].values,
                                   np.broadcast_to(full_diff[:, None, None, None, None], r["estimate"].shape),
                                   atol=1e-12)
    r = mt.mitigate(perfect, hyp, design, method="dsl", estimand="logistic")
    fit = sm.Logit(y[0][a["valid"][0]], sm.add_constant(g[0][a["valid"][0]].astype(float))).fit(disp=0)
    np.testing.assert_allclose(r["estimate"].values[0], fit.params[1], atol=1e-8)
    # PPI++ kernel with λ = N / (N + n): the loss is the full-data loss
    yy, _, gg, lab = _toy(6)
    n, N = lab.sum(), (1 - lab).sum()
    X = np.column_stack([np.ones_like(gg), gg])
    th, se, _, _, _ = K.ppi_logistic(X, yy, yy, lab, 1 - lab, lam=N / (N + n))
    fit = sm.Logit(yy, X).fit(disp=0, cov_type="HC0")
    np.testing.assert_allclose(th, fit.params, atol=1e-8)
    np.testing.assert_allclose(se, fit.bse, rtol=0.03)
    est, _, _, _, _ = K.ppi_mean(yy, yy, lab, 1 - lab, lam=N / (N + n))
    assert abs(est - yy.mean()) < 1e-12
    # tuned λ with a perfect annotator is close to N / (N + n)
    _, _, lam_hat, _, _ = K.ppi_mean(yy, yy, lab, 1 - lab)
    assert abs(lam_hat - N / (N + n)) < 0.02


# ---------------------------------------------------------------------------------------------
# sampling designs
# ---------------------------------------------------------------------------------------------


def test_random_design_is_stratified_and_seeded(small):
    cube, _, hyp = small
    d1 = mt.draw_human_sample(cube, hyp, n=80, n_draws=5, rng=7)
    d2 = mt.draw_human_sample(cube, hyp, n=80, n_draws=5, rng=7)
    xr.testing.assert_identical(d1, d2)
    assert d1["selected"].dims == ("hypothesis", "draw", "item")
    assert (d1["n_labelled"] == 80).all()
    g = hyp["group"].values
    for h in range(g.shape[0]):
        na = d1["selected"].values[h][:, g[h] == 1].sum(-1)
        share = (g[h] == 1).sum() / (g[h] >= 0).sum()
        assert (np.abs(na - 80 * share) <= 1).all()
        pi = d1["pi"].values[h, 0]
        np.testing.assert_allclose(pi[g[h] == 1], na[0] / (g[h] == 1).sum())
    assert not d1["selected"].values[:, :, cube["item_id"].values[0] == ""].any()


def test_confidence_design_probabilities(small):
    cube, _, hyp = small
    d = mt.draw_human_sample(cube, hyp, n=100, scheme="confidence", n_draws=400, rng=8,
                             floor=0.3, max_prob=0.8)
    pi = d["pi"].values[:, 0]
    valid = hyp["group"].values >= 0
    N = valid.sum(-1)
    np.testing.assert_allclose(pi.sum(-1), 100, rtol=1e-6)
    assert (pi[valid] >= (0.3 * 100 / N[:, None] * valid)[valid] - 1e-12).all()
    assert (pi <= 0.8 + 1e-12).all()
    conf = mt.item_confidence(cube, hyp).values
    for h in range(pi.shape[0]):  # probability falls as confidence rises
        order = np.argsort(conf[h][valid[h]])
        assert (np.diff(pi[h][valid[h]][order]) <= 1e-12).all()
    # Horvitz-Thompson: mean over draws of S / π is 1 for every item (Monte-Carlo)
    ratio = (d["selected"].values / np.where(d["pi"].values > 0, d["pi"].values, 1)).mean(1)
    assert abs(ratio[valid].mean() - 1) < 0.02
    assert abs(d["n_labelled"].values.mean() - 100) < 1


def test_confidence_design_uses_prob_per_configuration(small):
    cube, _, hyp = small
    gen = np.random.default_rng(0)
    p0 = gen.uniform(0.5, 1.0, cube["label"].shape)
    cube = cube.assign(prob=(("task", "model", "prompt", "temperature", "item", "class"),
                             np.stack([p0, 1 - p0], -1).astype(np.float32)))
    d = mt.draw_human_sample(cube, hyp, n=60, scheme="confidence", n_draws=3, rng=1)
    assert d["selected"].dims == ("hypothesis", "model", "prompt", "temperature", "draw", "item")
    res = mt.mitigate(cube, hyp, d, method="cdi")
    assert np.isfinite(res["estimate"]).all()


def test_active_design_budget_and_weights(small):
    cube, _, hyp = small
    d = mt.draw_human_sample(cube, hyp, n=100, scheme="active", n_draws=50, rng=9)
    assert abs(d["n_labelled"].values.mean() - 100) < 8
    S, pi = d["selected"].values, d["pi"].values
    w = np.where(S, 1 / np.where(pi > 0, pi, 1), 0)
    valid = hyp["group"].values >= 0
    # the effective IPW weights have mean 1 per item (martingale construction)
    assert abs(w.mean(1)[valid].mean() - 1) < 0.03


def test_infeasible_budget_and_errors(small):
    cube, _, hyp = small
    d = mt.draw_human_sample(cube, hyp, n=400, n_draws=2, rng=0)  # 400 > 70% of 500
    assert not d["feasible"].any() and not d["selected"].any()
    r = mt.mitigate(cube, hyp, d, method="ppi")
    assert r["estimate"].isnull().all() and (r["conclusion"] == 0).all()
    with pytest.raises(ValueError, match="scheme"):
        mt.draw_human_sample(cube, hyp, n=50, scheme="bogus")
    with pytest.raises(ValueError, match="method"):
        mt.mitigate(cube, hyp, d, method="bogus")
    with pytest.raises(ValueError, match="estimand"):
        mt.mitigate(cube, hyp, d, estimand="ratio")
    with pytest.raises(ValueError, match="group"):
        mt.draw_human_sample(cube, hyp.drop_vars("group"), n=50)


def test_unannotated_configuration_is_nan(small):
    cube, _, hyp = small
    cube = cube.copy(deep=True)
    cube["label"].values[:, 1, 0, 0, :] = -1
    d = mt.draw_human_sample(cube, hyp, n=60, n_draws=2, rng=0)
    r = mt.mitigate(cube, hyp, d, method="ppi")
    assert r["estimate"].isel(model=1, prompt=0, temperature=0).isnull().all()
    assert np.isfinite(r["estimate"].isel(model=0)).all()
    assert not r["annotated"].isel(model=1, prompt=0, temperature=0).any()


# ---------------------------------------------------------------------------------------------
# coverage and size (seeded Monte Carlo)
# ---------------------------------------------------------------------------------------------

EFFECT, BASE = 0.15, 0.4


def _coverage_world(n_rep: int, n_items: int, models: int, seed: int):
    """``n_rep`` independent replicate tasks: x0 carries EFFECT, x1 is an exact null.

    The annotators have systematic, covariate-dependent errors (bias_sd = 0.15), so the LLM-only
    and substitution estimates are biased while the valid estimators are not.
    """
    cube, _ = hackrisk.simulate_multiverse(
        n_tasks=n_rep, n_items=n_items, n_covariates=2,
        effects=np.tile([EFFECT, 0.0], (n_rep, 1)), base_rate=BASE, models=models, n_prompts=1,
        temperatures=(0.0,), bias_sd=0.15, rng=seed)
    hyp = _hyps(cube, ("x0", "x1"))
    true = {"difference": np.r_[np.full(n_rep, EFFECT), np.zeros(n_rep)],
            "logistic": np.r_[np.full(n_rep, logit(BASE + EFFECT / 2) - logit(BASE - EFFECT / 2)),
                              np.zeros(n_rep)]}
    return cube, hyp, true


def _check_coverage(n_rep, n_items, n, n_draws, models, schemes, estimands, k=3.0, seed=11):
    cube, hyp, true = _coverage_world(n_rep, n_items, models, seed)
    mcse = np.sqrt(0.95 * 0.05 / n_rep)  # conservative: replicates (tasks) are the independent unit
    report = []
    for scheme in schemes:
        design = mt.draw_human_sample(cube, hyp, n=n, scheme=scheme, n_draws=n_draws, rng=seed + 1)
        for estimand in estimands:
            for method in ("human", "ppi", "dsl", "cdi"):
                r = mt.mitigate(cube, hyp, design, method=method, estimand=estimand, rng=seed + 2)
                tv = true[estimand][:, None, None, None, None]
                covered = (r["lower"].values <= tv) & (tv <= r["upper"].values)
                cov = covered.mean()
                size = (r["conclusion"].values[n_rep:] != 0).mean()
                finite = np.isfinite(r["estimate"].values).mean()
                report.append((scheme, estimand, method, round(cov, 3), round(size, 3), finite))
    bad = [r for r in report if abs(r[3] - 0.95) >= k * mcse
           or abs(r[4] - 0.05) >= k * np.sqrt(0.05 * 0.95 / n_rep) or r[5] < 0.99]
    assert not bad, f"outside {k} MC SE: {bad}\nall: {report}"
    return report


def test_coverage_and_size_fast():
    _check_coverage(n_rep=160, n_items=300, n=80, n_draws=3, models=1,
                    schemes=mt.SCHEMES, estimands=("difference",))


def test_coverage_logistic_fast():
    _check_coverage(n_rep=160, n_items=300, n=80, n_draws=2, models=1,
                    schemes=("random", "confidence"), estimands=("logistic",))


def test_substitution_is_not_valid_under_systematic_error():
    """The naive estimator inherits the annotators' bias: coverage far below 95%."""
    cube, hyp, true = _coverage_world(120, 300, 2, 21)
    design = mt.draw_human_sample(cube, hyp, n=60, n_draws=2, rng=0)
    r = mt.mitigate(cube, hyp, design, method="substitution")
    tv = true["difference"][:, None, None, None, None]
    cov = ((r["lower"].values <= tv) & (tv <= r["upper"].values)).mean()
    assert cov < 0.85


@pytest.mark.slow
def test_coverage_and_size_full():
    _check_coverage(n_rep=800, n_items=400, n=100, n_draws=4, models=2,
                    schemes=mt.SCHEMES, estimands=("difference", "logistic"))


# ---------------------------------------------------------------------------------------------
# evaluation and model selection
# ---------------------------------------------------------------------------------------------


def test_evaluation_table_and_perfect_annotator(small):
    cube, _, hyp = small
    perfect = _perfect(cube)
    tab = mt.evaluate_mitigation(perfect, hyp, budgets=(50, 400), schemes=("random",),
                                 estimand="logistic", n_draws=3, rng=0)
    assert set(tab.columns) >= {"scheme", "budget", "method", "type_i", "type_ii", "type_s",
                                "risk", "n_cases"}
    assert 400 not in tab["budget"].values  # infeasible (> 70% of the items)
    row = lambda m: tab[tab["method"] == m].iloc[-1]  # noqa: E731
    # a perfect annotator reproduces the full-human conclusions exactly
    assert row("llm_only")["risk"] == 0
    assert row("substitution")["risk"] == 0
    assert row("model_selection")["risk"] == 0
    for c in ("type_i", "type_ii", "type_s", "risk"):
        assert tab[c].dropna().between(0, 1).all()


def test_evaluation_trade_off_on_biased_annotators():
    """Known-truth multiverse with strong systematic error: the LLM alone and substitution make
    false positives; the valid estimators keep Type I near alpha, and their Type II error (the
    price) falls as the budget grows."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=6, n_items=600, n_covariates=4, models=3,
                                           n_prompts=2, temperatures=(0.0,), bias_sd=0.12,
                                           null_share=0.5, rng=12)
    hyp = _hyps(cube, ("x0", "x1", "x2", "x3"))
    tab = mt.evaluate_mitigation(cube, hyp, budgets=(100, 300), schemes=("random",), n_draws=4,
                                 methods=("human", "substitution", "ppi"), rng=1)
    r = tab.set_index(["method", "budget"])
    assert r.loc[("llm_only", 0), "type_i"] > 0.15
    assert r.loc[("substitution", 100), "type_i"] > 2 * r.loc[("human", 100), "type_i"]
    for m in ("human", "ppi"):
        for n in (100, 300):
            assert r.loc[(m, n), "type_i"] < 0.1
        assert r.loc[(m, 300), "type_ii"] < r.loc[(m, 100), "type_ii"] - 0.1
    assert r.loc[("ppi", 100), "risk"] < r.loc[("substitution", 100), "risk"]


def test_select_model_picks_the_accurate_configuration(small):
    cube, _, hyp = small
    cube = cube.copy(deep=True)
    truth = cube["truth"].values[:, None, None, None, :]
    flip = np.random.default_rng(0).random(cube["label"].shape) < 0.2
    cube["label"].values[:] = np.where(flip & (truth >= 0), 1 - truth, truth)
    cube["label"].values[:, 1, 1, 0, :] = cube["truth"].values
    d = mt.draw_human_sample(cube, hyp, n=60, n_draws=4, rng=3)
    sel = mt.select_model(cube, hyp, d)
    assert (sel["model"] == cube["model"].values[1]).all()
    assert (sel["prompt"] == cube["prompt"].values[1]).all()
    assert (sel["accuracy"] == 1).all() and (sel["error"] == 0).all()


# ---------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------




def simulated_llm_cube(path: Path, *, rng=0) -> xr.Dataset:
    """relevance_tweets23 with simulated annotators (3 models × 3 prompts × 2 temperatures).

    Random error (accuracy 0.9 / 0.8 / 0.7, 0.05 lower at temperature 1) plus systematic error:
    on long texts (> 150 characters) and on tweets of the second half of January each
    configuration pushes labels towards one class with its own probability (N(0, 0.2)).
    """
    from hackrisk import datasets
    from hackrisk.cube import CONFIG_DIMS

    td = datasets.load_task("relevance_tweets23", source=path)
    cube = datasets.empty_cube(td, models=["m0", "m1", "m2"], temperatures=(0.0, 1.0))
    gen = np.random.default_rng(rng)
    truth = cube["truth"].values[:, None, None, None, :]
    shape = cube["label"].transpose("task", *CONFIG_DIMS, "item").shape
    acc = (np.array([0.9, 0.8, 0.7])[None, :, None, None, None]
           - 0.05 * np.array([0.0, 1.0])[None, None, None, :, None])
    lab = np.where(gen.random(shape) < acc, truth, 1 - truth)
    long = np.array([len(t) > 150 for t in cube["text"].values[0]], dtype=float)
    late = (cube["cov_created_at"].values[0] >= np.datetime64("2023-01-16")).astype(float)
    for x in (long, late):
        push = gen.normal(0, 0.2, shape[:-1])[..., None]
        hit = gen.random(shape) < np.abs(push) * x
        lab = np.where(hit, (push > 0).astype(int) + 0 * lab, lab)
    lab = np.where(truth >= 0, lab, -1)
    cube["label"] = (("task", *CONFIG_DIMS, "item"), lab.astype(np.int16))
    return cube


def test_trade_off_table_on_real_data():
    path = _data_dir() / "llmhacking" / "relevance_tweets23.csv.gz"
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} missing under CI")
        pytest.skip(f"real data not found at {path} (set HACKRISK_DATA_DIR)")
    from hackrisk.hypotheses import generate_hypotheses

    cube = simulated_llm_cube(path)
    hyp = generate_hypotheses(cube, groupings=("random", "length", "covariate"))
    tab = mt.evaluate_mitigation(cube, hyp, budgets=(25, 100, 250, 300), n_draws=3,
                                 schemes=("random", "confidence"), rng=0)
    assert set(tab["budget"]) == {0, 25, 100, 250}  # 300 > 70% of 411 items
    assert set(tab["method"]) == {"llm_only", *mt.METHODS, "model_selection"}
    assert tab["risk"].between(0, 1).all()
