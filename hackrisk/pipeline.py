"""Run a study end to end: load the data, annotate the multiverse, analyse, write the report.

The ``hackrisk`` command calls these functions; notebooks can too. Every step writes into the
study's output folder and can be re-run: annotation resumes from the store and the cache.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .study import Study, StudyError

__all__ = ["load_items", "annotate_study", "make_backend", "make_backends", "analyze_study", "report_study", "headline",
           "merge_human_labels", "correct_study", "suggest_study", "NoHypothesisError"]

logger = logging.getLogger(__name__)


class NoHypothesisError(StudyError):
    """No hypothesis could be formed on a study's items (too few items or classes per group)."""


def load_items(study: Study):
    """The study's human-labelled data as a :class:`hackrisk.datasets.TaskData` (subset applied)."""
    from . import datasets

    d = study.data
    if "dataset" in d:
        kwargs = {"source": d["source"]} if d.get("source") else {}
        try:
            td = datasets.load_task(d["dataset"], **kwargs)
        except ValueError as err:
            raise StudyError(f"{study.path}: [data] dataset: {err}") from err
    else:
        try:
            td = datasets.load_table(d["path"], text=d["text"], label=d.get("label"), id=d.get("id"),
                                     covariates=d.get("covariates"), task=study.task.get("name"),
                                     classes=study.task.get("labels"))
        except (KeyError, ValueError) as err:
            raise StudyError(f"{study.path}: [data]: {err}") from err
    labels = study.task.get("labels")
    unknown = sorted(set(td.items["truth"].dropna().astype(str)) - set(map(str, labels or td.classes)))
    if unknown:
        raise StudyError(f"{study.path}: [task] labels: the data hold human labels {unknown} outside "
                         f"{list(labels or td.classes)}. Fix: add them to labels, or recode the data.")
    items = td.items
    n = study.data.get("n_items")
    if n is not None and n < len(items):
        gen = np.random.default_rng(study.seed)
        items = items.iloc[np.sort(gen.choice(len(items), size=n, replace=False))].reset_index(drop=True)
    name = study.task.get("name", td.name)
    items = items.assign(task=name)
    from dataclasses import replace

    return replace(td, name=name, items=items, classes=tuple(labels or td.classes),
                   prompts=tuple(study.task.get("prompts", td.prompts)))


def annotate_study(study: Study, *, progress: bool = True, backends: dict[str, Any] | None = None,
                   items: Any = None) -> xr.Dataset:
    """Annotate the study's items under every model × prompt × temperature; resumable.

    ``backends`` (``{model name: backend}``, default made from ``[[models]]`` by
    :func:`make_backend`) and ``items`` (the :func:`hackrisk.study.check_inputs` result, default
    computed here) let a suite load its models and check its data once (:mod:`hackrisk.suite`).
    """
    from .study import check_inputs, check_output

    td = items if items is not None else check_inputs(study)  # every input check `hackrisk validate` runs
    check_output(study)
    from .annotate import TaskSpec, annotate

    spec = TaskSpec(td.name, list(td.classes), list(td.prompts), max_new_tokens=study.max_new_tokens)
    study.output.mkdir(parents=True, exist_ok=True)
    if backends is None:
        backends = make_backends(study)
    return annotate(td.items, spec, models=backends, temperatures=study.temperatures,
                    store=study.cube_path, mode=study.mode, batch_size=study.batch_size,
                    rng=study.seed, progress=progress, confidence=study.confidence)


def make_backends(study: Study) -> dict[str, Any]:
    """The study's annotation backends, ``{model name: backend}`` (see :func:`make_backend`)."""
    return {m["name"]: make_backend(m, seed=study.seed, batch_size=study.batch_size) for m in study.models}


def make_backend(model: dict[str, Any], *, seed: int = 0, batch_size: int = 16):
    """An annotation backend from a study's ``[[models]]`` entry.

    ``model = "default"`` is the embedded SmolLM2-135M-Instruct, ``"tiny-random"`` a seeded
    two-layer Llama with SmolLM2's tokenizer (for tests and dry runs), anything else a model folder
    or GGUF file; ``backend = "openai"`` talks to an OpenAI-compatible server.
    """
    from .annotate.backends.local import TransformersBackend

    name, spec = model["name"], str(model.get("model", "default"))
    if model.get("backend", "transformers") == "openai":
        from .annotate.backends.openai import OpenAIBackend

        return OpenAIBackend(spec, base_url=model["base_url"], api_key_env=model.get("api_key_env", "OPENAI_API_KEY"),
                             max_retries=int(model.get("max_retries", 6)),
                             name=name, concurrency=int(model.get("concurrency", 4)),
                             timeout=float(model.get("timeout", 60.0)), rng=seed)
    if spec == "default":
        return TransformersBackend.default(name=name, batch_size=batch_size)
    if spec == "tiny-random":
        from .annotate.models import tiny_random_model

        net, tok = tiny_random_model(seed=seed)
        return TransformersBackend(net, tok, name=name, batch_size=batch_size, max_length=512)
    return TransformersBackend.from_path(spec, name=name, batch_size=batch_size)


