"""PyMC model builders and the sampler switch behind :mod:`hackrisk.analysis.bayesian`.

Private module: imports pymc / pytensor at the top, so it is only imported lazily from the
public functions.  Every array passed in here is already aggregated and numeric; names and
dimensions are attached by the caller.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

# the sampler switch, the compiled-model cache and the diagnostics live in ._sampling (shared with
# the prospective model); re-exported here for existing callers
from ._sampling import SAMPLERS, n_cores, resolve_sampler, sample  # noqa: F401
from ._sampling import posterior_from_prior as _posterior_from_prior  # noqa: F401

logger = logging.getLogger("hackrisk.analysis.bayesian")

CENTRED_MIN_TESTS = 200

# ---------------------------------------------------------------------------------------------
# Model 1: hierarchical risk model on aggregated binomial counts
# ---------------------------------------------------------------------------------------------


def risk_model(
    *,
    basis: np.ndarray,
    unit: np.ndarray,
    n_wrong: np.ndarray,
    n_total: np.ndarray,
    unit_factors: dict[str, tuple[np.ndarray, np.ndarray]],
    group_factors: dict[str, tuple[np.ndarray, np.ndarray]],
    cluster: bool,
    quality: np.ndarray | None,
    base_logit: float,
) -> pm.Model:
    """Binomial regression with a P-spline in x and zero-sum random intercepts per factor.

    logit p_g = B(x_u) β + Σ_f σ_f z_{f, level(g)} + σ_c v_u + γ q_g,   u = unit(g) = task × bin
    n_wrong_g ~ Binomial(n_g, p_g)   (as a potential, without the constant log C(n, k))

    β is a first-order random walk (smoothness τ) started at ``base_logit``; the B-spline basis
    (``basis``: one row per unit) sums to one, so β carries the intercept.  Factor effects sum
    to zero (``ZeroSumNormal``), so they are not confounded with β.  The unit effect ``v``
    (``cluster=True``) absorbs the correlation of the conclusions that share hypotheses, which a
    plain binomial would ignore.  An effect is centred when its levels average at least
    ``CENTRED_MIN_TESTS`` tests (the data then pin each level down and the non-centred form
    would make a funnel for NUTS), non-centred otherwise.  Everything that depends on the
    unit only (spline, task effect, cluster effect) is computed once per unit and gathered, so
    the cost per group is two gathers and a softplus.
    """
    n_basis = basis.shape[1]
    n_unit = basis.shape[0]
    coords: dict[str, Any] = {"basis": np.arange(n_basis)}
    for name, (levels, _) in {**unit_factors, **group_factors}.items():
        coords[name] = levels
    with pm.Model(coords=coords) as model:
        tau = pm.HalfNormal("tau", 1.0)
        beta0 = pm.Normal("beta0", base_logit, 1.5)
        steps = pm.Normal("steps", 0.0, 1.0, shape=n_basis - 1)
        beta = pm.Deterministic(
            "beta", pt.concatenate([beta0[None], beta0 + pt.cumsum(steps * tau)]), dims="basis"
        )
        eta_unit = pt.dot(pt.as_tensor(basis), beta)
        effects = {}
        total = float(np.sum(n_total))
        for name, (levels, _) in {**unit_factors, **group_factors}.items():
            sigma = pm.HalfNormal(f"sigma_{name}", 1.0)
            if total / len(levels) >= CENTRED_MIN_TESTS:
                effects[name] = pm.ZeroSumNormal(f"effect_{name}", sigma=sigma, dims=name)
            else:
                z = pm.ZeroSumNormal(f"z_{name}", sigma=1.0, dims=name)
                effects[name] = pm.Deterministic(f"effect_{name}", sigma * z, dims=name)
        for name, (_, idx) in unit_factors.items():
            eta_unit = eta_unit + effects[name][idx]
        if cluster and n_unit > 1:
            sigma_c = pm.HalfNormal("sigma_cluster", 0.5)
            if total / n_unit >= CENTRED_MIN_TESTS:
                v = pm.Normal("effect_cluster", 0.0, sigma_c, shape=n_unit)
            else:
                v = sigma_c * pm.Normal("z_cluster", 0.0, 1.0, shape=n_unit)
            eta_unit = eta_unit + v
        eta = eta_unit[unit]
        for name, (_, idx) in group_factors.items():
            eta = eta + effects[name][idx]
        if quality is not None:
            gamma = pm.Normal("gamma_quality", 0.0, 1.0)
            eta = eta + gamma * quality
        # binomial log-likelihood without the constant log C(n, k): k η − n log(1 + e^η)
        k_obs = pt.as_tensor(n_wrong.astype(float))
        n_obs = pt.as_tensor(n_total.astype(float))
        pm.Potential("binomial", pt.sum(k_obs * eta - n_obs * pt.softplus(eta)))
    return model


# ---------------------------------------------------------------------------------------------
# Model 2: misclassification model for one study
# ---------------------------------------------------------------------------------------------


def _log_softmax_pinned(eta):
    """Log class probabilities from K-1 free logits (the last logit pinned at 0)."""
    full = pt.concatenate([eta, pt.zeros((*eta.shape[:-1], 1))], axis=-1)
    return full - pt.logsumexp(full, axis=-1, keepdims=True)


def log_softmax_pinned(eta: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`_log_softmax_pinned` (posterior draws → log probabilities)."""
    full = np.concatenate([eta, np.zeros((*eta.shape[:-1], 1))], axis=-1)
    m = full.max(-1, keepdims=True)
    return full - (m + np.log(np.exp(full - m).sum(-1, keepdims=True)))


