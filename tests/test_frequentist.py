"""Tests of hackrisk.analysis.frequentist (per-configuration tests, regressions) and its kernels.

Correctness is shown by parity with statsmodels (Logit / OLS with HC errors) and scipy (Fisher's
exact test) to 1e-8 relative on simulated and real data, by a brute-force recount of the
vectorised counting, by an iterative Firth fit, by invariants (permuting items, an annotator equal
to the truth) and by the size of the test under null random splits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import xarray as xr
from scipy import stats

import hackrisk
from hackrisk.analysis import _kernels as K
from hackrisk.analysis import frequentist as fq

from ._data import shared_data_dir as _data_dir

RTOL = 1e-8
CFG = ("model", "prompt", "temperature")


# ------------------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------------------




def hand_hypotheses(cube: xr.Dataset, groupings: dict[str, np.ndarray], classes=None) -> xr.Dataset:
    """Hypotheses in the docs/results.md format from boolean (task, item) masks (True = group A).

    ``classes``: ``{task: [class codes]}`` (default: code 0 for every task).
    """
    real = np.asarray(cube["item_id"].values) != ""
    rows, task, grouping, code = [], [], [], []
    for t, name in enumerate(cube["task"].values):
        for gname, mask in groupings.items():
            g = np.where(real[t], np.where(np.asarray(mask)[t], 1, 0), -1).astype(np.int8)
            g_full = np.full((cube.sizes["task"], cube.sizes["item"]), -1, dtype=np.int8)
            g_full[t] = g
            for c in (classes or {}).get(str(name), [0]):
                # the group is defined on the task's own row of items; other tasks' rows are -1
                rows.append(g_full[t])
                task.append(str(name))
                grouping.append(gname)
                code.append(int(c))
    return xr.Dataset(
        {"group": (("hypothesis", "item"), np.array(rows, dtype=np.int8))},
        coords={"hypothesis": np.arange(len(rows)), "task": ("hypothesis", np.array(task, dtype=object)),
                "grouping": ("hypothesis", np.array(grouping, dtype=object)),
                "class_code": ("hypothesis", np.array(code))},
    )


@pytest.fixture(scope="module")
def sim():
    cube, truth = hackrisk.simulate_multiverse(
        n_tasks=2, n_items=[300, 240], n_classes=[2, 3], models=3, n_prompts=2,
        temperatures=(0.0, 1.0), rng=11,
    )
    rng = np.random.default_rng(5)
    groupings = {f"x{j}": cube[f"cov_x{j}"].values for j in range(4)}
    groupings["random"] = rng.random(cube["item_id"].shape) < 0.3
    hyps = hand_hypotheses(cube, groupings, classes={"task0": [0], "task1": [0, 1, 2]})
    return cube, hyps


def _xy(cube, hyps, h, cfg=None):
    """Design [1, A] and outcome of hypothesis h under configuration cfg (dict) or humans (None)."""
    t = list(cube["task"].values).index(hyps["task"].values[h])
    g = hyps["group"].values[h]
    inside = g >= 0
    if cfg is None:
        lab = cube["truth"].values[t]
        inside &= lab >= 0
    else:
        lab = cube["label"].sel(cfg).values[t]
    y = (lab[inside] == hyps["class_code"].values[h]).astype(float)
    x = np.column_stack([np.ones(inside.sum()), (g[inside] == 1).astype(float)])
    return x, y


def _sm_logit(x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.Logit(y, x).fit(disp=0, tol=1e-12, maxiter=100, **kw)


def _assert_rel(a, b, rtol=RTOL, what=""):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=what)


def _check_parity_with_statsmodels(cube, hyps, res, pairs):
    """Compare our per-(hypothesis, configuration) Wald test with statsmodels Logit and OLS."""
    n_checked = 0
    for h, cfg in pairs:
        x, y = _xy(cube, hyps, h, cfg)
        row = res.isel(hypothesis=h) if cfg is None else res.isel(hypothesis=h).sel(cfg)
        pre = "" if cfg is None else ""
        if cfg is None:
            est, lor, se, z, p = (float(row[f"human_{v}"]) for v in ("estimate", "log_or", "se", "z", "p_value"))
        else:
            est, lor, se, z, p = (float(row[v]) for v in ("estimate", "log_or", "se", "z", "p_value"))
        ols = sm.OLS(y, x).fit()
        _assert_rel(est, ols.params[1], 1e-10, f"{pre}estimate h={h} cfg={cfg}")
        a = x[:, 1] == 1
        if y[a].sum() in (0, a.sum()) or y[~a].sum() in (0, (~a).sum()):
            continue  # zero cell: statsmodels diverges; covered by the zero-count tests
        fit = _sm_logit(x, y)
        _assert_rel(lor, fit.params[1], RTOL, f"log_or h={h} cfg={cfg}")
        _assert_rel(se, fit.bse[1], RTOL, f"se h={h} cfg={cfg}")
        _assert_rel(z, fit.tvalues[1], RTOL, f"z h={h} cfg={cfg}")
        _assert_rel(p, fit.pvalues[1], RTOL, f"p h={h} cfg={cfg}")
        n_checked += 1
    return n_checked


def _random_pairs(cube, hyps, n, rng):
    gen = np.random.default_rng(rng)
    pairs = [(h, None) for h in range(hyps.sizes["hypothesis"])]
    for _ in range(n):
        pairs.append((int(gen.integers(hyps.sizes["hypothesis"])),
                      {d: cube[d].values[gen.integers(cube.sizes[d])] for d in CFG}))
    return pairs


# ------------------------------------------------------------------------------------------------
# format
# ------------------------------------------------------------------------------------------------


def test_result_format_follows_docs(sim):
    cube, hyps = sim
    res = fq.test_hypotheses(cube, hyps)
    llm = ["estimate", "log_or", "se", "z", "p_value", "conclusion", "zero_decided", "n_a", "n_b",
           "k_a", "k_b", "annotated"]
    for v in llm:
        assert res[v].dims == ("hypothesis", *CFG), v
    for v in ["estimate", "log_or", "se", "z", "p_value", "conclusion", "n_a", "n_b", "k_a", "k_b"]:
        assert res[f"human_{v}"].dims == ("hypothesis",), v
    assert res["conclusion"].dtype == np.int8 and res["human_conclusion"].dtype == np.int8
    assert res["zero_decided"].dtype == bool and res["annotated"].dtype == bool
    assert set(np.unique(res["conclusion"])) <= {-1, 0, 1}
    assert res.attrs["method"] == "wald" and res.attrs["alpha"] == 0.05 and res.attrs["zero_rule"] == "paper"
    for c in ("task", "grouping", "class_code"):
        np.testing.assert_array_equal(res[c].values, hyps[c].values)
    assert "nominal_accuracy" in res.coords  # non-index model coords travel along
    assert res.sizes["hypothesis"] == hyps.sizes["hypothesis"]
    # the input is not mutated
    assert "estimate" not in cube and "estimate" not in hyps


def test_counts_equal_brute_force(sim):
    cube, hyps = sim
    cube = cube.copy(deep=True)
    lab = cube["label"].values
    lab[0, 0, 0, 0, :20] = -2  # outside the set counts as "not the class"
    res = fq.test_hypotheses(cube, hyps)
    tasks = list(cube["task"].values)
    for h in range(hyps.sizes["hypothesis"]):
        t = tasks.index(hyps["task"].values[h])
        g = hyps["group"].values[h]
        c = hyps["class_code"].values[h]
        y = lab[t] == c  # (m, p, k, item)
        np.testing.assert_array_equal(res["k_a"].values[h], (y & (g == 1)).sum(-1))
        np.testing.assert_array_equal(res["k_b"].values[h], (y & (g == 0)).sum(-1))
        assert (res["n_a"].values[h] == (g == 1).sum()).all()
        tr = cube["truth"].values[t]
        assert res["human_k_a"].values[h] == ((tr == c) & (g == 1)).sum()
        assert res["human_n_b"].values[h] == ((tr >= 0) & (g == 0)).sum()


def test_count_by_group_kernel_exact():
    gen = np.random.default_rng(0)
    labels = gen.integers(-2, 4, size=(7, 500)).astype(np.int16)
    member = (gen.random((5, 500)) < 0.4).astype(np.float32)
    out = K.count_by_group(labels, member, [0, 3])
    ref = np.einsum("kci,gi->kcg", (labels[None] == np.array([0, 3])[:, None, None]).astype(int),
                    member.astype(int))
    np.testing.assert_array_equal(out, ref)


# ------------------------------------------------------------------------------------------------
# parity with statsmodels
# ------------------------------------------------------------------------------------------------


def test_parity_with_statsmodels_simulated(sim):
    cube, hyps = sim
    res = fq.test_hypotheses(cube, hyps)
    n = _check_parity_with_statsmodels(cube, hyps, res, _random_pairs(cube, hyps, 60, 1))
    assert n >= 50


def _real_cube(rng=0) -> xr.Dataset:
    path = _data_dir() / "llmhacking" / "relevance_tweets23.csv.gz"
    df = pd.read_csv(path)
    items = pd.DataFrame({
        "task": "relevance", "item_id": df["id"], "text": df["text"], "truth": df["ground_truth"],
        "created_at": pd.to_datetime(df["created_at"]),
        "late": pd.to_datetime(df["created_at"]) >= pd.Timestamp("2023-01-16", tz="UTC"),
    })
    gen = np.random.default_rng(rng)
    truth = (df["ground_truth"] == "irrelevant").to_numpy().astype(int)
    late = items["late"].to_numpy()
    rows = []
    for m, acc in enumerate([0.95, 0.8, 0.65]):
        for p in range(2):
            for temp in (0.0, 1.0):
                flip = gen.random(len(df)) < (1 - acc) + 0.1 * temp
                lab = np.where(flip, 1 - truth, truth)
                push = late & (gen.random(len(df)) < 0.1 * m)  # systematic: late tweets -> relevant
                lab = np.where(push, 0, lab)
                outside = gen.random(len(df)) < 0.01
                lab = np.where(outside, -2, lab)
                rows.append(pd.DataFrame({"task": "relevance", "model": f"m{m}", "prompt": f"p{p}",
                                          "temperature": temp, "item_id": df["id"], "label": lab}))
    labels = pd.concat(rows, ignore_index=True)
    return hackrisk.make_cube(labels, items, {"relevance": ["relevant", "irrelevant"]})


def test_parity_with_statsmodels_real_data():
    cube = _real_cube()
    text = pd.Series(cube["text"].values[0]).str.lower()
    groupings = {
        "late": cube["cov_late"].values,
        "kw:the": text.str.contains(r"\bthe\b").to_numpy()[None, :],
        "kw:http": text.str.contains("http").to_numpy()[None, :],
    }
    hyps = hand_hypotheses(cube, groupings, classes={"relevance": [0, 1]})
    try:  # also the generator's hypotheses when it is available
        from hackrisk.hypotheses import generate_hypotheses

        gen_h = generate_hypotheses(cube, groupings=("random", "length", "keyword", "covariate"))
        assert gen_h.sizes["hypothesis"] > 5
        hyps = xr.Dataset(
            {"group": (("hypothesis", "item"), np.vstack([hyps["group"].values, gen_h["group"].values]))},
            coords={c: ("hypothesis", np.concatenate([hyps[c].values, gen_h[c].values]))
                    for c in ("task", "grouping", "class_code")},
        ).assign_coords(hypothesis=np.arange(hyps.sizes["hypothesis"] + gen_h.sizes["hypothesis"]))
    except ImportError:
        pass
    res = fq.test_hypotheses(cube, hyps)
    n = _check_parity_with_statsmodels(cube, hyps, res, _random_pairs(cube, hyps, 60, 2))
    assert n >= 40
    # the systematic error (late tweets pushed to 'relevant') shows for the worst model
    late = res.isel(hypothesis=0)  # 'late', class relevant
    assert float(late["estimate"].sel(model="m2").mean()) > float(late["human_estimate"]) + 0.05


def test_regress_parity_ols_and_logit(sim):
    cube, hyps = sim
    hyps = hyps.isel(hypothesis=[0, 2, 4, 5, 6, 7])  # not the x1 split: x1 is a covariate here
    assert "x1" not in set(hyps["grouping"].values)
    gen = np.random.default_rng(3)
    cfgs = [{d: cube[d].values[gen.integers(cube.sizes[d])] for d in CFG} for _ in range(2)] + [None]
    for model, types in (("ols", ("nonrobust", "HC0", "HC1", "HC2", "HC3")), ("logit", ("nonrobust", "HC0"))):
        for ct in types:
            res = fq.regress(cube, hyps, ["x1", "source", "length"], model=model, cov_type=ct)
            assert res.attrs["method"] == f"{model}:{ct}"
            for h in range(hyps.sizes["hypothesis"]):
                t = list(cube["task"].values).index(hyps["task"].values[h])
                g = hyps["group"].values[h]
                for cfg in cfgs:
                    x, y = _xy(cube, hyps, h, cfg)
                    keep = (g >= 0) & ((cube["truth"].values[t] >= 0) if cfg is None else True)
                    src = cube["cov_source"].values[t][keep]
                    levels = np.unique(src)
                    xx = np.column_stack([x, cube["cov_x1"].values[t][keep].astype(float)]
                                         + [(src == lev).astype(float) for lev in levels[1:]]
                                         + [cube["cov_length"].values[t][keep]])
                    if model == "ols":
                        fit = sm.OLS(y, xx).fit(cov_type=ct)
                    else:
                        fit = _sm_logit(xx, y, cov_type=ct)
                    if cfg is None:
                        row = res.isel(hypothesis=h)
                        est, se, z, p = (float(row[f"human_{v}"]) for v in ("estimate", "se", "z", "p_value"))
                        coef = row["human_coef"].values
                    else:
                        row = res.isel(hypothesis=h).sel(cfg)
                        est, se, z, p = (float(row[v]) for v in ("estimate", "se", "z", "p_value"))
                        coef = row["coef"].values
                    what = f"{model}:{ct} h={h} cfg={cfg}"
                    _assert_rel(est, fit.params[1], RTOL, what)
                    _assert_rel(se, fit.bse[1], RTOL, what)
                    _assert_rel(z, fit.tvalues[1], RTOL, what)
                    _assert_rel(p, fit.pvalues[1], 1e-7 if model == "logit" else RTOL, what)
                    terms = list(res["term"].values)
                    order = [0, 1, terms.index("x1")] + [terms.index(f"source[{lev}]") for lev in levels[1:]] \
                        + [terms.index("length")]
                    _assert_rel(coef[order], fit.params, 1e-7, what)


def test_regress_group_only_equals_two_by_two(sim):
    cube, hyps = sim
    res = fq.test_hypotheses(cube, hyps)
    ols = fq.regress(cube, hyps, model="ols")
    logit = fq.regress(cube, hyps, model="logit")
    ok = ~res["zero_decided"]
    np.testing.assert_allclose(ols["estimate"].values, res["estimate"].values, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(logit["estimate"].where(ok).values, res["log_or"].where(ok).values, rtol=1e-8,
                               atol=1e-12)
    _assert_rel(logit["se"].where(ok).values, res["se"].where(ok).values, 1e-8)
    np.testing.assert_array_equal(logit["conclusion"].values, res["conclusion"].values)
    np.testing.assert_array_equal(logit["zero_decided"].values, res["zero_decided"].values)


# ------------------------------------------------------------------------------------------------
# zero counts, outside labels, missing labels
# ------------------------------------------------------------------------------------------------


def _tiny_cube(labels_by_cfg: dict[str, list[int]], truth: list[int]) -> xr.Dataset:
    """One task, 8 items (group A = first 4), one model, prompts as keys of labels_by_cfg."""
    n = len(truth)
    items = pd.DataFrame({"task": "t", "item_id": [f"i{i}" for i in range(n)], "text": "x",
                          "truth": truth, "a": [True] * (n // 2) + [False] * (n - n // 2)})
    rows = [pd.DataFrame({"task": "t", "model": "m", "prompt": p, "temperature": 0.0,
                          "item_id": items["item_id"], "label": lab})
            for p, lab in labels_by_cfg.items()]
    return hackrisk.make_cube(pd.concat(rows, ignore_index=True), items, {"t": ["yes", "no"]})


def test_zero_count_conventions_llm_side():
    truth = [0, 0, 1, 1, 0, 1, 1, 1]
    cube = _tiny_cube({
        "none": [1, 1, 1, 1, 1, 1, 1, 1],      # class absent in both -> no difference
        "all": [0, 0, 0, 0, 0, 0, 0, 0],       # class everywhere -> no difference
        "a_zero": [1, 1, 1, 1, 0, 1, 0, 1],    # absent in A only -> significant, A lower (-1)
        "b_zero": [0, 1, 0, 1, -2, 1, 1, 1],   # absent in B (-2 is not the class) -> +1
        "a_full": [0, 0, 0, 0, 0, 1, 1, 1],    # all of A in class -> significant +1
        "regular": [0, 0, 1, 1, 0, 1, 1, 0],   # no zero cell -> Wald
    }, truth)
    hyps = hand_hypotheses(cube, {"a": cube["cov_a"].values})
    res = fq.test_hypotheses(cube, hyps).isel(hypothesis=0, model=0, temperature=0)
    got = {p: (int(res["conclusion"].sel(prompt=p)), bool(res["zero_decided"].sel(prompt=p)),
               float(res["p_value"].sel(prompt=p))) for p in res["prompt"].values}
    assert got["none"] == (0, True, 1.0)
    assert got["all"] == (0, True, 1.0)
    assert got["a_zero"] == (-1, True, 0.0)
    assert got["b_zero"] == (1, True, 0.0)
    assert got["a_full"] == (1, True, 0.0)
    assert got["regular"][1] is False and got["regular"][0] == 0
    # statsmodels cannot fit the zero cells: the MLE runs off to infinity
    x = np.column_stack([np.ones(8), [1, 1, 1, 1, 0, 0, 0, 0]])
    y = np.array([1, 1, 1, 1, 0, 1, 0, 1]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = sm.Logit(y.astype(float), x).fit(disp=0, maxiter=50)
            assert abs(fit.params[1]) > 10 and fit.bse[1] > 1e3  # diverged, Wald z ~ 0
        except Exception as err:  # PerfectSeparationError in some statsmodels versions
            assert "separation" in str(err).lower()
    # under Firth and exact no convention decides
    for rule in ("firth", "exact"):
        r = fq.test_hypotheses(cube, hyps, zero_rule=rule).isel(hypothesis=0, model=0, temperature=0)
        assert not r["zero_decided"].any()
        assert int(r["conclusion"].sel(prompt="none")) == 0
        assert np.isfinite(r["p_value"]).all()


def test_zero_count_human_side():
    truth = [1, 1, 1, 1, 0, 1, 0, 1]  # class 'yes' absent from group A on human labels
    cube = _tiny_cube({"p": [0, 1, 1, 1, 0, 1, 0, 1]}, truth)
    hyps = hand_hypotheses(cube, {"a": cube["cov_a"].values})
    res = fq.test_hypotheses(cube, hyps).isel(hypothesis=0)
    assert int(res["human_conclusion"]) == 0 and bool(res["human_zero_decided"])
    assert np.isnan(float(res["human_p_value"])) and np.isnan(float(res["human_se"]))
    assert float(res["human_estimate"]) == pytest.approx(-0.5)
    firth = fq.test_hypotheses(cube, hyps, zero_rule="firth").isel(hypothesis=0)
    assert not bool(firth["human_zero_decided"]) and np.isfinite(float(firth["human_p_value"]))


def test_not_annotated_configurations_excluded_and_reported(sim):
    cube, hyps = sim
    cube = cube.copy(deep=True)
    cube["label"].values[1, 2, 0, 1, 5] = -1  # one missing label in task1 / model2 / p0 / T=1
    res = fq.test_hypotheses(cube, hyps)
    assert res.attrs["n_not_annotated"] == 1
    assert res.attrs["not_annotated"] == ["task1/model2/p0/1.0"]
    sel = res.sel(model="model2", prompt="p0", temperature=1.0)
    t1 = sel["task"] == "task1"
    assert not sel["annotated"].where(t1, drop=True).any()
    assert sel["estimate"].where(t1, drop=True).isnull().all()
    assert (sel["conclusion"].where(t1, drop=True) == 0).all()
    assert sel["annotated"].where(~t1, drop=True).all()
    assert int(res["annotated"].sum()) == res["annotated"].size - int(t1.sum())


def test_outside_labels_count_as_not_the_class(sim):
    cube, hyps = sim
    a = cube.copy(deep=True)
    b = cube.copy(deep=True)
    lab = a["label"].values
    gen = np.random.default_rng(0)
    hit = (gen.random(lab.shape) < 0.1) & (lab > 0) & (lab != -1)
    a["label"].values[hit] = -2
    b["label"].values[hit & (np.arange(lab.shape[0])[:, None, None, None, None] == 0)] = 1
    b["label"].values[hit & (np.arange(lab.shape[0])[:, None, None, None, None] == 1)] = -2
    # task0 is binary: class-0 hypotheses see -2 exactly like class 1
    ra, rb = fq.test_hypotheses(a, hyps), fq.test_hypotheses(b, hyps)
    xr.testing.assert_identical(ra, rb)


# ------------------------------------------------------------------------------------------------
# Firth and exact
# ------------------------------------------------------------------------------------------------


def _firth_iterative(x: np.ndarray, y: np.ndarray, n_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Firth-penalised logistic regression by Newton on the modified score (Firth 1993)."""
    beta = np.zeros(x.shape[1])
    for _ in range(n_iter):
        mu = 1 / (1 + np.exp(-x @ beta))
        w = mu * (1 - mu)
        info = x.T @ (w[:, None] * x)
        inv = np.linalg.inv(info)
        h = w * np.einsum("ij,jk,ik->i", x, inv, x)
        step = inv @ (x.T @ (y - mu + h * (0.5 - mu)))
        beta = beta + step
        if np.abs(step).max() < 1e-13:
            break
    mu = 1 / (1 + np.exp(-x @ beta))
    info = x.T @ ((mu * (1 - mu))[:, None] * x)
    return beta, np.sqrt(np.diag(np.linalg.inv(info)))


