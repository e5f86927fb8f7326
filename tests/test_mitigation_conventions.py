"""``conventions="paper"`` for mitigation's human-only and substitution methods.

Every (hypothesis, configuration[, draw]) conclusion is compared with an independent reference:
the 2 × 2 table counted item by item with pandas and decided by the authors' rule
(``tests.test_conventions.authors_decision``: statsmodels' binomial GLM Wald test, the share-0
special case of the LLM side, "no difference" on separated tables). Simulated tables cover every
degenerate pattern (0/n and n/n in either group, both); the real tasks in ``../shared/data``
check the authors' subsample (``RandomState(42 + d)``, positions in each group table's row
order, a random split's group 1 in ``DataFrame.sample``'s order) and the decisions on it.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hackrisk
from hackrisk.analysis import mitigation as mt
from hackrisk.hypotheses import generate_hypotheses, hypotheses_table

from .test_conventions import _authors_groups, _glm_statsmodels, _real
from .test_conventions import authors_decision as _authors_decision

authors_decision = functools.lru_cache(maxsize=None)(_authors_decision)  # one statsmodels fit per table

PATTERNS = ("none", "all", "mixed")


# ---------------------------------------------------------------------------------------------
# a simulated study whose hypotheses hit every degenerate pattern
# ---------------------------------------------------------------------------------------------


def _world(seed: int = 0, n: int = 400, n_hyp: int = 90):
    """Cube (1 task, 3 classes, 4 configurations) and hypotheses with chosen group patterns.

    Truth on 60 % of the items. Configurations: m0/p0 = the truth (unlabelled items too), m0/p1 =
    every label class 0, m1/p0 = random labels, m1/p1 = random labels with 3 % unparseable (left
    out under the paper preset). Each hypothesis draws group A and B (3–12 labelled items each,
    plus unlabelled ones) whose labelled items are none / all / a mix of its class.
    """
    gen = np.random.default_rng(seed)
    truth = gen.integers(0, 3, n)
    labelled = gen.random(n) < 0.6
    labels = np.stack([truth, np.zeros(n, int), gen.integers(0, 3, n),
                       np.where(gen.random(n) < 0.03, -2, gen.integers(0, 3, n))])
    ids = [f"i{j:03d}" for j in range(n)]
    rows = []
    for c, (m, p) in enumerate(itertools.product(("m0", "m1"), ("p0", "p1"))):
        rows.append(pd.DataFrame({"task": "t", "model": m, "prompt": p, "temperature": 0.0, "item_id": ids,
                                  "label": labels[c]}))
    names = ["a", "b", "c"]
    items = pd.DataFrame({"task": "t", "item_id": ids, "text": [f"text {j}" for j in range(n)],
                          "truth": [names[v] if lab else None for v, lab in zip(truth, labelled, strict=True)]})
    cube = hackrisk.make_cube(pd.concat(rows, ignore_index=True), items, {"t": names})
    # hypotheses: class, pattern of A and B among the labelled items, and a few unlabelled items
    cls = gen.integers(0, 3, n_hyp)
    group = np.full((n_hyp, n), -1, dtype=np.int8)
    pats = list(itertools.product(PATTERNS, PATTERNS))
    for h in range(n_hyp):
        free = np.ones(n, bool)
        for g, pat in zip((1, 0), pats[h % len(pats)], strict=True):
            is_c = truth == cls[h]
            pool = {"none": labelled & ~is_c, "all": labelled & is_c, "mixed": labelled}[pat] & free
            k = int(gen.integers(3, 13))
            take = gen.choice(np.flatnonzero(pool), k, replace=False)
            if pat == "mixed":  # make sure both values occur
                take[0] = gen.choice(np.flatnonzero(labelled & is_c & free & ~np.isin(np.arange(n), take)))
                take[1] = gen.choice(np.flatnonzero(labelled & ~is_c & free & ~np.isin(np.arange(n), take)))
            unl = gen.choice(np.flatnonzero(~labelled & free & ~np.isin(np.arange(n), take)),
                             int(gen.integers(0, 6)), replace=False)
            group[h, take] = g
            group[h, unl] = g
            free[take] = free[unl] = False
    hyps = xr.Dataset({"group": (("hypothesis", "item"), group)},
                      coords={"hypothesis": np.arange(n_hyp), "task": ("hypothesis", np.array(["t"] * n_hyp, object)),
                              "class_code": ("hypothesis", cls),
                              "grouping": ("hypothesis", np.array([f"g{h}" for h in range(n_hyp)], object))})
    order = np.argsort(cube["item_id"].values[0])  # the cube's item order, by id
    assert list(cube["item_id"].values[0][order]) == ids
    return cube, hyps, truth, labelled, labels


def _reference(method, truth, labelled, lab_c, grp, cls):
    """(k1, n1, k2, n2) counted item by item, then the authors' decision (LLM side)."""
    df = pd.DataFrame({"truth": truth, "labelled": labelled, "llm": lab_c, "group": grp})
    df = df[df["group"] >= 0]
    if method == "human":
        df = df[df["labelled"]]
        y = df["truth"] == cls
    else:
        y = np.where(df["labelled"], df["truth"] == cls, df["llm"] == cls)  # -2 is not the class
    y = pd.Series(np.asarray(y, bool), index=df.index)
    k1, n1 = int(y[df["group"] == 1].sum()), int((df["group"] == 1).sum())
    k2, n2 = int(y[df["group"] == 0].sum()), int((df["group"] == 0).sum())
    return (k1, n1, k2, n2), authors_decision(k1, n1, k2, n2, human=False)


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.mark.parametrize("method", mt.PAPER_METHODS)
def test_correct_paper_equals_the_authors_on_every_pattern(world, method):
    cube, hyps, truth, labelled, labels = world
    pos = {i: j for j, i in enumerate(cube["item_id"].values[0])}
    perm = np.array([pos[f"i{j:03d}"] for j in range(len(truth))])  # source order -> cube position
    res = mt.correct(cube, hyps, method=method, conventions="paper")
    assert res.attrs["conventions"] == "paper" and res.attrs["zero_rule"] == "glm"
    concl = res["conclusion"].values.reshape(hyps.sizes["hypothesis"], 4)
    pv = res["p_value"].values.reshape(hyps.sizes["hypothesis"], 4)
    excl = res["unparseable_excluded"].values.reshape(-1, 4)
    seen = set()
    n_p = 0
    for h in range(hyps.sizes["hypothesis"]):
        grp = hyps["group"].values[h][perm]
        cls = int(hyps["class_code"].values[h])
        for c in range(4):
            if c == 3:  # 3 % unparseable: left out, for both methods
                assert excl[h, c] and concl[h, c] == 0 and np.isnan(pv[h, c])
                continue
            (k1, n1, k2, n2), want = _reference(method, truth, labelled, labels[c], grp, cls)
            assert concl[h, c] == want, (method, h, c, k1, n1, k2, n2, pv[h, c])
            seen.add((k1 == 0, k1 == n1, k2 == 0, k2 == n2))
            if 0 < k1 < n1 and 0 < k2 < n2:  # a regular table: the GLM p-value itself (R's glm.fit
                # stops at a relative deviance change of 1e-8, statsmodels later: ~1e-4 apart)
                np.testing.assert_allclose(pv[h, c], _glm_statsmodels(k1, n1, k2, n2)[1], rtol=1e-3)
                n_p += 1
    # 0/n, n/n, 0 and n in either group and both were exercised
    for pattern in [(True, False, False, False), (False, True, False, False), (False, False, True, False),
                    (False, False, False, True), (True, False, True, False), (False, True, False, True),
                    (True, False, False, True), (False, True, True, False)]:
        assert pattern in seen, pattern
    assert n_p >= 20