def analyze_study(study: Study, cube: xr.Dataset | None = None, *, lean: bool = False) -> dict[str, Any]:
    """Hypotheses, tests, errors, risks, effect-size curve, hacking and mitigation; saved to disk.

    Returns a dict of the result Datasets (keys ``hypotheses``, ``tests``, ``risk``,
    ``risk_by_model``, ``risk_by_prompt``, ``risk_by_temperature``, ``effect_curve``, ``hacking``,
    ``hacking_curve``, ``quality``, with budgets ``mitigation``, and with ``[analysis] bayes = true``
    ``bayes_risk_curve`` and ``bayes_prob_riskier``). ``lean=True`` (each task of a suite, whose
    cross-task analysis needs no more) computes and saves only ``hypotheses``, ``tests``, ``risk``,
    ``hacking`` and ``quality``: no risk by model / prompt / temperature, curves, mitigation, Bayesian
    fits or human-label corrections. Raises :class:`NoHypothesisError` when no hypothesis can be
    formed on the items. With a ``[human] labels`` file the labels
    are merged into the cube first (:func:`hackrisk.human.add_human_labels`; the human side of
    every test uses the labelled items), and the corrected conclusions of each ``[human] methods``
    entry are added as ``corrected_<method>`` (:func:`hackrisk.analysis.mitigation.correct`)
    with the per-hypothesis verdicts as ``robust`` (a DataFrame,
    :func:`hackrisk.analysis.robust.robust_conclusions`).
    """
    from .analysis import frequentist, risk
    from .hypotheses import generate_hypotheses
    from .io import open_cube

    if cube is None:
        if not study.cube_path.exists():
            raise StudyError(f"{study.path}: no annotations at {study.cube_path}. "
                             "Fix: run `hackrisk annotate` on this study first.")
        cube = open_cube(study.cube_path, lazy=False)
    from .study import check_annotations, check_budgets

    check_annotations(study, cube)  # the store belongs to the current data and is complete (or allowed not to be)
    if study.human:
        cube = merge_human_labels(study, cube)
    out = study.output
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    hyp_opts = {k: v for k, v in study.hypotheses.items() if k in ("groupings", "custom", "top_k", "n_keywords")}
    conventions = str(study.analysis.get("conventions", "hackrisk"))
    hyps = generate_hypotheses(cube, rng=study.seed, conventions=conventions, **hyp_opts)
    if hyps.sizes["hypothesis"] == 0:
        raise NoHypothesisError(f"{study.path}: no hypothesis could be formed (see the skip reasons: "
                                f"{hyps.attrs.get('skipped', [])[:3]}). Fix: use more items or other groupings.")
    tests = frequentist.test_hypotheses(cube, hyps, alpha=study.alpha, conventions=conventions)
    n_boot = int(study.analysis.get("n_boot", 500))
    res: dict[str, Any] = {"hypotheses": hyps, "tests": risk.classify_errors(tests)}
    res["risk"] = risk.risk(tests, n_boot=n_boot, rng=study.seed)
    res["hacking"] = risk.hacking(tests)
    res["quality"] = risk.annotation_quality(cube, conventions=conventions)
    if not lean:  # the extras a suite task does not need
        for dim in ("model", "prompt", "temperature"):
            res[f"risk_by_{dim}"] = risk.risk(tests, by=dim, n_boot=n_boot, rng=study.seed)
        res["effect_curve"] = risk.risk_by_effect_size(tests, n_boot=n_boot, rng=study.seed)
        res["hacking_curve"] = risk.hacking_curve(tests, rng=study.seed)
        budgets = check_budgets(study, int((cube["truth"] >= 0).sum("item").min()))  # never dropped silently
        if budgets:
            from .analysis import mitigation

            res["mitigation"] = mitigation.evaluate_mitigation(
                cube, hyps, budgets=budgets, n_draws=int(study.analysis.get("n_draws", 10)),
                alpha=study.alpha, tests=tests, rng=study.seed)
        if study.human:
            res.update(correct_study(study, cube, hyps))
        if study.analysis.get("bayes"):
            res.update(_bayes(res["tests"], seed=study.seed))
            res.update(_prospective(cube, hyps, seed=study.seed))
    logger.info("analysis%s took %.1f s", " (lean)" if lean else "", time.perf_counter() - t0)
    _save_results(res, out)
    (out / "headline.json").write_text(json.dumps(headline(res), indent=2))
    return res


