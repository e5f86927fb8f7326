"""Explorer widget: state logic (parity with hackrisk.analysis.risk), speed, widget, front-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import hackrisk as hr
from hackrisk import widgets as W
from hackrisk.analysis.frequentist import test_hypotheses as run_tests
from hackrisk.analysis.risk import classify_errors, risk
from hackrisk.hypotheses import generate_hypotheses

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def pipeline():
    cube, _ = hr.simulate_multiverse(n_tasks=2, n_items=500, models=5, n_prompts=3,
                                     n_covariates=6, bias_sd=0.08, rng=7)
    hyps = generate_hypotheses(cube)
    tests = run_tests(cube, hyps)
    tests01 = run_tests(cube, hyps, alpha=0.01)
    return cube, hyps, classify_errors(tests), classify_errors(tests01)


@pytest.fixture(scope="module")
def paper_scale():
    return W._fake_results(n_hypotheses=2400, models=18, prompts=6, temperatures=(0.0, 0.5, 1.0), rng=1)


def _risk_of(errors, task, models=None, prompts=None, temperatures=None, by=None):
    sub = errors.where(errors["task"] == task, drop=True) if False else errors.isel(
        hypothesis=np.flatnonzero(errors["task"].values == task))
    sel = {}
    if models is not None:
        sel["model"] = list(models)
    if prompts is not None:
        sel["prompt"] = list(prompts)
    if temperatures is not None:
        sel["temperature"] = list(temperatures)
    return risk(sub.sel(sel), by=by, n_boot=0)


def _close(a, b):
    if a is None:
        return not np.isfinite(b)
    return np.isclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("selection", [
    {},
    {"models": ["model0", "model3"]},
    {"prompts": ["p1"], "temperatures": [0.5, 1.0]},
    {"task": "task1", "models": ["model4"]},
])
def test_summary_matches_risk(pipeline, selection):
    _, _, errors, _ = pipeline
    prep = W.prepare(errors)
    state = W.view_state(prep, **selection)
    task = selection.get("task", "task0")
    r = _risk_of(errors, task, selection.get("models"), selection.get("prompts"), selection.get("temperatures"))
    s = state["summary"]
    for mine, theirs in [("type_i", "type_i"), ("type_ii", "type_ii"), ("type_s", "type_s"), ("risk", "risk_pooled")]:
        assert _close(s[mine], float(r[theirs].sel(ci="estimate"))), (mine, s[mine], r[theirs].values)
    assert s["n_null"] == int(r["n_null"]) and s["n_significant"] == int(r["n_significant"])
    assert s["n_cells"] == int(r["n_conclusions"])


def test_alpha_change_matches_tests_run_at_that_alpha(pipeline):
    _, _, errors, errors01 = pipeline
    prep = W.prepare(errors)
    for task in ("task0", "task1"):
        state = W.view_state(prep, task=task, alpha=0.01)
        r = _risk_of(errors01, task)
        for mine, theirs in [("type_i", "type_i"), ("type_ii", "type_ii"), ("risk", "risk_pooled")]:
            assert _close(state["summary"][mine], float(r[theirs].sel(ci="estimate")))
    # and the codes themselves, cell by cell
    hyp = np.flatnonzero(errors["task"].values == "task0")
    sel = np.ix_(hyp, *(np.arange(errors.sizes[d]) for d in ("model", "prompt", "temperature")))
    llm = W._conclusions_at(prep["p"][sel], prep["sign"][sel], prep["conclusion"][sel], prep["zero"][sel], 0.01)
    np.testing.assert_array_equal(llm, errors01["conclusion"].values[sel])


def test_heatmap_matches_risk_by_model_prompt(pipeline):
    _, _, errors, _ = pipeline
    state = W.decode(W.view_state(W.prepare(errors), task="task0", temperatures=[0.0, 1.0]))
    r = _risk_of(errors, "task0", temperatures=[0.0, 1.0], by=("model", "prompt"))
    want = r["risk_pooled"].sel(ci="estimate").transpose("model", "prompt").values
    got = state["heatmap"]["risk"].reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_points_and_curve(pipeline):
    _, _, errors, _ = pipeline
    prep = W.prepare(errors)
    st = W.decode(W.view_state(prep, task="task1", models=["model1", "model2"]))
    hyp = np.flatnonzero(errors["task"].values == "task1")
    np.testing.assert_array_equal(st["points"]["hypothesis"], hyp)
    sub = errors["error"].isel(hypothesis=hyp).sel(model=["model1", "model2"]).values.reshape(len(hyp), -1)
    want = (sub > 0).sum(1) / (sub >= 0).sum(1)
    np.testing.assert_allclose(st["points"]["risk"], want, rtol=1e-6)
    np.testing.assert_allclose(st["points"]["effect"], errors["human_estimate"].values[hyp], rtol=1e-6)
    assert st["curve"] and sum(c["n"] for c in st["curve"]) == len(hyp)
    xs = [c["x"] for c in st["curve"]]
    assert xs == sorted(xs)


def test_spec_curve_and_hack_list(pipeline):
    _, _, errors, _ = pipeline
    prep = W.prepare(errors)
    e = errors["error"].values.reshape(errors.sizes["hypothesis"], -1)
    h = int(np.argmax((e > 0).sum(1)))  # the most hackable hypothesis
    task = str(errors["task"].values[h])
    st = W.view_state(prep, task=task, hypothesis=h)
    assert st["hypothesis"] == h
    d = W.decode(st)
    sp = d["spec"]
    assert sp["n"] == int((e[h] >= 0).sum())
    assert np.all(np.diff(sp["estimate"][np.isfinite(sp["estimate"])]) >= 0)
    np.testing.assert_array_less(sp["lower"][np.isfinite(sp["lower"])], sp["upper"][np.isfinite(sp["lower"])] + 1e-9)
    # the error codes line up with the configurations they name
    one = errors.sel(hypothesis=h)
    for k in range(sp["n"]):
        cfg = dict(model=prep["models"][sp["model"][k]], prompt=prep["prompts"][sp["prompt"][k]],
                   temperature=prep["temperatures"][sp["temperature"][k]])
        assert int(one["error"].sel(cfg)) == sp["error"][k]
        assert np.isclose(float(one["log_or"].sel(cfg)), sp["estimate"][k], rtol=1e-5, equal_nan=True)
    assert sp["human"] == pytest.approx(float(one["human_log_or"]), rel=1e-5)
    counts = st["hack_counts"]
    assert counts == {"fabricate": int((e[h] == 1).sum()), "hide": int((e[h] == 2).sum()),
                      "reverse": int((e[h] == 3).sum())}
    assert len(st["hack"]) == min(sum(counts.values()), W._MAX_HACK_ROWS)
    kinds = {r["kind"] for r in st["hack"]}
    if one["human_conclusion"] == 0:
        assert kinds <= {"fabricate"}
    else:
        assert kinds <= {"hide", "reverse"}
    for r in st["hack"]:
        assert int(one["error"].sel(model=r["model"], prompt=r["prompt"], temperature=r["temperature"])) > 0


def test_default_hypothesis_and_bad_input(pipeline):
    _, _, errors, _ = pipeline
    prep = W.prepare(errors)
    st = W.view_state(prep, task="task1")
    assert errors["task"].values[st["hypothesis"]] == "task1"
    with pytest.raises(ValueError, match="task='nope'"):
        W.view_state(prep, task="nope")
    with pytest.raises(ValueError, match="models='m9'"):
        W.view_state(prep, models=["m9"])
    with pytest.raises(ValueError, match="alpha"):
        W.view_state(prep, alpha=1.5)
    empty = W.view_state(prep, models=[])
    assert empty["summary"]["n_cells"] == 0 and empty["summary"]["risk"] is None and empty["spec"]["n"] == 0
    with pytest.raises(ValueError, match="test_hypotheses"):
        W.prepare(errors.drop_vars("p_value"))


def test_prepare_classifies_when_error_missing(pipeline):
    _, _, errors, _ = pipeline
    a = W.view_state(W.prepare(errors.drop_vars(["error", "type_m"])))
    b = W.view_state(W.prepare(errors))
    assert a["summary"] == b["summary"]


def test_paper_scale_selection_under_300ms(paper_scale):
    w = W.explore(paper_scale)
    assert w.view["summary"]["n_cells"] > 0
    changes = [("models", w.models[:9]), ("prompts", w.prompts[:3]), ("temperatures", [0.0]),
               ("alpha", 0.01), ("task", "task1"), ("models", w.models[3:])]
    import json

    from ipywidgets.widgets.widget import _remove_buffers

    worst = 0.0
    for name, value in changes:
        before = w.view
        t0 = time.perf_counter()
        setattr(w, name, value)
        # what the comm would send: the view split into JSON and binary buffers
        state, _, buffers = _remove_buffers(w.get_state("view"))
        msg = json.dumps(state)
        worst = max(worst, time.perf_counter() - t0)
        assert w.view is not before
    assert worst < 0.3, f"slowest selection change (recompute + serialise) took {worst * 1000:.0f} ms"
    # compact transport: binary buffers for arrays, small JSON for the rest
    assert len(msg) < 60_000
    assert sum(len(b) for b in buffers) < 200_000


def test_explorer_widget(pipeline):
    _, _, errors, _ = pipeline
    w = W.explore(errors, task="task1", models=["model0", "model1"])
    assert isinstance(w, W.Explorer)
    assert w.task == "task1" and w.models == ["model0", "model1"]
    v1 = w.view
    assert errors["task"].values[w.hypothesis] == "task1"
    w.alpha = 0.01
    assert w.view is not v1 and w.view["alpha"] == 0.01
    risk_before = w.view["summary"]["risk"]
    w.models = list(w.options["models"])
    assert w.view["n_configurations"] == len(w.options["models"]) * len(w.options["prompts"]) * 3
    assert w.view["summary"]["risk"] != risk_before or True
    # switching task resets the chosen hypothesis to one of the new task
    w.task = "task0"
    assert errors["task"].values[w.hypothesis] == "task0"
    # a bad selection from the front-end is reported, not raised
    w.models = ["nope"]
    assert "nope" in w.error
    w.models = ["model0"]
    assert w.error == ""
    assert "hackrisk Explorer" in repr(w)
    bundle = w._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    import base64

    png = base64.b64decode(data["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_static_fallback_png(pipeline, tmp_path):
    _, _, errors, _ = pipeline
    w = W.explore(errors)
    out = tmp_path / "explorer_fallback.png"
    out.write_bytes(w.figure_png())
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[0] > 400 and img.shape[1] > 800
    assert img[..., :3].std() > 0.05  # not blank


def test_frontend_files_found_and_shipped():
    d = W.frontend_dir()
    assert d == ROOT / "widgets" or d.name == "_frontend"
    js = (d / "explorer.js").read_text()
    assert "export default" in js and "render" in js
    assert "import " not in js.split("export const COLORS")[0]  # no imports: one self-contained module
    assert (d / "explorer.css").is_file()
    assert W.Explorer._esm  # anywidget loaded the module text


def test_import_hackrisk_stays_light():
    code = ("import sys, hackrisk, hackrisk.widgets, hackrisk.plots, hackrisk.report, hackrisk.ipython; "
            "bad = [m for m in ('matplotlib', 'anywidget', 'ipywidgets', 'torch', 'pymc') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_node_frontend_tests():
    node = shutil.which("node")
    if node is None:
        if CI:
            pytest.fail("node is missing under CI: install nodejs to run the widgets/ front-end tests")
        pytest.skip("node not installed: the widgets/ front-end tests need Node >= 18")
    r = subprocess.run([node, "--test", "widgets/"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass" in r.stdout
    n_pass = int(r.stdout.split("# pass")[1].split()[0])
    assert n_pass >= 8


def test_binder_environment():
    b = ROOT / "binder"
    req = [ln.strip() for ln in (b / "requirements.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in req
    assert not any(ln.startswith(("--index-url", "-i ")) for ln in req)  # PyPI stays the main index
    torch = [ln for ln in req if ln.startswith("torch")]
    assert torch == ["torch==2.13.0"]
    assert (b / "runtime.txt").read_text().strip().startswith("python-3.")
    assert "libopenblas-dev" in (b / "apt.txt").read_text().split()
    post = b / "postBuild"
    assert os.access(post, os.X_OK) and post.read_text().startswith("#!")
    assert 'pip install --no-cache-dir -e ".[widgets,bayes]"' in post.read_text()


def test_static_html_export_falls_back_to_png(pipeline):
    """Where widgets cannot render (an HTML export without widget state), the PNG shows."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    _, _, errors, _ = pipeline
    data = W.explore(errors)._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer")
    cell.outputs = [nbformat.v4.new_output("execute_result", data=data, execution_count=1)]
    cell.execution_count = 1
    nb.cells = [cell]
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert f"data:image/png;base64,{data['image/png'][:40]}" in html


