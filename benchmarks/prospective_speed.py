"""Speed of the prospective risk: first call in a fresh process (cold), warm calls, a calibration study.

* ``study600``: 8 hypotheses x 15 configurations (1 model x 5 prompts x 3 temperatures) x 600 items,
  150 human labels (issue 19: a fit <= 20 s cold on 2 cores);
* ``study5000``: model 2 of issue 15, 5,000 items x 30 configurations, 500 human labels, the
  study of ``benchmarks/bayes_speed.py`` (< 60 s cold);
* ``calibration``: ``calibration_study`` of ``study600`` at 3 budgets x 5 replicates (<= 5 min).

Cold = a fresh Python process, imports included (the method compiles nothing, so there is no
compile cache to empty). The peer is ``test_hypotheses`` on the same cube in the same process (it
gives the configurations' conclusions only); ``ratio`` = peer seconds / prospective seconds.

Run: ``python benchmarks/prospective_speed.py`` (last line: one JSON object).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _study(name: str):
    import hackrisk
    from hackrisk.hypotheses import generate_hypotheses

    if name == "study600":
        n, n_human = 600, 150
        cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=n, models=1, n_prompts=5,
                                               temperatures=(0.0, 0.7, 1.0), rng=1)
        hyps = generate_hypotheses(cube, groupings=("random", "length", "covariate"), rng=1)
        hyps = hyps.isel(hypothesis=np.arange(8))
    else:
        n, n_human = 5000, 500
        cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=n, models=5, n_prompts=3,
                                               temperatures=(0.0, 1.0), rng=1)
        hyps = generate_hypotheses(cube, groupings=("covariate",), covariates=["x0", "x1", "x2", "x3"])
        hyps = hyps.isel(hypothesis=np.flatnonzero(hyps["class_code"].values == 0))
    human = np.zeros(cube.sizes["item"], dtype=bool)
    human[np.random.default_rng(1).choice(n, n_human, replace=False)] = True
    return cube, hyps, human


def child(name: str) -> dict:
    """One fresh process: first (cold) fit, a warm fit, the peer; calibration study if asked."""
    t_start = time.perf_counter()
    from hackrisk.analysis import bayesian as B
    from hackrisk.analysis.frequentist import test_hypotheses

    cube, hyps, human = _study(name)
    t0 = time.perf_counter()
    B.prospective_summary(B.prospective_risk(cube, hyps, human=human, draws=500, rng=0))
    cold = time.perf_counter() - t0
    process = time.perf_counter() - t_start
    t0 = time.perf_counter()
    B.prospective_summary(B.prospective_risk(cube, hyps, human=human, draws=500, rng=1))
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    test_hypotheses(cube, hyps)
    peer = time.perf_counter() - t0
    out = {"cold": cold, "warm": warm, "peer": peer, "process": process,
           "items": int(cube.sizes["item"]), "hypotheses": int(hyps.sizes["hypothesis"]),
           "configurations": int(np.prod([cube.sizes[d] for d in ("model", "prompt", "temperature")]))}
    if name == "study600":
        t0 = time.perf_counter()
        B.calibration_study(cube, hyps, n_human=(50, 150, 300), reps=5, rng=0)
        out["calibration"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("study600", "study5000"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))  # noqa: T201
        return
    res = {}
    for name in ("study600", "study5000"):
        r = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True,
                           text=True, check=True)
        res[name] = json.loads(r.stdout.strip().splitlines()[-1])
    a, b = res["study600"], res["study5000"]
    met = a["process"] <= 20 and b["process"] < 60 and a["calibration"] <= 300
    print(json.dumps({  # noqa: T201
        "benchmark": "prospective_speed",
        "ratio": round((a["peer"] + b["peer"]) / (a["warm"] + b["warm"]), 4),
        "target": "fit of 8 hyp x 15 cfg x 600 items <= 20 s cold; 5,000 items x 30 cfg < 60 s cold; "
                  "calibration study (3 budgets x 5 reps) <= 5 min; 2 cores",
        "met": bool(met),
        "seconds_study600_cold_process": round(a["process"], 2),
        "seconds_study600_cold_fit": round(a["cold"], 3),
        "seconds_study600_warm": round(a["warm"], 3),
        "seconds_study5000_cold_process": round(b["process"], 2),
        "seconds_study5000_cold_fit": round(b["cold"], 3),
        "seconds_study5000_warm": round(b["warm"], 3),
        "seconds_calibration_study600": round(a["calibration"], 2),
        "seconds_peer_test_hypotheses": round(a["peer"] + b["peer"], 3),
        "sizes": {"study600": [a["hypotheses"], a["configurations"], a["items"]],
                  "study5000": [b["hypotheses"], b["configurations"], b["items"]]},
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "note": "cold_process = a fresh Python process from start to the end of the first fit "
                "(imports and data simulation included); ratio = test_hypotheses seconds / warm "
                "prospective seconds on the same cubes (the peer gives point conclusions only).",
    }))


if __name__ == "__main__":
    main()
