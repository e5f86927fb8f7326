"""Tests of hackrisk.analysis.bayesian (hierarchical risk model).

The prospective risk (model 2) is tested in ``tests/test_prospective.py``.

Layout (bambi-style): structure tests swap the sampler for prior draws (``sampler="prior"``,
no NUTS, no nutpie compile); a few seeded real fits share module-scoped fixtures; the model-2
fits of the calibration study reuse one compiled model (same structure, new data).  Statistical
checks with many fits are ``slow``.
"""

from __future__ import annotations

import glob
import os

if "PYTENSOR_FLAGS" not in os.environ and glob.glob("/usr/lib/*/libopenblas.so"):
    os.environ["PYTENSOR_FLAGS"] = "blas__ldflags=-lopenblas"

import numpy as np
import pandas as pd
import pytest
import xarray as xr

pytest.importorskip("pymc")
pytest.importorskip("arviz")

import hackrisk  # noqa: E402
from hackrisk.analysis import bayesian as B  # noqa: E402
from hackrisk.analysis.frequentist import test_hypotheses as run_tests  # noqa: E402
from hackrisk.analysis.risk import annotation_quality, classify_errors  # noqa: E402
from hackrisk.hypotheses import generate_hypotheses  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning",
                                        "ignore::RuntimeWarning")

CONFIG = ("model", "prompt", "temperature")


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _multiverse_tests(seed: int = 1):
    cube, truth = hackrisk.simulate_multiverse(
        n_tasks=3, n_items=300, models=4, n_prompts=2, temperatures=(0.0, 1.0), rng=seed)
    hyps = generate_hypotheses(cube, groupings=("random", "length", "covariate"),
                               covariates=["x0", "x1", "x2", "x3"], rng=seed)
    return cube, classify_errors(run_tests(cube, hyps))


@pytest.fixture(scope="module")
def multiverse():
    return _multiverse_tests()


@pytest.fixture(scope="module")
def risk_fit(multiverse):
    cube, tests = multiverse
    # 384 tests only: the sampler is clean (no divergence) but needs 2,000 draws for ESS >= 400
    return B.fit_risk_model(tests, chains=2, draws=2000, rng=0)


# ---------------------------------------------------------------------------------------------
# helpers without sampling
# ---------------------------------------------------------------------------------------------
def test_sampler_resolution_and_cores():
    from hackrisk.analysis import _bayes_models as bm

    try:
        import nutpie  # noqa: F401
        expected = "nutpie"
    except ImportError:  # pragma: no cover
        expected = "pymc"
    assert bm.resolve_sampler("auto") == expected
    assert bm.resolve_sampler("pymc") == "pymc"
    with pytest.raises(ValueError, match="sampler"):
        bm.resolve_sampler("gibbs")
    assert bm.n_cores() == len(os.sched_getaffinity(0))


def test_aggregate_errors_counts(multiverse):
    cube, tests = multiverse
    q = annotation_quality(cube)["accuracy"]
    agg = B.aggregate_errors(tests, n_bins=5, quality=q)
    e = tests["error"]
    assert int(agg["n"].sum()) == int((e >= 0).sum())
    assert int(agg["n_wrong"].sum()) == int((e > 0).sum())
    # per model totals
    per_model = agg["n_wrong"].groupby("model").sum()
    for m in cube["model"].values:
        assert int(per_model.sel(model=m)) == int((e.sel(model=m) > 0).sum())
    # x is the human p-value's distance to the threshold, averaged within the group
    from scipy import stats

    xh = stats.norm.isf(tests["human_p_value"].values / 2) - stats.norm.isf(0.025)
    assert agg["x"].min() >= xh.min() - 1e-9 and agg["x"].max() <= xh.max() + 1e-9
    g = agg.isel(group=0)
    sel = q.sel(task=g["task"].item(), model=g["model"].item(), prompt=g["prompt"].item(),
                temperature=g["temperature"].item())
    assert float(g["quality"]) == pytest.approx(float(sel))
    assert set(np.unique(agg["bin"])) <= set(range(5))


