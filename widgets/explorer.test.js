// Tests of the explorer's pure drawing functions: `node --test widgets/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  asArray, escapeHtml, fmtPct, scale, rampColor, errorBarsSVG, riskCurveSVG, specCurveSVG,
  heatmapSVG, hackTableHTML, summaryText,
} from "./explorer.js";
import explorer from "./explorer.js";

const dv = (Type, values) => {
  const a = Type.from(values);
  // a DataView at a non-zero offset, as ipywidgets may hand over
  const buf = new ArrayBuffer(a.byteLength + 8);
  new Uint8Array(buf, 8).set(new Uint8Array(a.buffer));
  return new DataView(buf, 8, a.byteLength);
};
const count = (s, re) => (s.match(re) || []).length;

test("asArray decodes DataViews at any offset, arrays and empties", () => {
  assert.deepEqual(Array.from(asArray(dv(Float32Array, [1.5, -2, 3]))), [1.5, -2, 3]);
  assert.deepEqual(Array.from(asArray(dv(Int16Array, [7, -1]), Int16Array)), [7, -1]);
  assert.deepEqual(Array.from(asArray([1, 2], Int8Array)), [1, 2]);
  assert.equal(asArray(null).length, 0);
});

test("helpers", () => {
  assert.equal(escapeHtml(`<a href="x">&'</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  assert.equal(fmtPct(0.1234), "12.3%");
  assert.equal(fmtPct(null), "n/a");
  assert.equal(scale(0, 1, 100, 0)(0.25), 75);
  assert.notEqual(rampColor(0), rampColor(1));
  assert.equal(rampColor(NaN), "#eeeeee");
});

test("error bars: one bar per error type, heights ordered like the rates", () => {
  const s = errorBarsSVG({ type_i: 0.2, type_ii: 0.1, type_s: 0.0, risk: 0.15 });
  assert.equal(count(s, /class="bar"/g), 4);
  const h = [...s.matchAll(/data-error="([^"]+)"[^>]*height="([0-9.]+)"/g)].map((m) => [m[1], +m[2]]);
  const H = Object.fromEntries(h);
  assert.ok(H["Type I"] > H.risk && H.risk > H["Type II"] && H["Type II"] > H["Type S"]);
  assert.equal(H["Type S"], 0);
  assert.match(s, /20\.0%/);
  // missing rates render as n/a, not NaN
  const e = errorBarsSVG({ type_i: null, type_ii: 0.5, type_s: 0.1, risk: 0.3 });
  assert.doesNotMatch(e, /NaN/);
  assert.match(e, /n\/a/);
});

test("risk curve: one point per finite hypothesis, the selected one drawn last", () => {
  const points = {
    hypothesis: dv(Int32Array, [3, 4, 5, 6]),
    effect: dv(Float32Array, [0.1, -0.2, NaN, 0.05]),
    risk: dv(Float32Array, [0.5, 0.1, 0.3, 0.9]),
  };
  const s = riskCurveSVG(points, [{ x: 0.05, risk: 0.9 }, { x: 0.15, risk: 0.3 }], 4);
  assert.equal(count(s, /class="point/g), 3);
  assert.equal(count(s, /class="point selected"/g), 1);
  assert.ok(s.lastIndexOf("selected") > s.indexOf('class="curve"'));
  assert.match(s, /data-hypothesis="6"/);
  assert.doesNotMatch(s, /data-hypothesis="5"/);
});

test("risk curve: each point's tooltip gives its risk and, when known, P(human effect)", () => {
  const base = { hypothesis: dv(Int32Array, [1, 2]), effect: dv(Float32Array, [0.1, 0.2]), risk: dv(Float32Array, [0.25, 0.5]) };
  const withP = riskCurveSVG({ ...base, p_effect: dv(Float32Array, [0.9, NaN]) }, [], 1);
  assert.match(withP, /<title>hypothesis 1: risk 25\.0%, P\(human effect\) 90\.0%<\/title>/);
  assert.match(withP, /<title>hypothesis 2: risk 50\.0%<\/title>/);
  assert.doesNotMatch(riskCurveSVG(base, [], 1), /P\(human effect\)/);
});

test("specification curve marks wrong conclusions and draws the human reference", () => {
  const spec = {
    n: 4,
    estimate: dv(Float32Array, [-0.2, 0.1, 0.3, 0.5]),
    lower: dv(Float32Array, [-0.5, -0.2, 0.1, 0.2]),
    upper: dv(Float32Array, [0.1, 0.4, 0.5, 0.8]),
    error: dv(Int8Array, [2, 2, 0, 0]),
    model: dv(Int16Array, [0, 1, 0, 1]),
    prompt: dv(Int16Array, [0, 0, 1, 1]),
    temperature: dv(Int16Array, [0, 0, 0, 0]),
    human: 0.4, human_lower: 0.2, human_upper: 0.6, scale: "log odds ratio (A vs B)",
  };
  const s = specCurveSVG(spec, { models: ["m0", "m1"], prompts: ["p0", "p1"], temperatures: [0] });
  assert.equal(count(s, /class="config wrong"/g), 2);
  assert.equal(count(s, /class="config"/g), 2);
  assert.match(s, /class="human"/);
  assert.match(s, /class="human-ci"/);
  assert.match(s, /m1 \/ p1 \/ T=0/);
  assert.match(specCurveSVG({ n: 0 }), /no annotated configuration/);
  assert.equal(count(s, /class="corrected"/g), 0);
});

test("specification curve: corrected intervals beside the LLM-only ones", () => {
  const spec = {
    n: 3, estimate: dv(Float32Array, [-0.1, 0, 0.2]), lower: dv(Float32Array, [-0.2, -0.1, 0.1]),
    upper: dv(Float32Array, [0, 0.1, 0.3]), error: dv(Int8Array, [0, 1, 0]), model: dv(Int16Array, [0, 0, 1]),
    prompt: dv(Int16Array, [0, 1, 0]), temperature: dv(Int16Array, [0, 0, 0]), human: 0.05,
    corrected_method: "ppi", corrected_estimate: dv(Float32Array, [0.04, NaN, 0.06]),
    corrected_lower: dv(Float32Array, [-0.5, NaN, -0.02]), corrected_upper: dv(Float32Array, [0.1, NaN, 0.14]),
  };
  const s = specCurveSVG(spec, { models: ["m0", "m1"], prompts: ["p0", "p1"], temperatures: [0] });
  assert.equal(count(s, /class="corrected"/g), 2);  // the NaN one is left out
  assert.equal(count(s, /class="corrected-ci"/g), 2);
  assert.match(s, /m1 \/ p0 \/ T=0: corrected \(ppi\) 0.06/);
  assert.match(s, /blue squares: corrected with human labels \(ppi\)/);
  assert.match(s, /-0.5/);  // the y range grows to hold the corrected interval
});

test("heatmap: models x prompts cells with values, NaN greyed", () => {
  const h = { models: ["a", "b", "c"], prompts: ["p0", "p1"], risk: dv(Float32Array, [0.1, 0.2, 0.3, NaN, 0.5, 0.6]) };
  const s = heatmapSVG(h);
  assert.equal(count(s, /class="cell"/g), 6);
  assert.match(s, /data-model="b" data-prompt="p1" data-value=""[^>]*fill="#eeeeee"/);
  assert.match(s, /data-model="c" data-prompt="p1" data-value="0.6/);
});

test("hack table lists rows, counts, and escapes names", () => {
  const rows = [
    { kind: "fabricate", model: "<m>", prompt: "p0", temperature: 0.5, estimate: 0.1, p_value: 0.01 },
    { kind: "reverse", model: "m2", prompt: "p1", temperature: 1, estimate: -0.1, p_value: 0.001 },
  ];
  const s = hackTableHTML(rows, { fabricate: 1, hide: 0, reverse: 1 });
  assert.equal(count(s, /<tr data-kind=/g), 2);
  assert.match(s, /&lt;m&gt;/);
  assert.match(s, /fabricate: <b>1<\/b>/);
  assert.match(hackTableHTML([], {}), /No selected configuration/);
  assert.match(hackTableHTML(new Array(30).fill(rows[0]), {}, { limit: 5 }), /and 25 more/);
});

test("summary text and the anywidget entry point", () => {
  const t = summaryText({ n_configurations: 12, compute_ms: 3.2, summary: { n_cells: 1200, risk: 0.25, type_i: 0.1, type_ii: 0.2, type_s: 0 } });
  assert.match(t, /12 configurations · 1,200 tests · risk 25\.0%/);
  assert.equal(typeof explorer.render, "function");
});
