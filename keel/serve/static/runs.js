// The runs table: sortable by any column, filtered by text, status and kind; pick runs to compare.
// All runs are held here (sorting and filtering see every run); the DOM holds one page of rows, since
// laying out thousands of table rows is what makes a big runs folder slow to show.
"use strict";
let RUNS = [], sortKey = "created", sortDir = -1, pageNo = 0;
const selected = new Set();
const tbody = document.querySelector("#runs tbody");

function firstMetric(r) { const v = Object.values(r.metrics)[0]; return typeof v === "number" ? v : null; }
function sortValue(r, key) { return key === "metric" ? firstMetric(r) : r[key]; }
function matches(r, text, status, kind) {
  if (status && r.status !== status) return false;
  if (kind && r.kind !== kind) return false;
  if (!text) return true;
  const hay = [r.name, r.kind, r.preset, r.status, ...Object.keys(r.metrics)].join(" ").toLowerCase();
  return text.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
}
function render() {
  const text = document.getElementById("filter").value.trim();
  const status = document.getElementById("status-filter").value;
  const kind = document.getElementById("kind-filter").value;
  const rows = RUNS.filter((r) => matches(r, text, status, kind));
  rows.sort((a, b) => {
    const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * sortDir;
  });
  const size = parseInt(document.getElementById("page-size").value, 10);
  const pages = size ? Math.max(1, Math.ceil(rows.length / size)) : 1;
  pageNo = Math.min(pageNo, pages - 1);
  const shown = size ? rows.slice(pageNo * size, (pageNo + 1) * size) : rows;
  document.getElementById("page-info").textContent = ` page ${pageNo + 1} of ${pages} `;
  document.getElementById("page-prev").disabled = pageNo === 0;
  document.getElementById("page-next").disabled = pageNo >= pages - 1;
  tbody.innerHTML = shown.map((r) => {
    const chips = Object.entries(r.metrics).map(([k, v]) => `<span class="chip" title="${esc(k)}">${esc(k.split("/").slice(-2).join("/"))} <b>${fmtNum(v)}</b></span>`).join("");
    const warn = r.problems.length ? ` <span class="warn-icon" title="${esc(r.problems.join("\n"))}">⚠</span>` : "";
    return `<tr data-name="${esc(r.name)}">
      <td class="sel"><input type="checkbox" ${selected.has(r.name) ? "checked" : ""}></td>
      <td><a href="/run/${encodeURIComponent(r.name)}">${esc(r.name)}</a>${warn}</td>
      <td>${esc(r.kind)}</td><td>${esc(r.preset)}</td>
      <td><span class="badge status-${esc(r.status)}">${esc(r.status)}</span></td>
      <td>${chips || '<span class="muted">—</span>'}</td>
      <td class="num">${fmtNum(r.step)}</td><td>${fmtTime(r.created)}</td><td class="num">${fmtDuration(r.wall_seconds)}</td></tr>`;
  }).join("");
  document.getElementById("count").textContent = `${rows.length} of ${RUNS.length} runs` + (selected.size ? ` · ${selected.size} selected` : "");
  document.querySelectorAll("#runs th[data-key]").forEach((th) => {
    th.classList.toggle("sorted-asc", th.dataset.key === sortKey && sortDir === 1);
    th.classList.toggle("sorted-desc", th.dataset.key === sortKey && sortDir === -1);
  });
  document.getElementById("compare").disabled = selected.size !== 2;
  document.getElementById("overlay").disabled = selected.size < 1;
}
async function load() {
  const t0 = performance.now();
  const data = await getJSON("/api/runs");
  RUNS = data.runs;
  const kinds = [...new Set(RUNS.map((r) => r.kind))].sort();
  const ks = document.getElementById("kind-filter"), keep = ks.value;
  ks.innerHTML = '<option value="">any kind</option>' + kinds.map((k) => `<option>${esc(k)}</option>`).join("");
  ks.value = keep;
  render();
  document.body.dataset.loadedMs = String(Math.round(performance.now() - t0));
  document.body.dataset.runs = String(RUNS.length);
}
document.querySelectorAll("#runs th[data-key]").forEach((th) => th.addEventListener("click", () => {
  if (sortKey === th.dataset.key) sortDir = -sortDir; else { sortKey = th.dataset.key; sortDir = th.dataset.key === "name" || th.dataset.key === "kind" ? 1 : -1; }
  render();
}));
["filter", "status-filter", "kind-filter", "page-size"].forEach((id) => document.getElementById(id).addEventListener("input", () => { pageNo = 0; render(); }));
document.getElementById("page-prev").addEventListener("click", () => { pageNo -= 1; render(); });
document.getElementById("page-next").addEventListener("click", () => { pageNo += 1; render(); });
tbody.addEventListener("change", (e) => {
  const name = e.target.closest("tr").dataset.name;
  if (e.target.checked) selected.add(name); else selected.delete(name);
  render();
});
document.getElementById("compare").addEventListener("click", () => {
  const [a, b] = [...selected];
  location.href = `/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
});
document.getElementById("overlay").addEventListener("click", () => {
  const [first, ...rest] = [...selected];
  location.href = `/run/${encodeURIComponent(first)}?overlay=${rest.map(encodeURIComponent).join(",")}`;
});
load().catch((e) => { document.getElementById("count").textContent = "Could not load runs: " + e.message; });
setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 5000);  // statuses and metrics move on
