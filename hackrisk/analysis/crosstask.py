"""Risk task by task, and your own task placed among the paper's.

The paper's findings are statements across tasks: risk differs from task to task. This module turns
the test results of one or many tasks (for instance the per-task ``tests.nc`` written by ``hackrisk
analyze`` for each study of :mod:`hackrisk.suite`) into

* one tests Dataset holding every task (:func:`combine_tasks`), which every analysis of
  :mod:`hackrisk.analysis.risk`, the Bayesian risk model and the explorer accept;
* one table of Type I, II, S and M risk per task with bootstrap intervals (:func:`task_risk_table`,
  :func:`hackrisk.analysis.risk.risk` with ``by="task"``);

and places a user's task (its cube, e.g. from :func:`hackrisk.datasets.load_table` and
``annotate``, or its test results) among them in that table and a forest plot (:func:`place_task`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import CONFIG_DIMS

log = logging.getLogger(__name__)

__all__ = [
    "combine_tasks",
    "task_risk_table",
    "place_task",
    "task_quality",
    "quality_risk_table",
    "quality_risk_relation",
    "task_curves",
    "suite_summary",
    "plot_task_risk",
    "plot_quality_risk",
    "plot_task_curves",
    "plot_variance",
]

_RATES = ("type_i", "type_ii", "type_s", "type_m_mean", "risk_pooled", "risk_balanced")


# the fill of test_hypotheses for a configuration without labels (docs/results.md): every statistic
# NaN, conclusion 0 with annotated False (so classify_errors gives -1 and every risk skips it)
_NOT_ANNOTATED = {"conclusion": 0, "error": -1, "annotated": False, "zero_decided": False,
                  "unparseable_excluded": False}


def _fill_value(name: str, da: xr.DataArray) -> Any:
    if name in _NOT_ANNOTATED:
        return _NOT_ANNOTATED[name]
    if da.dtype == bool:
        return False
    return np.nan


def combine_tasks(results: Mapping[str, xr.Dataset] | Sequence[xr.Dataset]) -> xr.Dataset:
    """The test results of several tasks as one tests Dataset.

    Parameters
    ----------
    results
        ``{task: tests}``, each the output of
        :func:`hackrisk.analysis.frequentist.test_hypotheses` (the ``tests.nc`` of ``hackrisk
        analyze``; :func:`hackrisk.analysis.risk.classify_errors` output works too). The key names
        the task: a Dataset holding one task gets the key as its ``task`` coordinate (whatever it
        held before); one holding several tasks keeps them as ``"<key>:<task>"``. A plain
        sequence keeps the Datasets' own task names.

    Returns
    -------
    xarray.Dataset
        The hypotheses of every task concatenated (``hypothesis`` renumbered ``0..H-1``; the
        original number is kept in the coordinate ``task_hypothesis``), the configuration dims
        ``model``, ``prompt``, ``temperature`` outer-joined (sorted union, in first-seen order for
        model and prompt). Where a task lacks a configuration (e.g. fewer prompts), every LLM-side
        variable is filled as :func:`~hackrisk.analysis.frequentist.test_hypotheses` fills a
        configuration without labels: statistics NaN, ``conclusion`` 0 with ``annotated`` False
        (``error`` -1), so no risk, error or curve reads a conclusion there. Integer LLM-side
        variables other than ``conclusion`` / ``error`` become float with NaN there. attrs: those
        shared by every input (``alpha``, ``conventions``, ...), ``tasks``, ``n_not_annotated`` /
        ``not_annotated`` (summed / joined), ``n_filled`` / ``filled``, the (task, configuration)
        pairs added by the join (``task/model/prompt/temperature``), and ``dropped_coords``:
        non-index configuration coordinates (e.g. a simulated ``nominal_accuracy`` on ``model``)
        whose value for one level differs between tasks, left out with a logged warning.

    Raises
    ------
    ValueError
        No input, a Dataset that is not test results, a task name used twice, different
        ``alpha`` / ``conventions`` / ``zero_rule`` (conclusions drawn under different rules do
        not pool), or a model whose ``identity`` (name and weights) differs between tasks.
    """
    if isinstance(results, xr.Dataset):
        results = [results]
    items = [(str(k), v) for k, v in results.items()] if isinstance(results, Mapping) else \
        [(None, v) for v in results]
    if not items:
        raise ValueError("combine_tasks: no test results given. Fix: pass {task: tests} with at least one task.")
    renamed: list[xr.Dataset] = []
    for key, ds in items:
        where = f"results[{key!r}]" if key is not None else "results"
        if not isinstance(ds, xr.Dataset) or "conclusion" not in ds or "human_conclusion" not in ds:
            raise ValueError(f"combine_tasks: {where} is not a tests Dataset (needs 'conclusion' and "
                             "'human_conclusion'). Fix: pass the output of test_hypotheses / the tests.nc of "
                             "`hackrisk analyze`.")
        missing = [d for d in ("hypothesis", *CONFIG_DIMS) if d not in ds["conclusion"].dims]
        if missing:
            raise ValueError(f"combine_tasks: {where}['conclusion'] lacks the dims {missing}. Fix: pass the "
                             "output of test_hypotheses (dims hypothesis, model, prompt, temperature).")
        flat = [v for v in ds.data_vars if "hypothesis" not in ds[v].dims]
        if flat:
            raise ValueError(f"combine_tasks: {where} has variables without a 'hypothesis' dim {flat}. Fix: "
                             "drop them (ds.drop_vars(...)); only per-hypothesis results are combined.")
        if "task" in ds.coords:
            names = np.asarray(ds["task"].values).astype(str)
        else:
            names = np.full(ds.sizes["hypothesis"], key or "task", dtype=object)
        if key is not None:
            names = np.full(names.shape, key, dtype=object) if len(set(names)) <= 1 else \
                np.array([f"{key}:{t}" for t in names], dtype=object)
        ds = ds.assign_coords(task=("hypothesis", names.astype(object)),
                              task_hypothesis=("hypothesis", ds["hypothesis"].values))
        renamed.append(ds.drop_vars("hypothesis"))
    seen: dict[str, int] = {}
    for k, ds in enumerate(renamed):
        for t in dict.fromkeys(ds["task"].values.tolist()):
            if t in seen:
                raise ValueError(f"combine_tasks: task {t!r} appears in input {seen[t]} and input {k}. Fix: give "
                                 "each task's results once, under distinct keys.")
            seen[t] = k
    for name in ("alpha", "conventions", "zero_rule", "method"):
        vals = {str(ds.attrs[name]) for ds in renamed if name in ds.attrs}
        if len(vals) > 1:
            raise ValueError(f"combine_tasks: the inputs were tested with different {name} {sorted(vals)}; their "
                             f"conclusions do not pool. Fix: re-run `hackrisk analyze` with one {name} for every task.")
    # the union of the configurations, with their non-index coordinates (e.g. the model identity)
    union: dict[str, list] = {}
    extra: dict[str, tuple[str, dict]] = {}
    conflicts: set[str] = set()
    for dim in CONFIG_DIMS:
        vals: list = []
        for ds in renamed:
            vals.extend(v for v in ds[dim].values.tolist() if v not in vals)
        union[dim] = sorted(vals) if dim == "temperature" else vals
        for ds in renamed:
            for cname, coord in ds.coords.items():
                if cname == dim or coord.dims != (dim,):
                    continue
                table = extra.setdefault(cname, (dim, {}))[1]
                for level, value in zip(ds[dim].values.tolist(), coord.values.tolist()):
                    if level in table and not _same(table[level], value):
                        if cname == "identity" and _same_weights(table[level], value):
                            continue  # one model whose backend was named differently in two runs
                        if cname == "identity":
                            raise ValueError(f"combine_tasks: {dim} {level!r} is {table[level]!r} in one task and "
                                             f"{value!r} in another (two models under one name). Fix: give the two "
                                             f"a different {dim} name.")
                        conflicts.add(cname)
                    table[level] = value
    if conflicts:
        log.warning("combine_tasks: the coordinates %s differ between tasks for one configuration (a per-task "
                    "fact such as a nominal accuracy); they are left out of the combined tests.", sorted(conflicts))
    joined, filled = [], []
    for ds in renamed:
        ds = ds.drop_vars(list(extra), errors="ignore")
        have = {d: set(ds[d].values.tolist()) for d in CONFIG_DIMS}
        task_names = list(dict.fromkeys(ds["task"].values.tolist()))
        for cfg in itertools.product(*(union[d] for d in CONFIG_DIMS)):
            if not all(v in have[d] for d, v in zip(CONFIG_DIMS, cfg, strict=True)):
                filled.extend("/".join(map(str, (task, *cfg))) for task in task_names)
        out = {}
        for name, da in ds.data_vars.items():
            if any(d in da.dims for d in CONFIG_DIMS):
                fill = _fill_value(name, da)
                if np.issubdtype(da.dtype, np.integer) and name not in _NOT_ANNOTATED:
                    da = da.astype(np.float64)
                da = da.reindex({d: union[d] for d in CONFIG_DIMS if d in da.dims}, fill_value=fill)
                if name in _NOT_ANNOTATED:
                    da = da.astype(ds[name].dtype)
            out[name] = da
        joined.append(xr.Dataset(out, coords={c: v for c, v in ds.coords.items() if c not in CONFIG_DIMS},
                                 attrs=ds.attrs))
    combined = xr.concat(joined, dim="hypothesis", data_vars="all", coords="different", compat="equals",
                         join="outer", combine_attrs="drop_conflicts")
    combined = combined.assign_coords(hypothesis=np.arange(combined.sizes["hypothesis"]))
    for cname, (dim, table) in extra.items():
        if cname in conflicts:
            continue
        combined = combined.assign_coords({cname: (dim, [table.get(v, _missing(table)) for v in union[dim]])})
    combined = combined.transpose("hypothesis", *CONFIG_DIMS, ...)
    combined.attrs.update({
        "tasks": list(seen),
        "n_not_annotated": int(sum(int(ds.attrs.get("n_not_annotated", 0)) for ds in renamed)),
        "not_annotated": [s for ds in renamed for s in _as_str_list(ds.attrs.get("not_annotated", []))],
        "n_filled": len(filled),
        "filled": filled,
        "dropped_coords": sorted(conflicts),
    })
    return combined


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def _same_weights(a: Any, b: Any) -> bool:
    """Whether two model identities (``name@revision``) carry one SHA-256 of the same weights."""
    ra, rb = str(a).rpartition("@")[2], str(b).rpartition("@")[2]
    return ra == rb and len(ra) == 64 and all(c in "0123456789abcdef" for c in ra)


def _missing(table: Mapping[Any, Any]) -> Any:
    sample = next(iter(table.values()), "")
    return "" if isinstance(sample, str) else np.nan


def _as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in np.atleast_1d(value)]


def _as_tests(ds: xr.Dataset, alpha: float) -> xr.Dataset:
    if "conclusion" in ds and "human_conclusion" in ds:
        return ds
    if "label" in ds:  # a label cube: the default hypotheses, tested
        from ..analysis.frequentist import test_hypotheses
        from ..hypotheses import generate_hypotheses

        return test_hypotheses(ds, generate_hypotheses(ds), alpha=alpha)
    raise ValueError("place_task: expected a label cube (variable 'label') or test results (variables "
                     "'conclusion', 'human_conclusion'), got variables "
                     f"{sorted(ds.data_vars)[:8]}. Fix: pass the cube or the output of test_hypotheses / "
                     "the tests.nc of `hackrisk analyze`.")


def _items(results: xr.Dataset | Mapping[str, xr.Dataset] | Sequence[xr.Dataset]) -> list[tuple[str, xr.Dataset]]:
    if isinstance(results, xr.Dataset):
        return [("", results)]
    if isinstance(results, Mapping):
        return [(str(k), v) for k, v in results.items()]
    return [("", v) for v in results]


def task_risk_table(
    results: xr.Dataset | Mapping[str, xr.Dataset] | Sequence[xr.Dataset],
    *,
    metric: str = "risk_balanced",
    n_boot: int = 200,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Risk per task, with intervals, ordered by ``metric`` (highest first).

    Parameters
    ----------
    results
        Test results (or label cubes, tested with the default hypotheses): one Dataset holding any
        number of tasks, a list of them, or a mapping ``{source: Dataset}`` (the key is kept in the
        column ``source``).
    metric
        The rate to order by: ``type_i``, ``type_ii``, ``type_s``, ``type_m_mean``, ``risk_pooled``
        or ``risk_balanced``.
    n_boot, ci, rng
        Bootstrap of :func:`hackrisk.analysis.risk.risk` (hypotheses resampled within each task).

    Returns
    -------
    pandas.DataFrame
        One row per task: ``task, source``, for every rate its estimate and ``<rate>_lower`` /
        ``<rate>_upper``, ``n_null``, ``n_significant``, ``n_conclusions``, and ``rank`` (1 = the
        highest ``metric``).
    """
    from .risk import risk

    if metric not in _RATES:
        raise ValueError(f"task_risk_table: metric={metric!r} is not one of {list(_RATES)}. Fix: pick one.")
    gen = np.random.default_rng(rng)
    rows = []
    for source, ds in _items(results):
        tests = _as_tests(ds, alpha)
        r = risk(tests, by="task", n_boot=n_boot, ci=ci, rng=gen)
        for task in r["task"].values:
            row: dict[str, Any] = {"task": str(task), "source": source}
            for v in _RATES:
                if v in r:
                    cell = r[v].sel(task=task)
                    row[v] = float(cell.sel(ci="estimate"))
                    row[f"{v}_lower"] = float(cell.sel(ci="lower"))
                    row[f"{v}_upper"] = float(cell.sel(ci="upper"))
            for v in ("n_null", "n_significant", "n_conclusions"):
                if v in r:
                    row[v] = int(r[v].sel(task=task))
            rows.append(row)
    if not rows:
        raise ValueError("task_risk_table: no tasks in the results. Fix: pass the test results of at least one task.")
    table = pd.DataFrame(rows).sort_values(metric, ascending=False, na_position="last", kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)


