"""Matplotlib views of hackrisk results (``plot_*(result, *, ax=None) -> Axes``).

Every function reads a result object of ``docs/results.md`` and draws it; none re-estimates.
Colours follow the Okabe–Ito palette (distinguishable under the common colour-vision
deficiencies) and heatmaps use ``cividis``.  matplotlib is imported inside the functions, so
``import hackrisk`` does not load it.

* :func:`plot_error_bars` — Type I / II / S rates and the pooled risk (with CIs for a risk result);
* :func:`plot_risk_curve` — risk versus the human effect size;
* :func:`plot_specification_curve` — one hypothesis under every configuration;
* :func:`plot_risk_heatmap` — risk per model × prompt;
* :func:`plot_hacking` — how many configurations fabricate, hide or reverse findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ._colors import ERROR_COLORS, OKABE_ITO
from .cube import CONFIG_DIMS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "OKABE_ITO",
    "ERROR_COLORS",
    "plot_error_bars",
    "plot_risk_curve",
    "plot_specification_curve",
    "plot_risk_heatmap",
    "plot_hacking",
]

_RISK_VARS = [("type_i", "Type I"), ("type_ii", "Type II"), ("type_s", "Type S"), ("risk_pooled", "risk")]


# --------------------------------------------------------------------------- helpers
def _figure(figsize=(6.4, 4.2)):
    """A pyplot-free Figure (for files and fallbacks)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _axes(ax, figsize=(6.4, 4.2)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _errors_of(result: xr.Dataset, what: str) -> xr.Dataset:
    if not isinstance(result, xr.Dataset):
        raise ValueError(f"{what}: result must be an xarray.Dataset, got {type(result).__name__}.")
    if "error" in result:
        return result
    if "conclusion" in result and "human_conclusion" in result:
        from .analysis.risk import classify_errors

        return classify_errors(result)
    raise ValueError(
        f"{what}: result has neither `error` codes nor `conclusion`/`human_conclusion`. Fix: pass "
        "the output of hackrisk.analysis.frequentist.test_hypotheses or "
        "hackrisk.analysis.risk.classify_errors (docs/results.md)."
    )


def _is_risk(result) -> bool:
    return isinstance(result, xr.Dataset) and "type_i" in result and "ci" in result.dims


# --------------------------------------------------------------------------- drawing primitives
def _draw_error_bars(ax, summary: dict[str, Any], ci: dict[str, tuple[float, float]] | None = None) -> None:
    names = ["Type I", "Type II", "Type S", "risk"]
    keys = ["type_i", "type_ii", "type_s", "risk"]
    vals = [np.nan if summary.get(k) is None else summary[k] for k in keys]
    colors = [ERROR_COLORS[n] for n in names]
    bars = ax.bar(names, vals, color=colors, edgecolor="black", linewidth=0.5)
    if ci:
        # a percentile bootstrap interval need not contain the estimate: clip the whiskers at it
        lo = [max(vals[i] - ci[k][0], 0.0) for i, k in enumerate(keys)]
        hi = [max(ci[k][1] - vals[i], 0.0) for i, k in enumerate(keys)]
        ax.errorbar(names, vals, yerr=[lo, hi], fmt="none", ecolor="black", capsize=4, linewidth=1)
    tops = [ci[k][1] if ci and np.isfinite(ci[k][1]) else v for k, v in zip(keys, vals, strict=True)]
    for b, v, top in zip(bars, vals, tops, strict=True):
        if np.isfinite(v):
            ax.annotate(f"{v:.1%}", (b.get_x() + b.get_width() / 2, top), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
    top = np.nanmax([0.0, *vals, *(v[1] for v in (ci or {}).values())])
    ax.set_ylim(0, max(0.05, float(top) * 1.18))
    ax.set_ylabel("share of tests")
    ax.set_title("Error rates", fontsize=10)
    _style(ax)


def _draw_risk_curve(ax, effect, risk, curve: Sequence[dict[str, Any]]) -> None:
    effect = np.asarray(effect, float)
    risk = np.asarray(risk, float)
    ok = np.isfinite(effect) & np.isfinite(risk)
    ax.scatter(np.abs(effect[ok]), risk[ok], s=12, alpha=0.6, color=OKABE_ITO["blue"],
               edgecolor="none", label="hypothesis")
    if curve:
        ax.plot([c["x"] for c in curve], [c["risk"] for c in curve], "-o", color=OKABE_ITO["vermillion"],
                markersize=4, linewidth=1.8, label="binned risk")
    ax.set_xlabel("|human effect size| (difference in proportions)")
    ax.set_ylabel("risk (share of wrong conclusions)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Risk vs effect size", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)


def _draw_heatmap(ax, matrix, models: Sequence[str], prompts: Sequence[str]) -> None:
    matrix = np.asarray(matrix, float)
    im = ax.imshow(matrix, cmap="cividis", vmin=0, vmax=max(0.05, float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1),
                   aspect="auto")
    ax.set_xticks(range(len(prompts)), prompts, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.set_xlabel("prompt")
    ax.set_ylabel("model")
    if matrix.size <= 120:
        vmax = im.get_clim()[1]
        for (i, j), v in np.ndenumerate(matrix):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 * vmax else "white")
    ax.figure.colorbar(im, ax=ax, label="risk", shrink=0.85)
    ax.set_title("Risk by model × prompt", fontsize=10)


def _draw_spec_curve(ax, est, lower, upper, error, human, scale: str, human_ci=None) -> None:
    est, lower, upper, error = (np.asarray(a, float) for a in (est, lower, upper, error))
    x = np.arange(len(est))
    for code, name in [(0, "correct"), (1, "Type I"), (2, "Type II"), (3, "Type S")]:
        m = error == code
        if m.any():
            ax.vlines(x[m], lower[m], upper[m], color=ERROR_COLORS[name], linewidth=1, alpha=0.6)
            ax.scatter(x[m], est[m], s=14 if code == 0 else 22, color=ERROR_COLORS[name],
                       marker="o" if code == 0 else "X", zorder=3,
                       label=name if code == 0 else f"{name} (wrong)")
    if human is not None and np.isfinite(human):
        ax.axhline(human, color=ERROR_COLORS["human"], linestyle="--", linewidth=1.2, label="human labels")
        if human_ci is not None and all(v is not None for v in human_ci):
            ax.axhspan(*human_ci, color="black", alpha=0.07, linewidth=0)
    ax.axhline(0, color="#888888", linewidth=0.8)
    ax.set_xlabel("configuration (sorted by estimate)")
    ax.set_ylabel(scale)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    _style(ax)


def _draw_hack_counts(ax, counts: dict[str, int], *, title="Configurations that would…", xlabel="configurations") -> None:
    kinds = ["fabricate", "hide", "reverse"]
    colors = [ERROR_COLORS["Type I"], ERROR_COLORS["Type II"], ERROR_COLORS["Type S"]]
    vals = [counts.get(k, 0) for k in kinds]
    bars = ax.barh(kinds, vals, color=colors, edgecolor="black", linewidth=0.5)
    for b, v in zip(bars, vals, strict=True):
        ax.annotate(f"{v:g}" if isinstance(v, (int, np.integer)) else f"{v:.1%}",
                    (b.get_width(), b.get_y() + b.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    if all(isinstance(v, (int, np.integer)) for v in vals):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, max(1, max(vals)) * 1.12)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)


# --------------------------------------------------------------------------- public functions
def plot_error_bars(result: xr.Dataset, *, ax: Axes | None = None) -> Axes:
    """Bar chart of the Type I, Type II, Type S rates and the pooled risk.

    Parameters
    ----------
    result : xarray.Dataset
        A risk result (``hackrisk.analysis.risk.risk``: variables with a ``ci`` dimension, drawn
        with their confidence intervals; extra dimensions must be reduced first), or tests /
        errors (``error`` codes; plain shares over all annotated tests are drawn).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    if _is_risk(result):
        extra = [d for d in result["type_i"].dims if d != "ci"]
        if extra:
            raise ValueError(f"plot_error_bars: the risk result has extra dimensions {extra}. "
                             f"Fix: select one level, e.g. result.sel({extra[0]}=...), or use "
                             "plot_risk_heatmap.")
        summary, ci = {}, {}
        for var, name in _RISK_VARS:
            key = "risk" if name == "risk" else var
            if var in result:
                r = result[var]
                summary[key] = float(r.sel(ci="estimate"))
                ci[key] = (float(r.sel(ci="lower")), float(r.sel(ci="upper")))
            else:
                summary[key], ci[key] = None, (np.nan, np.nan)
        _draw_error_bars(ax, summary, ci)
        return ax
    from .analysis.risk import risk

    res = _errors_of(result, "plot_error_bars")
    r = risk(res, n_boot=0)
    summary = {k: float(r[v].sel(ci="estimate")) for v, k in
               [("type_i", "type_i"), ("type_ii", "type_ii"), ("type_s", "type_s"), ("risk_pooled", "risk")]}
    summary = {k: (v if np.isfinite(v) else None) for k, v in summary.items()}
    _draw_error_bars(ax, summary)
    n = int((res["error"] >= 0).sum())
    ax.set_title(f"Error rates ({n:,} tests, {res.sizes['hypothesis']} hypotheses)", fontsize=10)
    return ax


def _per_hypothesis(res: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    err = res["error"].transpose("hypothesis", ...).values.reshape(res.sizes["hypothesis"], -1)
    ann = (err >= 0).sum(axis=1)
    wrong = (err > 0).sum(axis=1)
    risk = np.where(ann > 0, wrong / np.maximum(ann, 1), np.nan)
    return res["human_estimate"].values.astype(float), risk, np.stack([wrong, ann])


def plot_risk_curve(result: xr.Dataset, *, ax: Axes | None = None, bins: int = 8) -> Axes:
    """Risk versus the size of the human-label effect.

    Parameters
    ----------
    result : xarray.Dataset
        Tests / errors (one point per hypothesis: its share of wrong conclusions across
        configurations, against ``|human_estimate|``, and an equal-count binned curve), or the
        output of ``hackrisk.analysis.risk.risk_by_effect_size`` (a risk result with an effect-size
        bin dimension; drawn with its CIs).
    ax : matplotlib.axes.Axes, optional
    bins : int
        Number of equal-count bins for the curve (tests input).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    if _is_risk(result):
        return _risk_curve_from_risk(result, ax)
    from .analysis.risk import risk_by_effect_size

    res = _errors_of(result, "plot_risk_curve")
    effect, risk, _ = _per_hypothesis(res)
    curve = []
    n_ok = int(np.isfinite(effect).sum())
    if n_ok:
        rb = risk_by_effect_size(res, bins=max(1, min(bins, n_ok)), n_boot=0)
        est = rb["risk_pooled"].sel(ci="estimate").values
        mids = _bin_centres(rb, "bin")
        curve = [{"x": float(x), "risk": float(v)} for x, v in zip(mids, est, strict=True) if np.isfinite(v)]
    _draw_risk_curve(ax, effect, risk, curve)
    return ax


def _risk_curve_from_risk(result: xr.Dataset, ax) -> Axes:
    var = "risk_pooled" if "risk_pooled" in result else "type_i"
    r = result[var]
    dims = [d for d in r.dims if d != "ci"]
    if len(dims) != 1:
        raise ValueError(f"plot_risk_curve: expected one effect-size dimension besides `ci`, got {dims}.")
    dim = dims[0]
    coord = result[dim]
    x = _bin_centres(result, dim)
    est = r.sel(ci="estimate").values
    lo, hi = r.sel(ci="lower").values, r.sel(ci="upper").values
    ax.fill_between(x, lo, hi, color=OKABE_ITO["vermillion"], alpha=0.2, linewidth=0, label="CI")
    ax.plot(x, est, "-o", color=OKABE_ITO["vermillion"], markersize=4, label=var.replace("_", " "))
    if not np.issubdtype(np.asarray(x).dtype, np.number) or np.array_equal(x, np.arange(len(x))):
        ax.set_xticks(range(len(coord)), [str(v) for v in coord.values], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("|human effect size|")
    ax.set_ylabel("risk")
    ax.set_ylim(0, max(0.05, float(np.nanmax(hi)) * 1.1 if np.isfinite(hi).any() else 1))
    ax.set_title("Risk vs effect size", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return ax


def _bin_centres(result: xr.Dataset, dim: str) -> np.ndarray:
    for name in ("effect_mid", "bin_mid", "effect_size", f"{dim}_mid"):
        if name in result.coords and result[name].dims == (dim,):
            return np.asarray(result[name].values, float)
    values = result[dim].values
    if np.issubdtype(values.dtype, np.number):
        return values.astype(float)
    if len(values) and hasattr(values[0], "mid"):  # pandas Interval
        return np.array([v.mid for v in values], float)
    return np.arange(len(values), dtype=float)


def plot_specification_curve(result: xr.Dataset, *, hypothesis: int | None = None, alpha: float | None = None,
                             ax: Axes | None = None) -> Axes:
    """Specification curve of one hypothesis across every annotated configuration.

    Each configuration's log odds ratio (A vs B) with its Wald CI at level ``alpha``, sorted; the
    human-label estimate is the dashed reference line (its CI shaded); configurations whose
    conclusion is wrong (Type I / II / S) are drawn as crosses in the error's colour.

    Parameters
    ----------
    result : xarray.Dataset
        Tests / errors (``docs/results.md``).
    hypothesis : int, optional
        The ``hypothesis`` coordinate value to draw; default the hypothesis with the largest
        share of wrong conclusions.
    alpha : float, optional
        CI level; default the level of the tests (``attrs["alpha"]``).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from scipy.stats import norm

    ax = _axes(ax, figsize=(8, 4.2))
    res = _errors_of(result, "plot_specification_curve")
    if hypothesis is None:
        _, share, _ = _per_hypothesis(res)
        hypothesis = int(res["hypothesis"].values[int(np.argmax(np.nan_to_num(share, nan=-1)))])
    if hypothesis not in set(res["hypothesis"].values.tolist()):
        raise ValueError(f"plot_specification_curve: hypothesis={hypothesis} is not in the result "
                         f"(0..{res.sizes['hypothesis'] - 1}).")
    alpha = float(res.attrs.get("alpha", 0.05)) if alpha is None else float(alpha)
    z = norm.ppf(1 - alpha / 2)
    one = res.sel(hypothesis=hypothesis).transpose(*CONFIG_DIMS)
    use_lor = "log_or" in one and "se" in one
    est = (one["log_or"] if use_lor else one["estimate"]).values.ravel().astype(float)
    se = one["se"].values.ravel().astype(float) if use_lor else np.full(est.shape, np.nan)
    err = one["error"].values.ravel()
    keep = err >= 0
    order = np.argsort(np.where(np.isfinite(est[keep]), est[keep], np.inf), kind="stable")
    idx = np.flatnonzero(keep)[order]
    if use_lor and "human_log_or" in one:
        h, hse = float(one["human_log_or"]), float(one.get("human_se", np.nan))
    else:
        h, hse = float(one["human_estimate"]), np.nan
    hci = (h - z * hse, h + z * hse) if np.isfinite(hse) else None
    with np.errstate(invalid="ignore"):  # infinite log odds ratios (a zero count) give NaN bounds, not warnings
        lo, hi = est[idx] - z * se[idx], est[idx] + z * se[idx]
    _draw_spec_curve(ax, est[idx], lo, hi, err[idx], h,
                     "log odds ratio (A vs B)" if use_lor else "estimate (p_A − p_B)", hci)
    label = " · ".join(str(one[c].values) for c in ("task", "grouping", "class_name") if c in one.coords)
    ax.set_title(f"Specification curve: {label or f'hypothesis {hypothesis}'}", fontsize=10)
    return ax


def plot_risk_heatmap(result: xr.Dataset, *, ax: Axes | None = None, rows: str = "model",
                      cols: str = "prompt") -> Axes:
    """Heatmap of the risk per ``rows`` × ``cols`` (default model × prompt).

    Parameters
    ----------
    result : xarray.Dataset
        A risk result computed ``by=(rows, cols)`` (its ``risk_pooled`` estimate is drawn), or tests /
        errors (share of wrong conclusions over hypotheses and the remaining configuration dims).
    ax : matplotlib.axes.Axes, optional
    rows, cols : str
        Configuration dimensions on the two axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    if _is_risk(result):
        var = "risk_pooled" if "risk_pooled" in result else "type_i"
        r = result[var].sel(ci="estimate")
        missing = [d for d in (rows, cols) if d not in r.dims]
        if missing:
            raise ValueError(f"plot_risk_heatmap: the risk result has no dimension(s) {missing}. "
                             f"Fix: compute it with risk(tests, by=({rows!r}, {cols!r})).")
        other = [d for d in r.dims if d not in (rows, cols)]
        if other:
            raise ValueError(f"plot_risk_heatmap: reduce the extra dimensions {other} first.")
        mat = r.transpose(rows, cols).values
    else:
        from .analysis.risk import risk

        res = _errors_of(result, "plot_risk_heatmap")
        r = risk(res, by=(rows, cols), n_boot=0)
        # risk() sorts the levels: put them back in the order of the result
        r = r.sel({rows: res[rows].values, cols: res[cols].values})
        mat = r["risk_pooled"].sel(ci="estimate").transpose(rows, cols).values
    _draw_heatmap(ax, mat, [str(v) for v in result[rows].values], [str(v) for v in result[cols].values])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    ax.set_title(f"Risk by {rows} × {cols}", fontsize=10)
    return ax


def plot_hacking(result: xr.Dataset, *, hypothesis: int | None = None, ax: Axes | None = None) -> Axes:
    """How easily the multiverse fabricates, hides or reverses findings.

    Parameters
    ----------
    result : xarray.Dataset
        Tests / errors.
    hypothesis : int, optional
        With a hypothesis: the number of configurations that would fabricate (Type I), hide
        (Type II) or reverse (Type S) that finding.  Without: for each kind, the share of eligible
        hypotheses (human null for *fabricate*, human significant for *hide* / *reverse*) for which
        at least one configuration would do it — what a researcher free to pick the
        configuration could report.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax, figsize=(6.4, 3))
    res = _errors_of(result, "plot_hacking").transpose("hypothesis", ...)
    err = res["error"].values.reshape(res.sizes["hypothesis"], -1)
    if hypothesis is not None:
        e = err[list(res["hypothesis"].values).index(hypothesis)]
        counts = {"fabricate": int((e == 1).sum()), "hide": int((e == 2).sum()), "reverse": int((e == 3).sum())}
        _draw_hack_counts(ax, counts, title=f"Hypothesis {hypothesis}: configurations that would…")
        return ax
    from .analysis.risk import hacking

    rates = hacking(res).attrs
    shares = {k: float(np.nan_to_num(rates.get(f"{k}_rate", np.nan))) for k in ("fabricate", "hide", "reverse")}
    _draw_hack_counts(ax, shares, title="Share of hypotheses some configuration would…",
                      xlabel="share of eligible hypotheses")
    ax.set_xlim(0, 1.08)
    return ax


def __getattr__(name: str):
    """The Bayesian plots live next to their models; reach them here too (imported lazily)."""
    if name in ("plot_posterior_risk_curve", "plot_prospective_risk"):
        from .analysis import bayesian

        return getattr(bayesian, name)
    raise AttributeError(f"module 'hackrisk.plots' has no attribute {name!r}")
