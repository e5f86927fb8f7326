"""Public functions name the type they expect, and empty results are a clear error (issue 17)."""

from __future__ import annotations

import pandas as pd
import pytest

import hackrisk
import hackrisk.annotate.runner
from hackrisk.analysis import frequentist, risk
from hackrisk.hypotheses import generate_hypotheses

WRONG = {"DataFrame": pd.DataFrame({"a": [1]}), "list": [1, 2], "scalar": 3}


@pytest.fixture(scope="module")
def tests_ds():
    cube, _ = hackrisk.simulate_multiverse(n_tasks=1, n_items=60, n_classes=2, rng=1)
    return frequentist.test_hypotheses(cube, generate_hypotheses(cube, rng=0))


@pytest.mark.parametrize("kind", list(WRONG))
@pytest.mark.parametrize("call,expected", [
    (lambda x: hackrisk.save_cube(x, "never-written.zarr"), "expected an xarray.Dataset label cube"),
    (lambda x: hackrisk.open_cube(x), "open_cube: path must be a str or pathlib.Path"),
    (lambda x: hackrisk.write_labels("never.zarr", x), "write_labels: labels must be an xarray.DataArray"),
    (lambda x: hackrisk.to_long(x), "expected an xarray.Dataset label cube"),
    (lambda x: hackrisk.cube.items_table(x), "expected an xarray.Dataset label cube"),
    (lambda x: risk.risk(x), "risk: expected the tests Dataset"),
    (lambda x: risk.hacking(x), "hacking: expected the tests Dataset"),
    (lambda x: hackrisk.annotate.runner.missing_labels(x), "missing_labels: expected a label cube"),
    (lambda x: generate_hypotheses(x), "expected an xarray.Dataset label cube"),
    (lambda x: frequentist.test_hypotheses(x, None), "expected an xarray.Dataset label cube"),
])
def test_wrong_argument_types_name_the_expected_one(call, expected, kind):
    with pytest.raises((TypeError, ValueError), match=expected):
        call(WRONG[kind])


@pytest.mark.parametrize("name", ["risk", "hacking", "hacking_curve", "risk_by_effect_size"])
def test_risk_on_an_empty_result_is_a_clear_error(tests_ds, name):
    empty = tests_ds.isel(hypothesis=[])
    with pytest.raises(ValueError, match=f"{name}: the tests Dataset holds no hypothesis"):
        getattr(risk, name)(empty)  # was: IndexError / a reshape error


def test_specification_curve_with_infinite_log_odds_warns_nothing(tests_ds):
    import warnings

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from hackrisk import plots

    res = risk.classify_errors(tests_ds)
    if "log_or" not in res or "se" not in res:
        pytest.skip("tests without log odds ratios")
    res["log_or"] = res["log_or"].copy(data=np.where(res["log_or"].values > 0, np.inf, res["log_or"].values))
    res["se"] = res["se"].copy(data=np.where(np.isinf(res["log_or"].values), np.inf, res["se"].values))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # was: "invalid value encountered in add" leaked
        ax = plots.plot_specification_curve(res)
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