def merge_human_labels(study: Study, cube: xr.Dataset) -> xr.Dataset:
    """The cube with the study's ``[human] labels`` file merged in (errors name the file's line in the study)."""
    from .human import add_human_labels

    tasks = [str(t) for t in cube["task"].values]
    try:
        return add_human_labels(cube, study.human["labels"], task=tasks[0] if len(tasks) == 1 else None)
    except ValueError as err:
        raise StudyError(f"{study.human.get('where', study.path)}: [human] labels: {err}") from err


def correct_study(study: Study, cube: xr.Dataset, hyps: xr.Dataset) -> dict[str, Any]:
    """Corrected conclusions for each ``[human] methods`` entry, and the per-hypothesis verdicts.

    The inclusion probabilities of the labels file (column ``pi``, cube variable ``human_pi``)
    are used when the file has them; otherwise the labelled items are taken as a simple random
    sample. The verdicts (key ``robust``) come from the first valid method (PPI++ by default),
    compared with the human-only conclusion.
    """
    from .analysis.mitigation import correct
    from .analysis.robust import robust_conclusions
    from .human import PI_VAR

    pi = None
    if PI_VAR in cube:
        vals = np.asarray(cube[PI_VAR].values)
        if np.isfinite(vals).any():
            pi = PI_VAR
    out: dict[str, Any] = {}
    for method in study.human["methods"]:
        try:
            out[f"corrected_{method}"] = correct(cube, hyps, method=method, pi=pi, alpha=study.alpha,
                                                 rng=study.seed)
        except ValueError as err:
            raise StudyError(f"{study.human.get('where', study.path)}: [human] methods: {method}: {err}") from err
    human = out.get("corrected_human")
    if human is None:
        human = correct(cube, hyps, method="human", pi=pi, alpha=study.alpha, rng=study.seed)
    main = next((m for m in study.human["methods"] if m not in ("human", "substitution")), "human")
    corrected = out.get(f"corrected_{main}", human)
    out["robust"] = robust_conclusions(corrected, human=human, cube=cube, hypotheses=hyps)
    return out


