// hackrisk multiverse explorer: the anywidget front-end (one ES module, no dependencies).
//
// The Python side (hackrisk/widgets.py) computes the view state of the current selection and
// syncs it as the `view` trait; arrays arrive as binary buffers (DataView). This module only
// draws: the pure functions below turn view state into SVG / HTML strings (tested with
// `node --test widgets/`), and `render` wires them to the selectors.

export const COLORS = {
  correct: "#009E73",
  "Type I": "#E69F00",
  "Type II": "#56B4E9",
  "Type S": "#D55E00",
  risk: "#0072B2",
  human: "#000000",
};
const ERROR_NAMES = ["correct", "Type I", "Type II", "Type S"];
const HACK_COLORS = { fabricate: COLORS["Type I"], hide: COLORS["Type II"], reverse: COLORS["Type S"] };

/** Typed array over a binary buffer (DataView, ArrayBuffer, typed array or Node Buffer). */
export function asArray(buf, Type = Float32Array) {
  if (buf == null) return new Type(0);
  if (buf instanceof Type) return buf;
  if (Array.isArray(buf)) return Type.from(buf);
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  // copy so that the typed array is aligned whatever the buffer's offset
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Type(copy.buffer, 0, Math.floor(copy.byteLength / Type.BYTES_PER_ELEMENT));
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fmtPct(x, digits = 1) {
  return x == null || !Number.isFinite(x) ? "n/a" : `${(100 * x).toFixed(digits)}%`;
}

function fmtNum(x, digits = 3) {
  return x == null || !Number.isFinite(x) ? "n/a" : Number(x).toPrecision(digits);
}

/** Linear scale [d0, d1] -> [r0, r1]. */
export function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** Colour-blind-safe sequential colour (cividis-like ramp) for t in [0, 1]. */
export function rampColor(t) {
  if (!Number.isFinite(t)) return "#eeeeee";
  const stops = [[0, 32, 77], [87, 92, 109], [166, 157, 117], [253, 234, 69]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function svg(width, height, body, cls) {
  return `<svg class="${cls}" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${body}</svg>`;
}

/** Error-type bars: Type I, II, S rates and the pooled risk of the selection. */
export function errorBarsSVG(summary, { width = 320, height = 200 } = {}) {
  const keys = [["Type I", "type_i"], ["Type II", "type_ii"], ["Type S", "type_s"], ["risk", "risk"]];
  const m = { l: 40, r: 10, t: 16, b: 28 };
  const vals = keys.map(([, k]) => (summary && summary[k] != null ? summary[k] : NaN));
  const top = Math.max(0.05, ...vals.filter(Number.isFinite)) * 1.2;
  const y = scale(0, top, height - m.b, m.t);
  const bw = (width - m.l - m.r) / keys.length;
  let body = `<line x1="${m.l}" x2="${width - m.r}" y1="${y(0)}" y2="${y(0)}" stroke="#888"/>`;
  for (const tick of [0, top / 2, top]) {
    body += `<text x="${m.l - 4}" y="${y(tick) + 3}" text-anchor="end" class="tick">${fmtPct(tick, 0)}</text>`;
  }
  keys.forEach(([name], i) => {
    const v = vals[i];
    const x = m.l + i * bw + bw * 0.15;
    const h = Number.isFinite(v) ? y(0) - y(v) : 0;
    body += `<rect class="bar" data-error="${name}" data-value="${Number.isFinite(v) ? v : ""}" x="${x}" y="${y(0) - h}" width="${bw * 0.7}" height="${h}" fill="${COLORS[name]}" stroke="#000" stroke-width="0.5"><title>${name}: ${fmtPct(v)}</title></rect>`;
    body += `<text x="${x + bw * 0.35}" y="${y(0) - h - 3}" text-anchor="middle" class="value">${fmtPct(v)}</text>`;
    body += `<text x="${x + bw * 0.35}" y="${height - m.b + 14}" text-anchor="middle" class="label">${name}</text>`;
  });
  return svg(width, height, body, "hr-errorbars");
}

/** Risk versus |human effect|: one circle per hypothesis (clickable) and the binned curve. */
export function riskCurveSVG(points, curve, selected, { width = 320, height = 200 } = {}) {
  const m = { l: 40, r: 10, t: 12, b: 30 };
  const hyp = asArray(points.hypothesis, Int32Array);
  const eff = asArray(points.effect, Float32Array);
  const risk = asArray(points.risk, Float32Array);
  const pEff = points.p_effect != null ? asArray(points.p_effect, Float32Array) : null;
  let xmax = 0.05;
  for (const e of eff) if (Number.isFinite(e)) xmax = Math.max(xmax, Math.abs(e));
  const x = scale(0, xmax * 1.05, m.l, width - m.r);
  const y = scale(0, 1, height - m.b, m.t);
  let body = `<line x1="${m.l}" x2="${width - m.r}" y1="${y(0)}" y2="${y(0)}" stroke="#888"/><line x1="${m.l}" x2="${m.l}" y1="${y(0)}" y2="${y(1)}" stroke="#888"/>`;
  body += `<text x="${m.l - 4}" y="${y(1) + 3}" text-anchor="end" class="tick">100%</text><text x="${m.l - 4}" y="${y(0) + 3}" text-anchor="end" class="tick">0%</text>`;
  body += `<text x="${(m.l + width - m.r) / 2}" y="${height - 4}" text-anchor="middle" class="label">|human effect| (p_A − p_B)</text>`;
  for (const tick of [0, xmax / 2, xmax]) {
    body += `<text x="${x(tick).toFixed(1)}" y="${y(0) + 11}" text-anchor="${tick === 0 ? "start" : tick === xmax ? "end" : "middle"}" class="tick">${tick.toFixed(2)}</text>`;
  }
  let sel = "";
  for (let i = 0; i < hyp.length; i++) {
    if (!Number.isFinite(eff[i]) || !Number.isFinite(risk[i])) continue;
    const isSel = hyp[i] === selected;
    const pe = pEff && Number.isFinite(pEff[i]) ? `, P(human effect) ${fmtPct(pEff[i])}` : "";
    const tip = `hypothesis ${hyp[i]}: risk ${fmtPct(risk[i])}${pe}`;
    const c = `<circle class="point${isSel ? " selected" : ""}" data-hypothesis="${hyp[i]}" cx="${x(Math.abs(eff[i])).toFixed(1)}" cy="${y(risk[i]).toFixed(1)}" r="${isSel ? 5 : 2.5}"><title>${tip}</title></circle>`;
    if (isSel) sel = c;
    else body += c;
  }
  if (curve && curve.length) {
    const d = curve.map((c, i) => `${i ? "L" : "M"}${x(c.x).toFixed(1)},${y(c.risk).toFixed(1)}`).join("");
    body += `<path class="curve" d="${d}" fill="none" stroke="${COLORS["Type S"]}" stroke-width="2"/>`;
  }
  return svg(width, height, body + sel, "hr-riskcurve");
}

/** Specification curve of the chosen hypothesis: estimate + CI per configuration, sorted. */
export function specCurveSVG(spec, options = {}, { width = 660, height = 220 } = {}) {
  const m = { l: 48, r: 10, t: 12, b: 24 };
  const n = spec && spec.n ? spec.n : 0;
  if (!n) return svg(width, height, `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no annotated configuration selected</text>`, "hr-spec");
  const est = asArray(spec.estimate), lo = asArray(spec.lower), hi = asArray(spec.upper);
  const err = asArray(spec.error, Int8Array);
  const mi = asArray(spec.model, Int16Array), pi = asArray(spec.prompt, Int16Array), ti = asArray(spec.temperature, Int16Array);
  let ymin = 0, ymax = 0;
  const grow = (v) => { if (Number.isFinite(v)) { ymin = Math.min(ymin, v); ymax = Math.max(ymax, v); } };
  for (let i = 0; i < n; i++) { grow(lo[i]); grow(hi[i]); grow(est[i]); }
  grow(spec.human); grow(spec.human_lower); grow(spec.human_upper);
  // corrected intervals (human + LLM labels), one per configuration, drawn beside the LLM-only one
  const hasCorr = spec.corrected_estimate != null;
  const cEst = hasCorr ? asArray(spec.corrected_estimate) : null;
  const cLo = hasCorr ? asArray(spec.corrected_lower) : null, cHi = hasCorr ? asArray(spec.corrected_upper) : null;
  if (hasCorr) for (let i = 0; i < n; i++) { grow(cLo[i]); grow(cHi[i]); grow(cEst[i]); }
  const pad = (ymax - ymin) * 0.05 || 0.1;
  const y = scale(ymin - pad, ymax + pad, height - m.b, m.t);
  const x = scale(-0.5, n - 0.5, m.l, width - m.r);
  let body = `<line class="zero" x1="${m.l}" x2="${width - m.r}" y1="${y(0)}" y2="${y(0)}" stroke="#888"/>`;
  body += `<text x="${m.l - 4}" y="${y(ymax) + 3}" text-anchor="end" class="tick">${fmtNum(ymax, 2)}</text><text x="${m.l - 4}" y="${y(ymin) + 3}" text-anchor="end" class="tick">${fmtNum(ymin, 2)}</text>`;
  if (spec.human_lower != null && spec.human_upper != null) {
    body += `<rect class="human-ci" x="${m.l}" width="${width - m.l - m.r}" y="${y(spec.human_upper)}" height="${Math.max(0, y(spec.human_lower) - y(spec.human_upper))}" fill="#000" fill-opacity="0.07"/>`;
  }
  if (spec.human != null) {
    body += `<line class="human" x1="${m.l}" x2="${width - m.r}" y1="${y(spec.human)}" y2="${y(spec.human)}" stroke="#000" stroke-dasharray="5 3"/>`;
  }
  const models = options.models || [], prompts = options.prompts || [], temps = options.temperatures || [];
  for (let i = 0; i < n; i++) {
    const name = ERROR_NAMES[err[i]] || "correct";
    const cx = x(i).toFixed(1);
    const tip = `${models[mi[i]] ?? mi[i]} / ${prompts[pi[i]] ?? pi[i]} / T=${temps[ti[i]] ?? ti[i]}: ${fmtNum(est[i])} [${fmtNum(lo[i])}, ${fmtNum(hi[i])}] ${name}`;
    if (Number.isFinite(lo[i]) && Number.isFinite(hi[i])) body += `<line x1="${cx}" x2="${cx}" y1="${y(lo[i]).toFixed(1)}" y2="${y(hi[i]).toFixed(1)}" stroke="${COLORS[name]}" stroke-opacity="0.6"/>`;
    if (hasCorr && Number.isFinite(cEst[i])) {
      const xc = (x(i) + Math.min(4, (width - m.l - m.r) / n / 4)).toFixed(1);
      const ctip = `${models[mi[i]] ?? mi[i]} / ${prompts[pi[i]] ?? pi[i]} / T=${temps[ti[i]] ?? ti[i]}: corrected (${spec.corrected_method || ""}) ${fmtNum(cEst[i])} [${fmtNum(cLo[i])}, ${fmtNum(cHi[i])}]`;
      if (Number.isFinite(cLo[i]) && Number.isFinite(cHi[i])) body += `<line class="corrected-ci" x1="${xc}" x2="${xc}" y1="${y(cLo[i]).toFixed(1)}" y2="${y(cHi[i]).toFixed(1)}" stroke="#0072B2" stroke-width="1.5"/>`;
      body += `<rect class="corrected" x="${(xc - 2.5).toFixed(1)}" y="${(y(cEst[i]) - 2.5).toFixed(1)}" width="5" height="5" fill="#0072B2"><title>${escapeHtml(ctip)}</title></rect>`;
    }
    if (!Number.isFinite(est[i])) continue;
    const wrong = err[i] > 0;
    body += wrong
      ? `<path class="config wrong" data-error="${name}" d="M${cx - 3},${y(est[i]) - 3}l6,6m0,-6l-6,6" stroke="${COLORS[name]}" stroke-width="2"><title>${escapeHtml(tip)}</title></path>`
      : `<circle class="config" data-error="correct" cx="${cx}" cy="${y(est[i]).toFixed(1)}" r="2.5" fill="${COLORS.correct}"><title>${escapeHtml(tip)}</title></circle>`;
  }
  const corrNote = hasCorr ? ` · blue squares: corrected with human labels (${escapeHtml(spec.corrected_method || "")})` : "";
  body += `<text x="${m.l}" y="${height - 6}" class="label">${escapeHtml(spec.scale || "estimate")} · ${n} configurations (sorted) · dashed: human labels${corrNote}</text>`;
  return svg(width, height, body, "hr-spec");
}

/** Model x prompt heatmap of the risk. */
export function heatmapSVG(heatmap, { cell = 26, width = 320 } = {}) {
  const models = heatmap.models || [], prompts = heatmap.prompts || [];
  const risk = asArray(heatmap.risk);
  const m = { l: 90, t: 40 };
  const cw = Math.max(14, Math.min(cell * 2, (width - m.l - 10) / Math.max(1, prompts.length)));
  const ch = Math.max(12, Math.min(cell, 360 / Math.max(1, models.length)));
  let vmax = 0.05;
  for (const v of risk) if (Number.isFinite(v)) vmax = Math.max(vmax, v);
  let body = "";
  prompts.forEach((p, j) => {
    body += `<text x="${m.l + j * cw + cw / 2}" y="${m.t - 6}" text-anchor="middle" class="tick">${escapeHtml(p)}</text>`;
  });
  models.forEach((mod, i) => {
    body += `<text x="${m.l - 4}" y="${m.t + i * ch + ch / 2 + 3}" text-anchor="end" class="tick">${escapeHtml(mod)}</text>`;
    prompts.forEach((p, j) => {
      const v = risk[i * prompts.length + j];
      body += `<rect class="cell" data-model="${escapeHtml(mod)}" data-prompt="${escapeHtml(p)}" data-value="${Number.isFinite(v) ? v : ""}" x="${m.l + j * cw}" y="${m.t + i * ch}" width="${cw - 1}" height="${ch - 1}" fill="${rampColor(v / vmax)}"><title>${escapeHtml(mod)} × ${escapeHtml(p)}: ${fmtPct(v)}</title></rect>`;
    });
  });
  body += `<text x="${m.l}" y="14" class="label">risk, 0 to ${fmtPct(vmax, 0)} (dark to light)</text>`;
  return svg(m.l + prompts.length * cw + 10, m.t + models.length * ch + 6, body, "hr-heatmap");
}

/** The "hack" view: configurations that would fabricate, hide or reverse the chosen finding. */
export function hackTableHTML(rows, counts, { limit = 25 } = {}) {
  const c = counts || {};
  let html = `<div class="hr-hack-counts">`;
  for (const k of ["fabricate", "hide", "reverse"]) {
    html += `<span class="hr-chip" data-kind="${k}" style="border-color:${HACK_COLORS[k]}">${k}: <b>${c[k] ?? 0}</b></span>`;
  }
  html += `</div>`;
  if (!rows || !rows.length) return html + `<p class="hr-empty">No selected configuration changes this conclusion.</p>`;
  html += `<table class="hr-hack"><thead><tr><th>would</th><th>model</th><th>prompt</th><th>T</th><th>estimate</th><th>p</th></tr></thead><tbody>`;
  for (const r of rows.slice(0, limit)) {
    html += `<tr data-kind="${r.kind}"><td><span class="hr-dot" style="background:${HACK_COLORS[r.kind]}"></span>${r.kind}</td><td>${escapeHtml(r.model)}</td><td>${escapeHtml(r.prompt)}</td><td>${r.temperature}</td><td>${fmtNum(r.estimate)}</td><td>${fmtNum(r.p_value, 2)}</td></tr>`;
  }
  html += `</tbody></table>`;
  if (rows.length > limit) html += `<p class="hr-more">… and ${rows.length - limit} more</p>`;
  return html;
}

/** One-line summary of the selection. */
export function summaryText(view) {
  const s = view.summary || {};
  return `${view.n_configurations} configurations · ${(s.n_cells ?? 0).toLocaleString("en")} tests · risk ${fmtPct(s.risk)} · Type I ${fmtPct(s.type_i)} · Type II ${fmtPct(s.type_ii)} · Type S ${fmtPct(s.type_s)} · computed in ${view.compute_ms} ms`;
}

// ------------------------------------------------------------------------------------ DOM
function el(tag, attrs = {}, html = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (html) e.innerHTML = html;
  return e;
}

function checkboxGroup(name, values, chosen, onChange) {
  const box = el("fieldset", { class: `hr-group hr-${name}` }, `<legend>${name}</legend>`);
  values.forEach((v) => {
    const id = `${name}-${String(v)}`;
    const label = el("label", { class: "hr-check" });
    const input = el("input", { type: "checkbox", value: String(v), "data-name": name, "data-value": String(v) });
    input.checked = chosen.map(String).includes(String(v));
    input.addEventListener("change", () => {
      const picked = Array.from(box.querySelectorAll("input:checked")).map((i) => i.value);
      onChange(picked);
    });
    label.append(input, document.createTextNode(` ${v}`));
    label.title = id;
    box.append(label);
  });
  return box;
}

function render({ model, el: root }) {
  const opts = model.get("options");
  root.classList.add("hackrisk-explorer");
  const controls = el("div", { class: "hr-controls" });
  const set = (name, value) => { model.set(name, value); model.save_changes(); };

  const task = el("select", { class: "hr-task", "data-name": "task" });
  opts.tasks.forEach((t) => task.append(new Option(t, t, false, t === model.get("task"))));
  task.addEventListener("change", () => set("task", task.value));
  const alpha = el("select", { class: "hr-alpha", "data-name": "alpha" });
  opts.alpha_levels.forEach((a) => alpha.append(new Option(String(a), String(a), false, a === model.get("alpha"))));
  alpha.addEventListener("change", () => set("alpha", parseFloat(alpha.value)));
  const hyp = el("select", { class: "hr-hypothesis", "data-name": "hypothesis" });
  hyp.addEventListener("change", () => set("hypothesis", parseInt(hyp.value, 10)));
  const taskOf = asArray(opts.task_of, Int32Array);
  const fillHypotheses = () => {
    const ti = opts.tasks.indexOf(model.get("task"));
    const cur = model.get("hypothesis");
    hyp.innerHTML = "";
    for (let i = 0; i < taskOf.length; i++) {
      if (taskOf[i] === ti) hyp.append(new Option(`${i}: ${opts.labels[i]}`, String(i), false, i === cur));
    }
  };
  const row = el("div", { class: "hr-row" });
  const lab = (text, node) => { const l = el("label", { class: "hr-field" }, `${text} `); l.append(node); return l; };
  row.append(lab("task", task), lab("alpha", alpha), lab("hypothesis", hyp));
  controls.append(
    row,
    checkboxGroup("models", opts.models, model.get("models"), (v) => set("models", v)),
    checkboxGroup("prompts", opts.prompts, model.get("prompts"), (v) => set("prompts", v)),
    checkboxGroup("temperatures", opts.temperatures, model.get("temperatures"), (v) => set("temperatures", v.map(Number))),
  );

  const status = el("div", { class: "hr-status" });
  const errBox = el("div", { class: "hr-error" });
  const panel = (cls, title) => { const p = el("div", { class: `hr-panel ${cls}` }, `<h4>${title}</h4>`); const body = el("div", { class: "hr-body" }); p.append(body); return [p, body]; };
  const [pBars, bars] = panel("hr-p-bars", "Error types");
  const [pCurve, curve] = panel("hr-p-curve", "Risk vs human effect size <small>(click a point)</small>");
  const [pHeat, heat] = panel("hr-p-heat", "Risk by model × prompt");
  const [pSpec, spec] = panel("hr-p-spec", "Specification curve");
  const [pHack, hack] = panel("hr-p-hack", "Hack: configurations that would fabricate, hide or reverse this finding");
  const grid = el("div", { class: "hr-grid" });
  grid.append(pBars, pCurve, pHeat, pSpec, pHack);
  root.append(controls, status, errBox, grid);

  curve.addEventListener("click", (ev) => {
    const h = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-hypothesis");
    if (h != null) set("hypothesis", parseInt(h, 10));
  });

  const draw = () => {
    const v = model.get("view");
    if (!v || !v.summary) return;
    fillHypotheses();
    status.textContent = summaryText(v);
    root.dataset.risk = String(v.summary.risk);
    root.dataset.cells = String(v.summary.n_cells);
    root.dataset.hypothesis = String(v.hypothesis);
    bars.innerHTML = errorBarsSVG(v.summary);
    curve.innerHTML = riskCurveSVG(v.points, v.curve, v.hypothesis);
    heat.innerHTML = heatmapSVG(v.heatmap);
    const pe = v.human_p_effect != null ? ` · P(human effect) ${fmtPct(v.human_p_effect)}` : "";
    pSpec.querySelector("h4").textContent = `Specification curve: ${v.hypothesis_label}${pe}`;
    spec.innerHTML = specCurveSVG(v.spec, opts);
    hack.innerHTML = hackTableHTML(v.hack, v.hack_counts);
  };
  const showError = () => { errBox.textContent = model.get("error") || ""; };
  // selection changed from Python: reflect it in the controls
  const syncControls = () => {
    task.value = model.get("task");
    alpha.value = String(model.get("alpha"));
    for (const name of ["models", "prompts", "temperatures"]) {
      const chosen = model.get(name).map(String);
      controls.querySelectorAll(`input[data-name="${name}"]`).forEach((i) => {
        i.checked = chosen.includes(i.value) || (name === "temperatures" && chosen.map(Number).includes(Number(i.value)));
      });
    }
  };
  const events = "change:task change:alpha change:models change:prompts change:temperatures";
  model.on("change:view", draw);
  model.on("change:error", showError);
  model.on(events, syncControls);
  draw();
  showError();
  return () => {
    model.off("change:view", draw);
    model.off("change:error", showError);
    model.off(events, syncControls);
  };
}

export default { render };
