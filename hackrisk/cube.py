"""The label cube: one ``xarray.Dataset`` that holds every LLM label of a multiverse.

Schema (see ``DESIGN.md``):

========================  =====================================================  =======
variable                  dims                                                   dtype
========================  =====================================================  =======
``label``                 task, model, prompt, temperature, item (+ ``sample``)  int16
``prob`` (optional)       task, model, prompt, temperature, item, class           float32
``truth``                 task, item                                             int16
``text``                  task, item                                             str
``item_id``               task, item                                             str
``class_name``            task, class                                            str
``prompt_template``       task, prompt                                           str
``cov_<name>``            task, item                                             any
========================  =====================================================  =======

Label codes: ``>= 0`` a class, ``-1`` not annotated (also padding), ``-2`` the model answered
outside the label set.  Padding items have ``item_id == ""``; padding classes and prompts have
``""`` names / templates.

The two tidy tables are

* **labels**: ``task, model, prompt, temperature, item_id, label`` (+ ``sample``) and optionally
  ``prob_0 .. prob_{K-1}`` (class codes).  ``label`` holds class names (str) or codes (int; ``-2``
  allowed).
* **items**: ``task, item_id, text`` and optionally ``truth`` (class name / code; missing = no human
  label) and any other columns, which become covariates ``cov_<column>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

SCHEMA_VERSION = 1
NOT_ANNOTATED = -1
OUTSIDE = -2
CONFIG_DIMS = ("model", "prompt", "temperature")
LABEL_DIMS = ("task", *CONFIG_DIMS, "item")
_TEXT_PLACEHOLDER = "{text}"

__all__ = [
    "SCHEMA_VERSION",
    "NOT_ANNOTATED",
    "OUTSIDE",
    "CONFIG_DIMS",
    "LABEL_DIMS",
    "make_cube",
    "from_long",
    "to_long",
    "items_table",
    "validate_cube",
    "n_classes",
    "n_items",
    "covariate_names",
]


def _fail(table: str, column: str, example: Any, problem: str, fix: str) -> None:
    raise ValueError(
        f"{table} table, column {column!r}: {problem} (e.g. {example!r}). Fix: {fix}"
    )


def _require_columns(df: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{table} table is missing required column(s) {missing}; it has {list(df.columns)}. "
            f"Fix: add the column(s) or rename existing ones."
        )


def _as_str_array(values: Any) -> np.ndarray:
    """Plain ``object`` array of Python ``str`` (no numpy StringDType, no pandas string dtype)."""
    arr = np.asarray(values, dtype=object)
    return np.array([str(v) for v in arr.ravel()], dtype=object).reshape(arr.shape)


def _normalise_prompts(
    prompts: Mapping[str, Sequence[str] | Mapping[str, str]] | None,
    tasks: Sequence[str],
    used: Mapping[str, Sequence[str]],
) -> dict[str, dict[str, str]]:
    """Return ``{task: {prompt_id: template}}``."""
    out: dict[str, dict[str, str]] = {}
    for task in tasks:
        spec = None if prompts is None else prompts.get(task)
        if spec is None:
            # Templates unknown: keep the ids used in the labels table, template "{text}".
            out[task] = {str(p): _TEXT_PLACEHOLDER for p in used.get(task, [])}
            continue
        if isinstance(spec, Mapping):
            mapping = {str(k): str(v) for k, v in spec.items()}
        else:
            mapping = {f"p{i}": str(t) for i, t in enumerate(spec)}
        for pid, template in mapping.items():
            if _TEXT_PLACEHOLDER not in template:
                _fail(
                    "prompts",
                    f"{task}/{pid}",
                    template[:60],
                    "the prompt template has no {text} placeholder",
                    "put {text} where the annotated text goes",
                )
        out[task] = mapping
    return out


_INT_NAME = re.compile(r"^[+-]?\d+$")
OUTSIDE_NAME = "<outside>"


def _values_kind(values: pd.Series, table: str, column: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Classify a label column: ``("int", codes, uniques)`` or ``("str", codes, uniques)``.

    ``codes`` index ``uniques``; integers come from integer / bool columns, whole-number floats
    and object columns of Python ints; text from string, object and categorical columns.
    Missing values are an error.
    """
    dtype = values.dtype
    if (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) and not values.hasnans:
        raw = values.to_numpy().astype(np.int64)
        uni, inv = np.unique(raw, return_inverse=True)
        return "int", inv.ravel(), uni
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        raw = values.to_numpy(np.float64, na_value=np.nan)
        if np.isnan(raw).any():
            _fail(table, column, f"row {int(np.flatnonzero(np.isnan(raw))[0])}", "missing (NaN) label",
                  "drop the row or give a label")
        if not np.all(raw == np.round(raw)):
            j = int(np.flatnonzero(raw != np.round(raw))[0])
            _fail(table, column, raw[j], "non-integer number as a label",
                  "use class names (text) or integer codes")
        uni, inv = np.unique(raw.astype(np.int64), return_inverse=True)
        return "int", inv.ravel(), uni
    fac, uni = pd.factorize(values)
    if (fac < 0).any():
        _fail(table, column, f"row {int(np.flatnonzero(fac < 0)[0])}", "missing (NaN) label",
              "drop the row or give a label")
    uni = np.asarray(uni, dtype=object)
    is_str = np.array([isinstance(u, str) for u in uni], dtype=bool)
    if is_str.all():
        return "str", fac, uni
    is_int = np.array([isinstance(u, (int, np.integer)) or (isinstance(u, (float, np.floating))
                       and float(u).is_integer()) for u in uni], dtype=bool)
    if is_int.all():
        return "int", fac, np.array([int(u) for u in uni], dtype=np.int64)
    _fail(table, column, uni[~is_str][0], "a mix of class names and other values",
          "give class names (text) throughout, or integer codes throughout")
    raise AssertionError  # unreachable