def test_correct_paper_logistic_estimand_is_the_glm(world):
    cube, hyps, *_ = world
    diff = mt.correct(cube, hyps, method="substitution", conventions="paper")
    lo = mt.correct(cube, hyps, method="substitution", conventions="paper", estimand="logistic")
    assert np.array_equal(diff["conclusion"].values, lo["conclusion"].values)  # one test, two estimands
    # a regular table: log odds ratio and Wald interval of the GLM
    ok = np.isfinite(lo["se"].values)
    est, se = lo["estimate"].values[ok], lo["se"].values[ok]
    np.testing.assert_allclose(lo["ci_upper"].values[ok] - est, 1.959963984540054 * se, rtol=1e-12)
    ea, eb = lo["estimate_a"].values[ok], lo["estimate_b"].values[ok]
    reg = np.isfinite(ea - eb)  # no share of 0 or 1: GLM MLE = difference of logits
    assert reg.sum() >= 50 and (~reg).sum() >= 1
    np.testing.assert_allclose(est[reg], (ea - eb)[reg], rtol=1e-4, atol=1e-6)
    one = np.isfinite(ea) != np.isfinite(eb)  # one group's share is 1 (a share of 0 is decided by the rule)
    assert one.sum() >= 1 and np.all(np.abs(est[one]) > 15)  # R's glm stops at a huge finite coefficient
    assert np.all(np.isnan(diff["ci_lower"].values))  # no interval on the share scale


