"""Tests of hackrisk.hypotheses: format, every grouping kind, skips, custom groupings, size, real data."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hackrisk
from hackrisk.hypotheses import (
    RANDOM_SPLITS,
    STOPWORDS,
    generate_hypotheses,
    hypotheses_table,
    skipped_table,
    tokenize,
)

from ._data import shared_data_dir as _data_dir

KINDS = {"random", "length", "keyword", "covariate", "temporal", "user"}
SKIP_KEYS = {"task", "grouping", "class_name", "reason"}


# ------------------------------------------------------------------------------------------------
# helpers


def _cube(items: pd.DataFrame, classes: dict) -> xr.Dataset:
    """A cube from an items table, with one dummy annotator (label = class 0 everywhere)."""
    labels = items[["task", "item_id"]].copy()
    labels["model"], labels["prompt"], labels["temperature"], labels["label"] = "m", "p0", 0.0, 0
    return hackrisk.make_cube(labels, items, classes)


def _items(n=60, seed=0, task="t", n_class=2, **cols) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    df = pd.DataFrame({
        "task": task,
        "item_id": [f"{task}-{i}" for i in range(n)],
        "text": [" ".join(g.choice(["alpha", "beta", "gamma", "delta", "storm"], g.integers(2, 9)))
                 for _ in range(n)],
        "truth": g.integers(0, n_class, n),
    })
    for k, v in cols.items():
        df[k] = v
    return df


def _task_rows(hyps: xr.Dataset, task: str, grouping: str) -> xr.Dataset:
    sel = (hyps["task"] == task) & (hyps["grouping"] == grouping)
    return hyps.isel(hypothesis=np.flatnonzero(sel.values))


def _skips(hyps, **match) -> list[dict]:
    return [s for s in hyps.attrs["skipped"] if all(s[k] == v for k, v in match.items())]


def _human_counts(cube, hyps):
    """(n_a, n_b, k_a, k_b) on human-labelled items, per hypothesis."""
    t = pd.Index(cube["task"].values).get_indexer(hyps["task"].values)
    truth = np.asarray(cube["truth"].values)[t]
    g = np.asarray(hyps["group"].values)
    lab = truth >= 0
    cls = truth == np.asarray(hyps["class_code"].values)[:, None]
    a, b = (g == 1) & lab, (g == 0) & lab
    return a.sum(1), b.sum(1), (a & cls).sum(1), (b & cls).sum(1)


@pytest.fixture(scope="module")
def sim():
    cube, truth = hackrisk.simulate_multiverse(
        n_tasks=3, n_items=[300, 200, 150], n_classes=[2, 3, 4], models=2, n_prompts=1,
        temperatures=(0.0,), rng=11,
    )
    return cube, truth


@pytest.fixture(scope="module")
def hyps(sim):
    return generate_hypotheses(sim[0])


# ------------------------------------------------------------------------------------------------
# format


def test_format_dims_dtypes_coords(sim, hyps):
    cube = sim[0]
    assert hyps["group"].dims == ("hypothesis", "item")
    assert hyps["group"].dtype == np.int8
    assert set(np.unique(hyps["group"].values)) <= {-1, 0, 1}
    h = hyps.sizes["hypothesis"]
    np.testing.assert_array_equal(hyps["hypothesis"].values, np.arange(h))
    np.testing.assert_array_equal(hyps["item"].values, cube["item"].values)
    for name in ("task", "grouping", "kind", "class_code", "class_name"):
        assert hyps[name].dims == ("hypothesis",), name
    assert np.issubdtype(hyps["class_code"].dtype, np.integer)
    assert all(isinstance(v, str) for name in ("task", "grouping", "kind", "class_name")
               for v in hyps[name].values)
    assert set(hyps["kind"].values) <= KINDS
    # class names agree with the cube
    t = pd.Index(cube["task"].values).get_indexer(hyps["task"].values)
    names = np.asarray(cube["class_name"].values)[t, hyps["class_code"].values]
    np.testing.assert_array_equal(names, hyps["class_name"].values)
    # padding items are in neither group
    real = np.asarray(cube["item_id"].values)[t] != ""
    assert (hyps["group"].values[~real] == -1).all()
    # skipped entries
    assert isinstance(hyps.attrs["skipped"], list)
    assert all(set(s) == SKIP_KEYS for s in hyps.attrs["skipped"])
    # no duplicate hypotheses
    keys = list(zip(hyps["task"].values, hyps["grouping"].values, hyps["class_code"].values, strict=True))
    assert len(set(keys)) == len(keys)


def test_class_order_one_vs_rest(sim, hyps):
    # binary task: class 0 only; K > 2: every class, in code order
    for task, k in (("task0", 1), ("task1", 3), ("task2", 4)):
        sub = _task_rows(hyps, task, "random:50/50")
        assert list(sub["class_code"].values) == list(range(k)), task
    assert set(hyps["class_code"].values[hyps["task"].values == "task0"]) == {0}


def test_kept_hypotheses_respect_min_group_and_zero_rule(sim, hyps):
    n_a, n_b, k_a, k_b = _human_counts(sim[0], hyps)
    assert (n_a >= 2).all() and (n_b >= 2).all()
    assert ((k_a > 0) & (k_b > 0) & (k_a < n_a) & (k_b < n_b)).all()
    tab = hypotheses_table(hyps)
    assert (tab["n_a"] >= n_a).all() and (tab["n_b"] >= n_b).all()


def test_tables(sim, hyps):
    tab = hypotheses_table(hyps)
    assert list(tab.columns) == ["task", "grouping", "kind", "class_code", "class_name", "n_a", "n_b"]
    assert len(tab) == hyps.sizes["hypothesis"] and tab.index.name == "hypothesis"
    g = hyps["group"].values
    np.testing.assert_array_equal(tab["n_a"], (g == 1).sum(1))
    np.testing.assert_array_equal(tab["n_b"], (g == 0).sum(1))
    sk = skipped_table(hyps)
    assert list(sk.columns) == ["task", "grouping", "class_name", "reason"]
    assert len(sk) == len(hyps.attrs["skipped"])
    empty = skipped_table(hyps.assign_attrs(skipped=[]))
    assert list(empty.columns) == list(sk.columns) and len(empty) == 0
    with pytest.raises(ValueError, match="generate_hypotheses"):
        hypotheses_table(sim[0])


# ------------------------------------------------------------------------------------------------
# grouping kinds


def test_random_splits(sim, hyps):
    cube = sim[0]
    for t, task in enumerate(cube["task"].values):
        n = int((cube["item_id"].values[t] != "").sum())
        for name, share in RANDOM_SPLITS:
            sub = _task_rows(hyps, task, f"random:{name}")
            assert sub.sizes["hypothesis"] >= 1
            g = sub["group"].values[0]
            assert (g == 1).sum() == round(share * n) and (g == 0).sum() == n - round(share * n)
            assert (sub["kind"].values == "random").all()
    a = _task_rows(hyps, "task0", "random:50/50")["group"].values[0]
    b = _task_rows(hyps, "task0", "random:40/60")["group"].values[0]
    assert 0.3 < np.mean(a[:300] == b[:300]) < 0.7  # independent splits


def test_length_median(sim, hyps):
    cube = sim[0]
    n = 200
    words = np.array([len(s.split()) for s in cube["text"].values[1, :n]])
    g = _task_rows(hyps, "task1", "length:median")["group"].values[0, :n]
    med = np.median(words)
    assert (words[g == 1] >= med).all() and (words[g == 0] <= med).all()
    assert (words[g == 1] > med).sum() == (words > med).sum()
    assert abs((g == 1).mean() - 0.5) < 0.15


def test_keywords(sim, hyps):
    cube = sim[0]
    n = 300
    texts = cube["text"].values[0, :n]
    truth = cube["truth"].values[0, :n]
    sets = [{w for w in tokenize(s) if len(w) >= 3 and w not in STOPWORDS} for s in texts]
    kw_rows = hyps.isel(hypothesis=np.flatnonzero(((hyps["task"] == "task0") & (hyps["kind"] == "keyword")).values))
    assert kw_rows.sizes["hypothesis"] >= 5
    for name, g in zip(kw_rows["grouping"].values, kw_rows["group"].values, strict=True):
        word = name.split(":", 1)[1]
        np.testing.assert_array_equal(g[:n] == 1, [word in s for s in sets])
        assert (g[:n] >= 0).all()
    # the 5 most frequent words overall (ties alphabetical)
    df = Counter(w for s in sets for w in s)
    top = [w for w, _ in sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
    all_kw = list(kw_rows["grouping"].values) + [s["grouping"] for s in _skips(hyps, task="task0")]
    assert [f"keyword:{w}" for w in top] == [g for g in dict.fromkeys(all_kw) if g.startswith("keyword:")][:5]
    # per-class frequent words and the discriminative class-marker words are candidates
    for c in (0, 1):
        dfc = Counter(w for s, y in zip(sets, truth, strict=True) if y == c for w in s)
        best = sorted(dfc.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        assert f"keyword:{best}" in all_kw
    assert any(g.startswith("keyword:class0word") for g in all_kw)
    # a perfect marker word is dropped by the zero-count rule, with its reason
    marker = [s for s in _skips(hyps, task="task0") if s["grouping"].startswith("keyword:class")]
    assert marker and all(s["reason"].startswith("human labels:") for s in marker)


def test_discriminative_keyword_recovers_planted_word():
    # "storm" raises the share of class 1 from ~0.3 to ~0.7; not among the most frequent words
    g = np.random.default_rng(3)
    n = 400
    storm = g.random(n) < 0.2
    y = np.where(storm, g.random(n) < 0.7, g.random(n) < 0.3).astype(int)
    fill = ["alpha beta gamma", "alpha beta delta", "gamma delta epsilon", "alpha zeta eta"]
    text = [fill[i % 4] + (" storm" if s else "") for i, s in enumerate(storm)]
    items = pd.DataFrame({"task": "t", "item_id": [str(i) for i in range(n)], "text": text, "truth": y})
    h = generate_hypotheses(_cube(items, {"t": ["c0", "c1"]}), groupings=("keyword",), n_keywords=1)
    assert "keyword:storm" in set(h["grouping"].values)
    sub = _task_rows(h, "t", "keyword:storm")
    np.testing.assert_array_equal(sub["group"].values[0] == 1, storm)


def test_covariates(sim, hyps):
    cube = sim[0]
    n = 150
    t = 2
    for j in range(4):
        sub = _task_rows(hyps, "task2", f"cov:x{j}=True")
        if sub.sizes["hypothesis"]:
            np.testing.assert_array_equal(sub["group"].values[0, :n], cube[f"cov_x{j}"].values[t, :n].astype(int))
            assert (sub["kind"].values == "covariate").all()
    src = cube["cov_source"].values[t, :n]
    vals, counts = np.unique(src.astype(str), return_counts=True)
    top = [v for v, _ in sorted(zip(vals, counts, strict=True), key=lambda vc: (-vc[1], vc[0]))[:3]]
    got = [g for g in dict.fromkeys(hyps["grouping"].values[hyps["task"].values == "task2"])
           if g.startswith("cov:source=")]
    got += [s["grouping"] for s in _skips(hyps, task="task2") if s["grouping"].startswith("cov:source=")]
    assert sorted(set(got)) == sorted(f"cov:source={v}" for v in top)
    sub = _task_rows(hyps, "task2", f"cov:source={top[0]}")
    np.testing.assert_array_equal(sub["group"].values[0, :n], (src == top[0]).astype(int))
    # numeric: median split
    length = cube["cov_length"].values[t, :n]
    g = _task_rows(hyps, "task2", "cov:length:median")["group"].values[0, :n]
    assert length[g == 1].min() >= length[g == 0].max()
    # temporal quartiles: earlier part is A
    date = cube["cov_date"].values[t, :n]
    for name, share in (("Q1|Q2-4", 0.25), ("Q1-2|Q3-4", 0.5), ("Q1-3|Q4", 0.75)):
        sub = _task_rows(hyps, "task2", f"cov:date:{name}")
        assert (sub["kind"].values == "temporal").all()
        g = sub["group"].values[0, :n]
        assert date[g == 1].max() < date[g == 0].min()
        assert abs((g == 1).sum() - share * n) <= 1


def test_grouping_and_covariate_selection(sim):
    cube = sim[0]
    h = generate_hypotheses(cube, groupings=("temporal",))
    assert set(h["kind"].values) == {"temporal"}
    h = generate_hypotheses(cube, groupings=("covariate",), covariates=["source"], top_k=1)
    assert len(set(h["grouping"].values)) == 1
    assert str(h["grouping"].values[0]).startswith("cov:source=")
    h = generate_hypotheses(cube, groupings=("random",))
    assert set(h["kind"].values) == {"random"}
    with pytest.raises(ValueError, match="unknown grouping"):
        generate_hypotheses(cube, groupings=("randm",))
    with pytest.raises(ValueError, match="unknown covariate"):
        generate_hypotheses(cube, covariates=["nope"])
    with pytest.raises(ValueError, match="min_group"):
        generate_hypotheses(cube, min_group=0)
    with pytest.raises(ValueError, match="label cube"):
        generate_hypotheses("not a cube")


# ------------------------------------------------------------------------------------------------
# seeds and permutations


def test_seeds_reproduce(sim):
    cube = sim[0]
    a = generate_hypotheses(cube, rng=5)
    b = generate_hypotheses(cube, rng=5)
    xr.testing.assert_identical(a, b)
    assert a.attrs == b.attrs
    c = generate_hypotheses(cube, rng=6)
    rnd = (a["kind"] == "random").values
    assert not np.array_equal(a["group"].values[rnd], c["group"].values[(c["kind"] == "random").values])
    nr = (a["kind"] != "random").values
    np.testing.assert_array_equal(a["group"].values[nr], c["group"].values[(c["kind"] != "random").values])
    g1 = generate_hypotheses(cube, rng=np.random.default_rng(5))
    xr.testing.assert_equal(g1["group"], a["group"])
    # a task's random splits do not depend on the other tasks
    one = generate_hypotheses(cube.isel(task=[2]), groupings=("random",), rng=5)
    ref = a.isel(hypothesis=np.flatnonzero(((a["task"] == "task2") & (a["kind"] == "random")).values))
    np.testing.assert_array_equal(one["group"].values[:, :150], ref["group"].values[:, :150])


def test_permuting_items_permutes_groups():
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=250, n_classes=3, models=1, n_prompts=1,
                                           temperatures=(0.0,), rng=4)
    perm = np.random.default_rng(0).permutation(250)
    cube_p = cube.isel(item=perm).assign_coords(item=np.arange(250))
    h = generate_hypotheses(cube, rng=9, custom={"u": "x0 and length > 12"})
    hp = generate_hypotheses(cube_p, rng=9, custom={"u": "x0 and length > 12"})
    key = ["task", "grouping", "class_code"]
    assert hypotheses_table(h)[key].equals(hypotheses_table(hp)[key])
    np.testing.assert_array_equal(hp["group"].values, h["group"].values[:, perm])
    assert h.attrs["skipped"] == hp.attrs["skipped"]


# ------------------------------------------------------------------------------------------------
# skips


def test_skip_tiny_groups_and_min_group():
    items = _items(n=40, seed=1)
    cube = _cube(items, {"t": ["a", "b"]})
    one = np.zeros(40, bool)
    one[3] = True
    h = generate_hypotheses(cube, groupings=(), custom={"one": one})
    assert h.sizes["hypothesis"] == 0
    assert _skips(h, grouping="user:one")[0]["reason"] == "group A has 1 item(s), fewer than min_group=2"
    h = generate_hypotheses(cube, groupings=("random",), min_group=9)
    # 20/80 gives 8 items in A: skipped; 50/50 and 40/60 kept
    assert set(h["grouping"].values) == {"random:50/50", "random:40/60"}
    assert _skips(h, grouping="random:20/80")[0]["reason"].startswith("group A has 8 item(s)")
    # human-labelled items also need min_group: unlabel most of group A of a mask
    items2 = items.copy()
    mask = np.arange(40) < 10
    items2["truth"] = items2["truth"].astype("Int64")
    items2.loc[np.arange(40) < 9, "truth"] = pd.NA
    h = generate_hypotheses(_cube(items2, {"t": ["a", "b"]}), groupings=(), custom={"m": mask})
    assert _skips(h, grouping="user:m")[0]["reason"] == (
        "group A has 1 human-labelled item(s), fewer than min_group=2")


def test_unlabelled_items_still_grouped():
    items = _items(n=80, seed=2)
    items["truth"] = items["truth"].astype("Int64")
    items.loc[::2, "truth"] = pd.NA
    cube = _cube(items, {"t": ["a", "b"]})
    h = generate_hypotheses(cube, groupings=("random", "length"))
    g = h["group"].values
    assert ((g >= 0).sum(1) == 80).all()


def test_skip_class_absent_and_zero_rule_option():
    items = _items(n=50, seed=3)
    y = items["truth"].to_numpy()
    cube = _cube(items, {"t": ["a", "b"]})
    custom = {"only_b": y == 1, "only_a": (y == 0) & (np.arange(50) < 40), "fine": np.arange(50) < 25}
    h = generate_hypotheses(cube, groupings=(), custom=custom)
    assert list(h["grouping"].values) == ["user:fine"]
    assert _skips(h, grouping="user:only_b")[0]["reason"] == "human labels: class 'a' absent from group A"
    assert _skips(h, grouping="user:only_a")[0]["reason"] == "human labels: only class 'a' in group A"
    h2 = generate_hypotheses(cube, groupings=(), custom=custom, drop_human_zero=False)
    assert list(h2["grouping"].values) == ["user:only_b", "user:only_a", "user:fine"]
    assert h2.attrs["skipped"] == []
    # group B side
    first = np.arange(50) < 25
    h3 = generate_hypotheses(cube, groupings=(), custom={"b_in_b": (y == 0) | first, "a_in_b": (y == 1) | first})
    assert _skips(h3, grouping="user:b_in_b")[0]["reason"] == "human labels: class 'a' absent from group B"
    assert _skips(h3, grouping="user:a_in_b")[0]["reason"] == "human labels: only class 'a' in group B"


def test_nan_covariates_excluded_and_reported():
    n = 60
    g = np.random.default_rng(5)
    num = g.normal(size=n)
    num[:7] = np.nan
    cat = g.choice(["x", "y", "z"], n).astype(object)
    cat[10:15] = None
    date = pd.Series(pd.date_range("2024-01-01", periods=n, freq="D"))
    date[20:24] = pd.NaT
    flag = pd.Series(g.random(n) < 0.5, dtype=object)
    flag[30:33] = None
    items = _items(n=n, seed=5, num=num, cat=cat, date=date, flag=flag, empty=np.full(n, np.nan))
    cube = _cube(items, {"t": ["a", "b"]})
    h = generate_hypotheses(cube, groupings=("covariate",))
    exc = {e["grouping"]: e for e in h.attrs["excluded"]}
    assert exc["cov:num:median"]["n_items"] == 7
    assert exc["cov:cat=x"]["n_items"] == 5
    assert exc["cov:date:Q1|Q2-4"]["n_items"] == 4
    assert exc["cov:flag=True"]["n_items"] == 3
    assert all(e["reason"] == "missing covariate value" and e["task"] == "t" for e in exc.values())
    row = _task_rows(h, "t", "cov:num:median")["group"].values[0, :n]
    np.testing.assert_array_equal(row == -1, np.isnan(num))
    assert ((row >= 0).sum()) == n - 7
    row = _task_rows(h, "t", "cov:flag=True")["group"].values[0, :n]
    np.testing.assert_array_equal(row[33:], flag[33:].astype(int))
    # an all-missing covariate is skipped once, with its reason, and excludes nothing
    assert _skips(h, grouping="cov:empty") == [
        {"task": "t", "grouping": "cov:empty", "class_name": "*", "reason": "covariate missing for every item"}]
    assert not [e for e in h.attrs["excluded"] if e["grouping"].startswith("cov:empty")]
    # Q1|Q2-4 quartile counts on the non-missing dates
    row = _task_rows(h, "t", "cov:date:Q1-2|Q3-4")["group"].values[0, :n]
    assert abs((row == 1).sum() - (n - 4) / 2) <= 1


def test_duplicate_splits_skipped():
    n = 40
    items = _items(n=n, seed=6)
    x = np.arange(n) % 3 == 0
    items["b1"], items["b2"] = x, ~x
    cube = _cube(items, {"t": ["a", "b"]})
    h = generate_hypotheses(cube, groupings=("covariate",))
    assert list(h["grouping"].values) == ["cov:b1=True"]
    assert _skips(h, grouping="cov:b2=True")[0]["reason"] == "same split as cov:b1=True"


def test_no_human_labels():
    a = _items(n=40, seed=7, task="lab")
    b = _items(n=30, seed=8, task="nolab")
    b["truth"] = pd.NA
    items = pd.concat([a, b], ignore_index=True)
    items["truth"] = items["truth"].astype("Int64")
    cube = _cube(items, {"lab": ["a", "b"], "nolab": ["a", "b"]})
    h = generate_hypotheses(cube)
    assert set(h["task"].values) == {"lab"}
    assert _skips(h, task="nolab") == [
        {"task": "nolab", "grouping": "*", "class_name": "*", "reason": "no human labels"}]
    cube_none = _cube(b.assign(truth=pd.array([pd.NA] * 30, dtype="Int64")), {"nolab": ["a", "b"]})
    with pytest.raises(ValueError, match="no task of the cube has human labels"):
        generate_hypotheses(cube_none)


# ------------------------------------------------------------------------------------------------
# custom groupings


def test_custom_masks_and_expressions(sim):
    cube = sim[0]
    tab = hackrisk.items_table(cube)
    mask = (tab["source"] == "news").to_numpy()
    per_task = {"task1": cube["cov_x1"].values[1, :200]}
    custom = {
        "news_arr": mask,
        "x1_task1": per_task,
        "expr": "source == 'news' and x0",
        "textexpr": "text.str.contains('climate')",
        "long": "length > 15",
    }
    h = generate_hypotheses(cube, groupings=(), custom=custom)
    assert set(h["kind"].values) == {"user"}
    # user:x1_task1 only on task1
    assert set(h["task"].values[h["grouping"].values == "user:x1_task1"]) == {"task1"}
    g = _task_rows(h, "task1", "user:x1_task1")["group"].values[0]
    np.testing.assert_array_equal(g[:200], cube["cov_x1"].values[1, :200].astype(int))
    # expressions match pandas on the items table
    for t, task in enumerate(cube["task"].values):
        n = int((cube["item_id"].values[t] != "").sum())
        sub = tab[tab["task"] == task]
        exp = (sub["source"] == "news") & sub["x0"]
        rows = _task_rows(h, task, "user:expr")
        if rows.sizes["hypothesis"]:
            np.testing.assert_array_equal(rows["group"].values[0, :n], exp.astype(int))
        rows = _task_rows(h, task, "user:textexpr")
        np.testing.assert_array_equal(rows["group"].values[0, :n],
                                      sub["text"].str.contains("climate").astype(int))
        # 'length' is the simulator's covariate here (the covariate wins over words per text)
        rows = _task_rows(h, task, "user:long")
        np.testing.assert_array_equal(rows["group"].values[0, :n], (sub["length"] > 15).astype(int))
    # the array mask equals the categorical covariate grouping: reported as the same split
    h2 = generate_hypotheses(cube, groupings=("covariate",), covariates=["source"], custom={"news_arr": mask})
    assert {s["reason"] for s in _skips(h2, grouping="user:news_arr")} == {"same split as cov:source=news"}


def test_custom_na_and_length_column():
    items = _items(n=30, seed=9)
    cube = _cube(items, {"t": ["a", "b"]})
    m = pd.array([True, False, None] * 10, dtype="boolean")
    h = generate_hypotheses(cube, groupings=(), custom={"na": m, "len": "length >= 5"})
    g = _task_rows(h, "t", "user:na")["group"].values[0]
    np.testing.assert_array_equal(g, [1, 0, -1] * 10)
    assert {"task": "t", "grouping": "user:na", "n_items": 10, "reason": "missing (NA) mask value"} in h.attrs["excluded"]
    words = items["text"].str.split().str.len().to_numpy()
    g = _task_rows(h, "t", "user:len")["group"].values[0]
    np.testing.assert_array_equal(g, (words >= 5).astype(int))


def test_custom_errors(sim):
    cube = sim[0]
    with pytest.raises(ValueError, match="unknown column") as err:
        generate_hypotheses(cube, custom={"bad": "nosuchcol > 3"})
    assert "'bad'" in str(err.value) and "Available columns" in str(err.value)
    with pytest.raises(ValueError, match="could not be evaluated"):
        generate_hypotheses(cube, custom={"bad": "source ==="})
    with pytest.raises(ValueError, match=r"shape \(5,\), expected \(650,\)"):
        generate_hypotheses(cube, custom={"short": np.ones(5, bool)})
    with pytest.raises(ValueError, match=r"task 'task1'.*expected \(200,\)"):
        generate_hypotheses(cube, custom={"short": {"task1": np.ones(199, bool)}})
    with pytest.raises(ValueError, match="unknown task"):
        generate_hypotheses(cube, custom={"u": {"nope": np.ones(3, bool)}})
    with pytest.raises(ValueError, match="expected booleans"):
        generate_hypotheses(cube, custom={"num": np.arange(650)})
    with pytest.raises(ValueError, match="not one boolean per item"):
        generate_hypotheses(cube, custom={"scalar": "1 + 1"})
    with pytest.raises(ValueError, match="non-empty strings"):
        generate_hypotheses(cube, custom={"": "x0"})


# ------------------------------------------------------------------------------------------------
# random splits are nulls: size on human labels


def _random_split_rejection(n_tasks: int, n_items: int, seed: int):
    from statsmodels.stats.proportion import proportions_ztest

    cube, truth = hackrisk.simulate_multiverse(
        n_tasks=n_tasks, n_items=n_items, n_classes=2, models=1, n_prompts=1, temperatures=(0.0,),
        n_covariates=1, effects=np.full((n_tasks, 1), 0.3), base_rate=0.5, rng=seed,
    )
    h = generate_hypotheses(cube, groupings=("random", "covariate"), covariates=["x0"], rng=seed)
    n_a, n_b, k_a, k_b = _human_counts(cube, h)
    p = np.array([proportions_ztest([ka, kb], [na, nb])[1]
                  for na, nb, ka, kb in zip(n_a, n_b, k_a, k_b, strict=True)])
    kind = h["kind"].values
    return p[kind == "random"], p[kind == "covariate"], len(h.attrs["skipped"])


def _assert_size(p: np.ndarray, alpha: float = 0.05):
    rate = np.mean(p < alpha)
    se = np.sqrt(alpha * (1 - alpha) / len(p))
    assert abs(rate - alpha) < 3.5 * se, (rate, len(p), se)


def test_random_splits_have_nominal_size():
    p_rand, p_cov, n_skipped = _random_split_rejection(n_tasks=150, n_items=160, seed=1)
    assert len(p_rand) == 450 and n_skipped == 0
    _assert_size(p_rand)
    # the planted effect (0.3 difference, 160 items) is found: the test can tell nulls from effects
    assert np.mean(p_cov < 0.05) > 0.8


@pytest.mark.slow
def test_random_splits_have_nominal_size_large():
    p_rand, _, _ = _random_split_rejection(n_tasks=1500, n_items=200, seed=2)
    assert len(p_rand) == 4500
    _assert_size(p_rand)


@pytest.mark.slow
def test_paper_scale_is_fast():
    import time

    cube, _ = hackrisk.simulate_multiverse(
        n_tasks=37, n_items=3000, n_classes=[2, 3, 4] * 12 + [2], models=1, n_prompts=1,
        temperatures=(0.0,), rng=0,
    )
    t0 = time.perf_counter()
    h = generate_hypotheses(cube)
    elapsed = time.perf_counter() - t0
    assert 1000 < h.sizes["hypothesis"] < 5000
    assert elapsed < 10, elapsed


# ------------------------------------------------------------------------------------------------
# real data




VADER_ROWS = 300


def _read_vader_gt(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", header=None, quoting=csv.QUOTE_NONE, encoding="utf-8-sig",
                     names=["id", "mean", "text"], dtype={"id": str})
    return df


def _sentiment(mean: pd.Series) -> pd.Series:
    return pd.Series(np.where(mean.abs() < 0.5, "neutral", np.where(mean > 0, "positive", "negative")),
                     index=mean.index)


@pytest.fixture(scope="module")
def real_cube():
    data = _data_dir()
    frames, classes = [], {}
    for path in sorted((data / "llmhacking").glob("*_tweets23.csv.gz")):  # the two tweet files with created_at
        task = path.name.split(".")[0]
        df = pd.read_csv(path)
        names = sorted(df["ground_truth"].unique())
        classes[task] = names
        frames.append(pd.DataFrame({
            "task": task, "item_id": df["id"].astype(str), "text": df["text"], "truth": df["ground_truth"],
            "created_at": pd.to_datetime(df["created_at"], utc=True),
            "screen_name": df["screen_name"].astype(object),
            "solution_frame_fabio": df["solution_frame_fabio"],
        }))
    gts = sorted((data / "vader").glob("*_GroundTruth.tsv.gz"))
    for path in gts:
        domain = path.name.split("_")[0]
        gt = _read_vader_gt(path).head(VADER_ROWS)
        classes[f"{domain}_GroundTruth"] = ["negative", "neutral", "positive"]
        frames.append(pd.DataFrame({"task": f"{domain}_GroundTruth", "item_id": gt["id"], "text": gt["text"],
                                    "truth": _sentiment(gt["mean"])}))
        anon = pd.read_csv(data / "vader" / f"{domain}_anonDataRatings.tsv.gz", sep="\t", header=None,
                           quoting=csv.QUOTE_NONE, encoding="utf-8-sig", names=["id", "mean", "sd", "ratings"],
                           dtype={"id": str})
        anon = gt[["id", "text"]].merge(anon, on="id", how="inner")
        classes[f"{domain}_anonDataRatings"] = ["negative", "positive"]  # sign; neutral band dropped
        anon = anon[anon["mean"].abs() >= 0.5]
        frames.append(pd.DataFrame({
            "task": f"{domain}_anonDataRatings", "item_id": anon["id"], "text": anon["text"],
            "truth": np.where(anon["mean"] > 0, "positive", "negative"), "sd": anon["sd"],
            "n_raters": anon["ratings"].str.count(",") + 1,
        }))
    assert len(frames) == 2 + 2 * len(gts) and len(gts) == 4
    items = pd.concat(frames, ignore_index=True)
    return _cube(items, classes), items


def test_real_data_every_dataset(real_cube):
    cube, items = real_cube
    h = generate_hypotheses(cube)
    h0 = generate_hypotheses(cube, drop_human_zero=False)
    tab, sk = hypotheses_table(h), skipped_table(h)
    tasks = [str(t) for t in cube["task"].values]
    assert set(tab["task"]) == set(tasks)  # every dataset yields hypotheses
    n_a, n_b, k_a, k_b = _human_counts(cube, h)
    assert ((k_a > 0) & (k_b > 0) & (k_a < n_a) & (k_b < n_b)).all()
    assert (tab[["n_a", "n_b"]] >= 2).all().all()
    # accounting: kept + skipped = kept without the zero rule + its size/duplicate skips
    key = ["task", "grouping", "class_name"]
    kept = set(map(tuple, tab[key].to_numpy()))
    human = sk[sk["reason"].str.startswith("human labels:")]
    kept0 = set(map(tuple, hypotheses_table(h0)[key].to_numpy()))
    assert kept0 == kept | set(map(tuple, human[key].to_numpy()))
    # each zero-rule skip is confirmed by the counts of the kept-anyway hypothesis
    t0 = hypotheses_table(h0).reset_index().set_index(key)
    na0, nb0, ka0, kb0 = _human_counts(cube, h0)
    for _, s in human.iterrows():
        i = int(t0.loc[(s["task"], s["grouping"], s["class_name"]), "hypothesis"])
        side = s["reason"][-1]
        k, n = (ka0[i], na0[i]) if side == "A" else (kb0[i], nb0[i])
        assert k == 0 if "absent" in s["reason"] else k == n, (s.to_dict(), k, n)
    allowed = ("group A has", "group B has", "same split as", "human labels:",
               "covariate missing for every item")
    assert sk["reason"].str.startswith(allowed).all(), set(sk["reason"])
    # per task: random splits, one length split, keyword splits; classes per the documented order
    for task in tasks:
        sub = tab[tab["task"] == task]
        k = len(cube["class_name"].values[tasks.index(task)][cube["class_name"].values[tasks.index(task)] != ""])
        classes = list(range(k)) if k > 2 else [0]
        n_rand = ((sub["kind"] == "random").sum()
                  + ((sk["task"] == task) & sk["grouping"].str.startswith("random:")).sum())
        assert n_rand == 3 * len(classes)
        assert set(sub["class_code"]) <= set(classes)
        assert (sub["kind"] == "keyword").any()
        n = (items["task"] == task).sum()
        assert ((h["group"].values[(h["task"] == task).values] >= 0).sum(1) <= n).all()


def test_real_data_tweets_covariates(real_cube):
    cube, items = real_cube
    h = generate_hypotheses(cube, groupings=("covariate",))
    sk = skipped_table(h)
    tab = hypotheses_table(h)
    for task in ("framesI_tweets23", "relevance_tweets23"):
        sub = items[items["task"] == task]
        groupings = set(tab.loc[tab["task"] == task, "grouping"]) | set(sk.loc[sk["task"] == task, "grouping"])
        assert {"cov:created_at:Q1|Q2-4", "cov:created_at:Q1-2|Q3-4", "cov:created_at:Q1-3|Q4"} <= groupings
        # screen_name: the top-3 accounts each vs the rest; accounts with one tweet are too small
        vc = sub["screen_name"].value_counts()
        top = sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        for name, count in top:
            g = f"cov:screen_name={name}"
            assert g in groupings
            reasons = set(sk.loc[(sk["task"] == task) & (sk["grouping"] == g), "reason"])
            if count < 2:
                assert reasons == {"group A has 1 item(s), fewer than min_group=2"}
        # solution_frame_fabio is NaN for many tweets: excluded and reported
        exc = [e for e in h.attrs["excluded"] if e["task"] == task and e["grouping"].startswith("cov:solution")]
        n_nan = int(sub["solution_frame_fabio"].isna().sum())
        if n_nan:
            assert exc and exc[0]["n_items"] == n_nan
    # framesI: 'problem' and 'solution' are rare (5 and 6 of 150): some candidates fail the zero rule
    frames = sk[sk["task"] == "framesI_tweets23"]
    assert frames["reason"].str.startswith("human labels: class").any()


def test_partial_and_no_human_labels():
    """Groups are sized on all items (LLM side) and on the labelled ones (human side)."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=2000, models=1, n_prompts=1,
                                           temperatures=(0.0,), rng=8)
    truth = cube["truth"].values.copy()
    keep = np.random.default_rng(1).choice(2000, size=60, replace=False)
    part = np.full(truth.shape, -1, dtype=truth.dtype)
    part[0, keep] = truth[0, keep]
    partial = cube.assign(truth=(cube["truth"].dims, part))
    h = generate_hypotheses(partial, min_group=2, min_labelled=12)
    lab = part[0] >= 0
    g = h["group"].values
    assert h.sizes["hypothesis"] > 0
    assert (((g == 1) & lab).sum(1) >= 12).all() and (((g == 0) & lab).sum(1) >= 12).all()
    sk = skipped_table(h)
    assert sk["reason"].str.contains("human-labelled item\\(s\\), fewer than min_labelled=12").any()
    # no human label at all: an error by default, hypotheses on all items with min_labelled=0
    none = cube.assign(truth=xr.full_like(cube["truth"], -1))
    with pytest.raises(ValueError, match="min_labelled=0"):
        generate_hypotheses(none)
    h0 = generate_hypotheses(none, min_labelled=0)
    assert h0.sizes["hypothesis"] > 0 and not skipped_table(h0)["reason"].str.startswith("human").any()
    assert h0.attrs["min_labelled"] == 0


