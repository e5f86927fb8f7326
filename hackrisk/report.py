"""One self-contained HTML report of a multiverse analysis (and one of a suite of tasks).

:func:`write_suite_report` writes the cross-task report of a suite (risk per task, risk against
annotation quality and against effect size, the variance decomposition) from
:func:`hackrisk.analysis.crosstask.suite_summary`.

:func:`write_report` writes a single ``.html`` file — figures embedded as base64 PNG, styles
inline, no script and no network access — holding the headline risks with their bootstrap CIs,
the risks by model / prompt / temperature, the hacking rates, the most fragile hypotheses, the
probability that each human effect is real (local fdr) with the lfdr-weighted risk, the
configuration space and the provenance (versions, date, attributes of the cube and the tests).

The report reads results: the numbers come from :mod:`hackrisk.analysis.risk` (``risk``,
``hacking``) and the figures from :mod:`hackrisk.plots`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cube import CONFIG_DIMS

__all__ = ["write_report", "render_report", "llm_difference_ci", "render_suite_report", "write_suite_report"]

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.15em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f6f9}td.l,th.l,td:last-child,th:last-child{text-align:left}.muted{color:#666;font-size:.9em}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:150px}
.card .v{font-size:1.6em;font-weight:600}.card .ci{color:#555;font-size:.85em}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1em}
figure{margin:0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
code{background:#f4f4f4;padding:0 .25em;border-radius:3px}
"""
_METRICS = [
    ("risk_pooled", "Overall risk", "share of wrong conclusions"),
    ("type_i", "Type I", "false positives among human-null hypotheses"),
    ("type_ii", "Type II", "missed effects among human-significant hypotheses"),
    ("type_s", "Type S", "wrong sign among human-significant hypotheses"),
    ("type_m_mean", "Type M", "mean exaggeration |Δ_LLM|/|Δ_human| (correct, significant)"),
    ("risk_balanced", "Balanced risk", "½·Type I + ½·(Type II + Type S)"),
]


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _fmt_metric(name: str, x: float) -> str:
    return _num(x) if name == "type_m_mean" else _pct(x)


def _png(draw, *, figsize=(6.4, 4.2), **kwargs) -> str:
    """Run ``draw(ax=...)`` on a pyplot-free figure and return a base64 PNG data URI."""
    from .plots import _figure

    fig = _figure(figsize=figsize)
    ax = fig.add_subplot()
    draw(ax=ax, **kwargs)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list[Any]], left: int = 1, raw: tuple[int, ...] = ()) -> str:
    """An HTML table; every cell escaped except the columns in ``raw`` (already HTML, e.g. links)."""
    th = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{v if i in raw else _esc(v)}</td>'
                         for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _ci_cells(r: xr.Dataset, var: str) -> list[str]:
    if var not in r:
        return ["n/a", ""]
    est = float(r[var].sel(ci="estimate"))
    lo, hi = float(r[var].sel(ci="lower")), float(r[var].sel(ci="upper"))
    ci = "" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{_fmt_metric(var, lo)}, {_fmt_metric(var, hi)}]"
    return [_fmt_metric(var, est), ci]