def test_firth_equals_half_added_to_cells():
    gen = np.random.default_rng(4)
    for _ in range(25):
        n_a, n_b = gen.integers(2, 40, 2)
        k_a, k_b = gen.integers(0, n_a + 1), gen.integers(0, n_b + 1)
        if _ < 5:  # force zero cells
            k_a = 0
        x = np.column_stack([np.ones(n_a + n_b), np.r_[np.ones(n_a), np.zeros(n_b)]])
        y = np.r_[np.arange(n_a) < k_a, np.arange(n_b) < k_b].astype(float)
        beta, se = _firth_iterative(x, y)
        r = K.two_by_two(k_a, n_a, k_b, n_b, zero_rule="firth")
        _assert_rel(r["log_or"], beta[1], 1e-9)
        _assert_rel(r["se"], se[1], 1e-9)
        # the estimate is the Haldane +0.5 log OR; the Woolf SE with +0.5 is NOT the Firth SE
        woolf = np.sqrt(sum(1 / (c + 0.5) for c in (k_a, n_a - k_a, k_b, n_b - k_b)))
        assert abs(woolf - se[1]) > 1e-6


def test_exact_rule_matches_scipy_fisher(sim):
    gen = np.random.default_rng(8)
    n_a, n_b = gen.integers(1, 60, 400), gen.integers(1, 60, 400)
    k_a, k_b = gen.integers(0, n_a + 1), gen.integers(0, n_b + 1)
    k_a[:20] = 0
    k_b[20:40] = n_b[20:40]
    p = K.fisher_exact_p(k_a, n_a, k_b, n_b)
    ref = [stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue for a, n, b, m in zip(k_a, n_a, k_b, n_b, strict=True)]
    _assert_rel(p, ref, 1e-9)
    cube, hyps = sim
    res = fq.test_hypotheses(cube, hyps, zero_rule="exact")
    h, cfg = 3, {"model": "model1", "prompt": "p1", "temperature": 1.0}
    row = res.isel(hypothesis=h).sel(cfg)
    table = [[int(row["k_a"]), int(row["n_a"] - row["k_a"])], [int(row["k_b"]), int(row["n_b"] - row["k_b"])]]
    _assert_rel(float(row["p_value"]), stats.fisher_exact(table).pvalue, 1e-9)
    assert res.attrs["zero_rule"] == "exact"


