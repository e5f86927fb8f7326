"""conventions="paper": every decision equals the authors' code (Baumann et al. 2025, joebaumann/llmhacking).

The reference decision is written here independently of hackrisk: the authors special-case a class
share of exactly 0 (human side: the hypothesis is dropped; LLM side: both 0 -> no difference, one
0 -> the other group is larger) and send every other table to R's ``glm``; the GLM part is checked
against ``statsmodels.GLM(..., family=Binomial())``, whose IRLS also stops at a large finite
coefficient on a separated table (p about 0.999, "no difference"). hackrisk reproduces R's
``glm.fit`` iteration by iteration (start values, deviance criterion 1e-8, weights of the last
step; checked against a published R output); on separated tables both land far from the
significance level, so the conclusions agree.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import hackrisk
from hackrisk import conventions as cv
from hackrisk.analysis import _kernels as K
from hackrisk.analysis.frequentist import test_hypotheses
from hackrisk.hypotheses import generate_hypotheses, hypotheses_table, skipped_table

from ._data import shared_data_dir as _data_dir

sm = pytest.importorskip("statsmodels.api")




def _glm_statsmodels(k1, n1, k2, n2):
    """(z, p) of the authors' R call, via statsmodels: z > 0 <=> group 1 larger."""
    y = np.array([[k1, n1 - k1], [k2, n2 - k2]], dtype=float)
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    return -float(fit.tvalues[1]), float(fit.pvalues[1])


def authors_decision(k1, n1, k2, n2, *, human: bool, alpha: float = 0.05):
    """+1 group 1 larger, -1 group 2 larger, 0 no difference, None = dropped (human side)."""
    p1, p2 = k1 / n1, k2 / n2
    if p1 == 0 or p2 == 0:
        if human:
            return None
        if p1 == 0 and p2 == 0:
            return 0
        return -1 if p1 == 0 else 1
    z, p = _glm_statsmodels(k1, n1, k2, n2)
    if p < alpha:
        return 1 if z > 0 else -1
    return 0


# ------------------------------------------------------------------------------------------------
# the GLM kernel and the decision table