def _use_codes(kind: str, names: Sequence[Sequence[str]], codes: bool | None, table: str, column: str,
               example: Any) -> bool:
    """Whether integers in a label column are class codes (True) or class names (False)."""
    if kind == "str":  # text is always a class name
        return False
    if codes is not None:
        return bool(codes)
    digit_named = sorted({str(n) for ns in names for n in ns if _INT_NAME.match(str(n).strip())})
    if digit_named:
        _fail(table, column, example,
              f"integer labels, and classes named like integers ({digit_named[:5]}): are they class codes "
              "or class names?",
              "pass codes=False to match them to class names, or codes=True if they are codes 0..K-1 "
              "(-2 = outside the set)")
    return True


def _map_labels(values: pd.Series, t_code: np.ndarray, class_lists: Sequence[Sequence[str]],
                codes: bool | None, table: str, column: str, allow_outside: bool) -> np.ndarray:
    """int16 class codes of ``values`` (row ``j`` belongs to task ``t_code[j]``).

    Text is matched to class names (``"<outside>"``: -2 where allowed); integers are codes when
    ``codes`` is True (or, with ``codes=None``, when no class is named like an integer) and names
    otherwise. Anything outside a task's classes raises.
    """
    used = np.flatnonzero(np.bincount(t_code, minlength=len(class_lists)))
    dtype = values.dtype
    if (pd.api.types.is_integer_dtype(dtype) and not values.hasnans
            and _use_codes("int", [class_lists[t] for t in used], codes, table, column,
                           values.iloc[0] if len(values) else None)):
        # fast path for integer codes (millions of labels): range checks, no hashing
        raw = values.to_numpy()
        limits = np.array([len(c) for c in class_lists], dtype=np.int64)
        bad = ((raw < 0) | (raw >= limits[t_code])) & ((raw != OUTSIDE) | (not allow_outside))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            _fail(table, column, int(values.iloc[j]),
                  f"label outside the class set {[str(c) for c in class_lists[t_code[j]]]} (read as a code)",
                  "use codes 0..K-1 (-2 = answered outside the set)")
        return raw.astype(np.int16)
    kind, fac, uni = _values_kind(values, table, column)
    as_codes = _use_codes(kind, [class_lists[t] for t in used], codes, table, column,
                          uni[0] if len(uni) else None)
    table_ = np.full((len(class_lists), len(uni)), -99, dtype=np.int64)
    for t in used:
        names = [str(c) for c in class_lists[t]]
        if as_codes:
            u = np.asarray(uni, dtype=np.int64)
            ok = ((u >= 0) & (u < len(names))) | ((u == OUTSIDE) & allow_outside)
            table_[t] = np.where(ok, u, -99)
        else:
            lookup = {n: k for k, n in enumerate(names)}
            if allow_outside and OUTSIDE_NAME not in lookup:
                lookup[OUTSIDE_NAME] = OUTSIDE
            table_[t] = [lookup.get(str(int(u)) if kind == "int" else str(u), -99) for u in uni]
    out = table_[t_code, fac]
    bad = out == -99
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        fix = ("map it to a class name, or to code -2 / '<outside>' for 'answered outside the set'"
               if allow_outside else "map it to a class name, or leave it empty for 'no human label'")
        _fail(table, column, values.iloc[j],
              f"label outside the class set {[str(c) for c in class_lists[t_code[j]]]}",
              ("integers were read as codes 0..K-1; " if as_codes else "") + fix)
    return out.astype(np.int16)


