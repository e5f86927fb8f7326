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

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import CONFIG_DIMS

log = logging.getLogger(__name__)

__all__ = ["combine_tasks", "task_risk_table", "place_task"]

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
        for m in union["model"]:
            for p in union["prompt"]:
                for t in union["temperature"]:
                    if not (m in have["model"] and p in have["prompt"] and t in have["temperature"]):
                        filled.extend(f"{task}/{m}/{p}/{t}" for task in task_names)
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
    order = [d for d in ("hypothesis", *CONFIG_DIMS)]
    combined = combined.transpose(*order, ...)
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
