"""`Memory`: the one face of Keel's long-term memory (method names after Mem0's).

    mem = Memory("memory.db", namespace="alice")          # or "postgresql://..." for a shared server
    ids = mem.add("I moved to Lisbon last spring", source="user")
    hits = mem.search("where does she live?", k=5)        # hybrid BM25 + dense, weighted by reliability
    mem.update(ids[0], "I moved to Porto"); mem.history(ids[0]); mem.delete(ids[0])
    mem.export("alice.jsonl"); Memory("other.db", namespace="alice").import_("alice.jsonl")

Each namespace is one user's memory; nothing crosses between them (every query carries the namespace).
Adding messages also organises them (`keel.memory.hierarchy`): episodes, facts with supersession,
themes; and scores reliability (`keel.memory.reliability`). Search modes: "bm25", "dense", "hybrid"
(score-aware fusion of the two), "reliable" (the default: hybrid, plus dates in the query, MMA
reliability, neighbouring turns, superseded claims left out, abstains on weak support; see
`keel.memory.ranking`) and "hierarchical" (reliable, plus the messages behind the xMemory facts and
themes nearest the query).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.memory import reliability as rel
from keel.memory import temporal
from keel.memory.embedder import Embedder, default_embedder
from keel.memory.hierarchy import HierarchyConfig, Organiser
from keel.memory.hits import Hits
from keel.memory.ranking import SearchConfig, bm25_order, demote_duplicates, names
from keel.memory.retrieval import convex
from keel.memory.store import (
    KINDS,
    STATUSES,
    Item,
    Store,
    Where,
    check_namespace,
    matches,
    new_item,
    parse_filters,
)

MODES = ("bm25", "dense", "hybrid", "reliable", "hierarchical")
MAX_CHARS = 100_000
MAX_METADATA_BYTES = 64_000


__all__ = ["Memory", "Hits", "MODES"]


def _timestamp(x: Any) -> float:
    if x is None:
        return time.time()
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        if not math.isfinite(x):
            raise KeelError(f"timestamp must be a finite number, got {x!r}")
        return float(x)
    if isinstance(x, _dt.datetime):
        return (x if x.tzinfo else x.replace(tzinfo=_dt.UTC)).timestamp()
    if isinstance(x, str):
        try:
            d = _dt.datetime.fromisoformat(x)
        except ValueError:
            raise KeelError(f"timestamp {x!r} is not ISO 8601 (e.g. 2026-11-30T09:00:00)") from None
        return _timestamp(d)
    raise KeelError(f"timestamp must be seconds since 1970, a datetime or an ISO string, got {type(x).__name__}")


def open_store(location: str | Path, dim: int, embedder_name: str, lexical: str = "memory") -> Store:
    loc = str(location)
    if loc.startswith(("postgresql://", "postgres://")):
        from keel.memory.store_pg import PostgresStore

        return PostgresStore(loc, dim, embedder_name)
    from keel.memory.store_sqlite import SQLiteStore

    return SQLiteStore(loc, dim, embedder_name, lexical=lexical)


class Memory:
    def __init__(
        self,
        location: str | Path = "memory.db",
        namespace: str = "default",
        embedder: Embedder | None = None,
        reliability: rel.ReliabilityConfig | None = None,
        organise: bool = True,
        abstain_below: float = 0.2,
        max_chars: int = MAX_CHARS,
        hierarchy: HierarchyConfig | None = None,
        lexical: str = "memory",
        search: SearchConfig | None = None,
    ):
        self.namespace = check_namespace(namespace)
        self.embedder = embedder or default_embedder()
        self.rcfg = reliability or rel.ReliabilityConfig()
        self.organise = organise
        self.abstain_below = abstain_below
        self.max_chars = max_chars
        self.store = open_store(location, self.embedder.dim, self.embedder.name, lexical)
        self.location = str(location)
        self.scfg = search or SearchConfig()
        self.organiser = Organiser(self.store, self.namespace, self.embedder, self.rcfg, hierarchy)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- validation -------------------------------------------------------------------------------
    def _check_text(self, text: Any, what: str = "text") -> str:
        if not isinstance(text, str):
            raise KeelError(f"{what} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise KeelError(f"{what} is empty; a memory needs some text")
        if len(text) > self.max_chars:
            raise KeelError(
                f"{what} has {len(text):,} characters, over the limit of {self.max_chars:,}; split it into "
                "messages (add([...])) or raise max_chars"
            )
        if "\x00" in text:
            raise KeelError(f"{what} contains a NUL character; remove it")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (e.g. undecodable bytes from argv): SQLite can't store them
            raise KeelError(f"{what} is not valid UTF-8 text (it holds undecodable bytes); fix its encoding") from None
        return text

    def _check_metadata(self, metadata: Any) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise KeelError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}")
        try:
            blob = json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise KeelError(f"metadata must be JSON-serialisable: {e}") from None
        if len(blob) > MAX_METADATA_BYTES:
            raise KeelError(f"metadata is {len(blob):,} bytes of JSON, over the limit of {MAX_METADATA_BYTES:,}")
        return json.loads(blob)

    def _item(self, text: str, vec: np.ndarray, *, kind: str = "message", source: str = "user",
              ts: float | None = None, modality: str = "text", metadata: dict | None = None,
              provenance: dict | None = None, status: str = "active", slot: str | None = None,
              value: str | None = None, polarity: int = 1, parent: str | None = None) -> Item:
        return new_item(self.namespace, text, vec, self.rcfg.source_credibility(source), kind=kind, source=source,
                        ts=ts, modality=modality, metadata=metadata, provenance=provenance, status=status,
                        slot=slot, value=value, polarity=polarity, parent=parent)

    # -- the face ---------------------------------------------------------------------------------
    def add(
        self,
        content: str | list[str] | list[dict[str, Any]],
        source: str | None = None,
        timestamp: Any = None,
        modality: str = "text",
        metadata: dict[str, Any] | None = None,
    ) -> list[str]:
        """Store a text, or a conversation (a list of texts or of {role, content[, timestamp]} dicts), as
        message items in one transaction; returns their ids in order. A message's source defaults to its
        role (user, assistant, ...), else "user"."""
        if isinstance(content, str):
            content = [content]
        if not isinstance(content, list) or not content:
            raise KeelError("add() takes a text or a non-empty list of messages")
        if not isinstance(modality, str) or not modality:
            raise KeelError("modality must be a non-empty string such as 'text' or 'image-caption'")
        meta = self._check_metadata(metadata)
        base_ts = _timestamp(timestamp)
        rows = []
        for i, m in enumerate(content):
            if isinstance(m, dict):
                if "content" not in m:
                    raise KeelError(f"message {i} has no 'content' key (messages look like {{'role', 'content'}})")
                text = self._check_text(m["content"], f"message {i}")
                role = m.get("role")
                ts = _timestamp(m["timestamp"]) if m.get("timestamp") is not None else base_ts + i * 1e-3
            else:
                text = self._check_text(m, f"message {i}" if len(content) > 1 else "text")
                role, ts = None, base_ts + i * 1e-3
            src = source or (str(role) if role else "user")
            md = dict(meta, **({"role": role} if role else {}))
            rows.append((text, src, ts, md))
        vecs = self.embedder.encode([r[0] for r in rows])
        items = [
            self._item(t, v, source=s, ts=ts, modality=modality, metadata=md,
                       provenance={"origin": "add", "index": i})
            for i, ((t, s, ts, md), v) in enumerate(zip(rows, vecs, strict=True))
        ]
        if self.organise:
            self.organiser.annotate(items)
        with self.store.batch():  # the messages and everything organising them commit together
            ids = self.store.insert(items)
            if self.organise:
                self.organiser.observe(items)
        return ids

    def get(self, item_id: str) -> dict[str, Any]:
        got = self.store.get(self.namespace, [item_id])
        if not got:
            raise KeelError(
                f"no memory {item_id!r} in namespace {self.namespace!r} (ids are per namespace; check both)"
            )
        return self._public(got[0])

    def update(self, item_id: str, text: str | None = None, metadata: dict[str, Any] | None = None,
               source: str | None = None) -> dict[str, Any]:
        """Change an item's text, metadata or source; the old version stays in history(id)."""
        cur = self.get(item_id)
        if cur["status"] == "deleted":
            raise KeelError(f"memory {item_id!r} was deleted; add it again instead")
        fields: dict[str, Any] = {}
        tmp: dict[str, Any] = {}
        if text is not None:
            fields["text"] = self._check_text(text)
            fields["vec"] = self.embedder.encode([fields["text"]])[0]
            if self.organise:
                tmp = dict(cur, text=fields["text"], slot=None, value=None, polarity=1)
                self.organiser.annotate([tmp])
                fields.update(slot=tmp["slot"], value=tmp["value"], polarity=tmp["polarity"])
        if metadata is not None:
            fields["metadata"] = self._check_metadata(metadata)
        if source is not None:
            fields["source"] = source
            fields["credibility"] = self.rcfg.source_credibility(source)
        if not fields:
            raise KeelError("update() needs text, metadata or source")
        with self.store.batch():  # the new text and what is derived from it commit together
            item = self.store.update(self.namespace, item_id, fields, "update")
            if self.organise and "vec" in fields:
                item["vec"] = fields["vec"]
                if item["kind"] == "message":  # its old facts go, the new text's facts come in
                    self.organiser.revise(dict(item, _facts=tmp.get("_facts", [])))
                self.organiser.refresh_consensus([item])
        return self._public(item)

    def delete(self, item_id: str) -> None:
        """Remove an item from search; its versions stay in history(id)."""
        item = self.get(item_id)
        with self.store.batch():
            self.store.update(self.namespace, item_id, {"status": "deleted"}, "delete")
            if item["kind"] == "message":  # what was derived from it goes too (its history stays)
                self.organiser.forget(item)

    def history(self, item_id: str) -> list[dict[str, Any]]:
        h = self.store.history(self.namespace, item_id)
        if not h:
            raise KeelError(f"no memory {item_id!r} in namespace {self.namespace!r}")
        return h

    def search(
        self,
        query: str,
        k: int = 5,
        filters: dict[str, Any] | None = None,
        time_range: tuple[Any, Any] | None = None,
        mode: str = "reliable",
        kinds: tuple[str, ...] | None = None,
        now: float | None = None,
        track_use: bool = True,
    ) -> Hits:
        self._check_text(query, "query")
        if mode not in MODES:
            raise KeelError(f"unknown search mode {mode!r}; modes: {', '.join(MODES)}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise KeelError(f"k must be an integer from 1 to 1000, got {k!r}")
        tr = None if time_range is None else tuple(None if t is None else _timestamp(t) for t in time_range)
        # reliability-aware modes leave superseded items out; they filter them after retrieval, so that the
        # indexes (which hold active and superseded items) answer without a per-query id selector
        where = parse_filters(self.namespace, filters, tr, kinds=kinds or ("message",))
        only_active = mode in ("reliable", "hierarchical") and "status" not in (filters or {})
        hits = self._search(query, k, where, mode, time.time() if now is None else now, only_active)
        if track_use and hits:
            self.store.touch(self.namespace, [h["id"] for h in hits], time.time())
        return hits

    def _search(self, query: str, k: int, where: Where, mode: str, now: float, only_active: bool) -> Hits:
        """Retrieve a candidate pool from BM25 and the vector index, then rank it (`keel.memory.ranking`)."""
        cfg = self.scfg
        n = max(cfg.pool, 4 * k)
        qvec = self.embedder.encode([query])[0]
        lex = self.store.fts(where, query, n) if mode != "dense" else []
        den = self.store.dense(where, qvec, n) if mode != "bm25" else []
        rich = mode in ("reliable", "hierarchical")
        window, extra = self._time_window(query, where, now, qvec) if rich else (None, [])
        linked, facts, themes = self.organiser.linked(qvec, k) if mode == "hierarchical" else ({}, [], [])
        lex_score = dict(lex)
        for d, s in extra:
            lex_score[d] = max(lex_score.get(d, 0.0), s)
        ids = list(dict.fromkeys([d for d, _ in lex] + [d for d, _ in den] + list(lex_score) + list(linked)))
        items = {it["id"]: it for it in self.store.get(self.namespace, ids, with_vec=True)
                 if matches(it, where) and (not only_active or it["status"] == "active")}
        out = Hits(mode=mode)
        out.facts, out.themes = facts, themes
        if not items:
            return out.decide(0.0, self.abstain_below) if rich else out
        cos = {d: float(np.dot(qvec, it["vec"])) for d, it in items.items()}
        if mode == "bm25":
            order = bm25_order(query, lex, {d: it["text"] for d, it in items.items()}, cos)
            return self._emit(out, [(d, lex_score[d]) for d in order[:k]], items, cos, now)
        if mode == "dense":
            return self._emit(out, [(d, cos[d]) for d, _ in den if d in items][:k], items, cos, now)
        score = convex({d: s for d, s in lex_score.items() if d in items}, cos, cfg.alpha)
        if rich:
            for d, it in items.items():
                if window is not None and window[0] <= it["ts"] < window[1]:
                    score[d] += cfg.time_bonus
                score[d] += cfg.hierarchy * linked.get(d, 0.0)
                score[d] *= 1.0 + cfg.reliability * (rel.reliability(it, now, self.rcfg) - 0.5)
        ranked = sorted(score.items(), key=lambda x: (-x[1], -cos[x[0]], -items[x[0]]["ts"], x[0]))
        if rich:
            stale = self._stale_claims([items[d] for d, _ in ranked[: 3 * k]])
            ranked = [(d, s) for d, s in ranked if d not in stale]
            ranked = self._second_hop(query, ranked, items, cos, where, only_active, qvec)
            ranked = self._expand(ranked, items, cos, where, only_active, qvec)
            if mode == "hierarchical":
                top = demote_duplicates([d for d, _ in ranked[: 3 * k]], {d: items[d]["vec"] for d in items},
                                        cfg.dedup_sim)
                score = dict(ranked)
                ranked = [(d, score[d]) for d in top] + ranked[3 * k :]
            support = max((cos[d] * rel.reliability(items[d], now, self.rcfg) for d, _ in ranked[: 2 * k]),
                          default=0.0)
            return self._emit(out, ranked[:k], items, cos, now).decide(support, self.abstain_below)
        return self._emit(out, ranked[:k], items, cos, now)

    def _emit(self, out: Hits, ranked: list[tuple[str, float]], items: dict[str, Item], cos: dict[str, float],
              now: float) -> Hits:
        for d, s in ranked:
            it = items[d]
            out.append(self._public(it, score=float(s), reliability=rel.reliability(it, now, self.rcfg),
                                    similarity=cos[d]))
        return out

    def _time_window(self, query: str, where: Where, now: float, qvec: np.ndarray):
        """The date window the query names (resolved against `now`, or against an event it names) and the
        best candidates inside it, searched on their own."""
        tq = temporal.parse(query, now)
        window = tq.window
        if tq.anchor:
            found = self.store.fts(where, tq.anchor, 5)
            avec = self.embedder.encode([tq.anchor])[0]
            fused = convex(dict(found), {d: float(np.dot(avec, it["vec"])) for it in
                                         self.store.get(self.namespace, list(dict.fromkeys(
                                             [d for d, _ in found] + [d for d, _ in self.store.dense(where, avec, 5)])),
                                             with_vec=True) for d in [it["id"]]}, self.scfg.alpha)
            if fused:
                best = max(fused, key=lambda d: fused[d])
                window = temporal.around_anchor(tq, self.store.get(self.namespace, [best])[0]["ts"])
        if window is None:
            return None, []
        lo, hi = where.time_range
        inside = Where(**{**where.__dict__, "time_range": (max(window[0], lo if lo is not None else window[0]),
                                                           min(window[1], hi if hi is not None else window[1]))})
        if inside.time_range[0] > inside.time_range[1] or self.scfg.window_pool <= 0:
            return window, []
        bare = temporal.strip(query)
        m = self.scfg.window_pool
        return window, self.store.fts(inside, bare, m) + [(d, 0.0) for d, _ in self.store.dense(inside, qvec, m)]

    def _second_hop(self, query: str, ranked: list[tuple[str, float]], items: dict[str, Item],
                    cos: dict[str, float], where: Where, only_active: bool, qvec: np.ndarray) -> list[tuple[str, float]]:
        """Names in the best hits, searched again (see `keel.memory.ranking`, step 5)."""
        cfg = self.scfg
        if cfg.hop <= 0:
            return ranked
        score = dict(ranked)
        for d, s in ranked[: cfg.hop_top]:
            found = names(items[d]["text"], query)
            if not found:
                continue
            hop = [(x, b) for x, b in self.store.fts(where, " ".join(found), 5) if x != d]
            new = [x for x, _ in hop if x not in items]
            for it in self.store.get(self.namespace, new, with_vec=True):
                if matches(it, where) and (not only_active or it["status"] == "active"):
                    items[it["id"]] = it
                    cos[it["id"]] = float(np.dot(qvec, it["vec"]))
            top = max((b for _, b in hop), default=0.0)
            for x, b in hop:
                if x in items and top > 0:
                    score[x] = max(score.get(x, 0.0), cfg.hop * s * b / top)
        return sorted(score.items(), key=lambda x: (-x[1], -cos[x[0]], -items[x[0]]["ts"], x[0]))

    def _expand(self, ranked: list[tuple[str, float]], items: dict[str, Item], cos: dict[str, float], where: Where,
                only_active: bool, qvec: np.ndarray) -> list[tuple[str, float]]:
        """Context expansion: the turn before and the turn after each of the best hits (same conversation:
        within `neighbour_gap_s`) join the ranking with a share of that hit's score."""
        cfg = self.scfg
        score = dict(ranked)
        top = ranked[: cfg.expand_top]
        w = Where(**{**where.__dict__, "kinds": ("message",), "statuses": ("active",) if only_active else where.statuses})
        found = self.store.neighbours(w, [(d, items[d]["ts"]) for d, _ in top], cfg.neighbour_gap_s)
        for (_, s), pair in zip(top, zip(found[::2], found[1::2], strict=True), strict=True):
            for nb in pair:
                if nb is None:
                    continue
                if nb["id"] not in items:
                    items[nb["id"]] = nb
                    cos[nb["id"]] = float(np.dot(qvec, nb["vec"]))
                score[nb["id"]] = max(score.get(nb["id"], 0.0), cfg.neighbour * s)
        return sorted(score.items(), key=lambda x: (-x[1], -cos[x[0]], -items[x[0]]["ts"], x[0]))

    def _stale_claims(self, items: list[dict[str, Any]]) -> set[str]:
        """Messages whose slot now holds a newer, different active fact: what they state was superseded
        (the message itself stays stored, and findable by the plain modes)."""
        stale: set[str] = set()
        for slot in {it["slot"] for it in items if it.get("slot")}:
            current = [f for f in self.store.slot_items(self.namespace, slot)
                       if f["kind"] == "fact" and f["status"] == "active"]
            for it in items:
                if it.get("slot") == slot and it["kind"] == "message" and any(
                    f["ts"] > it["ts"] and (f["value"], f["polarity"]) != (it["value"], it["polarity"])
                    for f in current
                ):
                    stale.add(it["id"])
        return stale

    def _public(self, it: dict[str, Any], **extra: Any) -> dict[str, Any]:
        hit = {k: v for k, v in it.items() if k not in ("vec", "namespace")}
        if "reliability" not in extra:
            extra["reliability"] = rel.reliability(it, time.time(), self.rcfg)
        hit.update(extra)
        hit["provenance"] = dict(it["provenance"], source=it["source"], timestamp=it["ts"],
                                 modality=it["modality"], kind=it["kind"])
        return hit

    # -- maintenance ------------------------------------------------------------------------------
    def prune(self, capacity: int, now: float | None = None) -> list[str]:
        """Keep at most `capacity` active messages+facts: drop the least valuable (low reliability, rarely
        used, old); they leave search but keep their history."""
        return self.organiser.prune(capacity, now=now)

    def stats(self) -> dict[str, Any]:
        counts = self.store.counts(self.namespace)
        out: dict[str, Any] = {"namespace": self.namespace, "backend": self.store.backend,
                               "embedder": self.embedder.name}
        for kind in KINDS:
            for status in STATUSES:
                c = counts.get(f"{kind}.{status}", 0)
                if c:
                    out[f"{kind}s_{status}"] = c
        out["items"] = sum(counts.values())
        return out

    def namespaces(self) -> list[str]:
        return self.store.namespaces()

    # -- export / import (JSON lines) -------------------------------------------------------------
    def export(self, path: str | Path) -> int:
        """Write every item of this namespace (all kinds and statuses, current version) and its history,
        one JSON object per line, atomically. Returns the number of items."""
        from keel.io import atomic_write_text

        ids = self.store.history_ids(self.namespace)
        lines = []
        for i in range(0, len(ids), 500):
            for it in self.store.get(self.namespace, ids[i : i + 500]):
                rec = {k: v for k, v in it.items() if k != "namespace"}
                rec["history"] = self.store.history(self.namespace, it["id"])
                lines.append(json.dumps(rec, sort_keys=True))
        atomic_write_text(path, "".join(line + "\n" for line in lines))
        return len(lines)

    def import_(self, path: str | Path) -> int:
        """Read a JSON-lines export into this namespace in one transaction (all lines or none). Items keep
        their ids and every field (states, timestamps, version, reliability parts, usage); provenance gains
        `imported_from`; embeddings are recomputed with this memory's embedder; history restarts here."""
        p = Path(path)
        if not p.is_file():
            raise KeelError(f"import file not found: {p}")
        records = []
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise KeelError(f"{p}: not UTF-8 text (byte {e.start}); give a JSON-lines export") from None
        except OSError as e:
            raise KeelError(f"cannot read {p}: {e.strerror or e}") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise KeelError(f"{p}:{n}: not JSON ({e.msg}); nothing was imported") from None
            if not isinstance(rec, dict) or "text" not in rec:
                raise KeelError(f"{p}:{n}: each line must be an object with a 'text' field; nothing was imported")
            records.append((n, rec))
        if not records:
            raise KeelError(f"{p} holds no records")
        vecs = self.embedder.encode([self._check_text(r["text"], f"{p}:{n} text") for n, r in records])
        items = []
        existing = self.store.taken(self.namespace, [r["id"] for _, r in records if isinstance(r.get("id"), str)])
        for (n, r), v in zip(records, vecs, strict=True):
            kind = r.get("kind", "message")
            status = r.get("status", "active")
            if kind not in KINDS or status not in STATUSES:
                raise KeelError(f"{p}:{n}: kind {kind!r} / status {status!r} unknown; nothing was imported")
            try:
                ts, md = _timestamp(r.get("ts")), self._check_metadata(r.get("metadata"))
            except KeelError as e:
                raise KeelError(f"{p}:{n}: {e}; nothing was imported") from None
            prov, pol = r.get("provenance") or {}, r.get("polarity", 1)
            if not isinstance(prov, dict):
                raise KeelError(f"{p}:{n}: provenance must be an object, got {type(prov).__name__}; "
                                "nothing was imported")
            if pol not in (1, -1) or isinstance(pol, (bool, float)):
                raise KeelError(f"{p}:{n}: polarity must be 1 or -1, got {pol!r}; nothing was imported")
            it = self._item(r["text"], v, kind=kind, source=str(r.get("source", "user")),
                            ts=ts, modality=str(r.get("modality", "text")), metadata=md,
                            provenance=dict(prov, imported_from=p.name), status=status,
                            slot=r.get("slot"), value=r.get("value"), polarity=pol,
                            parent=r.get("parent"))
            rid = r.get("id")
            if isinstance(rid, str) and rid and rid not in existing:
                it["id"] = rid
                existing.add(rid)
            for key in ("consensus", "uses", "credibility", "created", "version", "last_used"):
                if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool):
                    if not math.isfinite(r[key]) or r[key] < 0:
                        raise KeelError(f"{p}:{n}: {key} must be a finite number >= 0, got {r[key]!r}; "
                                        "nothing was imported")
                    it[key] = int(r[key]) if key in ("uses", "version") else float(r[key])
            items.append(it)
        self.store.insert(items)
        return len(items)
