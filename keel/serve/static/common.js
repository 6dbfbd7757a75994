// Small helpers shared by the pages (formatting, escaping, tables).
"use strict";
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
function fmtNum(v) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toPrecision(4).replace(/\.?0+$/, "");
}
const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
function fmtDuration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " m " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " m";
}
function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t * 1000);
  return d.toISOString().slice(0, 16).replace("T", " ");
}
async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({error: r.statusText}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function htmlTable(header, rows, cls = "runs") {
  return `<table class="${cls}"><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("") + "</tbody></table>";
}
function kvTable(pairs) {
  return '<table class="kv"><tbody>' + pairs.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("") + "</tbody></table>";
}
