"""Numpy kernels of the frequentist analysis (arrays in, arrays out; no xarray).

Three pieces:

* :func:`count_by_group` — class counts per group for many configurations in one matrix product;
* :func:`two_by_two` — the logistic regression of ``1[label == class]`` on a binary group
  indicator, solved in closed form from the 2 x 2 counts, with the zero-count rules;
* :func:`ols_batched` / :func:`logit_batched` — regressions with covariates for many outcome
  vectors that share one design matrix (OLS with HC0–HC3 errors; logistic by batched Newton).

Logistic regression with one binary regressor is saturated: the MLE reproduces the two group
shares, so ``log OR = logit(k_a/n_a) - logit(k_b/n_b)`` and the inverse Fisher information gives
``SE^2 = 1/k_a + 1/(n_a-k_a) + 1/k_b + 1/(n_b-k_b)``; this is exactly what an iterative fit
(e.g. ``statsmodels.Logit``) converges to, without iterating.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = [
    "ZERO_RULES",
    "count_by_group",
    "two_by_two",
    "glm_two_groups",
    "glm_groups",
    "fisher_exact_p",
    "normal_p",
    "ols_batched",
    "logit_batched",
]

ZERO_RULES = ("paper", "glm", "firth", "exact")

_DBL_EPS = np.finfo(np.float64).eps
_THRESH = 30.0  # R's binomial logit link clamps exp(eta) beyond |eta| > 30 (family.c)


def _r_linkinv(eta: np.ndarray) -> np.ndarray:
    """R's ``binomial()$linkinv`` for the logit link (``exp(eta)`` clamped to [eps, 1/eps])."""
    e = np.where(eta < -_THRESH, _DBL_EPS, np.where(eta > _THRESH, 1 / _DBL_EPS, np.exp(np.clip(eta, -_THRESH, _THRESH))))
    return e / (1 + e)


def _r_mu_eta(eta: np.ndarray) -> np.ndarray:
    """R's ``binomial()$mu.eta`` for the logit link (``eps`` beyond |eta| > 30)."""
    e = np.exp(np.clip(eta, -_THRESH, _THRESH))
    return np.where(np.abs(eta) > _THRESH, _DBL_EPS, e / (1 + e) ** 2)