def test_one_recompute_per_change(pipeline, monkeypatch):
    _, _, errors, _ = pipeline
    w = W.explore(errors)
    calls = []
    real = W.view_state
    monkeypatch.setattr(W, "view_state", lambda *a, **k: calls.append(k) or real(*a, **k))
    w.task = "task1"
    assert len(calls) == 1 and calls[0]["hypothesis"] is None
    assert errors["task"].values[w.hypothesis] == "task1"
    w.prompts = ["p0"]
    w.hypothesis = int(np.flatnonzero(errors["task"].values == "task1")[0])
    assert len(calls) == 3 and w.view["hypothesis"] == w.hypothesis


def test_spec_curve_with_corrected_intervals():
    """With corrected= the spec curve carries each configuration's corrected interval, aligned by
    hypothesis id and configuration coords, on the corrected estimand's scale."""
    from hackrisk.analysis.mitigation import correct

    cube, _ = hr.simulate_multiverse(n_tasks=1, n_items=1200, models=2, n_prompts=2, temperatures=(0.0, 1.0),
                                     rng=9)
    truth = cube["truth"].values.copy()
    keep = np.zeros(truth.shape, dtype=bool)
    keep[0, np.random.default_rng(2).choice(1200, size=200, replace=False)] = True
    cube["truth"] = (cube["truth"].dims, np.where(keep, truth, -1).astype(truth.dtype))
    hyps = generate_hypotheses(cube, groupings=("random", "covariate"))
    errors = classify_errors(run_tests(cube, hyps))
    corr = correct(cube, hyps, method="ppi", rng=0)
    shuffled = corr.isel(hypothesis=np.random.default_rng(0).permutation(corr.sizes["hypothesis"]),
                         model=[1, 0], temperature=[1, 0])
    for c in (corr, shuffled):
        prep = W.prepare(errors, c)
        h = 3
        st = W.decode(W.view_state(prep, hypothesis=h))
        sp = st["spec"]
        assert sp["scale"].startswith("difference") and sp["corrected_method"] == "ppi"
        models, prompts, temps = (errors[d].values for d in ("model", "prompt", "temperature"))
        for i in range(sp["n"]):
            sel = {"model": models[sp["model"][i]], "prompt": prompts[sp["prompt"][i]],
                   "temperature": temps[sp["temperature"][i]]}
            one = corr.sel(hypothesis=h, **sel)
            assert sp["corrected_estimate"][i] == pytest.approx(float(one["estimate"]), rel=1e-6)
            assert sp["corrected_lower"][i] == pytest.approx(float(one["ci_lower"]), rel=1e-5, abs=1e-7)
            assert sp["corrected_upper"][i] == pytest.approx(float(one["ci_upper"]), rel=1e-5, abs=1e-7)
            # the LLM-only point is the difference in shares of that configuration
            assert sp["estimate"][i] == pytest.approx(float(errors["estimate"].sel(hypothesis=h, **sel)), rel=1e-6)
        assert st["spec"]["human"] == pytest.approx(float(errors["human_estimate"][h]), rel=1e-6)
    # logistic corrections keep the log odds ratio scale; the widget and its PNG take them
    w = W.explore(errors, correct(cube, hyps, method="human", estimand="logistic", rng=0), hypothesis=3)
    assert w.view["spec"]["scale"].startswith("log odds") and "corrected_estimate" in w.view["spec"]
    assert w.figure_png()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="lacks hypotheses"):
        W.prepare(errors, corr.isel(hypothesis=[0, 1]))


