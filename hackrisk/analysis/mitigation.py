"""Mitigating LLM hacking with a budget of human labels: sampling, estimators, evaluation.

A researcher labels ``n`` items by hand and combines them with one configuration's LLM labels.
This module draws the human-labelled subset (:func:`draw_human_sample`), estimates each
hypothesis' group difference with six techniques (:func:`mitigate`), and scores the techniques
against the conclusions drawn from *all* human labels (:func:`evaluate_mitigation`,
:func:`select_model`).

Techniques (``method=``):

* ``"human"`` — human labels only (inverse-probability weighted when the design is unequal);
* ``"substitution"`` — human label where known, LLM label elsewhere, analysed as if all were true
  labels (naive; not valid);
* ``"ppi"`` — PPI++ (Angelopoulos, Duchi & Zrnic 2023): power-tuned prediction-powered
  inference; per-group means for the difference, the PPI++ logistic loss for the coefficient;
  weights ``1/π`` (labelled) and ``1/(1 − π)`` (unlabelled) under unequal designs;
* ``"dsl"`` — design-based supervised learning (Egami et al. 2023): doubly robust pseudo-outcomes
  ``ĝ + ξ/π (Y − ĝ)`` with a cross-fitted prediction ``ĝ`` (cell means of the human label by LLM
  label × group), then linear (difference) or logistic regression with a sandwich variance;
* ``"cdi"`` — confidence-driven inference (Gligorić et al. 2024): IPW, power-tuned mean per group
  with λ cross-fitted over two random folds (for the logistic coefficient: delta method on the
  two means).

Estimands (``estimand=``): ``"difference"`` — share of the hypothesis' class in group A minus
group B; ``"logistic"`` — coefficient of the group indicator in a logistic regression of the
class indicator (the log odds ratio). All inference targets the population (super-population)
parameter, with items treated as independent draws.

Every result is an ``xarray.Dataset`` with dims ``(hypothesis, model, prompt, temperature,
draw)``; the computations are batched numpy over all of them (:mod:`._mitigation_kernels`),
chunked over hypotheses to bound memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import CONFIG_DIMS, validate_cube
from . import _mitigation_kernels as K

log = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "SCHEMES",
    "BUDGETS",
    "draw_human_sample",
    "mitigate",
    "classify_conclusions",
    "evaluate_mitigation",
    "select_model",
    "item_confidence",
]

METHODS = ("human", "substitution", "ppi", "dsl", "cdi")
SCHEMES = ("random", "confidence", "active")
BUDGETS = (25, 50, 100, 250, 500, 1000)
_OUT_DIMS = ("hypothesis", *CONFIG_DIMS, "draw")
_CHUNK = 1_500_000


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def _check(cube: xr.Dataset, hypotheses: xr.Dataset) -> None:
    validate_cube(cube, check_values=False)
    for name in ("group",):
        if name not in hypotheses:
            raise ValueError(f"hypotheses has no {name!r} variable. Fix: build it with "
                             "hackrisk.hypotheses.generate_hypotheses or give group (hypothesis, item).")
    for c in ("task", "class_code"):
        if c not in hypotheses.coords:
            raise ValueError(f"hypotheses has no coordinate {c!r} on 'hypothesis'. Fix: add it "
                             "(see docs/results.md).")
    if hypotheses.sizes.get("item") != cube.sizes["item"]:
        raise ValueError(f"hypotheses['group'] has {hypotheses.sizes.get('item')} items, the cube "
                         f"{cube.sizes['item']}. Fix: generate the hypotheses from this cube.")
    unknown = set(map(str, hypotheses["task"].values)) - set(map(str, cube["task"].values))
    if unknown:
        raise ValueError(f"hypotheses refer to tasks {sorted(unknown)} not in the cube. Fix: use "
                         "hypotheses generated from this cube.")


def _arrays(cube: xr.Dataset, hypotheses: xr.Dataset) -> dict:
    """Per-hypothesis numpy arrays: Y, Yh, valid, group, labels, truth, annotated."""
    _check(cube, hypotheses)
    tasks = list(map(str, cube["task"].values))
    t_idx = np.array([tasks.index(str(t)) for t in hypotheses["task"].values], dtype=int)
    cls = np.asarray(hypotheses["class_code"].values, dtype=int)
    group = np.asarray(hypotheses["group"].transpose("hypothesis", "item").values, dtype=int)
    truth = np.asarray(cube["truth"].values)[t_idx]  # (H, NI)
    lab = cube["label"]
    if "sample" in lab.dims:
        lab = lab.isel(sample=0)
    lab = np.asarray(lab.transpose("task", *CONFIG_DIMS, "item").values)[t_idx]  # (H,M,P,T,NI)
    valid = (group >= 0) & (truth >= 0)
    annotated = ~((lab == -1) & valid[:, None, None, None, :]).any(-1)
    Y = (truth == cls[:, None]).astype(float)
    Yh = (lab == cls[:, None, None, None, None]).astype(float)
    return {"Y": Y, "Yh": Yh, "valid": valid, "group": group, "labels": lab, "truth": truth,
            "annotated": annotated, "t_idx": t_idx, "cls": cls}


def item_confidence(cube: xr.Dataset, hypotheses: xr.Dataset, *, per_config: bool = True) -> xr.DataArray:
    """The annotators' confidence in each item's label, in [0, 1].

    From the cube's ``prob`` (largest class probability of each configuration) when present and
    ``per_config``; otherwise the agreement across the task's annotated configurations (share of
    configurations giving the modal label; with ``prob`` and ``per_config=False`` the mean of
    the configurations' largest probabilities).

    Returns
    -------
    xarray.DataArray
        Dims ``(hypothesis, model, prompt, temperature, item)`` or ``(hypothesis, item)``.
    """
    a = _arrays(cube, hypotheses)
    coords = {"hypothesis": hypotheses["hypothesis"].values}
    if "prob" in cube:
        p = cube["prob"]
        if "sample" in p.dims:
            p = p.isel(sample=0)
        pmax = np.asarray(p.max("class").transpose("task", *CONFIG_DIMS, "item").values, float)[a["t_idx"]]
        if per_config:
            return xr.DataArray(pmax, dims=("hypothesis", *CONFIG_DIMS, "item"),
                                coords={**coords, **{d: cube[d].values for d in CONFIG_DIMS}})
        ok = a["annotated"][..., None]
        conf = (np.where(ok, pmax, 0).sum((1, 2, 3))) / np.maximum(ok.sum((1, 2, 3)), 1)
        return xr.DataArray(conf, dims=("hypothesis", "item"), coords=coords)
    conf, _ = _agreement(a, cube.sizes["class"])
    return xr.DataArray(conf, dims=("hypothesis", "item"), coords=coords)


def _agreement(a: dict, n_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Share of annotated configurations giving the modal label, and the modal label, per item."""
    H, M, P, T, NI = a["labels"].shape
    lab = a["labels"].reshape(H, M * P * T, NI)
    ok = a["annotated"].reshape(H, M * P * T)[..., None]
    counts = np.stack([((lab == k) & ok).sum(1) for k in range(n_class)], axis=-1)  # (H, NI, K)
    tot = np.maximum(counts.sum(-1), 1)
    return counts.max(-1) / tot, counts.argmax(-1)


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------


