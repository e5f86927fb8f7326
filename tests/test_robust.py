"""robust_conclusions: one verdict per hypothesis from corrected conclusions across configurations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import hackrisk
from hackrisk.analysis.robust import robust_conclusions


def _corrected(concl, n_a=50, n_b=50, method="ppi", se=None):
    """A correct()-shaped Dataset: concl (hypothesis, model, prompt, temperature)."""
    concl = np.asarray(concl, dtype=np.int8)
    h, m, p, t = concl.shape
    est = concl * 0.1 + np.linspace(-0.01, 0.01, concl.size).reshape(concl.shape)
    se = np.full(concl.shape, 0.03) if se is None else np.asarray(se, dtype=float)
    dims = ("hypothesis", "model", "prompt", "temperature")
    n_a = np.broadcast_to(np.asarray(n_a, dtype=float).reshape(-1, 1, 1, 1), concl.shape)
    n_b = np.broadcast_to(np.asarray(n_b, dtype=float).reshape(-1, 1, 1, 1), concl.shape)
    decided = (n_a >= 2) & (n_b >= 2)
    return xr.Dataset(
        {"conclusion": (dims, np.where(decided, concl, 0).astype(np.int8)),
         "estimate": (dims, np.where(decided, est, np.nan)), "se": (dims, np.where(decided, se, np.nan)),
         "ci_lower": (dims, est - 2 * se), "ci_upper": (dims, est + 2 * se),
         "decided": (dims, decided), "annotated": (dims, np.ones(concl.shape, bool)),
         "n_labelled_a": (dims, n_a), "n_labelled_b": (dims, n_b)},
        coords={"hypothesis": np.arange(h), "model": [f"m{i}" for i in range(m)],
                "prompt": [f"p{i}" for i in range(p)], "temperature": np.linspace(0, 1, t),
                "task": ("hypothesis", ["t"] * h), "grouping": ("hypothesis", [f"g{i}" for i in range(h)]),
                "class_code": ("hypothesis", np.zeros(h, int))},
        attrs={"method": method, "estimand": "difference", "alpha": 0.05, "valid": True},
    )


def test_verdicts_and_shares():
    c = np.zeros((4, 2, 2, 1), dtype=int)
    c[0] = 1                     # every configuration: higher in A -> robust
    c[1] = [[[1], [0]], [[0], [0]]]  # 3 of 4 say no difference -> depends
    c[2] = -1
    c[3] = [[[1], [-1]], [[1], [-1]]]  # a 2-2 tie between +1 and -1
    corr = _corrected(c, n_a=[50, 50, 1, 50])
    human = _corrected(np.broadcast_to(np.array([1, 1, 0, 1]).reshape(4, 1, 1, 1), c.shape), n_a=[50, 50, 1, 50],
                      method="human")
    df = robust_conclusions(corr, human=human)
    assert list(df["verdict"]) == ["robust", "depends on the configuration",
                                   "undecided: too few labelled items in group A", "depends on the configuration"]
    assert list(df["n_configurations"]) == [4, 4, 0, 4]
    assert df.loc[0, "majority"] == 1 and df.loc[0, "share_majority"] == 1.0 and df.loc[0, "share_human"] == 1.0
    assert df.loc[1, "majority"] == 0 and df.loc[1, "share_majority"] == 0.75
    assert df.loc[1, "share_human"] == 0.25 and df.loc[1, "majority_text"] == "no difference"
    assert np.isnan(df.loc[2, "share_majority"]) and np.isnan(df.loc[2, "human_conclusion"])
    assert df.loc[3, "n_higher"] == 2 and df.loc[3, "n_lower"] == 2
    # the threshold loosens "robust"
    assert robust_conclusions(corr, threshold=0.75).loc[1, "verdict"] == "robust"
    both = robust_conclusions(_corrected(c[:1], n_a=[0], n_b=[1]))
    assert both.loc[0, "verdict"] == "undecided: too few labelled items in group A and B"
    assert list(df["grouping"]) == ["g0", "g1", "g2", "g3"]


def test_best_configuration_by_se_without_cube():
    c = np.ones((1, 2, 1, 2), dtype=int)
    se = np.array([0.05, 0.04, 0.02, 0.03]).reshape(c.shape)
    df = robust_conclusions(_corrected(c, se=se))
    assert df.loc[0, "best_configuration"] == "m1/p0/0.0" and df.loc[0, "best_by"] == "se"
    assert df.loc[0, "best_agreement"] == 0.02


def test_best_configuration_by_agreement_with_the_human_labels():
    """A configuration equal to the human labels on the labelled items is the best one."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=400, models=3, n_prompts=1,
                                           temperatures=(0.0,), rng=4)
    truth = cube["truth"].values.copy()
    truth[0, 100:] = -1  # 100 labelled items
    cube["truth"] = (cube["truth"].dims, truth)
    lab = cube["label"].values.copy()
    lab[0, 1, 0, 0, :100] = truth[0, :100]  # model 1 matches the humans where they labelled
    cube["label"] = (cube["label"].dims, lab)
    hyps = hackrisk.generate_hypotheses(cube, groupings=("random", "covariate"))
    n_h = hyps.sizes["hypothesis"]
    corr = _corrected(np.zeros((n_h, 3, 1, 1), dtype=int)).assign_coords(
        hypothesis=hyps["hypothesis"].values, model=cube["model"].values, prompt=cube["prompt"].values,
        temperature=cube["temperature"].values, task=("hypothesis", hyps["task"].values),
        class_code=("hypothesis", hyps["class_code"].values))
    df = robust_conclusions(corr, cube=cube, hypotheses=hyps)
    best_model = str(cube["model"].values[1])
    assert (df["best_by"] == "agreement").all()
    assert df["best_configuration"].str.startswith(best_model + "/").all()
    assert (df["best_agreement"] == 1.0).all()
    # the share is computed on the labelled items of the groups: check one hypothesis by hand
    g = hyps["group"].values[0]
    inside = (g >= 0) & (truth[0] >= 0)
    y = truth[0][inside] == 0
    for m in (0, 2):
        got = robust_conclusions(corr.isel(model=[m]), cube=cube, hypotheses=hyps).iloc[0]["best_agreement"]
        assert got == pytest.approx(((lab[0, m, 0, 0][inside] == 0) == y).mean())