# ------------------------------------------------------------------------------------------------
# the vectorised word scanner (hackrisk._wordscan) equals tokenize


def _scanned_words(texts, batch_chars):
    from hackrisk._wordscan import scan_texts

    runs, indptr, words, vocab = scan_texts(texts, batch_chars=batch_chars)
    return runs, [[vocab[w] for w in words[indptr[j]:indptr[j + 1]]] for j in range(len(texts))]


def _assert_scans_like_tokenize(texts, batch_chars=(64, 1 << 20)):  # many small batches, and one batch
    for size in np.atleast_1d(batch_chars):
        runs, got = _scanned_words(texts, int(size))
        for j, text in enumerate(texts):
            assert got[j] == list(dict.fromkeys(tokenize(text))), (size, text)
            assert runs[j] == len(str(text).split()), (size, text)


def test_scanner_edge_cases():
    _assert_scans_like_tokenize([
        "Friend's don't 's 's_ x's it's' rock'n'roll 22'ab 2a'b a2b _x x_y", "", " ", "\n",
        "https://t.co/x www.a.b http:// x https:// www. wwww.abc abchttp://x.y/z's word", "http://x",
        "ΣΑΣ ΣΑΣ. σς İstanbul ǅemal ß ﬁne ١٢٣abc ²³ⅻ x²", "a\x00b\x1cc\x85d\u2028e\u00a0f\u3000g",
        "\ud800lone surrogate", "tab\tsep\vfeed\fcr\rend", "don'", "'s", "o'", "o's", "''a",
    ])