def test_glm_kernel_equals_statsmodels_on_regular_tables():
    gen = np.random.default_rng(0)
    for _ in range(40):
        n1, n2 = gen.integers(5, 200, size=2)
        k1, k2 = gen.integers(1, n1), gen.integers(1, n2)
        r = K.glm_two_groups(k1, n1, k2, n2)
        z, p = _glm_statsmodels(k1, n1, k2, n2)
        assert r["converged"]
        # both stop IRLS on a deviance criterion (1e-8); R's summary takes the SE from the weights
        # of the last step's start, statsmodels at the final estimate: equal to about 1e-5
        np.testing.assert_allclose(float(r["z"]), z, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(float(r["p_value"]), p, rtol=1e-3, atol=1e-6)
        # and close to the closed-form Wald test of the saturated model
        lo = np.log(k1 / (n1 - k1)) - np.log(k2 / (n2 - k2))
        np.testing.assert_allclose(float(r["log_or"]), lo, rtol=1e-5, atol=1e-6)


def test_glm_kernel_separated_table_stops_like_r():
    """A group with share 1: finite coefficient, huge SE, p near (not at) 1, after about 20 steps."""
    r = K.glm_two_groups(20, 20, 7, 20)
    assert 15 < float(r["log_or"]) < 40
    assert float(r["se"]) > 1e3
    assert 0.999 < float(r["p_value"]) < 1.0
    assert 15 <= int(r["iterations"]) <= 25 and bool(r["converged"])


def test_glm_iterations_reproduce_a_published_r_output():
    """R output published on Cross Validated ("Binomial GLM - Non-significant difference between 100%
    opposite groups of observations"): ``glm(response ~ treatment, binomial)`` on 0/1 rows with
    A = 20/20, C = 4/15, D = 0/6 prints (Intercept) 20.57 (SE 3964.63), treatmentC -21.58
    (3964.63), treatmentD -41.13 (8253.04), residual deviance 17.397, 19 Fisher scoring iterations.
    The same IRLS code path (with the Bernoulli rows' start values and deviance) gives exactly that.
    """
    fit = K.glm_groups(np.array([20.0, 4, 0]), np.array([20.0, 15, 6]), rows="bernoulli")
    eta, var = fit["eta"], fit["var_eta"]
    assert int(fit["iterations"]) == 19 and bool(fit["converged"])
    np.testing.assert_allclose([eta[0], eta[1] - eta[0], eta[2] - eta[0]], [20.57, -21.58, -41.13], atol=0.005)
    np.testing.assert_allclose([np.sqrt(var[0]), np.sqrt(var[0] + var[1]), np.sqrt(var[0] + var[2])],
                               [3964.63, 3964.63, 8253.04], atol=0.005)
    np.testing.assert_allclose(float(fit["deviance"]), 17.397, atol=0.0005)


def _patterns():
    out = []
    for n1, n2 in ((5, 5), (12, 30), (40, 9)):
        for k1, k2 in itertools.product((0, 1, n1 - 1, n1), (0, 1, n2 - 1, n2)):
            out.append((k1, n1, k2, n2))
    gen = np.random.default_rng(3)
    for _ in range(30):
        n1, n2 = (int(v) for v in gen.integers(2, 60, size=2))
        out.append((int(gen.integers(0, n1 + 1)), n1, int(gen.integers(0, n2 + 1)), n2))
    return out


@pytest.mark.parametrize("side", ["llm", "human"])
def test_every_degenerate_pattern_decides_as_the_authors(side):
    """0/n, n/n, 0 and n in either group, both: conclusion = the authors' decision."""
    tabs = np.array(_patterns(), dtype=float)
    res = K.two_by_two(*tabs.T, zero_rule="glm", zero_conclusion=side)
    for j, (k1, n1, k2, n2) in enumerate(tabs):
        want = authors_decision(k1, n1, k2, n2, human=side == "human")
        if want is None:  # the authors drop it; hackrisk flags it (and the generator drops it)
            assert res["zero_decided"][j] and res["conclusion"][j] == 0 and np.isnan(res["p_value"][j])
        else:
            assert res["conclusion"][j] == want, (k1, n1, k2, n2, res["p_value"][j])
    # a share of 1 is NOT special-cased: kept on the human side, "no difference"
    full = K.two_by_two(10, 10, 3, 10, zero_rule="glm", zero_conclusion="human")
    assert not full["zero_decided"] and full["conclusion"] == 0 and full["p_value"] > 0.99
    old = K.two_by_two(10, 10, 3, 10, zero_rule="paper", zero_conclusion="llm")
    assert old["conclusion"] == 1  # hackrisk's own zero-cell rule differs here


# ------------------------------------------------------------------------------------------------
# groupings


def test_random_split_equals_pandas_sample():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(137)]}, index=np.arange(137) * 3 + 11)
    for _, frac, seed in cv.PAPER_RANDOM_SPLITS:
        want = df.sample(frac=frac, random_state=np.random.default_rng(seed)).index
        pos = np.flatnonzero(df.index.isin(want))
        row = cv.paper_random_split(len(df), frac, seed)
        assert np.array_equal(np.flatnonzero(row == 1), pos)
        assert row.sum() == round(frac * len(df))


def test_length_split_characters_at_or_below_median():
    texts = ["a" * 3, "bb bb", "c" * 10, "d", "e" * 5]  # lengths 3 5 10 1 5, median 5
    assert cv.paper_length_split(texts).tolist() == [1, 1, 0, 1, 1]


