"""A verdict per hypothesis: does the corrected conclusion depend on the configuration?

:func:`hackrisk.analysis.mitigation.correct` combines the human labels a study has with the LLM
labels of every configuration (model × prompt × temperature) and gives one corrected, valid
conclusion per (hypothesis, configuration). :func:`robust_conclusions` condenses them into one row
per hypothesis: how the configurations split, whether they agree with the majority and with the
human labels alone, which configuration agrees best with the human labels, and a plain verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import CONFIG_DIMS

__all__ = ["robust_conclusions", "VERDICTS"]

VERDICTS = ("robust", "depends on the configuration", "undecided")
"""The verdict strings (``undecided`` carries a reason after a colon)."""

_WORDS = {1: "higher in A", -1: "lower in A", 0: "no difference"}
_REQUIRED = ("conclusion", "estimate", "se")


def _config_names(ds: xr.Dataset) -> np.ndarray:
    """``model/prompt/temperature`` per configuration, in C order of the configuration dims."""
    vals = [np.asarray(ds[d].values).astype(str) for d in CONFIG_DIMS]
    grids = np.meshgrid(*vals, indexing="ij")
    return np.array(["/".join(parts) for parts in zip(*(g.ravel() for g in grids), strict=True)], dtype=object)


def _flat(da: xr.DataArray) -> np.ndarray:
    """(hypothesis, configuration) array of a (hypothesis, model, prompt, temperature) variable."""
    return np.asarray(da.transpose("hypothesis", *CONFIG_DIMS).values).reshape(da.sizes["hypothesis"], -1)


def _human_conclusion(human: xr.Dataset | None, corrected: xr.Dataset) -> np.ndarray | None:
    """Human-only conclusion per hypothesis of ``corrected`` (float, NaN where undecided), or None."""
    if human is None:
        if str(corrected.attrs.get("method", "")) != "human":
            return None
        human = corrected
    if not isinstance(human, xr.Dataset):
        raise ValueError(f"human must be an xarray.Dataset, got {type(human).__name__}. Fix: pass "
                         "correct(cube, hyps, method='human') or the result of test_hypotheses.")
    if not np.array_equal(np.asarray(human["hypothesis"].values), np.asarray(corrected["hypothesis"].values)):
        raise ValueError("human and corrected cover different hypotheses. Fix: compute both from the same "
                         "hypotheses Dataset.")
    if "human_conclusion" in human:  # test_hypotheses: the Wald test on the labelled items
        out = np.asarray(human["human_conclusion"].values).astype(np.float64)
        if "human_p_value" in human:
            out[~np.isfinite(np.asarray(human["human_p_value"].values, dtype=np.float64))] = np.nan
        return out
    if str(human.attrs.get("method", "")) != "human" or "conclusion" not in human:
        raise ValueError("human must come from correct(..., method='human') (attrs method='human') or from "
                         "test_hypotheses (variable human_conclusion).")
    c = _flat(human["conclusion"]).astype(np.float64)
    ok = _flat(human["decided"]).astype(bool) if "decided" in human else np.ones(c.shape, dtype=bool)
    c[~ok] = np.nan
    # the human-only conclusion does not depend on the configuration: take any decided one
    first = np.where(ok.any(axis=1), np.nanmax(np.where(ok, c, -np.inf), axis=1), np.nan)
    lo = np.where(ok.any(axis=1), np.nanmin(np.where(ok, c, np.inf), axis=1), np.nan)
    if np.any(np.isfinite(first) & (first != lo)):
        raise ValueError("human: the method='human' conclusions differ between configurations. Fix: pass the "
                         "unmodified result of correct(..., method='human').")
    return first


def _agreement(cube: xr.Dataset, hypotheses: xr.Dataset, corrected: xr.Dataset) -> np.ndarray:
    """Share of labelled items in either group whose class indicator the configuration gets right.

    (hypothesis, configuration) float; NaN where a configuration is not annotated on those items.
    """
    from ..hypotheses import align_group

    hyp_ids = np.asarray(hypotheses["hypothesis"].values)
    pos = pd.Index(hyp_ids).get_indexer(np.asarray(corrected["hypothesis"].values))
    if (pos < 0).any():
        raise ValueError("corrected has hypotheses that are not in `hypotheses`. Fix: pass the hypotheses "
                         "Dataset the correction was computed from.")
    group = align_group(cube, hypotheses)[pos]
    tasks = [str(t) for t in cube["task"].values]
    h_task = np.asarray(corrected["task"].values).astype(str)
    cls = np.asarray(corrected["class_code"].values).astype(np.int64)
    lab = cube["label"]
    if "sample" in lab.dims:
        lab = lab.isel(sample=0)
    lab = lab.sel({d: corrected[d].values for d in CONFIG_DIMS}).transpose("task", *CONFIG_DIMS, "item")
    labels = np.asarray(lab.values)
    labels = labels.reshape(labels.shape[0], -1, labels.shape[-1])
    truth = np.asarray(cube["truth"].values)
    out = np.full((group.shape[0], labels.shape[1]), np.nan)
    for t_name in dict.fromkeys(h_task):
        t = tasks.index(t_name)
        hs = np.flatnonzero(h_task == t_name)
        tr = truth[t]
        for c in np.unique(cls[hs]):
            hc = hs[cls[hs] == c]
            member = ((group[hc] >= 0) & (tr >= 0)[None, :]).astype(np.float64)  # (h, item)
            ok = (labels[t] != -1).astype(np.float64)  # not annotated cells do not count
            right = ((labels[t] == c) == (tr == c)[None, :]).astype(np.float64) * ok
            n_ok = ok @ member.T  # (cfg, h)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = (right @ member.T) / n_ok
            share[n_ok < member.sum(1)[None, :]] = np.nan  # some labelled item not annotated
            out[hc] = share.T
    return out


def robust_conclusions(
    corrected: xr.Dataset,
    *,
    human: xr.Dataset | None = None,
    cube: xr.Dataset | None = None,
    hypotheses: xr.Dataset | None = None,
    threshold: float = 1.0,
) -> pd.DataFrame:
    """One row per hypothesis: the corrected conclusions across configurations and a verdict.

    Parameters
    ----------
    corrected
        Output of :func:`hackrisk.analysis.mitigation.correct`: ``conclusion`` (−1/0/+1),
        ``estimate``, ``se`` (and ``ci_lower``, ``ci_upper``, ``decided``, ``annotated``,
        ``n_labelled_a``, ``n_labelled_b`` when present) over (hypothesis, model, prompt,
        temperature).
    human
        The conclusion from the human labels alone: ``correct(cube, hyps, method="human")`` or the
        result of :func:`hackrisk.analysis.frequentist.test_hypotheses` (its ``human_conclusion``).
        Default: ``corrected`` itself when its method is ``"human"``, else none (the ``human_*``
        columns are then NaN).
    cube, hypotheses
        The label cube and hypotheses of the correction. When both are given, the configuration
        that agrees best with the human labels is the one whose labels match the human labels
        most often on the labelled items of the hypothesis' groups (for its class: in the class
        or not). Otherwise it is the configuration with the smallest corrected standard error,
        i.e. whose labels carry the most information about the human labels
        (``best_by`` says which rule was used).
    threshold
        Share of the decided configurations that must reach the majority conclusion for the
        verdict ``"robust"`` (default 1.0: every configuration).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``hypothesis``, with the hypothesis coordinates of ``corrected`` (``task``,
        ``grouping``, ``class_name``, ...) and:

        * ``method``: the correction method;
        * ``n_configurations``: configurations with a decided corrected conclusion (annotated, and
          both groups with at least 2 labelled items);
        * ``n_higher``, ``n_lower``, ``n_null``: how many of them conclude "higher in A"
          (+1), "lower in A" (−1), "no difference" (0);
        * ``majority``: the conclusion most configurations reach (ties go to 0, "no
          difference", then to the sign of the larger ``|sum of estimates|``), ``majority_text`` in
          words;
        * ``share_majority``: share of the decided configurations whose conclusion equals the
          majority;
        * ``human_conclusion``: the human-only conclusion (NaN when not given or undecided) and
          ``share_human``: share of the decided configurations whose corrected conclusion equals
          it;
        * ``best_configuration`` (``model/prompt/temperature``), ``best_agreement`` (its share
          of matching labels, or its SE under ``best_by = "se"``), ``best_by``;
        * ``estimate_min``, ``estimate_max``: range of the corrected estimates; ``ci_lower_min``,
          ``ci_upper_max``: the widest span of the corrected intervals (when available);
        * ``verdict``: ``"robust"`` (``share_majority >= threshold``), ``"depends on the
          configuration"``, or ``"undecided: <reason>"`` (``too few labelled items in group A``
          / ``B`` / ``A and B`` — fewer than 2 —, or ``no annotated configuration``).

    Raises
    ------
    ValueError
        ``corrected`` (or ``human``) is not a correction result, or ``threshold`` is outside
        (0.5, 1].
    """
    if not isinstance(corrected, xr.Dataset) or any(v not in corrected for v in _REQUIRED) \
            or corrected["conclusion"].dims != ("hypothesis", *CONFIG_DIMS):
        raise ValueError("corrected must be the Dataset of hackrisk.analysis.mitigation.correct (conclusion, "
                         "estimate, se on (hypothesis, model, prompt, temperature)). Fix: call correct(cube, "
                         "hypotheses) first.")
    if not 0.5 < threshold <= 1:
        raise ValueError(f"threshold={threshold!r} must lie in (0.5, 1]: the share of configurations that must "
                         "agree for a 'robust' verdict.")
    n_h = corrected.sizes["hypothesis"]
    concl = _flat(corrected["conclusion"]).astype(np.int64)
    est = _flat(corrected["estimate"]).astype(np.float64)
    se = _flat(corrected["se"]).astype(np.float64)
    decided = _flat(corrected["decided"]).astype(bool) if "decided" in corrected else np.isfinite(se)
    if "annotated" in corrected:
        decided &= _flat(corrected["annotated"]).astype(bool)
    decided &= np.isfinite(est)
    n_dec = decided.sum(1)
    counts = {k: (decided & (concl == k)).sum(1) for k in (1, -1, 0)}
    tot = np.where(decided, est, 0.0).sum(1)
    # majority: most configurations; ties -> 0, then the sign of the summed estimates
    best = np.stack([counts[0], counts[1], counts[-1]], axis=1)  # order of preference on ties: 0, +1, -1
    top = best.max(1, keepdims=True)
    tied = best == top
    majority = np.where(tied[:, 0], 0, np.where(tied[:, 1] & tied[:, 2], np.sign(tot), np.where(tied[:, 1], 1, -1)))
    majority = majority.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_major = np.where(n_dec > 0, top[:, 0] / n_dec, np.nan)
    hum = _human_conclusion(human, corrected)
    if hum is None:
        hum = np.full(n_h, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_human = np.where((n_dec > 0) & np.isfinite(hum),
                               (decided & (concl == np.nan_to_num(hum)[:, None])).sum(1) / n_dec, np.nan)

    names = _config_names(corrected)
    if cube is not None and hypotheses is not None:
        score = _agreement(cube, hypotheses, corrected)
        score = np.where(decided, score, np.nan)
        best_by = "agreement"
        pick = np.where(np.isfinite(score).any(1), np.nanargmax(np.where(np.isfinite(score), score, -np.inf), 1), -1)
    else:
        score = np.where(decided, se, np.nan)
        best_by = "se"
        pick = np.where(np.isfinite(score).any(1), np.nanargmin(np.where(np.isfinite(score), score, np.inf), 1), -1)
    rows = np.arange(n_h)
    best_cfg = np.where(pick >= 0, names[np.maximum(pick, 0)], "")
    best_val = np.where(pick >= 0, score[rows, np.maximum(pick, 0)], np.nan)

    # verdicts
    n_lab = {}
    for side in ("a", "b"):
        var = f"n_labelled_{side}"
        n_lab[side] = np.nanmin(_flat(corrected[var]).astype(np.float64), axis=1) if var in corrected else None
    verdict = np.empty(n_h, dtype=object)
    for h in range(n_h):
        few = [s.upper() for s in ("a", "b") if n_lab[s] is not None and n_lab[s][h] < 2]
        if few:
            verdict[h] = f"undecided: too few labelled items in group {' and '.join(few)}"
        elif n_dec[h] == 0:
            verdict[h] = "undecided: no annotated configuration"
        elif share_major[h] >= threshold - 1e-12:
            verdict[h] = "robust"
        else:
            verdict[h] = "depends on the configuration"
    majority_out = np.where(n_dec > 0, majority, 0)

    index = pd.Index(np.asarray(corrected["hypothesis"].values), name="hypothesis")
    df = pd.DataFrame(index=index)
    for name, c in corrected.coords.items():
        if c.dims == ("hypothesis",) and name != "hypothesis":
            df[name] = np.asarray(c.values)
    if hypotheses is not None:  # coordinates the correction did not carry (e.g. class_name, kind)
        for name, c in hypotheses.coords.items():
            if c.dims == ("hypothesis",) and name != "hypothesis" and name not in df.columns:
                df[name] = pd.Series(np.asarray(c.values), index=np.asarray(hypotheses["hypothesis"].values)
                                     ).reindex(index).to_numpy()
    data: dict[str, Any] = {
        "method": str(corrected.attrs.get("method", "")),
        "n_configurations": n_dec,
        "n_higher": counts[1], "n_lower": counts[-1], "n_null": counts[0],
        "majority": np.where(n_dec > 0, majority_out, np.nan),
        "majority_text": [(_WORDS[int(m)] if n > 0 else "") for m, n in zip(majority_out, n_dec, strict=True)],
        "share_majority": share_major,
        "human_conclusion": hum,
        "share_human": share_human,
        "best_configuration": best_cfg,
        "best_agreement": best_val,
        "best_by": best_by,
        "estimate_min": np.where(n_dec > 0, np.nanmin(np.where(decided, est, np.inf), 1), np.nan),
        "estimate_max": np.where(n_dec > 0, np.nanmax(np.where(decided, est, -np.inf), 1), np.nan),
    }
    if "ci_lower" in corrected and "ci_upper" in corrected:
        lo, hi = _flat(corrected["ci_lower"]).astype(float), _flat(corrected["ci_upper"]).astype(float)
        data["ci_lower_min"] = np.where(n_dec > 0, np.nanmin(np.where(decided, lo, np.inf), 1), np.nan)
        data["ci_upper_max"] = np.where(n_dec > 0, np.nanmax(np.where(decided, hi, -np.inf), 1), np.nan)
    data["verdict"] = verdict
    for k, v in data.items():
        df[k] = v
    df.attrs.update({"method": str(corrected.attrs.get("method", "")), "threshold": float(threshold),
                     "alpha": corrected.attrs.get("alpha"), "best_by": best_by})
    return df
