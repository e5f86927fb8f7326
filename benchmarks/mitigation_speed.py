"""PPI++ logistic regression across a multiverse: hackrisk vs ppi-python.

Workload: one hypothesis, 100 configurations (4 models × 5 prompts × 5 temperatures), 20 draws of
200 human labels out of 1,000 items. hackrisk fits all 2,000 (configuration, draw) PPI++ logistic
regressions (tuned λ, CI) in one batched call (per-group sufficient statistics: one matrix product
of the LLM labels with the draws' item weights, then closed-form 2 × 2 algebra); the peer calls ``ppi_py.ppi_logistic_ci`` once per
configuration and draw. The peer is timed on a random subset of calls (after a warm-up that
compiles its numba kernels) and extrapolated. Ends with one JSON line.
"""

from __future__ import annotations

import json
import time

import numpy as np
import xarray as xr

import hackrisk
from hackrisk.analysis.mitigation import _arrays, _design_arrays, draw_human_sample, mitigate

N_ITEMS, N_DRAWS, BUDGET, PEER_CALLS = 1000, 20, 200, 20


def main() -> None:
    cube, _ = hackrisk.simulate_multiverse(
        n_tasks=1, n_items=N_ITEMS, models=4, n_prompts=5,
        temperatures=(0.0, 0.25, 0.5, 0.75, 1.0), rng=0)
    g = cube["cov_x0"].values.astype(np.int8)
    hyp = xr.Dataset({"group": (("hypothesis", "item"), g)},
                     coords={"hypothesis": [0], "task": ("hypothesis", cube["task"].values),
                             "class_code": ("hypothesis", [0])})
    design = draw_human_sample(cube, hyp, n=BUDGET, scheme="random", n_draws=N_DRAWS, rng=1)
    n_cfg = int(np.prod([cube.sizes[d] for d in ("model", "prompt", "temperature")]))

    # small_sample=False: the normal interval, as ppi-python (the default adds a t correction)
    mitigate(cube, hyp, design.isel(draw=[0]), method="ppi", estimand="logistic",
             small_sample=False)  # warm-up
    t0 = time.perf_counter()
    res = mitigate(cube, hyp, design, method="ppi", estimand="logistic", alpha=0.05,
                   small_sample=False)
    ours = time.perf_counter() - t0

    import ppi_py

    a = _arrays(cube, hyp)
    S, PI = _design_arrays(design, hyp, cube)
    Y = a["Y"][0]
    Yh = a["Yh"][0].reshape(n_cfg, -1)
    X = np.column_stack([np.ones(N_ITEMS), g[0].astype(float)])
    sel = S[0, 0, 0, 0].astype(bool)  # (draw, item)
    pi = PI[0, 0, 0, 0]  # stratified design: weights 1/pi (labelled), 1/(1-pi) (unlabelled)
    rng = np.random.default_rng(2)
    calls = [(int(c), int(d)) for c, d in zip(rng.integers(0, n_cfg, PEER_CALLS),
                                             rng.integers(0, N_DRAWS, PEER_CALLS), strict=True)]

    def peer(c, d):
        L = sel[d]
        return ppi_py.ppi_logistic_ci(X[L], Y[L], Yh[c, L], X[~L], Yh[c, ~L], alpha=0.05,
                                      w=1 / pi[d, L], w_unlabeled=1 / (1 - pi[d, ~L]))

    peer(*calls[0])  # numba compilation
    t0 = time.perf_counter()
    out = [peer(c, d) for c, d in calls]
    peer_subset = time.perf_counter() - t0
    peer_total = peer_subset / PEER_CALLS * n_cfg * N_DRAWS

    lo = res["lower"].values.reshape(n_cfg, N_DRAWS)
    hi = res["upper"].values.reshape(n_cfg, N_DRAWS)
    diff = max(max(abs(lo[c, d] - o[0][1]), abs(hi[c, d] - o[1][1]))
               for (c, d), o in zip(calls, out, strict=True))
    print(json.dumps({
        "benchmark": "mitigation_speed",
        "workload": f"PPI++ logistic CI, {n_cfg} configurations x {N_DRAWS} draws, "
                    f"n={BUDGET} of N={N_ITEMS}",
        "seconds_ours": round(ours, 3),
        "seconds_peer": round(peer_total, 3),
        "seconds_peer_measured": round(peer_subset, 3),
        "peer_calls_measured": PEER_CALLS,
        "peer_calls_total": n_cfg * N_DRAWS,
        "max_abs_ci_difference": float(diff),
        "ratio": round(peer_total / ours, 2),
        "target": 100,
    }))


if __name__ == "__main__":
    main()