def test_tokenizer_follows_nltk_rules_for_alphabetic_tokens():
    toks = cv.paper_tokenize("Can't stop. https://t.co/x @User #Climate well-known U.S. don't 3:45, end")
    assert toks[:3] == ["ca", "n't", "stop"]
    assert "https" in toks and "user" in toks and "climate" in toks
    assert "well-known" in toks and "u.s." in toks and "3:45" in toks
    assert toks[-1] == "end"
    words = [t for t in toks if t.isalpha() and t not in cv.nltk_stopwords()]
    assert words == ["ca", "stop", "https", "user", "climate", "end"]
    assert {"the", "don", "t", "mightn", "should've"} <= cv.nltk_stopwords()
    assert len(cv.nltk_stopwords()) == 198


def test_keywords_token_counts_frequent_and_discriminating():
    texts = (["apple apple apple pie"] * 2 + ["zebra pie", "banana pie", "banana kiwi"]
             + ["lemon kiwi", "lemon melon", "melon pie"])
    labels = ["x", "x", "x", "y", "y", "y", "x", "y"]
    kw = cv.paper_keywords(texts, labels, k=1)
    # overall by token counts: apple (6) beats pie (5 tokens); then class x (first seen): its most
    # frequent not-yet-used word, pie; its most discriminating among its frequent words
    assert kw[0] == "apple"
    assert kw[1] == "pie"
    assert len(kw) == len(set(kw))
    # membership is a case-insensitive substring
    assert cv.paper_keyword_member(["Banned!", "BAN", "urban", "bam"], "ban").tolist() == [1, 1, 1, 0]


def test_classes_two_class_task_first_human_label():
    assert cv.paper_test_classes(np.array([-1, 1, 0, 1]), 2) == [1]
    assert cv.paper_test_classes(np.array([2, 0, 1]), 3) == [0, 1, 2]
    # a 3-class label set of which the humans used two: binary for the authors
    assert cv.paper_test_classes(np.array([-1, 2, 0, 2]), 3) == [2]
    assert cv.paper_test_classes(np.array([-1, -1]), 3) == [0, 1, 2]


def test_boolean_covariate_both_values_as_value_counts():
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=120, n_classes=2, models=1, n_prompts=1,
                                           temperatures=(0.0,), rng=2)
    flag = np.zeros(cube.sizes["item"], dtype=bool)
    flag[:40] = True
    cube = cube.assign(cov_flag=(("task", "item"), flag[None, :]))
    paper = hypotheses_table(generate_hypotheses(cube, conventions="paper", covariates=["flag"],
                                                 groupings=["covariate"]))
    assert list(dict.fromkeys(paper["grouping"])) == ["cov:flag=False", "cov:flag=True"]  # 80 before 40
    own = hypotheses_table(generate_hypotheses(cube, covariates=["flag"], groupings=["covariate"]))
    assert set(own["grouping"]) == {"cov:flag=True"}


def test_unknown_conventions_named():
    with pytest.raises(ValueError, match="conventions='paper'"):
        cv.check_conventions("authors", "x")


# ------------------------------------------------------------------------------------------------
# the two real tasks, conclusion by conclusion


def _real(task: str, rng: int):
    path = _data_dir() / "llmhacking" / f"{task}.csv.gz"
    df = pd.read_csv(path)
    names = list(dict.fromkeys(df["ground_truth"]))
    items = pd.DataFrame({"task": task, "item_id": df["id"], "text": df["text"], "truth": df["ground_truth"],
                          "screen_name": df["screen_name"].astype(object)})
    gen = np.random.default_rng(rng)
    code = df["ground_truth"].map({n: i for i, n in enumerate(names)}).to_numpy()
    rows, n = [], len(df)
    for m, acc in enumerate((0.97, 0.85, 0.7)):
        for p in range(2):
            lab = np.where(gen.random(n) < 1 - acc, gen.integers(0, len(names), n), code)
            if m == 0 and p == 0:  # a nearly perfect annotator: groups made only of the class
                lab = code.copy()
            share_out = (0.0, 0.005, 0.03)[m] if p == 1 else 0.0  # 3 % unparseable -> left out
            lab = np.where(gen.random(n) < share_out, -2, lab)
            rows.append(pd.DataFrame({"task": task, "model": f"m{m}", "prompt": f"p{p}", "temperature": 0.0,
                                      "item_id": df["id"], "label": lab}))
    cube = hackrisk.make_cube(pd.concat(rows, ignore_index=True), items, {task: names})
    return df, cube, names


