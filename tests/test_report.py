"""hackrisk.report (self-contained HTML) and the IPython extension (hackrisk.ipython)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from importlib import metadata

import numpy as np
import pytest
import xarray as xr

import hackrisk as hr
from hackrisk.analysis.frequentist import test_hypotheses as run_tests
from hackrisk.analysis.risk import classify_errors, hacking, risk
from hackrisk.hypotheses import generate_hypotheses
from hackrisk.report import render_report, write_report


@pytest.fixture(scope="module")
def study():
    cube, _ = hr.simulate_multiverse(n_tasks=2, n_items=400, models=3, n_prompts=2, n_covariates=5,
                                     bias_sd=0.08, rng=5)
    hyps = generate_hypotheses(cube)
    return cube, hyps, run_tests(cube, hyps)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.links, self.text, self.stack = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            if k in a:
                self.links.append(a[k])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(study, tmp_path_factory):
    cube, hyps, tests = study
    path = write_report(tests, tmp_path_factory.mktemp("rep") / "sub" / "report.html", cube=cube,
                        hypotheses=hyps, title="Test <report>", n_boot=60, rng=3)
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained(report):
    path, text = report
    assert path.is_file() and path.stat().st_size > 20_000
    p = _Collect()
    p.feed(text)
    assert p.tags[0] == "html" and "script" not in p.tags and "link" not in p.tags
    assert all(s.startswith("data:image/png;base64,") for s in p.links), [s[:40] for s in p.links]
    assert len(p.imgs) == 5
    for src in p.imgs:
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    assert "<title>Test &lt;report&gt;</title>" in text  # escaped


def test_report_numbers(study, report):
    _, _, tests = study
    _, text = report
    r = risk(classify_errors(tests), n_boot=60, rng=3)
    for var in ("risk_pooled", "type_i", "type_ii", "type_s"):
        est, lo, hi = (float(r[var].sel(ci=c)) for c in ("estimate", "lower", "upper"))
        card = re.search(rf"data-metric='{var}'>.*?class='v'>([^<]+)<.*?95% CI ([^<]+)<", text)
        assert card, var
        assert card.group(1) == f"{100 * est:.1f}%"
        assert card.group(2) == f"[{100 * lo:.1f}%, {100 * hi:.1f}%]"
    h = hacking(classify_errors(tests)).attrs
    assert f"{100 * h['fabricate_rate']:.1f}%" in text
    # risk by model rows carry the per-model estimate
    rm = risk(classify_errors(tests), by="model", n_boot=60, rng=3)
    for m in tests["model"].values:
        est = float(rm["risk_pooled"].sel(model=m, ci="estimate"))
        assert re.search(rf"<td class=\"l\">{m}</td><td class=\"\">{100 * est:.1f}%</td>", text), m


def test_report_configuration_and_provenance(study, report):
    cube, hyps, tests = study
    _, text = report
    for m in tests["model"].values:
        assert str(m) in text
    assert "Paraphrase 0:" in text  # prompt templates from the cube
    assert f"<td class=\"l\">xarray</td><td class=\"l\">{metadata.version('xarray')}</td>" in text
    assert "schema_version" in text and "hackrisk.simulate_multiverse" in text
    assert "Most fragile hypotheses" in text
    assert f"{tests.sizes['hypothesis']} hypotheses" in text


def test_report_inputs(study, tmp_path):
    cube, _, tests = study
    with pytest.raises(ValueError, match="test_hypotheses"):
        write_report(cube, tmp_path / "x.html")
    with pytest.raises(ValueError, match="un-sliced"):
        write_report(tests, tmp_path / "x.html", risk=risk(tests, by="model", n_boot=0))
    # a precomputed risk is used as given; a single prompt has no model x prompt heatmap issue
    r = risk(tests, n_boot=0)
    text = render_report(tests.isel(prompt=[0]), risk=r, n_boot=0)
    assert text.count("<img") >= 4
    assert f"{100 * float(r['type_i'].sel(ci='estimate')):.1f}%" in text


# --------------------------------------------------------------------------- IPython extension
@pytest.fixture
def shell():
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "hackrisk.ipython")
    html_fmt = ip.display_formatter.formatters["text/html"]
    enabled, html_fmt.enabled = html_fmt.enabled, True  # the terminal test shell disables HTML
    yield ip
    html_fmt.enabled = enabled
    from hackrisk.ipython import unload_ipython_extension

    unload_ipython_extension(ip)


def _html(ip, obj):
    return ip.display_formatter.formatters["text/html"](obj) or ""


def test_ipython_html_views(shell, study):
    cube, hyps, tests = study
    from hackrisk.ipython import dataset_kind

    assert [dataset_kind(x) for x in (cube, hyps, tests, risk(tests, n_boot=0), xr.Dataset(), 3)] == [
        "cube", "hypotheses", "tests", "risk", None, None]
    h = _html(shell, cube)
    assert "hackrisk label cube" in h and "800 items" in h and "model0, model1, model2" in h
    h = _html(shell, tests)
    r = risk(tests, n_boot=0)
    assert "hackrisk tests" in h and f"{100 * float(r['type_i'].sel(ci='estimate')):.1f}%" in h
    assert "hackrisk hypotheses" in _html(shell, hyps)
    assert "overall risk" in _html(shell, r)
    # other datasets keep xarray's view
    other = xr.Dataset({"a": ("x", np.arange(3))})
    h = _html(shell, other)
    assert "hackrisk" not in h and "xr-wrap" in h


def test_ipython_magic(shell, study, tmp_path):
    cube, _, tests = study
    hr.save_cube(cube, tmp_path / "c.zarr")
    out = shell.run_line_magic("hackrisk", f"open {tmp_path / 'c.zarr'} as mycube")
    assert shell.user_ns["mycube"] is out and "label" in out
    shell.user_ns["tests"] = tests
    r = shell.run_line_magic("hackrisk", "risk")
    assert "risk_pooled" in r and r.attrs["n_boot"] == 200
    rb = shell.run_line_magic("hackrisk", "risk tests by model")
    assert "model" in rb.dims
    w = shell.run_line_magic("hackrisk", "explore tests")
    assert type(w).__name__ == "Explorer"
    p = shell.run_line_magic("hackrisk", f"report tests {tmp_path / 'r.html'}")
    assert p.is_file()
    assert "%hackrisk open PATH" in repr(shell.run_line_magic("hackrisk", ""))
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="unknown command"):
        shell.run_line_magic("hackrisk", "frobnicate")
    with pytest.raises(UsageError, match="neither a variable"):
        shell.run_line_magic("hackrisk", "explore nothing_here")


def test_partial_human_labels_and_the_corrected_section(tmp_path):
    """A cube with truth on a subset: the report works and shows the corrections and verdicts."""
    from hackrisk.analysis.mitigation import correct
    from hackrisk.analysis.robust import robust_conclusions

    cube, _ = hr.simulate_multiverse(n_tasks=1, n_items=1500, models=2, n_prompts=2,
                                           temperatures=(0.0,), rng=5)
    truth = cube["truth"].values.copy()
    keep = np.zeros(truth.shape, dtype=bool)
    keep[0, np.random.default_rng(1).choice(1500, size=200, replace=False)] = True
    cube["truth"] = (cube["truth"].dims, np.where(keep, truth, -1).astype(truth.dtype))
    hyps = generate_hypotheses(cube, groupings=("random", "covariate"))
    tests = run_tests(cube, hyps)
    corrected = {m: correct(cube, hyps, method=m, rng=0) for m in ("ppi", "human")}
    robust = robust_conclusions(corrected["ppi"], human=corrected["human"])
    html = render_report(tests, cube=cube, hypotheses=hyps, corrected=corrected, robust=robust, n_boot=20)
    assert "<h2>Your conclusions with human labels</h2>" in html
    assert "alt='corrected intervals'" in html and "ppi CI" in html and "human CI" in html
    for verdict, n in robust["verdict"].value_counts().items():
        assert f"data-verdict='{verdict}'" in html and f"<div class='v'>{n}</div>" in html
    # the per-configuration table shows the corrected interval of one cell exactly
    one = corrected["ppi"].isel(hypothesis=0, model=0, prompt=0, temperature=0)
    assert f"[{float(one['ci_lower']):.3g}, {float(one['ci_upper']):.3g}]" in html
    # a single corrected Dataset also works (verdicts computed inside), and nothing without it
    assert "Your conclusions with human labels" in render_report(tests, corrected=corrected["ppi"], n_boot=20)
    assert "Your conclusions with human labels" not in render_report(tests, n_boot=20)


@pytest.fixture(scope="module")
def many():
    """86 hypotheses: enough z-scores for Efron's two-group fit."""
    cube, _ = hr.simulate_multiverse(n_tasks=4, n_items=300, models=2, n_prompts=2, n_covariates=5,
                                     bias_sd=0.08, rng=5)
    return classify_errors(run_tests(cube, generate_hypotheses(cube)))