def _binomial_deviance(y: np.ndarray, mu: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binomial deviance ``2 n (y log(y/mu) + (1-y) log((1-y)/(1-mu)))`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(y > 0, y * np.log(y / mu), 0.0)
        b = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0.0)
    return 2 * n * (a + b)


def glm_two_groups(k_a, n_a, k_b, n_b, *, epsilon: float = 1e-8, maxit: int = 25) -> dict[str, np.ndarray]:
    """R's ``glm(cbind(k, n - k) ~ group, family = binomial)`` for two groups, iteration by iteration.

    The authors of the paper (Baumann et al. 2025) test a group difference with R's ``glm`` on the
    two aggregated rows and read the Wald z and p of the group coefficient from ``summary()``.
    Where a group has all of its items in the class the MLE is infinite; R's IRLS (``glm.fit``)
    then stops at a large finite coefficient with an enormous standard error, so the p-value is
    close to 1. This kernel reproduces ``glm.fit`` step by step, vectorised over tables, so those
    tables get the same (finite) numbers as R:

    * start ``mu = (k + 0.5) / (n + 1)`` (the binomial family's ``initialize``);
    * with two groups and a group indicator the model is saturated, so every IRLS step moves
      each group's linear predictor independently to its working response
      ``eta + (y - mu) / mu.eta(eta)``;
    * stop when ``|dev - dev_old| / (|dev| + 0.1) < epsilon`` (``glm.control``: ``epsilon = 1e-8``,
      ``maxit = 25``), the deviance being summed over both groups;
    * the standard error comes from the working weights ``n mu.eta^2 / (mu (1 - mu))`` of the
      *last* IRLS step (those of the QR decomposition ``summary.glm`` uses), the coefficient from
      the final linear predictors.

    Group A plays the authors' first group (factor level ``0``); the returned ``log_or`` and ``z``
    are A minus B (R's coefficient ``group1`` and its z with the sign flipped, as the authors do).

    Returns
    -------
    dict
        ``log_or``, ``se``, ``z``, ``p_value`` (two-sided normal), ``iterations``, ``converged``.
    """
    k_a, n_a, k_b, n_b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (k_a, n_a, k_b, n_b)))
    fit = glm_groups(np.stack([k_a, k_b]), np.stack([n_a, n_b]), epsilon=epsilon, maxit=maxit)
    eta, var = fit["eta"], fit["var_eta"]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_or = eta[0] - eta[1]
        se = np.sqrt(var[0] + var[1])
        z = log_or / se
    return {"log_or": log_or, "se": se, "z": z, "p_value": normal_p(z), "iterations": fit["iterations"],
            "converged": fit["converged"]}


def glm_groups(k: np.ndarray, n: np.ndarray, *, rows: str = "aggregated", epsilon: float = 1e-8,
               maxit: int = 25) -> dict[str, np.ndarray]:
    """R's ``glm.fit`` (binomial, logit) for a model with one parameter per group, step by step.

    ``k``, ``n``: successes and trials per group, shape ``(G, ...)`` (the trailing shape is a batch
    of independent fits). ``rows="aggregated"`` is ``glm(cbind(k, n - k) ~ group)``: start
    ``mu = (k + 0.5)/(n + 1)`` per group. ``rows="bernoulli"`` is the same model on one 0/1 row
    per observation (``glm(y ~ group)``): each row starts at ``mu = 0.75`` (y = 1) or ``0.25``, so
    the first step moves a group to the mean of its rows' working responses, and the deviance
    is the Bernoulli one (the grouped deviance plus ``-2`` times the saturated log-likelihood),
    which changes where the convergence criterion stops.

    Returns
    -------
    dict
        ``eta`` (G, ...) final linear predictor per group, ``var_eta`` (G, ...) its variance from
        the weights of the last IRLS step (``1 / (n mu.eta^2 / var(mu))``), ``iterations`` and
        ``converged`` (batch shape), ``deviance``.
    """
    if rows not in ("aggregated", "bernoulli"):
        raise ValueError(f"glm_groups: rows={rows!r}; use 'aggregated' or 'bernoulli'.")
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = k / n
    const = 0.0
    if rows == "aggregated":
        mu = (n * y + 0.5) / (n + 1)
        eta = np.log(mu / (1 - mu))
        dev_old = _binomial_deviance(y, mu, n).sum(0)
    else:
        # rows with y = 1 start at eta = log 3, rows with y = 0 at -log 3; the saturated (in rows)
        # deviance is the grouped one plus the groups' binomial entropy
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -2 * n * (np.where(y > 0, y * np.log(y), 0.0) + np.where(y < 1, (1 - y) * np.log(1 - y), 0.0))
        const = ent.sum(0)
        dev_old = (-2 * n * (y * np.log(0.75) + (1 - y) * np.log(0.25))).sum(0)
        w0 = 0.75 * 0.25
        z1 = np.log(3) + 0.25 / w0  # working response of a y = 1 row; -z1 for a y = 0 row
        eta0 = y * z1 - (1 - y) * z1  # the WLS step with equal weights: the group mean
        mu = _r_linkinv(eta0)
        eta = eta0
        dev = _binomial_deviance(y, mu, n).sum(0) + const
        w_first = n * w0  # weights of that first step (every row mu = .75 or .25)
    active = np.isfinite(dev_old)
    converged = np.zeros(dev_old.shape, dtype=bool)
    iterations = np.zeros(dev_old.shape, dtype=np.int64)
    w_last = np.full(n.shape, np.nan)
    if rows == "bernoulli":
        iterations = iterations + active
        w_last = np.where(active, w_first, w_last)
        done = active & (np.abs(dev - dev_old) / (np.abs(dev) + 0.1) < epsilon)
        converged |= done
        dev_old = np.where(active, dev, dev_old)
        active = active & ~done
    for _ in range(maxit - (rows == "bernoulli")):
        if not active.any():
            break
        me = _r_mu_eta(eta)
        var = mu * (1 - mu)
        w = n * me**2 / var
        eta_new = eta + (y - mu) / me
        mu_new = _r_linkinv(eta_new)
        dev = _binomial_deviance(y, mu_new, n).sum(0) + const
        upd = np.broadcast_to(active, eta.shape)
        eta = np.where(upd, eta_new, eta)
        mu = np.where(upd, mu_new, mu)
        w_last = np.where(upd, w, w_last)
        iterations = iterations + active
        done = active & (np.abs(dev - dev_old) / (np.abs(dev) + 0.1) < epsilon)
        converged |= done
        dev_old = np.where(active, dev, dev_old)
        active = active & ~done
    with np.errstate(divide="ignore"):
        var_eta = 1 / w_last
    return {"eta": eta, "var_eta": var_eta, "iterations": iterations, "converged": converged,
            "deviance": dev_old}


def normal_p(z: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a standard-normal statistic (NaN stays NaN)."""
    return 2.0 * special.ndtr(-np.abs(z))


def group_totals(rows: np.ndarray, inv: np.ndarray, weight: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Items of group A and of group B of every hypothesis, from the distinct membership rows.

    ``rows`` (R, I) 0/1: the distinct rows of "in A" (the first H entries of ``inv``) and of "in A
    or B" (the last H), as the counting plans hold them. ``weight`` (I,) 0/1 counts only some
    items (e.g. those with a human label). Returns two (H,) arrays; B = (A or B) - A.
    """
    total = rows.sum(axis=1) if weight is None else rows.astype(np.float32) @ weight.astype(np.float32)
    n_h = inv.size // 2
    in_a = total[inv[:n_h]]
    return in_a, total[inv[n_h:]] - in_a


def count_by_group(labels: np.ndarray, member: np.ndarray, classes, *, work: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Count classes in groups for many label vectors at once.

    Parameters
    ----------
    labels
        Integer codes, shape ``(C, I)`` (configurations x items). Codes not in ``classes``
        (e.g. ``-1``, ``-2``) are counted in no class.
    member
        Group membership, shape ``(G, I)``, 0/1 (any numeric dtype; float32 avoids a copy).
    classes
        The class codes to count, length ``K``.
    work
        Optional float32 buffer of ``K * C * I`` elements (any shape) for the one-hot indicator,
        reused by callers that count many blocks (saves allocating it each time).
    out
        Optional C-contiguous float32 array of shape ``(K * C, G)`` to write the counts into.

    Returns
    -------
    numpy.ndarray
        ``float32`` counts of shape ``(K, C, G)``: items of group ``g`` labelled ``classes[k]``
        under configuration ``c``. Exact for groups below 2**24 items.

    Notes
    -----
    One BLAS ``sgemm``: the one-hot indicator ``(K*C, I)`` times ``member.T`` ``(I, G)``. Float32
    matrix products are an order of magnitude faster than integer ``einsum`` and exact here, since
    every partial sum is an integer below 2**24.
    """
    labels = np.asarray(labels)
    n_cfg, n_item = labels.shape
    member = np.asarray(member, dtype=np.float32)
    codes = np.asarray(classes, dtype=labels.dtype).reshape(-1)
    if work is None:
        onehot = np.empty((codes.size, n_cfg, n_item), dtype=np.float32)
    else:
        onehot = work.reshape(-1)[: codes.size * n_cfg * n_item].reshape(codes.size, n_cfg, n_item)
    np.equal(labels[None, :, :], codes[:, None, None], out=onehot)  # written as 0.0 / 1.0
    out = np.matmul(onehot.reshape(codes.size * n_cfg, n_item), member.T, out=out)
    return out.reshape(codes.size, n_cfg, member.shape[0])


def fisher_exact_p(k_a, n_a, k_b, n_b) -> np.ndarray:
    """Two-sided Fisher exact p-value of the 2 x 2 tables ``[[k_a, n_a-k_a], [k_b, n_b-k_b]]``.

    Vectorised over any broadcastable shapes. The two-sided p-value sums the hypergeometric
    probabilities of all tables no more likely than the observed one (relative tolerance 1e-7,
    as R's ``fisher.test``); the far tail is located by a vectorised binary search, since the
    probabilities decrease monotonically away from the mode. Matches
    ``scipy.stats.fisher_exact``; tables with an empty row or column get p = 1.
    """
    k_a, n_a, k_b, n_b = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (k_a, n_a, k_b, n_b)))
    total = n_a + n_b
    succ = k_a + k_b
    # lazily: scipy.stats takes ~1 s to import, and only this test needs it
    from scipy import stats

    # X = k_a ~ Hypergeom(M=total, n=succ, N=n_a)
    lo = np.maximum(0, n_a - (total - succ))
    hi = np.minimum(n_a, succ)
    mode = ((n_a + 1) * (succ + 1)) // (total + 2)
    logp = stats.hypergeom.logpmf(k_a, total, succ, n_a)
    thresh = logp + np.log1p(1e-7)

    def lpmf(x):
        return stats.hypergeom.logpmf(x, total, succ, n_a)

    below = k_a < mode
    # Far tail, by bisection on a monotone predicate (out-of-support sentinels have logpmf -inf):
    # k_a < mode: smallest y in [mode, hi] with lpmf(y) <= thresh (invariant: pred(a) false, pred(b) true);
    # k_a > mode: largest y in [lo, mode] with lpmf(y) <= thresh (invariant: pred(a) true, pred(b) false).
    a = np.where(below, mode, lo - 1)
    b = np.where(below, hi + 1, mode)
    while np.any(b - a > 1):
        mid = (a + b) // 2
        ok = lpmf(mid) <= thresh
        a = np.where(below, np.where(ok, a, mid), np.where(ok, mid, a))
        b = np.where(below, np.where(ok, mid, b), np.where(ok, b, mid))
    # p = P(X <= lower) + P(X >= upper): the observed tail and the far tail (two calls per table)
    lower = np.where(below, k_a, a)  # a < lo: no far lower tail
    upper = np.where(below, b, k_a)  # b > hi: no far upper tail
    p = (np.where(lower < lo, 0.0, stats.hypergeom.cdf(lower, total, succ, n_a))
         + np.where(upper > hi, 0.0, stats.hypergeom.sf(upper - 1, total, succ, n_a)))
    at_mode = logp >= lpmf(mode) - np.log1p(1e-7)
    p = np.where(at_mode, 1.0, p)
    empty = (n_a == 0) | (n_b == 0) | (succ == 0) | (succ == total)
    return np.clip(np.where(empty, 1.0, p), 0.0, 1.0)


def two_by_two(k_a, n_a, k_b, n_b, *, zero_rule: str = "paper", alpha: float = 0.05,
               zero_conclusion: str = "llm") -> dict[str, np.ndarray]:
    """Logistic regression of a class indicator on a group indicator, from the 2 x 2 counts.

    Parameters
    ----------
    k_a, n_a, k_b, n_b
        Class counts and group sizes (broadcastable; NaN marks a missing configuration).
    zero_rule
        ``"paper"``: Wald test of the MLE; where a group has 0 or all of its items in the class
        the MLE is infinite, and hackrisk's zero-cell convention decides instead (see
        ``zero_conclusion``).
        ``"glm"``: the authors' decision (Baumann et al. 2025). A class share of exactly 0 in a
        group is special-cased as ``"paper"`` does (``zero_conclusion``); every other table,
        including a share of 1, goes to R's ``glm`` (:func:`glm_two_groups`), which stops at a
        finite coefficient with a huge SE on a separated table (p near 1, "no difference" — on
        the human side too, where the hypothesis is kept).
        ``"firth"``: Firth-penalised logistic regression. With one binary regressor the penalised
        MLE equals the MLE after adding 0.5 to each of the four cells,
        ``log OR = log((k_a+.5)/(n_a-k_a+.5)) - log((k_b+.5)/(n_b-k_b+.5))``; its SE is the inverse
        Fisher information at that estimate, ``1/(n_a p_a (1-p_a)) + 1/(n_b p_b (1-p_b))`` with
        ``p = (k+.5)/(n+1)`` (not the Haldane–Woolf ``sum 1/(cell+.5)``, which uses ``n+1``).
        Both are checked against an iterative Firth fit in the tests.
        ``"exact"``: Fisher's exact two-sided p-value; ``log_or``/``se``/``z`` stay the Wald ones.
    alpha
        Significance level.
    zero_conclusion
        Which convention ``"paper"`` applies to degenerate tables: ``"llm"`` (both groups 0 or both
        full → no difference; otherwise significant towards the group with more of the class) or
        ``"human"`` (statistics NaN, conclusion 0: the generator would have dropped the hypothesis).

    Returns
    -------
    dict
        ``estimate`` (p_A − p_B), ``log_or``, ``se``, ``z``, ``p_value``, ``conclusion`` (int8),
        ``zero_decided`` (bool). Under the paper rule degenerate LLM tables get ``p_value`` 0
        (significant) or 1 (no difference), ``se = inf`` and ``z = NaN``.
    """
    if zero_rule not in ZERO_RULES:
        raise ValueError(f"zero_rule={zero_rule!r} is not one of {ZERO_RULES}. "
                         "Fix: pass zero_rule='paper', 'glm', 'firth' or 'exact'.")
    k_a, n_a, k_b, n_b = (np.asarray(v, dtype=np.float64) for v in (k_a, n_a, k_b, n_b))
    valid = np.isfinite(k_a) & np.isfinite(k_b) & (n_a > 0) & (n_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = k_a / n_a
        p_b = k_b / n_b
        estimate = p_a - p_b
        degenerate = valid & ((k_a == 0) | (k_a == n_a) | (k_b == 0) | (k_b == n_b))
        if zero_rule == "glm":
            degenerate = valid & ((k_a == 0) | (k_b == 0))
            fit = glm_two_groups(np.where(valid, k_a, 0), np.where(valid, n_a, 1),
                                 np.where(valid, k_b, 0), np.where(valid, n_b, 1))
            log_or, se, z = fit["log_or"], fit["se"], fit["z"]
        elif zero_rule == "firth":
            a, b, c, d = k_a + 0.5, n_a - k_a + 0.5, k_b + 0.5, n_b - k_b + 0.5
            log_or = np.log(a / b) - np.log(c / d)
            pa, pb = a / (n_a + 1), c / (n_b + 1)
            se = np.sqrt(1.0 / (n_a * pa * (1 - pa)) + 1.0 / (n_b * pb * (1 - pb)))
        else:
            log_or = np.log(k_a) - np.log(n_a - k_a) - np.log(k_b) + np.log(n_b - k_b)
            se = np.sqrt(1.0 / k_a + 1.0 / (n_a - k_a) + 1.0 / k_b + 1.0 / (n_b - k_b))
        z = log_or / se
        if zero_rule in ("paper", "glm"):
            z = np.where(degenerate, np.nan, z)
            p = normal_p(z)
        elif zero_rule == "firth":
            p = normal_p(z)
        else:
            z = np.where(degenerate, np.nan, z)
            p = np.full(np.broadcast(k_a, n_a, k_b, n_b).shape, np.nan)
            if valid.any():
                ka, na, kb, nb = np.broadcast_arrays(k_a, n_a, k_b, n_b)
                p[valid] = fisher_exact_p(ka[valid], na[valid], kb[valid], nb[valid])
    sign = np.sign(np.where(np.isfinite(estimate), estimate, 0.0))
    conclusion = np.where(valid & (p < alpha), sign, 0.0)
    zero_decided = np.zeros(conclusion.shape, dtype=bool)
    if zero_rule in ("paper", "glm"):
        zero_decided = degenerate
        if zero_conclusion == "llm":
            conclusion = np.where(degenerate, sign, conclusion)
            p = np.where(degenerate, np.where(sign != 0, 0.0, 1.0), p)
        elif zero_conclusion == "human":
            conclusion = np.where(degenerate, 0.0, conclusion)
            log_or = np.where(degenerate, np.nan, log_or)
            se = np.where(degenerate, np.nan, se)
            p = np.where(degenerate, np.nan, p)
        else:
            raise ValueError(f"zero_conclusion={zero_conclusion!r}: use 'llm' or 'human'.")
    nan = ~valid
    return {
        "estimate": np.where(nan, np.nan, estimate),
        "log_or": np.where(nan, np.nan, log_or),
        "se": np.where(nan, np.nan, se),
        "z": np.where(nan, np.nan, z),
        "p_value": np.where(nan, np.nan, p),
        "conclusion": conclusion.astype(np.int8),
        "zero_decided": zero_decided & valid,
    }


def _xtwx(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``X' diag(W[:, c]) X`` for every column ``c`` of ``W`` as one matrix product: (C, p, p)."""
    n, p = X.shape
    xx = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    return (W.T @ xx).reshape(W.shape[1], p, p)


def _hc_weights(ss: np.ndarray, h: np.ndarray, cov_type: str, n: float, p: int) -> np.ndarray:
    """Sandwich-meat weights (rows, C) from summed squared residuals ``ss`` and leverages ``h``."""
    if cov_type == "HC0":
        return ss
    if cov_type == "HC1":
        return ss * (n / (n - p))
    if cov_type == "HC2":
        return ss / (1.0 - h)[:, None]
    if cov_type == "HC3":
        return ss / ((1.0 - h) ** 2)[:, None]
    raise ValueError(f"cov_type={cov_type!r}: use 'nonrobust', 'HC0', 'HC1', 'HC2' or 'HC3'.")


def _inverse_full_rank(m: np.ndarray, what: str) -> np.ndarray:
    w = np.linalg.eigvalsh(m)
    if w[0] <= 1e-10 * max(w[-1], 1e-300):
        raise ValueError(f"{what}: the design matrix is rank deficient (a covariate is constant or "
                         "collinear with the group). Fix: drop that covariate.")
    return np.linalg.inv(m)


def ols_batched(X: np.ndarray, Y: np.ndarray, *, weights: np.ndarray | None = None,
                cov_type: str = "HC1", binary: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """OLS of every column of ``Y`` on the shared design ``X``, all columns in one solve.

    Parameters
    ----------
    X
        Design, shape ``(n, p)``, full column rank.
    Y
        Outcomes, shape ``(n, C)``. With ``weights`` (grouped data) and ``binary=True``, ``Y``
        holds per-row *sums* of 0/1 outcomes over ``weights`` identical rows.
    weights
        Number of observations behind each row of ``X`` (grouped data; default 1 each).
    cov_type
        ``"nonrobust"`` (``s^2 (X'X)^-1``) or ``"HC0"``–``"HC3"`` (White sandwich; HC1 scales by
        ``N/(N-p)``, HC2/HC3 divide squared residuals by ``1-h`` / ``(1-h)^2``).
    binary
        ``Y`` are sums of 0/1 outcomes over the grouped rows: the residual sums of squares of a
        row with ``w`` observations and ``k`` ones are ``k (1-f)^2 + (w-k) f^2``, exactly as if
        the rows were expanded.

    Returns
    -------
    beta : (C, p) array
    cov : (C, p, p) array
    df_resid : float
        ``N - p``.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n_rows, p = X.shape
    w = np.ones(n_rows) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights is not None and not binary:
        raise ValueError("ols_batched: grouped rows (weights=) need binary=True (Y = sums of 0/1 outcomes).")
    n_obs = float(w.sum())
    bread = _inverse_full_rank(X.T @ (w[:, None] * X), "ols_batched")
    beta = (bread @ (X.T @ Y)).T  # (C, p); X'Y of grouped sums = sum over expanded rows
    fitted = X @ beta.T  # (rows, C)
    if binary:
        ss = Y * (1.0 - fitted) ** 2 + (w[:, None] - Y) * fitted**2
    else:
        ss = (Y - fitted) ** 2
    if cov_type == "nonrobust":
        s2 = ss.sum(axis=0) / (n_obs - p)
        cov = s2[:, None, None] * bread[None]
    else:
        h = np.einsum("ia,ab,ib->i", X, bread, X)
        cov = bread[None] @ _xtwx(X, _hc_weights(ss, h, cov_type, n_obs, p)) @ bread[None]
    return beta, cov, n_obs - p


def logit_batched(X: np.ndarray, Y: np.ndarray, *, weights: np.ndarray | None = None,
                  cov_type: str = "nonrobust", max_iter: int = 100,
                  tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic regression of every 0/1 column of ``Y`` on the shared design ``X`` (batched Newton).

    Parameters
    ----------
    X
        Design, shape ``(n, p)``.
    Y
        0/1 outcomes, shape ``(n, C)``; with ``weights``, the number of ones among the
        ``weights`` observations that share each row of ``X`` (grouped binomial data).
    weights
        Observations per row (default 1 each). Grouping identical rows gives the same fit.
    cov_type
        ``"nonrobust"`` (inverse Fisher information, as ``statsmodels.Logit``) or ``"HC0"``
        (sandwich with the score outer products, as ``Logit.fit(cov_type="HC0")``).
    max_iter, tol
        Newton iterations and convergence tolerance on the largest step.

    Returns
    -------
    beta : (C, p) array
    cov : (C, p, p) array
    converged : (C,) bool
        False where Newton did not converge (typically separation); those rows are NaN.
    """
    if cov_type not in ("nonrobust", "HC0"):
        raise ValueError(f"cov_type={cov_type!r} for model='logit': use 'nonrobust' or 'HC0'.")
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n_rows, p = X.shape
    w = np.ones(n_rows) if weights is None else np.asarray(weights, dtype=np.float64)
    n_out = Y.shape[1]
    beta = np.zeros((n_out, p))
    active = np.ones(n_out, dtype=bool)
    converged = np.zeros(n_out, dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        mu = special.expit(X @ beta[idx].T)  # (rows, c)
        score = X.T @ (Y[:, idx] - w[:, None] * mu)  # (p, c)
        info = _xtwx(X, w[:, None] * mu * (1 - mu))
        try:
            step = np.linalg.solve(info, score.T[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(info, score.T, strict=True)])
        beta[idx] += step
        big = np.abs(beta[idx]).max(axis=1) > 50  # diverging towards separation
        done = np.abs(step).max(axis=1) < tol
        converged[idx[done & ~big]] = True
        active[idx[done | big]] = False
    mu = special.expit(X @ beta.T)
    info = _xtwx(X, w[:, None] * mu * (1 - mu))
    with np.errstate(invalid="ignore"):
        try:
            bread = np.linalg.inv(info)
        except np.linalg.LinAlgError:  # singular information (separated fits): NaN below anyway
            bread = np.linalg.pinv(info)
        if cov_type == "nonrobust":
            cov = bread
        else:
            ss = Y * (1 - mu) ** 2 + (w[:, None] - Y) * mu**2  # sum of squared score residuals
            cov = bread @ _xtwx(X, ss) @ bread
    beta[~converged] = np.nan
    cov[~converged] = np.nan
    return beta, cov, converged
