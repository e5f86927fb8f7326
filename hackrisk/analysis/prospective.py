"""Prospective LLM hacking risk of one study, and its calibration on fully labelled data.

A researcher has the LLM labels of every configuration (model × prompt × temperature) for all N
items of a study and human labels for a **random** subset of n of them.  For every hypothesis and
configuration :func:`prospective_risk` gives the probability that the configuration's conclusion
differs from the one a full human labelling of the N items would reach (Type I, II, S).

**Method: prediction of the full human test from the labelled subset** (see
``docs/prospective.md``).  The conclusion all human labels would give is a deterministic function
of the N human labels, so the only unknown is the human labels of the unlabelled items.  For a
hypothesis about class c and groups A / B:

1. Every item gets the LLM *consensus score* ``s_i``: the share of configurations that label it
   c.  Items are cut into strata of ``s`` (cut points at quantiles of ``s`` among the labelled
   items, so the human labels are not used to cut) and ``f_i`` is the share of class c among the
   labelled items of i's stratum, the same for every group.  Configurations enter only through
   this summary: it does not matter how strongly their errors are correlated item by item, as
   nothing treats them as independent witnesses.
2. The residual ``e_i = y_i − f_i`` is known on the labelled items.  The full human share of
   group g is ``(Σ_labelled y + Σ_unlabelled f + Σ_unlabelled e) / N_g``: the first two sums
   are known, the third is predicted.  Each group has its own residual mean ``μ_g``, so
   misclassification that differs between the groups (differential error, which makes the LLM
   see effects that are not there or miss ones that are) is learned from the labelled items of
   each group, not assumed away.
3. Priors: flat on ``μ_A + μ_B``; the residual effect ``μ_A − μ_B ~ N(0, τ² λ_h²)`` with a
   scale ``τ`` shared by the study's hypotheses (uniform on (0, 0.2]) and a local ``λ_h``
   (half-Cauchy, a horseshoe), both integrated on grids.  Most hypotheses' residual effects are
   small, a few can be large; τ is learned from all hypotheses of the study.
4. Because the labelled items are a simple random sample, the unlabelled items' residual mean
   in group g is normal around ``μ_g`` with variance ``σ_g² / U_g`` (σ_g² from the labelled
   residuals, shrunk towards ``f (1 − f)``).  Each draw completes the 2 × 2 table of the full
   human labels, and the human test of :func:`hackrisk.analysis.frequentist.test_hypotheses`
   (same Wald test, same zero rule) gives a draw of the full-human conclusion.
5. Each configuration's own conclusion (its test on its own labels) is known, so
   ``P(wrong) = P(full-human conclusion ≠ configuration conclusion)`` over the draws, split into
   Type I / II / S as :func:`hackrisk.analysis.risk.classify_errors`.

The draws are independent Monte-Carlo draws (no MCMC, no compilation: a fit takes well under a
second); ``draws × chains`` of them are laid out as ``(chain, draw)`` in an ArviZ
``InferenceData`` so that :func:`prospective_summary` and ArviZ tools read it like a posterior.

:func:`calibration_study` checks the calibration on a cube whose items all have human labels:
it reveals n random labels as a study would, predicts, and compares with the conclusions of all
human labels (reliability table with cluster-bootstrap intervals, Brier score and AUC, against the
subset-test rule and a constant rate).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import CONFIG_DIMS, NOT_ANNOTATED

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    from matplotlib.axes import Axes

__all__ = [
    "prospective_risk",
    "prospective_summary",
    "calibration_table",
    "reliability_table",
    "risk_scores",
    "calibration_study",
    "scores_table",
    "CALIBRATION_NOTE",
    "plot_prospective_risk",
    "plot_reliability",
]

log = logging.getLogger(__name__)

#: Where the calibration of :func:`prospective_risk` was checked (said by the report and the
#: notebook when a study has no full human labels to check it on its own data).
CALIBRATION_NOTE = (
    "This study has no full human labelling to check the risk on, so here is where it was checked "
    "(calibration_study, docs/prospective.md): real SmolLM2-135M labels of four human-labelled "
    "corpora (VADER tweets, 300 items x 15 configurations; the paper's relevance, stance and "
    "frames tweets, 150 items x 6 configurations), 50 to 250 human labels revealed, 23,040 "
    "conclusions on 136 hypotheses. The observed share of wrong conclusions lay inside the 95 % "
    "cluster-bootstrap interval in every bin of predicted risk (below 0.1: 0.032 predicted, 0.035 "
    "observed; 0.9 and above: 0.988 predicted, 0.985 observed), and the Brier score (0.108, 0.068, "
    "0.084, 0.050 at 50, 100, 150, 250 labels) beat the rule 'wrong when the LLM conclusion "
    "differs from the test on the labelled subset' (0.154, 0.093, 0.122, 0.080) and a constant "
    "rate (0.22-0.23). It assumes the human-labelled items are a random sample of the study's.")

#: Bin edges of predicted P(wrong) in reliability tables (those of issue #19's table).
RELIABILITY_BINS = (0.0, 0.1, 0.3, 0.6, 0.9, 1.0)

# grids of the residual group difference's scales: the study-wide τ (uniform prior on (0, 0.2],
# a probability difference) and each hypothesis' local λ (half-Cauchy(0, 1), on its quantiles)
_TAU_GRID = np.linspace(0.0, 0.2, 51)
_LAM_GRID = np.tan(0.5 * np.pi * (np.arange(40) + 0.5) / 40)
_LAM_W = np.full(40, 1.0 / 40)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _study_arrays(cube: xr.Dataset, hypotheses: xr.Dataset, human: Any, sample: int | None):
    """Numpy inputs for the single task of ``hypotheses``; items aligned by coordinate."""
    if "group" not in hypotheses or "class_code" not in hypotheses.coords:
        raise ValueError("hypotheses needs 'group' (hypothesis, item) and coord 'class_code'. "
                         "Fix: pass hackrisk.hypotheses.generate_hypotheses(cube) (or a selection).")
    if hypotheses.sizes.get("hypothesis", 0) == 0:
        raise ValueError("hypotheses is empty. Fix: select at least one hypothesis.")
    tasks = np.unique(np.asarray(hypotheses["task"].values).astype(str))
    if tasks.size != 1:
        raise ValueError(f"hypotheses span tasks {list(tasks)}; the prospective risk is for one "
                         "study (task). Fix: select one, e.g. hyps.isel(hypothesis=hyps.task == 't').")
    task = str(tasks[0])
    if task not in np.asarray(cube["task"].values).astype(str):
        raise ValueError(f"hypotheses are about task {task!r}, which the cube does not have. "
                         "Fix: pass the cube the hypotheses were generated from.")
    sub = cube.sel(task=task)
    lab = sub["label"]
    if "sample" in lab.dims:
        if sample is None and lab.sizes["sample"] > 1:
            raise ValueError("the cube has several samples. Fix: pass sample= (which draw to use).")
        lab = lab.isel(sample=sample or 0)
    real = np.asarray(sub["item_id"].values).astype(str) != ""
    labels = np.asarray(lab.transpose(*CONFIG_DIMS, "item").values)  # (M, P, T, I)
    cfg_shape = labels.shape[:3]
    labels = labels.reshape(-1, labels.shape[-1])[:, real]  # (C_all, N)
    annotated = (labels != NOT_ANNOTATED).all(axis=1)
    if not annotated.any():
        raise ValueError(f"no configuration has labels for every item of task {task!r}. "
                         "Fix: annotate the task first.")
    truth = np.asarray(sub["truth"].values)[real]
    n_item_dim = sub.sizes["item"]
    if human is None:
        hmask = truth >= 0
    else:
        hmask = np.asarray(human, dtype=bool)
        if hmask.shape != (n_item_dim,) and hmask.shape != (int(real.sum()),):
            raise ValueError(f"human has shape {hmask.shape}; expected ({n_item_dim},) "
                             "(the cube's item dim). Fix: pass a boolean mask over items.")
        if hmask.shape == (n_item_dim,):
            hmask = hmask[real]
        if (hmask & (truth < 0)).any():
            raise ValueError("human marks items without a human label (truth == -1). Fix: only "
                             "mark items whose human label is in the cube.")
    k_cls = int((np.asarray(sub["class_name"].values).astype(str) != "").sum())
    grp = hypotheses["group"]
    if "item" in grp.coords and "item" in sub.coords:
        grp = grp.reindex(item=sub["item"].values, fill_value=-1)
    group = np.asarray(grp.transpose("hypothesis", "item").values)
    if group.shape[1] != n_item_dim:
        raise ValueError(f"hypotheses cover {group.shape[1]} items, the cube {n_item_dim}. "
                         "Fix: generate the hypotheses from this cube.")
    group = group[:, real]
    cls = np.asarray(hypotheses["class_code"].values).astype(np.int64)
    return {
        "task": task, "labels": labels, "annotated": annotated, "cfg_shape": cfg_shape,
        "truth": truth, "human": hmask, "k": k_cls, "group": group, "cls": cls,
        "item_index": np.flatnonzero(real),
    }


def _llm_tests(labels: np.ndarray, group: np.ndarray, cls: np.ndarray, alpha: float,
               zero_rule: str) -> dict[str, np.ndarray]:
    """Each configuration's own test of each hypothesis, (H, C)."""
    from . import _kernels as K

    in_a = (group == 1).astype(np.float32)
    in_b = (group == 0).astype(np.float32)
    k_a = np.empty((cls.size, labels.shape[0]), dtype=np.float64)
    k_b = np.empty_like(k_a)
    for c in np.unique(cls):  # one pass per class, not per hypothesis
        hit = (labels == c).astype(np.float32)  # (C, N)
        h = cls == c
        k_a[h] = in_a[h] @ hit.T
        k_b[h] = in_b[h] @ hit.T
    n_a = in_a.sum(1)[:, None]
    n_b = in_b.sum(1)[:, None]
    return K.two_by_two(k_a, n_a, k_b, n_b, zero_rule=zero_rule, alpha=alpha, zero_conclusion="llm")