def test_local_fdr_shown_per_hypothesis(pipeline):
    import xarray as xr

    from hackrisk.analysis.lfdr import human_lfdr

    _, _, errors, _ = pipeline
    ids = errors["hypothesis"].values
    # a given lfdr is aligned by hypothesis id, not by position
    given = xr.DataArray(np.linspace(0.05, 0.95, ids.size), dims="hypothesis", coords={"hypothesis": ids[::-1]})
    prep = W.prepare(errors, lfdr=given)
    task = str(errors["task"].values[-1])
    hyp = np.flatnonzero(errors["task"].values == task)
    v = W.view_state(prep, task=task, hypothesis=int(hyp[1]))
    want = 1 - float(given.sel(hypothesis=ids[hyp[1]]))
    assert v["human_p_effect"] == pytest.approx(want, rel=1e-6)
    got = np.frombuffer(v["points"]["p_effect"], dtype="<f4")
    np.testing.assert_allclose(got, 1 - given.sel(hypothesis=ids[hyp]).values, rtol=1e-6)
    # default: computed from the human z-scores when there are enough hypotheses, else absent
    default = W.view_state(W.prepare(errors), task=task, hypothesis=int(hyp[1]))
    if ids.size >= 50:
        assert default["human_p_effect"] == pytest.approx(1 - float(human_lfdr(errors)[hyp[1]]), rel=1e-6)
    else:
        assert default["human_p_effect"] is None
    assert W.view_state(W.prepare(errors, lfdr=False), task=task)["human_p_effect"] is None
    w = W.explore(errors, lfdr=given, task=task, hypothesis=int(hyp[1]))
    assert w.view["human_p_effect"] == pytest.approx(want, rel=1e-6)


