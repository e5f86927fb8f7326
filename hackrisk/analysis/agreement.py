"""Inter-rater agreement: Krippendorff's alpha and Fleiss' kappa with item-bootstrap CIs.

Both statistics depend on the ratings only through the **count matrix** ``n[u, c]`` (how many
ratings unit ``u`` received in value ``c``), so every input form (a units x raters matrix with
missing entries, a long table ``item_id, rater, rating``, or the count matrix itself) is reduced
to it first, and the bootstrap resamples units (items) by reweighting rows of that matrix — all
replicates in a few matrix products, no Python loop over replicates.

Krippendorff's alpha (Krippendorff 2011, *Computing Krippendorff's Alpha-Reliability*): with the
coincidence matrix ``o[c, k] = sum_u (n[u,c] n[u,k] - [c == k] n[u,c]) / (n_u - 1)`` over units
with ``n_u >= 2`` pairable values, ``n_c = sum_k o[c, k]`` and ``n = sum_c n_c``,

    alpha = 1 - (n - 1) * sum_{c,k} o[c,k] d2[c,k] / sum_{c,k} n_c n_k d2[c,k]

with the difference functions ``d2`` nominal (``c != k``), ordinal
(``(sum_{g=c..k} n_g - (n_c + n_k)/2)^2``), interval (``(v_c - v_k)^2``) and ratio
(``((v_c - v_k)/(v_c + v_k))^2``). Missing ratings are allowed; units with fewer than two
ratings do not count.

Fleiss' kappa (Fleiss 1971): ``kappa = (P_bar - P_e) / (1 - P_e)`` with
``P_u = (sum_c n[u,c]^2 - n_u) / (n_u (n_u - 1))``, ``P_bar`` the mean of ``P_u`` and
``P_e = sum_c p_c^2``, ``p_c`` the share of all ratings in category ``c``. Fleiss assumed the
same number of raters per unit; with varying ``n_u`` (>= 2) this is the usual generalisation
(each unit weighs the same in ``P_bar``) and it reduces exactly to Fleiss' formula when ``n_u``
is constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LEVELS",
    "count_matrix",
    "krippendorff_alpha",
    "fleiss_kappa",
    "agreement",
    "compare_human_llm",
    "alt_test",
    "benjamini_yekutieli",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
_STATISTICS = tuple(f"alpha_{lv}" for lv in LEVELS) + ("fleiss_kappa",)


# ---- input -> count matrix -----------------------------------------------------------------------


def _sorted_values(flat: np.ndarray) -> list[Any]:
    uniq = pd.unique(pd.Series(flat, dtype=object))
    try:
        return sorted(uniq.tolist())
    except TypeError:
        return sorted(uniq.tolist(), key=str)


def count_matrix(
    ratings: Any,
    *,
    values: Sequence[Any] | None = None,
    counts: bool = False,
    columns: tuple[str, str, str] = ("item_id", "rater", "rating"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reduce ratings to the units x values count matrix.

    Parameters
    ----------
    ratings
        One of: a long DataFrame with the three ``columns`` (item, rater, rating); a units x
        raters array or DataFrame, missing ratings as NaN / None; with ``counts=True`` a units x
        values matrix of counts.
    values
        The possible values in order (codes are positions in this list). Default: the sorted
        distinct ratings (for ``counts=True``: ``0 .. V-1``). Ordinal and interval alpha need
        the order / the numbers; ratings outside ``values`` raise.
    counts
        ``ratings`` already is the count matrix.
    columns
        Names of the item, rater and rating columns of a long table.

    Returns
    -------
    counts : ndarray, shape (U, V), float64
    values : ndarray, shape (V,)
    units : ndarray, shape (U,) — item labels (long table) or row positions
    """
    if counts:
        arr = np.asarray(ratings, dtype=np.float64)
        if arr.ndim != 2 or (arr < 0).any() or not np.all(np.isfinite(arr)):
            raise ValueError("count matrix must be 2-D (units x values) with finite counts >= 0.")
        vals = np.arange(arr.shape[1]) if values is None else np.asarray(values)
        if len(vals) != arr.shape[1]:
            raise ValueError(f"values has {len(vals)} entries but the count matrix {arr.shape[1]} columns.")
        units = np.asarray(ratings.index) if isinstance(ratings, pd.DataFrame) else np.arange(arr.shape[0])
        return arr, vals, units
    item_col, _, value_col = columns
    if isinstance(ratings, pd.DataFrame) and item_col in ratings.columns and value_col in ratings.columns:
        df = ratings[ratings[value_col].notna()]
        unit_codes, units = pd.factorize(df[item_col], sort=False)
        flat = df[value_col].to_numpy(dtype=object)
        n_units = len(units)
        units = np.asarray(units, dtype=object)
    else:
        arr = ratings.to_numpy(dtype=object) if isinstance(ratings, pd.DataFrame) else np.asarray(ratings, dtype=object)
        if arr.ndim != 2:
            raise ValueError(
                f"ratings must be 2-D (units x raters), got shape {arr.shape}. Fix: pass a matrix "
                f"with one row per item, or a long table with columns {list(columns)}."
            )
        units = np.asarray(ratings.index) if isinstance(ratings, pd.DataFrame) else np.arange(arr.shape[0])
        n_units = arr.shape[0]
        keep = ~pd.isna(arr)
        unit_codes = np.nonzero(keep)[0]
        flat = arr[keep]
    vals = _sorted_values(flat) if values is None else list(values)
    lookup = {v: i for i, v in enumerate(vals)}
    try:
        codes = np.fromiter((lookup.get(v, -1) for v in flat), dtype=np.int64, count=len(flat))
    except TypeError:  # unhashable
        raise ValueError("ratings must be scalars (numbers or strings).") from None
    if (codes < 0).any():
        # numbers may arrive as 1.0 vs 1: retry numerically
        try:
            fv = np.asarray(flat, dtype=np.float64)
            nv = np.asarray(vals, dtype=np.float64)
            pos = {v: i for i, v in enumerate(nv.tolist())}
            codes = np.array([pos.get(v, -1) for v in fv.tolist()], dtype=np.int64)
        except (TypeError, ValueError):
            pass
    if (codes < 0).any():
        bad = flat[np.flatnonzero(codes < 0)[0]]
        raise ValueError(f"rating {bad!r} is not in values {vals}. Fix: add it to values= or recode it.")
    out = np.zeros((n_units, len(vals)), dtype=np.float64)
    np.add.at(out, (unit_codes, codes), 1.0)
    return out, np.asarray(vals, dtype=object if not _numeric(vals) else np.float64), units