# ------------------------------------------------------------------------------------------------
# invariants and known truth
# ------------------------------------------------------------------------------------------------


def test_permuting_items_changes_nothing(sim):
    cube, hyps = sim
    perm = np.random.default_rng(2).permutation(cube.sizes["item"])
    r0 = fq.test_hypotheses(cube, hyps)
    r1 = fq.test_hypotheses(cube.isel(item=perm), hyps.isel(item=perm))
    xr.testing.assert_identical(r0, r1)


def test_annotator_equal_to_truth_reproduces_human_conclusions(sim):
    cube, hyps = sim
    perfect = cube.copy(deep=True)
    perfect["label"].values[:] = cube["truth"].values[:, None, None, None, :]
    res = fq.test_hypotheses(perfect, hyps)
    keep = ~res["human_zero_decided"]
    assert int(keep.sum()) >= hyps.sizes["hypothesis"] - 1
    r = res.where(keep, drop=True)
    for v in ("estimate", "log_or", "se", "z", "p_value", "conclusion"):
        llm, hum = r[v].values, r[f"human_{v}"].values[:, None, None, None]
        np.testing.assert_array_equal(llm, np.broadcast_to(hum, llm.shape).astype(llm.dtype), err_msg=v)
    assert not r["zero_decided"].any()