def place_task(
    yours: xr.Dataset,
    suite: xr.Dataset | Mapping[str, xr.Dataset] | Sequence[xr.Dataset],
    *,
    metric: str = "risk_balanced",
    label: str = "yours",
    n_boot: int = 200,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
    alpha: float = 0.05,
    ax: Any = None,
) -> tuple[pd.DataFrame, Any]:
    """Place your task among the suite's tasks: one table and one forest plot.

    Parameters
    ----------
    yours
        Your task's label cube (e.g. ``empty_cube(load_table(...))`` after ``annotate``; its default
        hypotheses are generated and tested) or its test results.
    suite
        The suite's test results (one Dataset, a list, or ``{source: Dataset}``), e.g. the
        ``tests.nc`` of every task study written by :func:`hackrisk.suite.write_suite`.
    metric
        The rate shown and ordered by (see :func:`task_risk_table`).
    label
        The ``source`` given to your task's rows (its task names are kept).
    ax
        A matplotlib axes to draw on (default: a new figure).

    Returns
    -------
    table : pandas.DataFrame
        :func:`task_risk_table` of the suite's and your tasks, with ``yours`` (bool) and
        ``share_below`` (for your rows: the share of the suite's tasks with a lower ``metric``).
    figure : matplotlib.figure.Figure
        Estimates with intervals, one row per task, ordered; your task highlighted.
    """
    suite_items = _items(suite)
    combined = {f"suite{k}:{s}": ds for k, (s, ds) in enumerate(suite_items)}
    combined[f"__yours__{label}"] = yours
    table = task_risk_table(combined, metric=metric, n_boot=n_boot, ci=ci, rng=rng, alpha=alpha)
    table["yours"] = table["source"] == f"__yours__{label}"
    table["source"] = [label if y else s.split(":", 1)[1] for s, y in zip(table["source"], table["yours"])]
    theirs = table.loc[~table["yours"], metric].to_numpy(float)
    table["share_below"] = [float(np.mean(theirs < v)) if y and len(theirs) else np.nan
                            for v, y in zip(table[metric], table["yours"])]
    fig = _forest(table, metric, ax)
    return table, fig


