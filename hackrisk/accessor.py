"""The ``.hackrisk`` accessor on ``xarray.Dataset``: every method forwards to a plain function.

Each method is one line that calls the function named in its docstring; the functions are the
source of truth (and are imported lazily, so the accessor costs nothing at import).
"""

from __future__ import annotations

import xarray as xr


@xr.register_dataset_accessor("hackrisk")
class HackriskAccessor:
    """``ds.hackrisk.<method>(...)`` forwards to ``hackrisk.<module>.<method>(ds, ...)``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def validate(self, **kwargs):
        """:func:`hackrisk.cube.validate_cube`."""
        from .cube import validate_cube

        return validate_cube(self._ds, **kwargs)

    def to_long(self, **kwargs):
        """:func:`hackrisk.cube.to_long`."""
        from .cube import to_long

        return to_long(self._ds, **kwargs)

    def items(self, **kwargs):
        """:func:`hackrisk.cube.items_table`."""
        from .cube import items_table

        return items_table(self._ds, **kwargs)

    def save(self, path, **kwargs):
        """:func:`hackrisk.io.save_cube`."""
        from .io import save_cube

        return save_cube(self._ds, path, **kwargs)

    def hypotheses(self, **kwargs):
        """:func:`hackrisk.hypotheses.generate_hypotheses`."""
        from .hypotheses import generate_hypotheses

        return generate_hypotheses(self._ds, **kwargs)

    def add_human_labels(self, table, **kwargs):
        """:func:`hackrisk.human.add_human_labels`."""
        from .human import add_human_labels

        return add_human_labels(self._ds, table, **kwargs)

    def explore(self, **kwargs):
        """:func:`hackrisk.widgets.explore`."""
        from .widgets import explore

        return explore(self._ds, **kwargs)

    def report(self, path, **kwargs):
        """:func:`hackrisk.report.write_report`."""
        from .report import write_report

        return write_report(self._ds, path, **kwargs)

    def test_hypotheses(self, hypotheses, **kwargs):
        """:func:`hackrisk.analysis.frequentist.test_hypotheses` (on a cube)."""
        from .analysis.frequentist import test_hypotheses

        return test_hypotheses(self._ds, hypotheses, **kwargs)

    def regress(self, hypotheses, covariates=(), **kwargs):
        """:func:`hackrisk.analysis.frequentist.regress` (on a cube)."""
        from .analysis.frequentist import regress

        return regress(self._ds, hypotheses, covariates, **kwargs)

    def classify_errors(self):
        """:func:`hackrisk.analysis.risk.classify_errors` (on a tests Dataset)."""
        from .analysis.risk import classify_errors

        return classify_errors(self._ds)

    def risk(self, **kwargs):
        """:func:`hackrisk.analysis.risk.risk` (on a tests Dataset)."""
        from .analysis.risk import risk

        return risk(self._ds, **kwargs)

    def hacking(self):
        """:func:`hackrisk.analysis.risk.hacking` (on a tests Dataset)."""
        from .analysis.risk import hacking

        return hacking(self._ds)

    def annotation_quality(self):
        """:func:`hackrisk.analysis.risk.annotation_quality` (on a cube)."""
        from .analysis.risk import annotation_quality

        return annotation_quality(self._ds)

    def draw_human_sample(self, hypotheses, **kwargs):
        """:func:`hackrisk.analysis.mitigation.draw_human_sample` (on a cube)."""
        from .analysis.mitigation import draw_human_sample

        return draw_human_sample(self._ds, hypotheses, **kwargs)

    def mitigate(self, hypotheses, design, **kwargs):
        """:func:`hackrisk.analysis.mitigation.mitigate` (on a cube)."""
        from .analysis.mitigation import mitigate

        return mitigate(self._ds, hypotheses, design, **kwargs)

    def evaluate_mitigation(self, hypotheses, **kwargs):
        """:func:`hackrisk.analysis.mitigation.evaluate_mitigation` (on a cube)."""
        from .analysis.mitigation import evaluate_mitigation

        return evaluate_mitigation(self._ds, hypotheses, **kwargs)

    def analyze_chunked(self, hypotheses=None, **kwargs):
        """:func:`hackrisk.scale.analyze_chunked` (on a lazy, dask-backed cube)."""
        from .scale import analyze_chunked

        return analyze_chunked(self._ds, hypotheses, **kwargs)

    def compare_human_llm(self, ratings=None, **kwargs):
        """:func:`hackrisk.analysis.agreement.compare_human_llm` (on a cube)."""
        from .analysis.agreement import compare_human_llm

        return compare_human_llm(self._ds, ratings, **kwargs)

    def prospective_risk(self, hypotheses, **kwargs):
        """:func:`hackrisk.analysis.bayesian.prospective_risk` (on a cube)."""
        from .analysis.bayesian import prospective_risk

        return prospective_risk(self._ds, hypotheses, **kwargs)