def test_size_of_test_under_random_splits():
    """Random splits are null hypotheses: the human-side rejection rate is ~ alpha."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=600, models=1, n_prompts=1,
                                           temperatures=(0.0,), rng=3)
    gen = np.random.default_rng(9)
    n_split = 400
    groupings = {f"r{i}": gen.random(cube["item_id"].shape) < gen.uniform(0.2, 0.8) for i in range(n_split)}
    hyps = hand_hypotheses(cube, groupings)
    res = fq.test_hypotheses(cube, hyps)
    rate = float((res["human_conclusion"] != 0).mean())
    mcse = np.sqrt(0.05 * 0.95 / (2 * n_split))
    assert abs(rate - 0.05) < 3.5 * mcse, rate


def test_generated_hypotheses_run():
    gh = pytest.importorskip("hackrisk.hypotheses")
    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=200, n_classes=[2, 3], models=2, n_prompts=2,
                                           temperatures=(0.0,), rng=6)
    hyps = gh.generate_hypotheses(cube)
    res = fq.test_hypotheses(cube, hyps)
    assert res.sizes["hypothesis"] == hyps.sizes["hypothesis"] > 10
    # the generator drops human zero-count hypotheses (paper convention)
    assert not res["human_zero_decided"].any()
    assert res["human_p_value"].notnull().all()


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------


def test_sample_dimension(sim):
    cube, hyps = sim
    two = xr.concat([cube["label"], cube["label"]], dim="sample").transpose(*cube["label"].dims, "sample")
    two.values[..., 1] = np.where(two.values[..., 1] >= 0, 0, two.values[..., 1])
    cube2 = cube.assign(label=two).assign_coords(sample=[0, 1])
    with pytest.raises(ValueError, match="sample"):
        fq.test_hypotheses(cube2, hyps)
    r0 = fq.test_hypotheses(cube2, hyps, sample=0)
    xr.testing.assert_equal(r0.drop_attrs(), fq.test_hypotheses(cube, hyps).drop_attrs())
    r1 = fq.test_hypotheses(cube2, hyps, sample=1)
    c0 = r1["class_code"] == 0
    assert (r1["k_a"] == r1["n_a"]).where(c0, True).all() and (r1["k_a"] == 0).where(~c0, True).all()
    with pytest.raises(ValueError, match="sample"):
        fq.test_hypotheses(cube, hyps, sample=1)


def test_bad_input(sim):
    cube, hyps = sim
    with pytest.raises(ValueError, match="zero_rule"):
        fq.test_hypotheses(cube, hyps, zero_rule="haldane")
    with pytest.raises(ValueError, match="method"):
        fq.test_hypotheses(cube, hyps, method="lr")
    with pytest.raises(ValueError, match="alpha"):
        fq.test_hypotheses(cube, hyps, alpha=5)
    bad = hyps.copy(deep=True)
    bad["group"].values[0] = np.where(bad["group"].values[0] == 1, 0, bad["group"].values[0])
    with pytest.raises(ValueError, match="empty group"):
        fq.test_hypotheses(cube, bad)
    bad = hyps.assign_coords(task=("hypothesis", np.where(hyps["task"] == "task0", "nope", hyps["task"])))
    with pytest.raises(ValueError, match="nope"):
        fq.test_hypotheses(cube, bad)
    bad = hyps.assign_coords(class_code=("hypothesis", np.full(hyps.sizes["hypothesis"], 2)))
    with pytest.raises(ValueError, match="class_code 2"):
        fq.test_hypotheses(cube, bad)
    bad = hyps.copy(deep=True)
    bad["group"].values[-1, -1] = 1  # task1 has 240 items: item 299 is padding
    with pytest.raises(ValueError, match="padding"):
        fq.test_hypotheses(cube, bad)
    nohuman = cube.copy(deep=True)
    nohuman["truth"].values[1] = -1
    with pytest.raises(ValueError, match="no human labels"):
        fq.test_hypotheses(nohuman, hyps)
    with pytest.raises(ValueError, match="group"):
        fq.test_hypotheses(cube, hyps.drop_vars("group"))
    nan_cov = cube.copy(deep=True)
    nan_cov["cov_length"].values[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fq.regress(nan_cov, hyps, ["length"])
    with pytest.raises(ValueError, match="covariate 'nope'"):
        fq.regress(cube, hyps, ["nope"])
    with pytest.raises(ValueError, match="cov_type"):
        fq.regress(cube, hyps, model="logit", cov_type="HC3")


# ------------------------------------------------------------------------------------------------
# known truth, grouped kernels, real-data regressions, Monte-Carlo size (slow)
# ------------------------------------------------------------------------------------------------


def test_llm_estimates_recover_the_simulated_expected_shares():
    """The simulator knows each annotator's expected label share per covariate group."""
    cube, truth = hackrisk.simulate_multiverse(n_tasks=2, n_items=2000, n_classes=[2, 3], models=3,
                                               n_prompts=2, temperatures=(0.0, 1.0), bias_sd=0.15, rng=21)
    groupings = {f"x{j}": cube[f"cov_x{j}"].values for j in range(4)}
    hyps = hand_hypotheses(cube, groupings)
    res = fq.test_hypotheses(cube, hyps)
    exp = truth["expected_share"].sel({"class": 0})  # (task, m, p, t, covariate, group)
    expected = np.stack([exp.sel(task=hyps["task"].values[h], covariate=hyps["grouping"].values[h])
                         .transpose(*CFG, "group").values for h in range(hyps.sizes["hypothesis"])])
    diff = expected[..., 1] - expected[..., 0]  # A (x = True) minus B
    pa, pb = expected[..., 1], expected[..., 0]
    sd = np.sqrt(pa * (1 - pa) / res["n_a"].values + pb * (1 - pb) / res["n_b"].values)
    zs = (res["estimate"].values - diff) / sd
    assert np.abs(zs).max() < 4.5
    assert 0.5 < np.mean(zs**2) < 1.3  # conditional on the items the variance is at most binomial
    # the systematic bias makes some annotators' expected effects differ from the truth
    assert np.abs(diff - truth["true_share"].sel({"class": 0}).isel(task=0).values[:, 1][0]
                  + truth["true_share"].sel({"class": 0}).isel(task=0).values[:, 0][0]).max() > 0.02


