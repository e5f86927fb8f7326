"""hackrisk.plots: each figure shows the numbers of the result it is given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import hackrisk as hr  # noqa: E402
from hackrisk import plots  # noqa: E402
from hackrisk.analysis.frequentist import test_hypotheses as run_tests  # noqa: E402
from hackrisk.analysis.risk import classify_errors, hacking, risk, risk_by_effect_size  # noqa: E402
from hackrisk.hypotheses import generate_hypotheses  # noqa: E402


@pytest.fixture(scope="module")
def errors():
    cube, _ = hr.simulate_multiverse(n_tasks=2, n_items=500, models=4, n_prompts=3, n_covariates=6,
                                     bias_sd=0.08, rng=11)
    return classify_errors(run_tests(cube, generate_hypotheses(cube)))


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _bar_heights(ax):
    return [p.get_height() for p in ax.patches]


def test_error_bars_from_tests_match_risk(errors):
    ax = plots.plot_error_bars(errors)
    r = risk(errors, n_boot=0)
    want = [float(r[v].sel(ci="estimate")) for v in ("type_i", "type_ii", "type_s", "risk_pooled")]
    np.testing.assert_allclose(_bar_heights(ax), want)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Type I", "Type II", "Type S", "risk"]
    # Okabe-Ito colours, one per error type
    colours = {matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches}
    assert colours == {c.lower() for c in ("#E69F00", "#56B4E9", "#D55E00", "#0072B2")}


def test_error_bars_from_risk_draw_the_cis(errors):
    r = risk(errors, n_boot=100, rng=1)
    fig, ax = plt.subplots()
    out = plots.plot_error_bars(r, ax=ax)
    assert out is ax
    np.testing.assert_allclose(_bar_heights(ax)[0], float(r["type_i"].sel(ci="estimate")))
    segs = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert segs, "no CI whiskers"
    ys = np.concatenate([np.asarray(s.get_segments()).reshape(-1, 2)[:, 1] for s in segs])
    assert np.isclose(ys, float(r["type_ii"].sel(ci="upper"))).any()
    with pytest.raises(ValueError, match="extra dimensions"):
        plots.plot_error_bars(risk(errors, by="model", n_boot=0))


def test_risk_curve(errors):
    ax = plots.plot_risk_curve(errors, bins=4)
    pts = ax.collections[0].get_offsets()
    assert len(pts) == int(np.isfinite(errors["human_estimate"]).sum())
    np.testing.assert_allclose(np.sort(pts[:, 0]), np.sort(np.abs(errors["human_estimate"].values)))
    line = ax.get_lines()[0]
    rb = risk_by_effect_size(errors, bins=4, n_boot=0)
    np.testing.assert_allclose(line.get_ydata(), rb["risk_pooled"].sel(ci="estimate").values)
    # and from the risk_by_effect_size result itself, with its CI band
    rb = risk_by_effect_size(errors, bins=4, n_boot=50)
    ax2 = plots.plot_risk_curve(rb)
    np.testing.assert_allclose(ax2.get_lines()[0].get_xdata(), rb["bin_mid"].values)


def test_specification_curve(errors):
    h = 3
    ax = plots.plot_specification_curve(errors, hypothesis=h)
    one = errors.sel(hypothesis=h)
    e = one["error"].values.ravel()
    n_pts = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets()) and c.get_offsets().shape[1] == 2 and not isinstance(c, matplotlib.collections.LineCollection))
    assert n_pts == int((e >= 0).sum())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "human labels" in labels
    wrong = {f"{n} (wrong)" for c, n in ((1, "Type I"), (2, "Type II"), (3, "Type S")) if (e == c).any()}
    assert wrong <= set(labels)
    human = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"][0]
    assert np.isclose(human.get_ydata()[0], float(one["human_log_or"]))
    # default: the most fragile hypothesis
    share = (errors["error"] > 0).sum(("model", "prompt", "temperature")) / (errors["error"] >= 0).sum(("model", "prompt", "temperature"))
    ax = plots.plot_specification_curve(errors)
    assert str(errors["grouping"].values[int(share.argmax("hypothesis"))]) in ax.get_title()
    with pytest.raises(ValueError, match="hypothesis=10000"):
        plots.plot_specification_curve(errors, hypothesis=10000)


def test_heatmap(errors):
    ax = plots.plot_risk_heatmap(errors)
    img = ax.images[0].get_array()
    want = risk(errors, by=("model", "prompt"), n_boot=0)["risk_pooled"].sel(ci="estimate").transpose("model", "prompt").values
    np.testing.assert_allclose(np.asarray(img), want)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(errors["model"].values)
    assert ax.images[0].get_cmap().name == "cividis"
    r = risk(errors, by=("model", "temperature"), n_boot=0)
    ax = plots.plot_risk_heatmap(r, cols="temperature")
    assert ax.images[0].get_array().shape == (4, 3)
    # level order follows the result, whatever order risk() returns them in
    shuffled = errors.assign_coords(model=["zz", "aa", "mm", "bb"])
    ax = plots.plot_risk_heatmap(shuffled)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zz", "aa", "mm", "bb"]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), want)
    with pytest.raises(ValueError, match="by=\\('model', 'prompt'\\)"):
        plots.plot_risk_heatmap(risk(errors, by="model", n_boot=0))


def test_hacking(errors):
    ax = plots.plot_hacking(errors)
    rates = hacking(errors).attrs
    np.testing.assert_allclose([p.get_width() for p in ax.patches],
                               [rates["fabricate_rate"], rates["hide_rate"], rates["reverse_rate"]])
    e = errors["error"].sel(hypothesis=5).values
    ax = plots.plot_hacking(errors, hypothesis=5)
    assert [p.get_width() for p in ax.patches] == [int((e == k).sum()) for k in (1, 2, 3)]


def test_error_bars_ci_not_containing_estimate():
    import xarray as xr

    ci = xr.DataArray(["estimate", "lower", "upper"], dims="ci")
    r = xr.Dataset({v: ("ci", [0.2, 0.25, 0.4]) for v in ("type_i", "type_ii", "type_s", "risk_pooled")},
                   coords={"ci": ci})
    ax = plots.plot_error_bars(r)  # a percentile interval above its estimate must still draw
    np.testing.assert_allclose(_bar_heights(ax), [0.2] * 4)


def test_bad_input():
    with pytest.raises(ValueError, match="test_hypotheses"):
        plots.plot_error_bars(hr.simulate_multiverse(n_items=50, rng=0)[0])
    with pytest.raises(ValueError, match="xarray.Dataset"):
        plots.plot_hacking([1, 2])


def test_figures_render(errors, tmp_path):
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), layout="constrained")
    plots.plot_error_bars(risk(errors, n_boot=50), ax=axes[0, 0])
    plots.plot_risk_curve(errors, ax=axes[0, 1])
    plots.plot_risk_heatmap(errors, ax=axes[0, 2])
    plots.plot_specification_curve(errors, ax=axes[1, 0])
    plots.plot_hacking(errors, ax=axes[1, 1])
    plots.plot_hacking(errors, hypothesis=0, ax=axes[1, 2])
    out = tmp_path / "plots.png"
    fig.savefig(out, dpi=70)
    img = plt.imread(out)
    assert img.shape[1] > 900 and img[..., :3].std() > 0.05