def _authors_groups(df: pd.DataFrame, grouping: str) -> tuple[np.ndarray, np.ndarray]:
    """Group-1 / group-2 masks as the authors' code forms them (file order)."""
    if grouping.startswith("random:"):
        frac, seed = {"random:50/50": (0.5, 2), "random:20/80": (0.2, 1), "random:40/60": (0.4, 1)}[grouping]
        g1 = df.index.isin(df.sample(frac=frac, random_state=np.random.default_rng(seed)).index)
        return g1, ~g1
    if grouping == "length:median":
        ln = df["text"].str.len()
        return (ln <= ln.median()).to_numpy(), (ln > ln.median()).to_numpy()
    if grouping.startswith("keyword:"):
        has = df["text"].str.contains(grouping.split(":", 1)[1], case=False).to_numpy()
        return has, ~has
    if grouping.startswith("cov:screen_name="):
        v = grouping.split("=", 1)[1]
        return (df["screen_name"] == v).to_numpy(), ((df["screen_name"] != v) & df["screen_name"].notna()).to_numpy()
    raise AssertionError(grouping)


@pytest.mark.parametrize("task", ["relevance_tweets23", "framesI_tweets23"])
def test_real_task_every_conclusion_equals_the_authors(task):
    df, cube, names = _real(task, rng=1)
    hyps = generate_hypotheses(cube, conventions="paper", covariates=["screen_name"])
    res = test_hypotheses(cube, hyps, conventions="paper")
    table = hypotheses_table(hyps)
    # covariate values: the 10 most frequent (pandas value_counts order) and nothing more
    top = df["screen_name"].value_counts().head(10).index.astype(str)
    cov_groupings = {g for g in table["grouping"] if g.startswith("cov:")}
    skipped = skipped_table(hyps)
    assert cov_groupings | {g for g in skipped["grouping"] if g.startswith("cov:")} <= {
        f"cov:screen_name={v}" for v in top}
    # classes: all for a 3-class task, the first human label for a 2-class one
    want_classes = set(names) if len(names) > 2 else {df["ground_truth"].iloc[0]}
    assert set(table["class_name"]) | set(skipped["class_name"]) <= want_classes
    # the unparseable rule: shares above 1 % are left out
    share = (cube["label"].isel(task=0) == -2).mean("item")
    bad = (share > 0.01).values
    assert bad.sum() == 1 and res.attrs["n_unparseable_excluded"] == 1
    lab = cube["label"].isel(task=0).values  # (model, prompt, temperature, item)
    n_checked = n_human_kept = n_sep = 0
    candidates = {(g, c) for g in table["grouping"] for c in want_classes} | set(
        zip(skipped["grouping"], skipped["class_name"], strict=True))
    kept = set(zip(table["grouping"], table["class_name"], strict=True))
    for grouping, cname in sorted(candidates):
        if grouping == "*":
            continue
        g1, g2 = _authors_groups(df, grouping)
        if g1.sum() < 2 or g2.sum() < 2:
            assert (grouping, cname) not in kept
            continue
        y = (df["ground_truth"] == cname).to_numpy()
        human = authors_decision(int(y[g1].sum()), int(g1.sum()), int(y[g2].sum()), int(g2.sum()), human=True)
        assert ((grouping, cname) in kept) == (human is not None), (grouping, cname)
        if human is None:
            continue
        h = int(np.flatnonzero((table["grouping"] == grouping) & (table["class_name"] == cname))[0])
        grp = hyps["group"].values[h, : len(df)]
        assert np.array_equal(grp == 1, g1) and np.array_equal(grp == 0, g2)
        assert int(res["human_conclusion"].values[h]) == human
        n_human_kept += 1
        code = names.index(cname)
        for m, p in itertools.product(range(3), range(2)):
            if bad[m, p, 0]:
                assert not res["annotated"].values[h, m, p, 0]
                continue
            yl = lab[m, p, 0, : len(df)] == code  # -2 is not the class (the authors' "na")
            k1, k2 = int(yl[g1].sum()), int(yl[g2].sum())
            sep = k1 in (0, g1.sum()) or k2 in (0, g2.sum())
            n_sep += sep
            want = authors_decision(k1, int(g1.sum()), k2, int(g2.sum()), human=False)
            assert int(res["conclusion"].values[h, m, p, 0]) == want, (grouping, cname, m, p, k1, k2)
            n_checked += 1
    assert n_human_kept >= 10 and n_checked >= 50
    assert n_sep >= 5  # degenerate LLM tables were exercised