def test_grouped_kernels_equal_expanded_rows():
    gen = np.random.default_rng(12)
    n = 300
    x = np.column_stack([np.ones(n), gen.random(n) < 0.4, gen.integers(0, 3, n)]).astype(float)
    y = (gen.random((n, 7)) < 0.2 + 0.3 * x[:, [1]]).astype(float)
    rows, inv = np.unique(x, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    w = np.bincount(inv).astype(float)
    k = np.stack([np.bincount(inv, weights=y[:, c]) for c in range(y.shape[1])], axis=1)
    for ct in ("nonrobust", "HC0", "HC1", "HC2", "HC3"):
        b1, c1, d1 = K.ols_batched(x, y, cov_type=ct)
        b2, c2, d2 = K.ols_batched(rows, k, weights=w, cov_type=ct, binary=True)
        _assert_rel(b2, b1, 1e-10)
        _assert_rel(c2, c1, 1e-9)
        assert d1 == d2
    for ct in ("nonrobust", "HC0"):
        b1, c1, ok1 = K.logit_batched(x, y, cov_type=ct)
        b2, c2, ok2 = K.logit_batched(rows, k, weights=w, cov_type=ct)
        assert ok1.all() and ok2.all()
        _assert_rel(b2, b1, 1e-9)
        _assert_rel(c2, c1, 1e-9)


def test_regress_real_data_with_date_covariate():
    cube = _real_cube(rng=4)
    text = pd.Series(cube["text"].values[0]).str.lower()
    hyps = hand_hypotheses(cube, {"kw:http": text.str.contains("http").to_numpy()[None, :]})
    res = fq.regress(cube, hyps, ["created_at"], model="logit")
    days = (cube["cov_created_at"].values[0] - cube["cov_created_at"].values[0].min()) / np.timedelta64(1, "D")
    for cfg in ({"model": "m1", "prompt": "p0", "temperature": 1.0}, None):
        x, y = _xy(cube, hyps, 0, cfg)
        fit = _sm_logit(np.column_stack([x, days]), y)
        row = res.isel(hypothesis=0) if cfg is None else res.isel(hypothesis=0).sel(cfg)
        pre = "human_" if cfg is None else ""
        _assert_rel(float(row[f"{pre}estimate"]), fit.params[1], RTOL)
        _assert_rel(float(row[f"{pre}se"]), fit.bse[1], RTOL)
        _assert_rel(float(row[f"{pre}p_value"]), fit.pvalues[1], 1e-7)


def _exact_size(n_a: int, n_b: int, share: float, zero_rule: str) -> tuple[float, float]:
    """Rejection rate and zero-decided rate under the null, by enumerating every 2 x 2 table."""
    k_a, k_b = np.meshgrid(np.arange(n_a + 1), np.arange(n_b + 1), indexing="ij")
    prob = stats.binom.pmf(k_a, n_a, share) * stats.binom.pmf(k_b, n_b, share)
    r = K.two_by_two(k_a, n_a, k_b, n_b, zero_rule=zero_rule)
    return float((prob * (r["conclusion"] != 0)).sum()), float((prob * r["zero_decided"]).sum())


@pytest.mark.parametrize("zero_rule", ["paper", "firth", "exact"])
def test_size_under_the_null_by_enumeration(zero_rule):
    """Size of each rule under a true null (no Monte-Carlo error: every table is enumerated).

    Large groups: all rules have size close to alpha (exact: at most alpha). Small groups with a
    rare class make zero cells common: the paper's convention then inflates the size by the
    probability of a one-group-zero table, while Firth's Wald test and the exact test stay
    conservative.
    """
    size, decided = _exact_size(200, 150, 0.3, zero_rule)
    assert decided < 1e-12
    if zero_rule == "exact":
        assert 0.035 < size <= 0.05
    else:
        assert abs(size - 0.05) < 0.005, size
    size, decided = _exact_size(20, 20, 0.15, zero_rule)
    p_zero = 0.85**20  # a group without the class
    one_zero = 2 * p_zero * (1 - p_zero)
    if zero_rule == "paper":
        assert decided == pytest.approx(one_zero + p_zero**2, rel=1e-9)
        assert size >= one_zero and size > 0.05 + 0.02
    else:
        assert size <= 0.05 and decided == 0.0
    # the kernel's Monte-Carlo rejection frequency agrees with the enumeration
    gen = np.random.default_rng(31)
    reps = 20000
    r = K.two_by_two(gen.binomial(20, 0.15, reps), 20, gen.binomial(20, 0.15, reps), 20, zero_rule=zero_rule)
    assert abs(float((r["conclusion"] != 0).mean()) - size) < 4 * np.sqrt(size * (1 - size) / reps)


def test_absent_prompts_are_excluded_but_not_listed_as_missing(sim):
    cube, hyps = sim
    cube = cube.copy(deep=True)
    cube["prompt_template"].values[1, 1] = ""  # task1 has only one paraphrase
    cube["label"].values[1, :, 1] = -1
    res = fq.test_hypotheses(cube, hyps)
    assert res.attrs["n_not_annotated"] == 0 and res.attrs["not_annotated"] == []
    t1 = res.where(res["task"] == "task1", drop=True)
    assert not t1["annotated"].sel(prompt="p1").any() and t1["annotated"].sel(prompt="p0").all()


def test_real_data_rare_classes_zero_counts():
    """framesI (150 tweets; 'problem' 5, 'solution' 6): zero cells are common on real data."""
    path = _data_dir() / "llmhacking" / "framesI_tweets23.csv.gz"
    df = pd.read_csv(path)
    names = ["neutral", "problem", "solution"]
    items = pd.DataFrame({"task": "frames", "item_id": df["id"], "text": df["text"], "truth": df["ground_truth"],
                          "late": pd.to_datetime(df["created_at"]) >= pd.Timestamp("2023-01-16", tz="UTC")})
    gen = np.random.default_rng(7)
    truth = df["ground_truth"].map({n: i for i, n in enumerate(names)}).to_numpy()
    rows = []
    for m, acc in enumerate([1.0, 0.95, 0.8]):
        lab = np.where(gen.random(len(df)) < acc, truth, gen.integers(0, 3, len(df)))
        rows.append(pd.DataFrame({"task": "frames", "model": f"m{m}", "prompt": "p0", "temperature": 0.0,
                                  "item_id": df["id"], "label": lab}))
    cube = hackrisk.make_cube(pd.concat(rows, ignore_index=True), items, {"frames": names})
    text = pd.Series(cube["text"].values[0]).str.lower()
    groupings = {"late": cube["cov_late"].values, "kw:the": text.str.contains(r"\bthe\b").to_numpy()[None, :],
                 "kw:http": text.str.contains("http").to_numpy()[None, :],
                 "earliest20": (pd.to_datetime(df["created_at"]).rank() <= 20).to_numpy()[None, :]}
    hyps = hand_hypotheses(cube, groupings, classes={"frames": [0, 1, 2]})
    res = fq.test_hypotheses(cube, hyps)
    assert res["zero_decided"].any() and res["human_zero_decided"].any()
    # every zero-decided conclusion follows the convention; all others match statsmodels
    n_parity = 0
    for h in range(hyps.sizes["hypothesis"]):
        for m in res["model"].values:
            row = res.isel(hypothesis=h).sel(model=m, prompt="p0", temperature=0.0)
            ka, na, kb, nb = (float(row[v]) for v in ("k_a", "n_a", "k_b", "n_b"))
            degenerate = ka in (0, na) or kb in (0, nb)
            assert bool(row["zero_decided"]) == degenerate
            if degenerate:
                assert int(row["conclusion"]) == int(np.sign(ka / na - kb / nb))
            else:
                x, y = _xy(cube, hyps, h, {"model": m, "prompt": "p0", "temperature": 0.0})
                fit = _sm_logit(x, y)
                _assert_rel(float(row["z"]), fit.tvalues[1], RTOL)
                _assert_rel(float(row["p_value"]), fit.pvalues[1], RTOL)
                n_parity += 1
        hrow = res.isel(hypothesis=h)
        if bool(hrow["human_zero_decided"]):
            assert int(hrow["human_conclusion"]) == 0 and np.isnan(float(hrow["human_p_value"]))
    assert n_parity >= 5


# ------------------------------------------------------------------------------------------------
# alignment by item id (issue 17, case 7) and partial human labels (issue 13)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def partial():
    """5,000 items, human labels on a random 300 of them only (truth -1 elsewhere)."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=5000, models=2, n_prompts=2,
                                           temperatures=(0.0, 1.0), rng=21)
    truth = cube["truth"].values.copy()
    keep = np.random.default_rng(3).choice(5000, size=300, replace=False)
    mask = np.zeros(truth.shape, dtype=bool)
    mask[0, keep] = True
    truth[~mask] = -1
    cube["truth"] = (cube["truth"].dims, truth)
    return cube, hackrisk.generate_hypotheses(cube)


def test_permuted_cube_gives_identical_results_with_generated_hypotheses(partial):
    cube, hyps = partial
    assert "item_id" in hyps and "item_text_hash" in hyps
    perm = np.random.default_rng(4).permutation(cube.sizes["item"])
    xr.testing.assert_identical(fq.test_hypotheses(cube, hyps), fq.test_hypotheses(cube.isel(item=perm), hyps))
    # the hypotheses permuted instead of the cube: the same again
    xr.testing.assert_identical(fq.test_hypotheses(cube, hyps), fq.test_hypotheses(cube, hyps.isel(item=perm)))
    # regressions align the same way
    few = hyps.isel(hypothesis=[0, 4])
    xr.testing.assert_allclose(fq.regress(cube, few, ["x0"]), fq.regress(cube.isel(item=perm), few, ["x0"]))


def test_hypotheses_of_another_cube_are_rejected(partial):
    cube, hyps = partial
    other, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=5000, models=2, n_prompts=2,
                                            temperatures=(0.0, 1.0), rng=22)  # same ids, other texts
    with pytest.raises(ValueError, match="another cube.*same id but another text"):
        fq.test_hypotheses(other, hyps)
    renamed = cube.copy()
    ids = cube["item_id"].values.copy()
    ids[0, 7] = "someone-else"
    renamed["item_id"] = (cube["item_id"].dims, ids)
    with pytest.raises(ValueError, match=r"another cube: 1 item id\(s\) of task 'task0'.*t0-i7"):
        fq.test_hypotheses(renamed, hyps)
    with pytest.raises(ValueError, match="items, the cube"):
        fq.test_hypotheses(cube, hyps.isel(item=slice(0, 4000)))


def test_chunked_path_aligns_by_item_id(partial):
    from hackrisk import scale

    cube, hyps = partial
    small = cube.isel(model=[0], prompt=[0])
    perm = np.random.default_rng(5).permutation(small.sizes["item"])
    ref = fq.test_hypotheses(small, hyps)
    got = scale.test_hypotheses_chunked(small.isel(item=perm), hyps, chunks={"item": 700})
    xr.testing.assert_identical(ref, got)


def test_human_tests_use_the_labelled_items_only(partial):
    """Human side: counts over labelled items; LLM side: every annotated item of each group."""
    cube, hyps = partial
    res = fq.test_hypotheses(cube, hyps)
    g = hyps["group"].values
    lab = cube["truth"].values[0] >= 0
    np.testing.assert_array_equal(res["human_n_a"].values, ((g == 1) & lab).sum(1))
    np.testing.assert_array_equal(res["human_n_b"].values, ((g == 0) & lab).sum(1))
    np.testing.assert_array_equal(res["n_a"].values[:, 0, 0, 0], (g == 1).sum(1))
    assert int(res["human_n_a"].sum() + res["human_n_b"].sum()) <= 300 * hyps.sizes["hypothesis"]
    # the human estimate is the difference of the labelled shares
    h = 0
    y = cube["truth"].values[0] == int(hyps["class_code"].values[h])
    a, b = (g[h] == 1) & lab, (g[h] == 0) & lab
    assert float(res["human_estimate"][h]) == pytest.approx(y[a].mean() - y[b].mean(), abs=1e-12)
    # groups were sized on the labelled items: every kept hypothesis has >= min_group labelled per group
    assert (res["human_n_a"].values >= 2).all() and (res["human_n_b"].values >= 2).all()
