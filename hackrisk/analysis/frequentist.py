"""Per-configuration hypothesis tests on a label cube (frequentist).

:func:`test_hypotheses` tests every hypothesis under every configuration (model x prompt x
temperature) and on the human labels, in one vectorised pass: per task, the class indicators of
all configurations are multiplied with the group-membership matrix of all the task's hypotheses
(one float32 matrix product), and the 2 x 2 counts give the logistic-regression Wald test in
closed form (see :mod:`hackrisk.analysis._kernels`).

:func:`regress` fits regressions with covariates (OLS with HC errors, or logistic), batched over
the configurations that share a design matrix.

Conventions (``docs/results.md``): effects are group A minus group B; label ``-2`` (answered
outside the label set) counts as "not the class"; a configuration with any ``-1`` label among the
task's real items is *not annotated* (NaN statistics, conclusion 0, ``annotated = False``) and
counted in ``attrs["n_not_annotated"]``. The human side uses the items of each group that have a
human label (``truth >= 0``).

The optional ``sample`` dimension of the cube (repeated draws of one configuration) is not a
configuration: pass ``sample=`` to pick one draw, or ``.isel(sample=...)`` beforehand; a cube
with a single sample uses it; several samples without ``sample=`` raise.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from .. import conventions as _conv
from ..cube import CONFIG_DIMS, NOT_ANNOTATED, OUTSIDE, validate_cube
from ..hypotheses import align_group
from . import _kernels as K

__all__ = ["test_hypotheses", "regress"]

log = logging.getLogger(__name__)

_METHODS = ("wald",)


# --------------------------------------------------------------------------------------------
# input checks shared by both entry points
# --------------------------------------------------------------------------------------------


def _label_array(cube: xr.Dataset, sample: int | None) -> np.ndarray:
    """``label`` as a numpy array (task, model, prompt, temperature, item)."""
    lab = cube["label"]
    if "sample" in lab.dims:
        n_s = lab.sizes["sample"]
        if sample is None:
            if n_s != 1:
                raise ValueError(
                    f"cube 'label' has a 'sample' dimension of size {n_s} (repeated draws per "
                    "configuration). Fix: pass sample=<index> to test one draw, or select one "
                    "with cube.isel(sample=0)."
                )
            sample = 0
        if not 0 <= sample < n_s:
            raise ValueError(f"sample={sample} is outside the cube's 0..{n_s - 1}. Fix: pick an existing draw.")
        lab = lab.isel(sample=sample)
    elif sample not in (None, 0):
        raise ValueError(f"sample={sample} given but the cube has no 'sample' dimension. Fix: drop sample=.")
    return np.asarray(lab.values)


def _check_hypotheses(cube: xr.Dataset, hyp: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a hypotheses Dataset against the cube; return (task index, class code, group)."""
    if not isinstance(hyp, xr.Dataset) or "group" not in hyp:
        raise ValueError("hypotheses must be an xarray.Dataset with a 'group' variable (hypothesis, item). "
                         "Fix: build it with hackrisk.hypotheses.generate_hypotheses(cube).")
    if hyp["group"].dims != ("hypothesis", "item"):
        raise ValueError(f"hypotheses 'group' has dims {hyp['group'].dims}, expected ('hypothesis', 'item').")
    for name in ("task", "class_code"):
        if name not in hyp.coords or hyp[name].dims != ("hypothesis",):
            raise ValueError(f"hypotheses lack the coordinate {name!r} on 'hypothesis'. "
                             "Fix: build them with hackrisk.hypotheses.generate_hypotheses(cube).")
    if hyp.sizes["hypothesis"] == 0:
        raise ValueError("hypotheses is empty (no hypothesis). Fix: check attrs['skipped'] of the generator.")
    tasks = [str(t) for t in cube["task"].values]
    pos = {t: i for i, t in enumerate(tasks)}
    h_task = [str(t) for t in hyp["task"].values]
    unknown = sorted(set(h_task) - set(pos))
    if unknown:
        raise ValueError(f"hypotheses refer to task(s) {unknown} that the cube does not have ({tasks}).")
    t_idx = np.array([pos[t] for t in h_task], dtype=np.int64)
    cls = np.asarray(hyp["class_code"].values).astype(np.int64)
    n_cls = np.asarray((cube["class_name"] != "").sum("class").values)
    bad = (cls < 0) | (cls >= n_cls[t_idx])
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"hypothesis {j}: class_code {cls[j]} is not a class of task {h_task[j]!r}.")
    raw = np.asarray(hyp["group"].values)
    if raw.min(initial=0) < -1 or raw.max(initial=0) > 1:
        raise ValueError("hypotheses 'group' must hold 1 (group A), 0 (group B) or -1 (neither).")
    group = align_group(cube, hyp)  # by item id (hypotheses from generate_hypotheses), never by position
    real = np.asarray(cube["item_id"].values) != ""
    on_pad = (group >= 0) & ~real[t_idx]
    if on_pad.any():
        j = int(np.argwhere(on_pad)[0][0])
        raise ValueError(f"hypothesis {j} puts padding items (item_id == '') of task {h_task[j]!r} in a group. "
                         "Fix: set group = -1 there.")
    n_a, n_b = (group == 1).sum(1), (group == 0).sum(1)
    empty = (n_a == 0) | (n_b == 0)
    if empty.any():
        j = int(np.flatnonzero(empty)[0])
        raise ValueError(f"hypothesis {j} (task {h_task[j]!r}) has an empty group (n_a={n_a[j]}, n_b={n_b[j]}). "
                         "Fix: drop it; the generator requires at least 2 items per group.")
    truth = np.asarray(cube["truth"].values)
    no_human = [tasks[t] for t in np.unique(t_idx) if not (truth[t][real[t]] >= 0).any()]
    if no_human:
        raise ValueError(f"task(s) {no_human} have no human labels (truth is -1 everywhere), so their "
                         "hypotheses cannot be tested against humans. Fix: add human labels or drop them.")
    return t_idx, cls, group


