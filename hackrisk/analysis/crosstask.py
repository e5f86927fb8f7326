"""Risk task by task, and your own task placed among the paper's.

The paper's findings are statements across tasks: risk differs from task to task. This module turns
the test results of one or many tasks (for instance the per-task ``tests.nc`` written by ``hackrisk
analyze`` for each study of :mod:`hackrisk.suite`) into one table of Type I, II, S and M risk per
task with bootstrap intervals (:func:`hackrisk.analysis.risk.risk` with ``by="task"``), and places a
user's task (its cube, e.g. from :func:`hackrisk.datasets.load_table` and ``annotate``, or its test
results) among them in that table and a forest plot (:func:`place_task`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["task_risk_table", "place_task"]

_RATES = ("type_i", "type_ii", "type_s", "type_m_mean", "risk_pooled", "risk_balanced")


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