def _numeric(vals: Sequence[Any]) -> bool:
    try:
        np.asarray(vals, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return not any(isinstance(v, str) for v in vals)


# ---- kernels -------------------------------------------------------------------------------------


def _pairable(counts: np.ndarray) -> np.ndarray:
    return counts[counts.sum(axis=1) >= 2]


def _coincidences(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Coincidence matrices for each row of ``weights`` (B, U) -> (B, V, V)."""
    n_u = counts.sum(axis=1)
    scaled = counts / (n_u - 1.0)[:, None]  # (U, V)
    B, U = weights.shape
    V = counts.shape[1]
    idx = np.arange(V)
    if U * V * V <= 2e7:  # per-unit contributions, then one matrix product for all replicates
        per_unit = scaled[:, :, None] * counts[:, None, :]
        per_unit[:, idx, idx] -= scaled
        return (weights @ per_unit.reshape(U, V * V)).reshape(B, V, V)
    out = np.empty((B, V, V))
    chunk = max(1, int(2e7 // max(1, U * V)))
    for s in range(0, B, chunk):
        w = weights[s : s + chunk]
        out[s : s + chunk] = np.matmul((w[:, :, None] * scaled[None]).transpose(0, 2, 1), counts)
    out[:, idx, idx] -= weights @ scaled
    return out


def _delta2(level: str, values: np.ndarray, n_c: np.ndarray) -> np.ndarray:
    """Squared differences, shape (V, V) or (B, V, V) for ordinal."""
    V = len(values)
    if level == "nominal":
        return 1.0 - np.eye(V)
    if level == "ordinal":
        cs = np.concatenate([np.zeros((n_c.shape[0], 1)), np.cumsum(n_c, axis=1)], axis=1)  # (B, V+1)
        c, k = np.meshgrid(np.arange(V), np.arange(V), indexing="ij")
        lo, hi = np.minimum(c, k), np.maximum(c, k)
        between = cs[:, hi + 1] - cs[:, lo]
        d = between - (n_c[:, c] + n_c[:, k]) / 2.0
        return d**2
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{level} alpha needs numeric values, got {list(values)[:5]}. Fix: pass "
                         "numeric ratings or values=, or use level='nominal'/'ordinal'.") from None
    diff = v[:, None] - v[None, :]
    if level == "interval":
        return diff**2
    if level == "ratio":
        if (v < 0).any():
            raise ValueError("ratio alpha needs values >= 0. Fix: use level='interval'.")
        s = v[:, None] + v[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(s == 0, 0.0, diff / np.where(s == 0, 1.0, s))
        return r**2
    raise ValueError(f"level={level!r} unknown; choose one of {LEVELS}.")


def _alpha_kernel(counts: np.ndarray, values: np.ndarray, level: str, weights: np.ndarray) -> np.ndarray:
    o = _coincidences(counts, weights)  # (B, V, V)
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    d2 = _delta2(level, values, n_c)
    if d2.ndim == 2:
        d2 = d2[None]
    do = (o * d2).sum(axis=(1, 2))
    de = (n_c[:, :, None] * n_c[:, None, :] * d2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(de > 0, 1.0 - (n - 1.0) * do / np.where(de > 0, de, 1.0), np.nan)


def _kappa_kernel(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    n_u = counts.sum(axis=1)
    p_u = ((counts**2).sum(axis=1) - n_u) / (n_u * (n_u - 1.0))
    wsum = weights.sum(axis=1)
    p_bar = weights @ p_u / wsum
    p_c = (weights @ counts) / (weights @ n_u)[:, None]
    p_e = (p_c**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p_e < 1, (p_bar - p_e) / np.where(p_e < 1, 1.0 - p_e, 1.0), np.nan)


def _statistic(name: str, counts: np.ndarray, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if name == "fleiss_kappa":
        return _kappa_kernel(counts, weights)
    return _alpha_kernel(counts, values, name.removeprefix("alpha_"), weights)


# ---- public --------------------------------------------------------------------------------------


def krippendorff_alpha(
    ratings: Any,
    *,
    level: str = "nominal",
    values: Sequence[Any] | None = None,
    counts: bool = False,
) -> float:
    """Krippendorff's alpha for any number of raters, with missing ratings.

    Parameters
    ----------
    ratings
        Units x raters matrix (NaN / None = missing), a long table ``item_id, rater, rating``,
        or (``counts=True``) a units x values count matrix. See :func:`count_matrix`.
    level
        ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``.
    values
        Possible values in order (needed for ordinal string labels; numeric for interval/ratio).
    counts
        ``ratings`` is a count matrix.

    Returns
    -------
    float
        Alpha (NaN when there is no variation or fewer than two pairable ratings).
    """
    if level not in LEVELS:
        raise ValueError(f"level={level!r} unknown; choose one of {LEVELS}.")
    c, vals, _ = count_matrix(ratings, values=values, counts=counts)
    c = _pairable(c)
    if c.shape[0] == 0:
        return float("nan")
    return float(_alpha_kernel(c, vals, level, np.ones((1, c.shape[0])))[0])


def fleiss_kappa(ratings: Any, *, values: Sequence[Any] | None = None, counts: bool = False) -> float:
    """Fleiss' kappa (units with fewer than two ratings are dropped).

    Parameters
    ----------
    ratings
        Units x raters matrix, long table, or (``counts=True``) units x categories counts, as for
        :func:`krippendorff_alpha`. With a constant number of raters per unit this is Fleiss'
        (1971) kappa (same as ``statsmodels.stats.inter_rater.fleiss_kappa``); otherwise its
        generalisation described in the module docstring.
    values, counts
        See :func:`count_matrix`.
    """
    c, _, _ = count_matrix(ratings, values=values, counts=counts)
    c = _pairable(c)
    if c.shape[0] == 0:
        return float("nan")
    return float(_kappa_kernel(c, np.ones((1, c.shape[0])))[0])


def agreement(
    ratings: Any,
    *,
    statistics: Sequence[str] = ("alpha_nominal", "fleiss_kappa"),
    values: Sequence[Any] | None = None,
    counts: bool = False,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Agreement statistics with percentile bootstrap CIs (items resampled with replacement).

    Parameters
    ----------
    ratings, values, counts
        As for :func:`krippendorff_alpha`.
    statistics
        Any of ``alpha_nominal``, ``alpha_ordinal``, ``alpha_interval``, ``alpha_ratio``,
        ``fleiss_kappa``.
    n_boot
        Bootstrap replicates (0: no interval). All statistics share the same resamples.
    ci
        Coverage of the interval.
    rng
        Seed or generator.

    Returns
    -------
    pandas.DataFrame
        One row per statistic: ``statistic, estimate, lower, upper, se, n_items, n_ratings,
        n_values, n_boot, ci``.
    """
    bad = [s for s in statistics if s not in _STATISTICS]
    if bad:
        raise ValueError(f"unknown statistic(s) {bad}; choose from {_STATISTICS}.")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r} must be in (0, 1), e.g. 0.95.")
    c, vals, _ = count_matrix(ratings, values=values, counts=counts)
    c = _pairable(c)
    U = c.shape[0]
    gen = np.random.default_rng(rng)
    boot_w = None
    if n_boot and U:
        draws = gen.integers(0, U, size=(n_boot, U))
        boot_w = np.zeros((n_boot, U))
        np.add.at(boot_w, (np.repeat(np.arange(n_boot), U), draws.ravel()), 1.0)
    rows = []
    for name in statistics:
        est = float(_statistic(name, c, vals, np.ones((1, U)))[0]) if U else float("nan")
        lo = hi = se = float("nan")
        if boot_w is not None:
            reps = _statistic(name, c, vals, boot_w)
            reps = reps[np.isfinite(reps)]
            if len(reps):
                lo, hi = (float(x) for x in np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2]))
                se = float(reps.std(ddof=1)) if len(reps) > 1 else float("nan")
        rows.append({"statistic": name, "estimate": est, "lower": lo, "upper": hi, "se": se,
                     "n_items": U, "n_ratings": int(c.sum()), "n_values": len(vals),
                     "n_boot": int(n_boot), "ci": ci})
    return pd.DataFrame(rows)


