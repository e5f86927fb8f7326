"""Sampling plumbing shared by the Bayesian models: sampler choice, compiled models, diagnostics.

Private module.  It imports nothing heavy at the top (pymc, nutpie and arviz are imported inside
the functions), so the public modules can import it eagerly.

* :func:`sample` runs NUTS on a PyMC model with nutpie when it is installed, PyMC's own NUTS
  otherwise, one chain per core (at most ``chains``).  With nutpie, compiled models are kept per
  process under a key describing the model's structure (:func:`compiled_model`): a model whose
  data enter through ``pm.Data`` is compiled once and re-used with new data (``with_data``).
  The numba code behind a compiled model is cached on disk by pytensor (its ``compiledir``), so a
  new process with a warm ``compiledir`` skips most of the compile too.
* :func:`check_diagnostics` checks divergences, rank-normalised split R-hat and bulk ESS of the
  named posterior quantities, warns (``UserWarning``) naming the quantity that falls short, and
  returns the figures.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

log = logging.getLogger("hackrisk.analysis.bayesian")

SAMPLERS = ("auto", "nutpie", "pymc", "prior")
#: Diagnostic targets of every reported posterior quantity.
R_HAT_MAX = 1.01
ESS_BULK_MIN = 400
_CACHE_SIZE = 8
_COMPILED: OrderedDict[tuple, Any] = OrderedDict()


def n_cores() -> int:
    """Cores this process may use (CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def resolve_sampler(sampler: str) -> str:
    """``auto`` → ``nutpie`` when importable, else ``pymc``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {SAMPLERS}. Fix: pick one of them.")
    if sampler != "auto":
        return sampler
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return "pymc"
    return "nutpie"


def compiled_model(key: tuple | None, build: Callable[[], Any], data: Mapping[str, Any] | None = None):
    """A nutpie-compiled model for ``key``: from the per-process cache, or ``build()`` compiled.

    Parameters
    ----------
    key
        Hashable description of everything that changes the compiled code (structure, parameter
        shapes); ``None`` disables the cache.
    build
        Returns the PyMC model (only called on a cache miss).
    data
        Values of the model's ``pm.Data`` containers, swapped into a cached model.
    """
    import nutpie

    if key is not None and key in _COMPILED:
        _COMPILED.move_to_end(key)
        compiled = _COMPILED[key]
        return compiled.with_data(**data) if data else compiled
    compiled = nutpie.compile_pymc_model(build())
    if key is not None:
        _COMPILED[key] = compiled
        while len(_COMPILED) > _CACHE_SIZE:
            _COMPILED.popitem(last=False)
    return compiled


def posterior_from_prior(model, *, draws: int, chains: int, seed: int) -> az.InferenceData:
    """Mock sampler: prior draws laid out as a posterior (chain, draw).  For structure tests."""
    import arviz as az
    import pymc as pm
    import xarray as xr

    with model:
        prior = pm.sample_prior_predictive(draws=draws * chains, random_seed=seed,
                                           compile_kwargs={"mode": "FAST_COMPILE"})
    names = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    out = {}
    for name in names:
        da = prior.prior[name].isel(chain=0)
        vals = da.values.reshape(chains, draws, *da.shape[1:])
        out[name] = (("chain", "draw", *da.dims[1:]), vals)
    coords = {k: v for k, v in prior.prior.coords.items() if k not in ("chain", "draw")}
    post = xr.Dataset(out, coords={**coords, "chain": np.arange(chains), "draw": np.arange(draws)})
    post.attrs["sampler"] = "prior (mock)"
    return az.InferenceData(posterior=post)


def sample(
    model: Any,
    *,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    cache_key: tuple | None = None,
    data: Mapping[str, Any] | None = None,
    low_rank: bool = False,
) -> az.InferenceData:
    """Run the chosen sampler and return ArviZ ``InferenceData``.

    Parameters
    ----------
    model
        A PyMC model, or a function without arguments that builds it (then a cached compiled
        model is re-used without building the graph again).
    sampler
        ``"auto"``, ``"nutpie"``, ``"pymc"`` or ``"prior"`` (see :func:`resolve_sampler`).
    draws, tune, chains, seed
        Sampler settings; chains run in parallel, one per core.
    cache_key, data
        nutpie only: re-use the compiled model stored under ``cache_key``, with ``data`` (the
        values of the model's ``pm.Data`` containers) swapped in (:func:`compiled_model`).
    low_rank
        nutpie only: adapt a low-rank modified mass matrix (fewer leapfrog steps on correlated
        posteriors).
    """
    kind = resolve_sampler(sampler)
    if draws < 1 or tune < 0:
        raise ValueError(f"draws={draws}, tune={tune}: need draws >= 1 and tune >= 0. Fix: pass "
                         "positive sampler settings.")
    cores = max(1, min(chains, n_cores()))

    def build():
        return model() if callable(model) else model

    if kind == "prior":
        return posterior_from_prior(build(), draws=draws, chains=chains, seed=seed)
    if kind == "nutpie":
        return sample_nutpie(compiled_model(cache_key, build, data), draws=draws, tune=tune,
                             chains=chains, seed=seed, low_rank=low_rank)
    import pymc as pm

    with build():
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False)
    idata.posterior.attrs["sampler"] = f"pymc {pm.__version__}"
    return idata


def sample_nutpie(compiled: Any, *, draws: int, tune: int, chains: int, seed: int,
                  low_rank: bool = False, target_accept: float = 0.8) -> az.InferenceData:
    """NUTS with nutpie on a compiled model (``compile_pymc_model`` or ``from_pyfunc``)."""
    import nutpie

    cores = max(1, min(chains, n_cores()))
    idata = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
        progress_bar=False, save_warmup=False, low_rank_modified_mass_matrix=low_rank,
        target_accept=target_accept,
    )
    idata.posterior.attrs["sampler"] = f"nutpie {nutpie.__version__}"
    return idata


# ---------------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------------
def _element_name(name: str, da: Any, flat_index: int) -> str:
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return name
    idx = np.unravel_index(flat_index, [da.sizes[d] for d in dims])
    parts = []
    for d, i in zip(dims, idx, strict=True):
        value = da[d].values[i] if d in da.coords else i
        if isinstance(value, (float, np.floating)):
            value = f"{float(value):.3g}"
        parts.append(f"{d}={value}")
    return f"{name}[{', '.join(parts)}]"


def _normal_scores(a: np.ndarray) -> np.ndarray:
    """Rank-normalise each column of ``a`` (N, K): Blom's normal scores of the average ranks."""
    from scipy import stats

    ranks = stats.rankdata(a, method="average", axis=0)
    return stats.norm.ppf((ranks - 0.375) / (a.shape[0] + 0.25))


def _split_rhat(z: np.ndarray) -> np.ndarray:
    """Potential scale reduction of (chain, draw, K) draws, per element."""
    n = z.shape[1]
    between = n * np.var(z.mean(axis=1), axis=0, ddof=1)
    within = np.var(z, axis=1, ddof=1).mean(axis=0)
    return np.sqrt((between / within + n - 1) / n)


def _geyer_tau(rho: np.ndarray) -> float:
    """Integrated autocorrelation time from autocorrelations ``rho`` (lag 0, 1, ...): Geyer's
    initial positive sequence of lag pairs, made monotone (as Stan and ArviZ truncate it)."""
    n = rho.size
    kept = np.zeros(n)
    kept[0], kept[1] = 1.0, rho[1]
    even, odd = 1.0, rho[1]
    t = 1
    while t < n - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0.0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0.0:
        kept[last + 1] = even
    for t in range(1, last - 1, 2):
        pair_before = kept[t - 1] + kept[t]
        if kept[t + 1] + kept[t + 2] > pair_before:
            kept[t + 1] = kept[t + 2] = pair_before / 2.0
    return -1.0 + 2.0 * kept[:last + 1].sum() + kept[last + 1:last + 2].sum()


def rhat_ess(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat and bulk ESS of every element of (chain, draw, K) draws.

    The definitions of Vehtari et al. (2021) as ArviZ computes them (``az.rhat(method="rank")``,
    ``az.ess(method="bulk")``; ``tests/test_bayesian.py`` checks equality), but vectorised over
    the elements: ArviZ loops over them in Python, which took seconds for the risk model's
    ~1,000 reported elements.  NaN where an element has NaN draws, or too few chains / draws.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        R-hat and bulk ESS, each (K,).
    """
    draws = np.asarray(draws, dtype=float)
    n_chain, n_draw, k = draws.shape
    r_hat, ess = np.full(k, np.nan), np.full(k, np.nan)
    ok = ~np.isnan(draws).any(axis=(0, 1))
    half = n_draw // 2
    if n_draw < 4 or not ok.any():
        return r_hat, ess
    split = np.concatenate([draws[:, :half, ok], draws[:, n_draw - half:, ok]], axis=0)
    m = split.shape[0]
    z = _normal_scores(split.reshape(m * half, -1)).reshape(split.shape)
    if n_chain >= 2:
        folded = np.abs(split - np.median(split.reshape(m * half, -1), axis=0))
        z_fold = _normal_scores(folded.reshape(m * half, -1)).reshape(split.shape)
        r_hat[ok] = np.maximum(_split_rhat(z), _split_rhat(z_fold))
    # bulk ESS: autocovariances of the normal scores per chain (FFT), pooled over chains
    from scipy.fft import irfft, next_fast_len, rfft

    centred = z - z.mean(axis=1, keepdims=True)
    spec = rfft(centred, n=next_fast_len(2 * half), axis=1)
    acov = irfft(spec * np.conj(spec), axis=1)[:, :half] / half
    mean_var = acov[:, 0].mean(axis=0) * half / (half - 1.0)
    var_plus = mean_var * (half - 1.0) / half
    if m > 1:
        var_plus = var_plus + np.var(z.mean(axis=1), axis=0, ddof=1)
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (lag, K)
    size = m * half
    flat = (z.max(axis=(0, 1)) - z.min(axis=(0, 1))) < np.finfo(float).resolution
    out = np.empty(z.shape[2])
    for j in range(z.shape[2]):
        if flat[j]:
            out[j] = size
        elif np.isnan(rho[:, j]).any():
            out[j] = np.nan
        else:
            out[j] = size / max(_geyer_tau(rho[:, j]), 1.0 / np.log10(size))
    ess[ok] = out
    return r_hat, ess


def check_diagnostics(
    idata: az.InferenceData,
    var_names: Iterable[str] | None = None,
    *,
    what: str = "posterior",
    r_hat_max: float = R_HAT_MAX,
    ess_bulk_min: float = ESS_BULK_MIN,
    warn: bool = True,
) -> dict[str, Any]:
    """Divergences, R-hat and bulk ESS of a fit; a ``UserWarning`` naming what falls short.

    Parameters
    ----------
    idata
        Sampler output with a ``posterior`` group (and ``sample_stats`` with ``diverging``).
    var_names
        Posterior variables to check (default: all).  Every element counts: the figures are the
        largest R-hat and the smallest bulk ESS over all elements.  Elements that are constant
        over every draw (nothing to estimate) are skipped.
    what
        Name of the fit in the warning (e.g. ``"hierarchical risk model"``).
    r_hat_max, ess_bulk_min
        Targets: rank-normalised split R-hat at most ``r_hat_max`` (1.01) and bulk ESS at least
        ``ess_bulk_min`` (400) for every element; no divergent transition.
    warn
        Emit the ``UserWarning`` when a target is missed.

    Returns
    -------
    dict
        ``divergences`` (int; -1 when the sampler records none), ``r_hat_max``, ``ess_bulk_min``
        (floats), ``worst`` (``{"r_hat": element, "ess_bulk": element}``, e.g.
        ``"sigma_task"`` or ``"risk_curve[x_grid=0.5]"``), ``ok`` (bool), ``message`` ("" when
        ok), ``chains``, ``draws``.
    """
    post = idata.posterior
    names = list(post.data_vars) if var_names is None else list(var_names)
    missing = [n for n in names if n not in post]
    if missing:
        raise ValueError(f"check_diagnostics: the posterior has no {missing}. Fix: pass names of "
                         f"posterior variables ({sorted(post.data_vars)}).")
    divergences = -1
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        divergences = int(np.asarray(idata.sample_stats["diverging"].values).sum())
    worst_r, worst_r_name = -np.inf, ""
    worst_e, worst_e_name = np.inf, ""
    for name in names:
        da = post[name].transpose("chain", "draw", ...)
        vals = np.asarray(da.values, dtype=float).reshape(da.sizes["chain"], da.sizes["draw"], -1)
        varying = np.nanmax(vals, axis=(0, 1)) > np.nanmin(vals, axis=(0, 1))
        if not varying.any():
            continue
        r, e = rhat_ess(vals)
        # a varying element whose R-hat/ESS is not finite (NaN draws) fails both checks
        r = np.where(varying, np.where(np.isfinite(r), r, np.inf), -np.inf)
        e = np.where(varying, np.where(np.isfinite(e), e, 0.0), np.inf)
        i, j = int(np.argmax(r)), int(np.argmin(e))
        if r[i] > worst_r:
            worst_r, worst_r_name = float(r[i]), _element_name(name, da, i)
        if e[j] < worst_e:
            worst_e, worst_e_name = float(e[j]), _element_name(name, da, j)
    problems = []
    if divergences > 0:
        problems.append(f"{divergences} divergent transition{'s' if divergences > 1 else ''} "
                        "(the sampler could not explore part of the posterior)")
    if worst_r > r_hat_max:
        problems.append(f"R-hat of {worst_r_name} is {worst_r:.3f} > {r_hat_max}")
    if worst_e < ess_bulk_min:
        problems.append(f"bulk ESS of {worst_e_name} is {worst_e:.0f} < {ess_bulk_min}")
    message = ""
    if problems:
        message = (f"{what}: {'; '.join(problems)}. Posterior summaries may be biased or too "
                   "noisy. Fix: draw more (draws=, tune=, chains=); if divergences persist, the "
                   "model does not suit these data (check the inputs).")
        if warn:
            warnings.warn(message, UserWarning, stacklevel=3)
    return {
        "divergences": divergences,
        "r_hat_max": worst_r if np.isfinite(worst_r) else float("nan"),
        "ess_bulk_min": worst_e if np.isfinite(worst_e) else float("nan"),
        "worst": {"r_hat": worst_r_name, "ess_bulk": worst_e_name},
        "ok": not problems,
        "message": message,
        "chains": int(post.sizes["chain"]),
        "draws": int(post.sizes["draw"]),
    }


def diagnostics_attrs(diag: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of :func:`check_diagnostics` as netCDF-safe attrs (``diagnostics_*``)."""
    return {
        "diagnostics_divergences": int(diag["divergences"]),
        "diagnostics_r_hat_max": float(diag["r_hat_max"]),
        "diagnostics_ess_bulk_min": float(diag["ess_bulk_min"]),
        "diagnostics_worst_r_hat": str(diag["worst"]["r_hat"]),
        "diagnostics_worst_ess_bulk": str(diag["worst"]["ess_bulk"]),
        "diagnostics_ok": int(bool(diag["ok"])),
    }
