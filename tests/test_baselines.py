"""Baselines (hackrisk.analysis.baselines): random conclusions, random labels, random label noise.

Each baseline has a rate that theory fixes: random conclusions give Type I = p, Type II = 1 − p,
Type S = p/2; uninformative labels give Type I ≈ alpha, Type II ≈ 1 − alpha, Type S ≈ alpha/2;
noise at accuracy 1 gives zero risk; a matched-noise annotator reproduces the accuracy exactly;
and the systematic part of the risk vanishes when the real errors are random.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hackrisk
from hackrisk.analysis import baselines as B
from hackrisk.analysis import risk as R


@pytest.fixture(scope="module")
def world():
    from hackrisk.hypotheses import generate_hypotheses

    cube, truth = hackrisk.simulate_multiverse(
        n_tasks=3, n_items=600, n_classes=[2, 3, 2], models=6, n_prompts=4,
        temperatures=(0.0, 1.0), rng=3)
    return cube, truth, generate_hypotheses(cube)


@pytest.fixture(scope="module")
def world_tests(world):
    from hackrisk.analysis.frequentist import test_hypotheses

    cube, _, hyps = world
    return test_hypotheses(cube, hyps)


def hierarchical_se(tests, mask_h, p):
    """SE of the task → hypothesis → configuration mean of iid Bernoulli(p) indicators."""
    ann = tests["annotated"].values.reshape(tests.sizes["hypothesis"], -1)
    n_cfg = ann.sum(1)[mask_h]
    tasks = tests["task"].values[mask_h]
    per_task = pd.Series(1.0, index=tasks).groupby(level=0).transform("size").values
    n_tasks = len(set(tasks))
    w2 = (1.0 / (n_tasks * per_task)) ** 2 / n_cfg  # Σ over configurations of (w/n_cfg)²
    return np.sqrt(p * (1 - p) * w2.sum())


@pytest.mark.parametrize("p_sig", [0.5, 0.2])
def test_random_conclusions_rates(world_tests, p_sig):
    t = world_tests
    rc = B.random_conclusions(t, p_significant=p_sig, rng=7)
    assert rc.attrs["method"] == "baseline:random_conclusions"
    assert np.isnan(rc.estimate.values).all()
    r = R.risk(rc, n_boot=0).sel(ci="estimate")
    hc = t.human_conclusion.values
    null, sig = hc == 0, hc != 0
    assert null.sum() > 20 and sig.sum() > 5
    for name, want, mask in (("type_i", p_sig, null), ("type_ii", 1 - p_sig, sig),
                             ("type_s", p_sig / 2, sig)):
        se = hierarchical_se(t, mask, want)
        assert abs(float(r[name]) - want) < 4 * se, (name, float(r[name]), want, se)
    assert np.isnan(float(r.type_m_mean))
    # human side untouched, sign balanced
    np.testing.assert_array_equal(rc.human_conclusion, t.human_conclusion)
    c = rc.conclusion.values
    assert abs((c == 1).mean() - (c == -1).mean()) < 0.03


def test_random_conclusions_validates():
    with pytest.raises(ValueError, match="p_significant"):
        B.random_conclusions(None, p_significant=2)


def test_random_labels_give_null_rates(world):
    from hackrisk.analysis.frequentist import test_hypotheses

    cube, _, hyps = world
    rl = B.random_labels(cube, rng=1)
    lab = rl.label.values
    assert ((lab == -1) == (cube.label.values == -1)).all()
    kc = (cube.class_name != "").sum("class").values
    assert (lab.max(axis=(1, 2, 3, 4)) == kc - 1).all() and lab.min() >= -1
    tests = test_hypotheses(rl, hyps)
    # large groups only: there the Wald test holds its size (tiny keyword groups hit zero cells)
    big = (np.minimum(tests.human_n_a, tests.human_n_b) >= 50).values
    t = tests.isel(hypothesis=big)
    r = R.risk(t, n_boot=0).sel(ci="estimate")
    hc = t.human_conclusion.values
    alpha = 0.05
    for name, want, mask in (("type_i", alpha, hc == 0), ("type_ii", 1 - alpha, hc != 0),
                             ("type_s", alpha / 2, hc != 0)):
        se = 2 * hierarchical_se(t, mask, want)  # ×2: hypotheses share each configuration's labels
        assert abs(float(r[name]) - want) < 4 * se + 0.005, (name, float(r[name]), want, se)


def test_label_noise_cube(world):
    cube, _, _ = world
    noisy = B.label_noise(cube, [0.6, 0.9, 1.0], n_replicates=4, rng=0)
    hackrisk.validate_cube(noisy)
    assert list(noisy.model.values) == ["acc=0.600", "acc=0.900", "acc=1.000"]
    np.testing.assert_allclose(noisy.accuracy.values, [0.6, 0.9, 1.0])
    q = R.annotation_quality(noisy)
    n = q.n_items.values
    for i, a in enumerate([0.6, 0.9, 1.0]):
        got = q.accuracy.isel(model=i).values
        se = np.sqrt(a * (1 - a) / n[:, i])
        assert (np.abs(got - a) <= 4 * se + 1e-12).all()
    # errors land on other classes only; padding stays -1
    wrong = noisy.label.values != noisy.truth.values[:, None, None, None, :]
    assert not wrong[:, 2].any()
    with pytest.raises(ValueError, match="accuracy"):
        B.label_noise(cube, 1.2)


def test_noise_curve_known_points(world):
    cube, _, hyps = world
    binary = [0, 2]  # at accuracy ½ a binary annotator is a coin: Type I ≈ alpha, II ≈ 1 − alpha
    sub_h = hyps.isel(hypothesis=np.flatnonzero(np.isin(hyps.task.values, cube.task.values[binary])))
    sub_h = sub_h.isel(hypothesis=np.flatnonzero(sub_h.group.values.sum(1) >= 50))
    curve = B.noise_curve(cube.isel(task=binary), sub_h, accuracies=[0.5, 0.75, 0.9, 1.0],
                          n_replicates=12, n_boot=100, rng=2)
    est = curve.sel(ci="estimate")
    assert float(np.abs(est.risk_pooled.sel(accuracy=1.0))) == 0.0
    assert abs(float(est.type_i.sel(accuracy=0.5)) - 0.05) < 0.03
    assert float(est.type_ii.sel(accuracy=0.5)) > 0.85
    # less accuracy, more misses
    t2 = est.type_ii.values
    assert t2[0] > t2[1] > t2[2] >= t2[3]


def test_matched_noise_keeps_accuracy_exactly(world):
    cube, _, _ = world
    m = B.matched_noise(cube, rng=0)
    q0 = R.annotation_quality(cube)
    q1 = R.annotation_quality(m)
    np.testing.assert_allclose(q1.accuracy, q0.accuracy, atol=1e-12)
    assert m.label.dims == cube.label.dims
    assert float(q1.outside_rate.max()) == 0.0


def test_decompose_risk_random_vs_systematic():
    from hackrisk.hypotheses import generate_hypotheses

    out = {}
    for bias in (0.0, 0.15):
        cube, _ = hackrisk.simulate_multiverse(n_tasks=3, n_items=600, models=3, n_prompts=3,
                                               temperatures=(0.0, 1.0), bias_sd=bias, rng=4)
        hyps = generate_hypotheses(cube)
        d = B.decompose_risk(cube, hyps, n_boot=0, n_replicates=3, rng=1)
        assert list(d.component.values) == ["observed", "random", "systematic"]
        est = d.sel(ci="estimate")
        np.testing.assert_allclose(est.sel(component="systematic").risk_pooled,
                                   est.sel(component="observed").risk_pooled
                                   - est.sel(component="random").risk_pooled)
        out[bias] = est.sel(component="systematic")
    # no systematic error → the systematic part is noise; strong covariate bias → fabricated findings
    assert abs(float(out[0.0].type_i)) < 0.02
    assert float(out[0.15].type_i) > 0.02


def test_label_noise_keeps_padding_and_unlabelled_items():
    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=[50, 30], models=1, n_prompts=1,
                                           temperatures=(0.0,), rng=0)
    truth = cube.truth.values.copy()
    truth[0, :10] = -1
    cube["truth"] = (cube.truth.dims, truth)
    noisy = B.label_noise(cube, [0.0, 1.0], rng=0)  # validate_cube inside: padding must stay -1
    lab = noisy.label.values[:, :, 0, 0, :]
    assert (lab[1, :, 30:] == -1).all() and (lab[:, :, :30] >= 0).all()
    # accuracy 0: every human-labelled item gets another class; unlabelled items get a class
    assert (lab[0, 0, 10:50] != truth[0, 10:50]).all()
    assert (lab[0, 1, 10:50] == truth[0, 10:50]).all()