def test_default_preset_unchanged_and_errors_named(world):
    cube, hyps, *_ = world
    a = mt.correct(cube, hyps, method="human")
    b = mt.correct(cube, hyps, method="human", conventions="hackrisk")
    xr.testing.assert_identical(a, b)
    assert "unparseable_excluded" not in a and a.attrs["conventions"] == "hackrisk"
    with pytest.raises(ValueError, match="method='ppi'.*conventions='hackrisk'"):
        mt.correct(cube, hyps, method="ppi", conventions="paper")
    with pytest.raises(ValueError, match="pi=None"):
        mt.correct(cube, hyps, method="human", conventions="paper", pi=pd.Series({"i000": 0.5}))
    with pytest.raises(ValueError, match="scheme='random'"):
        mt.draw_human_sample(cube, hyps, n=10, scheme="confidence", conventions="paper")
    with pytest.raises(ValueError, match="conventions="):
        mt.correct(cube, hyps, method="human", conventions="R")


@pytest.mark.parametrize("method", mt.PAPER_METHODS)
def test_mitigate_paper_equals_the_authors_per_draw(world, method):
    cube, hyps, truth, labelled, labels = world
    design = mt.draw_human_sample(cube, hyps, n=8, n_draws=2, conventions="paper", max_share=1.0)
    res = mt.mitigate(cube, hyps, design, method=method, conventions="paper")
    pos = {i: j for j, i in enumerate(cube["item_id"].values[0])}
    perm = np.array([pos[f"i{j:03d}"] for j in range(len(truth))])
    sel = design["selected"].values[:, :, perm]  # (H, D, items in source order)
    concl = res["conclusion"].values.reshape(hyps.sizes["hypothesis"], 4, 2)
    n_checked = 0
    for h in range(hyps.sizes["hypothesis"]):
        if not design["feasible"].values[h]:
            continue
        grp = hyps["group"].values[h][perm]
        eligible = (grp >= 0) & labelled
        for d in range(2):
            known = sel[h, d]
            assert known.sum() == 8 and not (known & ~eligible).any()
            for c in range(3):
                # the table is built only from the labelled items of the design's groups
                g = np.where(eligible, grp, -1)
                _, want = _reference(method, truth, known, labels[c], g, int(hyps["class_code"].values[h]))
                assert concl[h, c, d] == want, (method, h, c, d)
                n_checked += 1
            assert concl[h, 3, d] == 0 and not res["annotated"].values[h, 1, 1, 0]
    assert n_checked >= 100


# ---------------------------------------------------------------------------------------------
# the authors' subsample and decisions on a real task
# ---------------------------------------------------------------------------------------------


def _authors_subsample(df: pd.DataFrame, grouping: str, n: int, d: int) -> set[str] | None:
    """Item ids of the authors' random human subsample (``get_samples``), re-stated with pandas."""
    if grouping.startswith("random:"):
        frac, seed = {"random:50/50": (0.5, 2), "random:20/80": (0.2, 1), "random:40/60": (0.4, 1)}[grouping]
        g1 = df.sample(frac=frac, random_state=np.random.default_rng(seed))
        g2 = df.drop(g1.index)
    else:
        m1, m2 = _authors_groups(df, grouping)
        g1, g2 = df[m1], df[m2]
    n1, n2 = len(g1), len(g2)
    if n1 + n2 < n / 0.7 or n1 < 2 or n2 < 2:
        return None
    k1 = max(2, int(np.round(n * n1 / (n1 + n2))))
    k2 = max(2, n - k1)
    if k1 + k2 > n:
        k1, k2 = (n - k2, k2) if k1 > k2 else (k1, n - k1)
    rs = np.random.RandomState(42 + d)
    i1, i2 = rs.choice(n1, k1, replace=False), rs.choice(n2, k2, replace=False)
    return set(g1.iloc[i1]["id"]) | set(g2.iloc[i2]["id"])