def _human_test(k_a, n_a, k_b, n_b, alpha: float, zero_rule: str) -> dict[str, np.ndarray]:
    """The human test of ``test_hypotheses`` on (completed) human counts."""
    from . import _kernels as K

    return K.two_by_two(k_a, n_a, k_b, n_b, zero_rule=zero_rule, alpha=alpha,
                        zero_conclusion="human")


def _classify(llm: np.ndarray, human: np.ndarray) -> np.ndarray:
    """Error codes as classify_errors: 0 correct, 1 Type I, 2 Type II, 3 Type S."""
    return np.where(human == 0, (llm != 0).astype(np.int8),
                    np.where(llm == 0, 2, np.where(llm != human, 3, 0))).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# the predictive distribution of the full human counts
# ---------------------------------------------------------------------------------------------
def _strata(score: np.ndarray, labelled: np.ndarray, n_strata: int) -> np.ndarray:
    """Stratum of every item (H, N) from cut points at quantiles of the labelled items' score."""
    n_h = score.shape[0]
    out = np.zeros(score.shape, dtype=np.int64)
    if n_strata <= 1 or not labelled.any():
        return out
    qs = np.arange(1, n_strata) / n_strata
    for h in range(n_h):
        cuts = np.unique(np.quantile(score[h, labelled], qs, method="inverted_cdf"))
        # a cut at the top value would leave an empty upper stratum: items ≥ cut go up
        cuts = cuts[cuts > score[h, labelled].min()]
        out[h] = np.searchsorted(cuts, score[h], side="right")
    return out