def misclassification_model(
    *,
    onehot: np.ndarray,
    weight: np.ndarray,
    cell: np.ndarray,
    a_theta: np.ndarray,
    a_pi: np.ndarray,
) -> pm.Model:
    """Dawid–Skene-type model with the latent true classes summed out.

    For an unlabelled label pattern p (one row of ``onehot``: configuration × label indicators,
    all zero for a missing label) in cell g,

        log P(pattern | θ, π) = logsumexp_c [ log π_{g,c} + Σ_cfg log θ_{cfg, c, label_cfg} ],

    counted ``weight[p]`` times.  Human-labelled items enter through the Dirichlet parameters
    ``a_theta`` (prior + confusion counts) and ``a_pi`` (prior + class counts per cell), which is
    exact by conjugacy.

    Every simplex is parameterised by K-1 free logits (additive log-ratio, last logit 0); with
    the Jacobian ``Π_l θ_l`` of that map, a Dirichlet(a) density on θ is ``Σ_l a_l log θ_l`` on
    the logits.  This is the same posterior as ``pm.Dirichlet`` but compiles several times faster
    with numba (nutpie), which matters because one study is one fit.  Free variables:
    ``eta_theta`` (configuration, true class, K-1) and ``eta_pi`` (cell, K-1); use
    :func:`log_softmax_pinned` to get θ and π.
    """
    n_cfg, k, _ = a_theta.shape
    n_cell = a_pi.shape[0]
    with pm.Model() as model:
        oh = pm.Data("onehot", onehot)
        w = pm.Data("weight", weight)
        cl = pm.Data("cell", cell)
        at = pm.Data("a_theta", a_theta)
        ap = pm.Data("a_pi", a_pi)
        eta_t = pm.Flat("eta_theta", shape=(n_cfg, k, k - 1))
        eta_p = pm.Flat("eta_pi", shape=(n_cell, k - 1))
        log_theta = _log_softmax_pinned(eta_t)
        log_pi = _log_softmax_pinned(eta_p)
        pm.Potential("dirichlet", (at * log_theta).sum() + (ap * log_pi).sum())
        # rows (cfg, label), columns true class
        lt = log_theta.transpose(0, 2, 1).reshape((n_cfg * k, k))
        ll = pt.dot(oh, lt) + log_pi[cl]
        pm.Potential("unlabelled", pt.dot(w, pt.logsumexp(ll, axis=1)))
    return model
