"""Cold and warm fit times of the Bayesian models, with their sampling diagnostics.

* Model 1 (:func:`hackrisk.analysis.bayesian.fit_risk_model`) on paper-scale aggregated counts:
  a simulated multiverse of 37 tasks x 18 models x 6 prompts (one temperature), about 2,400
  hypotheses, tested with ``test_hypotheses`` + ``classify_errors`` (the frequentist peer), then
  aggregated into task x model x prompt x temperature x 8 bins and fitted.
* Model 2 (:func:`hackrisk.analysis.bayesian.prospective_risk`, public API) for one study of
  5,000 items x 30 configurations with 500 human labels and 4 hypotheses, next to
  ``test_hypotheses`` on the same cube.

**Cold** = the first fit in a fresh Python process whose compile caches are empty (a new
temporary ``PYTENSOR_FLAGS=compiledir=...``, ``HACKRISK_CACHE`` and ``NUMBA_CACHE_DIR``), as a
new user meets it (on Binder every call is a first call): it includes importing the sampler
stack, compiling and sampling.  **Warm** = a second fit of the same size in that process, with a
different seed.  Each model runs in its own fresh subprocess.  The data are simulated before the
timer starts.

Prints one JSON line. ``ratio`` = frequentist seconds / cold Bayesian seconds over both models
(peer cost / ours; the Bayesian models give posterior uncertainty, so a ratio < 1 is expected;
the targets are absolute: every ``seconds_*`` <= 60 on 2 cores, 0 divergences, R-hat <= 1.01
and bulk ESS >= 400 for every reported quantity).

Usage: ``python benchmarks/bayes_speed.py [--quick]`` (``--quick``: a tenth of the size).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

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
    """CPU seconds of this process over all its threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _diagnostics(idata) -> dict:
    from hackrisk.analysis._sampling import check_diagnostics

    a = idata.posterior.attrs
    if "diagnostics_r_hat_max" in a:
        return {"divergences": int(a["diagnostics_divergences"]), "r_hat_max": float(a["diagnostics_r_hat_max"]),
                "ess_bulk_min": float(a["diagnostics_ess_bulk_min"]),
                "worst": [a.get("diagnostics_worst_r_hat", ""), a.get("diagnostics_worst_ess_bulk", "")]}
    d = check_diagnostics(idata, warn=False)
    return {"divergences": d["divergences"], "r_hat_max": d["r_hat_max"], "ess_bulk_min": d["ess_bulk_min"],
            "worst": [d["worst"]["r_hat"], d["worst"]["ess_bulk"]]}


def child(which: str, quick: bool) -> dict:
    """Runs in a fresh process: data, then the cold fit, then a warm fit."""
    warnings.filterwarnings("ignore")
    from hackrisk.analysis import bayesian as B
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.analysis.risk import classify_errors

    out: dict = {}
    if which == "model1":
        cube, hyps = _paper_scale(quick)
        t0 = time.perf_counter()
        tests = classify_errors(test_hypotheses(cube, hyps))
        out["seconds_frequentist"] = time.perf_counter() - t0
        agg = B.aggregate_errors(tests, n_bins=8)
        out.update(groups=int(agg.sizes["group"]), tests=int(agg["n"].sum()),
                   hypotheses=int(hyps.sizes["hypothesis"]), tasks=int(cube.sizes["task"]))

        def fit(seed):
            return B.fit_risk_model(agg, rng=seed)
    else:
        cube, hyps, human = _study(quick)
        t0 = time.perf_counter()
        test_hypotheses(cube, hyps)
        out["seconds_frequentist"] = time.perf_counter() - t0
        out.update(items=int(cube.sizes["item"]),
                   configurations=int(np.prod([cube.sizes[d] for d in ("model", "prompt", "temperature")])))

        def fit(seed):
            idata = B.prospective_risk(cube, hyps, human=human, rng=seed)
            B.prospective_summary(idata)
            return idata
    for label, seed in (("cold", 0), ("warm", 1)):
        t0, c0 = time.perf_counter(), _cpu()
        idata = fit(seed)
        out[f"seconds_{label}"] = time.perf_counter() - t0
        out[f"cpu_seconds_{label}"] = _cpu() - c0
        out[f"diagnostics_{label}"] = _diagnostics(idata)
    out["sampler"] = str(idata.posterior.attrs.get("sampler", ""))
    out["draws"] = int(idata.posterior.sizes["draw"])
    out["chains"] = int(idata.posterior.sizes["chain"])
    return out