@pytest.mark.parametrize("task", ["framesI_tweets23", "relevance_tweets23"])
def test_real_task_subsample_and_conclusions_equal_the_authors(task):
    df, cube, names = _real(task, rng=5)
    hyps = generate_hypotheses(cube, conventions="paper", covariates=["screen_name"])
    table = hypotheses_table(hyps)
    n, D = 50, 2
    design = mt.draw_human_sample(cube, hyps, n=n, n_draws=D, conventions="paper")
    res = {m: mt.mitigate(cube, hyps, design, method=m, conventions="paper") for m in mt.PAPER_METHODS}
    ids = cube["item_id"].values[0]
    pos = pd.Index(ids).get_indexer(df["id"])
    lab = cube["label"].values[0][..., pos]  # (model, prompt, temperature, file order)
    bad = res["human"]["unparseable_excluded"].values[0]
    assert bad.sum() == 1
    kinds, n_checked = set(), 0
    for h in range(hyps.sizes["hypothesis"]):
        grouping, cname = table["grouping"].iloc[h], table["class_name"].iloc[h]
        want_ids = None
        for d in range(D):
            want_ids = _authors_subsample(df, grouping, n, d)
            got = set(ids[design["selected"].values[h, d]])
            if want_ids is None:
                assert not design["feasible"].values[h]
                break
            assert got == want_ids, (grouping, d)
            kinds.add(grouping.split(":")[0])
            known = df["id"].isin(want_ids).to_numpy()
            g1, g2 = _authors_groups(df, grouping)
            y = (df["ground_truth"] == cname).to_numpy()
            human = authors_decision(int(y[g1 & known].sum()), int((g1 & known).sum()),
                                     int(y[g2 & known].sum()), int((g2 & known).sum()), human=False)
            for m, p in itertools.product(range(3), range(2)):
                if bad[m, p, 0]:
                    assert res["human"]["conclusion"].values[h, m, p, 0, d] == 0
                    continue
                assert res["human"]["conclusion"].values[h, m, p, 0, d] == human
                z = np.where(known, y, lab[m, p, 0] == names.index(cname))
                sub = authors_decision(int(z[g1].sum()), int(g1.sum()), int(z[g2].sum()), int(g2.sum()), human=False)
                assert res["substitution"]["conclusion"].values[h, m, p, 0, d] == sub, (grouping, cname, m, p, d)
                n_checked += 1
    assert {"random", "length", "keyword"} <= kinds and n_checked >= 200


def test_evaluate_mitigation_paper_rows_say_their_preset(world):
    cube, hyps, *_ = world
    df = mt.evaluate_mitigation(cube, hyps, budgets=(8,), n_draws=2, methods=("human", "substitution", "ppi"),
                                conventions="paper", rng=0, max_share=1.0)
    conv = dict(zip(df["method"], df["conventions"], strict=True))
    assert conv == {"llm_only": "paper", "human": "paper", "substitution": "paper", "ppi": "hackrisk",
                    "model_selection": "hackrisk"}
    assert df["n_cases"].gt(0).all()


def test_preset_follows_the_hypotheses_as_a_study_file_sets_it(world):
    """``[analysis] conventions`` reaches mitigation through the hypotheses and tests it made."""
    from hackrisk.analysis.frequentist import test_hypotheses

    cube, hyps, *_ = world
    ph = hyps.assign_attrs(conventions="paper")  # as generate_hypotheses(conventions="paper") marks them
    got = mt.correct(cube, ph, method="substitution")
    assert got.attrs["conventions"] == "paper"
    xr.testing.assert_identical(got, mt.correct(cube, ph, method="substitution", conventions="paper"))
    assert mt.correct(cube, ph, method="ppi").attrs["conventions"] == "hackrisk"  # no paper counterpart
    pi = pd.Series(0.5, index=cube["item_id"].values[0])
    assert mt.correct(cube, ph, method="human", pi=pi).attrs["conventions"] == "hackrisk"  # weighted
    design = mt.draw_human_sample(cube, ph, n=8, n_draws=1, max_share=1.0)
    assert design.attrs["conventions"] == "paper"
    assert mt.mitigate(cube, ph, design, method="human").attrs["conventions"] == "paper"
    # the pipeline's call: evaluate_mitigation(..., tests=<paper tests>) without conventions=
    tests = test_hypotheses(cube, ph, conventions="paper")
    df = mt.evaluate_mitigation(cube, ph, budgets=(8,), n_draws=1, methods=("human",), tests=tests, rng=0,
                                max_share=1.0, model_selection=False)
    assert set(df["conventions"]) == {"paper"}