def test_aggregate_errors_invariant_to_hypothesis_order(multiverse):
    _, tests = multiverse
    perm = np.random.default_rng(0).permutation(tests.sizes["hypothesis"])
    a = B.aggregate_errors(tests).to_dataframe().reset_index(drop=True)
    b = B.aggregate_errors(tests.isel(hypothesis=perm)).to_dataframe().reset_index(drop=True)
    keys = ["task", "model", "prompt", "temperature", "bin"]
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_aggregate_errors_messages(multiverse):
    _, tests = multiverse
    with pytest.raises(ValueError, match="classify_errors"):
        B.aggregate_errors(tests.drop_vars("error"))
    with pytest.raises(ValueError, match="x="):
        B.aggregate_errors(tests, x="distance")
    with pytest.raises(ValueError, match="quality lacks dims"):
        B.aggregate_errors(tests, quality=xr.DataArray(np.ones(2), dims="model"))


def test_calibration_table_by_hand():
    p = np.array([0.1, 0.1, 0.3, 0.9, 0.95, np.nan])
    o = np.array([0, 1, 0, 1, 1, 1])
    t = B.calibration_table(p, o, n_bins=2)
    assert list(t["n"]) == [3, 2]
    assert t["predicted"].iloc[0] == pytest.approx(0.5 / 3)
    assert t["observed"].iloc[0] == pytest.approx(1 / 3)
    se0 = np.sqrt(0.09 + 0.09 + 0.21) / 3
    assert t["se"].iloc[0] == pytest.approx(se0)
    assert t["z"].iloc[0] == pytest.approx((1 / 3 - 0.5 / 3) / se0)
    # perfectly correlated clusters inflate the SE
    tc = B.calibration_table(np.full(6, 0.5), np.array([1, 1, 1, 0, 0, 0]), n_bins=1,
                             cluster=np.array([0, 0, 0, 1, 1, 1]))
    assert tc["se"].iloc[0] == pytest.approx(np.sqrt(2 * 1.5**2) / 6)


# ---------------------------------------------------------------------------------------------
# structure tests with the mocked sampler (prior draws)
# ---------------------------------------------------------------------------------------------
def test_risk_model_structure_mock(multiverse):
    cube, tests = multiverse
    q = annotation_quality(cube)["accuracy"]
    idata = B.fit_risk_model(tests, quality=q, sampler="prior", draws=40, chains=2, rng=0)
    post = idata.posterior
    assert post.attrs["sampler"].startswith("prior")
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 40
    for dim in ("task", *CONFIG):
        np.testing.assert_array_equal(np.sort(post[dim].values), np.sort(cube[dim].values))
        assert post[f"effect_{dim}"].dims == ("chain", "draw", dim)
        r = post[f"risk_{dim}"]
        assert ((r > 0) & (r < 1)).all()
    assert post["risk_curve"].dims == ("chain", "draw", "x_grid")
    assert post["risk_curve_model"].dims == ("chain", "draw", "model", "x_grid")
    assert "gamma_quality" in post
    assert idata.observed_data["n_wrong"].sum() == (tests["error"] > 0).sum()
    pr = B.prob_riskier(idata)
    assert pr.dims == ("model", "model_other")
    np.testing.assert_allclose(np.diag(pr), 0.0)
    off = ~np.eye(pr.shape[0], dtype=bool)
    np.testing.assert_allclose((pr.values + pr.values.T)[off], 1.0)
    rc = B.risk_curves(idata, by="model")
    assert rc["risk"].dims == ("ci", "model", "x_grid")
    assert (rc["risk"].sel(ci="lower") <= rc["risk"].sel(ci="upper")).all()
    with pytest.raises(ValueError, match="risk_curve_prompt"):
        B.risk_curves(idata, by="prompt")