def _eb_scale_draws(d: np.ndarray, v: np.ndarray, n_draws: int, gen: np.random.Generator):
    """Draws of the residual-effect scale per hypothesis (hierarchical, on grids).

    ``d_h ~ N(0, τ² λ_h² + v_h)`` marginally, with a scale ``τ`` shared by the study's
    hypotheses (uniform prior on (0, 0.2]) and a local scale ``λ_h`` per hypothesis
    (half-Cauchy(0, 1) prior, a horseshoe: a few hypotheses may have large residual effects
    while most are near zero).  τ is drawn from its marginal posterior given all hypotheses, then λ_h | τ.
    Returns the (H, S) draws of ``τ λ_h`` and the posterior of τ on its grid.
    """
    from scipy.special import logsumexp

    tau = _TAU_GRID[1:]  # τ > 0
    lam = _LAM_GRID
    lw = np.log(_LAM_W)
    sc2 = (tau[:, None] * lam[None, :]) ** 2  # (T, L)
    tot = sc2[None] + v[:, None, None]  # (H, T, L)
    ll = -0.5 * (np.log(tot) + d[:, None, None] ** 2 / tot) + lw  # (H, T, L)
    lt = logsumexp(ll, axis=2).sum(0)  # (T,): uniform prior on τ
    pt = np.exp(lt - logsumexp(lt))
    n_h = d.size
    it = np.minimum((gen.random(n_draws)[:, None] > np.cumsum(pt)[None, :]).sum(-1), tau.size - 1)
    cond = np.exp(ll - logsumexp(ll, axis=2, keepdims=True))  # (H, T, L): λ_h | τ
    il = np.empty((n_h, n_draws), dtype=np.int64)
    for h0 in range(0, n_h, 32):  # chunks of hypotheses keep the (H, S, L) CDF small
        cdf = np.cumsum(cond[h0:h0 + 32], axis=2)[:, it, :]
        u = gen.random((cdf.shape[0], n_draws))[:, :, None]
        il[h0:h0 + 32] = np.minimum((u > cdf).sum(-1), lam.size - 1)
    return tau[it][None, :] * lam[il], pt