def test_scanner_random_unicode():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(["a", "S", "s", "'", "'s", "_", "2", "٣", "²", " ", "\n", "\u00a0", ".", ":", "/",
                              "http://", "https://", "www.", "HTTP://", "Σ", "İ", "é", "x", "\x00", "-"])
    texts = st.lists(st.lists(pieces | st.characters(), max_size=25).map("".join), min_size=1, max_size=30)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(texts)
    def check(batch):
        _assert_scans_like_tokenize(batch)

    check()


def test_scanner_real_texts():
    """Every text of the data mirror (tweets, news, reviews), in one scan."""
    data = _data_dir()
    texts = []
    for path in sorted((data / "llmhacking").glob("*.csv.gz")):
        texts += pd.read_csv(path)["text"].astype(str).tolist()
    for path in sorted((data / "vader").glob("*_GroundTruth.tsv.gz")):
        texts += pd.read_csv(path, sep="\t", header=None)[2].astype(str).tolist()
    assert len(texts) > 25_000
    _assert_scans_like_tokenize(texts, batch_chars=1 << 16)


def test_scanner_threads_equal_one_thread():
    """Threads scanning at once (as dask workers do, with shared kept tables) get one thread's result."""
    from concurrent.futures import ThreadPoolExecutor

    from hackrisk._wordscan import scan_texts

    gen = np.random.default_rng(5)
    words = np.array(["alpha", "beta's", "http://x.y/z", "don't", "2nd", "ΣΑΣ", "www.q.r", "ab_c", "x"], dtype=object)
    sets = [[" ".join(gen.choice(words, gen.integers(0, 30))) for _ in range(n)] for n in (3000, 50, 800, 6000) * 2]
    sizes = [1 << 10, 1 << 14, 1 << 18, 1 << 12] * 2
    alone = [scan_texts(t, batch_chars=b) for t, b in zip(sets, sizes, strict=True)]
    with ThreadPoolExecutor(4) as ex:
        together = list(ex.map(lambda tb: scan_texts(tb[0], batch_chars=tb[1]), zip(sets, sizes, strict=True)))
    for a, b in zip(alone, together, strict=True):
        for x, y in zip(a[:3], b[:3], strict=True):
            np.testing.assert_array_equal(x, y)
        assert a[3] == b[3]


