"""Pooled GT-vs-LLM regression at paper scale: hackrisk's closed form vs statsmodels per pair.

Workload: one task of 2,000 items, 100 configurations (10 models x 5 prompts x 2 temperatures) and
about 1,000 hypotheses (the generator's hypotheses repeated), i.e. ~100,000 pooled regressions of
4,000 stacked rows each. The peer is the authors' model fitted one (hypothesis, configuration) at
a time: ``statsmodels.GLM(Binomial)`` with SEs clustered by item (the R code calls ``glm`` then
``sandwich::vcovCL``); it is timed on a sample of pairs and extrapolated. Prints one JSON line.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import xarray as xr

import hackrisk
from hackrisk.analysis.pooled import pooled_regression

PEER_CALLS = 30


def main() -> None:
    import statsmodels.api as sm

    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=2000, n_classes=3, models=10, n_prompts=5,
                                           temperatures=(0.0, 1.0), rng=3)
    hyps = hackrisk.hypotheses.generate_hypotheses(cube)
    reps = max(1, 1000 // hyps.sizes["hypothesis"])
    big = xr.concat([hyps] * reps, dim="hypothesis", data_vars="minimal", coords="minimal", compat="override")
    big = big.assign_coords(hypothesis=np.arange(big.sizes["hypothesis"]))
    pooled_regression(cube, big.isel(hypothesis=slice(0, 5)))  # warm-up
    t0 = time.perf_counter()
    res = pooled_regression(cube, big, correction="none")
    ours = time.perf_counter() - t0
    n_h = big.sizes["hypothesis"]
    n_cfg = int(np.prod([cube.sizes[d] for d in ("model", "prompt", "temperature")]))

    gen = np.random.default_rng(0)
    lab = cube["label"].values[0].reshape(n_cfg, -1)
    truth = cube["truth"].values[0]
    delta = res["delta"].values.reshape(n_h, n_cfg)
    picks = [(int(gen.integers(n_h)), int(gen.integers(n_cfg))) for _ in range(PEER_CALLS)]
    diffs = []
    t0 = time.perf_counter()
    for h, c in picks:
        g = big["group"].values[h]
        ok = (g >= 0) & (truth >= 0)
        cls = int(big["class_code"].values[h])
        x = (g[ok] == 1).astype(float)
        n = x.size
        y = np.r_[(truth[ok] == cls), (lab[c, ok] == cls)].astype(float)
        design = np.column_stack([np.ones(2 * n), np.r_[x, x], np.r_[np.zeros(n), np.ones(n)], np.r_[np.zeros(n), x]])
        ids = np.arange(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.GLM(y, design, family=sm.families.Binomial()).fit(
                cov_type="cluster", cov_kwds={"groups": np.r_[ids, ids], "use_correction": False})
        if np.isfinite(delta[h, c]):
            diffs.append(abs(fit.params[3] - delta[h, c]))
    peer_subset = time.perf_counter() - t0
    peer_total = peer_subset / PEER_CALLS * n_h * n_cfg
    print(json.dumps({
        "benchmark": "pooled_speed",
        "workload": f"pooled GT-vs-LLM logistic regression, {n_h} hypotheses x {n_cfg} configurations, "
                    f"{cube.sizes['item']} items (stacked twice), SEs clustered by item",
        "seconds_ours": round(ours, 3),
        "seconds_peer": round(peer_total, 3),
        "seconds_peer_measured": round(peer_subset, 3),
        "peer_calls_measured": PEER_CALLS,
        "peer_calls_total": n_h * n_cfg,
        "max_abs_delta_difference": float(max(diffs)) if diffs else None,
        "bytes_result": int(res.nbytes),
        "ratio": round(peer_total / ours, 2),
        "target": 100,
    }))


if __name__ == "__main__":
    main()
