"""Cross-task analysis: combined tests of several tasks, quality against risk, the suite summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hackrisk.analysis.crosstask import combine_tasks
from hackrisk.analysis.frequentist import test_hypotheses
from hackrisk.analysis.risk import classify_errors, risk, variance_explained
from hackrisk.hypotheses import generate_hypotheses
from hackrisk.simulate import simulate_multiverse

_RATES = ("type_i", "type_ii", "type_s", "type_m_mean", "risk_pooled", "risk_balanced")


def _task(name: str, *, n_prompts: int, temperatures=(0.0, 1.0), models=("m0", "m1"), accuracy=None, rng=0):
    cube, _ = simulate_multiverse(n_tasks=1, n_items=160, models=list(models), n_prompts=n_prompts,
                                  temperatures=temperatures, model_accuracy=accuracy, max_effect=0.3,
                                  null_share=0.0, base_rate=0.5, rng=rng)
    cube = cube.assign_coords(task=[name])
    return cube, test_hypotheses(cube, generate_hypotheses(cube))


@pytest.fixture(scope="module")
def suite():
    """Three tasks that differ in their configurations: prompts 3 / 2 / 3, a temperature and a model only some have."""
    a = _task("alpha", n_prompts=3, rng=1)
    b = _task("beta", n_prompts=2, temperatures=(0.0, 0.5, 1.0), accuracy=[0.7, 0.65], rng=2)
    c = _task("gamma", n_prompts=3, models=("m0", "m2"), accuracy=[0.9, 0.6], rng=3)
    cubes = {"alpha": a[0], "beta": b[0], "gamma": c[0]}
    tests = {"alpha": a[1], "beta": b[1], "gamma": c[1]}
    return cubes, tests


def test_combine_tasks_outer_join_and_fill(suite):
    _, tests = suite
    comb = combine_tasks(tests)
    assert comb.sizes["hypothesis"] == sum(t.sizes["hypothesis"] for t in tests.values())
    assert comb["model"].values.tolist() == ["m0", "m1", "m2"]
    assert comb["prompt"].values.tolist() == ["p0", "p1", "p2"]
    assert comb["temperature"].values.tolist() == [0.0, 0.5, 1.0]
    assert comb.attrs["tasks"] == ["alpha", "beta", "gamma"]
    assert np.array_equal(comb["hypothesis"].values, np.arange(comb.sizes["hypothesis"]))
    for name, t in tests.items():
        part = comb.where(comb["task"] == name, drop=True)
        assert part["task_hypothesis"].values.tolist() == t["hypothesis"].values.tolist()
        sub = comb.isel(hypothesis=np.flatnonzero(comb["task"].values == name))
        # the task's own configurations: identical values
        own = sub.sel(model=t["model"], prompt=t["prompt"], temperature=t["temperature"])
        for v in ("estimate", "p_value", "conclusion", "annotated", "k_a"):
            np.testing.assert_array_equal(own[v].values, t[v].values)
        for v in ("human_estimate", "human_conclusion", "human_n_a"):
            np.testing.assert_array_equal(sub[v].values, t[v].values)
        # configurations the task lacks: the not-annotated fill of test_hypotheses, never a conclusion
        lacks = ~(sub["model"].isin(t["model"]) & sub["prompt"].isin(t["prompt"])
                  & sub["temperature"].isin(t["temperature"]))
        lacks = lacks.broadcast_like(sub["conclusion"])
        assert bool(lacks.any())
        assert not bool(sub["annotated"].where(lacks, False).any())
        assert bool((sub["conclusion"].where(lacks, 0) == 0).all())
        for v in ("estimate", "p_value", "se", "k_a", "n_b"):
            assert bool(np.isnan(sub[v].values[lacks.values]).all())
        err = classify_errors(sub)["error"]
        assert bool((err.where(lacks, -1) == -1).all())
    assert comb["conclusion"].dtype == np.int8 and comb["annotated"].dtype == bool
    n_fill = sum(int(np.prod([comb.sizes[d] for d in ("model", "prompt", "temperature")]))
                 - int(np.prod([t.sizes[d] for d in ("model", "prompt", "temperature")])) for t in tests.values())
    assert comb.attrs["n_filled"] == n_fill == len(comb.attrs["filled"])


def test_combined_risk_equals_each_task_alone(suite):
    _, tests = suite
    comb = combine_tasks(tests)
    by_task = risk(comb, by="task", n_boot=0)
    for name, t in tests.items():
        alone = risk(t, n_boot=0)
        for v in _RATES:
            a = float(alone[v].sel(ci="estimate"))
            b = float(by_task[v].sel(task=name, ci="estimate"))
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-12), (name, v)
        for v in ("n_null", "n_significant", "n_conclusions"):
            assert int(alone[v]) == int(by_task[v].sel(task=name))
    # and the pooled risk is the mean over tasks
    pooled = risk(comb, n_boot=0)
    mean = np.mean([float(risk(t, n_boot=0)["risk_pooled"].sel(ci="estimate")) for t in tests.values()])
    assert float(pooled["risk_pooled"].sel(ci="estimate")) == pytest.approx(mean, abs=1e-12)


def test_combined_feeds_variance_bayes_and_explorer(suite):
    _, tests = suite
    comb = combine_tasks(tests)
    ve = variance_explained(comb, terms=("task", "model", "prompt", "temperature", "effect_size"))
    assert ve["term"].values.tolist() == ["task", "model", "prompt", "temperature", "effect_size"]
    assert float(ve["r2_sequential"].sum()) == pytest.approx(ve.attrs["r2_total"])
    # every annotated conclusion of every task enters, the filled configurations do not
    n_ann = sum(int((classify_errors(t)["error"] >= 0).sum()) for t in tests.values())
    assert ve.attrs["n_obs"] == n_ann
    pytest.importorskip("pymc")
    from hackrisk.analysis.bayesian import aggregate_errors, fit_risk_model

    errs = classify_errors(comb)
    agg = aggregate_errors(errs, x="effect")
    assert int(agg["n"].sum()) == n_ann
    idata = fit_risk_model(errs, x="effect", factors=("task", "model", "prompt", "temperature"),
                           sampler="prior", draws=20, chains=2, rng=0)
    assert idata.posterior["task"].values.tolist() == ["alpha", "beta", "gamma"]
    from hackrisk.widgets import prepare, view_state

    prep = prepare(comb, lfdr=False)
    assert prep["tasks"] == ["alpha", "beta", "gamma"]
    view = view_state(prep, task="beta")
    assert view["task"] == "beta"
    with pytest.raises(ValueError, match="not in the results"):
        view_state(prep, task="delta")
    # the beta slice: beta's hypotheses only; m2 and the prompt p2 beta lacks are never a conclusion there
    beta = np.flatnonzero(comb["task"].values == "beta")
    assert np.array_equal(np.flatnonzero(prep["task_of"] == prep["tasks"].index("beta")), beta)
    assert (prep["error"][beta][:, comb["model"].values.tolist().index("m2")] == -1).all()
    assert (prep["error"][beta][:, :, comb["prompt"].values.tolist().index("p2")] == -1).all()
    pytest.importorskip("anywidget")
    from hackrisk.widgets import explore

    w = explore(comb, lfdr=False, task="beta")
    assert w.task == "beta"


def test_combine_tasks_names_and_errors(suite):
    _, tests = suite
    # the key names a one-task Dataset, whatever its own task coordinate says
    comb = combine_tasks({"renamed": tests["alpha"], "beta": tests["beta"]})
    assert comb.attrs["tasks"] == ["renamed", "beta"]
    # a sequence keeps the Datasets' own names; a duplicate is an error
    assert combine_tasks([tests["alpha"], tests["beta"]]).attrs["tasks"] == ["alpha", "beta"]
    with pytest.raises(ValueError, match="appears in input"):
        combine_tasks([tests["alpha"], tests["alpha"]])
    with pytest.raises(ValueError, match="different alpha"):
        combine_tasks({"a": tests["alpha"], "b": tests["beta"].assign_attrs(alpha=0.1)})
    with pytest.raises(ValueError, match="not a tests Dataset"):
        combine_tasks({"a": xr.Dataset({"x": ("i", [1])})})
    with pytest.raises(ValueError, match="no test results"):
        combine_tasks({})
    other = tests["beta"].assign_coords(identity=("model", ["m0@1", "m1@1"]))
    clash = tests["alpha"].assign_coords(identity=("model", ["m0@1", "m1@2"]))
    with pytest.raises(ValueError, match="model 'm1' is 'm1@2' in one task"):
        combine_tasks({"a": clash, "b": other})
    ok = combine_tasks({"a": tests["alpha"].assign_coords(identity=("model", ["m0@1", "m1@1"])), "b": other,
                        "c": tests["gamma"]})
    assert ok["identity"].values.tolist() == ["m0@1", "m1@1", ""]
    # one model (one SHA-256 of its weights) whose backend had another display name in one run pools;
    # a short revision such as a branch name proves nothing and still clashes
    sha, sha2 = "ab" * 32, "cd" * 32
    renamed = combine_tasks({"a": tests["alpha"].assign_coords(identity=("model", [f"m0@{sha}", f"x@{sha}"])),
                             "b": tests["beta"].assign_coords(identity=("model", [f"m0@{sha}", f"y@{sha}"]))})
    assert renamed["identity"].values.tolist()[:2] == [f"m0@{sha}", f"x@{sha}"]
    with pytest.raises(ValueError, match="two models under one name"):
        combine_tasks({"a": tests["alpha"].assign_coords(identity=("model", [f"m0@{sha}", f"x@{sha}"])),
                       "b": tests["beta"].assign_coords(identity=("model", [f"m0@{sha}", f"y@{sha2}"]))})
    with pytest.raises(ValueError, match="two models under one name"):
        combine_tasks({"a": tests["alpha"].assign_coords(identity=("model", ["m0@main", "x@main"])),
                       "b": tests["beta"].assign_coords(identity=("model", ["m0@main", "y@main"]))})
    # a per-task fact on the model (the simulator's nominal accuracy) is left out, and said so
    assert "nominal_accuracy" not in ok.coords and ok.attrs["dropped_coords"] == ["nominal_accuracy"]


# ---------------------------------------------------------------------------------------------
# quality against risk
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graded():
    """Three tasks, three models of clearly different accuracy each: risk must fall with accuracy."""
    cubes, tests = {}, {}
    for k, name in enumerate(("t1", "t2", "t3")):
        cubes[name], tests[name] = _task(name, n_prompts=2, models=("good", "fair", "poor"),
                                         accuracy=[0.97, 0.8, 0.6], rng=10 + k)
    return cubes, tests


def test_quality_risk_table_cells_are_the_definitions(suite):
    from hackrisk.analysis.crosstask import quality_risk_table
    from hackrisk.analysis.risk import annotation_quality

    cubes, tests = suite
    table = quality_risk_table(tests, cubes, n_boot=0)
    n_cells = sum(int(np.prod([t.sizes[d] for d in ("model", "prompt", "temperature")])) for t in tests.values())
    assert len(table) == n_cells  # only the configurations each task has
    assert list(table.columns[:4]) == ["task", "model", "prompt", "temperature"]
    for row in table.sample(6, random_state=0).itertuples():
        cfg = {"model": row.model, "prompt": row.prompt, "temperature": row.temperature}
        q = annotation_quality(cubes[row.task]).sel(task=row.task, **cfg)
        for v in ("accuracy", "macro_f1", "weighted_f1"):
            assert getattr(row, v) == pytest.approx(float(q[v]), abs=1e-12)
        e = classify_errors(tests[row.task]).sel(**cfg)
        err, hc = e["error"].values, e["human_conclusion"].values
        ok = err >= 0

        def share(sel, code, err=err):
            return float(np.mean(err[sel] == code)) if sel.any() else np.nan

        assert row.risk_pooled == pytest.approx(float(np.mean(err[ok] > 0)), abs=1e-12)
        assert row.type_i == pytest.approx(share(ok & (hc == 0), 1), abs=1e-12, nan_ok=True)
        assert row.type_ii == pytest.approx(share(ok & (hc != 0), 2), abs=1e-12, nan_ok=True)
        assert row.type_s == pytest.approx(share(ok & (hc != 0), 3), abs=1e-12, nan_ok=True)
        assert row.n_conclusions == int(ok.sum())
    # a stored annotation_quality result stands in for the cube
    stored = {k: annotation_quality(c).drop_vars("confusion") for k, c in cubes.items()}
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(quality_risk_table(tests, stored, n_boot=0), table)
    with pytest.raises(ValueError, match="hold tasks"):
        quality_risk_table(tests, {"alpha": cubes["alpha"]}, n_boot=0)
    with pytest.raises(ValueError, match="neither a label cube"):
        quality_risk_table(tests, {**cubes, "beta": tests["beta"]}, n_boot=0)


def test_risk_falls_with_accuracy_on_simulated_tasks(graded):
    from hackrisk.analysis.crosstask import quality_risk_table

    cubes, tests = graded
    table = quality_risk_table(tests, cubes, n_boot=200, rng=0)
    rel = table.attrs["relation"]["accuracy"]
    assert rel["n"] == len(table) == 3 * 3 * 2 * 2 and rel["n_tasks"] == 3
    # known truth: the poor model is wrong far more often than the good one, in every task
    assert rel["slope"] < 0 and rel["slope_upper"] < 0 and rel["slope_lower"] <= rel["slope"]
    assert rel["within_r"] < 0  # also among one task's configurations
    by_model = table.groupby("model")[["risk_pooled", "type_ii"]].mean()
    assert by_model.loc["good", "risk_pooled"] < by_model.loc["poor", "risk_pooled"]
    assert by_model.loc["good", "type_ii"] < by_model.loc["poor", "type_ii"]
    # parity of the point estimates with numpy
    x, y = table["accuracy"].to_numpy(), table["risk_pooled"].to_numpy()
    slope, intercept = np.polyfit(x, y, 1)
    assert rel["slope"] == pytest.approx(slope, rel=1e-10) and rel["intercept"] == pytest.approx(intercept, rel=1e-10)
    dx = x - table.groupby("task")["accuracy"].transform("mean").to_numpy()
    dy = y - table.groupby("task")["risk_pooled"].transform("mean").to_numpy()
    assert rel["within_r"] == pytest.approx(np.corrcoef(dx, dy)[0, 1], rel=1e-10)


def test_relation_bootstrap_resamples_whole_tasks():
    from hackrisk.analysis.crosstask import quality_risk_relation

    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1, 8)
    y = 0.9 - 0.6 * x + rng.normal(0, 0.05, 8)
    # three tasks with identical rows: every resample of whole tasks has the same slope
    same = pd.DataFrame({"task": np.repeat(["a", "b", "c"], 8), "acc": np.tile(x, 3), "r": np.tile(y, 3)})
    rel = quality_risk_relation(same, x="acc", y="r", n_boot=100, rng=1)
    assert rel["slope_lower"] == pytest.approx(rel["slope"]) == pytest.approx(rel["slope_upper"])
    # distinct tasks: the interval opens
    other = same.assign(r=same["r"] + rng.normal(0, 0.1, len(same)))
    rel2 = quality_risk_relation(other, x="acc", y="r", n_boot=100, rng=1)
    assert rel2["slope_lower"] < rel2["slope"] < rel2["slope_upper"]
    one = quality_risk_relation(same[same["task"] == "a"], x="acc", y="r", n_boot=100)
    assert np.isnan(one["slope_lower"]) and np.isfinite(one["slope"])
    with pytest.raises(ValueError, match="no column 'f1'"):
        quality_risk_relation(same, x="f1", y="r")


# ---------------------------------------------------------------------------------------------
# the Bayesian curves and the suite summary
# ---------------------------------------------------------------------------------------------
def test_task_curves_shift_the_overall_curve_by_the_task_effect(suite):
    pytest.importorskip("pymc")
    from scipy.special import expit, logit

    from hackrisk.analysis.bayesian import fit_risk_model
    from hackrisk.analysis.crosstask import task_curves

    _, tests = suite
    fit = fit_risk_model(classify_errors(combine_tasks(tests)), x="effect", sampler="prior", draws=30, chains=2,
                         rng=0)
    curves = task_curves(fit, ci=0.8)
    post = fit.posterior
    rc = post["risk_curve"].values.reshape(-1, post.sizes["x_grid"])
    eff = post["effect_task"].values.reshape(rc.shape[0], -1)
    for k, task in enumerate(post["task"].values):
        draws = expit(logit(rc) + eff[:, k, None])
        np.testing.assert_allclose(curves["risk_task"].sel(task=task, ci="estimate"), np.median(draws, 0), rtol=1e-9)
        np.testing.assert_allclose(curves["risk_task"].sel(task=task, ci="upper"),
                                   np.quantile(draws, 0.9, axis=0), rtol=1e-9)
    np.testing.assert_allclose(curves["risk"].sel(ci="estimate"), np.median(rc, 0), rtol=1e-9)
    assert curves.attrs["x"] == "effect"


def test_suite_summary(suite):
    pytest.importorskip("pymc")
    from hackrisk.analysis.crosstask import suite_summary, task_risk_table

    cubes, tests = suite
    s = suite_summary(tests, cubes, n_boot=50, bayes_options={"sampler": "prior", "draws": 20, "chains": 2})
    assert set(s) == {"combined", "task_table", "quality", "variance", "curve", "seconds"}
    assert s["combined"].attrs["tasks"] == ["alpha", "beta", "gamma"]
    direct = task_risk_table(s["combined"], n_boot=0)
    assert s["task_table"].set_index("task")["risk_balanced"].sort_index().tolist() == pytest.approx(
        direct.set_index("task")["risk_balanced"].sort_index().tolist(), nan_ok=True)
    assert s["task_table"]["risk_balanced"].is_monotonic_decreasing
    assert (s["task_table"]["risk_balanced_lower"] <= s["task_table"]["risk_balanced_upper"]).all()
    assert s["variance"]["term"].values.tolist() == ["task", "model", "prompt", "temperature", "quality",
                                                    "effect_size"]
    assert set(s["quality"].attrs["relation"]) == {"accuracy", "macro_f1"}
    assert s["curve"]["curves"]["task"].values.tolist() == ["alpha", "beta", "gamma"]
    # without cubes and without the Bayesian fit
    bare = suite_summary(tests, n_boot=0, bayes=False)
    assert bare["quality"] is None and bare["curve"] is None
    assert bare["variance"]["term"].values.tolist() == ["task", "model", "prompt", "temperature", "effect_size"]


def test_suite_report_renders_every_section(suite, tmp_path):
    pytest.importorskip("pymc")
    import re

    from hackrisk.analysis.crosstask import suite_summary
    from hackrisk.report import render_suite_report, write_suite_report

    cubes, tests = suite
    s = suite_summary(tests, cubes, n_boot=30, bayes_options={"sampler": "prior", "draws": 20, "chains": 2})
    links = {"alpha": "alpha/report.html", "beta": "beta/report.html"}
    path = write_suite_report(tmp_path / "suite" / "report.html", s, task_reports=links)
    text = path.read_text()
    for section in ("task-risk", "quality", "effect-size", "variance", "provenance"):
        assert f"<section id='{section}'>" in text
    imgs = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    # forest, two quality scatters, the curves, the variance bars: each a real PNG with a caption
    assert len(imgs) == 5
    import base64

    for caption, data in imgs:
        assert caption and base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"<figcaption>{caption}</figcaption>" in text
    assert "<a href='alpha/report.html'>alpha</a>" in text and "<a href='beta/report.html'>beta</a>" in text
    assert "gamma</td>" in text  # no link given: plain name
    sections = dict(re.findall(r"<section id='([a-z-]+)'>(.*?)</section>", text, flags=re.S))
    for name in ("task-risk", "quality", "effect-size"):  # every task has a row in each table
        rows = re.findall(r"<tr><td[^>]*>(?:\d+</td><td[^>]*>)?(?:<a href='[^']*'>)?(\w+)", sections[name])
        assert sorted(r for r in rows if r not in ("accuracy", "macro")) == ["alpha", "beta", "gamma"], name
    # without quality and the Bayesian fit, the sections say why they are empty
    bare = render_suite_report(suite_summary(tests, n_boot=0, bayes=False))
    assert "needs each task's cube" in bare and "bayes=False" in bare
    assert len(re.findall(r"<img ", bare)) == 2
    with pytest.raises(ValueError, match="suite_summary"):
        render_suite_report({"combined": s["combined"]})


def test_suite_report_lists_the_tasks_left_out(suite):
    """Tasks the cross-task analysis left out are named with the reason (escaped), linked when a report exists."""
    import re

    from hackrisk.analysis.crosstask import suite_summary
    from hackrisk.report import render_suite_report

    _, tests = suite
    s = suite_summary(tests, n_boot=0, bayes=False)
    assert "id='left-out'" not in render_suite_report(s)
    why = "no hypothesis could be formed on its 3 items (fewer than 2 per group <min_group>)"
    text = render_suite_report(s, left_out={"delta": why, "epsilon": "other"}, task_reports={"delta": "d/r.html"})
    section = re.search(r"<section id='left-out'>(.*?)</section>", text, flags=re.S).group(1)
    rows = re.findall(r"<tr><td class=\"l\">(.*?)</td><td class=\"l\">(.*?)</td></tr>", section)
    assert rows == [("<a href='d/r.html'>delta</a>", why.replace("<", "&lt;").replace(">", "&gt;")),
                    ("epsilon", "other")]
    assert "2 task(s) of the suite left out" in text
    # the analysed tasks' tables do not gain the left-out ones
    risk_section = re.search(r"<section id='task-risk'>(.*?)</section>", text, flags=re.S).group(1)
    assert "delta" not in risk_section and "epsilon" not in risk_section
