"""Merge human labels collected on a subset of items into a label cube.

A real study labels a few hundred of its items by hand, often in rounds (:func:`hackrisk.analysis.
mitigation.suggest_items` proposes which items to label next). :func:`add_human_labels` brings
such a table back into the cube: the labels go into ``truth`` (matched to the task's classes by
name, items matched by id), the inclusion probabilities of the design that chose the items into
``human_pi``. Nothing is overwritten silently: an item that already has another human label, or
another inclusion probability, is an error; an identical relabel is accepted.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .cube import validate_cube

__all__ = ["add_human_labels", "read_human_labels", "PI_VAR"]

log = logging.getLogger(__name__)

PI_VAR = "human_pi"
"""Name of the cube variable (task, item) float64 holding each labelled item's inclusion probability."""

_COLUMNS = ("item_id", "label", "pi", "task")


def _show(values: Any, n: int = 5) -> str:
    vals = [str(v) for v in values]
    more = f" and {len(vals) - n} more" if len(vals) > n else ""
    return f"{vals[:n]}{more}"


def read_human_labels(table: pd.DataFrame | str | os.PathLike, *, allow_empty_label: bool = False) -> pd.DataFrame:
    """The human-label table as text: columns ``item_id``, ``label`` and, when given, ``pi``, ``task``.

    Parameters
    ----------
    table
        A DataFrame, or the path of a CSV file (read as text: ids such as ``"007"`` and labels
        such as ``"None"`` stay as written; nothing is parsed as a number or as missing).

    allow_empty_label
        Accept rows without a label (missing column, empty cell or NaN: ``label`` ``""``), used to
        update the inclusion probabilities of items labelled earlier.

    Returns
    -------
    pandas.DataFrame
        ``item_id``, ``label``, ``task`` as str (``task`` only if given), ``pi`` as float64 (NaN
        where the cell is empty); other columns are dropped.

    Raises
    ------
    ValueError
        A missing ``item_id`` / ``label`` column, an empty id or label, or a ``pi`` that is not a
        number in (0, 1].
    """
    where = "human labels"
    if isinstance(table, (str, os.PathLike)):
        where = f"human labels file {os.fspath(table)!r}"
        if not os.path.isfile(table):
            raise ValueError(f"{where} does not exist. Fix: check the path.")
        try:
            table = pd.read_csv(table, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"{where} could not be read as a UTF-8 CSV ({err}). Fix: save it as CSV "
                             "(UTF-8) with a header row item_id,label[,pi].") from err
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"human labels must be a pandas DataFrame or the path of a CSV file, got "
                         f"{type(table).__name__}. Fix: pass pd.DataFrame({{'item_id': ..., 'label': ...}}).")
    if allow_empty_label:
        table = table.copy()
        table["label"] = table["label"].astype(object).where(table["label"].notna(), "") \
            if "label" in table.columns else ""
    missing = [c for c in ("item_id", "label") if c not in table.columns]
    if missing:
        raise ValueError(f"{where} lack the column(s) {missing} (columns: {list(map(str, table.columns))}). "
                         "Fix: name the columns item_id and label (class name), optionally pi and task.")
    out = pd.DataFrame(index=pd.RangeIndex(len(table)))
    for col in ("item_id", "label", "task"):
        if col in table.columns:
            vals = table[col].to_numpy(dtype=object)
            if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in vals):
                rows = [i + 2 for i, v in enumerate(vals) if v is None or (isinstance(v, float) and np.isnan(v))]
                raise ValueError(f"{where}: column {col!r} is missing on row(s) {_show(rows)} (file lines). "
                                 "Fix: fill it in or drop those rows.")
            out[col] = [str(v) for v in vals]
    for col in ("item_id",) if allow_empty_label else ("item_id", "label"):
        empty = np.flatnonzero(out[col].str.strip() == "")
        if empty.size:
            raise ValueError(f"{where}: empty {col} on line(s) {_show(empty + 2)}. Fix: drop rows without a "
                             "human label, or fill them in.")
    if "pi" in table.columns:
        raw = table["pi"].astype(object).map(lambda v: "" if v is None else str(v).strip())
        pi = pd.to_numeric(raw.where(raw != "", "nan"), errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero((np.isnan(pi) & (raw != "").to_numpy() & (raw.str.lower() != "nan").to_numpy())
                             | (pi <= 0) | (pi > 1))
        if bad.size:
            raise ValueError(f"{where}: pi must be an inclusion probability in (0, 1]; line(s) "
                             f"{_show(bad + 2)} hold {_show(raw.to_numpy()[bad])}. Fix: give the probability "
                             "with which each item was chosen for labelling (or leave the cell empty).")
        out["pi"] = pi
    return out


def add_human_labels(
    cube: xr.Dataset,
    table: pd.DataFrame | str | os.PathLike,
    *,
    task: str | None = None,
    update_pi: bool = False,
) -> xr.Dataset:
    """A new cube with human labels (and inclusion probabilities) merged in by item id.

    Parameters
    ----------
    cube
        A label cube (:func:`hackrisk.make_cube`); it is not modified.
    table
        A DataFrame or CSV path (read as text) with columns ``item_id``, ``label`` (the class
        *name*, as in the cube's ``class_name``), optionally ``pi`` (the probability with which
        the item was chosen for labelling, in (0, 1]; an empty cell = unknown) and ``task``.
    task
        The task of every row when the table has no ``task`` column; may be omitted for a cube
        with one task.
    update_pi
        Allow new inclusion probabilities for items labelled before (a later round of
        :func:`hackrisk.analysis.mitigation.suggest_items` updates them: its
        ``attrs["labelled_pi"]``); rows for such items may then leave ``label`` empty. Labels
        themselves are never replaced.

    Returns
    -------
    xarray.Dataset
        A copy of ``cube`` with ``truth`` set on the listed items and the variable
        ``human_pi`` (task, item) float64: the inclusion probability of every labelled item
        where known, NaN elsewhere (a ``human_pi`` already in the cube is kept and extended).

    Raises
    ------
    ValueError
        Naming the offending rows: unknown tasks or item ids, labels outside the task's classes,
        duplicate item ids in the table, an item that already has another human label
        (conflicting relabel) or another inclusion probability, a malformed ``pi``.

    Examples
    --------
    >>> labelled = add_human_labels(cube, "to_label.csv")          # doctest: +SKIP
    >>> int((labelled["truth"] >= 0).sum())                        # doctest: +SKIP
    200
    """
    validate_cube(cube, check_values=False)
    tab = read_human_labels(table, allow_empty_label=update_pi)
    tasks = [str(t) for t in cube["task"].values]
    if "task" in tab.columns:
        if task is not None:
            other = sorted(set(tab["task"]) - {str(task)})
            if other:
                raise ValueError(f"human labels: task={task!r} was given but the table's task column also "
                                 f"holds {_show(other)}. Fix: drop task= or the task column.")
    else:
        if task is None:
            if len(tasks) != 1:
                raise ValueError(f"human labels: the cube has {len(tasks)} tasks {tasks} and the table no "
                                 "task column. Fix: pass task='<name>' or add a task column.")
            task = tasks[0]
        tab["task"] = str(task)
    unknown_tasks = sorted(set(tab["task"]) - set(tasks))
    if unknown_tasks:
        raise ValueError(f"human labels: unknown task(s) {_show(unknown_tasks)}; the cube has {tasks}. "
                         "Fix: use the cube's task names.")
    dup = tab.duplicated(["task", "item_id"], keep=False)
    if dup.any():
        ids = tab.loc[dup, "item_id"].drop_duplicates()
        lines = np.flatnonzero(dup.to_numpy()) + 2
        raise ValueError(f"human labels: item id(s) {_show(ids)} appear more than once (lines {_show(lines)}). "
                         "Fix: keep one label per item (resolve disagreements before merging).")

    truth = np.asarray(cube["truth"].values).copy()
    pi = (np.asarray(cube[PI_VAR].values, dtype=np.float64).copy() if PI_VAR in cube
          else np.full(truth.shape, np.nan, dtype=np.float64))
    ids_all = np.asarray(cube["item_id"].values)
    names_all = np.asarray(cube["class_name"].values)
    has_pi = "pi" in tab.columns
    for name, rows in tab.groupby("task", sort=False):
        t = tasks.index(str(name))
        real = np.flatnonzero(ids_all[t] != "")
        pos_of = pd.Index(ids_all[t][real].astype(str))
        where = pos_of.get_indexer(rows["item_id"].to_numpy())
        if (where < 0).any():
            bad = rows["item_id"].to_numpy()[where < 0]
            raise ValueError(f"human labels: {bad.size} item id(s) of task {name!r} are not in the cube: "
                             f"{_show(bad)}. Fix: use the cube's item ids (column item_id of "
                             "hackrisk.items_table(cube)); ids are compared as text.")
        items = real[where]
        classes = [str(c) for c in names_all[t] if str(c) != ""]
        code_of = {c: k for k, c in enumerate(classes)}
        codes = rows["label"].map(code_of)
        keep_old = (rows["label"] == "").to_numpy()  # update_pi rows: the label stays as it is
        if keep_old.any():
            unl = keep_old & (truth[t, items] < 0)
            if unl.any():
                raise ValueError(f"human labels: {int(unl.sum())} row(s) of task {name!r} have no label and the "
                                 f"item has none yet: {_show(rows['item_id'].to_numpy()[unl])}. Fix: fill in the "
                                 "label (a row without a label may only update the pi of a labelled item).")
            codes[keep_old] = truth[t, items[keep_old]]
        if codes.isna().any():
            bad = rows["label"][codes.isna()].drop_duplicates().to_numpy()
            hint = ""
            stripped = [b for b in bad if b.strip() in code_of]
            if stripped:
                hint = " (some differ only by surrounding spaces)"
            raise ValueError(f"human labels: label(s) {_show(bad)} of task {name!r} are not among its classes "
                             f"{classes}{hint}. Fix: use the class names exactly as in the cube.")
        codes = codes.to_numpy(np.int64)
        old = truth[t, items]
        clash = (old >= 0) & (old != codes)
        if clash.any():
            j = np.flatnonzero(clash)
            desc = [f"{rows['item_id'].to_numpy()[k]}: {classes[old[k]]} -> {classes[codes[k]]}" for k in j]
            raise ValueError(f"human labels: {j.size} item(s) of task {name!r} already have another human "
                             f"label: {_show(desc)}. Nothing was changed. Fix: drop those rows, or set "
                             "truth to -1 for them first if the new label should replace the old one.")
        truth[t, items] = codes
        if has_pi:
            new = rows["pi"].to_numpy(np.float64)
            prev = pi[t, items]
            clash = ~np.isnan(prev) & ~np.isnan(new) & ~np.isclose(prev, new, rtol=1e-12, atol=0.0)
            if clash.any() and not update_pi:
                j = np.flatnonzero(clash)
                desc = [f"{rows['item_id'].to_numpy()[k]}: {prev[k]:g} -> {new[k]:g}" for k in j]
                raise ValueError(f"human labels: {j.size} item(s) of task {name!r} already have another "
                                 f"inclusion probability: {_show(desc)}. Fix: keep the earlier probability, "
                                 "or pass update_pi=True when a new round of suggest_items updated it "
                                 "(its attrs['labelled_pi']).")
            pi[t, items] = np.where(np.isnan(new), prev, new)
    out = cube.copy()
    out["truth"] = (("task", "item"), truth.astype(np.int16))
    out[PI_VAR] = (("task", "item"), pi)
    out[PI_VAR].attrs["description"] = ("inclusion probability of each human-labelled item (NaN: unknown "
                                        "or not labelled)")
    log.info("add_human_labels: %d label(s) merged", len(tab))
    return out