def _lfdr_part(text: str) -> str:
    start = text.index("<h2>Is the human effect real?")
    return text[start:text.index("<h2>", start + 4)]


def test_lfdr_section_numbers(many):
    from hackrisk.analysis.lfdr import human_lfdr, lfdr_weights

    text = _lfdr_part(render_report(many, n_boot=40, rng=3, n_fragile=10))
    fdr = human_lfdr(many)
    assert f"p0 = {fdr.attrs['p0']:.2g}" in text
    # the lfdr-weighted risk next to the unweighted one, each with the same bootstrap as risk()
    plain = risk(many, n_boot=40, rng=3)
    weighted = risk(many, weights=lfdr_weights(many, fdr), n_boot=40, rng=3)
    assert float(weighted["type_i"].sel(ci="estimate")) != float(plain["type_i"].sel(ci="estimate"))
    for var, name in (("risk_pooled", "Overall risk"), ("type_i", "Type I"), ("type_ii", "Type II")):
        a, b = (f"{100 * float(r[var].sel(ci='estimate')):.1f}%" for r in (plain, weighted))
        assert re.search(rf"<td class=\"l\">{name}</td><td class=\"\">{re.escape(a)}</td><td class=\"\">[^<]*</td>"
                         rf"<td class=\"\">{re.escape(b)}</td>", text), name
    # per hypothesis: P(effect) = 1 - lfdr, the 10 least certain human conclusions first
    w = lfdr_weights(many, fdr)
    rows = re.findall(r"<tr><td class=\"l\">(\d+)</td>(.*?)</tr>", text)
    assert len(rows) == 10
    shown = [int(h) for h, _ in rows]
    assert sorted(float(w.sel(hypothesis=h)) for h in shown) == pytest.approx(np.sort(w.values)[:10])
    for h, cells in rows:
        vals = re.findall(r"<td class=\"\">([^<]*)</td>", cells)
        assert vals[-2] == f"{100 * (1 - float(fdr.sel(hypothesis=int(h)))):.1f}%"
        assert vals[-1] == f"{100 * float(w.sel(hypothesis=int(h))):.1f}%"


def test_lfdr_section_options(many, study):
    from hackrisk.analysis.lfdr import human_lfdr

    mle = human_lfdr(many, nulltype="mle", df=15, extreme=10)
    text = _lfdr_part(render_report(many, n_boot=20, lfdr=mle))
    assert f"p0 = {mle.attrs['p0']:.2g}" in text
    assert "Is the human effect real?" not in render_report(many, n_boot=20, lfdr=False)
    # 42 hypotheses: too few for the fit, and the report says so instead of guessing
    small = _lfdr_part(render_report(study[2], n_boot=20))
    assert "Not computed" in small and "at least 50" in small


def test_lfdr_section_follows_the_paper_preset(many):
    from hackrisk.analysis.lfdr import human_lfdr

    paper = many.copy()
    paper.attrs["conventions"] = "paper"
    mle = human_lfdr(many, nulltype="mle", df=15, extreme=10)
    assert f"{mle.attrs['p0']:.2g}" != f"{human_lfdr(many).attrs['p0']:.2g}"
    assert f"p0 = {mle.attrs['p0']:.2g}" in _lfdr_part(render_report(paper, n_boot=20))