def test_local_fdr_default_at_paper_scale(paper_scale):
    from hackrisk.analysis.lfdr import human_lfdr

    prep = W.prepare(paper_scale)
    np.testing.assert_allclose(prep["p_effect"], 1 - human_lfdr(paper_scale).values, rtol=1e-6)
    assert np.isfinite(prep["p_effect"]).mean() > 0.9


def test_combined_tests_with_zero_counts_and_missing_configurations_raise_no_warning():
    """Combined tests of two tasks: infinite log odds ratios (zero counts) and NaN tests (configurations
    a task lacks) give no interval, and no NumPy warning (inf - inf) in any view of any hypothesis."""
    import warnings

    from hackrisk.analysis.crosstask import combine_tasks

    def task(name, models, n_prompts, n_items, rng):
        cube, _ = hr.simulate_multiverse(n_tasks=1, n_items=n_items, models=models, n_prompts=n_prompts,
                                         temperatures=(0.0, 1.0), max_effect=0.3, null_share=0.0, base_rate=0.5,
                                         rng=rng)
        cube = cube.assign_coords(task=[name])
        return run_tests(cube, generate_hypotheses(cube))

    comb = combine_tasks({"a": task("a", ["m0", "m1"], 3, 40, 1), "b": task("b", ["m0", "m2"], 2, 20, 2)})
    lor, se = comb["log_or"].values, comb["se"].values
    assert np.isinf(lor).any() and np.isnan(lor).any()  # the data this test is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prep = W.prepare(comb)
        for task_name in ("a", "b"):
            for h in np.flatnonzero(comb["task"].values == task_name):
                st = W.view_state(prep, task=task_name, hypothesis=int(h))
                sp = W.decode(st)["spec"]
                m, p, t = sp["model"], sp["prompt"], sp["temperature"]
                est, half = lor[h, m, p, t], W._z(prep["alpha"]) * se[h, m, p, t]
                ok = np.isfinite(est) & np.isfinite(half)
                np.testing.assert_allclose(sp["lower"][ok], est[ok] - half[ok], rtol=1e-5)
                np.testing.assert_allclose(sp["upper"][ok], est[ok] + half[ok], rtol=1e-5)
                assert np.isnan(sp["lower"][~ok]).all() and np.isnan(sp["upper"][~ok]).all()
        w = W.explore(comb, task="b")
        w.task = "a"
        assert w.figure_png()[:8] == b"\x89PNG\r\n\x1a\n"
