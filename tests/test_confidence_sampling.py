"""Verbalized confidence (cube variable ``confidence``) drives the confidence sampling of mitigation."""

from __future__ import annotations

import numpy as np
import pytest

import hackrisk as hr
from hackrisk.analysis.mitigation import draw_human_sample, item_confidence
from hackrisk.hypotheses import generate_hypotheses


@pytest.fixture(scope="module")
def cube_conf():
    cube, _ = hr.simulate_multiverse(n_tasks=1, n_items=300, models=2, n_prompts=2, temperatures=(0.0,), rng=3)
    cube = cube.drop_vars([v for v in ("prob",) if v in cube])
    rng = np.random.default_rng(0)
    conf = rng.choice(np.array([0.95, 0.6, 0.1], dtype=np.float32), size=cube["label"].shape)
    conf[..., ::7] = np.nan  # malformed answers: missing
    cube["confidence"] = (cube["label"].dims, conf)
    return cube, generate_hypotheses(cube, groupings=("random", "covariate"))


def test_item_confidence_reads_verbalized_confidence(cube_conf):
    cube, hyps = cube_conf
    got = item_confidence(cube, hyps)
    assert got.dims == ("hypothesis", "model", "prompt", "temperature", "item")
    want = np.nan_to_num(cube["confidence"].isel(task=0).values, nan=0.0)  # missing counts as 0
    for h in range(hyps.sizes["hypothesis"]):
        np.testing.assert_allclose(got.values[h], want, rtol=1e-6)
    pooled = item_confidence(cube, hyps, per_config=False)
    assert pooled.dims == ("hypothesis", "item")
    np.testing.assert_allclose(pooled.values[0], want.reshape(-1, want.shape[-1]).mean(0), rtol=1e-6)


def test_confidence_scheme_samples_the_uncertain_items_more(cube_conf):
    cube, hyps = cube_conf
    ds = draw_human_sample(cube, hyps, n=60, scheme="confidence", n_draws=200, rng=1)
    assert "model" in ds["pi"].dims  # per configuration, from the confidence variable
    conf = np.nan_to_num(cube["confidence"].isel(task=0).values, nan=0.0)
    pi = ds["pi"].isel(hypothesis=0, draw=0).values  # (model, prompt, temperature, item)
    eligible = pi > 0
    low, high = eligible & (conf < 0.2), eligible & (conf > 0.9)
    assert pi[low].mean() > 2 * pi[high].mean()
    # the realised frequency of selection follows pi (Poisson sampling)
    freq = ds["selected"].isel(hypothesis=0).mean("draw").values
    assert abs(freq[low].mean() - pi[low].mean()) < 0.05
