"""Baselines for the LLM hacking risk: what chance, pure noise and random error alone would give.

* :func:`random_conclusions` — each conclusion significant with probability ``p_significant``
  (default ½) and then of a random sign: Type I = ``p``, Type II = ``1 − p``, Type S = ``p/2``
  exactly in expectation (½, ½, ¼ for the default).
* :func:`random_labels` — every annotated label replaced by a uniformly random class: the LLM
  labels carry no information, so each test is a test of a true null (Type I ≈ ``alpha``,
  Type II ≈ ``1 − alpha``, Type S ≈ ``alpha/2``).
* :func:`label_noise` / :func:`noise_curve` — the human labels with *random* error at a
  controlled accuracy (each label replaced by a uniformly drawn other class with probability
  ``1 − accuracy``): the risk-vs-accuracy curve of an annotator with no systematic error.
* :func:`matched_noise` / :func:`decompose_risk` — random error at each configuration's own
  observed accuracy; the gap between the observed risk and this baseline is the part of the risk
  due to *systematic* (group-dependent) annotation error.

The baselines return cubes (run them through ``test_hypotheses``) or tests-like Datasets, so they
go through the same :func:`hackrisk.analysis.risk.classify_errors` / :func:`~hackrisk.analysis.risk.risk`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..cube import CONFIG_DIMS, NOT_ANNOTATED, validate_cube
from .risk import annotation_quality, risk

__all__ = [
    "random_conclusions",
    "random_labels",
    "label_noise",
    "noise_curve",
    "matched_noise",
    "decompose_risk",
]

logger = logging.getLogger(__name__)


def _n_classes(cube: xr.Dataset) -> np.ndarray:
    return np.asarray((cube["class_name"] != "").sum("class").values, dtype=np.int64)


def random_conclusions(
    tests: xr.Dataset,
    *,
    p_significant: float = 0.5,
    rng: int | np.random.Generator | None = 0,
) -> xr.Dataset:
    """Replace every LLM-side conclusion by a random one.

    Each annotated conclusion is significant with probability ``p_significant``, then ``+1`` or
    ``-1`` with probability ½ each. ``p_value`` is drawn uniformly below ``alpha`` (significant)
    or above it (null); ``estimate`` and the other LLM-side statistics become NaN (a coin has no
    effect size, so Type M is undefined). The human side is kept.

    Parameters
    ----------
    tests
        Output of ``test_hypotheses``.
    p_significant
        Probability that a conclusion is significant.
    rng
        Seed or generator.

    Returns
    -------
    xarray.Dataset
        Tests-like Dataset (``attrs["method"] = "baseline:random_conclusions"``).
    """
    if not 0 <= p_significant <= 1:
        raise ValueError(f"random_conclusions: p_significant={p_significant} must lie in [0, 1].")
    if "conclusion" not in tests or "human_conclusion" not in tests:
        raise ValueError("random_conclusions: pass the tests Dataset of test_hypotheses.")
    gen = np.random.default_rng(rng)
    c = tests["conclusion"]
    shape = c.shape
    sig = gen.random(shape) < p_significant
    sign = np.where(gen.random(shape) < 0.5, -1, 1)
    concl = np.where(sig, sign, 0).astype(np.int8)
    ann = tests["annotated"].values.astype(bool) if "annotated" in tests else np.ones(shape, bool)
    concl = np.where(ann, concl, 0).astype(np.int8)
    alpha = float(tests.attrs.get("alpha", 0.05))
    u = gen.random(shape)
    p = np.where(sig, u * alpha, alpha + u * (1 - alpha))
    out = tests.copy()
    out["conclusion"] = (c.dims, concl)
    out["p_value"] = (c.dims, np.where(ann, p, np.nan))
    for name in ("estimate", "log_or", "se", "z"):
        if name in out:
            out[name] = (c.dims, np.full(shape, np.nan))
    if "zero_decided" in out:
        out["zero_decided"] = (c.dims, np.zeros(shape, dtype=bool))
    for name in ("error", "type_m"):
        if name in out:
            out = out.drop_vars(name)
    out.attrs = {**tests.attrs, "method": "baseline:random_conclusions",
                 "p_significant": p_significant}
    return out


def random_labels(cube: xr.Dataset, *, rng: int | np.random.Generator | None = 0) -> xr.Dataset:
    """The cube with every annotated label (≠ -1) replaced by a uniformly random class of its task.

    Parameters
    ----------
    cube
        A label cube.
    rng
        Seed or generator.

    Returns
    -------
    xarray.Dataset
        A new cube (``prob`` dropped; ``attrs["baseline"] = "random_labels"``).
    """
    validate_cube(cube, check_values=False)
    gen = np.random.default_rng(rng)
    lab = cube["label"]
    kc = _n_classes(cube)
    k = xr.DataArray(kc, dims="task").broadcast_like(lab).transpose(*lab.dims).values
    draw = np.floor(gen.random(lab.shape) * k).astype(np.int16)
    new = np.where(lab.values == NOT_ANNOTATED, NOT_ANNOTATED, draw).astype(np.int16)
    out = cube.drop_vars("prob") if "prob" in cube else cube.copy()
    out["label"] = (lab.dims, new)
    out.attrs = {**cube.attrs, "baseline": "random_labels"}
    return out


def _noisy_labels(truth: np.ndarray, kc: np.ndarray, acc: np.ndarray, real: np.ndarray,
                  gen: np.random.Generator, *, exact: bool) -> np.ndarray:
    """Noisy copies of ``truth`` (task, item) with accuracy ``acc`` (task, *cfg) → (task, *cfg, item).

    Items without a human label get a uniformly random class; padding stays -1.
    """
    n_task, n_item = truth.shape
    cfg_shape = acc.shape[1:]
    shape = (n_task, *cfg_shape, n_item)
    ex = (slice(None),) + (None,) * len(cfg_shape)
    y = np.broadcast_to(truth[ex], shape)
    k = np.broadcast_to(kc[(slice(None),) + (None,) * (len(cfg_shape) + 1)], shape)
    labelled = np.broadcast_to((truth >= 0)[ex], shape)
    if exact:
        # exactly round((1 - acc) * n_labelled) errors among the labelled items, placed at random
        n_lab = (truth >= 0).sum(1)
        n_err = np.rint((1 - acc) * n_lab[ex]).astype(np.int64)
        keys = np.where(labelled, gen.random(shape), np.inf)
        rank = np.argsort(np.argsort(keys, axis=-1), axis=-1)
        wrong = rank < n_err[..., None]
    else:
        wrong = gen.random(shape) >= acc[..., None]
    shift = 1 + np.floor(gen.random(shape) * np.maximum(k - 1, 1)).astype(np.int64)
    other = (y + shift) % k
    lab = np.where(wrong, other, y)
    lab = np.where(labelled, lab, np.floor(gen.random(shape) * k).astype(np.int64))
    lab = np.where(np.broadcast_to(real[ex], shape), lab, NOT_ANNOTATED)
    return lab.astype(np.int16)


def _base_cube(cube: xr.Dataset) -> xr.Dataset:
    drop = [v for v in ("label", "prob", "prompt_template") if v in cube]
    base = cube.drop_vars(drop)
    return base.drop_dims([d for d in (*CONFIG_DIMS, "sample") if d in base.dims])


def label_noise(
    cube: xr.Dataset,
    accuracy: float | Sequence[float],
    *,
    n_replicates: int = 1,
    rng: int | np.random.Generator | None = 0,
) -> xr.Dataset:
    """A cube of simulated annotators that make only *random* errors at a given accuracy.

    Each human label is kept with probability ``accuracy`` and otherwise replaced by a uniformly
    drawn *other* class of its task; items without a human label get a uniformly random class.
    The errors do not depend on the groups, so this annotator has no systematic error.

    Parameters
    ----------
    cube
        A label cube with human labels (``truth``).
    accuracy
        One accuracy or several (each in [0, 1]).
    n_replicates
        Independent annotators per accuracy.
    rng
        Seed or generator.

    Returns
    -------
    xarray.Dataset
        A valid label cube whose ``model`` dimension holds the accuracies (names ``acc=0.800``,
        coordinate ``accuracy``), ``prompt`` the replicates (``r0, r1, ...``, template
        ``"{text}"``) and ``temperature`` a single 0.
    """
    validate_cube(cube, check_values=False)
    acc = np.atleast_1d(np.asarray(accuracy, dtype=np.float64))
    if acc.ndim != 1 or np.any((acc < 0) | (acc > 1)) or acc.size == 0:
        raise ValueError(f"label_noise: accuracy={accuracy} must be values in [0, 1].")
    if n_replicates < 1:
        raise ValueError(f"label_noise: n_replicates={n_replicates} must be >= 1.")
    if not (cube["truth"] >= 0).any():
        raise ValueError("label_noise: the cube has no human labels (truth is -1 everywhere).")
    gen = np.random.default_rng(rng)
    truth = cube["truth"].transpose("task", "item").values.astype(np.int64)
    real = cube["item_id"].transpose("task", "item").values != ""
    kc = _n_classes(cube)
    n_task = truth.shape[0]
    acc_grid = np.broadcast_to(acc[None, :, None, None], (n_task, acc.size, n_replicates, 1))
    lab = _noisy_labels(truth, kc, acc_grid, real, gen, exact=False)
    names = np.array([f"acc={a:.3f}" for a in acc], dtype=object)
    if len(set(names)) != len(names):
        raise ValueError(f"label_noise: accuracies {acc.tolist()} must be distinct.")
    out = _base_cube(cube).assign_coords(
        model=names, prompt=np.array([f"r{r}" for r in range(n_replicates)], dtype=object),
        temperature=np.array([0.0]),
    )
    out = out.assign_coords(accuracy=("model", acc))
    out["label"] = (("task", *CONFIG_DIMS, "item"), lab)
    out["prompt_template"] = (("task", "prompt"),
                              np.full((n_task, n_replicates), "{text}", dtype=object))
    out = out.transpose("task", *CONFIG_DIMS, "item", ...)
    out.attrs = {**cube.attrs, "baseline": "label_noise"}
    return validate_cube(out)


def noise_curve(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    accuracies: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
    n_replicates: int = 5,
    alpha: float = 0.05,
    n_boot: int = 500,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
    **test_kwargs: Any,
) -> xr.Dataset:
    """Risk of purely random annotation error as a function of the annotator's accuracy.

    Simulates ``n_replicates`` annotators per accuracy with :func:`label_noise`, tests every
    hypothesis on them with ``test_hypotheses`` (one vectorised pass) and aggregates with
    :func:`~hackrisk.analysis.risk.risk` by accuracy.

    Parameters
    ----------
    cube, hypotheses
        The label cube (its human labels are used) and the hypotheses.
    accuracies
        Accuracies of the simulated annotators.
    n_replicates
        Annotators per accuracy (more → smoother curve).
    alpha
        Significance level.
    n_boot, ci
        Bootstrap of :func:`risk`.
    rng
        Seed or generator (noise and bootstrap).
    **test_kwargs
        Passed to ``test_hypotheses`` (e.g. ``zero_rule``).

    Returns
    -------
    xarray.Dataset
        :func:`risk`'s variables on ``(accuracy, ci)``.
    """
    from .frequentist import test_hypotheses

    gen = np.random.default_rng(rng)
    noisy = label_noise(cube, accuracies, n_replicates=n_replicates, rng=gen)
    tests = test_hypotheses(noisy, hypotheses, alpha=alpha, **test_kwargs)
    res = risk(tests, by="accuracy", n_boot=n_boot, ci=ci, rng=gen)
    res.attrs.update({"baseline": "label_noise", "n_replicates": n_replicates})
    return res


def matched_noise(
    cube: xr.Dataset,
    *,
    rng: int | np.random.Generator | None = 0,
) -> xr.Dataset:
    """The cube with every configuration replaced by a random-error annotator of equal accuracy.

    For each (task, configuration), exactly ``round((1 − accuracy) · n)`` of the ``n``
    human-labelled items get a uniformly drawn wrong class, placed at random (so the accuracy
    matches :func:`~hackrisk.analysis.risk.annotation_quality`'s, but the errors are independent
    of the groups); items without a human label get a random class. Configurations that are not
    annotated stay -1.

    Parameters
    ----------
    cube
        A label cube with human labels.
    rng
        Seed or generator.

    Returns
    -------
    xarray.Dataset
        A cube with the same dims and coordinates (``attrs["baseline"] = "matched_noise"``).
    """
    validate_cube(cube, check_values=False)
    if "sample" in cube["label"].dims:
        raise ValueError("matched_noise: the cube has a 'sample' dimension. Fix: pass "
                         "cube.isel(sample=0) (or the draw you test).")
    gen = np.random.default_rng(rng)
    qual = annotation_quality(cube)
    acc = qual["accuracy"].transpose("task", *CONFIG_DIMS).values
    annotated = np.asarray(
        (cube["label"] != NOT_ANNOTATED).any("item").transpose("task", *CONFIG_DIMS).values)
    acc = np.where(np.isfinite(acc), acc, 1.0)
    truth = cube["truth"].transpose("task", "item").values.astype(np.int64)
    real = cube["item_id"].transpose("task", "item").values != ""
    lab = _noisy_labels(truth, _n_classes(cube), acc, real, gen, exact=True)
    lab = np.where(annotated[..., None], lab, NOT_ANNOTATED).astype(np.int16)
    out = cube.drop_vars("prob") if "prob" in cube else cube.copy()
    out["label"] = (("task", *CONFIG_DIMS, "item"), lab)
    out["label"] = out["label"].transpose(*cube["label"].dims)
    out.attrs = {**cube.attrs, "baseline": "matched_noise"}
    return out


def decompose_risk(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    by: str | Sequence[str] | None = None,
    n_replicates: int = 5,
    alpha: float = 0.05,
    n_boot: int = 500,
    ci: float = 0.95,
    rng: int | np.random.Generator | None = 0,
    **test_kwargs: Any,
) -> xr.Dataset:
    """Split the observed risk into a random-error part and a systematic-error part.

    ``random`` is the risk of :func:`matched_noise` annotators (same accuracy per task and
    configuration, errors independent of the groups), averaged over ``n_replicates`` draws;
    ``systematic = observed − random`` is what the group-dependent structure of the real errors
    adds (negative when the real errors happen to be less harmful than random ones).

    Parameters
    ----------
    cube, hypotheses
        The label cube and the hypotheses.
    by
        Slices, as in :func:`risk`.
    n_replicates
        Matched-noise cubes averaged for the ``random`` component.
    alpha, n_boot, ci, rng
        As in ``test_hypotheses`` / :func:`risk`.
    **test_kwargs
        Passed to ``test_hypotheses``.

    Returns
    -------
    xarray.Dataset
        :func:`risk`'s rate variables with an extra ``component`` dimension
        (``observed``, ``random``, ``systematic``); CIs only for ``observed`` (the others' bounds
        are NaN).
    """
    from .frequentist import test_hypotheses

    if n_replicates < 1:
        raise ValueError(f"decompose_risk: n_replicates={n_replicates} must be >= 1.")
    gen = np.random.default_rng(rng)
    tests = test_hypotheses(cube, hypotheses, alpha=alpha, **test_kwargs)
    observed = risk(tests, by=by, n_boot=n_boot, ci=ci, rng=gen)
    rates = [v for v in observed.data_vars if "ci" in observed[v].dims]
    reps = []
    for _ in range(n_replicates):
        noisy = matched_noise(cube, rng=gen)
        t_noise = test_hypotheses(noisy, hypotheses, alpha=alpha, **test_kwargs)
        reps.append(risk(t_noise, by=by, n_boot=0)[rates].sel(ci="estimate", drop=True))
    random_part = xr.concat(reps, dim="replicate").mean("replicate")
    est = observed[rates].sel(ci="estimate", drop=True)
    rand = random_part.expand_dims(ci=["estimate"]).reindex(ci=observed["ci"].values)
    syst = (est - random_part).expand_dims(ci=["estimate"]).reindex(ci=observed["ci"].values)
    out = xr.concat([observed[rates], rand, syst], dim="component")
    out = out.assign_coords(component=np.array(["observed", "random", "systematic"], dtype=object))
    out.attrs = {**observed.attrs, "n_replicates": n_replicates,
                 "method": "observed risk vs random error at matched accuracy"}
    return out
