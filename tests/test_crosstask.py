"""Cross-task analysis: combined tests of several tasks, quality against risk, the suite summary."""

from __future__ import annotations

import numpy as np
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
                                  temperatures=temperatures, model_accuracy=accuracy, rng=rng)
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
    # a per-task fact on the model (the simulator's nominal accuracy) is left out, and said so
    assert "nominal_accuracy" not in ok.coords and ok.attrs["dropped_coords"] == ["nominal_accuracy"]