def _blas_single_thread():
    """Context limiting BLAS to one thread (if threadpoolctl is installed).

    The per-task products are thin (configurations x items times items x a few dozen groups):
    a single thread does them at full speed, while a threaded BLAS spends most of its time
    synchronising, several times slower when other processes share the cores.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the products still run, threaded
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _unique_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean matrix and, per row, the index of its distinct row."""
    packed = np.packbits(mask, axis=1)
    first: dict[bytes, int] = {}
    inv = np.array([first.setdefault(r.tobytes(), len(first)) for r in packed], dtype=np.int64)
    keep = np.zeros(len(first), dtype=np.int64)
    keep[inv] = np.arange(inv.size)
    return mask[keep], inv


def _config_coords(cube: xr.Dataset) -> dict:
    """Coordinates of the configuration dims, including non-index coords on them (e.g. model size)."""
    coords = {d: cube[d].values for d in CONFIG_DIMS}
    for name, c in cube.coords.items():
        if name not in CONFIG_DIMS and len(c.dims) == 1 and c.dims[0] in CONFIG_DIMS:
            coords[name] = (c.dims[0], c.values)
    return coords


def _hypothesis_coords(hyp: xr.Dataset) -> dict:
    return {name: ("hypothesis", c.values) for name, c in hyp.coords.items()
            if c.dims == ("hypothesis",)} | {"hypothesis": hyp["hypothesis"].values}


def _not_annotated_report(cube, annotated_tc: np.ndarray, used_tasks: np.ndarray) -> tuple[int, list[str]]:
    """Configurations of the tested tasks that are not fully annotated: ``(count, names)``.

    ``names`` are ``task/model/prompt/temperature``. Configurations whose prompt does not exist
    for the task (empty ``prompt_template``, e.g. a task with fewer paraphrases) are not missing
    labels: they are left out of the list and only logged. All of them have ``annotated = False``.
    """
    shape = tuple(cube.sizes[d] for d in CONFIG_DIMS)
    tpl = np.asarray(cube["prompt_template"].values) if "prompt_template" in cube else None
    names, n_absent = [], 0
    for t in used_tasks:
        for c in np.flatnonzero(~annotated_tc[t]):
            m, p, k = np.unravel_index(c, shape)
            if tpl is not None and tpl[t, p] == "":
                n_absent += 1
                continue
            names.append(f"{cube['task'].values[t]}/{cube['model'].values[m]}/"
                         f"{cube['prompt'].values[p]}/{cube['temperature'].values[k]}")
    if n_absent:
        log.info("%d (task, configuration) pairs use a prompt the task does not have (annotated=False).",
                 n_absent)
    return len(names), names


# --------------------------------------------------------------------------------------------
# test_hypotheses
# --------------------------------------------------------------------------------------------


def _count_tasks(labels, truth, real, group, t_idx, cls, used_tasks, k_a, k_b, hn_a, hn_b, n_a, n_b, annotated_tc):
    """Fill the class counts of every hypothesis x (configuration + humans), one product per task, and
    the group sizes."""
    for t in used_tasks:  # loop over tasks; every configuration of the task in one product
        cols = np.flatnonzero(real[t])
        hs = np.flatnonzero(t_idx == t)
        lab_t = labels[t][:, cols]
        annotated_tc[t] = (lab_t != NOT_ANNOTATED).all(axis=1)
        tr = truth[t, cols]
        g = group[hs][:, cols]
        # Distinct membership rows only: group A of every hypothesis and "in either group"
        # (k_b = k_{A or B} - k_a). One-vs-rest hypotheses share their groups across classes and
        # most hypotheses use every item, so this removes most rows before the product.
        rows, inv = _unique_rows(np.concatenate([g == 1, g >= 0]))
        codes, cls_pos = np.unique(cls[hs], return_inverse=True)
        counts = K.count_by_group(np.vstack([lab_t, tr[None, :]]), rows, codes)  # (k, C+1, rows)
        ka = counts[cls_pos, :, inv[: hs.size]]
        k_a[hs] = ka
        k_b[hs] = counts[cls_pos, :, inv[hs.size:]] - ka
        hn_a[hs], hn_b[hs] = K.group_totals(rows, inv, tr >= 0)
        n_a[hs], n_b[hs] = K.group_totals(rows, inv)