def test_lowercase_keeps_whitespace_runs():
    """The scanner counts whitespace runs on lower-cased text: lower() maps every whitespace
    character to whitespace and every other character to non-whitespace characters only."""
    for code in range(0x110000):
        ch = chr(code)
        low = ch.lower()
        assert all(c.isspace() == ch.isspace() for c in low), hex(code)


def test_tokenize_items_scanner_equals_python(monkeypatch):
    from hackrisk import hypotheses as H

    data = _data_dir()
    texts = np.array(pd.read_csv(data / "llmhacking" / "stance_climate.csv.gz")["text"].astype(str), dtype=object)
    texts = np.concatenate([["", "the a of"], texts, ["", "1999 ...", ""]])  # texts without (kept) words
    monkeypatch.setattr(H, "_SCAN_MIN_TEXTS", 0)
    fast = H._tokenize_items(texts)
    monkeypatch.setattr(H, "_SCAN_MIN_TEXTS", 10**9)
    slow = H._tokenize_items(texts)
    np.testing.assert_array_equal(fast[0], slow[0])
    fo, so = np.argsort(fast[2].astype(str)), np.argsort(slow[2].astype(str))
    np.testing.assert_array_equal(fast[2][fo], slow[2][so])
    assert (fast[1][:, fo] != slow[1][:, so]).nnz == 0 and fast[1].nnz > 10_000


def test_scanner_hash_collision_falls_back(monkeypatch):
    """Words whose hashes collide are never merged: the scan gives up and tokenize is used."""
    from hackrisk import _wordscan
    from hackrisk import hypotheses as H

    texts = np.array(["apple grape", "lemon melon apple"] * 20, dtype=object)
    monkeypatch.setattr(_wordscan, "_POWERS", [np.zeros(1, np.uint64), np.zeros(1, np.uint64)])
    monkeypatch.setattr(_wordscan, "_powers", lambda n: (np.zeros(n, np.uint64), np.zeros(n, np.uint64)))
    assert _wordscan.scan_texts(texts) is None  # every 5-letter word hashes alike
    monkeypatch.setattr(H, "_SCAN_MIN_TEXTS", 0)
    lengths, x, words = H._tokenize_items(texts)
    assert sorted(words) == ["apple", "grape", "lemon", "melon"] and x.sum() == 100
