"""Alternative annotator test (Calderon et al. 2025): hand-computed cases, a loop reference, VADER."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hackrisk
from hackrisk.analysis.agreement import alt_test, benjamini_yekutieli

from ._data import shared_data_dir as _data_dir


def _cube(item_ids, llm_labels: dict[str, list[str]], classes, task="t"):
    items = pd.DataFrame({"task": task, "item_id": item_ids, "text": [f"text {i}" for i in item_ids],
                          "truth": [classes[0]] * len(item_ids)})
    rows = [pd.DataFrame({"task": task, "model": m, "prompt": "p0", "temperature": 0.0, "item_id": item_ids,
                          "label": lab}) for m, lab in llm_labels.items()]
    return hackrisk.make_cube(pd.concat(rows, ignore_index=True), items, {task: classes})


def test_benjamini_yekutieli_by_hand():
    # m = 4, H_4 = 25/12; thresholds k * 0.05 / (4 * 25/12) = 0.006 k
    p = np.array([0.001, 0.013, 0.02, 0.5])
    np.testing.assert_array_equal(benjamini_yekutieli(p, 0.05), [True, False, False, False])
    p2 = np.array([0.011, 0.001, 0.017, 0.9])  # 0.017 <= 0.018: step-up rejects all three
    np.testing.assert_array_equal(benjamini_yekutieli(p2, 0.05), [True, True, True, False])
    np.testing.assert_array_equal(benjamini_yekutieli(np.array([np.nan, 0.0001]), 0.05), [False, True])


def test_hand_computed_case():
    """3 raters x 4 items; by hand (accuracy scoring, ε = 0.2, no minimum of items)."""
    ids = ["a", "b", "c", "d"]
    human = {"h1": ["x", "x", "y", "y"], "h2": ["x", "y", "y", "y"], "h3": ["x", "x", "x", "y"]}
    ratings = pd.DataFrame([(i, h, v) for h, vals in human.items() for i, v in zip(ids, vals, strict=True)],
                           columns=["item_id", "rater", "rating"])
    cube = _cube(ids, {"majority": ["x", "x", "y", "y"], "contrarian": ["y", "y", "x", "x"]}, ["x", "y"])
    res = alt_test(cube, ratings, epsilon=0.2, min_items=1)
    # "majority" vs h1 (others h2, h3): items a..d: h1 scores 1, .5, .5, 1; LLM 1, .5, .5, 1 -> ties:
    # W_llm = W_h = 1, d = 0 on every item; sd 0, mean 0 < 0.2 -> p = 0 -> beaten
    maj = res.sel(model="majority", prompt="p0", temperature=0.0)
    assert float(maj.p_value.sel(rater="h1")) == 0.0
    # vs h2 (others h1, h3): item b: h2 "y" scores 0, LLM "x" 1 -> d = -1; others ties -> d = (0,-1,0,0)
    d = np.array([0, -1, 0, 0.0])
    want = stats.ttest_1samp(d, 0.2, alternative="less").pvalue
    np.testing.assert_allclose(float(maj.p_value.sel(rater="h2")), want, rtol=1e-12)
    np.testing.assert_allclose(float(maj.advantage.sel(rater="h2")), 1.0)
    # contrarian vs h1 (others h2, h3): a: LLM 0 < h1 1; b: .5 = .5; c: .5 = .5; d: 0 < 1
    # -> W_llm = (0, 1, 1, 0), d = (1, 0, 0, 1): mean .5 > ε, not beaten
    con = res.sel(model="contrarian", prompt="p0", temperature=0.0)
    np.testing.assert_allclose(float(con.advantage.sel(rater="h1")), 0.5)
    want = stats.ttest_1samp([1, 0, 0, 1.0], 0.2, alternative="less").pvalue
    np.testing.assert_allclose(float(con.p_value.sel(rater="h1")), want, rtol=1e-12)
    assert not bool(con.beaten.any()) and float(con.winning_rate) == 0.0 and not bool(con.passes)
    assert int(res.n_raters.max()) == 3


def _reference(ratings, llm, epsilon, q, min_items, score):
    """Straight loop over raters and items, following the paper's description."""
    by_item = ratings.groupby("item_id")
    raters = sorted(ratings["rater"].unique())
    p, adv, tested = [], [], []
    for j in raters:
        rows = ratings[ratings["rater"] == j]
        d, w = [], []
        for _, row in rows.iterrows():
            others = by_item.get_group(row.item_id)
            others = others[others["rater"] != j]["rating"].tolist()
            if not others:
                continue
            hs, ls = score(row.rating, others), score(llm[row.item_id], others)
            w.append(float(ls >= hs))
            d.append(float(hs >= ls) - float(ls >= hs))
        if len(d) < min_items:
            continue
        tested.append(j)
        p.append(stats.ttest_1samp(d, epsilon, alternative="less").pvalue)
        adv.append(np.mean(w))
    rej = benjamini_yekutieli(np.array(p), q)
    return dict(zip(tested, p, strict=True)), rej.mean(), float(np.mean(adv))