def draw_human_sample(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    n: int,
    scheme: str = "random",
    n_draws: int = 20,
    floor: float = 0.5,
    max_prob: float = 0.9,
    max_share: float = 0.7,
    n_rounds: int = 4,
    rng: int | np.random.Generator | None = None,
) -> xr.Dataset:
    """Draw the human-labelled subset of each hypothesis' items, ``n_draws`` times.

    Parameters
    ----------
    cube, hypotheses
        The label cube and its hypotheses (``group`` 1/0/-1 over items). Items eligible for a
        hypothesis are those in group A or B with a human label.
    n
        Budget: number of human labels (expected number for the Poisson schemes).
    scheme
        ``"random"``: simple random sampling stratified by group (``n`` split in proportion to
        the group sizes, at least 2 per group), inclusion probability ``n_g / N_g``.
        ``"confidence"``: Poisson sampling with probability proportional to the annotators'
        uncertainty ``1 − confidence`` (:func:`item_confidence`; per configuration when the cube
        has ``prob``), bounded below by ``floor × n / N`` and above by ``max_prob``.
        ``"active"``: ``n_rounds`` sequential Poisson rounds of ``n / n_rounds``; the first by
        uncertainty, each later one by the disagreement (human ≠ majority LLM label) predicted
        by a ridge logistic regression on ``[1, uncertainty, group]`` fitted to the items
        labelled so far. The recorded probability is ``1 − Π_t (1 − π_t)``.
    n_draws
        Independent repetitions.
    floor, max_prob
        Bounds of the Poisson inclusion probabilities (``floor`` relative to ``n / N``).
    max_share
        Hypotheses with ``n > max_share × N`` are infeasible: nothing is selected and
        ``feasible`` is False (the paper caps the budget at 70% of the items).
    n_rounds
        Rounds of the active scheme.
    rng
        Seed or generator.

    Returns
    -------
    xarray.Dataset
        ``selected`` (bool) and ``pi`` (inclusion probability) over ``(hypothesis, draw, item)``,
        or ``(hypothesis, model, prompt, temperature, draw, item)`` for the confidence scheme
        with per-configuration probabilities; ``feasible`` (hypothesis); ``n_labelled``;
        attrs ``scheme``, ``n``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not one of {SCHEMES}. Fix: pick one of them.")
    if int(n) < 4:
        raise ValueError(f"n={n} is too small: each group needs at least 2 human labels. Fix: n >= 4.")
    if not 0 < floor <= 1 or not 0 < max_prob <= 1:
        raise ValueError(f"floor={floor} and max_prob={max_prob} must lie in (0, 1]. Fix: adjust them.")
    gen = np.random.default_rng(rng)
    a = _arrays(cube, hypotheses)
    valid, group = a["valid"], a["group"]
    H, NI = valid.shape
    D = int(n_draws)
    N = valid.sum(-1)
    feasible = (n <= max_share * N) & ((valid & (group == 1)).sum(-1) >= 2) & ((valid & (group == 0)).sum(-1) >= 2)
    vf = valid & feasible[:, None]
    dims = ("hypothesis", "draw", "item")
    coords = {"hypothesis": hypotheses["hypothesis"].values, "draw": np.arange(D),
              "item": cube["item"].values}

    if scheme == "random":
        keys = gen.random((H, D, NI))
        sel = np.zeros((H, D, NI), dtype=bool)
        pi = np.zeros((H, D, NI))
        n_a_all = (vf & (group == 1)).sum(-1)
        n_a = np.clip(np.round(n * n_a_all / np.maximum(N, 1)), 2, None)
        n_a = np.minimum(n_a, n - 2)
        for g, ng in ((1, n_a), (0, n - n_a)):
            member = (vf & (group == g))[:, None, :]
            k = np.where(member, keys, np.inf)
            rank = np.argsort(np.argsort(k, axis=-1), axis=-1)
            take = member & (rank < ng[:, None, None])
            sel |= take
            size = np.maximum(member.sum(-1, keepdims=True), 1)
            pi = np.where(member, ng[:, None, None] / size, pi)
    else:
        conf = item_confidence(cube, hypotheses, per_config=(scheme == "confidence")).values
        u = np.clip(1.0 - conf, 0.0, 1.0)
        if scheme == "confidence":
            vb = vf if u.ndim == 2 else vf[:, None, None, None, :]
            Nb = vb.sum(-1)
            pi1 = K.bounded_scale(u, vb, np.minimum(n, Nb), floor * n / np.maximum(Nb, 1), max_prob)
            pi = np.broadcast_to(pi1[..., None, :], (*pi1.shape[:-1], D, NI))
            sel = (gen.random(pi.shape) < pi) & vb[..., None, :]
            if u.ndim > 2:
                dims = ("hypothesis", *CONFIG_DIMS, "draw", "item")
                coords.update({d: cube[d].values for d in CONFIG_DIMS})
        else:
            sel, pi = _active(a, u, vf, n, D, floor, max_prob, n_rounds, gen, cube.sizes["class"])
    sel = sel & feasible.reshape((H,) + (1,) * (sel.ndim - 1))
    ds = xr.Dataset(
        {
            "selected": (dims, sel),
            "pi": (dims, np.where(vf.reshape((H,) + (1,) * (sel.ndim - 2) + (NI,)), pi, 0.0)),
            "feasible": (("hypothesis",), feasible),
        },
        coords=coords,
    )
    ds["n_labelled"] = ds["selected"].sum("item")
    ds.attrs.update({"scheme": scheme, "n": int(n), "floor": floor, "max_prob": max_prob,
                     "max_share": max_share})
    return ds


def _active(a, u, vf, n, D, floor, max_prob, n_rounds, gen, n_class):
    """Sequential Poisson rounds driven by predicted disagreement (see draw_human_sample).

    Every round samples over *all* eligible items (an item drawn again costs nothing), with
    probabilities scaled so that the expected number of *new* labels is ``n / n_rounds``. The
    effective weight ``ω_i = mean_t ξ_it / π_it`` has conditional mean 1 in every round whatever
    the past (a martingale), so IPW estimators stay unbiased; ``pi`` holds ``1 / ω`` for
    labelled items and ``1 − Π_t (1 − π_it)`` for the others.
    """
    H, NI = vf.shape
    _, modal = _agreement(a, n_class)
    Yhm = (modal == a["cls"][:, None]).astype(float)
    dis = (a["Y"] != Yhm).astype(float)  # only read on labelled items
    g = (a["group"] == 1).astype(float)
    X = np.stack([np.ones((H, NI)), u, g], axis=-1)[:, None]  # (H,1,NI,3)
    valid = np.broadcast_to(vf[:, None, :], (H, D, NI))
    not_sel = np.ones((H, D, NI))
    omega = np.zeros((H, D, NI))
    sel = np.zeros((H, D, NI), dtype=bool)
    b = n / n_rounds
    score = np.broadcast_to(u[:, None, :], (H, D, NI))
    nv = valid.sum(-1)
    for t in range(n_rounds):
        if t > 0:
            lab = sel.astype(float)
            theta, _ = K.logistic_newton(X, lab, lab * dis[:, None, :], ridge=1.0)
            eta = np.einsum("hdik,hdk->hdi", np.broadcast_to(X, (H, D, NI, 3)), np.nan_to_num(theta))
            score = 1 / (1 + np.exp(-eta))
        remaining = valid & ~sel
        n_rem = remaining.sum(-1)
        lo = floor * b / np.maximum(n_rem, 1)
        # scale fixed on the unlabelled items, applied to every item
        pit_rem, scale = K.bounded_scale(score, remaining, np.minimum(b, n_rem * max_prob), lo,
                                         max_prob, return_scale=True)
        uniform = np.where(scale > 0, 0.0, np.minimum(b, n_rem * max_prob) / np.maximum(n_rem, 1))
        pit_lab = np.clip(scale[..., None] * score + uniform[..., None], lo[..., None], max_prob)
        pit = np.where(remaining, pit_rem, pit_lab) * valid
        draw = (gen.random((H, D, NI)) < pit) & valid
        omega += np.where(draw, 1 / np.where(pit > 0, pit, 1), 0.0)
        not_sel *= 1 - pit
        sel |= draw
    omega /= n_rounds
    pi = np.where(sel, 1 / np.where(omega > 0, omega, 1), 1 - not_sel) * valid
    del nv
    return sel, pi


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------


def _design_arrays(design: xr.Dataset, hypotheses: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    for v in ("selected", "pi"):
        if v not in design:
            raise ValueError(f"design has no {v!r}. Fix: pass the result of draw_human_sample.")
    if not np.array_equal(design["hypothesis"].values, hypotheses["hypothesis"].values):
        raise ValueError("design and hypotheses have different 'hypothesis' coordinates. Fix: draw "
                         "the design from these hypotheses.")
    order = [d for d in ("hypothesis", *CONFIG_DIMS, "draw", "item") if d in design["selected"].dims]
    S = design["selected"].transpose(*order).values.astype(float)
    pi = design["pi"].transpose(*order).values.astype(float)
    if S.ndim == 3:  # (H, D, NI) -> (H, 1, 1, 1, D, NI)
        S, pi = S[:, None, None, None], pi[:, None, None, None]
    return S, pi


def _by_chunks(H: int, per_h: int):
    step = max(1, _CHUNK // max(per_h, 1))
    return [slice(i, min(i + step, H)) for i in range(0, H, step)]


def _cross_fit(Y, Yh, g, lab, fold, n_folds):
    """Cross-fitted prediction of Y from (Ŷ, group) cell means (pseudo-count 1 towards Ŷ)."""
    cell = (2 * Yh + g).astype(int)
    cell_oh = (cell[..., None] == np.arange(4)).astype(float)
    fold_oh = (fold[..., None] == np.arange(n_folds)).astype(float)
    lw = lab[..., None] * cell_oh  # (..., NI, 4)
    tot_n = lw.sum(-2)  # (..., 4)
    tot_s = (lw * Y[..., None]).sum(-2)
    f_n = np.einsum("...ik,...ic->...kc", np.broadcast_to(fold_oh, (*lw.shape[:-1], n_folds)), lw)
    f_s = np.einsum("...ik,...ic->...kc", np.broadcast_to(fold_oh, (*lw.shape[:-1], n_folds)),
                    lw * Y[..., None])
    tr_n = tot_n[..., None, :] - f_n  # (..., K, 4)
    tr_s = tot_s[..., None, :] - f_s
    n_i = np.einsum("...ik,...ic,...kc->...i", np.broadcast_to(fold_oh, (*lw.shape[:-1], n_folds)),
                    np.broadcast_to(cell_oh, lw.shape), tr_n)
    s_i = np.einsum("...ik,...ic,...kc->...i", np.broadcast_to(fold_oh, (*lw.shape[:-1], n_folds)),
                    np.broadcast_to(cell_oh, lw.shape), tr_s)
    return (s_i + Yh) / (n_i + 1)


def _estimate_chunk(method, estimand, Y, Yh, S, pi, valid, g, lam, fold, n_folds):
    """Estimate, SE and λ (NaN where not used) for one chunk; arrays (h, M, P, T, D, I)."""
    A = valid * g
    B = valid * (1 - g)
    lab = S * valid
    unl = (1 - S) * valid
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(lab > 0, 1 / np.where(pi > 0, pi, 1), 0.0)
        wu = np.where(unl > 0, 1 / np.where(pi < 1, 1 - pi, 1), 0.0)
    nan = np.full(np.broadcast_shapes(Y.shape, Yh.shape, S.shape)[:-1], np.nan)
    lam_out = nan.copy()
    X = None
    if estimand == "logistic":
        X = np.stack(np.broadcast_arrays(np.ones_like(g), g), axis=-1)
    if method == "human":
        if estimand == "difference":
            pa, sa = K.hajek_mean(Y, lab * A, w)
            pb, sb = K.hajek_mean(Y, lab * B, w)
            est, se = pa - pb, np.hypot(sa, sb)
        else:
            th, s, _, _, _ = K.ppi_logistic(X, Y, Y * 0, lab, unl, w, wu, lam=0.0)
            est, se = th[..., 1], s[..., 1]
        lam_out = nan * 0
    elif method == "substitution":
        Z = S * Y + (1 - S) * Yh
        na, nb = A.sum(-1), B.sum(-1)
        ka, kb = (Z * A).sum(-1), (Z * B).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            pa, pb = ka / na, kb / nb
            if estimand == "difference":
                est = pa - pb
                se = np.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
            else:
                est = np.log(ka / (na - ka)) - np.log(kb / (nb - kb))
                se = np.sqrt(1 / ka + 1 / (na - ka) + 1 / kb + 1 / (nb - kb))
                bad = ~np.isfinite(est) | ~np.isfinite(se)
                est, se = np.where(bad, np.nan, est), np.where(bad, np.nan, se)
    elif method == "ppi":
        if estimand == "difference":
            ea, sa, la, _, _ = K.ppi_mean(Y, Yh, lab * A, unl * A, w, wu, lam=lam)
            eb, sb, lb, _, _ = K.ppi_mean(Y, Yh, lab * B, unl * B, w, wu, lam=lam)
            est, se, lam_out = ea - eb, np.hypot(sa, sb), (la + lb) / 2
        else:
            th, s, lam_out, _, _ = K.ppi_logistic(X, Y, Yh, lab, unl, w, wu, lam=lam)
            est, se = th[..., 1], s[..., 1]
    elif method == "cdi":
        ea, sa, la = K.cdi_mean(Y, Yh, S, A, pi, lam=lam, fold=fold % 2)
        eb, sb, lb = K.cdi_mean(Y, Yh, S, B, pi, lam=lam, fold=fold % 2)
        lam_out = (la + lb) / 2
        if estimand == "difference":
            est, se = ea - eb, np.hypot(sa, sb)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ok = (ea > 0) & (ea < 1) & (eb > 0) & (eb < 1)
                est = np.where(ok, np.log(ea / (1 - ea)) - np.log(eb / (1 - eb)), np.nan)
                se = np.where(ok, np.hypot(sa / (ea * (1 - ea)), sb / (eb * (1 - eb))), np.nan)
    elif method == "dsl":
        ghat = _cross_fit(Y, Yh, g, lab, fold, n_folds)
        with np.errstate(divide="ignore", invalid="ignore"):
            ipw = np.where(lab > 0, 1 / np.where(pi > 0, pi, 1), 0.0)
        T = ghat + ipw * (np.nan_to_num(Y) - ghat) * lab
        if estimand == "difference":
            na, nb = A.sum(-1), B.sum(-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                ma, mb = (T * A).sum(-1) / na, (T * B).sum(-1) / nb
                va = (((T - ma[..., None]) * A) ** 2).sum(-1) / (na - 1) / na
                vb = (((T - mb[..., None]) * B) ** 2).sum(-1) / (nb - 1) / nb
            est, se = ma - mb, np.sqrt(va + vb)
        else:
            th, s = K.sandwich_logistic(X, T, valid)
            est, se = th[..., 1], s[..., 1]
    else:
        raise ValueError(f"method={method!r} is not one of {METHODS}. Fix: pick one of them.")
    shape = nan.shape
    return (np.broadcast_to(est, shape), np.broadcast_to(se, shape),
            np.broadcast_to(lam_out, shape))


def mitigate(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    design: xr.Dataset,
    *,
    method: str = "ppi",
    estimand: str = "difference",
    alpha: float = 0.05,
    lam: float | None = None,
    n_folds: int = 2,
    rng: int | np.random.Generator | None = None,
) -> xr.Dataset:
    """Estimate every hypothesis' group effect from human labels plus each configuration's LLM labels.

    Parameters
    ----------
    cube, hypotheses
        Label cube and hypotheses (``group`` over items, coords ``task``, ``class_code``).
    design
        Human-labelled subsets from :func:`draw_human_sample`.
    method
        One of :data:`METHODS` (see the module docstring).
    estimand
        ``"difference"`` (share of the class in A minus B) or ``"logistic"`` (group coefficient
        of a logistic regression = log odds ratio).
    alpha
        Level of the two-sided test and of the ``1 − alpha`` CI.
    lam
        Power-tuning parameter of PPI++ / CDI; ``None`` tunes it (clipped to [0, 1]); ``0``
        gives the human-only estimate.
    n_folds
        Cross-fitting folds of DSL.
    rng
        Seed or generator (DSL fold assignment).

    Returns
    -------
    xarray.Dataset
        Dims ``(hypothesis, model, prompt, temperature, draw)``: ``estimate``, ``se``,
        ``lower``, ``upper``, ``p_value``, ``conclusion`` (int8 −1/0/+1; 0 where the estimate is
        undefined), ``lam`` (tuned λ, mean of the two groups for per-group methods),
        ``n_labelled``, ``annotated``; attrs ``method``, ``estimand``, ``alpha``, ``scheme``, ``n``.
    """
    if estimand not in ("difference", "logistic"):
        raise ValueError(f"estimand={estimand!r}: use 'difference' or 'logistic'.")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}. Fix: pick one of them.")
    if int(n_folds) < 2:
        raise ValueError(f"n_folds={n_folds}: cross-fitting needs at least 2 folds.")
    a = _arrays(cube, hypotheses)
    S_all, pi_all = _design_arrays(design, hypotheses)
    H, M, P, T, NI = a["Yh"].shape
    D = S_all.shape[-2]
    gen = np.random.default_rng(rng)
    fold_all = gen.integers(0, n_folds, size=(H, 1, 1, 1, D, NI))
    out = {k: np.full((H, M, P, T, D), np.nan) for k in ("estimate", "se", "lam")}
    uses_llm = method != "human"
    per_h = (M * P * T if uses_llm else 1) * D * NI
    for sl in _by_chunks(H, per_h):
        Y = a["Y"][sl, None, None, None, None, :]
        Yh = a["Yh"][sl][..., None, :] if uses_llm else np.zeros_like(Y)
        valid = a["valid"][sl, None, None, None, None, :].astype(float)
        g = (a["group"][sl] == 1).astype(float)[:, None, None, None, None, :]
        est, se, lm = _estimate_chunk(method, estimand, Y, Yh, S_all[sl], pi_all[sl], valid, g,
                                      lam, fold_all[sl], int(n_folds))
        out["estimate"][sl], out["se"][sl], out["lam"][sl] = est, se, lm
    ann = a["annotated"][..., None] if uses_llm else np.ones((H, M, P, T, 1), dtype=bool)
    feas = design["feasible"].values[:, None, None, None, None] if "feasible" in design else True
    keep = ann & feas
    for k in out:
        out[k] = np.where(keep, out[k], np.nan)
    lower, upper, p, concl = K.wald(out["estimate"], out["se"], alpha)
    nl = design["n_labelled"]
    nl = nl.transpose(*[d for d in _OUT_DIMS if d in nl.dims]).values
    if nl.ndim == 2:
        nl = nl[:, None, None, None, :]
    coords = {"hypothesis": hypotheses["hypothesis"].values, "draw": np.arange(D),
              **{d: cube[d].values for d in CONFIG_DIMS}}
    for c in ("task", "class_code", "grouping"):
        if c in hypotheses.coords:
            coords[c] = ("hypothesis", hypotheses[c].values)
    ds = xr.Dataset(
        {
            "estimate": (_OUT_DIMS, out["estimate"]),
            "se": (_OUT_DIMS, out["se"]),
            "lower": (_OUT_DIMS, lower),
            "upper": (_OUT_DIMS, upper),
            "p_value": (_OUT_DIMS, p),
            "conclusion": (_OUT_DIMS, concl),
            "lam": (_OUT_DIMS, out["lam"]),
            "n_labelled": (_OUT_DIMS, np.broadcast_to(nl, (H, M, P, T, D)).astype(np.int64)),
            "annotated": (_OUT_DIMS[:-1], a["annotated"]),
        },
        coords=coords,
    )
    ds.attrs.update({"method": method, "estimand": estimand, "alpha": alpha,
                     "scheme": design.attrs.get("scheme", ""), "n": design.attrs.get("n", -1)})
    return ds


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def classify_conclusions(conclusion: xr.DataArray, tests: xr.Dataset, *,
                         estimate: xr.DataArray | None = None,
                         annotated: xr.DataArray | None = None) -> xr.DataArray:
    """Error type of each conclusion against the full-human-label conclusion of ``tests``.

    Forwards to :func:`hackrisk.analysis.risk.classify_errors`: 0 correct, 1 Type I
    (reference 0, conclusion ≠ 0), 2 Type II (reference ≠ 0, conclusion 0), 3 Type S (opposite
    signs), -1 excluded (not annotated, or the human test is undefined).

    Parameters
    ----------
    conclusion
        Conclusions with a ``hypothesis`` dim (any others, e.g. configurations and draws).
    tests
        :func:`hackrisk.analysis.frequentist.test_hypotheses` output on the same hypotheses.
    estimate, annotated
        Optional, same dims as ``conclusion`` (``annotated`` False → -1).
    """
    from .risk import classify_errors

    hyp = ("hypothesis",)
    ds = xr.Dataset({
        "conclusion": conclusion.reset_coords(drop=True),
        "estimate": (conclusion * 0.0 if estimate is None else estimate).reset_coords(drop=True),
        "human_conclusion": (hyp, np.asarray(tests["human_conclusion"].values)),
        "human_estimate": (hyp, np.asarray(tests["human_estimate"].values)),
    })
    if "human_p_value" in tests:
        ds["human_p_value"] = (hyp, np.asarray(tests["human_p_value"].values))
    if annotated is not None:
        ds["annotated"] = annotated.reset_coords(drop=True)
    return classify_errors(ds)["error"]


def _rates(err: np.ndarray, ref: np.ndarray, keep: np.ndarray) -> dict:
    """Type I / II / S rates and pooled risk of error codes ``err`` with reference ``ref``."""
    keep = keep & (err >= 0)
    e, r = err[keep], np.broadcast_to(ref, err.shape)[keep]
    null, eff = r == 0, r != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "type_i": float(np.mean(e[null] == 1)) if null.any() else np.nan,
            "type_ii": float(np.mean(e[eff] == 2)) if eff.any() else np.nan,
            "type_s": float(np.mean(e[eff] == 3)) if eff.any() else np.nan,
            "risk": float(np.mean(e != 0)) if e.size else np.nan,
            "n_cases": int(e.size),
            "n_null": int(null.sum()),
        }


def _reference(cube, hypotheses, alpha):
    from .frequentist import test_hypotheses

    return test_hypotheses(cube, hypotheses, alpha=alpha)


def select_model(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    design: xr.Dataset,
    *,
    tests: xr.Dataset | None = None,
    alpha: float = 0.05,
) -> xr.Dataset:
    """Pick, per hypothesis and draw, the configuration most accurate on the human-labelled items.

    Accuracy is the share of the drawn items (all classes, not only the hypothesis' class) where
    the configuration's label equals the human label, weighted by ``1/π``. The chosen
    configuration's conclusion is its ordinary LLM-only test
    (:func:`hackrisk.analysis.frequentist.test_hypotheses`). Ties go to the first configuration
    in (model, prompt, temperature) order.

    Parameters
    ----------
    cube, hypotheses
        Label cube and hypotheses.
    design
        Human-labelled subsets (:func:`draw_human_sample`).
    tests
        ``test_hypotheses`` output (computed if omitted).
    alpha
        Significance level used when ``tests`` is computed here.

    Returns
    -------
    xarray.Dataset
        Dims ``(hypothesis, draw)``: ``model``, ``prompt``, ``temperature`` chosen, ``accuracy``,
        ``conclusion``, ``human_conclusion``, ``error`` (0/1/2/3).
    """
    if tests is None:
        tests = _reference(cube, hypotheses, alpha)
    a = _arrays(cube, hypotheses)
    S, pi = _design_arrays(design, hypotheses)
    H, M, P, T, NI = a["labels"].shape
    w = np.where(S > 0, 1 / np.where(pi > 0, pi, 1), 0.0) * a["valid"][:, None, None, None, None, :]
    hit = (a["labels"] == a["truth"][:, None, None, None, :]).astype(float)[..., None, :]
    acc = (np.broadcast_to(w, (H, M, P, T, w.shape[-2], NI)) * hit).sum(-1) / np.maximum(w.sum(-1), 1e-300)
    acc = np.where(a["annotated"][..., None], acc, -np.inf)
    D = acc.shape[-1]
    flat = acc.reshape(H, M * P * T, D)
    best = flat.argmax(1)  # (H, D)
    m, p, t = np.unravel_index(best, (M, P, T))
    concl_all = tests["conclusion"].transpose("hypothesis", *CONFIG_DIMS).values.reshape(H, M * P * T)
    concl = np.take_along_axis(concl_all, best, axis=1)
    ref = tests["human_conclusion"].values
    err = classify_conclusions(xr.DataArray(concl, dims=("hypothesis", "draw")), tests).values
    feas = design["feasible"].values if "feasible" in design else np.ones(H, bool)
    dims = ("hypothesis", "draw")
    return xr.Dataset(
        {
            "model": (dims, cube["model"].values[m]),
            "prompt": (dims, cube["prompt"].values[p]),
            "temperature": (dims, cube["temperature"].values[t]),
            "accuracy": (dims, np.take_along_axis(flat, best[:, None, :], 1)[:, 0]),
            "conclusion": (dims, concl.astype(np.int8)),
            "human_conclusion": (("hypothesis",), ref),
            "error": (dims, np.where(feas[:, None], err, -1).astype(np.int8)),
        },
        coords={"hypothesis": hypotheses["hypothesis"].values, "draw": np.arange(D)},
        attrs={"method": "model_selection", "scheme": design.attrs.get("scheme", ""),
               "n": design.attrs.get("n", -1)},
    )


def evaluate_mitigation(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    budgets: Sequence[int] = BUDGETS,
    schemes: Sequence[str] = ("random",),
    methods: Sequence[str] = METHODS,
    estimand: str = "difference",
    n_draws: int = 20,
    alpha: float = 0.05,
    model_selection: bool = True,
    tests: xr.Dataset | None = None,
    rng: int | np.random.Generator | None = None,
    **sample_kwargs,
) -> pd.DataFrame:
    """The trade-off table: Type I / II / S rates and risk of every technique × scheme × budget.

    Each technique's conclusion for (hypothesis, configuration, draw) is compared with the
    conclusion from all human labels (``tests["human_conclusion"]``,
    :func:`hackrisk.analysis.frequentist.test_hypotheses`). Rates pool hypotheses,
    annotated configurations and draws; infeasible budgets (``n > 70%`` of a hypothesis' items)
    are left out. ``type_i`` = P(significant | reference null), ``type_ii`` = P(not significant
    | reference effect), ``type_s`` = P(opposite sign | reference effect), ``risk`` = P(any
    error). Reference LLM-only rows (``method="llm_only"``, no human labels) are included once.

    Parameters
    ----------
    cube, hypotheses
        Label cube and hypotheses.
    budgets
        Numbers of human labels (the paper's 25 … 1000); budgets above ``max_share`` of a
        hypothesis' items are skipped for that hypothesis.
    schemes
        Sampling designs (:data:`SCHEMES`).
    methods
        Techniques (:data:`METHODS`).
    estimand
        ``"difference"`` or ``"logistic"`` (see :func:`mitigate`).
    n_draws
        Repeated draws of the human-labelled subset per scheme and budget.
    alpha
        Significance level.
    model_selection
        Add the ``model_selection`` rows (:func:`select_model`).
    tests
        :func:`hackrisk.analysis.frequentist.test_hypotheses` output (computed if omitted).
    rng
        Seed or generator.
    **sample_kwargs
        Passed to :func:`draw_human_sample` (``floor``, ``max_prob``, ``max_share``, ``n_rounds``).

    Returns
    -------
    pandas.DataFrame
        Columns ``scheme, budget, method, type_i, type_ii, type_s, risk, n_cases, n_null,
        mean_lam, mean_n_labelled``.
    """
    gen = np.random.default_rng(rng)
    if tests is None:
        tests = _reference(cube, hypotheses, alpha)
    ref = np.asarray(tests["human_conclusion"].values)
    refb = ref[:, None, None, None, None]
    rows = []
    ann = tests["annotated"].transpose("hypothesis", *CONFIG_DIMS).values
    err = classify_conclusions(tests["conclusion"], tests, estimate=tests["estimate"],
                               annotated=tests["annotated"])
    err = err.transpose("hypothesis", *CONFIG_DIMS).values
    rows.append({"scheme": "none", "budget": 0, "method": "llm_only",
                 **_rates(err, ref[:, None, None, None], ann)})
    for scheme in schemes:
        for n in budgets:
            design = draw_human_sample(cube, hypotheses, n=n, scheme=scheme, n_draws=n_draws,
                                       rng=gen, **sample_kwargs)
            feas = design["feasible"].values
            if not feas.any():
                log.info("budget %s infeasible for every hypothesis; skipped", n)
                continue
            for method in methods:
                res = mitigate(cube, hypotheses, design, method=method, estimand=estimand,
                               alpha=alpha, rng=gen)
                e = classify_conclusions(res["conclusion"], tests, estimate=res["estimate"])
                e = e.transpose(*_OUT_DIMS).values
                keep = res["annotated"].values[..., None] & feas[:, None, None, None, None]
                keep = np.broadcast_to(keep, e.shape)
                rows.append({"scheme": scheme, "budget": n, "method": method,
                             **_rates(e, refb, keep),
                             "mean_lam": float(np.nanmean(res["lam"].values)) if method in ("ppi", "cdi") else np.nan,
                             "mean_n_labelled": float(res["n_labelled"].values[feas].mean())})
            if model_selection:
                sel = select_model(cube, hypotheses, design, tests=tests, alpha=alpha)
                e = sel["error"].values
                rows.append({"scheme": scheme, "budget": n, "method": "model_selection",
                             **_rates(e, ref[:, None], e >= 0),
                             "mean_n_labelled": float(design["n_labelled"].values[feas].mean())})
    return pd.DataFrame(rows)