def test_human_from_test_hypotheses_and_bad_input():
    c = np.ones((2, 1, 1, 2), dtype=int)
    corr = _corrected(c)
    tests = xr.Dataset({"human_conclusion": ("hypothesis", np.array([1, 0], np.int8)),
                        "human_p_value": ("hypothesis", [0.001, 0.4])}, coords={"hypothesis": [0, 1]})
    df = robust_conclusions(corr, human=tests)
    assert list(df["share_human"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="different hypotheses"):
        robust_conclusions(corr, human=tests.isel(hypothesis=[0]))
    with pytest.raises(ValueError, match="mitigation.correct"):
        robust_conclusions(tests)
    with pytest.raises(ValueError, match="threshold"):
        robust_conclusions(corr, threshold=0.3)


def test_with_correct_on_a_partially_labelled_cube():
    """300 of 5,000 items labelled: correct() per method, then one verdict per hypothesis."""
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.analysis.mitigation import correct

    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=5000, models=2, n_prompts=2,
                                           temperatures=(0.0, 1.0), rng=21)
    truth = cube["truth"].values.copy()
    keep = np.zeros(truth.shape, dtype=bool)
    keep[0, np.random.default_rng(3).choice(5000, size=300, replace=False)] = True
    cube["truth"] = (cube["truth"].dims, np.where(keep, truth, -1).astype(truth.dtype))
    hyps = hackrisk.generate_hypotheses(cube)
    tests = test_hypotheses(cube, hyps)
    human = correct(cube, hyps, method="human", rng=0)
    ppi = correct(cube, hyps, method="ppi", rng=0)
    df = robust_conclusions(ppi, human=human, cube=cube, hypotheses=hyps)
    assert len(df) == hyps.sizes["hypothesis"] and (df["n_configurations"] == 8).all()
    assert set(df["verdict"]) <= {"robust", "depends on the configuration"}
    assert (df["class_name"] == hyps["class_name"].values).all()
    # robust means unanimous; shares are consistent with the counts
    rob = df["verdict"] == "robust"
    assert (df.loc[rob, "share_majority"] == 1).all() and (df.loc[~rob, "share_majority"] < 1).all()
    np.testing.assert_array_equal(df[["n_higher", "n_lower", "n_null"]].sum(axis=1), df["n_configurations"])
    # the human-only side of robust_conclusions equals the human-only correction's conclusion
    hc = human["conclusion"].isel(model=0, prompt=0, temperature=0).values
    np.testing.assert_array_equal(df["human_conclusion"].to_numpy(), hc.astype(float))
    # test_hypotheses as `human`: the Wald test's conclusion on the same labelled items
    df2 = robust_conclusions(ppi, human=tests)
    ok = np.isfinite(tests["human_p_value"].values)
    np.testing.assert_array_equal(df2["human_conclusion"].to_numpy()[ok], tests["human_conclusion"].values[ok])