def make_cube(
    labels: pd.DataFrame,
    items: pd.DataFrame,
    classes: Mapping[str, Sequence[str]],
    *,
    prompts: Mapping[str, Sequence[str] | Mapping[str, str]] | None = None,
    models: pd.DataFrame | None = None,
    attrs: Mapping[str, Any] | None = None,
    codes: bool | None = None,
) -> xr.Dataset:
    """Build the label cube from tidy tables.

    Parameters
    ----------
    labels
        One row per (task, model, prompt, temperature, item_id[, sample]) with a ``label`` column
        (class name or integer code; ``-2`` = answered outside the set) and optionally per-class
        probabilities ``prob_0 .. prob_{K-1}``.
    items
        One row per (task, item_id) with ``text``, optionally ``truth`` (class name/code, missing =
        no human label) and any further columns, which become covariates ``cov_<column>``.
    classes
        ``{task: [class names]}``; the order defines the codes.
    prompts
        ``{task: [templates]}`` (ids ``p0, p1, ...``) or ``{task: {prompt_id: template}}``. Every
        template must contain ``{text}``. If omitted, the prompt ids of ``labels`` are kept with the
        template ``"{text}"``.
    models
        Optional table indexed by model name with per-model facts (e.g. ``n_params``, ``family``);
        they become non-index coordinates on ``model``.
    attrs
        Extra provenance stored in the cube's attrs.
    codes
        How integers in ``label`` and ``truth`` are read. Text is always matched to class names
        (``"<outside>"`` in ``label`` = answered outside the set). ``True``: integers are class
        codes 0..K-1 (-2 = outside). ``False``: integers are class names (label ``1`` is the class
        named ``"1"``). ``None`` (default): integers are codes when no class is named like an
        integer, and an error otherwise (ambiguous: say which one you mean).

    Returns
    -------
    xarray.Dataset
        A validated cube. Configurations without a row keep the label ``-1``.

    Raises
    ------
    ValueError
        On missing columns, unknown tasks or item ids, labels outside the class set, NaN labels,
        duplicate rows, tasks with fewer than two classes, or templates without ``{text}``.
    """
    for arg, value in (("labels", labels), ("items", items)):
        if not isinstance(value, pd.DataFrame):
            raise TypeError(f"make_cube: {arg} must be a pandas DataFrame (one row per "
                            f"{'label' if arg == 'labels' else 'item'}), got {type(value).__name__}. "
                            "Fix: pass pd.DataFrame(...) with the columns listed in the docstring.")
    if not isinstance(classes, Mapping) or not all(
            isinstance(v, Sequence) and not isinstance(v, str) for v in classes.values()):
        raise TypeError(f"make_cube: classes must be a mapping {{task: [class names]}}, got "
                        f"{type(classes).__name__} {str(classes)[:80]}. Fix: e.g. {{'sentiment': ['neg', 'pos']}}.")
    if codes not in (None, True, False):
        raise TypeError(f"make_cube: codes must be True, False or None, got {codes!r}.")
    _require_columns(labels, "labels", ["task", "model", "prompt", "temperature", "item_id", "label"])
    _require_columns(items, "items", ["task", "item_id", "text"])
    tasks = [str(t) for t in classes]
    for task, names in classes.items():
        if len(names) < 2:
            _fail("classes", str(task), list(names), "a task needs at least two classes", "add the classes")
        if len(set(map(str, names))) != len(names) or any(str(n) == "" for n in names):
            _fail("classes", str(task), list(names), "class names must be unique and non-empty", "rename them")

    # ---- items -------------------------------------------------------------------------------
    items = items.copy()
    items["task"] = items["task"].astype(object).map(str)
    items["item_id"] = items["item_id"].astype(object).map(str)
    unknown = ~items["task"].isin(tasks)
    if unknown.any():
        _fail("items", "task", items.loc[unknown, "task"].iloc[0], "task not in `classes`", "add it to `classes`")
    if (items["item_id"] == "").any():
        _fail("items", "item_id", "", "empty item id", "give every item a non-empty id")
    dup = items.duplicated(["task", "item_id"])
    if dup.any():
        row = items.loc[dup].iloc[0]
        _fail("items", "item_id", f"{row['task']}/{row['item_id']}", "duplicate (task, item_id)", "drop duplicates")
    if items["text"].isna().any():
        _fail("items", "text", items.index[items["text"].isna()][0], "missing text", "give every item a text")
    cov_cols = [c for c in items.columns if c not in ("task", "item_id", "text", "truth")]

    n_item = int(items.groupby("task").size().reindex(tasks, fill_value=0).max())
    n_task = len(tasks)
    task_pos = {t: i for i, t in enumerate(tasks)}
    items["_t"] = items["task"].map(task_pos).astype(np.int64)
    items["_i"] = items.groupby("_t").cumcount().astype(np.int64)

    item_id = np.full((n_task, n_item), "", dtype=object)
    text = np.full((n_task, n_item), "", dtype=object)
    truth = np.full((n_task, n_item), NOT_ANNOTATED, dtype=np.int16)
    ti, ii = items["_t"].to_numpy(), items["_i"].to_numpy()
    item_id[ti, ii] = _as_str_array(items["item_id"].to_numpy())
    text[ti, ii] = _as_str_array(items["text"].to_numpy())
    if "truth" in items.columns:
        for task in tasks:
            sel = (items["_t"] == task_pos[task]).to_numpy()
            vals = items.loc[sel, "truth"]
            known = vals.notna().to_numpy()
            if known.any():
                truth[ti[sel][known], ii[sel][known]] = _map_labels(
                    vals[known], np.zeros(int(known.sum()), dtype=np.int64), [list(classes[task])], codes,
                    "items", "truth", allow_outside=False)

    data_vars: dict[str, Any] = {
        "item_id": (("task", "item"), item_id),
        "text": (("task", "item"), text),
        "truth": (("task", "item"), truth),
    }
    for col in cov_cols:
        data_vars[f"cov_{col}"] = _covariate(items[col], ti, ii, (n_task, n_item))

    # ---- classes and prompts --------------------------------------------------------------------
    n_class = max(len(v) for v in classes.values())
    class_name = np.full((n_task, n_class), "", dtype=object)
    for task, names in classes.items():
        class_name[task_pos[str(task)], : len(names)] = [str(n) for n in names]
    data_vars["class_name"] = (("task", "class"), class_name)

    # Factorise each key column once (fast on categoricals and strings; no per-row Python).
    t_fac, t_uni = _factorize(labels, "task")
    bad = ~np.isin(t_uni, tasks)
    if bad.any():
        _fail("labels", "task", t_uni[bad][0], "task not in `classes`", "add it to `classes`")
    t_code = np.array([task_pos[t] for t in t_uni], dtype=np.int64)[t_fac]
    del t_fac
    p_fac, p_uni = _factorize(labels, "prompt")
    pairs = np.flatnonzero(np.bincount(t_code * len(p_uni) + p_fac, minlength=n_task * len(p_uni)))
    used: dict[str, list[str]] = {}
    for pair in pairs:
        used.setdefault(tasks[pair // len(p_uni)], []).append(p_uni[pair % len(p_uni)])
    templates = _normalise_prompts(prompts, tasks, used)
    prompt_ids: list[str] = []
    for task in tasks:
        for pid in templates[task]:
            if pid not in prompt_ids:
                prompt_ids.append(pid)
    prompt_template = np.full((n_task, len(prompt_ids)), "", dtype=object)
    for task in tasks:
        for pid, tpl in templates[task].items():
            prompt_template[task_pos[task], prompt_ids.index(pid)] = tpl
    data_vars["prompt_template"] = (("task", "prompt"), prompt_template)
    p_code = _positions(p_fac, p_uni, prompt_ids, "labels", "prompt", "add the template to `prompts`")
    del p_fac
    for pair in pairs:
        t, p = pair // len(p_uni), prompt_ids.index(p_uni[pair % len(p_uni)])
        if prompt_template[t, p] == "":
            _fail("labels", "prompt", f"{tasks[t]}/{prompt_ids[p]}", "prompt not defined for this task",
                  "add the template to `prompts` for that task")

    m_fac, m_uni = _factorize(labels, "model")
    model_names = list(m_uni) if models is None else [str(m) for m in models.index]
    m_code = _positions(m_fac, m_uni, model_names, "labels", "model", "add the model to `models`")
    del m_fac
    temp = labels["temperature"].to_numpy(np.float64)
    if np.isnan(temp).any():
        _fail("labels", "temperature", "NaN", "missing temperature", "fill in the decoding temperature")
    temps = _few_uniques(temp)
    if len(temps) <= 8:  # a few comparisons are cheaper than a binary search per label
        k_code = np.zeros(len(temp), dtype=np.int8)
        for t in temps[1:]:
            k_code += temp >= t
    else:
        k_code = np.searchsorted(temps, temp)
    del temp

    i_fac, i_uni = _factorize(labels, "item_id")
    pos_table = np.full((n_task, len(i_uni)), -1, dtype=np.int64)
    found = pd.Index(i_uni).get_indexer(items["item_id"].to_numpy(object))
    ok = found >= 0
    pos_table[ti[ok], found[ok]] = ii[ok]
    i_code = pos_table[t_code, i_fac]
    if (i_code < 0).any():
        j = int(np.flatnonzero(i_code < 0)[0])
        _fail("labels", "item_id", f"{tasks[t_code[j]]}/{i_uni[i_fac[j]]}",
              "item id not in the items table", "add the item to `items` or drop the label row")
    del i_fac, pos_table

    has_sample = "sample" in labels.columns
    shape = [n_task, len(model_names), len(prompt_ids), len(temps), n_item]
    dims = list(LABEL_DIMS)
    codes_per_dim = [t_code, m_code, p_code, k_code, i_code]
    if has_sample:
        s_vals = labels["sample"].to_numpy()
        if pd.isna(s_vals).any() or (s_vals < 0).any():
            _fail("labels", "sample", "NaN or negative", "bad sample index", "use 0, 1, 2, ...")
        s_vals = s_vals.astype(np.int64)
        shape.append(int(s_vals.max()) + 1 if len(s_vals) else 1)
        dims.append("sample")
        codes_per_dim.append(s_vals)
    size = int(np.prod(shape))
    flat = np.zeros(len(labels), dtype=np.int64)
    for code, n in zip(codes_per_dim, shape):
        flat *= n
        flat += code
    del m_code, p_code, k_code, i_code, codes_per_dim
    seen = np.zeros(size, dtype=bool)
    seen[flat] = True
    if int(np.count_nonzero(seen)) != len(flat):
        order = np.argsort(flat, kind="stable")
        j = int(order[np.flatnonzero(np.diff(flat[order]) == 0)[0]])
        _fail("labels", "item_id", labels.iloc[j][["task", "model", "prompt", "temperature", "item_id"]].tolist(),
              "duplicate (configuration, item) rows", "keep one label per configuration and item (or add `sample`)")
    del seen

    label = np.full(size, NOT_ANNOTATED, dtype=np.int16)
    label[flat] = _map_labels(labels["label"], t_code, [list(classes[t]) for t in tasks], codes,
                              "labels", "label", allow_outside=True)
    del t_code
    data_vars["label"] = (tuple(dims), label.reshape(shape))
    prob_cols = [c for c in labels.columns if c.startswith("prob_")]
    if prob_cols:
        expected = [f"prob_{k}" for k in range(n_class)]
        if sorted(prob_cols, key=lambda c: int(c[5:])) != expected:
            _fail("labels", "prob_*", prob_cols, f"expected columns {expected}", "give one prob_<code> per class")
        if has_sample:
            raise ValueError("labels table: `prob_*` columns cannot be combined with `sample`. Fix: drop one.")
        prob = np.full((int(np.prod(shape)), n_class), np.nan, dtype=np.float32)
        prob[flat] = labels[expected].to_numpy(np.float32)
        data_vars["prob"] = ((*LABEL_DIMS, "class"), prob.reshape(*shape, n_class))

    coords: dict[str, Any] = {
        "task": np.array(tasks, dtype=object),
        "model": np.array(model_names, dtype=object),
        "prompt": np.array(prompt_ids, dtype=object),
        "temperature": temps,
        "item": np.arange(n_item),
        "class": np.arange(n_class),
    }
    if has_sample:
        coords["sample"] = np.arange(shape[-1])
    if models is not None:
        for col in models.columns:
            coords[col] = ("model", models[col].to_numpy())
    cube = xr.Dataset(data_vars, coords=coords)
    cube.attrs.update({"schema_version": SCHEMA_VERSION, "created_by": "hackrisk.make_cube"})
    if attrs:
        cube.attrs.update(dict(attrs))
    validate_cube(cube)
    return cube


def _factorize(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes and unique values (as ``str``) of a key column; NaN keys are an error."""
    col = df[column]
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, uniques = col.cat.codes.to_numpy(), col.cat.categories
        used = np.bincount(codes[codes >= 0], minlength=len(uniques)) > 0
        if not used.all():  # drop unused categories so they are never validated
            remap = np.cumsum(used) - 1
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
            uniques = uniques[used]
    else:
        codes, uniques = pd.factorize(col)
    if (codes < 0).any():
        _fail("labels", column, f"row {int(np.flatnonzero(codes < 0)[0])}", "missing value", f"fill in {column}")
    return codes, np.array([str(u) for u in uniques], dtype=object)


def _few_uniques(values: np.ndarray, max_levels: int = 32) -> np.ndarray:
    """Sorted unique values of an array that holds only a few (e.g. temperatures).

    A handful of vectorised comparisons beat hashing millions of floats; falls back to
    ``np.unique`` beyond ``max_levels`` values.
    """
    found = []
    rest = values
    while rest.size and len(found) < max_levels:
        found.append(rest[0])
        rest = rest[rest != rest[0]]
    return np.unique(values) if rest.size else np.sort(np.array(found, dtype=values.dtype))


def _positions(codes: np.ndarray, uniques: np.ndarray, names: list[str], table: str, column: str,
               fix: str) -> np.ndarray:
    """Map factorised codes onto the position of each unique value in ``names``."""
    where = pd.Index(names).get_indexer(uniques)
    if (where < 0).any():
        _fail(table, column, uniques[where < 0][0], "unknown value", fix)
    return where[codes]


def _covariate(col: pd.Series, ti: np.ndarray, ii: np.ndarray, shape: tuple[int, int]):
    """Place one covariate on (task, item); padding is NaN / NaT / False / ""."""
    dtype = col.dtype
    attrs = {"source_dtype": str(dtype)}
    if pd.api.types.is_bool_dtype(dtype) and not col.isna().any():
        out = np.zeros(shape, dtype=bool)
        out[ti, ii] = col.to_numpy(bool)
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        vals = pd.to_datetime(col)
        if getattr(vals.dt, "tz", None) is not None:
            attrs["tz"] = str(vals.dt.tz)
            vals = vals.dt.tz_convert("UTC").dt.tz_localize(None)
        out = np.full(shape, np.datetime64("NaT"), dtype="datetime64[ns]")
        out[ti, ii] = vals.to_numpy("datetime64[ns]")
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        out = np.full(shape, np.nan, dtype=np.float64)
        out[ti, ii] = col.to_numpy(np.float64, na_value=np.nan)
    else:
        if isinstance(dtype, pd.CategoricalDtype):
            attrs["categories"] = [str(c) for c in dtype.categories]
        out = np.full(shape, "", dtype=object)
        out[ti, ii] = np.array(["" if pd.isna(v) else str(v) for v in col.to_numpy(object)], dtype=object)
    return (("task", "item"), out, attrs)


def from_long(
    labels: pd.DataFrame,
    items: pd.DataFrame,
    classes: Mapping[str, Sequence[str]],
    **kwargs: Any,
) -> xr.Dataset:
    """Alias of :func:`make_cube` (long tables → cube)."""
    return make_cube(labels, items, classes, **kwargs)


def to_long(cube: xr.Dataset, *, names: bool = False) -> pd.DataFrame:
    """Labels table of every annotated cell (label != -1), the inverse of :func:`make_cube`.

    Parameters
    ----------
    cube
        A label cube.
    names
        Give class names instead of codes in ``label`` (``-2`` becomes ``"<outside>"``).
    """
    validate_cube(cube)
    lab = cube["label"]
    arr = np.asarray(lab.values)
    nz = np.nonzero(arr != NOT_ANNOTATED)
    out: dict[str, Any] = {}
    for ax, dim in enumerate(lab.dims):
        if dim == "item":
            out["item_id"] = np.asarray(cube["item_id"].values)[nz[0], nz[ax]]
        elif dim == "sample":
            out["sample"] = nz[ax]
        else:
            out[dim] = np.asarray(cube[dim].values)[nz[ax]]
    codes = arr[nz]
    if names:
        cn = np.asarray(cube["class_name"].values)
        out["label"] = np.where(codes >= 0, cn[nz[0], np.maximum(codes, 0)], "<outside>")
    else:
        out["label"] = codes
    if "prob" in cube:
        p = np.asarray(cube["prob"].values)[nz]
        for k in range(p.shape[-1]):
            out[f"prob_{k}"] = p[:, k]
    df = pd.DataFrame(out)
    for col in ("task", "model", "prompt", "item_id"):
        df[col] = df[col].astype(object)
    return df


def items_table(cube: xr.Dataset, *, names: bool = False) -> pd.DataFrame:
    """Items table (task, item_id, text, truth, covariates) of the cube, padding removed.

    Covariates get back the dtype they were built from; ``truth`` is a nullable integer code (or
    the class name when ``names=True``).
    """
    validate_cube(cube, check_values=False)
    real = np.asarray(cube["item_id"].values) != ""
    t, i = np.nonzero(real)
    out: dict[str, Any] = {
        "task": np.asarray(cube["task"].values)[t].astype(object),
        "item_id": np.asarray(cube["item_id"].values)[t, i].astype(object),
        "text": np.asarray(cube["text"].values)[t, i].astype(object),
    }
    truth = np.asarray(cube["truth"].values)[t, i]
    if names:
        cn = np.asarray(cube["class_name"].values)
        out["truth"] = pd.Series(np.where(truth >= 0, cn[t, np.maximum(truth, 0)], None), dtype=object)
    else:
        out["truth"] = pd.array(np.where(truth >= 0, truth, 0), dtype="Int16")
        out["truth"][truth < 0] = pd.NA
    df = pd.DataFrame(out)
    for name in covariate_names(cube):
        var = cube[f"cov_{name}"]
        vals = np.asarray(var.values)[t, i]
        df[name] = _restore_dtype(vals, var.attrs)
    return df


def _restore_dtype(vals: np.ndarray, attrs: Mapping[str, Any]) -> pd.Series:
    dtype = str(attrs.get("source_dtype", ""))
    s = pd.Series(vals)
    if "categories" in attrs:
        cats = list(attrs["categories"])
        return pd.Series(pd.Categorical(s.replace("", None), categories=cats))
    if dtype.startswith("datetime64"):
        s = pd.to_datetime(s)
        if "tz" in attrs:
            return s.dt.tz_localize("UTC").dt.tz_convert(str(attrs["tz"]))
        return s.astype(dtype)
    if dtype and dtype not in ("object", "str", "string"):
        try:
            return s.astype(dtype)
        except (TypeError, ValueError):
            return s
    return s.astype(object)


def covariate_names(cube: xr.Dataset) -> list[str]:
    """Names of the covariates (``cov_<name>`` variables) without the prefix, sorted."""
    return sorted(str(v)[4:] for v in cube.data_vars if str(v).startswith("cov_"))


def n_classes(cube: xr.Dataset) -> xr.DataArray:
    """Number of classes of each task (DataArray over ``task``)."""
    return (cube["class_name"] != "").sum("class")


def n_items(cube: xr.Dataset) -> xr.DataArray:
    """Number of real (non-padding) items of each task (DataArray over ``task``)."""
    return (cube["item_id"] != "").sum("item")


def validate_cube(cube: xr.Dataset, *, check_values: bool = True) -> xr.Dataset:
    """Check that ``cube`` follows the schema; return it unchanged.

    Raises ``ValueError`` naming the variable and the fix. With ``check_values=False`` only the
    structure is checked (cheap on lazy, dask-backed cubes).
    """
    if not isinstance(cube, xr.Dataset):
        raise ValueError(f"expected an xarray.Dataset label cube, got {type(cube).__name__}. "
                         "Fix: build one with hackrisk.make_cube(labels, items, classes).")
    required = {"label": None, "truth": ("task", "item"), "item_id": ("task", "item"),
                "class_name": ("task", "class"), "text": ("task", "item")}
    for name, dims in required.items():
        if name not in cube:
            raise ValueError(f"cube has no variable {name!r}. Fix: build the cube with hackrisk.make_cube().")
        if dims is not None and cube[name].dims != dims:
            raise ValueError(f"cube variable {name!r} has dims {cube[name].dims}, expected {dims}. "
                             "Fix: transpose it or rebuild the cube.")
    ldims = cube["label"].dims
    if ldims[:5] != LABEL_DIMS or ldims[5:] not in ((), ("sample",)):
        raise ValueError(f"cube variable 'label' has dims {ldims}, expected {LABEL_DIMS} (+ 'sample'). "
                         "Fix: cube['label'] = cube['label'].transpose(*hackrisk.cube.LABEL_DIMS, ...).")
    if cube["label"].dtype != np.int16 or cube["truth"].dtype != np.int16:
        raise ValueError(f"cube 'label'/'truth' must be int16, got {cube['label'].dtype}/{cube['truth'].dtype}. "
                         "Fix: .astype('int16') (codes >= 0, -1 not annotated, -2 outside the set).")
    if "prompt_template" in cube and cube["prompt_template"].dims != ("task", "prompt"):
        raise ValueError("cube variable 'prompt_template' must have dims ('task', 'prompt').")
    if "prob" in cube and cube["prob"].dims != (*LABEL_DIMS, "class"):
        raise ValueError(f"cube variable 'prob' must have dims {(*LABEL_DIMS, 'class')}.")
    for dim in ("task", "model", "prompt"):
        vals = cube[dim].values
        if len(set(map(str, vals))) != len(vals):
            raise ValueError(f"coordinate {dim!r} has duplicate values. Fix: give each a unique name.")
    if not check_values:
        return cube
    cn = np.asarray(cube["class_name"].values)
    nc = (cn != "").sum(axis=1)
    for t, task in enumerate(cube["task"].values):
        if nc[t] < 2:
            raise ValueError(f"cube variable 'class_name': task {task!r} has {nc[t]} class(es); at least 2 needed.")
        if not (cn[t, : nc[t]] != "").all():
            raise ValueError(f"cube variable 'class_name': task {task!r} has a gap in its class names.")
    real = np.asarray(cube["item_id"].values) != ""
    truth = np.asarray(cube["truth"].values)
    bad = (truth < -1) | (truth >= nc[:, None]) | (~real & (truth != -1))
    if bad.any():
        t, i = np.argwhere(bad)[0]
        raise ValueError(f"cube variable 'truth' has code {truth[t, i]} at task={cube['task'].values[t]!r}, "
                         f"item={i}, outside the task's classes (or on a padding item). Fix: use -1..K-1.")
    lab = cube["label"]
    if lab.size:  # an empty labels table (nothing annotated yet) has nothing to range-check
        lab_max = np.asarray(lab.max([d for d in lab.dims if d not in ("task", "item")]).values)
        lab_min = np.asarray(lab.min([d for d in lab.dims if d not in ("task", "item")]).values)
        bad = (lab_max >= nc[:, None]) | (lab_min < OUTSIDE) | (~real & (lab_max != -1))
        if bad.any():
            t, i = np.argwhere(bad)[0]
            raise ValueError(f"cube variable 'label' has codes outside task {cube['task'].values[t]!r}'s "
                             f"classes (or labels on a padding item) at item={i}. Fix: codes must be -2..K-1.")
    if "prompt_template" in cube:
        tpl = np.asarray(cube["prompt_template"].values)
        missing = [(t, p) for t, p in zip(*np.nonzero(tpl != "")) if _TEXT_PLACEHOLDER not in str(tpl[t, p])]
        if missing:
            t, p = missing[0]
            raise ValueError(f"cube variable 'prompt_template' for task={cube['task'].values[t]!r}, "
                             f"prompt={cube['prompt'].values[p]!r} lacks {{text}}. Fix: add the placeholder.")
        unused = tpl == ""
        if unused.any():
            annotated = np.asarray((lab != NOT_ANNOTATED).any([d for d in lab.dims if d not in ("task", "prompt")]).values)
            if (annotated & unused).any():
                t, p = np.argwhere(annotated & unused)[0]
                raise ValueError(f"cube variable 'label' has labels for task={cube['task'].values[t]!r}, "
                                 f"prompt={cube['prompt'].values[p]!r}, which has no template.")
    ids = np.asarray(cube["item_id"].values)
    for t, task in enumerate(cube["task"].values):
        row = ids[t][real[t]]
        if len(set(row)) != len(row):
            raise ValueError(f"cube variable 'item_id': task {task!r} has duplicate item ids.")
    return cube
