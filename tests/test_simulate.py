"""The multiverse simulator: validity, seeds, and agreement with the requested truth."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hackrisk import simulate_multiverse, validate_cube


def test_valid_and_seeded():
    a, ta = simulate_multiverse(n_tasks=2, n_items=[120, 80], n_classes=[2, 3], rng=7)
    b, tb = simulate_multiverse(n_tasks=2, n_items=[120, 80], n_classes=[2, 3], rng=7)
    c, _ = simulate_multiverse(n_tasks=2, n_items=[120, 80], n_classes=[2, 3], rng=8)
    validate_cube(a)
    xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(ta, tb)
    assert not a["label"].equals(c["label"])
    assert (a["item_id"].sel(task="task1").values[80:] == "").all()
    assert (a["label"].sel(task="task1").isel(item=slice(80, None)) == -1).all()
    assert a["label"].sel(task="task1").max() == 2  # three classes used


def test_effects_match_requested_within_mc_error():
    """Observed differences in the share of class 0 between covariate groups match `effects`."""
    effects = np.array([[0.0, 0.2, -0.15, 0.0]])
    n = 40_000
    cube, truth = simulate_multiverse(n_tasks=1, n_items=n, effects=effects, models=1,
                                      n_prompts=1, temperatures=[0.0], rng=11)
    y = truth["true_class"].values[0]
    for j in range(4):
        x = cube[f"cov_x{j}"].values[0]
        diff = (y[x] == 0).mean() - (y[~x] == 0).mean()
        se = np.sqrt(0.25 / x.sum() + 0.25 / (~x).sum())
        assert abs(diff - effects[0, j]) < 4 * se, (j, diff)
    # human labels equal the truth when human_noise = 0
    np.testing.assert_array_equal(cube["truth"].values, truth["true_class"].values)


def test_confusion_rates_match_requested():
    """Without systematic bias, each annotator's accuracy is its nominal accuracy."""
    cube, truth = simulate_multiverse(n_tasks=1, n_items=20_000, n_classes=3, bias_sd=0.0,
                                      models=["good", "bad"], model_accuracy=[0.9, 0.6],
                                      n_prompts=2, temperatures=[0.0, 1.0], rng=5)
    lab = cube["label"].values[0]
    y = cube["truth"].values[0]
    observed = (lab == y).mean(axis=-1)
    expected = truth["accuracy"].values[0]
    se = np.sqrt(expected * (1 - expected) / y.size)
    assert np.all(np.abs(observed - expected) < 4 * se)
    assert np.all(expected[:, :, 1] < expected[:, :, 0])  # temperature adds noise
    # for each true class, errors are spread evenly over the other classes
    for c in range(3):
        wrong = lab[:, :, :, y == c]
        counts = np.array([(wrong == k).sum() for k in range(3) if k != c])
        se = np.sqrt(counts.sum() * 0.25)
        assert abs(counts[0] - counts[1]) / 2 < 4 * se


def test_systematic_bias_creates_differences():
    """A positive bias on x0 raises the LLM share of class 0 in the x0 = True group."""
    cube, truth = simulate_multiverse(n_tasks=1, n_items=20_000, effects=[[0.0, 0.0]],
                                      n_covariates=2, models=1, n_prompts=1, temperatures=[0.0],
                                      bias_sd=0.1, rng=2)
    b = truth["bias"].values[0, 0, 0, 0]
    lab = cube["label"].values[0, 0, 0, 0]
    for j in range(2):
        x = cube[f"cov_x{j}"].values[0]
        observed = (lab[x] == 0).mean() - (lab[~x] == 0).mean()
        expected = float(truth["expected_share"].values[0, 0, 0, 0, j, 1, 0]
                         - truth["expected_share"].values[0, 0, 0, 0, j, 0, 0])
        assert abs(observed - expected) < 4 * np.sqrt(0.5 / x.sum())
        assert np.sign(expected) == np.sign(b[j]) or abs(b[j]) < 0.01


def test_bad_arguments():
    with pytest.raises(ValueError, match="inside \\(0, 1\\)"):
        simulate_multiverse(effects=[[0.9, 0.9, 0.0, 0.0]] * 2, rng=0)
    with pytest.raises(ValueError, match="n_items has 3 entries"):
        simulate_multiverse(n_tasks=2, n_items=[1, 2, 3])
    with pytest.raises(ValueError, match="n_classes >= 2"):
        simulate_multiverse(n_classes=1)
