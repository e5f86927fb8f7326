"""PyMC model builders and the sampler switch behind :mod:`hackrisk.analysis.bayesian`.

Private module: pymc / pytensor are imported inside the model builders (the numpy helpers and
the numba path of the risk model do not need them).  Every array passed in here is already aggregated and numeric; names and
dimensions are attached by the caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

# the sampler switch, the compiled-model cache and the diagnostics live in ._sampling;
# re-exported here for the risk model's callers
from ._sampling import SAMPLERS, n_cores, resolve_sampler, sample  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

logger = logging.getLogger("hackrisk.analysis.bayesian")


# ---------------------------------------------------------------------------------------------
# Model 1: hierarchical risk model on aggregated binomial counts
# ---------------------------------------------------------------------------------------------


def zero_sum_basis(n_levels: int) -> np.ndarray:
    """Orthonormal basis (n_levels, n_levels - 1) of the vectors that sum to zero (Helmert).

    ``e = H z`` with ``z ~ N(0, σ² I)`` is PyMC's ``ZeroSumNormal(σ)``: a zero-sum effect whose
    ``n_levels - 1`` free coordinates are independent, so the sampler sees no constraint.
    """
    h = np.zeros((n_levels, max(n_levels - 1, 0)))
    for j in range(1, n_levels):
        h[:j, j - 1] = 1.0
        h[j, j - 1] = -float(j)
        h[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return h


def risk_model_key(spec: dict[str, Any]) -> tuple:
    """Everything of a :func:`risk_model` spec that changes the compiled code (not the data)."""
    return ("risk_model", 3, spec["n_basis"], spec["steps_centred"], spec["n_unit"],
            spec["cluster_q"].shape[1] if spec["cluster"] else 0,
            tuple((f, len(lv)) for f, (lv, _, _) in spec["group_factors"].items()),
            None if spec["task"] is None else len(spec["task"][0]),
            spec["cluster"], spec["quality"] is not None)


def risk_model_data(spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """Values of the ``pm.Data`` containers of :func:`risk_model` (swapped into a cached model)."""
    data = {"basis": spec["basis"], "unit": spec["unit"], "k_obs": spec["n_wrong"].astype(float),
            "n_obs": spec["n_total"].astype(float), "base_logit": np.asarray(spec["base_logit"])}
    for f, (_, idx, w) in spec["group_factors"].items():
        data[f"idx_{f}"] = idx
        data[f"w_{f}"] = np.asarray(float(w))
    if spec["task"] is not None:
        data["unit_task"] = spec["task"][1]
        data["w_task"] = np.asarray(float(spec["task"][2]))
    if spec["cluster"]:
        data["w_cluster"] = spec["w_cluster"].astype(float)
        data["cluster_q"] = spec["cluster_q"].astype(float)
    if spec["quality"] is not None:
        data["quality"] = spec["quality"]
    return data


def risk_model(spec: dict[str, Any]) -> pm.Model:
    """Binomial regression with a P-spline in x and zero-sum random intercepts per factor.

    ``spec`` (built by :func:`hackrisk.analysis.bayesian.fit_risk_model`): ``basis`` (unit,
    basis), ``unit`` (group,), ``n_wrong``/``n_total`` (group,), ``group_factors``
    ``{name: (levels, index per group, w)}``, ``task`` ``(levels, index per unit, w)`` or None,
    ``cluster`` (bool), ``cluster_q`` (unit, free) and ``w_cluster`` (free,), ``quality``
    (group,) or None, ``base_logit``, ``n_basis``, ``n_unit``, ``steps_centred``.

    ::

        logit p_g = B(x_u) β + v_u + Σ_f e_f[level_f(g)] + γ q_g,     u = unit(g) = task × bin
        v = a_task(u) + Q c,  c ~ N(0, σ_c² I)   (cluster effect; v_u = a_task(u) without it)
        n_wrong_g ~ Binomial(n_g, p_g)   (without the constant log C(n, k))

    β: β_0 ~ N(base_logit, 1.5) and a random walk of steps N(0, τ), τ ~ HalfNormal(1).  Factor
    effects ``e_f = H z_f`` are zero-sum (``H``: :func:`zero_sum_basis`), ``z_f ~ N(0, σ_f)``,
    σ_f ~ HalfNormal(1); so is the task effect ``a``.  With a task effect, ``Q`` is zero-sum
    within each task (a Helmert block per task): the cluster effects are the task × bin
    deviations *around* the task effect, not a second intercept for the same units (that ridge
    kept the earlier model from mixing: R-hat 1.36 for σ_task); without one (a single task),
    ``Q`` is an orthonormal basis of the unit effects orthogonal to the spline basis ``B(x_u)``
    (with one task a bin's deviation and the curve trade off along a ridge that only the priors
    bound: divergences on the demo).  σ_c ~ HalfNormal(0.5).  The spline steps are centred
    (``steps ~ N(0, τ)``) when ``steps_centred``, else non-centred (``τ · N(0, 1)``).

    Random effects are *partially* centred (Papaspiliopoulos, Roberts & Sköld 2007): the sampler
    sees ``z̃ ~ N(0, σ^w)`` and ``z = σ^(1-w) z̃``; ``w = 1`` is the centred form (best when the
    data pin the level down), ``w = 0`` the non-centred one (best when they barely inform it).
    The caller sets ``w = σ̂² / (σ̂² + v)`` per block (per unit for the cluster effects) from a
    moment estimate σ̂ of the effect scale and the data variance ``v`` of a level, which is the
    optimal weight of a Gaussian model; funnels then neither open at small σ nor at large σ.
    Any ``w`` gives the same model (a change of variables).

    Every free variable is an unconstrained ``Flat`` (scales on the log scale, with the Jacobian)
    and the densities are written out in two potentials: the graph has a few dozen nodes, so the
    numba compile takes seconds instead of most of a minute.  The data enter through ``pm.Data``,
    so the compiled model serves every data size (``nutpie`` ``with_data``).  Free variables:
    ``log_tau``, ``beta0_raw``, ``steps``, ``log_sigma_<f>``, ``z_<f>``, ``log_sigma_cluster``,
    ``cluster``, ``gamma_quality``; :func:`risk_model_transform` maps draws of them to the
    reported quantities.
    """
    import pymc as pm
    import pytensor.tensor as pt

    n_basis = spec["n_basis"]
    with pm.Model() as model:
        basis = pm.Data("basis", spec["basis"])
        unit = pm.Data("unit", spec["unit"])
        k_obs = pm.Data("k_obs", spec["n_wrong"].astype(float))
        n_obs = pm.Data("n_obs", spec["n_total"].astype(float))
        base = pm.Data("base_logit", np.asarray(spec["base_logit"]))
        prior = []
        log_tau = pm.Flat("log_tau")
        tau = pt.exp(log_tau)
        prior.append(log_tau - 0.5 * tau**2)
        b0_raw = pm.Flat("beta0_raw")
        prior.append(-0.5 * b0_raw**2)
        steps = pm.Flat("steps", shape=n_basis - 1)
        if spec["steps_centred"]:
            prior.append(-0.5 * pt.sum(steps**2) / tau**2 - (n_basis - 1) * log_tau)
            d = steps
        else:
            prior.append(-0.5 * pt.sum(steps**2))
            d = tau * steps
        beta = base + 1.5 * b0_raw + pt.concatenate([pt.zeros(1), pt.cumsum(d)])
        eta_unit = pt.dot(basis, beta)

        def _partial(name: str, shape: int, log_s, w):
            # z̃ ~ N(0, σ^w) (density with its Jacobian), z = σ^(1-w) z̃ ~ N(0, σ)
            zt = pm.Flat(name, shape=shape)
            prior.append(-0.5 * pt.sum(zt**2 * pt.exp(-2.0 * w * log_s)) - pt.sum(w * pt.ones(shape)) * log_s)
            return pt.exp((1.0 - w) * log_s) * zt

        def _zero_sum(name: str, n_levels: int, w: float):
            log_s = pm.Flat(f"log_sigma_{name}")
            prior.append(log_s - 0.5 * pt.exp(2.0 * log_s))
            z = _partial(f"z_{name}", n_levels - 1, log_s, pm.Data(f"w_{name}", np.asarray(float(w))))
            return pt.dot(pt.as_tensor(zero_sum_basis(n_levels)), z)

        a_unit = None
        if spec["task"] is not None:
            levels, idx, w = spec["task"]
            a_unit = _zero_sum("task", len(levels), w)[pm.Data("unit_task", idx)]
        if spec["cluster"]:
            log_sc = pm.Flat("log_sigma_cluster")
            prior.append(log_sc - 0.5 * pt.exp(2.0 * log_sc) / 0.25)
            q = pm.Data("cluster_q", spec["cluster_q"].astype(float))
            zc = _partial("cluster", spec["cluster_q"].shape[1], log_sc,
                          pm.Data("w_cluster", spec["w_cluster"].astype(float)))
            eta_unit = eta_unit + pt.dot(q, zc) + (0.0 if a_unit is None else a_unit)
        elif a_unit is not None:
            eta_unit = eta_unit + a_unit
        eta = eta_unit[unit]
        for name, (levels, idx, centred) in spec["group_factors"].items():
            eff = _zero_sum(name, len(levels), centred)
            eta = eta + eff[pm.Data(f"idx_{name}", idx)]
        if spec["quality"] is not None:
            gamma = pm.Flat("gamma_quality")
            prior.append(-0.5 * gamma**2)
            eta = eta + gamma * pm.Data("quality", spec["quality"])
        pm.Potential("prior", pt.add(*prior))
        # binomial log-likelihood without the constant log C(n, k): k η − n log(1 + e^η)
        pm.Potential("binomial", pt.sum(k_obs * eta - n_obs * pt.softplus(eta)))
    return model


def risk_model_prior(spec: dict[str, Any], *, draws: int, gen: np.random.Generator) -> dict[str, np.ndarray]:
    """Prior draws of the free variables of :func:`risk_model` (numpy; for the mock sampler)."""
    out: dict[str, np.ndarray] = {}
    tau = np.abs(gen.normal(0.0, 1.0, draws))
    out["log_tau"] = np.log(tau)
    out["beta0_raw"] = gen.normal(0.0, 1.0, draws)
    s = gen.normal(0.0, 1.0, (draws, spec["n_basis"] - 1))
    out["steps"] = s * tau[:, None] if spec["steps_centred"] else s
    blocks = dict(spec["group_factors"])
    if spec["task"] is not None:
        blocks["task"] = spec["task"]
    for name, (levels, _, w) in blocks.items():
        sig = np.abs(gen.normal(0.0, 1.0, draws))
        out[f"log_sigma_{name}"] = np.log(sig)
        out[f"z_{name}"] = gen.normal(0.0, 1.0, (draws, len(levels) - 1)) * sig[:, None] ** w
    if spec["cluster"]:
        sc = np.abs(gen.normal(0.0, 0.5, draws))
        out["log_sigma_cluster"] = np.log(sc)
        out["cluster"] = gen.normal(0.0, 1.0, (draws, spec["w_cluster"].size)) * sc[:, None] ** spec["w_cluster"]
    if spec["quality"] is not None:
        out["gamma_quality"] = gen.normal(0.0, 1.0, draws)
    return out


def risk_model_transform(spec: dict[str, Any], raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draws (S, ...) of the free variables → ``beta``, ``tau``, ``sigma_<f>``, ``effect_<f>``,
    ``sigma_cluster``, ``effect_cluster`` (the unit effects v, task effect included),
    ``gamma_quality``."""
    out: dict[str, np.ndarray] = {}
    tau = np.exp(raw["log_tau"])
    out["tau"] = tau
    d = raw["steps"] if spec["steps_centred"] else raw["steps"] * tau[:, None]
    b0 = spec["base_logit"] + 1.5 * raw["beta0_raw"]
    out["beta"] = b0[:, None] + np.concatenate([np.zeros((d.shape[0], 1)), np.cumsum(d, axis=1)], axis=1)
    blocks = dict(spec["group_factors"])
    if spec["task"] is not None:
        blocks = {"task": spec["task"], **blocks}
    for name, (levels, _, w) in blocks.items():
        sig = np.exp(raw[f"log_sigma_{name}"])
        out[f"sigma_{name}"] = sig
        z = raw[f"z_{name}"].reshape(sig.size, -1) * sig[:, None] ** (1.0 - w)
        out[f"effect_{name}"] = z @ zero_sum_basis(len(levels)).T
    if spec["cluster"]:
        sc = np.exp(raw["log_sigma_cluster"])
        out["sigma_cluster"] = sc
        a = 0.0 if spec["task"] is None else out["effect_task"][:, spec["task"][1]]
        zc = raw["cluster"].reshape(sc.size, -1) * sc[:, None] ** (1.0 - spec["w_cluster"])
        out["effect_cluster"] = a + zc @ spec["cluster_q"].T
    if spec["quality"] is not None:
        out["gamma_quality"] = raw["gamma_quality"]
    return out