def test_plots_mock(multiverse):
    pytest.importorskip("matplotlib")
    cube, tests = multiverse
    idata = B.fit_risk_model(tests, sampler="prior", draws=20, chains=2, rng=0)
    ax = B.plot_posterior_risk_curve(idata, by="model")
    assert len(ax.lines) == cube.sizes["model"] + 1  # curves + threshold line
    assert len(ax.collections) == cube.sizes["model"]
# ---------------------------------------------------------------------------------------------
# seeded real fits
# ---------------------------------------------------------------------------------------------
def test_risk_model_fit_orders_models(risk_fit, multiverse):
    """simulate_multiverse's models get worse from model0 (0.92) to model3 (0.6)."""
    cube, tests = multiverse
    post = risk_fit.posterior
    assert post.attrs["sampler"].split()[0] in ("nutpie", "pymc")
    pr = B.prob_riskier(risk_fit)
    assert float(pr.sel(model="model3", model_other="model0")) > 0.9
    rm = post["risk_model"].mean(("chain", "draw"))
    observed = (tests["error"] > 0).where(tests["error"] >= 0).mean(("hypothesis", "prompt", "temperature"))
    # posterior model risks rank like the observed error rates (Spearman > 0.7 with 4 models)
    from scipy import stats

    assert stats.spearmanr(rm.sel(model=observed["model"]).values, observed.values)[0] > 0.7
    rc = B.risk_curves(risk_fit)["risk"]
    assert (rc.sel(ci="lower") < rc.sel(ci="upper")).all()


def test_risk_model_diagnostics_clean(risk_fit):
    """Every reported quantity: 0 divergences, R-hat <= 1.01, bulk ESS >= 400 (issue 15)."""
    import arviz as az

    from hackrisk.analysis._sampling import check_diagnostics

    attrs = risk_fit.posterior.attrs
    assert attrs["diagnostics_divergences"] == 0
    assert attrs["diagnostics_r_hat_max"] <= 1.01
    assert attrs["diagnostics_ess_bulk_min"] >= 400
    assert attrs["diagnostics_ok"] == 1
    # the figures are those of ArviZ over every element of every posterior variable
    diag = check_diagnostics(risk_fit, warn=False)
    post = risk_fit.posterior
    r_hat = max(float(az.rhat(post[[v]])[v].max()) for v in post.data_vars)
    ess = min(float(az.ess(post[[v]], method="bulk")[v].min()) for v in post.data_vars)
    assert diag["r_hat_max"] == pytest.approx(r_hat)
    assert diag["ess_bulk_min"] == pytest.approx(ess)
    assert diag["divergences"] == int(risk_fit.sample_stats["diverging"].sum())


def test_risk_model_poor_fit_warns(multiverse):
    """A deliberately short run: the fit warns and names the quantity that falls short."""
    cube, tests = multiverse
    with pytest.warns(UserWarning, match=r"fit_risk_model.*(R-hat of|bulk ESS of) [a-z_]+") as rec:
        idata = B.fit_risk_model(tests, draws=5, tune=5, chains=2, rng=0)
    assert idata.posterior.attrs["diagnostics_ok"] == 0
    assert idata.posterior.attrs["diagnostics_ess_bulk_min"] < 400
    worst = idata.posterior.attrs["diagnostics_worst_ess_bulk"].split("[")[0]
    assert worst in idata.posterior
    assert any(worst in str(w.message) for w in rec)


