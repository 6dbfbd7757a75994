// A run's page: live curves (polling metrics.jsonl by byte offset), smoothing, overlaid runs; tabs for
// the summary, the spec pictures, the campaign results, the safety card and the stored report.
"use strict";
const POLL_MS = 1000;
const COLORS = ["#2f6fde", "#e4572e", "#17a589", "#8e44ad", "#f1c40f", "#34495e", "#d35400", "#16a085"];
const series = new Map();  // run name -> {offset, rows, status}
const params = new URLSearchParams(location.search);
const overlays = (params.get("overlay") || "").split(",").filter((n) => n && n !== RUN.name);
const chartsEl = document.getElementById("charts");

// --- tabs ---------------------------------------------------------------------------------------
const loaded = new Set();
function showTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll("section.tab").forEach((s) => s.classList.toggle("hidden", s.id !== "tab-" + name));
  const sec = document.getElementById("tab-" + name);
  sec.querySelectorAll("iframe[data-src]").forEach((f) => { if (!f.src) f.src = f.dataset.src; });
  if (!loaded.has(name)) { loaded.add(name); if (name === "spec") loadSpec(); if (name === "campaign") loadCampaign(); }
  if (name === "curves") drawAll();
  history.replaceState(null, "", location.pathname + location.search + "#" + name);
}
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// --- curves -------------------------------------------------------------------------------------
function smooth(ys, w) {  // TensorBoard's debiased exponential moving average
  if (w <= 0) return ys;
  let last = 0, n = 0;
  return ys.map((y) => { if (!Number.isFinite(y)) return y; last = last * w + (1 - w) * y; n += 1; return last / (1 - Math.pow(w, n)); });
}
function metricNames() {
  const names = new Set();
  for (const s of series.values()) for (const r of s.rows) for (const k of Object.keys(r)) if (k !== "step" && k !== "time") names.add(k);
  let filter = null;
  try { const f = document.getElementById("metric-filter").value.trim(); filter = f ? new RegExp(f, "i") : null; } catch (e) { filter = null; }
  return [...names].sort().filter((n) => !filter || filter.test(n));
}
function chartId(name) { return "chart-" + name.replace(/[^A-Za-z0-9_-]/g, "_"); }
function drawAll() {
  if (document.getElementById("tab-curves").classList.contains("hidden")) return;
  const w = parseFloat(document.getElementById("smoothing").value);
  const xKind = document.getElementById("xaxis").value;
  const names = metricNames();
  const wanted = new Set(names.map(chartId));
  chartsEl.querySelectorAll(".chart").forEach((c) => { if (!wanted.has(c.id)) c.remove(); });
  const main = series.get(RUN.name);
  chartsEl.dataset.points = String(main ? main.rows.length : 0);
  if (!names.length) {
    if (!chartsEl.querySelector(".empty")) chartsEl.innerHTML = '<p class="muted empty">No metrics logged yet.</p>';
    return;
  }
  chartsEl.querySelector(".empty")?.remove();
  names.forEach((name) => {
    let div = document.getElementById(chartId(name));
    if (!div) { div = document.createElement("div"); div.className = "chart"; div.id = chartId(name); chartsEl.appendChild(div); }
    const traces = [];
    [...series.entries()].forEach(([run, s], i) => {
      const rows = s.rows.filter((r) => typeof r[name] === "number");
      if (!rows.length) return;
      const t0 = s.rows.length ? s.rows[0].time : 0;
      const xs = rows.map((r) => (xKind === "step" ? r.step : r.time - t0));
      const ys = rows.map((r) => r[name]);
      const color = COLORS[i % COLORS.length];
      if (w > 0) traces.push({x: xs, y: ys, mode: "lines", line: {color, width: 1}, opacity: 0.25, hoverinfo: "skip", showlegend: false, name: run + " (raw)"});
      traces.push({x: xs, y: smooth(ys, w), mode: rows.length > 1 ? "lines" : "markers", line: {color, width: 2}, name: run});
    });
    div.dataset.points = String(traces.length ? traces[traces.length - 1].x.length : 0);
    Plotly.react(div, traces, {
      title: {text: name, font: {size: 13}, x: 0.02}, margin: {l: 50, r: 14, t: 34, b: 36},
      xaxis: {title: {text: xKind === "step" ? "step" : "seconds", font: {size: 11}}, zeroline: false},
      yaxis: {zeroline: false}, showlegend: series.size > 1, legend: {orientation: "h", y: -0.25, font: {size: 10}},
      paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "x unified",
    }, {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"]});
  });
}
async function poll(name) {
  const s = series.get(name);
  const data = await getJSON(`/api/runs/${encodeURIComponent(name)}/metrics?offset=${s.offset}`);
  if (data.reset) s.rows = [];
  s.rows.push(...data.rows);
  s.offset = data.offset;
  s.status = data.status;
  s.skipped = (s.skipped || 0) + data.skipped;
  s.torn = data.torn_tail;
  s.more = data.more;
  return data.rows.length > 0 || data.reset || data.more;
}
function notes() {
  const out = [];
  for (const [name, s] of series) {
    if (s.skipped) out.push(`${name}: ${s.skipped} unreadable line(s) in metrics.jsonl were skipped`);
    if (s.torn && s.status !== "running") out.push(`${name}: metrics.jsonl ends in a torn line (a crash mid-write); the curves stop at the last whole line`);
  }
  document.getElementById("metric-notes").innerHTML = out.map((t) => `<div class="warn">⚠ ${esc(t)}</div>`).join("");
}
let busy = false;
async function tick() {  // one poll at a time, so that no two answers for one offset are both kept
  if (busy) return;
  busy = true;
  try { await pollAll(); } finally { busy = false; }
}
async function loop() {
  await tick();
  const live = [...series.values()].some((s) => s.status === "running");
  setTimeout(loop, live ? POLL_MS : 5 * POLL_MS);
}
async function pollAll() {
  let changed = false;
  for (const [name, s] of series) {
    if (s.status === null || s.status === "running" || s.more) {
      try { changed = (await poll(name)) || changed; } catch (e) { s.status = "error"; s.error = e.message; }
    }
  }
  const main = series.get(RUN.name);
  const badge = document.getElementById("status");
  if (main && main.status && badge.textContent !== main.status) { badge.textContent = main.status; badge.className = "badge status-" + main.status; }
  const live = [...series.values()].some((s) => s.status === "running");
  document.getElementById("live").textContent = (live ? "live · " : "") + `updated ${new Date().toLocaleTimeString()} · ${main ? main.rows.length : 0} points`;
  if (changed) { drawAll(); notes(); }
}
function addSeries(name) { if (!series.has(name)) series.set(name, {offset: 0, rows: [], status: null, more: false}); }
function renderOverlayChips() {
  document.getElementById("overlays").innerHTML = [...series.keys()].filter((n) => n !== RUN.name)
    .map((n) => `<span class="chip">${esc(n)} <a href="#" data-remove="${esc(n)}" title="remove">✕</a></span>`).join("");
}
document.getElementById("overlays").addEventListener("click", (e) => {
  const n = e.target.dataset.remove; if (!n) return;
  e.preventDefault(); series.delete(n); renderOverlayChips(); drawAll();
});
document.getElementById("overlay-add").addEventListener("change", async (e) => {
  const n = e.target.value; e.target.value = ""; if (!n) return;
  addSeries(n); renderOverlayChips(); await tick(); drawAll();
});
["metric-filter", "smoothing", "xaxis"].forEach((id) => document.getElementById(id).addEventListener("input", () => {
  document.getElementById("smoothing-value").textContent = parseFloat(document.getElementById("smoothing").value).toFixed(2);
  drawAll();
}));
getJSON("/api/runs").then((d) => {
  const sel = document.getElementById("overlay-add");
  const others = d.runs.filter((r) => r.name !== RUN.name).sort((a, b) => (a.kind === RUN.kind ? 0 : 1) - (b.kind === RUN.kind ? 0 : 1));
  sel.innerHTML = '<option value="">add a run…</option>' + others.map((r) => `<option value="${esc(r.name)}">${esc(r.name)} (${esc(r.kind)})</option>`).join("");
}).catch(() => {});

// --- spec pictures, campaign ------------------------------------------------------------------------
async function loadSpec() {
  const el = document.getElementById("spec-body");
  const r = await fetch(`/run/${encodeURIComponent(RUN.name)}/spec`);
  el.classList.remove("muted");
  el.innerHTML = r.ok ? await r.text() : `<div class="warn">Could not draw: ${esc(r.statusText)}</div>`;
}
function groupTable(table, key, what) {
  const groups = [...new Set(table.flatMap((e) => Object.keys(e[key])))].sort();
  if (!groups.length) return '<p class="muted">—</p>';
  return htmlTable(["agent / defence", ...groups], table.map((e) => [esc(`${e.agent} / ${e.defence}`),
    ...groups.map((g) => { const v = e[key][g]; return v ? `${pct(v.targeted_asr)} <span class="muted">(${v.episodes})</span>` : "—"; })]));
}
let EPISODES = [];
function renderEpisodes() {
  const text = document.getElementById("ep-filter").value.trim().toLowerCase();
  const outcome = document.getElementById("ep-outcome").value;
  const rows = EPISODES.filter((e) => {
    if (outcome === "success" && e.attack_success !== 1) return false;
    if (outcome === "blocked" && e.attack_success !== 0) return false;
    if (outcome === "benign" && e.attack) return false;
    const hay = [e.agent, e.defence, e.suite, e.user_task, e.injection_task, e.attack, e.family, e.lang].join(" ").toLowerCase();
    return !text || text.split(/\s+/).every((w) => hay.includes(w));
  });
  document.getElementById("camp-episodes").innerHTML = htmlTable(
    ["#", "agent", "defence", "suite", "user task", "attack", "family", "lang", "solved", "attack succeeded", "denied / asked", ""],
    rows.map((e) => [e.id, esc(e.agent), esc(e.defence), esc(e.suite), esc(e.user_task), esc(e.attack || "— benign"), esc(e.family || ""), esc(e.lang || ""),
      e.utility ? '<span class="good">yes</span>' : "no",
      e.attack_success === null ? "—" : e.attack_success ? '<span class="bad">yes</span>' : '<span class="good">no</span>',
      `${e.n_deny} / ${e.n_ask}`, `<a class="transcript-link" href="/run/${encodeURIComponent(RUN.name)}/episode/${e.id}">transcript →</a>`]));
}
async function loadCampaign() {
  try {
    const d = await getJSON(`/api/runs/${encodeURIComponent(RUN.name)}/campaign`);
    document.getElementById("camp-table").innerHTML = htmlTable(
      ["agent", "defence", "benign utility", "utility under attack", "targeted ASR", "guard false positives", "benign eps", "attack eps"],
      d.table.map((e) => [esc(e.agent), esc(e.defence), pct(e.benign_utility), pct(e.utility_under_attack), `<b>${pct(e.targeted_asr)}</b>`,
        e.defence === "none" ? "—" : pct(e.guard_false_positive_rate), e.benign_episodes, e.attack_episodes]));
    document.getElementById("camp-suite").innerHTML = groupTable(d.table, "per_suite");
    document.getElementById("camp-family").innerHTML = groupTable(d.table, "per_family");
    document.getElementById("camp-lang").innerHTML = groupTable(d.table, "per_language");
    EPISODES = d.episodes;
    renderEpisodes();
  } catch (e) {
    document.getElementById("camp-table").innerHTML = `<div class="warn">⚠ ${esc(e.message)}</div>`;
  }
}
document.getElementById("ep-filter")?.addEventListener("input", renderEpisodes);
document.getElementById("ep-outcome")?.addEventListener("input", renderEpisodes);

// --- start ----------------------------------------------------------------------------------------
addSeries(RUN.name);
overlays.forEach(addSeries);
renderOverlayChips();
const first = location.hash.slice(1);
showTab(document.querySelector(`#tabs button[data-tab="${first}"]`) ? first : "curves");
loop();