def suggest_study(study: Study, *, n: int, scheme: str = "active", output: str | Path | None = None,
                  cube: xr.Dataset | None = None) -> tuple[Path, pd.DataFrame]:
    """Write the items to label next as a CSV (``hackrisk suggest``); returns its path and the table.

    Hypotheses are formed on all items (``min_labelled=0``), so items are suggested for every
    group, also those without a human label yet. The labels of ``[human] labels`` (if any) count
    as collected: they are never suggested again. The CSV has ``item_id``, ``label`` (empty: fill
    in the class name), ``pi`` (the item's inclusion probability), ``task``, ``status`` and
    ``text``. When earlier labels exist, their rows are included too (``status = "labelled"``,
    label filled in) with the inclusion probability updated for this round
    (:func:`hackrisk.analysis.mitigation.suggest_items`), so the filled-in file is the study's next
    ``[human] labels`` file.
    """
    from .analysis.mitigation import suggest_items
    from .hypotheses import generate_hypotheses
    from .io import open_cube

    if cube is None:
        if not study.cube_path.exists():
            raise StudyError(f"{study.path}: no annotations at {study.cube_path}. "
                             "Fix: run `hackrisk annotate` on this study first.")
        cube = open_cube(study.cube_path, lazy=False)
    if study.human:
        cube = merge_human_labels(study, cube)
    hyp_opts = {k: v for k, v in study.hypotheses.items() if k in ("groupings", "custom", "top_k", "n_keywords")}
    hyps = generate_hypotheses(cube, rng=study.seed, min_labelled=0,
                               conventions=str(study.analysis.get("conventions", "hackrisk")), **hyp_opts)
    if hyps.sizes["hypothesis"] == 0:
        raise StudyError(f"{study.path}: no hypothesis could be formed, so there is nothing to plan the "
                         "labelling for. Fix: use more items or other groupings.")
    truth = np.asarray(cube["truth"].values)
    n_done = int((truth >= 0).sum())
    df = suggest_items(cube, hyps, n, scheme=scheme, rng=[study.seed, n_done])
    tasks = [str(t) for t in cube["task"].values]
    ids = np.asarray(cube["item_id"].values).astype(str)
    texts = np.asarray(cube["text"].values)
    names = np.asarray(cube["class_name"].values)
    pos = {(t, i): k for t in range(len(tasks)) for k, i in enumerate(ids[t]) if i}

    def text_of(task: str, item: str) -> str:
        t = tasks.index(task)
        return str(texts[t, pos[(t, item)]])

    new = pd.DataFrame({"item_id": df["item_id"].astype(str), "label": "", "pi": df["pi"],
                        "task": df["task"].astype(str), "status": "to label"})
    new["text"] = [text_of(t, i) for t, i in zip(new["task"], new["item_id"], strict=True)]
    old = df.attrs.get("labelled_pi")
    frames = []
    if isinstance(old, pd.DataFrame) and len(old):
        old = old.copy()
        lab = []
        for t_name, i in zip(old["task"].astype(str), old["item_id"].astype(str), strict=True):
            t = tasks.index(t_name)
            lab.append(str(names[t, truth[t, pos[(t, i)]]]))
        frames.append(pd.DataFrame({"item_id": old["item_id"].astype(str), "label": lab, "pi": old["pi"],
                                    "task": old["task"].astype(str), "status": "labelled",
                                    "text": [text_of(t, i) for t, i in zip(old["task"], old["item_id"], strict=True)]}))
    frames.append(new)
    table = pd.concat(frames, ignore_index=True)
    if n_done and not (isinstance(old, pd.DataFrame) and len(old) == n_done):
        logger.warning("suggest: %d item(s) already have a human label but no updated inclusion probability "
                       "(they lie outside every hypothesis' groups).", n_done - (0 if old is None else len(old)))
    path = Path(output) if output is not None else study.output / "to_label.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path, table


def _bayes(tests: xr.Dataset, *, seed: int) -> dict[str, Any]:
    """Posterior risk curves and P(model riskier), if the [bayes] extra is installed."""
    import importlib.util

    if importlib.util.find_spec("pymc") is None:
        logger.warning("[analysis] bayes = true, but PyMC is not installed (pip install 'hackrisk[bayes]'); skipped.")
        return {}
    from .analysis import bayesian

    idata = bayesian.fit_risk_model(bayesian.aggregate_errors(tests), rng=seed)
    out = {"bayes_risk_curve": bayesian.risk_curves(idata)}
    if tests.sizes["model"] > 1:
        out["bayes_prob_riskier"] = bayesian.prob_riskier(idata).to_dataset(name="prob_riskier")
    return out


def _prospective(cube: xr.Dataset, hyps: xr.Dataset, *, seed: int) -> dict[str, Any]:
    """Prospective risk of a one-task study; where every item has a human label, its calibration
    on the study's own data (hackrisk.analysis.prospective.calibration_study)."""
    import importlib.util

    from .analysis import prospective as PR

    if cube.sizes["task"] != 1 or importlib.util.find_spec("arviz") is None:
        return {}
    out: dict[str, Any] = {"prospective_summary": PR.prospective_summary(
        PR.prospective_risk(cube, hyps, rng=seed))}
    truth = cube["truth"].isel(task=0).values[np.asarray(cube["item_id"].isel(task=0).values) != ""]
    budgets = tuple(b for b in (50, 100, 150, 250, 300) if b <= 0.85 * truth.size)
    if (truth >= 0).all() and budgets:
        cal = PR.calibration_study(cube, hyps, n_human=budgets, reps=5, rng=seed)
        out["prospective_reliability"] = cal["reliability"]
        out["prospective_scores"] = cal["scores"]
    return out


def _save_results(res: dict[str, Any], out: Path) -> None:
    tables = out / "tables"
    tables.mkdir(exist_ok=True)
    for key, value in res.items():
        if isinstance(value, xr.Dataset):
            clean = value.copy()
            clean.attrs = {k: (int(v) if isinstance(v, (bool, np.bool_)) else
                               json.dumps(v, default=str) if not isinstance(v, (str, int, float)) else v)
                           for k, v in value.attrs.items()}
            for name in list(clean.variables):
                clean[name].attrs = {}
                if clean[name].dtype == object:
                    clean[name] = clean[name].astype(str)
                if clean[name].dtype == bool:
                    clean[name] = clean[name].astype(np.int8)
            clean.to_netcdf(out / f"{key}.nc", engine="h5netcdf")
            if key != "hypotheses" and clean.sizes.get("item", 0) == 0:
                try:
                    clean.to_dataframe().to_csv(tables / f"{key}.csv")
                except ValueError:
                    pass
        elif isinstance(value, pd.DataFrame):
            value.to_csv(tables / f"{key}.csv")
            _table_netcdf(value, out / f"{key}.nc")