def test_check_diagnostics_by_hand():
    """Divergences are counted, the worst element is named, constant elements are skipped."""
    import arviz as az

    from hackrisk.analysis._sampling import check_diagnostics

    gen = np.random.default_rng(0)
    good = az.from_dict(posterior={"a": gen.normal(size=(2, 1000)), "c": np.ones((2, 1000))},
                        sample_stats={"diverging": np.zeros((2, 1000), bool)})
    d = check_diagnostics(good)
    assert d["ok"] and d["divergences"] == 0 and d["ess_bulk_min"] > 400
    stuck = gen.normal(size=(2, 1000, 3))
    stuck[1, :, 2] += 5.0  # chain 2 elsewhere for element 2 only
    bad = az.from_dict(posterior={"a": gen.normal(size=(2, 1000)), "b": stuck},
                       sample_stats={"diverging": np.eye(2, 1000, dtype=bool)},
                       dims={"b": ["level"]}, coords={"level": ["x", "y", "z"]})
    with pytest.warns(UserWarning, match=r"2 divergent transitions.*R-hat of b\[level=z\]"):
        d = check_diagnostics(bad, what="toy")
    assert not d["ok"] and d["divergences"] == 2 and d["worst"]["r_hat"] == "b[level=z]"
    with pytest.raises(ValueError, match="no \\['nope'\\]"):
        check_diagnostics(bad, ["nope"])


def test_rhat_ess_match_arviz():
    """The vectorised R-hat / bulk ESS equal ArviZ's, from well mixed to stuck chains."""
    import arviz as az

    from hackrisk.analysis._sampling import rhat_ess

    gen = np.random.default_rng(2)
    phis = [0.0, 0.5, 0.9, 0.99, 0.999]
    for chains, draws in ((4, 200), (2, 301), (1, 50)):
        x = np.zeros((chains, draws, len(phis) + 2))
        noise = gen.normal(size=x.shape)
        for t in range(draws):  # AR(1) chains of growing autocorrelation
            x[:, t, :len(phis)] = np.asarray(phis) * x[:, t - 1, :len(phis)] + noise[:, t, :len(phis)]
        x[:, :, -2] = noise[:, :, -2] + np.arange(chains)[:, None] * 2.0  # chains disagree
        x[:, :, -1] = np.round(noise[:, :, -1])  # many ties
        r, e = rhat_ess(x)
        ds = xr.Dataset({"v": (("chain", "draw", "k"), x)})
        np.testing.assert_allclose(r, az.rhat(ds, method="rank")["v"].values, rtol=1e-10)
        np.testing.assert_allclose(e, az.ess(ds, method="bulk")["v"].values, rtol=1e-10)
    nan = np.zeros((2, 100, 1))
    nan[0, 3, 0] = np.nan
    assert np.isnan(rhat_ess(nan)).all()


