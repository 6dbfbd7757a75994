// The memory browser: namespaces, items (reliability, provenance), an item's history, and one query
// answered by every search mode side by side.
"use strict";
const PAGE = 25;
let ns = null, offset = 0, total = 0;
const nsSel = document.getElementById("ns");
const q = (p) => Object.entries(p).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
const relBar = (r) => `<span class="rel" style="width:${Math.round(40 * (r || 0))}px" title="reliability ${fmtNum(r)}"></span>${fmtNum(r)}`;

async function loadNamespaces() {
  const d = await getJSON("/api/memory/namespaces");
  nsSel.innerHTML = d.namespaces.map((s) => `<option value="${esc(s.namespace)}">${esc(s.namespace)} (${s.items} items)</option>`).join("");
  if (!d.namespaces.length) { document.getElementById("items").innerHTML = '<p class="muted">This memory is empty.</p>'; return; }
  const stats = Object.fromEntries(d.namespaces.map((s) => [s.namespace, s]));
  nsSel.onchange = () => { ns = nsSel.value; offset = 0; showStats(stats[ns]); loadItems(); document.getElementById("search-results").innerHTML = ""; };
  nsSel.onchange();
}
function showStats(s) {
  document.getElementById("ns-stats").textContent = Object.entries(s).filter(([k]) => !["namespace"].includes(k)).map(([k, v]) => `${k}: ${v}`).join(" · ");
}
async function loadItems() {
  const text = document.getElementById("item-filter").value.trim();
  const d = await getJSON(`/api/memory/items?${q({ns, offset, limit: PAGE, text})}`);
  total = d.total;
  document.getElementById("items").innerHTML = d.items.length ? htmlTable(["text", "kind", "status", "source", "reliability", "when"],
    d.items.map((it) => [esc(it.text.length > 140 ? it.text.slice(0, 140) + "…" : it.text), esc(it.kind), esc(it.status), esc(it.source), relBar(it.reliability), fmtTime(it.ts)]), "runs items")
    : '<p class="muted">No items match.</p>';
  document.querySelectorAll("#items tbody tr").forEach((tr, i) => { tr.dataset.id = d.items[i].id; tr.onclick = () => showItem(d.items[i].id, tr); });
  document.getElementById("page-info").textContent = total ? `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : "";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = offset + PAGE >= total;
}
async function showItem(id, tr) {
  document.querySelectorAll("#items tr.selected").forEach((r) => r.classList.remove("selected"));
  if (tr) tr.classList.add("selected");
  const d = await getJSON(`/api/memory/item?${q({ns, id})}`);
  const it = d.item;
  const prov = Object.entries(it.provenance || {}).map(([k, v]) => [esc(k), k === "timestamp" ? fmtTime(v) : esc(typeof v === "object" ? JSON.stringify(v) : v)]);
  document.getElementById("item-detail").innerHTML = `<h2>Item <code>${esc(it.id.slice(0, 12))}</code></h2>
    <p>${esc(it.text)}</p>
    ${kvTable([["kind", esc(it.kind)], ["status", esc(it.status)], ["source", esc(it.source)], ["reliability", relBar(it.reliability)],
      ["credibility", fmtNum(it.credibility)], ["consensus", fmtNum(it.consensus)], ["uses", fmtNum(it.uses)], ["version", fmtNum(it.version)],
      ...(it.slot ? [["slot = value", esc(`${it.slot} = ${it.value}`)]] : [])])}
    <h3>Provenance</h3>${kvTable(prov)}
    <h3>History (${d.history.length} versions)</h3>
    ${htmlTable(["version", "change", "text", "status", "when"], d.history.map((h) => [fmtNum(h.version), esc(h.op || h.change || h.event || ""), esc(h.text || ""), esc(h.status || ""), fmtTime(h.at || h.changed || h.ts)]))}`;
}
document.getElementById("prev").onclick = () => { offset = Math.max(0, offset - PAGE); loadItems(); };
document.getElementById("next").onclick = () => { offset += PAGE; loadItems(); };
document.getElementById("item-filter").addEventListener("input", () => { offset = 0; loadItems(); });
document.getElementById("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const query = document.getElementById("query").value.trim();
  const out = document.getElementById("search-results");
  if (!query) { out.innerHTML = ""; return; }
  out.innerHTML = '<p class="muted">Searching…</p>';
  try {
    const d = await getJSON(`/api/memory/search?${q({ns, q: query, k: 5})}`);
    out.innerHTML = Object.entries(d).map(([mode, r]) => `<div class="mode" data-mode="${esc(mode)}"><h3>${esc(mode)} <span class="muted small">${r.ms.toFixed(0)} ms</span></h3>
      ${r.abstained ? `<p class="muted">abstained (support ${fmtNum(r.support)})</p>` : ""}
      <ol>${r.hits.map((h) => `<li><a href="#" data-id="${esc(h.id)}">${esc(h.text.length > 120 ? h.text.slice(0, 120) + "…" : h.text)}</a><br><span class="muted">score ${fmtNum(h.score)} · ${relBar(h.reliability)} · ${esc(h.kind)} from ${esc(h.source)}</span></li>`).join("")}</ol>
      ${!r.hits.length && !r.abstained ? '<p class="muted">no hits</p>' : ""}</div>`).join("");
    out.querySelectorAll("a[data-id]").forEach((a) => a.onclick = (ev) => { ev.preventDefault(); showItem(a.dataset.id); });
  } catch (err) { out.innerHTML = `<div class="warn">⚠ ${esc(err.message)}</div>`; }
});
loadNamespaces().catch((e) => { document.getElementById("items").innerHTML = `<div class="warn">⚠ ${esc(e.message)}</div>`; });
