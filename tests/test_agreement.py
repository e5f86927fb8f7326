"""Krippendorff's alpha and Fleiss' kappa: published reference values, peers, invariances, coverage."""

from __future__ import annotations

from fractions import Fraction
from itertools import permutations

import numpy as np
import pandas as pd
import pytest

import hackrisk
from hackrisk.analysis import agreement as ag

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
# units with missing values. Published: nominal .743, ordinal .815, interval .849, ratio .797.
K2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]).T  # units x raters
K2011_PUBLISHED = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# Wikipedia "Fleiss' kappa" worked example: 10 subjects x 5 categories, 14 raters; kappa = 0.210.
WIKI_COUNTS = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])
# Fleiss (1971) psychiatric diagnoses: 30 patients x 6 raters, 5 categories (the `diagnoses` data
# of R package irr); irr::kappam.fleiss gives 0.4302445 (Fleiss reports .430).
DIAGNOSES = np.array([
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
])


def _alpha_by_definition(matrix: np.ndarray, level: str) -> Fraction:
    """Exact alpha from the pairable-value definition (ordered pairs within units), no matrices."""
    units = [[int(v) for v in row if not np.isnan(v)] for row in matrix]
    units = [u for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u})
    o = {(c, k): Fraction(0) for c in values for k in values}
    for u in units:
        for i, j in permutations(range(len(u)), 2):
            o[u[i], u[j]] += Fraction(1, len(u) - 1)
    n_c = {c: sum(o[c, k] for k in values) for c in values}
    n = sum(n_c.values())

    def d2(c: int, k: int) -> Fraction:
        if level == "nominal":
            return Fraction(int(c != k))
        if level == "interval":
            return Fraction((c - k) ** 2)
        if level == "ratio":
            return Fraction(c - k, c + k) ** 2
        lo, hi = min(c, k), max(c, k)
        return (sum(n_c[g] for g in values if lo <= g <= hi) - (n_c[c] + n_c[k]) / 2) ** 2

    do = sum(o[c, k] * d2(c, k) for c in values for k in values)
    de = sum(n_c[c] * n_c[k] * d2(c, k) for c in values for k in values)
    return 1 - (n - 1) * do / de


@pytest.mark.parametrize("level", ag.LEVELS)
def test_krippendorff_2011_reference(level):
    got = ag.krippendorff_alpha(K2011, level=level)
    exact = _alpha_by_definition(K2011, level)
    assert abs(got - float(exact)) < 1e-12
    assert round(got, 3) == K2011_PUBLISHED[level]


def test_krippendorff_2011_exact_fractions():
    # hand-checkable: nominal 1 - 39 * 4 / (...) = 113/152, interval 951/1120
    assert _alpha_by_definition(K2011, "nominal") == Fraction(113, 152)
    assert _alpha_by_definition(K2011, "interval") == Fraction(951, 1120)
    assert ag.krippendorff_alpha(K2011, level="nominal") == pytest.approx(113 / 152, abs=1e-12)
    assert ag.krippendorff_alpha(K2011, level="interval") == pytest.approx(951 / 1120, abs=1e-12)


@pytest.mark.parametrize("level", ag.LEVELS)
def test_krippendorff_parity_with_package(level):
    kd = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    data = rng.integers(1, 6, size=(40, 5)).astype(float)
    data[rng.random(data.shape) < 0.25] = np.nan
    ref = kd.alpha(reliability_data=data.T, level_of_measurement=level)
    assert ag.krippendorff_alpha(data, level=level) == pytest.approx(ref, abs=1e-10)
    ref = kd.alpha(reliability_data=K2011.T, level_of_measurement=level)
    assert ag.krippendorff_alpha(K2011, level=level) == pytest.approx(ref, abs=1e-10)


def test_fleiss_wikipedia_and_statsmodels():
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    got = ag.fleiss_kappa(WIKI_COUNTS, counts=True)
    assert got == pytest.approx(fleiss_kappa(WIKI_COUNTS), abs=1e-12)
    assert round(got, 3) == 0.210
    counts, _ = aggregate_raters(DIAGNOSES)
    assert ag.fleiss_kappa(DIAGNOSES) == pytest.approx(0.4302445, abs=1e-6)
    assert ag.fleiss_kappa(DIAGNOSES) == pytest.approx(fleiss_kappa(counts), abs=1e-12)


def test_input_forms_agree():
    long = pd.DataFrame(
        [(f"u{u}", f"r{r}", K2011[u, r]) for u in range(K2011.shape[0]) for r in range(K2011.shape[1])],
        columns=["item_id", "rater", "rating"],
    )
    counts, values, _ = ag.count_matrix(K2011)
    assert list(values) == [1, 2, 3, 4, 5]
    for level in ag.LEVELS:
        a = ag.krippendorff_alpha(K2011, level=level)
        assert ag.krippendorff_alpha(long, level=level) == pytest.approx(a, abs=1e-12)
        assert ag.krippendorff_alpha(pd.DataFrame(K2011), level=level) == pytest.approx(a, abs=1e-12)
        assert ag.krippendorff_alpha(counts, counts=True, values=values, level=level) == pytest.approx(a, abs=1e-12)