def test_risk_kernel_matches_pymc_model(multiverse):
    """The numba log density (the nutpie path) is the PyMC model's, gradient included."""
    pytest.importorskip("numba")
    from hackrisk.analysis import _bayes_models as bm
    from hackrisk.analysis import _risk_kernel as rk

    cube, tests = multiverse
    q = annotation_quality(cube)["accuracy"]
    specs = []
    real = rk.nutpie_model

    def grab(spec):
        specs.append(spec)
        raise KeyboardInterrupt  # stop before sampling

    rk.nutpie_model = grab
    try:
        for kw in ({"quality": q}, {"cluster_effect": False}, {"factors": ("model", "prompt")},
                   {"factors": ("task",)}):
            with pytest.raises(KeyboardInterrupt):
                B.fit_risk_model(tests, sampler="nutpie", **kw)
    finally:
        rk.nutpie_model = real
    gen = np.random.default_rng(3)
    for i, spec in enumerate(specs):
        spec = dict(spec, steps_centred=bool(i % 2))  # both forms of the spline steps
        names, n_dim = rk.layout(spec)
        args = rk.arguments(spec)
        model = bm.risk_model(spec)
        logp = model.compile_logp(mode="FAST_COMPILE")
        dlogp = model.compile_dlogp(mode="FAST_COMPILE")
        order = [v.name for v in model.value_vars]
        where = {name: (pos, shape) for name, pos, shape in names}
        assert sorted(order) == sorted(where)
        for shift in (0.0, 0.0, 500.0, -500.0):
            x = gen.normal(0.0, 0.7, n_dim)
            # beta0 = base + 1.5 * beta0_raw: |η| ≈ 750, e^η over- / underflows (the stable branch)
            x[where["beta0_raw"][0]] += shift
            point = {n: (x[p] if not sh else x[p:p + sh[0]]) for n, (p, sh) in where.items()}
            lp, grad = rk.logp_grad(x, *args)
            assert lp == pytest.approx(float(logp(point)), rel=1e-10, abs=1e-8)
            g_pm = dlogp(point)
            g_k = np.concatenate([np.atleast_1d(grad[where[n][0]:where[n][0] + (where[n][1] or (1,))[0]])
                                  for n in order])
            np.testing.assert_allclose(g_k, g_pm, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# slow statistical checks
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_risk_model_parameter_recovery():
    """Counts drawn from the model itself (known curve and model effects) are recovered."""
    gen = np.random.default_rng(5)
    tasks, models, prompts, temps, bins = 8, 6, 3, 2, 8
    x_b = np.linspace(-1.8, 4.0, bins)
    true_curve = lambda x: -1.0 + 1.2 * np.exp(-0.5 * x**2) - 0.5 * np.clip(x, 0, None)  # noqa: E731
    eff_model = np.linspace(-0.8, 0.8, models)
    eff_task = gen.normal(0, 0.4, tasks)
    eff_prompt = gen.normal(0, 0.2, prompts)
    t, m, p, k, b = np.meshgrid(np.arange(tasks), np.arange(models), np.arange(prompts),
                                np.arange(temps), np.arange(bins), indexing="ij")
    t, m, p, k, b = (a.ravel() for a in (t, m, p, k, b))
    u_cluster = gen.normal(0, 0.3, (tasks, bins))  # correlation of tests sharing hypotheses
    eta = (true_curve(x_b[b]) + eff_model[m] + eff_task[t] + eff_prompt[p] + 0.1 * k
           + u_cluster[t, b])
    pr = 1 / (1 + np.exp(-eta))
    n = gen.integers(20, 60, size=eta.size)
    k_wrong = gen.binomial(n, pr)
    agg = xr.Dataset(
        {"n_wrong": ("group", k_wrong), "n": ("group", n), "x": ("group", x_b[b])},
        coords={"task": ("group", np.array([f"t{i}" for i in t], dtype=object)),
                "model": ("group", np.array([f"m{i}" for i in m], dtype=object)),
                "prompt": ("group", np.array([f"p{i}" for i in p], dtype=object)),
                "temperature": ("group", np.array([0.0, 1.0])[k]),
                "bin": ("group", b), "group": np.arange(eta.size)},
        attrs={"x": "z_distance", "alpha": 0.05})
    idata = B.fit_risk_model(agg, draws=500, tune=500, chains=2, n_knots=4, rng=1)
    post = idata.posterior
    # model effects sum to zero in the model: compare with the centred truth
    em = post["effect_model"]
    np.testing.assert_allclose(em.sum("model"), 0.0, atol=1e-8)
    lo, hi = em.quantile(0.05, ("chain", "draw")), em.quantile(0.95, ("chain", "draw"))
    truth_c = eff_model - eff_model.mean()
    cover = ((truth_c >= lo.values) & (truth_c <= hi.values)).mean()
    assert cover >= 4 / 6
    assert float(B.prob_riskier(idata).sel(model="m5", model_other="m0")) > 0.99
    # the curve at a typical task/prompt/temperature tracks the true one
    shift = float(np.mean(eff_task) + np.mean(eff_prompt) + 0.05 + eff_model.mean()
                  + u_cluster.mean())
    grid = post["x_grid"].values
    est = post["risk_curve"].median(("chain", "draw")).values
    true_r = 1 / (1 + np.exp(-(true_curve(grid) + shift)))
    assert np.abs(est - true_r).max() < 0.08
    sc = post["sigma_cluster"]
    assert float(sc.quantile(0.025)) < 0.3 < float(sc.quantile(0.975))