def compare_human_llm(
    cube: Any,
    ratings: pd.DataFrame | None = None,
    *,
    task: str | None = None,
    level: str = "nominal",
    by_model: bool = True,
    n_boot: int = 500,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Human noise vs LLM noise: alpha among human raters and among LLM configurations.

    The LLM "raters" of a task are its configurations (model x prompt x temperature [x sample]);
    labels ``-1`` (not annotated) and ``-2`` (outside the label set) count as missing. Human
    raters come from a long ``ratings`` table (``item_id, rater, rating`` with class names, e.g.
    ``TaskData.ratings``), restricted to the cube's items. Both use the task's class codes, so the
    alphas are on the same scale.

    Parameters
    ----------
    cube
        Label cube.
    ratings
        Human ratings (None: LLM rows only).
    task
        Task to compare (default: the cube's only task).
    level
        Alpha level (``"nominal"`` for unordered classes).
    by_model
        Add one row per model (its prompts x temperatures as raters).
    n_boot, ci, rng
        Bootstrap settings (see :func:`agreement`).

    Returns
    -------
    pandas.DataFrame
        Rows ``raters`` (``"humans"``, ``"LLM configurations"``, ``"LLM: <model>"``) with
        ``n_raters`` and the columns of :func:`agreement`.
    """
    from ..cube import validate_cube

    validate_cube(cube, check_values=False)
    tasks = [str(t) for t in cube["task"].values]
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"the cube has tasks {tasks}; pass task= to choose one.")
        task = tasks[0]
    if task not in tasks:
        raise ValueError(f"task {task!r} not in the cube's tasks {tasks}.")
    sub = cube.sel(task=task)
    real = np.asarray(sub["item_id"].values) != ""
    item_ids = np.asarray(sub["item_id"].values)[real]
    names = [str(n) for n in np.asarray(sub["class_name"].values) if str(n) != ""]
    codes = list(range(len(names)))
    gen = np.random.default_rng(rng)
    lab = sub["label"].transpose("item", ...)
    arr = np.asarray(lab.values)[real].astype(np.float64)

    def llm_rows(a: np.ndarray, label: str) -> dict[str, Any]:
        mat = a.reshape(a.shape[0], -1)
        mat = np.where(mat >= 0, mat, np.nan)
        used = ~np.all(np.isnan(mat), axis=0)
        res = agreement(mat[:, used], statistics=(f"alpha_{level}",), values=codes, n_boot=n_boot,
                        ci=ci, rng=gen).iloc[0].to_dict()
        return {"raters": label, "n_raters": int(used.sum()), **res}

    rows = []
    if ratings is not None:
        h = ratings[ratings["item_id"].astype(str).isin(set(item_ids.astype(str)))]
        lookup = {n: i for i, n in enumerate(names)}
        h_codes = h["rating"].map(lambda v: lookup.get(str(v), np.nan))
        if h_codes.isna().any():
            bad = h.loc[h_codes.isna(), "rating"].iloc[0]
            raise ValueError(f"human rating {bad!r} is not a class of task {task!r} ({names}). "
                             "Fix: recode the ratings to the task's class names.")
        long = pd.DataFrame({"item_id": h["item_id"].to_numpy(), "rater": h["rater"].to_numpy(),
                             "rating": h_codes.to_numpy(np.float64)})
        res = agreement(long, statistics=(f"alpha_{level}",), values=codes, n_boot=n_boot, ci=ci,
                        rng=gen).iloc[0].to_dict()
        rows.append({"raters": "humans", "n_raters": int(h["rater"].nunique()), **res})
    rows.append(llm_rows(arr, "LLM configurations"))
    if by_model:
        model_axis = list(lab.dims).index("model")
        for m, name in enumerate(np.asarray(sub["model"].values)):
            rows.append(llm_rows(np.take(arr, m, axis=model_axis), f"LLM: {name}"))
    out = pd.DataFrame(rows)
    out.insert(0, "task", task)
    return out


# ---- the alternative annotator test (Calderon et al. 2025) ------------------------------------------

def benjamini_yekutieli(p_values: np.ndarray, q: float = 0.05, axis: int = -1) -> np.ndarray:
    """Rejections of the Benjamini–Yekutieli step-up procedure (FDR ``q`` under any dependence).

    With ``m`` p-values sorted increasingly, reject the ``k`` smallest for the largest ``k`` with
    ``p_(k) <= k q / (m H_m)``, ``H_m = 1 + 1/2 + ... + 1/m``. NaN p-values count in ``m`` but are
    never rejected. Vectorised along ``axis``.
    """
    p = np.moveaxis(np.asarray(p_values, dtype=np.float64), axis, -1)
    m = p.shape[-1]
    if m == 0:
        return np.zeros(p.shape, dtype=bool)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), axis=-1)
    sp = np.take_along_axis(p, order, axis=-1)
    h_m = np.sum(1.0 / np.arange(1, m + 1))
    ok = sp <= np.arange(1, m + 1) * q / (m * h_m)
    k = np.where(ok.any(-1), m - np.argmax(ok[..., ::-1], axis=-1), 0)  # largest passing rank
    rej_sorted = np.arange(m) < k[..., None]
    out = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(out, order, rej_sorted, axis=-1)
    return np.moveaxis(out, -1, axis)


def alt_test(
    cube: Any,
    ratings: pd.DataFrame,
    *,
    task: str | None = None,
    scoring: str = "accuracy",
    class_values: dict[str, float] | None = None,
    epsilon: float = 0.2,
    q: float = 0.05,
    min_raters: int = 2,
    min_items: int = 30,
) -> Any:
    """The alternative annotator test (Calderon et al. 2025) for every configuration of a task.

    Can the LLM replace a human annotator? For each human rater ``j`` (leave one annotator out)
    and each item ``i`` that ``j`` rated, the LLM label and ``j``'s label are both scored against
    the *other* raters of the item (``scoring``): ``W_llm = 1[score_llm >= score_j]``,
    ``W_j = 1[score_j >= score_llm]``. The one-sided t-test of ``H0: mean(W_j - W_llm) >= ε``
    against ``<`` (``ε`` the cost-benefit margin: how much worse the LLM may be, since it is
    cheaper) gives a p-value per rater; Benjamini–Yekutieli at ``q`` across raters decides which
    are beaten. The **winning rate** is the share of raters beaten (the LLM "passes" at >= 0.5);
    the **advantage probability** is the mean over raters of ``mean(W_llm)``.

    Parameters
    ----------
    cube
        Label cube; every configuration of ``task`` is tested.
    ratings
        Individual human ratings, long format ``item_id, rater, rating`` (e.g.
        ``TaskData.ratings``); ``rating`` holds class names for ``scoring="accuracy"`` and numbers
        for ``"neg_rmse"``.
    task
        Task (default: the cube's only task).
    scoring
        ``"accuracy"`` (share of the other raters with the same label) or ``"neg_rmse"`` (minus the
        root mean squared difference to the other raters' numbers; LLM classes are turned into
        numbers by ``class_values``).
    class_values
        ``{class name: number}`` for ``"neg_rmse"``.
    epsilon, q
        Margin of the t-tests and FDR level (Calderon et al.: ε = 0.2 for crowd workers, 0.1 for
        experts; q = 0.05).
    min_raters
        Items with fewer human ratings are left out.
    min_items
        Raters with fewer remaining items are not tested.

    Returns
    -------
    xarray.Dataset
        On ``(model, prompt, temperature)``: ``winning_rate``, ``advantage_prob``, ``passes``
        (winning rate >= 0.5), ``n_raters``; on ``(rater, model, prompt, temperature)``:
        ``p_value``, ``beaten`` (BY rejection), ``advantage`` (mean ``W_llm``) and on ``rater``
        ``n_items``. An LLM answer outside the label set (``-2``) scores below every human
        (accuracy 0; ``-inf`` for ``neg_rmse``); items not annotated (``-1``) in a configuration
        make it NaN.

    Notes
    -----
    Everything is vectorised over configurations: with ``C[i, c]`` the class counts of item ``i``
    over all raters, the score of label ``x`` against the raters other than ``j`` is
    ``(C[i, x] - 1[x == r_ij]) / (n_i - 1)``; for ``neg_rmse`` the sums of the ratings and of
    their squares play the same role.
    """
    import xarray as xr
    from scipy import stats

    from ..cube import CONFIG_DIMS, validate_cube

    if scoring not in ("accuracy", "neg_rmse"):
        raise ValueError(f"alt_test: scoring={scoring!r}; use 'accuracy' or 'neg_rmse'.")
    if min_raters < 2:
        raise ValueError("alt_test: min_raters must be >= 2 (a left-out rater needs others to be scored against).")
    validate_cube(cube, check_values=False)
    tasks = [str(t) for t in cube["task"].values]
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"alt_test: the cube has tasks {tasks}; pass task= to choose one.")
        task = tasks[0]
    if task not in tasks:
        raise ValueError(f"alt_test: task {task!r} not in the cube's tasks {tasks}.")
    for col in ("item_id", "rater", "rating"):
        if col not in ratings.columns:
            raise ValueError(f"alt_test: ratings lack column {col!r}; expected item_id, rater, rating "
                             "(e.g. TaskData.ratings).")
    sub = cube.sel(task=task)
    ids = np.asarray(sub["item_id"].values).astype(str)
    real = np.flatnonzero(ids != "")
    names = [str(n) for n in np.asarray(sub["class_name"].values) if str(n) != ""]
    k = len(names)
    lab = sub["label"].transpose(*CONFIG_DIMS, "item").values[..., real]  # (M, P, T, I)
    cfg_shape = lab.shape[:3]
    lab = lab.reshape(-1, real.size).astype(np.int64)
    pos_of = pd.Index(ids[real])
    r = ratings[ratings["item_id"].astype(str).isin(set(ids[real]))]
    item = pos_of.get_indexer(r["item_id"].astype(str))
    rater_codes, raters = pd.factorize(r["rater"].astype(str), sort=True)
    n_i = np.bincount(item, minlength=real.size)
    keep = n_i[item] >= min_raters
    item, rater_codes = item[keep], rater_codes[keep]
    if scoring == "accuracy":
        lookup = {n: c for c, n in enumerate(names)}
        vals = r["rating"].astype(str).map(lookup)[keep]
        if vals.isna().any():
            bad = r["rating"][keep][vals.isna()].iloc[0]
            raise ValueError(f"alt_test: rating {bad!r} is not a class of task {task!r} ({names}). Fix: recode "
                             "the ratings to class names, or use scoring='neg_rmse' with class_values.")
        code = vals.to_numpy(np.int64)
        counts = np.zeros((real.size, k + 1))
        np.add.at(counts, (item, code), 1.0)
        n_o = n_i[item] - 1.0
        h_score = (counts[item, code] - 1.0) / n_o
        lab_c = np.where(lab == -2, k, lab)  # outside: a category no human uses
        llm_l = lab_c[:, item]  # (C, pairs)
        l_score = (counts[item[None, :], np.clip(llm_l, 0, k)] - (llm_l == code[None, :])) / n_o
        l_score = np.where(llm_l >= 0, l_score, np.nan)
    else:
        if class_values is None or set(class_values) != set(names):
            raise ValueError(f"alt_test: scoring='neg_rmse' needs class_values with a number for every class "
                             f"{names}. Fix: e.g. class_values={{'negative': -2, 'neutral': 0, 'positive': 2}}.")
        x = pd.to_numeric(r["rating"][keep], errors="raise").to_numpy(np.float64)
        s1 = np.bincount(item, weights=x, minlength=real.size)
        s2 = np.bincount(item, weights=x * x, minlength=real.size)
        n_o = n_i[item] - 1.0
        s1o, s2o = s1[item] - x, s2[item] - x * x

        def neg_rmse(v):
            return -np.sqrt(np.maximum(v * v - 2 * v * s1o / n_o + s2o / n_o, 0.0))

        h_score = neg_rmse(x)
        table = np.array([class_values[n] for n in names], dtype=np.float64)
        llm_v = np.where(lab >= 0, table[np.clip(lab, 0, k - 1)], np.nan)[:, item]
        l_score = np.where(lab[:, item] == -2, -np.inf, neg_rmse(llm_v))
    annotated = (lab != -1).all(axis=1)  # (C,)
    w_llm = (l_score >= h_score[None, :]).astype(np.float64)
    d = (h_score[None, :] >= l_score).astype(np.float64) - w_llm
    n_r = len(raters)
    n_items = np.bincount(rater_codes, minlength=n_r)
    tested = n_items >= min_items
    p = np.full((n_r, lab.shape[0]), np.nan)
    adv = np.full((n_r, lab.shape[0]), np.nan)
    for j in np.flatnonzero(tested):
        dj = d[:, rater_codes == j]
        nj = dj.shape[1]
        mean = dj.mean(1)
        sd = dj.std(1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (mean - epsilon) / (sd / np.sqrt(nj))
        t = np.where(sd > 0, t, np.where(mean < epsilon, -np.inf, np.where(mean > epsilon, np.inf, np.nan)))
        p[j] = stats.t.cdf(t, nj - 1)
        adv[j] = w_llm[:, rater_codes == j].mean(1)
    beaten = np.zeros(p.shape, dtype=bool)
    if tested.any():
        beaten[tested] = benjamini_yekutieli(p[tested], q, axis=0)
    n_tested = int(tested.sum())
    win = beaten.sum(0) / n_tested if n_tested else np.full(lab.shape[0], np.nan)
    advantage = np.nanmean(adv[tested], axis=0) if n_tested else np.full(lab.shape[0], np.nan)
    win = np.where(annotated, win, np.nan)
    advantage = np.where(annotated, advantage, np.nan)
    p = np.where(annotated[None, :], p, np.nan)
    dims = tuple(CONFIG_DIMS)
    rd = ("rater", *dims)
    out = xr.Dataset(
        {"winning_rate": (dims, win.reshape(cfg_shape)), "advantage_prob": (dims, advantage.reshape(cfg_shape)),
         "passes": (dims, (np.nan_to_num(win) >= 0.5).reshape(cfg_shape) & annotated.reshape(cfg_shape)),
         "n_raters": (dims, np.full(cfg_shape, n_tested)),
         "p_value": (rd, p.reshape(n_r, *cfg_shape)), "beaten": (rd, beaten.reshape(n_r, *cfg_shape)),
         "advantage": (rd, adv.reshape(n_r, *cfg_shape)), "n_items": ("rater", n_items)},
        coords={"rater": np.asarray(raters, dtype=object)} | {dm: sub[dm].values for dm in dims},
    )
    out.attrs.update({"method": "alternative annotator test (Calderon et al. 2025), leave one rater out, "
                                "one-sided t-tests, Benjamini-Yekutieli", "scoring": scoring,
                      "epsilon": float(epsilon), "q": float(q), "task": task})
    return out
