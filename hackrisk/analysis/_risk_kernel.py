"""Log density and gradient of the hierarchical risk model, written out for numba and nutpie.

Private module (imports numba at the top; imported lazily).  The model is the one of
:func:`hackrisk.analysis._bayes_models.risk_model`, same free variables, same density (no
constant dropped or added: the PyMC model's ``logp`` equals :func:`logp_grad` exactly, which
``tests/test_bayesian.py`` checks, gradient included).  Why a second implementation: compiling
the PyMC graph to numba costs 20-60 s of CPU in a fresh process (one numba function per graph
node), this single function a few seconds, and its compiled code serves every data size and
every factor layout, so a process compiles it at most once.  The compiled code is also cached on
disk (numba ``cache=True``: in ``__pycache__`` next to this file when that is writable, else in
numba's user cache directory, or in ``$NUMBA_CACHE_DIR`` when set), so a later process loads it
instead of compiling; the first process after installing, or with an empty cache, still compiles.

The free variables sit in one vector ``x`` (layout :func:`layout`); the data in flat arrays.
nutpie calls the function through :func:`nutpie.compiled_pyfunc.from_pyfunc`; the numba code
releases the GIL, so parallel chains run in parallel.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

_NUMBA_KW = {"nogil": True, "cache": True, "fastmath": False, "error_model": "numpy"}


@numba.njit(**_NUMBA_KW)
def _helmert(z: np.ndarray, out: np.ndarray) -> None:
    """out (L,) = H z with H the orthonormal zero-sum basis (zero_sum_basis), z (L-1,)."""
    n = out.size
    acc = 0.0
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            acc += z[i] / math.sqrt((i + 1.0) * (i + 2.0))
        out[i] = acc
        if i >= 1:
            out[i] -= i * z[i - 1] / math.sqrt(i * (i + 1.0))


@numba.njit(**_NUMBA_KW)
def _helmert_t(g: np.ndarray, out: np.ndarray) -> None:
    """out (L-1,) = H^T g, g (L,)."""
    acc = 0.0
    for c in range(g.size - 1):
        acc += g[c]
        out[c] = (acc - (c + 1.0) * g[c + 1]) / math.sqrt((c + 1.0) * (c + 2.0))


@numba.njit(**_NUMBA_KW)
def _block(x, grad, start, n_levels, w, e):
    """Zero-sum block at x[start] (log σ), x[start+1 : start+L] (z̃): prior, effects into e."""
    ls = x[start]
    s = math.exp(ls)
    lp = ls - 0.5 * s * s
    scale_p = math.exp(-2.0 * w * ls)
    scale_z = math.exp((1.0 - w) * ls)
    z = np.empty(n_levels - 1)
    ssq = 0.0
    for c in range(n_levels - 1):
        zt = x[start + 1 + c]
        ssq += zt * zt
        z[c] = scale_z * zt
    lp += -0.5 * ssq * scale_p - (n_levels - 1) * w * ls
    grad[start] += 1.0 - s * s + w * ssq * scale_p - (n_levels - 1) * w
    for c in range(n_levels - 1):
        grad[start + 1 + c] += -x[start + 1 + c] * scale_p
    _helmert(z, e)
    return lp, z, scale_z


@numba.njit(**_NUMBA_KW)
def _block_back(x, grad, start, n_levels, w, z, scale_z, g_e):
    g_z = np.empty(n_levels - 1)
    _helmert_t(g_e, g_z)
    acc = 0.0
    for c in range(n_levels - 1):
        grad[start + 1 + c] += g_z[c] * scale_z
        acc += g_z[c] * z[c]
    grad[start] += (1.0 - w) * acc


@numba.njit(**_NUMBA_KW)
def logp_grad(x, basis, unit, k_obs, n_obs, base_logit, steps_centred, blk_start, blk_levels, blk_w,
              has_task, unit_task, cfg_idx, cfg_levels, cluster_start, cluster_q, cluster_qt,
              w_cluster, quality_at, quality):
    """Log density (up to nothing: the PyMC model's logp exactly) and its gradient at ``x``.

    ``blk_*``: the zero-sum blocks, the task first when ``has_task``; ``cfg_idx`` (group,) the
    configuration of each group, ``cfg_levels`` (configuration, blocks that are configuration
    factors) its level of each factor; ``cluster_start`` < 0 without the
    cluster effect, whose unit effects are ``Q (σ_c^(1-w) z̃)`` (``cluster_q`` = Q and
    ``cluster_qt`` = Qᵀ, both C-contiguous so that both products are contiguous axpy loops);
    ``quality_at`` < 0 without quality.

    The binomial term needs ``log(1 + e^η)`` and ``e^η / (1 + e^η)`` per group; ``e^η`` is the
    product of the exponentials of the unit term and of the configuration's summed effects
    (computed once per unit and per configuration), so a group costs one ``log`` and no ``exp``.
    Where that product under- or overflows, the group falls back to the direct, stable form.
    """
    grad = np.zeros(x.size)
    n_basis, n_unit, n_group = basis.shape[1], basis.shape[0], unit.size
    # spline ------------------------------------------------------------------------------------
    lt = x[0]
    tau = math.exp(lt)
    lp = lt - 0.5 * tau * tau
    grad[0] += 1.0 - tau * tau
    b0r = x[1]
    lp += -0.5 * b0r * b0r
    beta = np.empty(n_basis)
    beta[0] = base_logit + 1.5 * b0r
    ssq = 0.0
    for i in range(n_basis - 1):
        si = x[2 + i]
        ssq += si * si
        d = si if steps_centred else tau * si
        beta[i + 1] = beta[i] + d
    if steps_centred:
        lp += -0.5 * ssq / (tau * tau) - (n_basis - 1) * lt
        grad[0] += ssq / (tau * tau) - (n_basis - 1)
    else:
        lp += -0.5 * ssq
    eta_unit = np.zeros(n_unit)
    for u in range(n_unit):
        for b in range(n_basis):
            eta_unit[u] += basis[u, b] * beta[b]
    # zero-sum blocks -----------------------------------------------------------------------------
    n_blk = blk_start.size
    l_max = 1
    for b in range(n_blk):
        l_max = max(l_max, blk_levels[b])
    eff = np.zeros((n_blk, l_max))
    zs = np.zeros((n_blk, l_max))
    scales = np.zeros(n_blk)
    for b in range(n_blk):
        lpb, z, sz = _block(x, grad, blk_start[b], blk_levels[b], blk_w[b], eff[b, :blk_levels[b]])
        lp += lpb
        zs[b, :blk_levels[b] - 1] = z
        scales[b] = sz
    first_fac = 1 if has_task else 0
    # units: task and cluster effects -------------------------------------------------------------
    n_free = w_cluster.size
    zc = np.zeros(n_free)
    if cluster_start >= 0:
        lsc = x[cluster_start]
        sc = math.exp(lsc)
        lp += lsc - 0.5 * sc * sc / 0.25
        grad[cluster_start] += 1.0 - sc * sc / 0.25
        for c in range(n_free):
            r = x[cluster_start + 1 + c]
            w = w_cluster[c]
            sp = math.exp(-2.0 * w * lsc)
            lp += -0.5 * r * r * sp - w * lsc
            grad[cluster_start + 1 + c] += -r * sp
            grad[cluster_start] += w * r * r * sp - w
            zc[c] = math.exp((1.0 - w) * lsc) * r
        for c in range(n_free):  # eta_unit += Q zc, as axpy steps over rows of Qᵀ (vectorised)
            zc_c = zc[c]
            for u in range(n_unit):
                eta_unit[u] += cluster_qt[c, u] * zc_c
    if has_task:
        for u in range(n_unit):
            eta_unit[u] += eff[0, unit_task[u]]
    # groups ------------------------------------------------------------------------------------
    gamma = x[quality_at] if quality_at >= 0 else 0.0
    if quality_at >= 0:
        lp += -0.5 * gamma * gamma
        grad[quality_at] += -gamma
    n_fac = n_blk - first_fac
    n_cfg = cfg_levels.shape[0]
    eff_cfg = np.zeros(n_cfg)
    for c in range(n_cfg):
        for f in range(n_fac):
            eff_cfg[c] += eff[first_fac + f, cfg_levels[c, f]]
    exp_unit = np.exp(eta_unit)
    exp_cfg = np.exp(eff_cfg)
    g_unit = np.zeros(n_unit)
    g_cfg = np.zeros(n_cfg)
    g_eff = np.zeros((n_blk, l_max))
    for g in range(n_group):
        u = unit[g]
        c = cfg_idx[g]
        eta = eta_unit[u] + eff_cfg[c]
        big_e = exp_unit[u] * exp_cfg[c]
        if quality_at >= 0:
            eta += gamma * quality[g]
            big_e *= math.exp(gamma * quality[g])
        if big_e > 0.0 and big_e < math.inf:
            y = 1.0 + big_e
            softplus = math.log(y)
            expit = big_e / y
        else:  # e^η under- or overflowed: the stable form from exp(-|η|)
            e = math.exp(-abs(eta))
            softplus = max(eta, 0.0) + math.log1p(e)
            expit = (1.0 if eta >= 0 else e) / (1.0 + e)
        lp += k_obs[g] * eta - n_obs[g] * softplus
        resid = k_obs[g] - n_obs[g] * expit
        g_unit[u] += resid
        g_cfg[c] += resid
        if quality_at >= 0:
            grad[quality_at] += resid * quality[g]
    for c in range(n_cfg):
        for f in range(n_fac):
            g_eff[first_fac + f, cfg_levels[c, f]] += g_cfg[c]
    # back through units -----------------------------------------------------------------------------
    if cluster_start >= 0:
        lsc = x[cluster_start]
        g_z = np.zeros(n_free)
        for u in range(n_unit):  # g_z = Qᵀ g_unit, as axpy steps over rows of Q (vectorised)
            g_u = g_unit[u]
            for c in range(n_free):
                g_z[c] += cluster_q[u, c] * g_u
        for c in range(n_free):
            w = w_cluster[c]
            grad[cluster_start + 1 + c] += g_z[c] * math.exp((1.0 - w) * lsc)
            grad[cluster_start] += g_z[c] * (1.0 - w) * zc[c]
    if has_task:
        for u in range(n_unit):
            g_eff[0, unit_task[u]] += g_unit[u]
    for b in range(n_blk):
        nl = blk_levels[b]
        _block_back(x, grad, blk_start[b], nl, blk_w[b], zs[b, :nl - 1], scales[b], g_eff[b, :nl])
    # back through the spline -----------------------------------------------------------------------
    g_beta = np.zeros(n_basis)
    for u in range(n_unit):
        for b in range(n_basis):
            g_beta[b] += basis[u, b] * g_unit[u]
    grad[1] += 1.5 * g_beta.sum() - b0r
    acc = 0.0
    for i in range(n_basis - 2, -1, -1):
        acc += g_beta[i + 1]  # d beta[j] / d step[i] = 1 for j > i
        si = x[2 + i]
        if steps_centred:
            grad[2 + i] += acc - si / (tau * tau)
        else:
            grad[2 + i] += acc * tau - si
            grad[0] += acc * tau * si
    return lp, grad


def layout(spec: dict[str, Any]) -> tuple[list[tuple[str, int, tuple[int, ...]]], int]:
    """Names, offsets and shapes of the free variables in ``x`` (the PyMC model's names)."""
    out: list[tuple[str, int, tuple[int, ...]]] = []
    pos = 0

    def add(name: str, shape: tuple[int, ...]) -> None:
        nonlocal pos
        out.append((name, pos, shape))
        pos += int(np.prod(shape)) if shape else 1

    add("log_tau", ())
    add("beta0_raw", ())
    add("steps", (spec["n_basis"] - 1,))
    blocks = ([("task", spec["task"])] if spec["task"] is not None else []) + list(spec["group_factors"].items())
    for name, (levels, _, _) in blocks:
        add(f"log_sigma_{name}", ())
        add(f"z_{name}", (len(levels) - 1,))
    if spec["cluster"]:
        add("log_sigma_cluster", ())
        add("cluster", (spec["cluster_q"].shape[1],))
    if spec["quality"] is not None:
        add("gamma_quality", ())
    return out, pos


def arguments(spec: dict[str, Any]) -> tuple:
    """The data arguments of :func:`logp_grad` (everything after ``x``) for ``spec``."""
    names, _ = layout(spec)
    where = {name: pos for name, pos, _ in names}
    blocks = ([("task", spec["task"])] if spec["task"] is not None else []) + list(spec["group_factors"].items())
    n_group = spec["unit"].size
    facs = list(spec["group_factors"].values())
    fac_idx = (np.stack([np.asarray(idx, dtype=np.int64) for _, idx, _ in facs], axis=1) if facs
               else np.zeros((n_group, 0), dtype=np.int64))
    # groups share a configuration (a combination of factor levels): its effects are summed once
    if fac_idx.shape[1]:
        cfg_levels, cfg_idx = np.unique(fac_idx, axis=0, return_inverse=True)
    else:
        cfg_levels, cfg_idx = np.zeros((1, 0), dtype=np.int64), np.zeros(n_group, dtype=np.int64)
    cfg_idx = np.asarray(cfg_idx, dtype=np.int64).reshape(-1)
    unit_task = (np.asarray(spec["task"][1], dtype=np.int64) if spec["task"] is not None
                 else np.zeros(spec["n_unit"], dtype=np.int64))
    q = np.asarray(spec["cluster_q"], dtype=np.float64) if spec["cluster"] else np.zeros((spec["n_unit"], 0))
    return (
        np.ascontiguousarray(spec["basis"], dtype=np.float64),
        np.asarray(spec["unit"], dtype=np.int64),
        np.asarray(spec["n_wrong"], dtype=np.float64),
        np.asarray(spec["n_total"], dtype=np.float64),
        float(spec["base_logit"]),
        bool(spec["steps_centred"]),
        np.array([where[f"log_sigma_{name}"] for name, _ in blocks], dtype=np.int64),
        np.array([len(b[0]) for _, b in blocks], dtype=np.int64),
        np.array([float(b[2]) for _, b in blocks], dtype=np.float64),
        spec["task"] is not None,
        unit_task,
        cfg_idx,
        np.ascontiguousarray(cfg_levels),
        where.get("log_sigma_cluster", -1),
        np.ascontiguousarray(q),
        np.ascontiguousarray(q.T),
        np.asarray(spec["w_cluster"], dtype=np.float64) if spec["cluster"] else np.zeros(0),
        where.get("gamma_quality", -1),
        (np.asarray(spec["quality"], dtype=np.float64) if spec["quality"] is not None else np.zeros(n_group)),
    )


def nutpie_model(spec: dict[str, Any]):
    """The risk model as a nutpie model (:func:`nutpie.compiled_pyfunc.from_pyfunc`)."""
    from nutpie.compiled_pyfunc import from_pyfunc

    names, n_dim = layout(spec)
    args = arguments(spec)
    lp, _ = logp_grad(np.zeros(n_dim), *args)  # compiles here (once per process), not in a chain
    if not np.isfinite(lp):
        raise ValueError("the risk model's log density is not finite at its initial point. Fix: "
                         "check the aggregated counts (n_wrong <= n, both finite).")

    def make_logp():
        def logp(x, **_):
            return logp_grad(x, *args)

        return logp

    def make_expand(*_):
        def expand(x, **_):
            return {name: (np.array(x[pos]) if not shape else x[pos:pos + shape[0]].copy())
                    for name, pos, shape in names}

        return expand

    def initial_point(seed):
        gen = np.random.default_rng(seed)
        return gen.uniform(-1.0, 1.0, n_dim) * 0.5

    return from_pyfunc(n_dim, make_logp, make_expand, [np.dtype("float64")] * len(names),
                       [shape for _, _, shape in names], [name for name, _, _ in names],
                       make_initial_point_fn=initial_point)