def _full_share_draws(group: np.ndarray, cls: np.ndarray, labels: np.ndarray, truth: np.ndarray,
                      hm: np.ndarray, n_strata: int | None, n_draws: int,
                      gen: np.random.Generator) -> dict[str, np.ndarray]:
    """Draws of the full human class-c counts in A and B for every hypothesis.

    ``f_i``: the share of class c among the labelled items of item i's stratum of the LLM
    consensus score (the same for all groups); ``e_i = y_i − f_i`` the residual.  The full
    share of group g is ``(Σ_labelled y + Σ_unlabelled f + U_g ē_g,unlabelled) / N_g``.  Group
    residual means ``μ_A, μ_B``: flat on their sum, ``μ_A − μ_B ~ N(0, τ_h²)`` (τ_h from
    :func:`_eb_scale_draws`); labelled and unlabelled residual means are normal around them.
    """
    n_h, n_item = group.shape
    n_lab = int(hm.sum())
    if n_strata is None:
        n_strata = int(np.clip(n_lab // 30, 2, 5))
    f = np.empty((n_h, n_item))
    n_j_max = 1
    for c in np.unique(cls):
        rows = cls == c
        score = (labels == c).mean(axis=0)[None, :]
        stratum = _strata(score, hm, n_strata)[0]
        n_j = int(stratum.max()) + 1
        n_j_max = max(n_j_max, n_j)
        yc = (truth == c) & hm
        ybar = (yc.sum() + 0.5) / (n_lab + 1.0)
        y_j = np.bincount(stratum, weights=yc.astype(float), minlength=n_j)
        n_jl = np.bincount(stratum, weights=hm.astype(float), minlength=n_j)
        f[rows] = ((y_j + ybar) / (n_jl + 1.0))[stratum]
    y = (truth[None, :] == cls[:, None]).astype(float)
    e = np.where(hm[None, :], y - f, 0.0)
    stats = {}
    for name, gmask in (("a", group == 1), ("b", group == 0)):
        lab = gmask & hm[None, :]
        unl = gmask & ~hm[None, :]
        n_l = lab.sum(1).astype(float)
        stats[name] = {
            "n_l": n_l, "u": unl.sum(1).astype(float), "n": gmask.sum(1).astype(float),
            "sum_y": (y * lab).sum(1), "sum_f_unl": (f * unl).sum(1),
            "ebar": (e * lab).sum(1) / np.maximum(n_l, 1.0),
            # residual variance, shrunk towards the model variance f (1 − f) of the group
            "s2": ((e**2 * lab).sum(1) + 2.0 * (f * (1 - f) * gmask).sum(1) / np.maximum(gmask.sum(1), 1))
            / (n_l + 2.0),
        }
    a, b = stats["a"], stats["b"]
    s2a, s2b = np.maximum(a["s2"], 1e-6), np.maximum(b["s2"], 1e-6)
    pa = np.where(a["n_l"] > 0, a["n_l"] / s2a, 0.0)  # data precisions of the group means
    pb = np.where(b["n_l"] > 0, b["n_l"] / s2b, 0.0)
    d = a["ebar"] - b["ebar"]
    v = np.where((pa > 0) & (pb > 0), 1.0 / np.maximum(pa, 1e-12) + 1.0 / np.maximum(pb, 1e-12), 1.0)
    tau, w = _eb_scale_draws(d, v, n_draws, gen)  # (H, S)
    # residual variances drawn from their scaled-inverse-χ² posteriors (Student-t tails: with
    # few labels per group a plug-in variance would make extreme predictions too confident)
    s2d = {}
    for name, s2 in (("a", s2a), ("b", s2b)):
        nu = np.maximum(stats[name]["n_l"] + 1.0, 1.0)[:, None]
        s2d[name] = s2[:, None] * nu / gen.chisquare(np.broadcast_to(nu, tau.shape))
    pa = np.where(a["n_l"][:, None] > 0, a["n_l"][:, None] / s2d["a"], 0.0)  # (H, S)
    pb = np.where(b["n_l"][:, None] > 0, b["n_l"][:, None] / s2d["b"], 0.0)
    # posterior of (μ_A, μ_B) | τ: precision diag(pa, pb) + (1/τ²) [[1, −1], [−1, 1]]
    k = 1.0 / np.maximum(tau, 1e-4) ** 2
    l11 = pa + k
    l22 = pb + k
    l12 = -k
    det = l11 * l22 - l12**2
    # a group without labelled items: its mean follows the other through the prior only
    det = np.maximum(det, 1e-300)
    c11, c22, c12 = l22 / det, l11 / det, -l12 / det
    ra, rb = pa * a["ebar"][:, None], pb * b["ebar"][:, None]
    m_a = c11 * ra + c12 * rb
    m_b = c12 * ra + c22 * rb
    z1, z2 = gen.standard_normal((2, *tau.shape))
    sd1 = np.sqrt(np.maximum(c11, 0))
    mu_a = m_a + sd1 * z1
    cond_var = np.maximum(c22 - c12**2 / np.maximum(c11, 1e-300), 0)
    mu_b = m_b + c12 / np.maximum(c11, 1e-300) * (mu_a - m_a) + np.sqrt(cond_var) * z2
    res = {}
    for name, mu in (("a", mu_a), ("b", mu_b)):
        g = stats[name]
        u = g["u"][:, None]
        e_unl = mu + np.sqrt(s2d[name] / np.maximum(u, 1.0)) * gen.standard_normal(mu.shape)
        total = g["sum_y"][:, None] + g["sum_f_unl"][:, None] + u * e_unl
        res[name] = np.clip(total, 0.0, g["n"][:, None])  # (H, S) full class-c count
    return {"k_a": res["a"].T, "k_b": res["b"].T, "n_a": a["n"], "n_b": b["n"],
            "n_strata": n_j_max, "tau": tau, "tau_prior": w,
            "unlabelled_groups": (a["n_l"] == 0) & (b["n_l"] == 0)}


def prospective_risk(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    human: Sequence[bool] | np.ndarray | None = None,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    n_strata: int | None = None,
    draws: int = 500,
    tune: int = 0,
    chains: int | None = None,
    sample: int | None = None,
    rng: int | np.random.Generator | None = None,
) -> az.InferenceData:
    """Probability that each configuration's conclusion differs from the full-human one.

    Parameters
    ----------
    cube
        Label cube with LLM labels of every configuration to assess for all items of the task.
        Configurations with any unlabelled item (``-1``) are left out (NaN results); ``-2``
        (outside the label set) counts as "not the class".
    hypotheses
        Hypotheses of ONE task (``generate_hypotheses`` output, or a selection of it).
    human
        Boolean mask over the cube's ``item`` dim: the items whose human label the researcher
        has; they must be a simple random sample of the study's items.  Default: every item
        with ``truth >= 0`` (a cube whose truth is known only on the labelled subset).
    alpha, zero_rule
        The frequentist test applied to each configuration and to the completed human labels
        (as :func:`hackrisk.analysis.frequentist.test_hypotheses`).
    n_strata
        Strata of the LLM consensus score (default: labelled items // 30, clipped to 2..5).
    draws, chains
        Monte-Carlo draws of the full human labelling: ``draws × chains`` independent draws
        laid out as ``(chain, draw)`` (default 2 chains).
    tune
        Accepted for compatibility with MCMC fits; the draws are independent, nothing is tuned.
    sample
        Which draw of a cube with a ``sample`` dim to use.
    rng
        Seed or generator.

    Returns
    -------
    arviz.InferenceData
        ``posterior``: ``effect`` (hypothesis; the full-human difference in class shares
        p_A − p_B) and ``tau`` (hypothesis; the scale τ λ_h of the residual effect).  ``posterior_predictive``: ``true_estimate`` and ``true_conclusion``
        (hypothesis) of the full-human-label test, and ``error`` (hypothesis, model, prompt,
        temperature; int8 codes as ``classify_errors``, -1 for left-out configurations).
        ``constant_data``: each configuration's ``conclusion`` and ``estimate``, ``human`` per
        item.  Summarise with :func:`prospective_summary`.

    Notes
    -----
    See the module docstring and ``docs/prospective.md`` for the method and its assumptions.
    """
    del tune  # independent draws: nothing to tune
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1).")
    if draws < 1:
        raise ValueError(f"draws={draws}: need at least one draw. Fix: pass draws >= 1.")
    n_chain = 2 if chains is None else int(chains)
    if n_chain < 1:
        raise ValueError(f"chains={chains}: need at least one chain. Fix: pass chains >= 1.")
    if n_strata is not None and n_strata < 1:
        raise ValueError(f"n_strata={n_strata}: need at least 1. Fix: pass n_strata >= 1 or None.")
    d = _study_arrays(cube, hypotheses, human, sample)
    gen = np.random.default_rng(rng)
    labels, annotated = d["labels"], d["annotated"]
    lab = labels[annotated]  # (C, N)
    n_cfg, n_item = lab.shape
    hm = d["human"]
    if not hm.any():
        raise ValueError(f"task {d['task']!r} has no human labels (truth == -1 everywhere, or an "
                         "empty human mask). Fix: label a random subset of the items first "
                         "(e.g. with `hackrisk suggest`) and add the labels to the cube.")
    n_s = n_chain * int(draws)
    log.info("prospective risk: %d items (%d human), %d configurations, %d hypotheses",
             n_item, hm.sum(), n_cfg, d["cls"].size)
    llm = _llm_tests(lab, d["group"], d["cls"], alpha, zero_rule)
    fc = _full_share_draws(d["group"], d["cls"], lab, d["truth"], hm, n_strata, n_s, gen)
    res = _human_test(fc["k_a"], fc["n_a"][None], fc["k_b"], fc["n_b"][None], alpha, zero_rule)
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = fc["k_a"] / fc["n_a"][None] - fc["k_b"] / fc["n_b"][None]  # (S, H)
    true_con = res["conclusion"].astype(np.int8)
    err_c = _classify(llm["conclusion"][None, :, :], true_con[:, :, None])  # (S, H, C)
    if fc["unlabelled_groups"].any():  # nothing known about either group: no prediction
        log.warning("prospective_risk: %d hypotheses have no human label in either group; "
                    "their P(wrong) is NaN.", int(fc["unlabelled_groups"].sum()))
        err_c[:, fc["unlabelled_groups"], :] = -1

    # back onto the cube's configuration dims ---------------------------------------------------
    n_all = annotated.size
    cfg_shape = d["cfg_shape"]
    cfg_dims = list(CONFIG_DIMS)
    sub = cube.sel(task=d["task"])
    cfg_coords = {c: sub[c].values for c in CONFIG_DIMS}

    def _full(arr: np.ndarray, fill: Any, axis: int) -> np.ndarray:
        shape = list(arr.shape)
        shape[axis] = n_all
        out = np.full(shape, fill, dtype=np.result_type(arr.dtype, np.asarray(fill).dtype))
        idx = [slice(None)] * arr.ndim
        idx[axis] = annotated
        out[tuple(idx)] = arr
        return out.reshape(*shape[:axis], *cfg_shape, *shape[axis + 1:])

    def _cd(values: np.ndarray) -> np.ndarray:  # (S, ...) → (chain, draw, ...)
        return values.reshape(n_chain, int(draws), *values.shape[1:])

    hyp_coords = {c: ("hypothesis", hypotheses[c].values)
                  for c in hypotheses["group"].coords if hypotheses[c].dims == ("hypothesis",)}
    hyp_coords["hypothesis"] = hypotheses["hypothesis"].values
    base = {"chain": np.arange(n_chain), "draw": np.arange(int(draws))}
    n_j = fc["n_strata"]
    posterior = xr.Dataset(
        {
            "effect": (["chain", "draw", "hypothesis"], _cd(effect)),
            "tau": (["chain", "draw", "hypothesis"], _cd(fc["tau"].T)),
        },
        coords={**base, **hyp_coords},
    )
    pred = xr.Dataset(
        {
            "true_estimate": (["chain", "draw", "hypothesis"], _cd(res["estimate"])),
            "true_conclusion": (["chain", "draw", "hypothesis"], _cd(true_con)),
            "error": (["chain", "draw", "hypothesis", *cfg_dims],
                      _cd(_full(err_c, np.int8(-1), 2).astype(np.int8))),
        },
        coords={**base, **cfg_coords, **hyp_coords},
    )
    const = xr.Dataset(
        {
            "conclusion": (["hypothesis", *cfg_dims],
                           _full(llm["conclusion"], np.int8(0), 1).astype(np.int8)),
            "estimate": (["hypothesis", *cfg_dims], _full(llm["estimate"], np.nan, 1)),
            "annotated": (cfg_dims, annotated.reshape(cfg_shape)),
            "human": ("item", np.zeros(cube.sizes["item"], dtype=bool)),
        },
        coords={**cfg_coords, **hyp_coords, "item": cube["item"].values},
    )
    const["human"].values[d["item_index"]] = hm
    import arviz as az

    out = az.InferenceData(posterior=posterior, posterior_predictive=pred, constant_data=const)
    attrs = {
        "method": "prediction of the full human test: LLM-consensus strata, group residual "
                  "means, horseshoe prior on residual effects; independent Monte-Carlo draws",
        "sampler": "exact Monte Carlo (no MCMC)",
        "task": d["task"], "alpha": alpha, "zero_rule": zero_rule,
        "n_items": int(n_item), "n_human": int(hm.sum()), "n_strata": int(n_j),
        "true_conclusion": "the test_hypotheses human test on all items, the unlabelled ones' "
                           "labels drawn from their predictive distribution",
    }
    for g in (out.posterior, out.posterior_predictive):
        g.attrs.update(attrs)
    return out


def prospective_summary(idata: az.InferenceData, *, ci: float = 0.9) -> xr.Dataset:
    """Per-configuration error probabilities and the effect distribution of :func:`prospective_risk`.

    Returns
    -------
    xarray.Dataset
        On ``(hypothesis, model, prompt, temperature)``: ``p_type_i``, ``p_type_ii``,
        ``p_type_s``, ``p_wrong`` (their sum), ``conclusion`` (the configuration's own).  On
        ``hypothesis``: ``effect`` (ci: estimate = median, lower, upper), ``p_effect_positive``,
        ``p_true_conclusion`` (true_conclusion: -1, 0, 1) of the full-human-label test.
    """
    pp = idata.posterior_predictive
    err = pp["error"]
    valid = err >= 0
    out = xr.Dataset()
    for name, code in (("p_type_i", 1), ("p_type_ii", 2), ("p_type_s", 3)):
        out[name] = (err == code).mean(("chain", "draw")).where(valid.all(("chain", "draw")))
    out["p_wrong"] = out["p_type_i"] + out["p_type_ii"] + out["p_type_s"]
    out["conclusion"] = idata.constant_data["conclusion"]
    eff = idata.posterior["effect"]
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    q = eff.quantile([0.5, lo, hi], dim=("chain", "draw")).rename(quantile="ci")
    out["effect"] = q.assign_coords(ci=["estimate", "lower", "upper"])
    out["p_effect_positive"] = (eff > 0).mean(("chain", "draw"))
    tc = pp["true_conclusion"]
    out["p_true_conclusion"] = xr.concat([(tc == v).mean(("chain", "draw")) for v in (-1, 0, 1)],
                                         dim=pd.Index([-1, 0, 1], name="true_conclusion"))
    out.attrs.update({k: v for k, v in pp.attrs.items() if isinstance(v, (str, int, float))})
    return out


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------
def calibration_table(
    p_pred: np.ndarray | xr.DataArray,
    wrong: np.ndarray | xr.DataArray,
    *,
    n_bins: int = 5,
    cluster: np.ndarray | xr.DataArray | None = None,
) -> pd.DataFrame:
    """Predicted probability of a wrong conclusion against the observed error frequency.

    Parameters
    ----------
    p_pred
        Predicted probabilities (any shape; NaN = left out).
    wrong
        Observed 0/1 outcomes, same shape.
    n_bins
        Equal-width bins of ``p_pred`` on [0, 1].
    cluster
        Optional cluster label per prediction (e.g. the hypothesis or study): outcomes that share
        a cluster are correlated, so the Monte-Carlo SE is computed from cluster sums of the
        residuals ``wrong − p_pred``.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin_lower``, ``bin_upper``, ``n``, ``predicted`` (mean),
        ``observed`` (frequency), ``se`` (SE of observed − predicted under calibration: binomial
        ``sqrt(Σ p(1−p))/n``, or the cluster-robust one, whichever is larger), ``z``.

    See Also
    --------
    reliability_table : the same with given bin edges and cluster-bootstrap intervals.
    """
    p = np.asarray(p_pred, dtype=float).ravel()
    o = np.asarray(wrong, dtype=float).ravel()
    if p.shape != o.shape:
        raise ValueError(f"p_pred has {p.size} values, wrong {o.size}. Fix: pass equal shapes.")
    cl = None if cluster is None else np.asarray(cluster).ravel()
    ok = np.isfinite(p) & np.isfinite(o)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    rows = []
    for i in range(n_bins):
        m = ok & (b == i)
        if not m.any():
            continue
        n = int(m.sum())
        res = o[m] - p[m]
        se_bin = np.sqrt(np.sum(p[m] * (1 - p[m]))) / n
        se = se_bin
        if cl is not None:
            _, ci = np.unique(cl[m], return_inverse=True)
            sums = np.bincount(ci, weights=res)
            se = max(se_bin, np.sqrt(np.sum(sums**2)) / n)
        rows.append({"bin_lower": edges[i], "bin_upper": edges[i + 1], "n": n,
                     "predicted": float(p[m].mean()), "observed": float(o[m].mean()),
                     "se": float(se), "z": float(res.mean() / se) if se > 0 else 0.0})
    return pd.DataFrame(rows)


def _as_flat(p_pred: Any, wrong: Any, cluster: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(p_pred, dtype=float).ravel()
    o = np.asarray(wrong, dtype=float).ravel()
    if p.shape != o.shape:
        raise ValueError(f"p_pred has {p.size} values, wrong {o.size}. Fix: pass equal shapes.")
    cl = np.arange(p.size) if cluster is None else np.asarray(cluster).ravel()
    if cl.shape != p.shape:
        raise ValueError(f"cluster has {cl.size} values, p_pred {p.size}. Fix: one per prediction.")
    ok = np.isfinite(p) & np.isfinite(o)
    return p[ok], o[ok], cl[ok]


def reliability_table(
    p_pred: np.ndarray | xr.DataArray,
    wrong: np.ndarray | xr.DataArray,
    *,
    cluster: np.ndarray | xr.DataArray | None = None,
    bins: Sequence[float] = RELIABILITY_BINS,
    n_boot: int = 2000,
    level: float = 0.95,
    rng: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Reliability table: bins of predicted P(wrong), mean predicted, observed wrong rate.

    Parameters
    ----------
    p_pred, wrong
        Predicted probabilities and observed 0/1 outcomes (same shape; NaN = left out).
    cluster
        Cluster of each prediction (e.g. ``"<study>/<hypothesis>"``): all configurations of a
        hypothesis share its full-human conclusion, so they are resampled together.  Default:
        each prediction its own cluster.
    bins
        Bin edges on [0, 1]; the last bin includes 1.
    n_boot, level, rng
        Cluster bootstrap of the observed rate in each bin (percentile interval).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin`` (label), ``bin_lower``, ``bin_upper``, ``n``
        (conclusions), ``clusters``, ``predicted`` (mean), ``observed`` (wrong rate),
        ``lower`` / ``upper`` (bootstrap interval of the observed rate), ``covered``
        (the mean prediction lies within it).
    """
    p, o, cl = _as_flat(p_pred, wrong, cluster)
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins={list(bins)} must be increasing edges. Fix: e.g. (0, .1, .3, .6, .9, 1).")
    n_bins = edges.size - 1
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    _, ci = np.unique(cl, return_inverse=True)
    n_cl = int(ci.max()) + 1 if ci.size else 0
    # cluster × bin sums, then multinomial cluster weights: every bin from the same resamples
    s_o = np.zeros((n_cl, n_bins))
    s_n = np.zeros((n_cl, n_bins))
    np.add.at(s_o, (ci, b), o)
    np.add.at(s_n, (ci, b), 1.0)
    gen = np.random.default_rng(rng)
    w = gen.multinomial(n_cl, np.full(n_cl, 1.0 / n_cl), size=n_boot) if n_cl else np.zeros((n_boot, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ s_o) / (w @ s_n)  # (B, bins)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for i in range(n_bins):
        m = b == i
        if not m.any():
            continue
        bt = boot[:, i][np.isfinite(boot[:, i])]
        lo, hi = (np.quantile(bt, [lo_q, hi_q]) if bt.size else (np.nan, np.nan))
        pred = float(p[m].mean())
        rows.append({"bin": f"{edges[i]:g}–{edges[i + 1]:g}", "bin_lower": edges[i],
                     "bin_upper": edges[i + 1], "n": int(m.sum()),
                     "clusters": int(np.unique(ci[m]).size), "predicted": pred,
                     "observed": float(o[m].mean()), "lower": float(lo), "upper": float(hi),
                     "covered": bool(lo <= pred <= hi)})
    return pd.DataFrame(rows)


def _auc(p: np.ndarray, o: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties counted half)."""
    from scipy.stats import rankdata

    pos = o == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def risk_scores(p_pred: np.ndarray | xr.DataArray, wrong: np.ndarray | xr.DataArray) -> dict[str, float]:
    """Brier score, AUC and counts of predicted probabilities of a wrong conclusion.

    Returns
    -------
    dict
        ``brier`` (mean squared error of the probability; lower is better), ``auc`` (probability
        that a wrong conclusion gets a higher prediction than a right one; 0.5 = no ranking),
        ``n``, ``observed`` (wrong rate), ``predicted`` (mean prediction).
    """
    p, o, _ = _as_flat(p_pred, wrong, None)
    return {"brier": float(np.mean((p - o) ** 2)) if p.size else float("nan"), "auc": _auc(p, o),
            "n": int(p.size), "observed": float(o.mean()) if o.size else float("nan"),
            "predicted": float(p.mean()) if p.size else float("nan")}


def calibration_study(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    n_human: Sequence[int] = (50, 150, 300),
    reps: int = 5,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    draws: int = 500,
    bins: Sequence[float] = RELIABILITY_BINS,
    n_boot: int = 2000,
    rng: int | np.random.Generator | None = 0,
    **risk_kwargs: Any,
) -> dict[str, pd.DataFrame]:
    """Check :func:`prospective_risk` on a cube whose items all have human labels.

    The cube is treated as a study: for each budget ``n`` in ``n_human`` and each of ``reps``
    replicates, ``n`` random items keep their human label (the others get ``truth = -1``, as in a
    real study), the prospective risk is computed, and every configuration's predicted P(wrong)
    is compared with whether its conclusion differs from the one of ALL human labels.

    Parameters
    ----------
    cube
        Label cube; the study is the hypotheses' task restricted to its items with a human label.
    hypotheses
        Hypotheses of that one task (e.g. a selection of ``generate_hypotheses(cube)``).
    n_human
        Budgets: human labels revealed per replicate (each must be below the number of items).
    reps
        Replicates per budget.
    alpha, zero_rule
        The test (as :func:`hackrisk.analysis.frequentist.test_hypotheses`).
    draws
        Draws per chain of each :func:`prospective_risk` call (2 chains).
    bins, n_boot
        Reliability-table bins and cluster-bootstrap replicates.
    rng
        Seed or generator of the revealed subsets, the draws and the bootstrap.
    **risk_kwargs
        Passed to :func:`prospective_risk` (e.g. ``n_strata``).

    Returns
    -------
    dict of pandas.DataFrame
        ``"predictions"``: one row per budget × replicate × hypothesis × configuration with
        ``p_wrong`` (prospective risk), ``p_subset`` (1 when the configuration's conclusion differs
        from the human test on the revealed subset, else 0), ``wrong`` (observed), ``name`` and
        ``cluster`` (the hypothesis: its grouping and class).  ``"reliability"``:
        :func:`reliability_table` of ``p_wrong`` over all budgets, clustered by hypothesis (its
        conclusions share the full-human conclusion across configurations, budgets and
        replicates, so they are resampled together).  ``"scores"``: per budget (and ``"all"``) and method
        (``prospective``, ``subset_test``, ``constant``: the observed wrong rate of that budget),
        ``brier``, ``auc``, ``n``, ``observed``, ``predicted``.
    """
    if reps < 1:
        raise ValueError(f"reps={reps}: need at least one replicate.")
    base = _study_arrays(cube, hypotheses, None, risk_kwargs.get("sample"))
    truth_all = base["truth"]
    labelled = truth_all >= 0
    n_full = int(labelled.sum())
    if n_full == 0:
        raise ValueError("calibration_study: the task has no human labels. Fix: pass a cube whose "
                         "items have human labels (truth >= 0).")
    for n in n_human:
        if not 0 < int(n) < n_full:
            raise ValueError(f"n_human={n}: each budget must be between 1 and {n_full - 1} (the "
                             "labelled items). Fix: pass smaller budgets.")
    # the study: the task's items with a human label
    task = base["task"]
    keep_pos = base["item_index"][labelled]
    sub = cube.sel(task=[task]).isel(item=keep_pos)
    if "item" in hypotheses.coords and "item" in sub.coords:
        hyps = hypotheses.sel(item=sub["item"].values)  # align by coordinate
    else:
        hyps = hypotheses.isel(item=keep_pos)
    d = _study_arrays(sub, hyps, None, risk_kwargs.get("sample"))
    lab = d["labels"][d["annotated"]]
    llm = _llm_tests(lab, d["group"], d["cls"], alpha, zero_rule)["conclusion"]  # (H, C)
    truth = d["truth"]
    in_a, in_b = d["group"] == 1, d["group"] == 0
    yc = truth[None, :] == d["cls"][:, None]
    full = _human_test((yc & in_a).sum(1), in_a.sum(1), (yc & in_b).sum(1), in_b.sum(1),
                       alpha, zero_rule)["conclusion"]
    wrong_full = (_classify(llm, full[:, None]) > 0)  # (H, C)
    # separate streams: the revealed subsets do not depend on how many draws a fit takes
    gen = np.random.default_rng(rng)
    reveal_gen, fit_gen = (np.random.default_rng(s) for s in gen.integers(0, 2**62, size=2))
    n_items = truth.size
    truth_da = sub["truth"]
    hyp_ids = np.asarray(hyps["hypothesis"].values)
    # a hypothesis is named by its coordinates (grouping, class) when it has them
    names = [str(h) for h in hyp_ids]
    if "grouping" in hyps.coords:
        cls_name = hyps["class_name"].values if "class_name" in hyps.coords else d["cls"]
        names = [f"{g}|{c}" for g, c in zip(hyps["grouping"].values, cls_name, strict=True)]
    cfg_idx = np.flatnonzero(d["annotated"])
    cfg_names = np.array([f"{m}|{p}|{t}" for m in sub["model"].values for p in sub["prompt"].values
                          for t in sub["temperature"].values], dtype=object)[cfg_idx]
    frames = []
    for n in n_human:
        for rep in range(reps):
            reveal = np.zeros(n_items, dtype=bool)
            reveal[reveal_gen.choice(n_items, int(n), replace=False)] = True
            masked_truth = truth_da.copy(data=np.where(reveal[None, :], truth_da.values, -1))
            study = sub.assign(truth=masked_truth)
            s = prospective_summary(prospective_risk(
                study, hyps, alpha=alpha, zero_rule=zero_rule, draws=draws, chains=2,
                rng=fit_gen, **risk_kwargs))
            p = np.asarray(s["p_wrong"].transpose("hypothesis", *CONFIG_DIMS).values)
            p = p.reshape(p.shape[0], -1)[:, cfg_idx]
            ys = yc & reveal[None, :]
            sub_con = _human_test((ys & in_a).sum(1), (in_a & reveal).sum(1), (ys & in_b).sum(1),
                                  (in_b & reveal).sum(1), alpha, zero_rule)["conclusion"]
            p_sub = (_classify(llm, sub_con[:, None]) > 0).astype(float)
            h_rep = np.repeat(hyp_ids, p.shape[1])
            frames.append(pd.DataFrame({
                "n_human": int(n), "rep": rep, "hypothesis": h_rep,
                "name": np.repeat(names, p.shape[1]),
                "configuration": np.tile(cfg_names, p.shape[0]),
                "p_wrong": p.ravel(), "p_subset": p_sub.ravel(),
                "wrong": wrong_full.ravel().astype(float),
                "cluster": np.repeat(names, p.shape[1]),
            }))
    pred = pd.concat(frames, ignore_index=True)
    rel = reliability_table(pred["p_wrong"], pred["wrong"], cluster=pred["cluster"], bins=bins,
                            n_boot=n_boot, rng=gen)
    return {"predictions": pred, "reliability": rel, "scores": scores_table(pred)}


def scores_table(predictions: pd.DataFrame, *, by: str = "n_human") -> pd.DataFrame:
    """Brier score and AUC per ``by`` level (and ``"all"``) of the three predictors.

    ``predictions`` is the ``"predictions"`` table of :func:`calibration_study` (or several of
    them concatenated).  Methods: ``prospective`` (``p_wrong``), ``subset_test`` (``p_subset``)
    and ``constant`` (the observed wrong rate of the level: the best constant, known only in
    hindsight).
    """
    rows = []
    levels = [*sorted(predictions[by].unique()), "all"]
    for lev in levels:
        g = predictions if lev == "all" else predictions[predictions[by] == lev]
        o = g["wrong"].to_numpy(dtype=float)
        const = np.full(o.shape, o.mean() if o.size else np.nan)
        for method, p in (("prospective", g["p_wrong"].to_numpy(dtype=float)),
                          ("subset_test", g["p_subset"].to_numpy(dtype=float)),
                          ("constant", const)):
            rows.append({by: lev, "method": method, **risk_scores(p, o)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------
def _axes(ax: Any, figsize: tuple[float, float] = (6.4, 4.2)) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize).add_subplot()


def plot_prospective_risk(
    result: az.InferenceData | xr.Dataset,
    *,
    hypothesis: Any = None,
    ax: Axes | None = None,
) -> Axes:
    """Stacked P(Type I / II / S) per configuration for one hypothesis of a study.

    ``result`` is :func:`prospective_risk` output or its :func:`prospective_summary`;
    ``hypothesis`` a coordinate value (default: the first).
    """
    from .._colors import ERROR_COLORS

    s = result if isinstance(result, xr.Dataset) else prospective_summary(result)
    h = s["hypothesis"].values[0] if hypothesis is None else hypothesis
    s = s.sel(hypothesis=h).stack(configuration=list(CONFIG_DIMS))
    s = s.dropna("configuration", subset=["p_wrong"])
    order = np.argsort(np.asarray(s["p_wrong"].values))
    s = s.isel(configuration=order)
    labels = [f"{m}/{p}/T={t:g}" for m, p, t in s["configuration"].values]
    ax = _axes(ax, figsize=(6.4, max(3.0, 0.22 * len(labels) + 1)))
    left = np.zeros(len(labels))
    y = np.arange(len(labels))
    for name, key in (("Type I", "p_type_i"), ("Type II", "p_type_ii"), ("Type S", "p_type_s")):
        v = np.asarray(s[key].values)
        ax.barh(y, v, left=left, color=ERROR_COLORS[name], label=name)
        left += v
    ax.set_yticks(y, labels, fontsize="x-small")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability that this configuration's conclusion is wrong")
    ax.set_title(f"Prospective LLM hacking risk, hypothesis {h}")
    ax.legend(fontsize="small", loc="lower right")
    return ax


def plot_reliability(table: pd.DataFrame, *, ax: Axes | None = None, label: str | None = None) -> Axes:
    """Reliability diagram of :func:`reliability_table` output (observed vs predicted P(wrong)).

    Points at (mean predicted, observed wrong rate) with the cluster-bootstrap interval; the
    diagonal is perfect calibration; the number of conclusions is written next to each point.
    """
    from .._colors import OKABE_ITO

    ax = _axes(ax, figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    x = table["predicted"].to_numpy()
    y = table["observed"].to_numpy()
    err = np.vstack([y - table["lower"].to_numpy(), table["upper"].to_numpy() - y])
    ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="o", color=OKABE_ITO["blue"], capsize=3,
                label=label)
    for xi, yi, n in zip(x, y, table["n"], strict=True):
        ax.annotate(f"{n}", (xi, yi), textcoords="offset points", xytext=(5, -10), fontsize="x-small")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(conclusion wrong), bin mean")
    ax.set_ylabel("observed share wrong (95% cluster bootstrap)")
    ax.set_title("Calibration of the prospective risk")
    if label is not None:
        ax.legend(fontsize="small", loc="upper left")
    return ax