def test_invariances_and_edge_cases():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 3, size=(30, 4)).astype(float)
    a = ag.krippendorff_alpha(data)
    k = ag.fleiss_kappa(data)
    perm_items, perm_raters = rng.permutation(30), rng.permutation(4)
    assert ag.krippendorff_alpha(data[perm_items][:, perm_raters]) == pytest.approx(a, abs=1e-12)
    assert ag.fleiss_kappa(data[perm_items][:, perm_raters]) == pytest.approx(k, abs=1e-12)
    # nominal alpha does not depend on the names of the categories
    names = np.array(["x", "y", "z"], dtype=object)[data.astype(int)]
    assert ag.krippendorff_alpha(names) == pytest.approx(a, abs=1e-12)
    # perfect agreement -> 1; a unit with one rating does not count
    perfect = np.repeat(rng.integers(0, 3, size=(20, 1)), 3, axis=1).astype(float)
    assert ag.krippendorff_alpha(perfect) == pytest.approx(1.0)
    extra = np.vstack([perfect, [[2, np.nan, np.nan]]])
    assert ag.krippendorff_alpha(extra) == pytest.approx(1.0)
    # no variation at all: undefined
    assert np.isnan(ag.krippendorff_alpha(np.ones((5, 3))))
    # ordinal string labels need an order, and interval needs numbers
    with pytest.raises(ValueError, match="numeric"):
        ag.krippendorff_alpha(names, level="interval")
    with pytest.raises(ValueError, match="not in values"):
        ag.krippendorff_alpha(names, values=["x", "y"])
    with pytest.raises(ValueError, match="level"):
        ag.krippendorff_alpha(data, level="cardinal")


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    a1 = ag.agreement(K2011, statistics=("alpha_nominal", "alpha_interval", "fleiss_kappa"), n_boot=300, rng=5)
    a2 = ag.agreement(K2011, statistics=("alpha_nominal", "alpha_interval", "fleiss_kappa"), n_boot=300, rng=5)
    pd.testing.assert_frame_equal(a1, a2)
    assert a1["estimate"].iloc[0] == pytest.approx(113 / 152)
    assert (a1["lower"] <= a1["estimate"]).all() and (a1["estimate"] <= a1["upper"]).all()
    assert (a1["n_items"] == 11).all()  # unit 12 has one rating only
    no_ci = ag.agreement(K2011, n_boot=0)
    assert no_ci[["lower", "upper"]].isna().all().all()


def _simulate_raters(gen, n_items, n_raters, q, k=3):
    truth = gen.integers(0, k, size=n_items)
    keep = gen.random((n_items, n_raters)) < q
    noise = gen.integers(0, k, size=(n_items, n_raters))
    return np.where(keep, truth[:, None], noise).astype(float)


def _coverage(n_sim, n_boot, seed):
    gen = np.random.default_rng(seed)
    # population alpha: with true-class recall q and uniform noise, pairs agree beyond chance
    # with correlation q^2, so nominal alpha -> q^2 (checked on a large sample below).
    q = 0.7
    target = q**2
    hits = 0
    for _ in range(n_sim):
        res = ag.agreement(_simulate_raters(gen, 150, 4, q), statistics=("alpha_nominal",), n_boot=n_boot, rng=gen)
        hits += bool(res["lower"].iloc[0] <= target <= res["upper"].iloc[0])
    return hits / n_sim, target


def test_population_alpha_is_recovered():
    gen = np.random.default_rng(11)
    big = _simulate_raters(gen, 40_000, 4, 0.7)
    assert ag.krippendorff_alpha(big) == pytest.approx(0.49, abs=0.01)
    assert ag.fleiss_kappa(big) == pytest.approx(0.49, abs=0.01)


def test_bootstrap_coverage_fast():
    cov, _ = _coverage(n_sim=150, n_boot=200, seed=1)
    se = np.sqrt(0.95 * 0.05 / 150)
    assert abs(cov - 0.95) < 4 * se + 0.01


@pytest.mark.slow
def test_bootstrap_coverage_slow():
    cov, _ = _coverage(n_sim=1000, n_boot=500, seed=2)
    se = np.sqrt(0.95 * 0.05 / 1000)
    assert abs(cov - 0.95) < 4 * se + 0.01


def test_compare_human_llm_on_a_cube():
    items = pd.DataFrame({"task": "t", "item_id": [f"i{i}" for i in range(60)],
                          "text": [f"text {i}" for i in range(60)]})
    gen = np.random.default_rng(0)
    truth = gen.integers(0, 2, size=60)
    items["truth"] = np.array(["a", "b"])[truth]
    rows = []
    for m in ("perfect", "noisy"):
        for p in ("p0", "p1"):
            for t in (0.0, 1.0):
                lab = truth if m == "perfect" else np.where(gen.random(60) < 0.5, truth, gen.integers(0, 2, 60))
                rows += [("t", m, p, t, f"i{i}", int(lab[i])) for i in range(60)]
    labels = pd.DataFrame(rows, columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    cube = hackrisk.make_cube(labels, items, {"t": ["a", "b"]})
    human = pd.DataFrame({"item_id": np.repeat(items["item_id"], 3).to_numpy(),
                          "rater": np.tile(["h1", "h2", "h3"], 60),
                          "rating": np.repeat(items["truth"], 3).to_numpy()})
    out = ag.compare_human_llm(cube, human, n_boot=50, rng=0)
    assert list(out["raters"]) == ["humans", "LLM configurations", "LLM: perfect", "LLM: noisy"]
    est = out.set_index("raters")["estimate"]
    assert est["humans"] == pytest.approx(1.0) and est["LLM: perfect"] == pytest.approx(1.0)
    assert est["LLM: noisy"] < 0.6 and est["LLM: noisy"] < est["LLM configurations"] < 1.0
    assert out.set_index("raters").loc["LLM configurations", "n_raters"] == 8
    bad = human.assign(rating="c")
    with pytest.raises(ValueError, match="not a class"):
        ag.compare_human_llm(cube, bad, n_boot=0)