def _run_child(which: str, quick: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="hackrisk_cold_") as tmp:
        flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("compiledir")]
        if not any(f.startswith("blas__ldflags") for f in flags) and glob.glob("/usr/lib/*/libopenblas.so"):
            flags.append("blas__ldflags=-lopenblas")
        flags.append(f"compiledir={tmp}/pytensor")
        env = dict(os.environ, PYTENSOR_FLAGS=",".join(flags), HACKRISK_CACHE=f"{tmp}/hackrisk",
                   NUMBA_CACHE_DIR=f"{tmp}/numba", PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, __file__, "--child", which] + (["--quick"] if quick else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{which} subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the size")
    parser.add_argument("--child", choices=("model1", "model2"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.quick)))  # noqa: T201
        return

    load0 = os.getloadavg()[0]
    m1 = _run_child("model1", args.quick)
    m2 = _run_child("model2", args.quick)
    diags = [m[f"diagnostics_{k}"] for m in (m1, m2) for k in ("cold", "warm")]
    secs = {"seconds_model1_cold": m1["seconds_cold"], "seconds_model2_cold": m2["seconds_cold"],
            "seconds_model1_warm": m1["seconds_warm"], "seconds_model2_warm": m2["seconds_warm"]}
    div1 = max(m1["diagnostics_cold"]["divergences"], m1["diagnostics_warm"]["divergences"])
    div2 = max(m2["diagnostics_cold"]["divergences"], m2["diagnostics_warm"]["divergences"])
    r_hat = max(d["r_hat_max"] for d in diags)
    ess = min(d["ess_bulk_min"] for d in diags)
    met = (max(secs.values()) <= 60 and max(div1, 0) == 0 and max(div2, 0) == 0 and r_hat <= 1.01
           and ess >= 400)
    t_freq = m1["seconds_frequentist"] + m2["seconds_frequentist"]
    print(json.dumps({  # noqa: T201
        "benchmark": "bayes_speed",
        "ratio": round(t_freq / (m1["seconds_cold"] + m2["seconds_cold"]), 4),
        "target": "every seconds_* <= 60 on 2 cores (cold: fresh process, empty compile caches), "
                  "0 divergences, r_hat_max <= 1.01, ess_bulk_min >= 400",
        "met": bool(met),
        **{k: round(v, 2) for k, v in secs.items()},
        **{f"cpu_{k}": round(m[f"cpu_seconds_{c}"], 2) for k, m, c in (
            ("seconds_model1_cold", m1, "cold"), ("seconds_model2_cold", m2, "cold"),
            ("seconds_model1_warm", m1, "warm"), ("seconds_model2_warm", m2, "warm"))},
        "divergences_model1": div1,
        "divergences_model2": div2,
        "r_hat_max": round(r_hat, 4),
        "ess_bulk_min": round(ess, 1),
        "worst_model1": m1["diagnostics_cold"]["worst"],
        "worst_model2": m2["diagnostics_cold"]["worst"],
        "seconds_frequentist_model1_data": round(m1["seconds_frequentist"], 3),
        "seconds_frequentist_model2_data": round(m2["seconds_frequentist"], 3),
        "hypotheses": m1["hypotheses"], "tasks": m1["tasks"], "groups_model1": m1["groups"],
        "tests_model1": m1["tests"], "items_model2": m2["items"], "configurations_model2": m2["configurations"],
        "draws_model1": m1["draws"], "chains_model1": m1["chains"], "sampler_model1": m1["sampler"],
        "draws_model2": m2["draws"], "chains_model2": m2["chains"], "sampler_model2": m2["sampler"],
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min_start": round(load0, 2),
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "quick": bool(args.quick),
        "note": "cold = first fit in a fresh subprocess with empty pytensor/numba/hackrisk caches (imports, "
                "compile and sampling included), warm = the next fit in that process. divergences -1 = the "
                "sampler records none (exact draws). r_hat_max / ess_bulk_min: worst over every reported "
                "quantity of both models, cold and warm fits. Times are wall clock: compare "
                "load_average_* with the 2 cores; cpu_seconds_* = CPU time of the process over all "
                "threads (2 chains in parallel), a load-independent check: on 2 free cores the wall "
                "time is about the serial part plus half the sampling CPU.",
    }))


if __name__ == "__main__":
    main()