def _forest(table: pd.DataFrame, metric: str, ax: Any) -> Any:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(table) + 1.2))
    else:
        fig = ax.figure
    y = np.arange(len(table))[::-1]
    est = table[metric].to_numpy(float)
    lo = table[f"{metric}_lower"].to_numpy(float)
    hi = table[f"{metric}_upper"].to_numpy(float)
    err = np.vstack([np.where(np.isfinite(lo), est - lo, 0), np.where(np.isfinite(hi), hi - est, 0)])
    colors = np.where(table["yours"].to_numpy(bool), "#d62728", "#1f77b4")
    for k in range(len(table)):
        ax.errorbar(est[k], y[k], xerr=err[:, k:k + 1], fmt="o", color=colors[k], capsize=2)
    names = [f"{t} ({s})" if s else t for t, s in zip(table["task"], table["source"])]
    ax.set_yticks(y, names)
    ax.set_xlabel(f"{metric.replace('_', ' ')} (estimate, {table.attrs.get('ci', '95%')} bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# annotation quality against risk, task x configuration
# ---------------------------------------------------------------------------------------------
_QUALITY = ("accuracy", "macro_f1", "weighted_f1", "kappa")
_CELL_RATES = ("risk_pooled", "type_i", "type_ii", "type_s", "risk_balanced")


def _as_combined(results: xr.Dataset | Mapping[str, xr.Dataset] | Sequence[xr.Dataset]) -> xr.Dataset:
    if isinstance(results, xr.Dataset):
        if "conclusion" not in results or "human_conclusion" not in results:
            raise ValueError("expected test results (variables 'conclusion', 'human_conclusion'). Fix: pass the "
                             "output of test_hypotheses / combine_tasks, or {task: tests}.")
        return results
    return combine_tasks(results)


def task_quality(cubes: Mapping[str, xr.Dataset], *, conventions: str = "hackrisk") -> xr.Dataset:
    """Annotation quality of every task's configurations, as one Dataset on (task, model, prompt, temperature).

    Parameters
    ----------
    cubes
        ``{task: cube}``: each task's label cube, or its
        :func:`hackrisk.analysis.risk.annotation_quality` output (what a stored result keeps instead
        of the cube). The key names the task, as in :func:`combine_tasks`; a cube holding several
        tasks keeps them as ``"<key>:<task>"``.
    conventions
        Passed to ``annotation_quality`` for cubes.

    Returns
    -------
    xarray.Dataset
        ``accuracy``, ``macro_f1``, ``weighted_f1``, ``kappa`` and ``n_items`` (float), outer-joined
        over the tasks' configurations (NaN where a task lacks one).
    """
    from .risk import annotation_quality

    if not isinstance(cubes, Mapping) or not cubes:
        raise ValueError("task_quality: expected {task: cube} with at least one task. Fix: pass the label cube "
                         "(or its annotation_quality output) of each task under the task's name.")
    parts = []
    for key, ds in cubes.items():
        if not isinstance(ds, xr.Dataset):
            raise ValueError(f"task_quality: cubes[{key!r}] is a {type(ds).__name__}, not a Dataset. Fix: pass the "
                             "task's label cube or its annotation_quality output.")
        if "label" in ds:
            q = annotation_quality(ds, conventions=conventions)
        elif "accuracy" in ds and "macro_f1" in ds:
            q = ds
        else:
            raise ValueError(f"task_quality: cubes[{key!r}] is neither a label cube (variable 'label') nor an "
                             f"annotation_quality result (variables 'accuracy', 'macro_f1'); it has "
                             f"{sorted(ds.data_vars)[:8]}. Fix: pass the task's cube or annotation_quality(cube).")
        keep = [v for v in (*_QUALITY, "n_items") if v in q]
        q = q[keep].reset_coords(drop=True).astype(np.float64)
        tasks = [str(t) for t in q["task"].values]
        q = q.assign_coords(task=[str(key)] if len(tasks) == 1 else [f"{key}:{t}" for t in tasks])
        parts.append(q)
    names = [t for q in parts for t in q["task"].values.tolist()]
    dup = sorted({t for t in names if names.count(t) > 1})
    if dup:
        raise ValueError(f"task_quality: tasks {dup} are given twice. Fix: give each task's cube once.")
    out = xr.concat(parts, dim="task", join="outer", fill_value=np.nan)
    out.attrs.update({"method": "annotation_quality per task, configurations outer-joined", "conventions": conventions})
    return out


def quality_risk_table(
    results: xr.Dataset | Mapping[str, xr.Dataset] | Sequence[xr.Dataset],
    cubes: Mapping[str, xr.Dataset],
    *,
    conventions: str | None = None,
    n_boot: int = 200,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Annotation quality and risk of every task × configuration: does risk fall with accuracy?

    Parameters
    ----------
    results
        ``{task: tests}`` (combined with :func:`combine_tasks`) or an already combined tests Dataset.
    cubes
        ``{task: cube}`` or ``{task: annotation_quality(cube)}`` (see :func:`task_quality`), under
        the same task names as ``results``.
    conventions
        Of ``annotation_quality`` for cubes; default the tests' ``attrs["conventions"]``.
    n_boot, ci, rng
        Cluster (task) bootstrap of the pooled relation in ``attrs["relation"]``
        (:func:`quality_risk_relation`).

    Returns
    -------
    pandas.DataFrame
        One row per task and configuration the task has (``task, model, prompt, temperature``):
        ``accuracy``, ``macro_f1``, ``weighted_f1``, ``kappa``, ``n_items`` (human-labelled items
        scored), then the share of the task's hypotheses concluded wrongly in that configuration
        (``risk_pooled``) and its parts ``type_i`` (share of the human-null hypotheses with a
        significant LLM conclusion), ``type_ii`` / ``type_s`` (share of the human-significant
        ones with a null / opposite-sign LLM conclusion), ``risk_balanced`` and the counts
        ``n_null``, ``n_significant``, ``n_conclusions``: :func:`hackrisk.analysis.risk.risk` with
        ``by=("task", "model", "prompt", "temperature")``. ``attrs["relation"]``:
        ``{quality: quality_risk_relation(table, x=quality)}`` for ``accuracy`` and ``macro_f1``
        (``risk_pooled`` on the quality).

    Raises
    ------
    ValueError
        A task of ``results`` without a cube (or the reverse), or a configuration whose quality is
        undefined (no human-labelled item).
    """
    from .risk import risk

    combined = _as_combined(results)
    conv = conventions or str(combined.attrs.get("conventions", "hackrisk"))
    qual = task_quality(cubes, conventions=conv)
    tasks = list(dict.fromkeys(np.asarray(combined["task"].values).astype(str).tolist()))
    q_tasks = [str(t) for t in qual["task"].values]
    if sorted(tasks) != sorted(q_tasks):
        raise ValueError(f"quality_risk_table: the tests hold tasks {sorted(tasks)} but the cubes {sorted(q_tasks)}. "
                         "Fix: pass one cube (or annotation_quality result) per task, under the task's name.")
    r = risk(combined, by=["task", *CONFIG_DIMS], n_boot=0)
    frame = r[list(_CELL_RATES)].sel(ci="estimate", drop=True).to_dataframe()
    counts = r[["n_null", "n_significant", "n_conclusions"]].to_dataframe()
    frame = frame.join(counts)
    frame = frame[frame["n_conclusions"] > 0].reset_index()
    qframe = qual.to_dataframe().reset_index()
    for d in ("task", "model", "prompt"):
        frame[d] = frame[d].astype(str)
        qframe[d] = qframe[d].astype(str)
    table = frame.merge(qframe, on=["task", *CONFIG_DIMS], how="left", validate="one_to_one")
    bad = table[~np.isfinite(table["accuracy"].to_numpy(float))]
    if len(bad):
        cells = [f"{r.task}/{r.model}/{r.prompt}/{r.temperature}" for r in bad.itertuples()][:5]
        raise ValueError(f"quality_risk_table: annotation quality is undefined for {len(bad)} analysed configurations "
                         f"(e.g. {cells}): the cube has no human-labelled annotated item there. Fix: pass the cube "
                         "the tests were computed on.")
    cols = ["task", *CONFIG_DIMS, *[q for q in _QUALITY if q in table], "n_items", *_CELL_RATES,
            "n_null", "n_significant", "n_conclusions"]
    table = table[cols]
    table["n_items"] = table["n_items"].astype(np.int64)
    gen = np.random.default_rng(rng)
    table.attrs["relation"] = {x: quality_risk_relation(table, x=x, n_boot=n_boot, ci=ci, rng=gen)
                               for x in ("accuracy", "macro_f1")}
    return table


def quality_risk_relation(
    table: pd.DataFrame,
    *,
    x: str = "macro_f1",
    y: str = "risk_pooled",
    n_boot: int = 200,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
) -> dict[str, Any]:
    """How risk moves with annotation quality, pooled over tasks.

    Parameters
    ----------
    table
        :func:`quality_risk_table` output (any frame with ``task`` and the columns ``x``, ``y``).
    x, y
        Quality column (``accuracy``, ``macro_f1``, ``weighted_f1``, ``kappa``) and risk column.
    n_boot, ci, rng
        Bootstrap over tasks: whole tasks are resampled with replacement (the configurations of one
        task share its hypotheses, so they are not independent), the slope is refitted on each
        replicate, and the percentile interval is reported.

    Returns
    -------
    dict
        ``slope`` (least squares of ``y`` on ``x`` over every task × configuration), ``intercept``,
        ``slope_lower`` / ``slope_upper`` (cluster-bootstrap interval; NaN with fewer than 2 tasks or
        ``n_boot=0``), ``within_r`` (Pearson correlation of ``x`` and ``y`` after removing each
        task's mean: does risk fall with quality among one task's configurations?), ``between_r``
        (correlation of the task means), ``n`` (rows used), ``n_tasks``, ``x``, ``y``, ``ci``,
        ``n_boot``.
    """
    for col in ("task", x, y):
        if col not in table:
            raise ValueError(f"quality_risk_relation: the table has no column {col!r}. Fix: pass quality_risk_table "
                             f"output, or name existing columns (x=..., y=...); columns: {list(table.columns)}.")
    d = table[["task", x, y]].copy()
    d = d[np.isfinite(d[x].to_numpy(float)) & np.isfinite(d[y].to_numpy(float))]
    xv, yv = d[x].to_numpy(float), d[y].to_numpy(float)
    codes, tasks = pd.factorize(d["task"])
    out: dict[str, Any] = {"x": x, "y": y, "n": int(len(d)), "n_tasks": int(len(tasks)), "ci": ci, "n_boot": int(n_boot)}
    slope, intercept = _ols(xv, yv)
    out.update(slope=slope, intercept=intercept)
    lo = hi = np.nan
    if n_boot > 0 and len(tasks) >= 2:
        gen = np.random.default_rng(rng)
        members = [np.flatnonzero(codes == k) for k in range(len(tasks))]
        reps = np.full(n_boot, np.nan)
        for b in range(n_boot):
            idx = np.concatenate([members[k] for k in gen.integers(0, len(tasks), len(tasks))])
            reps[b] = _ols(xv[idx], yv[idx])[0]
        reps = reps[np.isfinite(reps)]
        if reps.size:
            lo, hi = (float(v) for v in np.quantile(reps, [(1 - ci) / 2, 1 - (1 - ci) / 2]))
    out.update(slope_lower=lo, slope_upper=hi)
    if len(d):
        gx = pd.Series(xv).groupby(codes).transform("mean").to_numpy()
        gy = pd.Series(yv).groupby(codes).transform("mean").to_numpy()
        out["within_r"] = _corr(xv - gx, yv - gy)
        mx = pd.Series(xv).groupby(codes).mean().to_numpy()
        my = pd.Series(yv).groupby(codes).mean().to_numpy()
        out["between_r"] = _corr(mx, my)
    else:
        out["within_r"] = out["between_r"] = np.nan
    return out


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.size < 2:
        return np.nan, np.nan
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx <= 0:
        return np.nan, np.nan
    slope = float(xc @ (y - y.mean())) / sxx
    return slope, float(y.mean() - slope * x.mean())


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3:
        return np.nan
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / den if den > 0 else np.nan


# ---------------------------------------------------------------------------------------------
# risk against effect size, task as a level of the Bayesian curve
# ---------------------------------------------------------------------------------------------
def task_curves(idata: Any, *, ci: float = 0.9) -> xr.Dataset:
    """The posterior risk curve overall and for each task, from a risk model fitted with task as a factor.

    The model's linear predictor is the spline in ``x`` plus zero-sum effects, so a task's curve is
    the overall curve shifted by the task's effect on the logit scale (the other factors at a
    typical level): ``expit(logit(risk_curve) + effect_task)``, draw by draw.

    Parameters
    ----------
    idata
        :func:`hackrisk.analysis.bayesian.fit_risk_model` output (``risk_curve`` and, with more
        than one task, ``effect_task`` in the posterior).
    ci
        Mass of the central (equal-tailed) credible interval.

    Returns
    -------
    xarray.Dataset
        ``risk`` on ``(x_grid, ci)`` and ``risk_task`` on ``(task, x_grid, ci)`` with ``ci`` =
        ``estimate`` (posterior median), ``lower``, ``upper``; ``task_effect`` on ``(task, ci)``
        (logit scale) when the fit has several tasks. attrs ``x`` (``"effect"``: the absolute human
        difference in proportions; ``"z_distance"``), ``ci_prob``.
    """
    post = idata.posterior
    if "risk_curve" not in post:
        raise ValueError("task_curves: the posterior has no 'risk_curve'. Fix: pass the output of "
                         "hackrisk.analysis.bayesian.fit_risk_model.")
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    labels = ["estimate", "lower", "upper"]

    def summary(da: xr.DataArray) -> xr.DataArray:
        q = da.quantile([0.5, lo_q, hi_q], dim=("chain", "draw"))
        return q.rename(quantile="ci").assign_coords(ci=labels).transpose(..., "ci")

    curve = post["risk_curve"]
    out = xr.Dataset({"risk": summary(curve)})
    if "effect_task" in post:
        p = curve.clip(1e-12, 1 - 1e-12)
        eta = np.log(p / (1 - p)) + post["effect_task"]
        out["risk_task"] = summary(1.0 / (1.0 + np.exp(-eta))).transpose("task", "x_grid", "ci")
        out["task_effect"] = summary(post["effect_task"])
    else:  # one task: its curve is the overall one
        tasks = np.unique(np.asarray(idata.observed_data["task"].values).astype(str))
        out["risk_task"] = out["risk"].expand_dims(task=tasks).transpose("task", "x_grid", "ci")
    out.attrs.update({"x": post.attrs.get("x", "z_distance"), "ci_prob": ci,
                      "method": "fit_risk_model posterior: expit(logit(risk_curve) + effect_task)"})
    return out


# ---------------------------------------------------------------------------------------------
# the suite at once
# ---------------------------------------------------------------------------------------------
_VARIANCE_TERMS = ("task", "model", "prompt", "temperature")


def suite_summary(
    results: xr.Dataset | Mapping[str, xr.Dataset] | Sequence[xr.Dataset],
    cubes: Mapping[str, xr.Dataset] | None = None,
    *,
    n_boot: int = 200,
    bayes: bool = True,
    rng: int | np.random.Generator | None = 0,
    metric: str = "risk_balanced",
    ci: float = 0.95,
    bayes_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the paper reports across tasks, from the test results of a suite.

    Parameters
    ----------
    results
        ``{task: tests}`` (each a ``tests.nc`` of ``hackrisk analyze``) or their
        :func:`combine_tasks` output.
    cubes
        ``{task: cube}`` or ``{task: annotation_quality(cube)}``; without them there is no
        ``quality`` table and no quality term in ``variance``.
    n_boot, ci
        Bootstrap replicates and coverage of the per-task intervals and of the quality slope.
    bayes
        Fit the hierarchical risk model for ``curve`` (the costly part: a few seconds of
        compilation and sampling); ``False`` gives ``curve=None``.
    rng
        Seed of every bootstrap and of the sampler.
    metric
        The rate ``task_table`` is ordered by.
    bayes_options
        Extra keyword arguments of :func:`hackrisk.analysis.bayesian.fit_risk_model` (e.g.
        ``draws``, ``chains``, ``n_bins``).

    Returns
    -------
    dict
        ``combined``
            :func:`combine_tasks` of ``results``.
        ``task_table``
            :func:`task_risk_table` (Type I, II, S, M, pooled and balanced risk per task with
            bootstrap intervals, ordered by ``metric``).
        ``quality``
            :func:`quality_risk_table` (``None`` without ``cubes``); its ``attrs["relation"]`` holds
            the slope of risk on accuracy and macro F1 with a task-bootstrap interval and the
            within-task correlation.
        ``variance``
            :func:`hackrisk.analysis.risk.variance_explained` of the combined tests with the
            terms ``task, model, prompt, temperature`` (prompt within task), then ``quality``
            (macro F1, when ``cubes`` are given), then ``effect_size`` (the human effect in
            quantile bins): the sequential R² of each and what it explains alone. Quality needs
            each task's cube (or its ``annotation_quality``), which the tests do not carry.
        ``curve``
            ``None`` when ``bayes=False``; otherwise ``{"idata": fit, "curves":
            task_curves(fit)}``: :func:`hackrisk.analysis.bayesian.fit_risk_model` on
            ``classify_errors(combined)`` with ``x="effect"`` (risk against the absolute human
            effect) and task, model, prompt and temperature as factors, pooled over tasks.
        ``seconds``
            Wall seconds of each part.
    """
    import time

    from .risk import classify_errors, variance_explained

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    combined = _as_combined(results)
    seconds["combine"] = time.perf_counter() - t0
    gen = np.random.default_rng(rng)
    t0 = time.perf_counter()
    table = task_risk_table(combined, metric=metric, n_boot=n_boot, ci=ci, rng=gen)
    table.attrs["ci"] = f"{ci:.0%}"
    seconds["task_table"] = time.perf_counter() - t0
    quality = qual_ds = None
    t0 = time.perf_counter()
    if cubes is not None:
        quality = quality_risk_table(combined, cubes, n_boot=n_boot, ci=ci, rng=gen)
        qual_ds = task_quality(cubes, conventions=str(combined.attrs.get("conventions", "hackrisk")))
    seconds["quality"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    errors = classify_errors(combined)
    terms = [*_VARIANCE_TERMS, *(["quality"] if qual_ds is not None else []), "effect_size"]
    variance = variance_explained(errors, qual_ds, terms=terms)
    seconds["variance"] = time.perf_counter() - t0
    curve = None
    if bayes:
        from .bayesian import fit_risk_model

        t0 = time.perf_counter()
        options = {"x": "effect", "factors": ("task", *CONFIG_DIMS), "rng": int(gen.integers(2**31))}
        options.update(bayes_options or {})
        fit = fit_risk_model(errors, **options)
        curve = {"idata": fit, "curves": task_curves(fit)}
        seconds["curve"] = time.perf_counter() - t0
    return {"combined": combined, "task_table": table, "quality": quality, "variance": variance,
            "curve": curve, "seconds": seconds}


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def plot_task_risk(table: pd.DataFrame, *, metric: str = "risk_balanced", ax: Any = None) -> Any:
    """Forest plot of :func:`task_risk_table`: one row per task, estimate and interval, ordered."""
    if "yours" not in table:
        table = table.assign(yours=False)
    fig = _forest(table, metric, ax)
    return fig.axes[0] if ax is None else ax


def plot_quality_risk(table: pd.DataFrame, *, x: str = "macro_f1", y: str = "risk_pooled", ax: Any = None) -> Any:
    """Scatter of :func:`quality_risk_table`: one point per task × configuration, a colour per task, the pooled line."""
    from .._colors import OKABE_ITO

    ax = _new_axes(ax)
    palette = list(OKABE_ITO.values())[1:] + ["#999999", "#000000"]
    for k, (task, part) in enumerate(table.groupby("task", sort=False)):
        ax.scatter(part[x], part[y], s=22, alpha=0.8, color=palette[k % len(palette)], label=str(task))
    rel = quality_risk_relation(table, x=x, y=y, n_boot=0)
    if np.isfinite(rel["slope"]):
        grid = np.linspace(float(table[x].min()), float(table[x].max()), 20)
        ax.plot(grid, rel["intercept"] + rel["slope"] * grid, color="0.3", lw=1.2, ls="--",
                label=f"pooled slope {rel['slope']:.2f}")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(f"{y.replace('_', ' ')} (share of the task's hypotheses)")
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def plot_task_curves(curves: xr.Dataset, *, ax: Any = None) -> Any:
    """Posterior risk against the human effect, overall (band) and per task (lines), from :func:`task_curves`."""
    from .._colors import OKABE_ITO

    ax = _new_axes(ax)
    grid = curves["x_grid"].values
    r = curves["risk"]
    ax.fill_between(grid, r.sel(ci="lower"), r.sel(ci="upper"), color=OKABE_ITO["blue"], alpha=0.18, lw=0)
    ax.plot(grid, r.sel(ci="estimate"), color=OKABE_ITO["blue"], lw=2.2, label="all tasks")
    palette = list(OKABE_ITO.values())[1:] + ["#999999", "#000000"]
    for k, task in enumerate(curves["task"].values):
        ax.plot(grid, curves["risk_task"].sel(task=task, ci="estimate"), lw=1,
                color=palette[k % len(palette)], label=str(task))
    xkind = curves.attrs.get("x", "effect")
    ax.set_xlabel("|human effect| (difference in proportions)" if xkind == "effect"
                  else "human |z| minus critical z")
    ax.set_ylabel("P(wrong conclusion)")
    ax.set_ylim(0, None)
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def plot_variance(variance: xr.Dataset, *, ax: Any = None) -> Any:
    """Bars of :func:`hackrisk.analysis.risk.variance_explained`: sequential R² and R² alone per term."""
    from .._colors import OKABE_ITO

    ax = _new_axes(ax)
    terms = [str(t) for t in variance["term"].values]
    y = np.arange(len(terms))[::-1]
    ax.barh(y + 0.2, variance["r2_sequential"].values, height=0.4, color=OKABE_ITO["blue"],
            label="sequential (in this order)")
    ax.barh(y - 0.2, variance["r2_alone"].values, height=0.4, color=OKABE_ITO["orange"], label="alone")
    ax.set_yticks(y, terms)
    ax.set_xlabel("share of the variance of 1[wrong conclusion] (R²)")
    ax.legend(fontsize="small")
    return ax


def _new_axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    from ..plots import _axes

    return _axes(None)