def _prepare(cube: xr.Dataset, hypotheses: xr.Dataset, sample: int | None):
    """Validated inputs of the tests: hypothesis task/class/group, labels (task, config, item), truth."""
    validate_cube(cube)
    t_idx, cls, group = _check_hypotheses(cube, hypotheses)
    labels = _label_array(cube, sample)
    cfg_shape = labels.shape[1:4]
    labels = labels.reshape(labels.shape[0], int(np.prod(cfg_shape)), labels.shape[-1])
    truth = np.asarray(cube["truth"].values)
    real = np.asarray(cube["item_id"].values) != ""
    return t_idx, cls, group, labels, cfg_shape, truth, real


def test_hypotheses(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    alpha: float = 0.05,
    zero_rule: str | None = None,
    method: str = "wald",
    sample: int | None = None,
    conventions: str = "hackrisk",
) -> xr.Dataset:
    """Test every hypothesis under every configuration and on the human labels.

    For hypothesis ``h`` (task, groups A/B, class ``c``) and configuration ``m``: logistic
    regression of ``1[label == c]`` on the group indicator (A = 1), two-sided Wald test at
    ``alpha``. With one binary regressor the MLE is closed form from the 2 x 2 counts, so every
    (hypothesis, configuration) is tested in one vectorised pass (per task one float32 matrix
    product of class indicators and group memberships); the results equal ``statsmodels.Logit``.

    Parameters
    ----------
    cube
        A label cube (:func:`hackrisk.make_cube`).
    hypotheses
        Hypotheses on that cube (:func:`hackrisk.hypotheses.generate_hypotheses`): ``group``
        (hypothesis, item) with 1 = A, 0 = B, -1 = neither, and coords ``task``, ``class_code``.
    alpha
        Significance level of the two-sided test.
    zero_rule
        How tables with a zero cell (a group with none or all of its items in the class, where the
        MLE is infinite) are decided:

        * ``"paper"`` (default; Baumann et al. 2025): LLM side — the class absent (or universal)
          in both groups → no difference; in exactly one group → significant towards the other
          (conclusion = sign of ``estimate``, ``p_value`` 0, ``se`` inf, ``z`` NaN). Human side —
          ``log_or``/``se``/``z``/``p_value`` NaN and ``human_conclusion`` 0 (the generator
          normally drops such hypotheses). ``zero_decided`` / ``human_zero_decided`` flag them.
        * ``"firth"``: Firth-penalised logistic regression (for one binary regressor: 0.5 added
          to each cell; SE from the Fisher information at that estimate), Wald test.
        * ``"exact"``: Fisher's exact test p-value (``log_or``, ``se``, ``z`` stay Wald's).

        * ``"glm"`` (default under ``conventions="paper"``): the authors' decision — a class share
          of exactly 0 in a group is decided as ``"paper"`` does (LLM side by the counts, human
          side NaN / 0); every other table goes to R's ``glm`` reproduced iteration by iteration
          (:func:`hackrisk.analysis._kernels.glm_two_groups`), so a group made only of the class
          gives a finite coefficient with a huge SE and p near 1 ("no difference"), on both sides.

        With ``"firth"`` and ``"exact"`` no convention decides, so ``zero_decided`` is all False.
        Default: ``"paper"`` (hackrisk's zero-cell rule) under ``conventions="hackrisk"``,
        ``"glm"`` under ``conventions="paper"``; an explicit ``zero_rule`` overrides the preset.
    method
        ``"wald"`` (the only test implemented; ``zero_rule="exact"`` replaces its p-value).
    sample
        Which draw of the cube's ``sample`` dimension to test (see the module docstring).
    conventions
        ``"hackrisk"`` (default) or ``"paper"`` (``docs/conventions.md``). Under ``"paper"`` the
        zero rule defaults to ``"glm"`` and a (task, configuration) whose share of unparseable
        answers (label ``-2``) among the task's items exceeds 1 % is left out as the authors do:
        ``annotated`` False, statistics NaN, ``unparseable_excluded`` True, counted in
        ``attrs["n_unparseable_excluded"]``.

    Returns
    -------
    xarray.Dataset
        Dims ``(hypothesis, model, prompt, temperature)``: ``estimate`` (p_A − p_B), ``log_or``,
        ``se``, ``z``, ``p_value``, ``conclusion`` (int8 −1/0/+1), ``zero_decided``, ``annotated``,
        ``k_a``, ``k_b``, ``n_a``, ``n_b`` (float; NaN counts where not annotated). On
        ``hypothesis``: the same with a ``human_`` prefix (counts are int; items without a human
        label are left out). Hypothesis coords are copied from ``hypotheses``, configuration
        coords (incl. non-index ones such as model size) from the cube. attrs: ``method``,
        ``alpha``, ``zero_rule``, ``sample``, ``n_not_annotated`` (number of (task,
        configuration) pairs of the tested tasks with missing labels) and ``not_annotated``
        (their ``task/model/prompt/temperature`` names).

    Raises
    ------
    ValueError
        Invalid cube or hypotheses, unknown tasks or classes, empty groups, groups on padding
        items, tasks without human labels, an unknown ``zero_rule``/``method``, or an ambiguous
        ``sample``.

    Examples
    --------
    >>> cube, _ = hackrisk.simulate_multiverse(rng=0)            # doctest: +SKIP
    >>> hyps = hackrisk.hypotheses.generate_hypotheses(cube)      # doctest: +SKIP
    >>> res = test_hypotheses(cube, hyps)                        # doctest: +SKIP
    >>> (res.conclusion != res.human_conclusion).mean()          # doctest: +SKIP
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is not supported; use one of {_METHODS}.")
    _conv.check_conventions(conventions, "test_hypotheses")
    if zero_rule is None:
        zero_rule = "glm" if conventions == "paper" else "paper"
    if zero_rule not in K.ZERO_RULES:
        raise ValueError(f"zero_rule={zero_rule!r} is not one of {K.ZERO_RULES}. Fix: use 'paper' (default), "
                         "'firth' or 'exact'.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must lie in (0, 1).")
    from .._chunked import is_lazy

    if is_lazy(cube):  # dask-backed labels (open_cube): count block by block, identical results
        from .._chunked import count_lazy

        counts = count_lazy(cube, hypotheses, check_hypotheses=_check_hypotheses, label_array=_label_array,
                            sample=sample)
        out = tests_from_counts(cube, hypotheses, counts, alpha=alpha, zero_rule=zero_rule, method=method,
                                sample=sample)
        return _apply_conventions(cube, out, conventions, sample)
    t_idx, cls, group, labels, cfg_shape, truth, real = _prepare(cube, hypotheses, sample)
    n_task, n_cfg = labels.shape[:2]

    n_h = group.shape[0]
    k_a = np.empty((n_h, n_cfg + 1), dtype=np.float64)  # last column: humans
    k_b = np.empty_like(k_a)
    hn_a = np.empty(n_h, dtype=np.int64)
    hn_b = np.empty(n_h, dtype=np.int64)
    n_a, n_b = np.zeros(n_h, dtype=np.int64), np.zeros(n_h, dtype=np.int64)
    annotated_tc = np.ones((n_task, n_cfg), dtype=bool)
    used_tasks = np.unique(t_idx)
    with _blas_single_thread():
        _count_tasks(labels, truth, real, group, t_idx, cls, used_tasks, k_a, k_b, hn_a, hn_b, n_a, n_b,
                     annotated_tc)

    counts = {"group": group, "t_idx": t_idx, "n_cfg": n_cfg, "cfg_shape": cfg_shape, "k_a": k_a, "k_b": k_b,
              "hn_a": hn_a, "hn_b": hn_b, "n_a": n_a, "n_b": n_b, "annotated_tc": annotated_tc,
              "used_tasks": used_tasks}
    out = tests_from_counts(cube, hypotheses, counts, alpha=alpha, zero_rule=zero_rule, method=method,
                            sample=sample)
    return _apply_conventions(cube, out, conventions, sample)


def unparseable_share(cube: xr.Dataset, *, sample: int | None = None) -> xr.DataArray:
    """Share of unparseable answers (label ``-2``) per (task, configuration) among the task's items.

    Works on lazy (dask-backed) cubes too. Padding items (``item_id == ""``) are not counted.
    """
    lab = cube["label"]
    if "sample" in lab.dims:
        lab = lab.isel(sample=0 if sample is None else sample)
    real = cube["item_id"] != ""
    n_real = real.sum("item")
    n_out = ((lab == OUTSIDE) & real).sum("item")
    return (n_out / n_real.where(n_real > 0)).compute()


def _apply_conventions(cube: xr.Dataset, out: xr.Dataset, conventions: str, sample: int | None) -> xr.Dataset:
    """Paper preset: leave out the (task, configuration) pairs with more than 1 % unparseable answers."""
    out.attrs["conventions"] = conventions
    if conventions != "paper":
        return out
    share = unparseable_share(cube, sample=sample)
    bad = (share > _conv.PAPER_MAX_UNPARSEABLE).sel(task=out["task"])  # (hypothesis, model, prompt, temperature)
    bad = bad.drop_vars([c for c in bad.coords if c not in out.coords], errors="ignore")
    bad = bad.transpose(*out["conclusion"].dims)
    for name in ("estimate", "log_or", "se", "z", "p_value", "k_a", "k_b", "n_a", "n_b"):
        if name in out:
            out[name] = out[name].where(~bad)
    out["conclusion"] = xr.where(bad, np.int8(0), out["conclusion"]).astype(np.int8)
    out["zero_decided"] = out["zero_decided"] & ~bad
    out["annotated"] = out["annotated"] & ~bad
    out["unparseable_excluded"] = bad
    used = np.unique(np.asarray(out["task"].values).astype(str))
    n_bad = int((share.sel(task=used) > _conv.PAPER_MAX_UNPARSEABLE).sum())
    out.attrs["n_unparseable_excluded"] = n_bad
    out.attrs["max_unparseable"] = _conv.PAPER_MAX_UNPARSEABLE
    if n_bad:
        log.info("test_hypotheses(conventions='paper'): %d (task, configuration) pairs with more than "
                 "1%% unparseable answers were left out (unparseable_excluded).", n_bad)
    return out


def tests_from_counts(cube: xr.Dataset, hypotheses: xr.Dataset, counts: dict, *, alpha: float,
                      zero_rule: str, method: str, sample: int | None) -> xr.Dataset:
    """The Dataset of :func:`test_hypotheses` from the 2 x 2 counts of every (hypothesis, configuration).

    ``counts`` holds ``group`` (H, I), ``t_idx`` (H,), ``n_cfg``, ``cfg_shape``, ``k_a`` / ``k_b``
    (H, n_cfg + 1; the last column counts the human labels), ``hn_a`` / ``hn_b`` (H,, human
    labels in each group), ``n_a`` / ``n_b`` (H,, items in each group),
    ``annotated_tc`` (task, n_cfg) and ``used_tasks``. Shared by the in-memory and the chunked
    (:mod:`hackrisk.scale`) paths, so both give identical results.
    """
    group, t_idx, n_cfg, cfg_shape = counts["group"], counts["t_idx"], counts["n_cfg"], counts["cfg_shape"]
    k_a, k_b, hn_a, hn_b = counts["k_a"], counts["k_b"], counts["hn_a"], counts["hn_b"]
    annotated_tc = counts["annotated_tc"]
    n_h = group.shape[0]
    n_a = counts["n_a"].astype(np.float64)
    n_b = counts["n_b"].astype(np.float64)
    annotated = annotated_tc[t_idx]  # (H, C)
    llm_ka = np.where(annotated, k_a[:, :n_cfg], np.nan)
    llm_kb = np.where(annotated, k_b[:, :n_cfg], np.nan)
    res = K.two_by_two(llm_ka, n_a[:, None], llm_kb, n_b[:, None], zero_rule=zero_rule, alpha=alpha,
                       zero_conclusion="llm")
    hum = K.two_by_two(k_a[:, n_cfg], hn_a, k_b[:, n_cfg], hn_b, zero_rule=zero_rule, alpha=alpha,
                       zero_conclusion="human")
    n_missing, missing = _not_annotated_report(cube, annotated_tc, counts["used_tasks"])
    if n_missing:
        log.info("test_hypotheses: %d (task, configuration) pairs are not fully annotated and were "
                 "excluded (annotated=False).", n_missing)

    dims = ("hypothesis", *CONFIG_DIMS)
    shape = (n_h, *cfg_shape)

    def cfg(a):
        return (dims, np.asarray(a).reshape(shape))

    names = ("estimate", "log_or", "se", "z", "p_value", "conclusion", "zero_decided")
    data = {name: cfg(res[name]) for name in names}
    data["annotated"] = cfg(annotated)
    data["n_a"] = cfg(np.where(annotated, n_a[:, None], np.nan))
    data["n_b"] = cfg(np.where(annotated, n_b[:, None], np.nan))
    data["k_a"] = cfg(llm_ka)
    data["k_b"] = cfg(llm_kb)
    for name in names:
        data[f"human_{name}"] = ("hypothesis", hum[name])
    data["human_n_a"] = ("hypothesis", hn_a)
    data["human_n_b"] = ("hypothesis", hn_b)
    data["human_k_a"] = ("hypothesis", k_a[:, n_cfg].astype(np.int64))
    data["human_k_b"] = ("hypothesis", k_b[:, n_cfg].astype(np.int64))
    out = xr.Dataset(data, coords=_config_coords(cube) | _hypothesis_coords(hypotheses))
    out.attrs.update({
        "method": method,
        "alpha": float(alpha),
        "zero_rule": zero_rule,
        "conventions": "hackrisk",
        "sample": -1 if "sample" not in cube["label"].dims else int(sample or 0),
        "n_not_annotated": int(n_missing),
        "not_annotated": missing,
    })
    return out


# --------------------------------------------------------------------------------------------
# regress
# --------------------------------------------------------------------------------------------


def _covariate_columns(cube: xr.Dataset, t: int, cols: np.ndarray, covariates: Sequence[str],
                       ) -> tuple[np.ndarray, list[str]]:
    """Design columns (n, q) and their term names for the covariates of task ``t``."""
    blocks, names = [], []
    for name in covariates:
        key = name if name.startswith("cov_") else f"cov_{name}"
        if key not in cube:
            raise ValueError(f"covariate {name!r} is not in the cube (no variable {key!r}). Fix: use one of "
                             f"{[str(v)[4:] for v in cube.data_vars if str(v).startswith('cov_')]}.")
        short = key[4:]
        v = np.asarray(cube[key].values)[t, cols]
        task = cube["task"].values[t]
        if v.dtype == bool:
            blocks.append(v.astype(np.float64)[:, None])
            names.append(short)
        elif np.issubdtype(v.dtype, np.datetime64):
            if np.isnat(v).any():
                raise ValueError(f"covariate {name!r} has missing dates in task {task!r}. Fix: fill or drop "
                                 "those items from the hypotheses (group = -1).")
            days = (v - v.min()) / np.timedelta64(1, "D")
            blocks.append(days.astype(np.float64)[:, None])
            names.append(short)
        elif np.issubdtype(v.dtype, np.number):
            if np.isnan(v.astype(np.float64)).any():
                raise ValueError(f"covariate {name!r} has NaN values in task {task!r}. Fix: impute them or "
                                 "set group = -1 for those items.")
            blocks.append(v.astype(np.float64)[:, None])
            names.append(short)
        else:
            s = v.astype(str)
            if (s == "").any():
                raise ValueError(f"covariate {name!r} has missing values ('') in task {task!r}. Fix: fill "
                                 "them or set group = -1 for those items.")
            levels = np.unique(s)
            for lev in levels[1:]:  # treatment coding, first level (sorted) is the reference
                blocks.append((s == lev).astype(np.float64)[:, None])
                names.append(f"{short}[{lev}]")
    if not blocks:
        return np.empty((cols.size, 0)), []
    return np.hstack(blocks), names


def regress(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    covariates: Sequence[str] = (),
    *,
    model: str = "ols",
    cov_type: str | None = None,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    sample: int | None = None,
) -> xr.Dataset:
    """Regress ``1[label == class]`` on the group indicator and covariates, for every configuration.

    For each hypothesis the design ``[1, group A, covariates...]`` over the items in either group
    is shared by all configurations, so the fits are batched across configurations: OLS as one
    least-squares solve for the matrix of outcomes, logistic regression as a batched Newton–Raphson
    (one ``einsum`` per iteration over all configurations). The loop is over hypotheses only.

    Parameters
    ----------
    cube, hypotheses
        As in :func:`test_hypotheses`.
    covariates
        Covariate names (``cov_<name>`` variables of the cube, with or without the prefix).
        Booleans and numbers enter as they are, dates as days since the task's first date,
        strings/categories as treatment-coded dummies (first level in sorted order is the
        reference). Missing covariate values raise (set ``group = -1`` for those items).
    model
        ``"ols"`` (linear probability model; the group coefficient is an adjusted difference in
        proportions) or ``"logit"`` (the group coefficient is an adjusted log odds ratio).
    cov_type
        OLS: ``"nonrobust"``, ``"HC0"``, ``"HC1"`` (default), ``"HC2"``, ``"HC3"``. Logit:
        ``"nonrobust"`` (default) or ``"HC0"``. As in statsmodels, p-values use the t distribution
        for non-robust OLS and the normal distribution otherwise.
    alpha
        Significance level.
    zero_rule
        Logit only: ``"paper"`` applies the zero-count convention of :func:`test_hypotheses` when
        a group has none or all of its items in the class (the MLE does not exist);
        ``"none"`` leaves those fits unconverged (NaN). OLS needs no convention.
    sample
        See :func:`test_hypotheses`.

    Returns
    -------
    xarray.Dataset
        Dims ``(hypothesis, model, prompt, temperature)``: ``estimate`` (group coefficient),
        ``se``, ``z``, ``p_value``, ``conclusion``, ``zero_decided``, ``annotated``,
        ``converged``; ``coef`` and ``coef_se`` with an extra ``term`` dim (``const``,
        ``group``, covariate terms; NaN where a term does not apply to a hypothesis' task); the
        same on human labels with a ``human_`` prefix. attrs: ``method`` (``"ols:HC1"``, ...),
        ``alpha``, ``zero_rule``, ``covariates``, ``n_not_annotated``, ``not_annotated``.
    """
    if model not in ("ols", "logit"):
        raise ValueError(f"model={model!r}: use 'ols' or 'logit'.")
    cov_type = cov_type or ("HC1" if model == "ols" else "nonrobust")
    allowed = ("nonrobust", "HC0", "HC1", "HC2", "HC3") if model == "ols" else ("nonrobust", "HC0")
    if cov_type not in allowed:
        raise ValueError(f"cov_type={cov_type!r} is not available for model={model!r}; use one of {allowed}.")
    if zero_rule not in ("paper", "none"):
        raise ValueError(f"zero_rule={zero_rule!r} for regress: use 'paper' or 'none'.")
    if isinstance(covariates, str):
        covariates = [covariates]
    t_idx, cls, group, labels, cfg_shape, truth, real = _prepare(cube, hypotheses, sample)
    n_task, n_cfg = labels.shape[:2]
    n_h = group.shape[0]

    # term names: union over the tested tasks (categorical levels may differ between tasks)
    designs, terms = {}, ["const", "group"]
    for t in np.unique(t_idx):
        cols = np.flatnonzero(real[t])
        z_t, names = _covariate_columns(cube, t, cols, covariates)
        if z_t.shape[1]:
            z_cells, cell = np.unique(z_t, axis=0, return_inverse=True)
        else:
            z_cells, cell = np.empty((1, 0)), np.zeros(cols.size, dtype=np.int64)
        designs[t] = (cols, cell.reshape(-1), z_cells, names)
        terms += [n for n in names if n not in terms]
    n_term = len(terms)
    annotated_tc = np.ones((n_task, n_cfg), dtype=bool)
    for t in designs:
        annotated_tc[t] = (labels[t][:, designs[t][0]] != NOT_ANNOTATED).all(axis=1)

    coef = np.full((n_h, n_cfg + 1, n_term), np.nan)
    coef_se = np.full_like(coef, np.nan)
    converged = np.zeros((n_h, n_cfg + 1), dtype=bool)
    zero = np.zeros((n_h, n_cfg + 1), dtype=bool)
    zero_sign = np.zeros((n_h, n_cfg + 1))
    df_resid = np.full((n_h, n_cfg + 1), np.inf)
    cache: dict = {}
    for h in range(n_h):  # loop over hypotheses; all configurations of one in a batched fit
        t = t_idx[h]
        cols, cell, z_cells, names = designs[t]
        g = group[h, cols]
        key = (t, g.tobytes())
        if key not in cache:
            cache[key] = _grouped_design(g, cell, z_cells, truth[t, cols], h, hypotheses)
        (xr_llm, w_llm, order, starts), (xr_hum, w_hum, inv_hum), inside = cache[key]
        term_pos = [0, 1] + [terms.index(n) for n in names]
        ann = np.flatnonzero(annotated_tc[t])
        # per distinct design row: number of items labelled `class` under each configuration
        hit = labels[t][np.ix_(ann, cols[inside][order])] == cls[h]  # (C_ann, n) sorted by row
        k_llm = np.add.reduceat(hit, starts, axis=1, dtype=np.float64).T  # (rows, C_ann)
        tr = truth[t, cols][inside]
        has = tr >= 0
        k_hum = np.bincount(inv_hum, weights=(tr[has] == cls[h]), minlength=len(w_hum))[:, None]
        for xx, ww, kk, out_cols in ((xr_llm, w_llm, k_llm, ann), (xr_hum, w_hum, k_hum, np.array([n_cfg]))):
            if kk.shape[1] == 0:
                continue
            if model == "ols":
                beta, cov, dfr = K.ols_batched(xx, kk, weights=ww, cov_type=cov_type, binary=True)
                ok = np.ones(kk.shape[1], dtype=bool)
                df_resid[h, out_cols] = dfr
            else:
                a = xx[:, 1] == 1
                ka, kb = kk[a].sum(0), kk[~a].sum(0)
                na, nb = ww[a].sum(), ww[~a].sum()
                degen = (ka == 0) | (ka == na) | (kb == 0) | (kb == nb)
                beta, cov, ok = K.logit_batched(xx, kk, weights=ww, cov_type=cov_type)
                if zero_rule == "paper":
                    ok = ok & ~degen
                    beta[degen] = np.nan
                    cov[degen] = np.nan
                    zero[h, out_cols] = degen
                    with np.errstate(invalid="ignore", divide="ignore"):
                        zero_sign[h, out_cols] = np.sign(ka / na - kb / nb)
            coef[h, out_cols[:, None], term_pos] = beta
            coef_se[h, out_cols[:, None], term_pos] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
            converged[h, out_cols] = ok

    est = coef[:, :, 1]
    se = coef_se[:, :, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = est / se
    if model == "ols" and cov_type == "nonrobust":
        # lazily: scipy.stats takes ~1 s to import, and only this branch needs it
        from scipy import stats

        p = 2 * stats.t.sf(np.abs(z), df_resid)
    else:
        p = K.normal_p(z)
    sign = np.sign(np.nan_to_num(est))
    conclusion = np.where(p < alpha, sign, 0.0)
    # paper convention (logit): LLM side decided by the counts, human side NaN / 0
    conclusion[:, :n_cfg] = np.where(zero[:, :n_cfg], zero_sign[:, :n_cfg], conclusion[:, :n_cfg])
    p[:, :n_cfg] = np.where(zero[:, :n_cfg], np.where(zero_sign[:, :n_cfg] != 0, 0.0, 1.0), p[:, :n_cfg])
    conclusion[:, n_cfg] = np.where(zero[:, n_cfg], 0.0, conclusion[:, n_cfg])

    annotated = annotated_tc[t_idx]
    n_missing, missing = _not_annotated_report(cube, annotated_tc, np.unique(t_idx))
    dims = ("hypothesis", *CONFIG_DIMS)
    shape = (n_h, *cfg_shape)

    def cfg(a):
        return (dims, np.asarray(a)[:, :n_cfg].reshape(shape))

    data = {
        "estimate": cfg(est), "se": cfg(se), "z": cfg(z), "p_value": cfg(p),
        "conclusion": cfg(conclusion.astype(np.int8)), "zero_decided": cfg(zero),
        "annotated": (dims, annotated.reshape(shape)), "converged": cfg(converged),
        "coef": ((*dims, "term"), coef[:, :n_cfg].reshape(*shape, n_term)),
        "coef_se": ((*dims, "term"), coef_se[:, :n_cfg].reshape(*shape, n_term)),
        "human_estimate": ("hypothesis", est[:, n_cfg]), "human_se": ("hypothesis", se[:, n_cfg]),
        "human_z": ("hypothesis", z[:, n_cfg]), "human_p_value": ("hypothesis", p[:, n_cfg]),
        "human_conclusion": ("hypothesis", conclusion[:, n_cfg].astype(np.int8)),
        "human_zero_decided": ("hypothesis", zero[:, n_cfg]),
        "human_converged": ("hypothesis", converged[:, n_cfg]),
        "human_coef": (("hypothesis", "term"), coef[:, n_cfg]),
        "human_coef_se": (("hypothesis", "term"), coef_se[:, n_cfg]),
    }
    out = xr.Dataset(data, coords=_config_coords(cube) | _hypothesis_coords(hypotheses) | {"term": terms})
    out.attrs.update({
        "method": f"{model}:{cov_type}",
        "alpha": float(alpha),
        "zero_rule": zero_rule if model == "logit" else "none",
        "covariates": [str(c) for c in covariates],
        "n_not_annotated": int(n_missing),
        "not_annotated": missing,
    })
    return out


def _grouped_design(g: np.ndarray, cell: np.ndarray, z_cells: np.ndarray, truth_t: np.ndarray, h: int,
                    hyp: xr.Dataset):
    """Design ``[1, A, covariates]`` of one hypothesis, with identical rows merged.

    ``cell`` numbers the distinct covariate rows of the task's items (``z_cells`` holds them), so
    a design row is identified by ``2 * cell + A``. Returns
    ``((X_rows, n_rows, order, starts), (X_rows_human, n_rows_human, inv_human), inside)``: the
    distinct rows and their multiplicities for all items in a group, the item order that sorts
    them by distinct row with the start of each run (for ``np.add.reduceat``), and the same for
    the human-labelled items. With discrete covariates a few distinct rows remain, so the batched
    fits run on a handful of rows instead of every item.
    """
    inside = g >= 0
    a = (g[inside] == 1).astype(np.int64)
    ids = 2 * cell[inside] + a
    uniq, inv = np.unique(ids, return_inverse=True)
    n_rows = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    x_rows = np.column_stack([np.ones(uniq.size), (uniq % 2).astype(np.float64), z_cells[uniq // 2]])
    w = np.linalg.eigvalsh(x_rows.T @ (n_rows[:, None] * x_rows))
    if w[0] <= 1e-10 * max(w[-1], 1e-300):
        raise ValueError(f"hypothesis {h} (task {hyp['task'].values[h]!r}): the design [const, group, "
                         "covariates] is rank deficient (a covariate is constant or collinear with the "
                         "group within this task). Fix: drop that covariate or that hypothesis.")
    order = np.argsort(inv, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
    has = truth_t[inside] >= 0
    used, inv_h = np.unique(inv[has], return_inverse=True)
    n_h = np.bincount(inv_h, minlength=used.size).astype(np.float64)
    return (x_rows, n_rows, order, starts), (x_rows[used], n_h, inv_h), inside


test_hypotheses.__test__ = False  # a library function, not a pytest test (when imported into tests)