def test_default_preset_unchanged_and_zero_rule_override():
    _, cube, _ = _real("relevance_tweets23", rng=2)
    hyps = generate_hypotheses(cube)
    assert hyps.attrs["conventions"] == "hackrisk" and hyps.attrs["top_k"] == 3
    default = test_hypotheses(cube, hyps)
    assert default.attrs["zero_rule"] == "paper" and "unparseable_excluded" not in default
    glm = test_hypotheses(cube, hyps, zero_rule="glm")
    assert glm.attrs["zero_rule"] == "glm" and glm.attrs["conventions"] == "hackrisk"
    paper_hyps = generate_hypotheses(cube, conventions="paper")
    forced = test_hypotheses(cube, paper_hyps, conventions="paper", zero_rule="paper")
    assert forced.attrs["zero_rule"] == "paper" and forced.attrs["conventions"] == "paper"


def test_lazy_cube_same_paper_results():
    pytest.importorskip("dask")
    import xarray as xr

    _, cube, _ = _real("framesI_tweets23", rng=3)
    hyps = generate_hypotheses(cube, conventions="paper")
    ref = test_hypotheses(cube, hyps, conventions="paper")
    lazy = test_hypotheses(cube.chunk({"item": 40}), hyps, conventions="paper")
    assert ref.attrs["n_unparseable_excluded"] == 1
    xr.testing.assert_identical(ref, lazy)


def test_tokens_and_keywords_equal_nltk_when_installed():
    """With NLTK installed (not a dependency): alphabetic tokens per text vs NLTKWordTokenizer after an
    untrained Punkt sentence split (the trained English model cannot be downloaded here), and the
    keyword selection itself, on both real tasks."""
    pytest.importorskip("nltk", reason="nltk is optional; the comparison runs where it is installed")
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    wt, punkt = NLTKWordTokenizer(), PunktSentenceTokenizer()

    def nltk_tokens(text):
        return [w for s in punkt.tokenize(str(text).lower()) for w in wt.tokenize(s)]

    for task in ("relevance_tweets23", "framesI_tweets23"):
        df = pd.read_csv(_data_dir() / "llmhacking" / f"{task}.csv.gz")
        same = [[w for w in cv.paper_tokenize(t) if w.isalpha()] == [w for w in nltk_tokens(t) if w.isalpha()]
                for t in df["text"]]
        assert np.mean(same) > 0.97, (task, np.mean(same))
        ours = cv.paper_keywords(df["text"].tolist(), df["ground_truth"].tolist())
        orig = cv.paper_tokenize
        try:
            cv.paper_tokenize = nltk_tokens
            theirs = cv.paper_keywords(df["text"].tolist(), df["ground_truth"].tolist())
        finally:
            cv.paper_tokenize = orig
        assert ours == theirs
