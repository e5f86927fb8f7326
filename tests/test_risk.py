"""Errors, risk, drivers and intentional hacking (hackrisk.analysis.risk).

Correctness is shown by exact hand-built cases, parity with a pandas / statsmodels / sklearn
reference, invariances (permutations), and known truth on simulated multiverses: a perfect
annotator has zero risk, and for a biased annotator the measured Type I/II/S rates and the
effect-size curve match the rates implied by the simulator's per-item label probabilities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import hackrisk
from hackrisk.analysis import risk as R

from ._data import shared_data_dir as _data_dir

CFG = ("model", "prompt", "temperature")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def make_tests(conclusion, human_conclusion, *, estimate=None, human_estimate=None, task=None,
               annotated=None, human_p_value=None, rng=0, alpha=0.05):
    """A tests Dataset (docs/results.md) from arrays: conclusion (H, M, P, T), human (H,)."""
    gen = np.random.default_rng(rng)
    c = np.asarray(conclusion, dtype=np.int8)
    hc = np.asarray(human_conclusion, dtype=np.int8)
    h, m, p, t = c.shape
    if estimate is None:
        estimate = np.where(c != 0, c * gen.uniform(0.05, 0.3, c.shape), gen.normal(0, 0.02, c.shape))
    if human_estimate is None:
        human_estimate = np.where(hc != 0, hc * gen.uniform(0.05, 0.3, h), gen.normal(0, 0.02, h))
    if human_p_value is None:
        human_p_value = np.where(hc != 0, gen.uniform(0, alpha, h), gen.uniform(alpha, 1, h))
    if task is None:
        task = [f"t{i % 3}" for i in range(h)]
    if annotated is None:
        annotated = np.ones(c.shape, dtype=bool)
    dims = ("hypothesis", *CFG)
    ds = xr.Dataset(
        {"conclusion": (dims, c), "estimate": (dims, np.asarray(estimate, float)),
         "p_value": (dims, np.where(c != 0, 0.01, 0.5)), "annotated": (dims, annotated),
         "human_conclusion": ("hypothesis", hc), "human_estimate": ("hypothesis", np.asarray(human_estimate, float)),
         "human_p_value": ("hypothesis", np.asarray(human_p_value, float))},
        coords={"hypothesis": np.arange(h), "task": ("hypothesis", np.array(task, dtype=object)),
                "kind": ("hypothesis", np.array(["random", "keyword"] * (h // 2) + ["random"] * (h % 2), dtype=object)),
                "model": np.array([f"m{i}" for i in range(m)], dtype=object),
                "family": ("model", np.array([["a", "b"][i % 2] for i in range(m)], dtype=object)),
                "prompt": np.array([f"p{i}" for i in range(p)], dtype=object),
                "temperature": np.linspace(0, 1, t)},
    )
    ds.attrs.update({"alpha": alpha, "method": "wald"})
    return ds


def random_tests(rng=0, h=30, m=3, p=2, t=2, n_tasks=3, p_annot=1.0):
    gen = np.random.default_rng(rng)
    hc = gen.choice([-1, 0, 0, 1], h)
    c = gen.choice([-1, 0, 1], (h, m, p, t), p=[0.2, 0.5, 0.3])
    ann = gen.random(c.shape) < p_annot
    c = np.where(ann, c, 0)
    task = [f"t{gen.integers(n_tasks)}" for _ in range(h)]
    return make_tests(c, hc, task=task, annotated=ann, rng=rng)


def reference_risk(tests, by=None):
    """Hierarchical means computed with pandas from the tidy tables (the reference)."""
    e = R.classify_errors(tests)
    df = e[["error", "type_m"]].to_dataframe().reset_index()
    hyp = e[["human_conclusion"]].to_dataframe().reset_index()
    df = df.merge(hyp[["hypothesis", "human_conclusion"]], on="hypothesis")
    if by == "family":
        df["family"] = df["model"].map(dict(zip(tests.model.values, tests.family.values)))
    df = df[df["error"] >= 0]
    keys = [by] if by and by != "task" else []
    out = {}

    def agg(frame, col):
        per_h = frame.groupby(["hypothesis", "task", *keys])[col].mean().dropna().reset_index()
        per_t = per_h.groupby(["task", *keys])[col].mean().reset_index()
        if by == "task":
            return per_t.set_index("task")[col]
        return per_t.groupby(keys)[col].mean() if keys else per_t[col].mean()

    null = df[df.human_conclusion == 0].assign(v=lambda d: (d.error == 1).astype(float))
    sig = df[df.human_conclusion != 0]
    out["type_i"] = agg(null, "v")
    out["type_ii"] = agg(sig.assign(v=(sig.error == 2).astype(float)), "v")
    out["type_s"] = agg(sig.assign(v=(sig.error == 3).astype(float)), "v")
    out["type_m_mean"] = agg(sig, "type_m")
    out["type_m_share"] = agg(sig.assign(v=np.where(sig.type_m.notna(), sig.type_m > 1, np.nan)), "v")
    out["risk_pooled"] = agg(df.assign(v=(df.error > 0).astype(float)), "v")
    return out


def cov_hypotheses(cube, n_cov):
    """Hypotheses 'share of class 0 differs between x_j true and false' for every task."""
    real = cube["item_id"].values != ""
    groups, tasks, names = [], [], []
    for t, task in enumerate(cube.task.values):
        for j in range(n_cov):
            groups.append(np.where(real[t], cube[f"cov_x{j}"].values[t].astype(np.int8), -1))
            tasks.append(task)
            names.append(f"cov:x{j}=True")
    n = len(groups)
    return xr.Dataset(
        {"group": (("hypothesis", "item"), np.stack(groups).astype(np.int8))},
        coords={"hypothesis": np.arange(n), "task": ("hypothesis", np.array(tasks, dtype=object)),
                "grouping": ("hypothesis", np.array(names, dtype=object)),
                "kind": ("hypothesis", np.array(["covariate"] * n, dtype=object)),
                "class_code": ("hypothesis", np.zeros(n, dtype=np.int64)),
                "class_name": ("hypothesis", np.array(["class0"] * n, dtype=object)),
                "item": cube.item.values},
    )


def implied_sig_probs(cube, truth, n_cov, alpha=0.05):
    """P(significant +), P(significant −) per (hypothesis, model, prompt, temperature).

    Derived from the simulator's label model: item i gets class 0 with probability
    q_i = confusion[y_i, 0]·(1 − Σ_j |b_j| x_ij) + Σ_j max(b_j, 0) x_ij, independently given the
    items. The difference of group shares is then ≈ N(μ_A − μ_B, Σ_A q(1−q)/n_A² + Σ_B ...) and
    the Wald test rejects when it exceeds z·ŝ, ŝ the plug-in binomial SE.
    """
    zc = stats.norm.ppf(1 - alpha / 2)
    y = truth["true_class"].values
    conf = truth["confusion"].values
    bias = truth["bias"].values
    plus, minus = [], []
    for t in range(y.shape[0]):
        real = y[t] >= 0
        x = np.stack([cube[f"cov_x{j}"].values[t][real] for j in range(n_cov)]).astype(float)
        push = np.abs(bias[t]) @ x
        to0 = np.clip(bias[t], 0, None) @ x
        q = conf[t][..., y[t][real], 0] * (1 - push) + to0
        for j in range(n_cov):
            a = x[j] > 0
            na, nb = a.sum(), (~a).sum()
            mua, mub = q[..., a].mean(-1), q[..., ~a].mean(-1)
            var = (q[..., a] * (1 - q[..., a])).sum(-1) / na**2 + (q[..., ~a] * (1 - q[..., ~a])).sum(-1) / nb**2
            s_hat = np.sqrt(mua * (1 - mua) / na + mub * (1 - mub) / nb)
            plus.append(stats.norm.cdf((mua - mub - zc * s_hat) / np.sqrt(var)))
            minus.append(stats.norm.cdf((mub - mua - zc * s_hat) / np.sqrt(var)))
    return np.array(plus), np.array(minus)


@pytest.fixture(scope="module")
def biased_world():
    from hackrisk.analysis.frequentist import test_hypotheses

    n_cov = 6
    cube, truth = hackrisk.simulate_multiverse(
        n_tasks=4, n_items=800, n_covariates=n_cov, models=3, n_prompts=3,
        temperatures=(0.0, 1.0), bias_sd=0.08, null_share=0.4, max_effect=0.15, rng=2)
    hyps = cov_hypotheses(cube, n_cov)
    tests = test_hypotheses(cube, hyps)
    plus, minus = implied_sig_probs(cube, truth, n_cov)
    return cube, truth, hyps, tests, plus, minus


# ---------------------------------------------------------------------------------------------
# classify_errors
# ---------------------------------------------------------------------------------------------
def test_classify_errors_codes_and_type_m():
    # hypotheses: human null, human +, human −, human + (not annotated config), human p NaN
    c = np.array([1, 0, 0, -1, 1, -1, 1, 1, 0, 0]).reshape(5, 2, 1, 1)
    hc = np.array([0, 1, -1, 1, 0])
    est = np.array([0.1, 0.0, 0.2, -0.3, 0.05, -0.1, 0.4, 0.2, 0.0, 0.0]).reshape(c.shape)
    hest = np.array([0.01, 0.2, -0.2, 0.1, 0.0])
    ann = np.ones(c.shape, bool)
    ann[3, 1] = False
    hp = np.array([0.5, 0.01, 0.01, 0.01, np.nan])
    t = make_tests(c, hc, estimate=est, human_estimate=hest, annotated=ann, human_p_value=hp)
    e = R.classify_errors(t)
    assert e.error.dtype == np.int8
    np.testing.assert_array_equal(e.error.values.ravel(), [1, 0, 2, 3, 3, 0, 0, -1, -1, -1])
    tm = e.type_m.values.ravel()
    np.testing.assert_allclose(tm[[5, 6]], [0.5, 4.0])
    assert np.isnan(tm[[0, 1, 2, 3, 4, 7, 8, 9]]).all()
    assert "error" not in t  # input not mutated
    assert set(e.to_dataframe().columns) >= {"error", "type_m", "conclusion"}
    # signed effect error Delta_LLM - Delta_human wherever classified (the authors' effect_size_error)
    ee = e.effect_error.values.ravel()
    want = est.ravel() - np.repeat(hest, 2)
    ok = e.error.values.ravel() >= 0
    np.testing.assert_allclose(ee[ok], want[ok])
    assert np.isnan(ee[~ok]).all()
    assert "share_error_a" not in e  # no counts in these tests


def test_classify_errors_share_errors_from_counts():
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=200, n_classes=2, models=2, n_prompts=1,
                                           temperatures=(0.0,), rng=8)
    hyps = hackrisk.hypotheses.generate_hypotheses(cube)
    from hackrisk.analysis.frequentist import test_hypotheses

    e = R.classify_errors(test_hypotheses(cube, hyps))
    pa = e.k_a / e.n_a - e.human_k_a / e.human_n_a
    ok = e.error >= 0
    np.testing.assert_allclose(e.share_error_a.where(ok).values, pa.where(ok).values)
    np.testing.assert_allclose((e.share_error_a - e.share_error_b).where(ok).values,
                               e.effect_error.where(ok).values, atol=1e-12)


def test_classify_errors_needs_tests():
    with pytest.raises(ValueError, match="test_hypotheses"):
        R.classify_errors(xr.Dataset({"conclusion": ("hypothesis", [0])}))


# ---------------------------------------------------------------------------------------------
# risk: aggregation, slicing, bootstrap
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("by", [None, "model", "family", "kind", "task"])
def test_risk_matches_pandas_reference(by):
    t = random_tests(rng=3, h=40, p_annot=0.85)
    r = R.risk(t, by=by, n_boot=0)
    ref = reference_risk(t, by=by)
    for name, want in ref.items():
        got = r[name].sel(ci="estimate")
        if by is None:
            np.testing.assert_allclose(float(got), want, rtol=1e-12, err_msg=name)
        else:
            got = got.to_series()
            np.testing.assert_allclose(got.reindex(want.index).values, want.values, rtol=1e-12, err_msg=name)
    est = r.sel(ci="estimate")
    np.testing.assert_allclose(est.risk_balanced, 0.5 * est.type_i + 0.5 * (est.type_ii + est.type_s))
    assert np.isnan(r.sel(ci="lower").type_i).all()


def test_risk_grid_and_tidy_view():
    t = random_tests(rng=4)
    r = R.risk(t, by=["model", "temperature"], n_boot=50)
    assert r.type_i.dims == ("model", "temperature", "ci")
    df = r.to_dataframe()
    assert len(df) == 3 * 2 * 3 and "risk_pooled" in df.columns
    # a single configuration slice equals risk on that configuration alone
    one = R.risk(t.isel(model=[1], temperature=[0]), n_boot=0).risk_pooled.sel(ci="estimate")
    np.testing.assert_allclose(r.risk_pooled.sel(ci="estimate").isel(model=1, temperature=0), one)


def test_risk_bootstrap_seeded_and_ordered():
    t = random_tests(rng=5, h=60)
    a = R.risk(t, n_boot=300, rng=11)
    b = R.risk(t, n_boot=300, rng=11)
    xr.testing.assert_identical(a, b)
    for v in ("type_i", "type_ii", "risk_pooled", "risk_balanced"):
        lo, est, hi = (float(a[v].sel(ci=k)) for k in ("lower", "estimate", "upper"))
        assert lo <= est <= hi and hi - lo > 0


def test_risk_bootstrap_width_matches_analytic_se():
    # one task, per-hypothesis rates with known spread: the percentile CI ≈ mean ± 1.96 sd/√n
    gen = np.random.default_rng(0)
    h = 200
    c = (gen.random((h, 10, 1, 1)) < gen.uniform(0, 1, h)[:, None, None, None]).astype(int)
    t = make_tests(c, np.zeros(h, int), task=["t"] * h)
    r = R.risk(t, n_boot=2000, rng=1).type_i
    per_h = c.reshape(h, -1).mean(1)
    half = stats.norm.ppf(0.975) * per_h.std(ddof=0) / np.sqrt(h)
    width = float(r.sel(ci="upper") - r.sel(ci="lower")) / 2
    assert abs(width / half - 1) < 0.1


def test_risk_invariant_to_permutations():
    t = random_tests(rng=6, h=36, p_annot=0.9)
    gen = np.random.default_rng(1)
    perm = t.isel(hypothesis=gen.permutation(t.sizes["hypothesis"]),
                  model=gen.permutation(t.sizes["model"]), prompt=[1, 0])
    a = R.risk(t, n_boot=0)
    b = R.risk(perm, n_boot=0)
    for v in a.data_vars:
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-12, equal_nan=True)


def test_risk_bad_inputs():
    t = random_tests()
    with pytest.raises(ValueError, match="by='colour'"):
        R.risk(t, by="colour")
    with pytest.raises(ValueError, match="ci="):
        R.risk(t, ci=95)
    with pytest.raises(ValueError, match="lacks"):
        R.risk(t.drop_vars("human_conclusion"))


def test_not_annotated_configurations_are_excluded():
    t = random_tests(rng=7)
    ann = t.annotated.values.copy()
    ann[:, 0] = False
    t2 = t.copy()
    t2["annotated"] = (t.annotated.dims, ann)
    t2["conclusion"] = t2["conclusion"].where(t2["annotated"], 0).astype(np.int8)
    a = R.risk(t2, n_boot=0)
    b = R.risk(t.isel(model=[1, 2]), n_boot=0)
    for v in ("type_i", "type_ii", "type_s", "risk_pooled"):
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-12)
    assert int(a.n_conclusions) == int(b.n_conclusions)


# ---------------------------------------------------------------------------------------------
# known truth on simulated multiverses
# ---------------------------------------------------------------------------------------------
def test_perfect_annotator_has_zero_risk():
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.hypotheses import generate_hypotheses

    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=300, n_classes=[2, 3], models=2,
                                           n_prompts=2, temperatures=(0.0,), rng=5)
    perfect = cube.copy()
    perfect["label"] = xr.broadcast(cube["truth"], cube["label"])[0].transpose(*cube["label"].dims)
    hyps = generate_hypotheses(perfect)
    tests = test_hypotheses(perfect, hyps)
    r = R.risk(tests, n_boot=100)
    for v in ("type_i", "type_ii", "type_s", "risk_pooled", "risk_balanced", "type_m_relerr"):
        assert float(np.nanmax(np.abs(r[v].values))) == 0.0, v
    np.testing.assert_allclose(r.type_m_mean.sel(ci="estimate"), 1.0)
    assert int(r.n_significant) > 0 and int(r.n_null) > 0
    hk = R.hacking(tests)
    assert hk.attrs["fabricate_rate"] == 0 and hk.attrs["hide_rate"] == 0 and hk.attrs["reverse_rate"] == 0
    q = R.annotation_quality(perfect)
    assert float(q.accuracy.min()) == 1.0 and float(q.kappa.min()) == 1.0 and float(q.macro_f1.min()) == 1.0


def test_permuting_items_changes_nothing():
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.hypotheses import generate_hypotheses

    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=200, models=2, n_prompts=2,
                                           temperatures=(0.0, 1.0), rng=8)
    hyps = generate_hypotheses(cube)
    perm = np.random.default_rng(0).permutation(cube.sizes["item"])
    cube_p = cube.isel(item=perm).assign_coords(item=cube.item.values)
    hyps_p = hyps.isel(item=perm).assign_coords(item=cube.item.values)
    a = R.risk(test_hypotheses(cube, hyps), by="model", n_boot=200, rng=3)
    b = R.risk(test_hypotheses(cube_p, hyps_p), by="model", n_boot=200, rng=3)
    xr.testing.assert_allclose(a, b)


def test_biased_annotator_rates_match_simulation(biased_world):
    _, _, _, tests, plus, minus = biased_world
    e = R.classify_errors(tests).error.values
    hc = tests.human_conclusion.values[:, None, None, None]
    implied = {1: np.where(hc == 0, plus + minus, np.nan),
               2: np.where(hc != 0, 1 - plus - minus, np.nan),
               3: np.where(hc > 0, minus, np.where(hc < 0, plus, np.nan))}
    r = R.risk(tests, n_boot=0).sel(ci="estimate")
    for code, name in ((1, "type_i"), (2, "type_ii"), (3, "type_s")):
        p = implied[code]
        m = np.isfinite(p)
        assert m.sum() >= 50
        # the measured rate through risk() equals the same hierarchical mean of indicators...
        ind = np.where(m, (e == code).astype(float), np.nan)
        rows = m.reshape(len(m), -1).any(1)
        per_h = np.full(len(m), np.nan)
        per_p = np.full(len(m), np.nan)
        per_h[rows] = np.nanmean(ind.reshape(len(ind), -1)[rows], 1)
        per_p[rows] = np.nanmean(p.reshape(len(p), -1)[rows], 1)
        tasks = tests.task.values
        keep = np.isfinite(per_h)
        obs = pd.Series(per_h[keep]).groupby(tasks[keep]).mean().mean()
        exp = pd.Series(per_p[keep]).groupby(tasks[keep]).mean().mean()
        assert float(r[name]) == pytest.approx(obs, abs=1e-12)
        # ... and matches the rate the simulation implies, within Monte-Carlo error
        se = np.sqrt((p[m] * (1 - p[m])).sum()) / m.sum() * np.sqrt(2)  # ×√2: unequal weights
        assert abs(obs - exp) < 4 * se + 0.01, (name, obs, exp, se)


def test_biased_annotator_effect_size_curve_matches_simulation(biased_world):
    _, _, _, tests, plus, minus = biased_world
    edges = [0.0, 0.02, 0.06, 0.12, 1.0]
    curve = R.risk_by_effect_size(tests, bins=edges, n_boot=200, rng=0)
    hc = tests.human_conclusion.values[:, None, None, None]
    p_wrong = np.where(hc == 0, plus + minus, np.where(hc > 0, 1 - plus, 1 - minus))
    x = np.abs(tests.human_estimate.values)
    e = R.classify_errors(tests).error.values
    assert curve.sizes["bin"] >= 3
    for b in curve.bin.values:
        sel = (x > edges[b]) & (x <= edges[b + 1]) if b else (x <= edges[1])
        obs_direct = (e[sel] > 0).mean()
        p = p_wrong[sel]
        exp = p.mean()
        se = np.sqrt((p * (1 - p)).sum()) / p.size
        got = curve.risk_pooled.sel(bin=b)
        # binned curve: with equal configuration counts the hierarchical mean ≈ the plain mean
        assert abs(float(got.sel(ci="estimate")) - obs_direct) < 0.05
        assert abs(obs_direct - exp) < 4 * se + 0.01, (b, obs_direct, exp, se)
        assert int(curve.n_hypotheses.sel(bin=b)) == sel.sum()


# ---------------------------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------------------------
def test_risk_by_p_value_bins_separate_error_types():
    t = random_tests(rng=9, h=80)
    curve = R.risk_by_effect_size(t, by="p_value", n_boot=50)
    below = curve.bin_upper.values <= 0.05
    assert np.isnan(curve.type_i.sel(ci="estimate").values[below]).all()
    assert np.isnan(curve.type_ii.sel(ci="estimate").values[~below]).all()
    assert int(curve.n_hypotheses.sum()) == 80
    q = R.risk_by_effect_size(t, bins=4, n_boot=0)
    assert q.sizes["bin"] == 4 and int(q.n_hypotheses.sum()) == 80
    with pytest.raises(ValueError, match="by="):
        R.risk_by_effect_size(t, by="z")


@pytest.mark.parametrize("by_side", [False, True])
def test_error_regression_matches_statsmodels(by_side):
    sm = pytest.importorskip("statsmodels.api")
    gen = np.random.default_rng(2)
    h = 120
    hp = gen.uniform(0, 1, h) ** 2
    hc = np.where(hp < 0.05, 1, 0)
    d = np.abs(np.log10(hp) - np.log10(0.05))
    p_wrong = 1 / (1 + np.exp(-(0.3 - 1.2 * d)))
    c_wrong = gen.random((h, 4, 3, 1)) < p_wrong[:, None, None, None]
    c = np.where(hc[:, None, None, None] == 0, c_wrong.astype(int), np.where(c_wrong, 0, 1))
    t = make_tests(c, hc, human_p_value=hp, task=[f"t{i % 4}" for i in range(h)])
    res = R.error_regression(t, by_side=by_side, cov_type="binomial")
    wrong = (R.classify_errors(t).error.values > 0).reshape(h, -1).sum(1)
    x = np.column_stack([np.ones(h), d, hc, d * hc]) if by_side else np.column_stack([np.ones(h), d])
    glm = sm.GLM(np.column_stack([wrong, 12 - wrong]), x, family=sm.families.Binomial())
    fit = glm.fit()
    np.testing.assert_allclose(res.coef.values, fit.params, rtol=1e-7)
    np.testing.assert_allclose(res.se.values, fit.bse, rtol=1e-6)
    robust = glm.fit(cov_type="HC0")
    np.testing.assert_allclose(R.error_regression(t, by_side=by_side).se.values, robust.bse, rtol=1e-6)
    assert res.attrs["converged"] and res.attrs["n_conclusions"] == 12 * h
    if not by_side:
        assert float(res.coef.sel(term="distance")) < 0  # errors concentrate near the threshold


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
def test_variance_explained_matches_ols_and_decomposes(biased_world):
    sm = pytest.importorskip("statsmodels.api")
    cube, _, _, tests, _, _ = biased_world
    ve = R.variance_explained(tests, cube)
    np.testing.assert_allclose(float(ve.r2_sequential.sum()), ve.attrs["r2_total"], rtol=1e-10)
    assert (ve.r2_alone >= -1e-12).all() and (ve.r2_unique >= -1e-12).all()
    assert ve.attrs["r2_total"] >= float(ve.r2_alone.max()) - 1e-12
    # parity of the full R² with statsmodels OLS on explicit dummies
    e = R.classify_errors(tests).error
    df = e.to_dataframe().reset_index()
    df = df[df.error >= 0]
    q = R.annotation_quality(cube).macro_f1.to_dataframe().reset_index()
    df = df.merge(q, on=["task", "model", "prompt", "temperature"])
    df["absx"] = np.abs(tests.human_estimate.values)[df.hypothesis.values]
    edges = np.unique(np.quantile(np.abs(tests.human_estimate.values), np.linspace(0, 1, 11)))
    df["ebin"] = np.clip(np.searchsorted(edges, df.absx, side="right") - 1, 0, edges.size - 2)
    df["tp"] = df.task.astype(str) + "/" + df.prompt.astype(str)
    x = pd.get_dummies(df[["task", "model", "tp", "temperature", "ebin"]].astype(str), drop_first=True).astype(float)
    x["quality"] = df.macro_f1
    fit = sm.OLS((df.error > 0).astype(float), sm.add_constant(x)).fit()
    np.testing.assert_allclose(ve.attrs["r2_total"], fit.rsquared, rtol=1e-8)
    # reordering terms changes the sequential split but not the total
    ve2 = R.variance_explained(tests, cube, terms=["effect_size", "quality", "temperature", "prompt", "model", "task"])
    np.testing.assert_allclose(ve2.attrs["r2_total"], ve.attrs["r2_total"], rtol=1e-10)
    np.testing.assert_allclose(ve2.r2_alone.sel(term="model"), ve.r2_alone.sel(term="model"), rtol=1e-10)
    with pytest.raises(ValueError, match="needs the cube"):
        R.variance_explained(tests)


def test_annotation_quality_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=[60, 45], n_classes=[3, 2], models=2,
                                           n_prompts=2, temperatures=(0.0, 1.0), rng=4)
    gen = np.random.default_rng(0)
    lab = cube["label"].values.copy()
    real = cube["item_id"].values != ""
    # sprinkle outside answers and unannotated labels; hide some human labels
    lab[(gen.random(lab.shape) < 0.05) & real[:, None, None, None, :]] = -2
    lab[0, 1, 1, 1, :] = -1
    lab[1, 0, 0, 0, 3] = -1
    cube["label"] = (cube["label"].dims, lab)
    truth = cube["truth"].values.copy()
    truth[0, :5] = -1
    cube["truth"] = (cube["truth"].dims, truth)
    q = R.annotation_quality(cube)
    qp = R.annotation_quality(cube, conventions="paper")
    kc = [3, 2]
    checked = n_excluded = 0
    for t in range(2):
        for m in range(2):
            for p in range(2):
                for k in range(2):
                    y, lt = truth[t], lab[t, m, p, k]
                    ok = (y >= 0) & (lt != -1) & real[t]
                    cell = q.isel(task=t, model=m, prompt=p, temperature=k)
                    if not ok.any():
                        assert int(cell.n_items) == 0 and np.isnan(cell.accuracy)
                        continue
                    yt, yp = y[ok], lt[ok]
                    present = sorted(set(yt) | (set(yp) & set(range(kc[t]))))
                    np.testing.assert_allclose(cell.accuracy, metrics.accuracy_score(yt, yp), rtol=1e-12)
                    np.testing.assert_allclose(cell.kappa, metrics.cohen_kappa_score(yt, yp), rtol=1e-10)
                    np.testing.assert_allclose(
                        cell.macro_f1, metrics.f1_score(yt, yp, labels=present, average="macro"), rtol=1e-10)
                    np.testing.assert_allclose(
                        cell.weighted_f1, metrics.f1_score(yt, yp, labels=present, average="weighted"),
                        rtol=1e-10)
                    assert int(cell.n_items) == ok.sum()
                    np.testing.assert_allclose(cell.outside_rate, (yp == -2).mean())
                    # the authors: sklearn on the strings, "na" one more label; > 1 % na -> left out
                    pc = qp.isel(task=t, model=m, prompt=p, temperature=k)
                    if (yp == -2).mean() > 0.01:
                        assert bool(pc.unparseable_excluded) and np.isnan(pc.macro_f1)
                        n_excluded += 1
                    else:
                        ys, ps = yt.astype(str), np.where(yp == -2, "na", yp.astype(str))
                        np.testing.assert_allclose(pc.macro_f1, metrics.f1_score(ys, ps, average="macro"),
                                                   rtol=1e-10)
                        np.testing.assert_allclose(pc.weighted_f1, metrics.f1_score(ys, ps, average="weighted"),
                                                   rtol=1e-10)
                    checked += 1
    assert checked >= 14
    assert n_excluded >= 1 and (qp.unparseable_excluded == (q.outside_rate > 0.01)).all()
    # below 1 % na answers the paper's macro F1 averages over one more label ("na", F1 0)
    big, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=300, n_classes=3, models=1, n_prompts=1,
                                          temperatures=(0.0,), rng=5)
    lab = big["label"].values.copy()
    lab[0, 0, 0, 0, :2] = -2  # 0.67 %
    big["label"] = (big["label"].dims, lab)
    y, yp = big["truth"].values[0], lab[0, 0, 0, 0]
    ys, ps = y.astype(str), np.where(yp == -2, "na", yp.astype(str))
    pc = R.annotation_quality(big, conventions="paper").isel(task=0, model=0, prompt=0, temperature=0)
    assert not bool(pc.unparseable_excluded)
    np.testing.assert_allclose(pc.macro_f1, metrics.f1_score(ys, ps, average="macro"), rtol=1e-10)
    hc = R.annotation_quality(big).isel(task=0, model=0, prompt=0, temperature=0)
    assert float(hc.macro_f1) > float(pc.macro_f1)  # hackrisk leaves the na category out of the average


# ---------------------------------------------------------------------------------------------
# intentional hacking
# ---------------------------------------------------------------------------------------------
def test_hacking_by_hand():
    # H0 null, fabricated by one config; H1 +, hidden and reversed; H2 −, never wrong; H3 null, never
    c = np.zeros((4, 2, 2, 1), int)
    c[0, 1, 0] = 1
    c[1] = [[[1], [0]], [[-1], [1]]]
    c[2] = -1
    hc = [0, 1, -1, 0]
    hk = R.hacking(make_tests(c, hc))
    np.testing.assert_array_equal(hk.fabricate.values, [1, np.nan, np.nan, 0])
    np.testing.assert_array_equal(hk.hide.values, [np.nan, 1, 0, np.nan])
    np.testing.assert_array_equal(hk.reverse.values, [np.nan, 1, 0, np.nan])
    np.testing.assert_array_equal(hk.n_fabricate.values, [1, 0, 0, 0])
    assert hk.attrs["fabricate_rate"] == 0.5 and hk.attrs["hide_rate"] == 0.5
    assert "task" in hk.coords


def test_hacking_curve_full_budget_and_monotone():
    t = random_tests(rng=10, h=60, m=4, p=3, t=2)
    t["conclusion"] = t.conclusion.where(np.random.default_rng(0).random(t.conclusion.shape) < 0.6, 0).astype(np.int8)
    hk = R.hacking(t)
    cur = R.hacking_curve(t, n_draws=100, rng=1)
    for name in ("fabricate", "hide", "reverse"):
        full = cur[name].isel(n_models=-1, n_prompts=-1)
        assert float(full) == pytest.approx(hk.attrs[f"{name}_rate"], abs=1e-12)
        v = cur[name].values
        assert (np.diff(v, axis=0) >= -0.02).all() and (np.diff(v, axis=1) >= -0.02).all()
        assert v[0, 0] < v[-1, -1]
    # one model and one prompt: the expected success is the mean over (model, prompt) cells
    c = t.conclusion.values
    hc = t.human_conclusion.values
    fab = ((c != 0).any(-1) & (hc == 0)[:, None, None])
    expected = fab[hc == 0].mean(0).mean()
    sd = cur.fabricate_sd.isel(n_models=0, n_prompts=0)
    assert abs(float(cur.fabricate.isel(n_models=0, n_prompts=0)) - expected) < 4 * float(sd) / 10 + 1e-9
    task_w = R.hacking_curve(t, n_models=[4], n_prompts=[3], n_draws=1, weighting="task")
    per_task = hk.fabricate.to_series().groupby(t.task.values).mean().mean()
    assert task_w.fabricate.values.item() == pytest.approx(per_task)
    with pytest.raises(ValueError, match="n_models"):
        R.hacking_curve(t, n_models=[9])


# ---------------------------------------------------------------------------------------------
# slow: bootstrap coverage
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bootstrap_ci_coverage():
    """Coverage of the 90% interval for the population risk, two-level design, 300 replications.

    Each task has 30 hypotheses whose error probabilities are Beta(1, 3) draws (mean 0.25); each
    hypothesis has 12 conclusions. The estimand is the task-then-hypothesis mean, 0.25.
    """
    gen = np.random.default_rng(123)
    hits, n_rep = 0, 300
    for rep in range(n_rep):
        h = 120
        rate = gen.beta(1, 3, h)
        c = (gen.random((h, 3, 2, 2)) < rate[:, None, None, None]).astype(int)
        t = make_tests(c, np.zeros(h, int), task=[f"t{i % 4}" for i in range(h)], rng=rep)
        r = R.risk(t, n_boot=400, ci=0.9, rng=rep).type_i
        hits += float(r.sel(ci="lower")) <= 0.25 <= float(r.sel(ci="upper"))
    cov = hits / n_rep
    se = np.sqrt(0.9 * 0.1 / n_rep)
    assert abs(cov - 0.9) < 4 * se + 0.02, cov


# ---------------------------------------------------------------------------------------------
# real data: the two crowd workers of the llmhacking relevance task as two "annotators"
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relevance_tweets23", "framesI_tweets23"])
def test_real_data_crowd_annotators(name):
    import ast

    metrics = pytest.importorskip("sklearn.metrics")
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.hypotheses import generate_hypotheses

    df = pd.read_csv(_data_dir() / "llmhacking" / f"{name}.csv.gz")
    crowd = df["mturk_annotation"].map(ast.literal_eval)
    classes = sorted(df["ground_truth"].unique())
    items = pd.DataFrame({"task": name, "item_id": df["id"], "text": df["text"],
                          "truth": df["ground_truth"], "created_at": pd.to_datetime(df["created_at"])})
    labels = pd.concat([
        pd.DataFrame({"task": name, "model": f"crowd{w}", "prompt": "p0", "temperature": 0.0,
                      "item_id": df["id"], "label": crowd.map(lambda v, w=w: v[w])})
        for w in (0, 1)])
    cube = hackrisk.make_cube(labels, items, {name: classes})
    q = R.annotation_quality(cube)
    for w in (0, 1):
        y, yp = df["ground_truth"], crowd.map(lambda v, w=w: v[w])
        cell = q.sel(task=name, model=f"crowd{w}").squeeze()
        np.testing.assert_allclose(cell.accuracy, metrics.accuracy_score(y, yp), rtol=1e-12)
        np.testing.assert_allclose(cell.kappa, metrics.cohen_kappa_score(y, yp), rtol=1e-10)
        np.testing.assert_allclose(cell.macro_f1, metrics.f1_score(y, yp, average="macro"), rtol=1e-10)
    hyps = generate_hypotheses(cube)
    tests = test_hypotheses(cube, hyps)
    r = R.risk(tests, by="model", n_boot=200)
    est = r.sel(ci="estimate")
    ref = reference_risk(tests, by="model")
    np.testing.assert_allclose(est.risk_pooled.to_series().reindex(ref["risk_pooled"].index),
                               ref["risk_pooled"].values, rtol=1e-12)
    finite = est.risk_pooled.values[np.isfinite(est.risk_pooled.values)]
    assert finite.size == 2 and ((finite >= 0) & (finite <= 1)).all()
    assert int(r.n_conclusions.sum()) == 2 * tests.sizes["hypothesis"]
    hk = R.hacking(tests)
    assert set(np.unique(hk.fabricate.values[np.isfinite(hk.fabricate.values)])) <= {0.0, 1.0}
    curve = R.risk_by_effect_size(tests, by="p_value", n_boot=50)
    assert int(curve.n_hypotheses.sum()) == int(np.isfinite(tests.human_p_value).sum())


@pytest.mark.slow
def test_biased_annotator_rates_match_simulation_many_seeds():
    """Across 8 seeded multiverses the standardised gaps (measured − implied) / SE look N(0, 1)."""
    from hackrisk.analysis.frequentist import test_hypotheses

    n_cov, zs = 6, []
    for seed in range(8):
        cube, truth = hackrisk.simulate_multiverse(
            n_tasks=4, n_items=800, n_covariates=n_cov, models=3, n_prompts=3,
            temperatures=(0.0, 1.0), bias_sd=0.08, null_share=0.4, max_effect=0.15, rng=100 + seed)
        tests = test_hypotheses(cube, cov_hypotheses(cube, n_cov))
        plus, minus = implied_sig_probs(cube, truth, n_cov)
        e = R.classify_errors(tests).error.values
        hc = tests.human_conclusion.values[:, None, None, None]
        for code, p in ((1, np.where(hc == 0, plus + minus, np.nan)),
                        (2, np.where(hc != 0, 1 - plus - minus, np.nan))):
            m = np.isfinite(p)
            se = np.sqrt((p[m] * (1 - p[m])).sum()) / m.sum()
            zs.append(((e[m] == code).mean() - p[m].mean()) / se)
    zs = np.array(zs)
    assert np.abs(zs).max() < 4.5, zs
    assert abs(zs.mean()) < 4 / np.sqrt(zs.size) * 1.5, zs  # no systematic gap (SE inflated ×1.5)


def test_edge_cases_all_null_and_no_errors():
    t = make_tests(np.zeros((10, 2, 2, 1), int), np.zeros(10, int))
    r = R.risk(t, n_boot=50)
    assert float(r.type_i.sel(ci="estimate")) == 0.0
    assert np.isnan(r.type_ii.values).all() and int(r.n_significant) == 0
    assert r.to_dataframe().shape[0] == 3
    with pytest.raises(ValueError, match="every conclusion is right"):
        R.error_regression(t)
    hk = R.hacking(t)
    assert hk.attrs["fabricate_rate"] == 0.0 and np.isnan(hk.attrs["hide_rate"])


def test_partial_human_labels_no_placeholder():
    """Truth on 300 of 5,000 items: errors, risk and hacking use the labelled items on the human side."""
    import hackrisk
    from hackrisk.analysis import risk as R
    from hackrisk.analysis.frequentist import test_hypotheses

    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=5000, models=2, n_prompts=2,
                                           temperatures=(0.0, 1.0), rng=21)
    truth = cube["truth"].values.copy()
    keep = np.zeros(truth.shape, dtype=bool)
    keep[0, np.random.default_rng(3).choice(5000, size=300, replace=False)] = True
    cube["truth"] = (cube["truth"].dims, np.where(keep, truth, -1).astype(truth.dtype))
    hyps = hackrisk.generate_hypotheses(cube)
    tests = R.classify_errors(test_hypotheses(cube, hyps))
    assert (tests["error"] >= 0).all()  # every (hypothesis, configuration) is classified
    r = R.risk(tests, n_boot=20, rng=0)
    assert int(r["n_conclusions"]) == tests["error"].size
    # the pooled risk is the share of LLM conclusions that differ from the labelled-items conclusion
    wrong = (tests["conclusion"] != tests["human_conclusion"]).mean()
    assert float(r["risk_pooled"].sel(ci="estimate")) == pytest.approx(float(wrong))
    q = R.annotation_quality(cube)
    assert (q["n_items"] == 300).all()  # quality: the labelled items only
    assert int(q["confusion"].sum(["true_class", "pred_class"]).max()) == 300


# ---------------------------------------------------------------------------------------------
# risk against model features
# ---------------------------------------------------------------------------------------------
def _feature_tests(rng=0, h=300, m=8, b0=-1.5, b1=0.6):
    gen = np.random.default_rng(rng)
    size = np.linspace(-1.5, 1.5, m)  # e.g. standardised log parameter count
    hc = gen.choice([-1, 0, 1], h)
    p_wrong = 1 / (1 + np.exp(-(b0 + b1 * size)))  # per model
    wrong = gen.random((h, m, 2, 2)) < p_wrong[None, :, None, None]
    # a wrong conclusion: flip a null to significant, a significant one to null
    c = np.where(wrong, np.where(hc[:, None, None, None] == 0, 1, 0), hc[:, None, None, None])
    t = make_tests(c, hc, rng=rng)
    return t.assign_coords(size=("model", size), family=("model", np.array(["x"] * m, dtype=object)))


def test_risk_on_model_features_matches_statsmodels_and_recovers_slope():
    sm = pytest.importorskip("statsmodels.api")
    t = _feature_tests()
    fit = R.risk_on_model_features(t, "size")
    e = R.classify_errors(t)
    err = e.error.transpose("hypothesis", "model", ...).values.reshape(300, 8, -1)
    k, n = (err > 0).sum(-1).ravel(), (err >= 0).sum(-1).ravel()
    x = sm.add_constant(np.tile(t["size"].values, 300))
    ref = sm.GLM(np.column_stack([k, n - k]), x, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": np.repeat(np.arange(300), 8), "use_correction": False})
    np.testing.assert_allclose(fit.coef.values, ref.params, rtol=1e-7)
    np.testing.assert_allclose(fit.se.values, ref.bse, rtol=1e-6)
    # known truth: slope 0.6 per unit, intercept -1.5
    assert abs(float(fit.coef.sel(term="size")) - 0.6) < 3 * float(fit.se.sel(term="size"))
    assert abs(float(fit.coef.sel(term="intercept")) + 1.5) < 3 * float(fit.se.sel(term="intercept"))
    np.testing.assert_allclose(fit.risk.values, (err > 0).sum((0, 2)) / (err >= 0).sum((0, 2)))
    # Type I only: human-null hypotheses
    t1 = R.risk_on_model_features(t, ["size"], error="type_i")
    assert t1.attrs["n_hypotheses"] == int((t.human_conclusion == 0).sum())
    # risk by a model coordinate
    r = R.risk(t, by="size", n_boot=0)
    assert r.sizes["size"] == 8 and np.isfinite(r.risk_pooled.sel(ci="estimate")).all()
    with pytest.raises(ValueError, match="numeric coordinate on 'model'"):
        R.risk_on_model_features(t, "family")