def _table_netcdf(df: pd.DataFrame, path: Path) -> None:
    """A result table as netCDF too: one ``row`` dimension, text columns as strings, attrs as JSON."""
    flat = df.reset_index()
    ds = xr.Dataset({str(c): ("row", flat[c].astype(str).to_numpy() if flat[c].dtype == object
                              else flat[c].astype(np.int8).to_numpy() if flat[c].dtype == bool
                              else flat[c].to_numpy()) for c in flat.columns})
    ds.attrs = {str(k): (v if isinstance(v, (str, int, float)) and not isinstance(v, bool)
                         else json.dumps(v, default=str)) for k, v in df.attrs.items()}
    ds.to_netcdf(path, engine="h5netcdf")


def headline(res: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a result set: risks with CIs and hacking success rates."""
    r = res["risk"]
    out: dict[str, Any] = {}
    for name in ("risk_balanced", "risk_pooled", "type_i", "type_ii", "type_s"):
        if name in r:
            v = r[name]
            out[name] = {c: round(float(v.sel(ci=c)), 4) for c in v["ci"].values}
    tests = res["tests"]
    out["n_hypotheses"] = int(tests.sizes["hypothesis"])
    n_total = int(np.prod([tests.sizes[d] for d in ("model", "prompt", "temperature")]))
    out["n_configurations"] = n_total
    if "annotated" in tests:  # only configurations with every label count (the rest were left out)
        out["n_configurations"] = int(tests["annotated"].any("hypothesis").sum())
        if out["n_configurations"] < n_total:
            out["n_configurations_total"] = n_total
    out["human_significant_share"] = round(float((tests["human_conclusion"] != 0).mean()), 4)
    rob = res.get("robust")
    if isinstance(rob, pd.DataFrame):
        out["corrected_method"] = str(rob.attrs.get("method", ""))
        verdicts = rob["verdict"].astype(str).str.split(":").str[0]
        out["verdicts"] = {str(k): int(v) for k, v in verdicts.value_counts().sort_index().items()}

    hk = res.get("hacking")
    if hk is not None:
        for name in ("fabricate", "hide", "reverse"):
            if f"{name}_rate" in hk.attrs:
                out[f"{name}_rate"] = round(float(hk.attrs[f"{name}_rate"]), 4)
            elif name in hk:
                out[f"{name}_rate"] = round(float(hk[name].mean()), 4)
    return out


def _prospective_report(res: dict[str, Any]) -> dict[str, Any] | None:
    if "prospective_summary" not in res:
        return None
    cal = None
    if "prospective_reliability" in res:
        cal = {"reliability": res["prospective_reliability"], "scores": res["prospective_scores"]}
    return {"summary": res["prospective_summary"], "calibration": cal}


def report_study(study: Study, res: dict[str, Any] | None = None, cube: xr.Dataset | None = None) -> Path:
    """Write PNG figures and the self-contained HTML report into the study's output folder."""
    from . import plots, report
    from .io import open_cube

    if cube is None and study.cube_path.exists():
        cube = open_cube(study.cube_path, lazy=False)
    if res is None:
        res = analyze_study(study, cube)
    figs = study.output / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, fn in (("error_bars", plots.plot_error_bars), ("risk_curve", plots.plot_risk_curve),
                     ("risk_heatmap", plots.plot_risk_heatmap), ("hacking", plots.plot_hacking),
                     ("specification_curve", plots.plot_specification_curve)):
        ax = fn(res["tests"])
        ax.figure.savefig(figs / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
    if cube is not None and study.human:
        cube = merge_human_labels(study, cube)
    corrected = {k.removeprefix("corrected_"): v for k, v in res.items() if k.startswith("corrected_")}
    return report.write_report(res["tests"], study.output / "report.html", cube=cube,
                               hypotheses=res["hypotheses"], risk=res["risk"],
                               mitigation=res.get("mitigation"), title=f"hackrisk report: {study.name}",
                               n_boot=int(study.analysis.get("n_boot", 500)), rng=study.seed,
                               corrected=corrected or None, robust=res.get("robust"),
                               prospective=_prospective_report(res))
