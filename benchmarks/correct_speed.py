"""A paper-scale study through ``mitigation.correct``: hackrisk vs ppi-python per pair.

Workload: 4 tasks × 10,000 items with human labels on 500 items per task (truth -1 elsewhere),
100 configurations (4 models × 5 prompts × 5 temperatures), 2,000 hypotheses (500 random
groupings per task, some leaving items out of both groups): 200,000 (hypothesis, configuration)
pairs. hackrisk runs ``correct`` once for PPI++ logistic and once for DSL (logistic, 5 folds).
The peer calls ``ppi_py.ppi_logistic_ci`` once per (hypothesis, configuration); it is timed on a
random sample of pairs (after a warm-up that compiles its numba kernels) and extrapolated to all
pairs — the JSON says so. There is no Python DSL peer (R ``dsl`` is not available here): DSL's
seconds are reported, not compared. Ends with one JSON line.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
import xarray as xr

from hackrisk.analysis.mitigation import correct

N_TASKS, N_ITEMS, N_LABELLED, H_PER_TASK, PEER_CALLS = 4, 10_000, 500, 500, 20
MODELS, PROMPTS, TEMPS = 4, 5, (0.0, 0.25, 0.5, 0.75, 1.0)


def make_study(seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    gen = np.random.default_rng(seed)
    T, NI = N_TASKS, N_ITEMS
    C = MODELS * PROMPTS * len(TEMPS)
    truth_all = (gen.random((T, NI)) < gen.uniform(0.2, 0.5, (T, 1))).astype(np.int16)
    acc = gen.uniform(0.7, 0.95, (T, C, 1))
    lab = np.where(gen.random((T, C, NI)) < acc, truth_all[:, None], 1 - truth_all[:, None])
    truth = np.full((T, NI), -1, dtype=np.int16)
    for t in range(T):
        keep = gen.choice(NI, N_LABELLED, replace=False)
        truth[t, keep] = truth_all[t, keep]
    ids = np.array([[f"t{t}-i{i}" for i in range(NI)] for t in range(T)], dtype=object)
    cube = xr.Dataset(
        {"label": (("task", "model", "prompt", "temperature", "item"),
                   lab.reshape(T, MODELS, PROMPTS, len(TEMPS), NI).astype(np.int16)),
         "truth": (("task", "item"), truth), "item_id": (("task", "item"), ids),
         "text": (("task", "item"), np.full((T, NI), "", dtype=object)),
         "class_name": (("task", "class"), np.tile(np.array(["no", "yes"], dtype=object), (T, 1)))},
        coords={"task": [f"task{t}" for t in range(T)], "model": [f"m{m}" for m in range(MODELS)],
                "prompt": [f"p{p}" for p in range(PROMPTS)], "temperature": list(TEMPS),
                "item": np.arange(NI), "class": [0, 1]},
        attrs={"schema_version": 1})
    H = T * H_PER_TASK
    group = (gen.random((H, NI)) < gen.uniform(0.2, 0.8, (H, 1))).astype(np.int8)
    group[gen.random((H, NI)) < 0.1] = -1
    hyp = xr.Dataset({"group": (("hypothesis", "item"), group)},
                     coords={"hypothesis": np.arange(H),
                             "task": ("hypothesis", np.repeat(cube["task"].values, H_PER_TASK)),
                             "class_code": ("hypothesis", np.ones(H, dtype=int))})
    return cube, hyp


def main() -> None:
    cube, hyp = make_study()
    H = hyp.sizes["hypothesis"]
    n_cfg = MODELS * PROMPTS * len(TEMPS)
    small = hyp.isel(hypothesis=slice(0, 4))
    correct(cube, small, method="ppi")  # warm-up (imports)

    tracemalloc.start()
    t0 = time.perf_counter()
    ppi = correct(cube, hyp, method="ppi", estimand="logistic", small_sample=False)
    t_ppi = time.perf_counter() - t0
    t0 = time.perf_counter()
    dsl = correct(cube, hyp, method="dsl", estimand="logistic", rng=0)
    t_dsl = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.isfinite(dsl["estimate"]).mean() > 0.99

    import ppi_py

    gen = np.random.default_rng(1)
    labels = cube["label"].values.reshape(N_TASKS, n_cfg, N_ITEMS)
    truth = cube["truth"].values
    pairs = [(int(h), int(c)) for h, c in zip(gen.integers(0, H, PEER_CALLS),
                                             gen.integers(0, n_cfg, PEER_CALLS), strict=True)]

    def peer(h, c):
        t = h // H_PER_TASK
        g = hyp["group"].values[h]
        ok = g >= 0
        L, U = ok & (truth[t] >= 0), ok & (truth[t] < 0)
        X = np.column_stack([np.ones(N_ITEMS), (g == 1).astype(float)])
        y = (truth[t] == 1).astype(float)
        yh = (labels[t, c] == 1).astype(float)
        return ppi_py.ppi_logistic_ci(X[L], y[L], yh[L], X[U], yh[U], alpha=0.05)

    peer(*pairs[0])  # numba compilation
    t0 = time.perf_counter()
    out = [peer(h, c) for h, c in pairs]
    peer_measured = time.perf_counter() - t0
    peer_total = peer_measured / PEER_CALLS * H * n_cfg
    lo = ppi["ci_lower"].values.reshape(H, n_cfg)
    hi = ppi["ci_upper"].values.reshape(H, n_cfg)
    diff = max(max(abs(lo[h, c] - o[0][1]), abs(hi[h, c] - o[1][1]))
               for (h, c), o in zip(pairs, out, strict=True))
    print(json.dumps({
        "benchmark": "correct_speed",
        "workload": f"{H} hypotheses x {n_cfg} configurations, {N_TASKS} tasks x {N_ITEMS} items, "
                    f"{N_LABELLED} human labels per task; PPI++ logistic and DSL logistic (5 folds)",
        "seconds_ppi_logistic": round(t_ppi, 3),
        "seconds_dsl_logistic": round(t_dsl, 3),
        "seconds_study": round(t_ppi + t_dsl, 3),
        "seconds_peer": round(peer_total, 1),
        "seconds_peer_measured": round(peer_measured, 3),
        "peer": "ppi_py.ppi_logistic_ci per (hypothesis, configuration), timed on "
                f"{PEER_CALLS} random pairs and extrapolated to {H * n_cfg}",
        "max_abs_ci_difference": float(diff),
        "bytes_peak_traced": int(peak),
        "ratio": round(peer_total / t_ppi, 1),
        "ratio_whole_study": round(peer_total / (t_ppi + t_dsl), 1),
        "target": 100,
        "target_seconds_study": 30,
    }))


if __name__ == "__main__":
    main()