def _by_table(r: xr.Dataset, dim: str) -> str:
    rows = []
    for level in r[dim].values:
        one = r.sel({dim: level})
        row = [str(level)]
        for var in ("risk_pooled", "type_i", "type_ii", "type_s"):
            row += _ci_cells(one, var)
        rows.append(row)
    header = [dim, "risk", "95% CI", "Type I", "CI", "Type II", "CI", "Type S", "CI"]
    return _table(header, rows)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("hackrisk", "numpy", "pandas", "xarray", "scipy", "matplotlib", "zarr"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _attrs_rows(attrs: Mapping[str, Any], limit: int = 400) -> list[list[str]]:
    rows = []
    for k, v in attrs.items():
        s = str(v)
        rows.append([str(k), s if len(s) <= limit else s[:limit] + " …"])
    return rows


def _most_fragile(tests: xr.Dataset, hack: xr.Dataset, n: int) -> list[list[Any]]:
    err = tests["error"].transpose("hypothesis", ...).values.reshape(tests.sizes["hypothesis"], -1)
    ann = (err >= 0).sum(1)
    wrong = np.where(ann > 0, (err > 0).sum(1) / np.maximum(ann, 1), np.nan)
    order = np.argsort(-np.nan_to_num(wrong, nan=-1), kind="stable")[:n]
    coords = {c: tests[c].values for c in ("task", "grouping", "class_name") if c in tests.coords}
    rows = []
    for h in order:
        hc = int(tests["human_conclusion"].values[h])
        rows.append([
            int(tests["hypothesis"].values[h]),
            *(str(coords[c][h]) for c in coords),
            _num(float(tests["human_estimate"].values[h])),
            {1: "higher in A", -1: "lower in A", 0: "no difference"}.get(hc, "undefined"),
            _pct(wrong[h]),
            int(hack["n_fabricate"].values[h]), int(hack["n_hide"].values[h]), int(hack["n_reverse"].values[h]),
        ])
    header = ["hypothesis", *coords, "human Δ", "human conclusion", "wrong", "fabricate", "hide", "reverse"]
    return [header, rows, len(coords) + 1]


def llm_difference_ci(tests: xr.Dataset, alpha: float = 0.05) -> tuple[xr.DataArray, xr.DataArray]:
    """Wald interval of the LLM-only difference in shares (A − B) per (hypothesis, configuration).

    From the counts of :func:`hackrisk.analysis.frequentist.test_hypotheses` (``k_a``, ``n_a``,
    ``k_b``, ``n_b``), on the same scale as the ``"difference"`` corrections, so both intervals
    can be shown side by side.
    """
    from scipy import stats

    pa, pb = tests["k_a"] / tests["n_a"], tests["k_b"] / tests["n_b"]
    se = np.sqrt(pa * (1 - pa) / tests["n_a"] + pb * (1 - pb) / tests["n_b"])
    z = float(stats.norm.ppf(1 - alpha / 2))
    return pa - pb - z * se, pa - pb + z * se


_MAX_NAMED_CONFIGS = 30  # the corrected-interval figure names configurations up to this many


def _as_methods(corrected: Any) -> dict[str, xr.Dataset]:
    if corrected is None:
        return {}
    if isinstance(corrected, xr.Dataset):
        return {str(corrected.attrs.get("method", "corrected")): corrected}
    if isinstance(corrected, Mapping):
        return {str(k): v for k, v in corrected.items() if isinstance(v, xr.Dataset)}
    raise ValueError(f"write_report: corrected must be the Dataset of hackrisk.analysis.mitigation.correct or a "
                     f"dict of them, got {type(corrected).__name__}.")


def _plot_corrected(ax, corr: xr.Dataset, tests: xr.Dataset, h: int, names: list[str], llm: tuple) -> None:
    """Forest plot of one hypothesis: corrected interval per configuration beside the LLM-only one."""
    est = corr["estimate"].isel(hypothesis=h).values.ravel()
    lo, hi = corr["ci_lower"].isel(hypothesis=h).values.ravel(), corr["ci_upper"].isel(hypothesis=h).values.ravel()
    l_est = tests["estimate"].isel(hypothesis=h).values.ravel()
    l_lo, l_hi = llm[0].isel(hypothesis=h).values.ravel(), llm[1].isel(hypothesis=h).values.ravel()
    order = np.argsort(np.where(np.isfinite(l_est), l_est, np.inf), kind="stable")  # sorted by LLM-only estimate
    est, lo, hi, l_est, l_lo, l_hi = (a[order] for a in (est, lo, hi, l_est, l_lo, l_hi))
    names = [names[i] for i in order]
    y = np.arange(len(names))
    ax.errorbar(l_est, y + 0.18, xerr=[l_est - l_lo, l_hi - l_est], fmt="o", color="#D55E00", ms=4,
                label="LLM labels only")
    ax.errorbar(est, y - 0.18, xerr=[est - lo, hi - est], fmt="s", color="#0072B2", ms=4,
                label=f"corrected ({corr.attrs.get('method', '')}, human + LLM labels)")
    ax.axvline(0, color="#999", lw=1)
    if len(names) <= _MAX_NAMED_CONFIGS:
        ax.set_yticks(y, names, fontsize=7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(names)} configurations, sorted by the LLM-only estimate")
    ax.set_xlabel("difference in share (group A − group B)")
    ax.legend(fontsize=8, loc="best")


def _human_section(tests: xr.Dataset, corrected: Any, robust: Any, n_show: int) -> str:
    """"Your conclusions with human labels": verdicts and corrected intervals per configuration."""
    methods = _as_methods(corrected)
    main_name = next((m for m in methods if m not in ("human", "substitution")), next(iter(methods), None))
    main = methods.get(main_name) if main_name else None
    if robust is None and main is not None:
        from .analysis.robust import robust_conclusions

        robust = robust_conclusions(main, human=methods.get("human"))
    out = ["<h2>Your conclusions with human labels</h2>"]
    n_lab = ""
    if main is not None and "n_labelled_a" in main:
        na = main["n_labelled_a"].max([d for d in CONFIG_DIMS if d in main.dims]).values
        nb = main["n_labelled_b"].max([d for d in CONFIG_DIMS if d in main.dims]).values
        n_lab = f" Labelled items per hypothesis (groups A + B): {int(np.nanmin(na + nb))}–{int(np.nanmax(na + nb))}."
    out.append(f"<p>The human labels you collected, combined with each configuration's LLM labels "
               f"({_esc(main_name or '')}; valid intervals at level 1 − α), instead of trusting the LLM labels "
               f"alone.{_esc(n_lab)} A verdict is <b>robust</b> when every configuration reaches the same corrected "
               "conclusion, <b>depends on the configuration</b> otherwise, and <b>undecided</b> when a group has "
               "fewer than 2 labelled items.</p>")
    if robust is not None and len(robust):
        counts = robust["verdict"].astype(str).value_counts()
        out.append("<div class='cards'>" + "".join(
            f"<div class='card' data-verdict='{_esc(v)}'><div>{_esc(v)}</div><div class='v'>{int(n)}</div>"
            "<div class='muted'>hypotheses</div></div>" for v, n in counts.items()) + "</div>")
        order = robust.assign(_k=robust["verdict"].astype(str).map(
            lambda v: 0 if v.startswith("depends") else 1 if v.startswith("undecided") else 2))
        order = order.sort_values(["_k", "share_majority"], kind="stable")
        rows = []
        for hyp, r in order.iterrows():
            hc = r.get("human_conclusion", np.nan)
            rows.append([int(hyp), *(str(r[c]) for c in ("task", "grouping", "class_name") if c in r.index),
                         r["verdict"], r["majority_text"] or "n/a", _pct(r["share_majority"]),
                         {1: "higher in A", -1: "lower in A", 0: "no difference"}.get(
                             int(hc) if np.isfinite(hc) else 9, "undecided"),
                         _pct(r["share_human"]), r["best_configuration"] or "n/a"])
        coords = [c for c in ("task", "grouping", "class_name") if c in robust.columns]
        header = ["hypothesis", *coords, "verdict", "majority conclusion", "configurations agreeing",
                  "human labels only", "agreeing with human only", "best configuration"]
        out.append(_table(header, rows[:200], left=len(coords) + 2))
        if len(rows) > 200:
            out.append(f"<p class='muted'>{len(rows) - 200} more rows in tables/robust.csv.</p>")
    if main is not None:
        llm = llm_difference_ci(tests, alpha=float(main.attrs.get("alpha", 0.05))) \
            if {"k_a", "n_a", "k_b", "n_b"} <= set(tests.data_vars) else None
        cfg = main[["estimate"]].stack(_cfg=CONFIG_DIMS)["_cfg"].values
        names = ["/".join(str(x) for x in c) for c in cfg]
        show = list(order.index[:min(n_show, 10)]) if robust is not None and len(robust) else \
            list(main["hypothesis"].values[:10])
        hyp_pos = {v: i for i, v in enumerate(main["hypothesis"].values)}
        if llm is not None and show and "ci_lower" in main:
            h0 = hyp_pos[show[0]]
            try:
                uri = _png(lambda ax: _plot_corrected(ax, main.transpose("hypothesis", *CONFIG_DIMS), tests.transpose(
                    "hypothesis", *CONFIG_DIMS), h0, names, tuple(x.transpose("hypothesis", *CONFIG_DIMS) for x in llm)),
                    figsize=(8, min(10.0, max(2.5, 0.28 * len(names) + 1.2))))
                out.append(f"<figure><img alt='corrected intervals' src='{uri}'><figcaption>Hypothesis {_esc(show[0])}: "
                           "corrected interval per configuration (blue) beside the LLM-only interval (orange)."
                           "</figcaption></figure>")
            except ValueError as exc:
                logger.warning("report: corrected-interval figure skipped: %s", exc)
        def flat(ds: xr.Dataset, var: str) -> np.ndarray:
            return np.asarray(ds[var].transpose("hypothesis", *CONFIG_DIMS).values).reshape(ds.sizes["hypothesis"], -1)

        cols = []
        if llm is not None:
            cols.append(("llm", flat(tests, "estimate"), flat(llm[0].to_dataset(name="x"), "x"),
                         flat(llm[1].to_dataset(name="x"), "x"), None, None))
        for ds in methods.values():
            cols.append(("m", flat(ds, "estimate"), flat(ds, "ci_lower") if "ci_lower" in ds else None,
                         flat(ds, "ci_upper") if "ci_upper" in ds else None, flat(ds, "conclusion"),
                         flat(ds, "decided") if "decided" in ds else None))
        rows = []
        for hyp in show:
            h = hyp_pos[hyp]
            for j in range(len(cfg)):
                row = [int(hyp), names[j]]
                for kind, est, lo, hi, con, dec in cols:
                    ci = "" if lo is None else f"[{_num(float(lo[h, j]))}, {_num(float(hi[h, j]))}]"
                    row += [_num(float(est[h, j])), ci]
                    if kind == "m":
                        ok = True if dec is None else bool(dec[h, j])
                        row.append({1: "A higher", -1: "A lower", 0: "none"}.get(int(con[h, j]), "?")
                                   if ok else "undecided")
                rows.append(row)
        header = ["hypothesis", "configuration"] + (["LLM only Δ", "LLM only CI"] if llm is not None else [])
        for m in methods:
            header += [f"{m} Δ", f"{m} CI", f"{m} conclusion"]
        out.append(f"<h3>Corrected intervals per configuration</h3><p class='muted'>The {len(show)} hypotheses "
                   "listed first above; Δ = share of the class in group A minus group B.</p>"
                   + _table(header, rows, left=2))
    return "".join(out)


def _prospective_section(prospective: Mapping[str, Any], n_show: int) -> str:
    """Prospective risk (hackrisk.analysis.prospective) and the evidence of its calibration."""
    from .analysis import prospective as PR

    s = prospective["summary"]
    out = ["<h2>Prospective risk: how likely is each conclusion wrong?</h2>",
           f"<p class='muted'>From the LLM labels of every configuration and the "
           f"{_esc(s.attrs.get('n_human', '?'))} human labels of a random subset of the "
           f"{_esc(s.attrs.get('n_items', '?'))} items: the probability that a configuration's conclusion "
           "differs from the one all human labels would give (hackrisk.analysis.prospective; method and "
           "assumptions in docs/prospective.md).</p>"]
    pw = s["p_wrong"]
    cfg = [d for d in CONFIG_DIMS if d in pw.dims]
    mean = pw.mean(cfg)
    p_sig = 1 - s["p_true_conclusion"].sel(true_conclusion=0)
    rows = []
    for i in np.argsort(-np.nan_to_num(mean.values, nan=-1))[:n_show]:
        h = s.isel(hypothesis=int(i))
        rows.append([_esc(h["grouping"].item() if "grouping" in h.coords else h["hypothesis"].item()),
                     _esc(h["class_name"].item() if "class_name" in h.coords else ""),
                     _pct(float(p_sig.isel(hypothesis=int(i)))), _pct(float(mean.isel(hypothesis=int(i)))),
                     _pct(float((pw.isel(hypothesis=int(i)) > 0.5).mean()))])
    out.append(_table(["grouping", "class", "P(full-human test significant)", "mean P(wrong)",
                       "configurations with P(wrong) > 50%"], rows, left=2))
    cal = prospective.get("calibration")
    if cal is not None:
        rel = cal["reliability"]
        img = _png(PR.plot_reliability, figsize=(4.8, 4.4), table=rel)
        out.append("<h3>Calibration on this study's own labels</h3><p class='muted'>Every item has a human "
                   "label, so the study was replayed: n random human labels revealed, the risk predicted, and "
                   "compared with the conclusions of all human labels (calibration_study; 95% cluster-bootstrap "
                   f"intervals over hypotheses).</p><figure><img src='{img}' alt='reliability diagram'>"
                   "</figure>")
        out.append(_table(["predicted P(wrong)", "conclusions", "mean predicted", "observed wrong", "95% CI"],
                          [[r["bin"], r["n"], _num(r["predicted"]), _num(r["observed"]),
                            f"{_num(r['lower'])} – {_num(r['upper'])}"] for _, r in rel.iterrows()]))
        sc = cal["scores"]
        out.append(_table(["budget", "method", "Brier", "AUC"],
                          [[r.iloc[0], r["method"], _num(r["brier"]), _num(r["auc"])] for _, r in sc.iterrows()],
                          left=2))
    else:
        out.append(f"<p>{_esc(PR.CALIBRATION_NOTE)}</p>")
    return "\n".join(out)


def _lfdr_section(errors: xr.Dataset, lfdr: Any, risk: xr.Dataset, n_boot: int, rng: Any, n_show: int) -> str:
    """Local fdr: P(the human effect is real) per hypothesis, and the lfdr-weighted risk."""
    from .analysis import lfdr as L
    from .analysis import risk as R

    out = ["<h2>Is the human effect real? (local false discovery rate)</h2>"]
    if not isinstance(lfdr, xr.DataArray):
        try:
            paper = errors.attrs.get("conventions") == "paper"  # the authors' locfdr settings
            lfdr = L.human_lfdr(errors, **({"nulltype": "mle", "df": 15, "extreme": 10} if paper else {}))
        except ValueError as exc:
            out.append(f"<p class='muted'>Not computed: {_esc(exc)}</p>")
            return "".join(out)
    fdr = lfdr.reindex(hypothesis=errors["hypothesis"].values)
    weights = L.lfdr_weights(errors, fdr)
    weighted = R.risk(errors, weights=weights, n_boot=n_boot, rng=rng)
    p0, d0, s0 = (lfdr.attrs.get(k, np.nan) for k in ("p0", "delta0", "sigma0"))
    out.append(
        "<p>A human \"effect\" is itself a test result. Efron's two-group model on the human z-scores of "
        f"all {errors.sizes['hypothesis']} hypotheses (empirical null N({_num(d0, 2)}, {_num(s0, 2)}²), "
        f"null share p0 = {_num(p0, 2)}) gives each hypothesis the probability that its effect exists, "
        "1 − lfdr. Weighting each hypothesis by the probability that its human conclusion is right about "
        "existence (1 − lfdr where the humans found an effect, lfdr where they did not; "
        "<code>hackrisk.analysis.lfdr.lfdr_weights</code>) makes errors against doubtful human "
        "\"truths\" count less.</p>")
    rows = []
    for var, name, _ in _METRICS[:4]:
        rows.append([name, *_ci_cells(risk, var), *_ci_cells(weighted, var)])
    out.append(_table(["metric", "unweighted", "95% CI", "lfdr-weighted", "95% CI"], rows))
    h_all = errors["hypothesis"].values
    p_eff = 1 - np.asarray(fdr.values, dtype=np.float64)
    w = np.asarray(weights.values, dtype=np.float64)
    order = np.argsort(np.nan_to_num(w, nan=2.0), kind="stable")
    shown = order if len(order) <= 2 * n_show else order[:n_show]
    coords = {c: errors[c].values for c in ("task", "grouping", "class_name") if c in errors.coords}
    z = errors["human_z"].values if "human_z" in errors else np.full(len(h_all), np.nan)
    hyp_rows = []
    for h in shown:
        hc = int(errors["human_conclusion"].values[h])
        hyp_rows.append([int(h_all[h]), *(str(coords[c][h]) for c in coords), _num(float(z[h]), 2),
                         {1: "higher in A", -1: "lower in A", 0: "no difference"}.get(hc, "undefined"),
                         _pct(p_eff[h]), _pct(w[h])])
    note = ("" if len(shown) == len(order) else
            f"The {len(shown)} hypotheses whose human conclusion is least certain; all {len(order)} are in the "
            "explorer and in <code>human_lfdr(tests)</code>. ")
    out.append(f"<p class='muted'>{note}P(effect): 1 − lfdr of the human z-score; weight: the probability "
               "that the human conclusion is right about the existence of an effect.</p>")
    out.append(_table(["hypothesis", *coords, "human z", "human conclusion", "P(effect)", "weight"], hyp_rows,
                      left=len(coords) + 1))
    return "".join(out)


def render_report(
    tests: xr.Dataset,
    *,
    cube: xr.Dataset | None = None,
    hypotheses: xr.Dataset | None = None,
    risk: xr.Dataset | None = None,
    mitigation: Any = None,
    title: str = "hackrisk report",
    n_boot: int = 500,
    n_fragile: int = 15,
    rng: int | np.random.Generator | None = 0,
    corrected: xr.Dataset | Mapping[str, xr.Dataset] | None = None,
    robust: Any = None,
    prospective: Mapping[str, Any] | None = None,
    lfdr: xr.DataArray | bool = True,
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    from . import plots
    from .analysis import risk as R

    if not isinstance(tests, xr.Dataset) or "conclusion" not in tests or "human_conclusion" not in tests:
        raise ValueError("write_report: tests must be the Dataset of "
                         "hackrisk.analysis.frequentist.test_hypotheses (docs/results.md).")
    errors = tests if "error" in tests else R.classify_errors(tests)
    if risk is None:
        risk = R.risk(errors, n_boot=n_boot, rng=rng)
    if "ci" not in risk.dims or any(d != "ci" for d in risk["type_i"].dims):
        raise ValueError("write_report: risk must be the un-sliced output of hackrisk.analysis.risk.risk "
                         "(variables on `ci` only). Fix: pass risk(tests) or leave risk=None.")
    by = {dim: R.risk(errors, by=dim, n_boot=n_boot, rng=rng) for dim in CONFIG_DIMS if errors.sizes.get(dim, 0) > 1}
    hack = R.hacking(errors)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    alpha = errors.attrs.get("alpha", "?")
    n_h = errors.sizes["hypothesis"]
    n_cfg = int(np.prod([errors.sizes[d] for d in CONFIG_DIMS if d in errors.sizes]))

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1><p class='muted'>Generated {now} by hackrisk "
             f"{_esc(_versions()['hackrisk'])}. LLM hacking risk (Baumann et al. 2025, arXiv:2509.08825): how often a "
             f"conclusion drawn from LLM annotations differs from the one drawn from human labels, across "
             f"{n_cfg} configurations × {n_h} hypotheses, at α = {_esc(alpha)}.</p>"]

    # headline
    cards = []
    for var, name, desc in _METRICS[:4]:
        est, ci = _ci_cells(risk, var)
        cards.append(f"<div class='card' data-metric='{var}'><div>{_esc(name)}</div><div class='v'>{est}</div>"
                     f"<div class='ci'>95% CI {ci or 'n/a'}</div><div class='muted'>{_esc(desc)}</div></div>")
    parts.append("<h2>Headline risks</h2><div class='cards'>" + "".join(cards) + "</div>")
    if "annotated" in tests.variables:  # configurations left out (analysed with --allow-incomplete)
        ann = np.asarray(tests["annotated"].any("hypothesis").values)
        if not ann.all():
            parts.append(f"<p class='warn'><b>Incomplete annotation:</b> only {int(ann.sum())} of {ann.size} "
                         "configurations are fully annotated; the others are left out of every number in this "
                         "report.</p>")
    rows = [[name, *_ci_cells(risk, var), desc] for var, name, desc in _METRICS]
    parts.append(_table(["metric", "estimate", "95% CI", "meaning"], rows))
    counts = ", ".join(f"{_esc(k.replace('n_', ''))}: {int(risk[k])}" for k in ("n_null", "n_significant", "n_conclusions") if k in risk)
    parts.append(f"<p class='muted'>{counts}. {_esc(risk.attrs.get('method', ''))}; "
                 f"CIs: {_esc(risk.attrs.get('ci_kind', ''))} ({_esc(risk.attrs.get('n_boot', n_boot))} replicates).</p>")

    # hacking
    rates = [[k, _pct(hack.attrs.get(f"{k}_rate", np.nan))] for k in ("fabricate", "hide", "reverse")]
    parts.append("<h2>Hacking</h2><p>Share of hypotheses for which at least one configuration would "
                 "fabricate (human null, LLM significant), hide (human significant, LLM null) or reverse "
                 "(opposite significant sign) the finding:</p>" + _table(["attack", "share of hypotheses"], rates))

    # figures
    figs = [("Error rates with 95% bootstrap CIs", plots.plot_error_bars, {"result": risk}),
            ("Risk versus the human effect size", plots.plot_risk_curve, {"result": errors}),
            ("Risk by model × prompt", plots.plot_risk_heatmap, {"result": errors}),
            ("Specification curve of the most fragile hypothesis", plots.plot_specification_curve, {"result": errors}),
            ("How often some configuration hacks a finding", plots.plot_hacking, {"result": errors})]
    imgs = []
    for caption, fn, kw in figs:
        try:
            uri = _png(lambda ax, fn=fn, kw=kw: fn(kw["result"], ax=ax),
                       figsize=(8, 4.2) if fn is plots.plot_specification_curve else (6.4, 4.2))
        except ValueError as exc:  # e.g. a single prompt: no heatmap
            logger.warning("report: figure %r skipped: %s", caption, exc)
            continue
        imgs.append(f"<figure><img alt='{_esc(caption)}' src='{uri}'><figcaption>{_esc(caption)}</figcaption></figure>")
    parts.append("<h2>Figures</h2><div class='figs'>" + "".join(imgs) + "</div>")

    # by configuration dimension
    parts.append("<h2>Risk by configuration</h2>")
    for dim, r in by.items():
        parts.append(f"<h3>by {_esc(dim)}</h3>" + _by_table(r, dim))

    # fragile hypotheses
    header, rows, left = _most_fragile(errors, hack, n_fragile)
    parts.append(f"<h2>Most fragile hypotheses</h2><p class='muted'>The {len(rows)} hypotheses with the highest "
                 "share of wrong conclusions across configurations; the last columns count the "
                 "configurations that fabricate, hide or reverse each finding.</p>" + _table(header, rows, left))

    if lfdr is not False:
        parts.append(_lfdr_section(errors, lfdr, risk, n_boot, rng, n_fragile))

    if corrected is not None or robust is not None:
        parts.append(_human_section(errors, corrected, robust, n_fragile))

    if prospective is not None:
        parts.append(_prospective_section(prospective, n_fragile))

    if mitigation is not None and len(mitigation):
        cols = [c for c in ("scheme", "budget", "method", "type_i", "type_ii", "type_s", "risk")
                if c in mitigation.columns]
        rows = [[_esc(r[c]) if c in ("scheme", "method") else (_num(r[c]) if isinstance(r[c], float) else r[c])
                 for c in cols] for _, r in mitigation.iterrows()]
        parts.append("<h2>Mitigation with human labels</h2><p class='muted'>Error rates of each estimator "
                     "that combines n human labels with the LLM labels, against the full-human-label "
                     "conclusions (hackrisk.analysis.mitigation.evaluate_mitigation).</p>"
                     + _table(cols, rows, left=3))

    # configuration space
    parts.append("<h2>Configuration space</h2>")
    cfg_rows = []
    for dim in CONFIG_DIMS:
        if dim in errors.coords:
            vals = [str(v) for v in errors[dim].values]
            extra = [c for c in errors.coords if errors[c].dims == (dim,) and c != dim]
            if extra:
                vals = [v + " (" + ", ".join(f"{c}={errors[c].values[i]}" for c in extra) + ")" for i, v in enumerate(vals)]
            cfg_rows.append([dim, len(vals), "; ".join(vals)])
    if "task" in errors.coords:
        tasks, n_per = np.unique(errors["task"].values.astype(str), return_counts=True)
        cfg_rows.append(["task (hypotheses)", len(tasks), "; ".join(f"{t} ({n})" for t, n in zip(tasks, n_per, strict=True))])
    if "kind" in errors.coords:
        kinds, n_k = np.unique(errors["kind"].values.astype(str), return_counts=True)
        cfg_rows.append(["hypothesis kinds", len(kinds), "; ".join(f"{k} ({n})" for k, n in zip(kinds, n_k, strict=True))])
    parts.append(_table(["dimension", "size", "levels"], cfg_rows))
    if cube is not None and "prompt_template" in cube:
        rows = []
        for t in cube["task"].values:
            for p in cube["prompt"].values:
                tpl = str(cube["prompt_template"].sel(task=t, prompt=p).values)
                if tpl:
                    rows.append([str(t), str(p), tpl if len(tpl) < 300 else tpl[:300] + " …"])
        parts.append("<h3>Prompt templates</h3>" + _table(["task", "prompt", "template"], rows, left=3))
    if cube is not None and "label" in cube:
        lab = cube["label"]
        n_items = int((cube["item_id"] != "").sum()) if "item_id" in cube else cube.sizes.get("item", 0)
        parts.append(f"<p class='muted'>Cube: {n_items} items, {int(lab.size):,} label cells "
                     f"({int((lab >= 0).sum()):,} annotated).</p>")

    # provenance
    prov = [[k, v] for k, v in _versions().items()] + [["date", now], ["user", os.environ.get("USER", "")]]
    parts.append("<h2>Provenance</h2>" + _table(["software", "version"], prov, left=2))
    parts.append("<h3>Tests attributes</h3>" + _table(["attribute", "value"], _attrs_rows(tests.attrs), left=2))
    if hypotheses is not None:
        parts.append("<h3>Hypotheses attributes</h3>" + _table(
            ["attribute", "value"], _attrs_rows({k: v for k, v in hypotheses.attrs.items()}), left=2))
    if cube is not None:
        parts.append("<h3>Cube attributes</h3>" + _table(["attribute", "value"], _attrs_rows(cube.attrs), left=2))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    tests: xr.Dataset,
    path: str | os.PathLike,
    *,
    cube: xr.Dataset | None = None,
    hypotheses: xr.Dataset | None = None,
    risk: xr.Dataset | None = None,
    mitigation: Any = None,
    title: str = "hackrisk report",
    n_boot: int = 500,
    n_fragile: int = 15,
    rng: int | np.random.Generator | None = 0,
    corrected: xr.Dataset | Mapping[str, xr.Dataset] | None = None,
    robust: Any = None,
    prospective: Mapping[str, Any] | None = None,
    lfdr: xr.DataArray | bool = True,
) -> Path:
    """Write one self-contained HTML report of a multiverse analysis.

    Parameters
    ----------
    tests : xarray.Dataset
        Output of :func:`hackrisk.analysis.frequentist.test_hypotheses` (with or without the
        ``error`` codes of ``classify_errors``).
    path : str or os.PathLike
        The ``.html`` file to write (parent folders are created).
    cube : xarray.Dataset, optional
        The label cube (prompt templates, sizes and its attributes as provenance).
    hypotheses : xarray.Dataset, optional
        The hypotheses (their attributes, e.g. skipped candidates, go to the provenance).
    risk : xarray.Dataset, optional
        A precomputed :func:`hackrisk.analysis.risk.risk` result; computed with ``n_boot``
        bootstrap replicates when omitted.
    mitigation : pandas.DataFrame, optional
        The trade-off table of :func:`hackrisk.analysis.mitigation.evaluate_mitigation`.
    title : str
        Page title.
    n_boot : int
        Bootstrap replicates of the CIs (headline and per-dimension tables).
    n_fragile : int
        Rows of the "most fragile hypotheses" table.
    rng
        Seed or generator of the bootstraps.
    corrected : xarray.Dataset or dict of them, optional
        Corrected conclusions from the human labels a study has
        (:func:`hackrisk.analysis.mitigation.correct`), one Dataset or ``{method: Dataset}``; adds
        the section "Your conclusions with human labels" (corrected interval per configuration
        beside the LLM-only one, and the verdicts).
    robust : pandas.DataFrame, optional
        :func:`hackrisk.analysis.robust.robust_conclusions` of the main corrected result
        (computed from ``corrected`` when omitted).
    prospective : dict, optional
        ``{"summary": prospective_summary(...), "calibration": calibration_study(...) or None}``
        (:mod:`hackrisk.analysis.prospective`); adds the section "Prospective risk" with the
        reliability diagram of the study's own data when the calibration is given, and otherwise
        says on what data the calibration was checked.
    lfdr : xarray.DataArray or bool
        The section "Is the human effect real?": ``True`` (default) computes the local false
        discovery rate of the human z-scores (:func:`hackrisk.analysis.lfdr.human_lfdr`, Efron's
        empirical null by central matching, or ``nulltype="mle", df=15, extreme=10`` when the tests
        were run with ``conventions="paper"``; it needs at least 50 hypotheses, else the section
        says why it is missing),
        a DataArray on ``hypothesis`` is used as given (e.g. ``human_lfdr(tests, nulltype="mle",
        df=15, extreme=10)``, the authors' settings), ``False`` leaves the section out. It shows
        per hypothesis ``P(effect) = 1 − lfdr`` and the lfdr-weighted risk next to the unweighted one.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    text = render_report(tests, cube=cube, hypotheses=hypotheses, risk=risk, mitigation=mitigation,
                         title=title, n_boot=n_boot, n_fragile=n_fragile, rng=rng, corrected=corrected,
                         robust=robust, prospective=prospective, lfdr=lfdr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    logger.info("hackrisk report written to %s (%d kB)", path, len(text) // 1024)
    return path


# ---------------------------------------------------------------------------------------------
# the suite of tasks
# ---------------------------------------------------------------------------------------------
def _figure_html(caption: str, draw, figsize=(6.4, 4.2)) -> str:
    uri = _png(draw, figsize=figsize)
    return f"<figure><img alt='{_esc(caption)}' src='{uri}'><figcaption>{_esc(caption)}</figcaption></figure>"


def _task_link(task: str, links: Mapping[str, str]) -> str:
    href = links.get(task)
    return f"<a href='{_esc(href)}'>{_esc(task)}</a>" if href else _esc(task)


def render_suite_report(
    summary: Mapping[str, Any],
    *,
    title: str = "hackrisk: the suite of tasks",
    task_reports: Mapping[str, str] | None = None,
    metric: str = "risk_balanced",
    left_out: Mapping[str, str] | None = None,
) -> str:
    """The cross-task report as an HTML string (see :func:`write_suite_report`)."""
    from .analysis import crosstask as C

    missing = [k for k in ("combined", "task_table", "variance") if k not in summary]
    if missing:
        raise ValueError(f"write_suite_report: summary lacks {missing}. Fix: pass the dict of "
                         "hackrisk.analysis.crosstask.suite_summary(results, cubes).")
    links = {str(k): str(v) for k, v in (task_reports or {}).items()}
    combined, table, variance = summary["combined"], summary["task_table"], summary["variance"]
    quality, curve = summary.get("quality"), summary.get("curve")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    tasks = [str(t) for t in table["task"]]
    n_cfg = int(np.prod([combined.sizes[d] for d in CONFIG_DIMS]))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1><p class='muted'>Generated {now} by hackrisk {_esc(_versions()['hackrisk'])}. "
             f"LLM hacking risk (Baumann et al. 2025, arXiv:2509.08825) across {len(tasks)} tasks: "
             f"{combined.sizes['hypothesis']} hypotheses, up to {n_cfg} configurations (model × prompt × "
             f"temperature) per task, at α = {_esc(combined.attrs.get('alpha', 0.05))}"
             + (f"; {len(left_out)} task(s) of the suite left out (<a href='#left-out'>why</a>)" if left_out else "") + ".</p>"]

    # risk per task ------------------------------------------------------------------------------
    name = dict((v, n) for v, n, _ in _METRICS).get(metric, metric)
    fig = _figure_html(f"{name} per task, highest first, with {table.attrs.get('ci', '95%')} bootstrap intervals "
                       "(hypotheses resampled within the task).",
                       lambda ax: C.plot_task_risk(table, metric=metric, ax=ax),
                       figsize=(6.4, 0.4 * len(table) + 1.4))
    rows = []
    for r in table.itertuples():
        row = [int(r.rank), _task_link(str(r.task), links)]
        for var in ("risk_balanced", "type_i", "type_ii", "type_s", "type_m_mean"):
            est, lo, hi = getattr(r, var, np.nan), getattr(r, f"{var}_lower", np.nan), getattr(r, f"{var}_upper", np.nan)
            ci = f" [{_fmt_metric(var, lo)}, {_fmt_metric(var, hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
            row.append(_fmt_metric(var, est) + ci)
        row += [int(r.n_null), int(r.n_significant)]
        rows.append(row)
    parts.append("<section id='task-risk'><h2>Risk per task</h2><p>How often a conclusion drawn from the LLM's "
                 "labels differs from the human one, task by task (highest first). Where two tasks' intervals "
                 "overlap, the data do not tell them apart.</p><div class='figs'>" + fig + "</div>"
                 + _table(["rank", "task", "balanced risk", "Type I", "Type II", "Type S", "Type M",
                           "null hypotheses", "significant hypotheses"], rows, left=2, raw=(1,)) + "</section>")
    if left_out:
        parts.append("<section id='left-out'><h2>Tasks left out</h2><p>These tasks of the suite are in no number "
                     "of this report (for example, no hypothesis could be formed on their items).</p>"
                     + _table(["task", "reason"], [[_task_link(str(t), links), str(why)]
                                                   for t, why in left_out.items()], left=2, raw=(0,))
                     + "</section>")

    # quality ----------------------------------------------------------------------------------
    parts.append("<section id='quality'><h2>Risk against annotation quality</h2>")
    if quality is None or not len(quality):
        parts.append("<p class='muted'>Not shown: annotation quality needs each task's cube (or its "
                     "<code>annotation_quality</code>), which were not given.</p>")
    else:
        figs = "".join(_figure_html(
            f"One point per task × configuration: share of the task's hypotheses concluded wrongly against "
            f"{x.replace('_', ' ')}; dashed, the least-squares line over all points.",
            lambda ax, x=x: C.plot_quality_risk(quality, x=x, ax=ax)) for x in ("accuracy", "macro_f1"))
        rel = quality.attrs.get("relation", {})
        rrows = [[x.replace("_", " "), _num(v["slope"]), f"[{_num(v['slope_lower'])}, {_num(v['slope_upper'])}]",
                  _num(v["within_r"]), _num(v["between_r"]), v["n"], v["n_tasks"]] for x, v in rel.items()]
        parts.append("<p>Does risk fall as the annotations get better? The slope is the change in the share of "
                     "wrong conclusions per unit of quality; its interval resamples whole tasks. The within-task "
                     "correlation compares only the configurations of one task.</p><div class='figs'>" + figs
                     + "</div>" + _table(["quality", "slope", "95% interval (tasks resampled)", "within-task r",
                                          "between-task r", "points", "tasks"], rrows))
        agg = quality.groupby("task", sort=False).agg(
            accuracy=("accuracy", "mean"), macro_f1=("macro_f1", "mean"), risk=("risk_pooled", "mean"),
            best=("risk_pooled", "min"), worst=("risk_pooled", "max"), n=("model", "size"))
        qrows = [[_task_link(str(t), links), _pct(a.accuracy), _num(a.macro_f1), _pct(a.risk), _pct(a.best),
                  _pct(a.worst), int(a.n)] for t, a in agg.iterrows()]
        parts.append("<h3>Per task (means over its configurations)</h3>" + _table(
            ["task", "accuracy", "macro F1", "wrong conclusions", "best configuration", "worst configuration",
             "configurations"], qrows, raw=(0,)))
    parts.append("</section>")

    # effect size --------------------------------------------------------------------------------
    parts.append("<section id='effect-size'><h2>Risk against effect size</h2>")
    if curve is None:
        parts.append("<p class='muted'>Not shown: the Bayesian risk model was not fitted (bayes=False).</p>")
    else:
        curves = curve["curves"]
        fig = _figure_html(f"Posterior probability of a wrong conclusion against the size of the human effect, "
                           f"pooled over tasks (band: {curves.attrs.get('ci_prob', 0.9):.0%} credible interval), "
                           "and each task's curve (its random intercept).",
                           lambda ax: C.plot_task_curves(curves, ax=ax))
        post = curve["idata"].posterior.attrs
        diag = (f"Sampler {_esc(post.get('sampler', '?'))}; divergences {_esc(post.get('diagnostics_divergences', 'n/a'))}, "
                f"largest R-hat {_esc(_num(post.get('diagnostics_r_hat_max', np.nan), 4))}, "
                f"smallest bulk ESS {_esc(_num(post.get('diagnostics_ess_bulk_min', np.nan), 4))}.")
        erows = []
        if "task_effect" in curves:
            for t in curves["task"].values:
                e = curves["task_effect"].sel(task=t)
                erows.append([_task_link(str(t), links), _num(float(e.sel(ci="estimate"))),
                              f"[{_num(float(e.sel(ci='lower')))}, {_num(float(e.sel(ci='upper')))}]"])
        parts.append("<p>The hierarchical risk model (<code>fit_risk_model</code>) with task, model, prompt and "
                     "temperature as random intercepts: how the chance of a wrong conclusion changes with the size of the "
                     "human effect, and how far each task sits above or below the pooled curve.</p>"
                     f"<div class='figs'>{fig}</div><p class='muted'>{diag}</p>"
                     + (_table(["task", "effect (logit)", "credible interval"], erows, raw=(0,)) if erows else ""))
    parts.append("</section>")

    # variance ------------------------------------------------------------------------------------
    fig = _figure_html("Share of the variance of wrong conclusions explained by each factor, entered in order "
                       "(blue) and alone (orange).", lambda ax: C.plot_variance(variance, ax=ax))
    vrows = [[str(t), _pct(float(variance["r2_sequential"].sel(term=t))), _pct(float(variance["r2_alone"].sel(term=t))),
              _pct(float(variance["r2_unique"].sel(term=t))), int(variance["df"].sel(term=t))]
             for t in variance["term"].values]
    parts.append("<section id='variance'><h2>What the conclusions depend on</h2><p>A linear probability model of "
                 "a wrong conclusion on the task, the model, the prompt (within task), the temperature"
                 + (", annotation quality" if "quality" in variance["term"].values else "")
                 + " and the size of the human effect; R² per factor.</p><div class='figs'>" + fig + "</div>"
                 + _table(["factor", "R² in order", "R² alone", "R² unique", "columns"], vrows)
                 + f"<p class='muted'>Total R² {_pct(variance.attrs.get('r2_total', np.nan))} over "
                   f"{_esc(variance.attrs.get('n_obs', '?'))} conclusions.</p></section>")

    # provenance ---------------------------------------------------------------------------------
    filled = combined.attrs.get("filled", [])
    prov = [[k, v] for k, v in _versions().items()] + [["date", now]]
    parts.append("<section id='provenance'><h2>Provenance</h2>" + _table(["software", "version"], prov, left=2)
                 + f"<p class='muted'>{len(filled)} (task, configuration) pairs a task does not have are left out "
                   "of every number (not annotated).</p>"
                 + (_table(["task", "report"], [[_esc(t), f"<a href='{_esc(h)}'>{_esc(h)}</a>"]
                                                 for t, h in links.items()], raw=(0, 1)) if links else "")
                 + "</section>")
    seconds = summary.get("seconds")
    if seconds:
        parts.append("<p class='muted'>Computed in " + ", ".join(f"{_esc(k)} {v:.1f} s" for k, v in seconds.items())
                     + ".</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_suite_report(
    path: str | os.PathLike,
    summary: Mapping[str, Any],
    *,
    title: str = "hackrisk: the suite of tasks",
    task_reports: Mapping[str, str] | None = None,
    metric: str = "risk_balanced",
    left_out: Mapping[str, str] | None = None,
) -> Path:
    """Write the cross-task report of a suite as one self-contained HTML file.

    Parameters
    ----------
    path
        The ``.html`` file to write (parent folders are created).
    summary
        :func:`hackrisk.analysis.crosstask.suite_summary` output. Sections: risk per task (forest
        plot and table), risk against accuracy and macro F1 over task × configuration (needs
        ``summary["quality"]``, else says why it is missing), risk against effect size with each
        task's posterior curve (needs ``summary["curve"]``), the variance decomposition, provenance.
    title
        Page title.
    task_reports
        ``{task: href}``: links to the per-task reports (relative paths work), placed on the task
        names.
    metric
        The rate of the forest plot (the table is ordered as ``summary["task_table"]``).
    left_out
        ``{task: reason}``: tasks of the suite that are not in ``summary`` (the ``left_out`` of
        :func:`hackrisk.suite.analyze_suite`), listed with the reason in a section of their own.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    text = render_suite_report(summary, title=title, task_reports=task_reports, metric=metric, left_out=left_out)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    logger.info("hackrisk suite report written to %s (%d kB)", path, len(text) // 1024)
    return path
