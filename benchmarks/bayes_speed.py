"""Fit times of the Bayesian models next to the frequentist analysis of the same data.

* Model 1 (hierarchical risk model) on paper-scale aggregated counts: a simulated multiverse of
  37 tasks x 18 models x 6 prompts (one temperature) with about 2,400 hypotheses, tested with
  ``test_hypotheses`` + ``classify_errors`` (the frequentist peer), then aggregated into
  task x model x prompt x temperature x 8 bins and fitted (compile included).
* Model 2 (prospective risk) for one study of 5,000 items x 30 configurations with 500 human
  labels and 4 hypotheses (compile included), next to ``test_hypotheses`` on the same cube.

Prints one JSON line. ``ratio`` = frequentist seconds / Bayesian seconds over both models
(peer cost / ours; the Bayesian models do more — posterior uncertainty — so a ratio < 1 is
expected; the targets are absolute: each fit < 60 s on 2 cores, compile included).

Usage: ``python benchmarks/bayes_speed.py [--quick]`` (``--quick``: a tenth of the size).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import resource
import time
import warnings

if "PYTENSOR_FLAGS" not in os.environ and glob.glob("/usr/lib/*/libopenblas.so"):
    os.environ["PYTENSOR_FLAGS"] = "blas__ldflags=-lopenblas"

import numpy as np


def _paper_scale(quick: bool, seed: int = 0):
    import hackrisk
    from hackrisk.hypotheses import generate_hypotheses

    n_tasks = 4 if quick else 37
    cube, _ = hackrisk.simulate_multiverse(
        n_tasks=n_tasks, n_items=400, n_classes=3, models=18, n_prompts=6, temperatures=(0.0,),
        n_covariates=6, base_rate=0.45, max_effect=0.12, rng=seed)
    hyps = generate_hypotheses(cube, groupings=("random", "length", "keyword", "covariate"),
                               top_k=3, n_keywords=5, rng=seed)
    return cube, hyps


def _study(quick: bool, seed: int = 1):
    import hackrisk
    from hackrisk.hypotheses import generate_hypotheses

    n = 500 if quick else 5000
    cube, _ = hackrisk.simulate_multiverse(
        n_tasks=1, n_items=n, models=5, n_prompts=3, temperatures=(0.0, 1.0), rng=seed)
    hyps = generate_hypotheses(cube, groupings=("covariate",), covariates=["x0", "x1", "x2", "x3"])
    hyps = hyps.isel(hypothesis=np.flatnonzero(hyps["class_code"].values == 0))
    human = np.zeros(cube.sizes["item"], dtype=bool)
    human[np.random.default_rng(seed).choice(n, n // 10, replace=False)] = True
    return cube, hyps, human


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the size")
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)

    from hackrisk.analysis import bayesian as B
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.analysis.risk import classify_errors

    cube, hyps = _paper_scale(args.quick)
    t0 = time.perf_counter()
    tests = classify_errors(test_hypotheses(cube, hyps))
    t_freq1 = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), _cpu()
    agg = B.aggregate_errors(tests, n_bins=8)
    idata1 = B.fit_risk_model(agg, draws=args.draws, tune=args.draws, rng=0)
    t_bayes1 = time.perf_counter() - t0
    cpu1 = _cpu() - c0
    div1 = int(idata1.sample_stats["diverging"].sum()) if "diverging" in idata1.sample_stats else -1

    cube2, hyps2, human = _study(args.quick)
    t0 = time.perf_counter()
    test_hypotheses(cube2, hyps2)
    t_freq2 = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), _cpu()
    idata2 = B.prospective_risk(cube2, hyps2, human=human, draws=args.draws, tune=args.draws, rng=0)
    B.prospective_summary(idata2)
    t_bayes2 = time.perf_counter() - t0
    cpu2 = _cpu() - c0

    n_cfg = int(np.prod([cube2.sizes[d] for d in ("model", "prompt", "temperature")]))
    met = t_bayes1 < 60 and t_bayes2 < 60
    print(json.dumps({  # noqa: T201
        "benchmark": "bayes_speed",
        "ratio": round((t_freq1 + t_freq2) / (t_bayes1 + t_bayes2), 4),
        "target": "model 1 fit < 60 s and model 2 fit < 60 s on 2 cores, compile included",
        "met": bool(met),
        "seconds_model1": round(t_bayes1, 2),
        "seconds_model2": round(t_bayes2, 2),
        "cpu_seconds_model1": round(cpu1, 2),
        "cpu_seconds_model2": round(cpu2, 2),
        "seconds_frequentist_model1_data": round(t_freq1, 3),
        "seconds_frequentist_model2_data": round(t_freq2, 3),
        "ratio_model1": round(t_freq1 / t_bayes1, 4),
        "ratio_model2": round(t_freq2 / t_bayes2, 4),
        "hypotheses": int(hyps.sizes["hypothesis"]),
        "tasks": int(cube.sizes["task"]),
        "groups_model1": int(agg.sizes["group"]),
        "tests_model1": int(agg["n"].sum()),
        "divergences_model1": div1,
        "items_model2": int(cube2.sizes["item"]),
        "configurations_model2": n_cfg,
        "draws": args.draws, "chains": int(idata1.posterior.sizes["chain"]),
        "sampler": idata1.posterior.attrs.get("sampler", ""),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "quick": bool(args.quick),
        "note": "ratio = frequentist seconds / Bayesian seconds (peer cost / ours; the peer is "
                "test_hypotheses (+ classify_errors) on the same cube, which gives point "
                "conclusions only). Bayesian times include aggregation, nutpie/pytensor "
                "compilation, sampling and post-processing; compile time dominates on a loaded "
                "machine (see load_average_1min). cpu_seconds_* = CPU time of this process over all "
                "threads (2 chains run in parallel), a load-independent check of the 2-core target.",
    }))


if __name__ == "__main__":
    main()
