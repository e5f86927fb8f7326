"""Pooled GT-vs-LLM regression: does the LLM effect differ from the human one?

Baumann et al. (2025) stack every item twice — once with its human label (source ``s = 0``),
once with the LLM's (``s = 1``) — and fit the logistic regression

    ``1[y == class] ~ x + s + x:s``,

``x`` the group indicator, with standard errors clustered by item (R: ``glm`` then
``sandwich::vcovCL``). The coefficient of ``x`` is the human effect, ``x + x:s`` the LLM effect and
the interaction ``δ`` their difference; ``δ``'s Wald test says whether the LLM changes the
conclusion's effect beyond chance.

The model has one parameter per (group, source) cell, so it is saturated: the MLE reproduces the
four cell shares and every quantity has a closed form in the counts. With ``θ_{g,s} =
logit(p_{g,s})`` and ``v = p (1 - p)``, the cluster-robust (HC0) variances over the ``n_g`` items
of group ``g`` are

* ``Var θ_{g,s} = 1 / (n_g v_{g,s})`` and
* ``Cov(θ_{g,h}, θ_{g,l}) = (c_g - p_{g,h} p_{g,l}) / (n_g v_{g,h} v_{g,l})``, ``c_g`` the share of
  items of the group that are in the class by both sources (the two rows of an item are one
  cluster; items of different groups are independent).

So the whole study — every hypothesis under every configuration — needs only class counts per
group, obtained as in :func:`hackrisk.analysis.frequentist.test_hypotheses` by one matrix product
per task. Effects are group A minus group B (the authors code their first group ``x = 0``, so
their coefficients are these with the sign flipped).
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ..cube import CONFIG_DIMS, NOT_ANNOTATED
from . import _kernels as K
from .frequentist import _blas_single_thread, _config_coords, _hypothesis_coords, _prepare

__all__ = ["pooled_regression", "pooled_from_counts", "CORRECTIONS"]

log = logging.getLogger(__name__)

CORRECTIONS = ("cluster", "none", "statsmodels")
"""Small-sample factors of the clustered covariance: ``"cluster"`` ``G/(G-1)`` (R's
``sandwich::vcovCL`` default for a glm, the authors' choice), ``"none"`` (plain HC0 clusters) and
``"statsmodels"`` ``G/(G-1) · (N-1)/(N-K)`` (statsmodels' ``use_correction=True``)."""


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(p / (1 - p))


def pooled_from_counts(n_a, n_b, kh_a, kh_b, kl_a, kl_b, both_a, both_b, *, correction: str = "cluster",
                       alpha: float = 0.05) -> dict[str, np.ndarray]:
    """The pooled regression from counts (any broadcastable shapes).

    Parameters
    ----------
    n_a, n_b
        Items per group (each stacked twice).
    kh_a, kh_b, kl_a, kl_b
        Items in the class by the human / the LLM label, per group.
    both_a, both_b
        Items in the class by both.
    correction
        See :data:`CORRECTIONS`.
    alpha
        Level of the test of ``δ``.

    Returns
    -------
    dict
        ``human_coef``, ``human_se``, ``llm_coef``, ``llm_se``, ``delta``, ``delta_se``,
        ``delta_z``, ``delta_p_value``, ``differs`` (``δ`` significant), ``separated`` (a cell share
        of 0 or 1: no finite MLE; all statistics NaN there, the authors skip such tables).
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction={correction!r} is not one of {CORRECTIONS}. Fix: use 'cluster' "
                         "(R sandwich::vcovCL, default), 'none' or 'statsmodels'.")
    n_a, n_b, kh_a, kh_b, kl_a, kl_b, both_a, both_b = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (n_a, n_b, kh_a, kh_b, kl_a, kl_b, both_a, both_b)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = {(g, s): k / n for g, n, kh, kl in (("a", n_a, kh_a, kl_a), ("b", n_b, kh_b, kl_b))
             for s, k in (("h", kh), ("l", kl))}
        c = {"a": both_a / n_a, "b": both_b / n_b}
        n = {"a": n_a, "b": n_b}
        v = {key: val * (1 - val) for key, val in p.items()}
        sep = np.zeros(n_a.shape, dtype=bool)
        for val in p.values():
            sep |= ~(val > 0) | ~(val < 1)
        theta = {key: _logit(val) for key, val in p.items()}
        var_h = sum(1 / (n[g] * v[(g, "h")]) for g in "ab")
        var_l = sum(1 / (n[g] * v[(g, "l")]) for g in "ab")
        cov_hl = sum((c[g] - p[(g, "h")] * p[(g, "l")]) / (n[g] * v[(g, "h")] * v[(g, "l")]) for g in "ab")
        var_d = var_h + var_l - 2 * cov_hl
        g_clusters = n_a + n_b
        if correction == "none":
            f = np.ones_like(g_clusters)
        else:
            f = g_clusters / (g_clusters - 1)
            if correction == "statsmodels":
                f = f * (2 * g_clusters - 1) / (2 * g_clusters - 4)
        human = theta[("a", "h")] - theta[("b", "h")]
        llm = theta[("a", "l")] - theta[("b", "l")]
        delta = llm - human
        se_h, se_l, se_d = np.sqrt(f * var_h), np.sqrt(f * var_l), np.sqrt(f * np.maximum(var_d, 0.0))
        z = delta / se_d
    out = {"human_coef": human, "human_se": se_h, "llm_coef": llm, "llm_se": se_l, "delta": delta,
           "delta_se": se_d, "delta_z": z, "delta_p_value": K.normal_p(z)}
    bad = sep | ~(n_a > 0) | ~(n_b > 0)
    out = {k: np.where(bad, np.nan, val) for k, val in out.items()}
    out["differs"] = np.where(bad, False, out["delta_p_value"] < alpha)
    out["separated"] = sep
    return out


def pooled_regression(cube: xr.Dataset, hypotheses: xr.Dataset, *, alpha: float = 0.05,
                      correction: str = "cluster", sample: int | None = None) -> xr.Dataset:
    """Pooled GT-vs-LLM logistic regression for every hypothesis under every configuration.

    Each human-labelled item of a hypothesis' groups enters twice, with its human and its LLM
    label; ``1[y == class] ~ group + source + group:source``, standard errors clustered by item
    (see the module docstring for the closed form). Items without a human label are left out;
    an unparseable answer (``-2``) is "not the class"; a configuration with a not-annotated
    (``-1``) item of the task is NaN (``annotated`` False).

    Parameters
    ----------
    cube, hypotheses
        As in :func:`hackrisk.analysis.frequentist.test_hypotheses`.
    alpha
        Level of the test of the interaction ``δ``.
    correction
        Small-sample factor of the clustered covariance (:data:`CORRECTIONS`; default
        ``"cluster"`` = ``G/(G-1)``, as R's ``sandwich::vcovCL`` on a glm).
    sample
        Draw of the cube's ``sample`` dimension (as in ``test_hypotheses``).

    Returns
    -------
    xarray.Dataset
        On ``hypothesis``: ``human_coef`` (log odds ratio A vs B on the human labels) and
        ``human_se``; on ``(hypothesis, model, prompt, temperature)``: ``llm_coef``, ``llm_se``,
        ``delta`` (LLM minus human log odds ratio), ``delta_se``, ``delta_z``,
        ``delta_p_value``, ``differs`` (``δ`` significant at ``alpha``), ``separated`` (a cell
        share 0 or 1, statistics NaN) and ``annotated``; ``n_items`` on ``hypothesis`` (clusters).
        attrs ``method``, ``alpha``, ``correction``.
    """
    t_idx, cls, group, labels, cfg_shape, truth, real = _prepare(cube, hypotheses, sample)
    n_h = group.shape[0]
    n_cfg = labels.shape[1]
    n_g = np.zeros((n_h, 2))
    kh = np.zeros((n_h, 2))
    kl = np.full((n_h, n_cfg, 2), np.nan)
    both = np.full((n_h, n_cfg, 2), np.nan)
    annotated = np.zeros((n_h, n_cfg), dtype=bool)
    with _blas_single_thread():
        for t in np.unique(t_idx):
            cols = np.flatnonzero(real[t] & (truth[t] >= 0))
            hs = np.flatnonzero(t_idx == t)
            ann = (labels[t][:, np.flatnonzero(real[t])] != NOT_ANNOTATED).all(axis=1)
            lab = labels[t][:, cols]
            tr = truth[t, cols]
            g = group[hs][:, cols]
            member = np.concatenate([g == 1, g == 0])  # (2H_t, items)
            codes, pos = np.unique(cls[hs], return_inverse=True)
            agree = np.where(lab == tr[None, :], lab, NOT_ANNOTATED)
            cnt_l = K.count_by_group(lab, member, codes)  # (k, C, 2H_t)
            cnt_b = K.count_by_group(agree, member, codes)
            cnt_h = K.count_by_group(tr[None, :], member, codes)[:, 0]  # (k, 2H_t)
            nh = hs.size
            rows = np.arange(nh)
            for side, off in ((0, 0), (1, nh)):
                kl[hs, :, side] = cnt_l[pos, :, off + rows]
                both[hs, :, side] = cnt_b[pos, :, off + rows]
                kh[hs, side] = cnt_h[pos, off + rows]
                n_g[hs, side] = member[off + rows].sum(1)
            annotated[hs] = ann[None, :]
    res = pooled_from_counts(n_g[:, None, 0], n_g[:, None, 1], kh[:, None, 0], kh[:, None, 1],
                             kl[..., 0], kl[..., 1], both[..., 0], both[..., 1], correction=correction,
                             alpha=alpha)
    for name in res:
        if name in ("differs", "separated"):
            res[name] = res[name] & annotated
        else:
            res[name] = np.where(annotated, res[name], np.nan)
    dims = ("hypothesis", *CONFIG_DIMS)
    shape = (n_h, *cfg_shape)
    hum = pooled_from_counts(n_g[:, 0], n_g[:, 1], kh[:, 0], kh[:, 1], kh[:, 0], kh[:, 1], kh[:, 0], kh[:, 1],
                             correction=correction)
    data = {
        "human_coef": ("hypothesis", hum["human_coef"]),
        "human_se": ("hypothesis", hum["human_se"]),
        "n_items": ("hypothesis", n_g.sum(1).astype(np.int64)),
        "annotated": (dims, annotated.reshape(shape)),
    }
    for name in ("llm_coef", "llm_se", "delta", "delta_se", "delta_z", "delta_p_value", "differs", "separated"):
        data[name] = (dims, np.asarray(res[name]).reshape(shape))
    out = xr.Dataset(data, coords=_config_coords(cube) | _hypothesis_coords(hypotheses))
    out["delta"].attrs["description"] = "LLM minus human log odds ratio (group A vs B), the x:s interaction"
    out.attrs.update({"method": "pooled logistic y ~ group * source, SE clustered by item (closed form)",
                      "alpha": float(alpha), "correction": correction})
    return out