@pytest.mark.parametrize("scoring", ["accuracy", "neg_rmse"])
def test_equals_loop_reference_on_random_ratings(scoring):
    gen = np.random.default_rng(4)
    n_items, classes = 80, ["neg", "neu", "pos"]
    ids = [f"i{i}" for i in range(n_items)]
    truth = gen.integers(0, 3, n_items)
    rows = []
    for j in range(6):
        rated = gen.random(n_items) < 0.7
        noisy = np.where(gen.random(n_items) < 0.3, gen.integers(0, 3, n_items), truth)
        rows += [(ids[i], f"r{j}", classes[noisy[i]]) for i in np.flatnonzero(rated)]
    ratings = pd.DataFrame(rows, columns=["item_id", "rater", "rating"])
    llm_code = np.where(gen.random(n_items) < 0.2, gen.integers(0, 3, n_items), truth)
    llm = {ids[i]: classes[llm_code[i]] for i in range(n_items)}
    cube = _cube(ids, {"m": [llm[i] for i in ids]}, classes)
    values = {"neg": -1.0, "neu": 0.0, "pos": 1.0}
    if scoring == "accuracy":
        def score(x, others):
            return np.mean([x == o for o in others])
        res = alt_test(cube, ratings, epsilon=0.1, min_items=20)
        ref_r = ratings
    else:
        def score(x, others):
            return -np.sqrt(np.mean([(x - o) ** 2 for o in others]))
        ref_r = ratings.assign(rating=ratings["rating"].map(values))
        llm = {k: values[v] for k, v in llm.items()}
        res = alt_test(cube, ref_r, scoring="neg_rmse", class_values=values, epsilon=0.1, min_items=20)
    p_ref, win_ref, adv_ref = _reference(ref_r, llm, 0.1, 0.05, 20, score)
    cell = res.isel(model=0, prompt=0, temperature=0)
    for j, pj in p_ref.items():
        np.testing.assert_allclose(float(cell.p_value.sel(rater=j)), pj, rtol=1e-10)
    np.testing.assert_allclose(float(cell.winning_rate), win_ref)
    np.testing.assert_allclose(float(cell.advantage_prob), adv_ref, rtol=1e-12)




def test_runs_on_vader_every_rater_scored():
    """VADER tweets (20 raters per item; rater = position in the published list, as load_vader says)."""
    from hackrisk import datasets

    td = datasets.load_vader("tweets", source=_data_dir())
    items = td.items.head(400)
    ids = items["item_id"].astype(str).tolist()
    gen = np.random.default_rng(0)
    good = items["truth"].tolist()  # the raters' consensus class
    rand = [td.classes[c] for c in gen.integers(0, 3, len(ids))]
    cube = _cube(ids, {"consensus": good, "random": rand}, list(td.classes), task=td.name)
    r = td.ratings[td.ratings["item_id"].astype(str).isin(ids)]
    cls = r.assign(rating=np.where(r["rating"] > 0, "positive", np.where(r["rating"] < 0, "negative", "neutral")))
    res = alt_test(cube, cls, epsilon=0.2)
    assert int(res.n_raters.max()) >= 20
    ok = res.sel(model="consensus", prompt="p0", temperature=0.0)
    bad = res.sel(model="random", prompt="p0", temperature=0.0)
    assert bool(ok.passes) and float(ok.winning_rate) > 0.8
    assert not bool(bad.passes) and float(bad.advantage_prob) < float(ok.advantage_prob)
    num = alt_test(cube, r, scoring="neg_rmse", class_values={"negative": -1.5, "neutral": 0.0, "positive": 1.5},
                   epsilon=0.2)
    assert float(num.sel(model="consensus").winning_rate.item()) > float(num.sel(model="random").winning_rate.item())
