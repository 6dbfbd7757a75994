"""`Memory`: the one face of Keel's long-term memory (method names after Mem0's).

    mem = Memory("memory.db", namespace="alice")          # or "postgresql://..." for a shared server
    ids = mem.add("I moved to Lisbon last spring", source="user")
    hits = mem.search("where does she live?", k=5)        # hybrid BM25 + dense, weighted by reliability
    mem.update(ids[0], "I moved to Porto"); mem.history(ids[0]); mem.delete(ids[0])
    mem.export("alice.jsonl"); Memory("other.db", namespace="alice").import_("alice.jsonl")

Each namespace is one user's memory; nothing crosses between them (every query carries the namespace).
Adding messages also organises them (`keel.memory.hierarchy`): episodes, facts with supersession,
themes; and scores reliability (`keel.memory.reliability`). Search modes: "bm25", "dense", "hybrid"
(reciprocal-rank fusion), "reliable" (hybrid reweighted by MMA reliability, superseded items left out,
abstains on weak support; the default) and "hierarchical" (xMemory top-down, diverse).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.memory import reliability as rel
from keel.memory.embedder import Embedder, default_embedder
from keel.memory.retrieval import rrf
from keel.memory.store import KINDS, STATUSES, check_namespace, parse_filters

MODES = ("bm25", "dense", "hybrid", "reliable", "hierarchical")
MAX_CHARS = 100_000
MAX_METADATA_BYTES = 64_000


class Hits(list):
    """A list of hit dicts (id, text, score, reliability, metadata, provenance, ...), plus whether the
    search abstained (its best support was below the threshold) and that support."""

    abstained: bool = False
    support: float = 0.0
    mode: str = "reliable"


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


def open_store(location: str | Path, dim: int, embedder_name: str, lexical: str = "memory"):
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
        hierarchy=None,
        lexical: str = "memory",
    ):
        self.namespace = check_namespace(namespace)
        self.embedder = embedder or default_embedder()
        self.rcfg = reliability or rel.ReliabilityConfig()
        self.organise = organise
        self.abstain_below = abstain_below
        self.max_chars = max_chars
        self.store = open_store(location, self.embedder.dim, self.embedder.name, lexical)
        self.location = str(location)
        self._organiser = None
        self._hierarchy_cfg = hierarchy  # a keel.memory.hierarchy.HierarchyConfig, or None for defaults

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def organiser(self):
        if self._organiser is None:
            from keel.memory.hierarchy import Organiser

            self._organiser = Organiser(self, self._hierarchy_cfg)
        return self._organiser

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
              value: str | None = None, polarity: int = 1, parent: str | None = None) -> dict[str, Any]:
        now = time.time()
        return {
            "id": uuid.uuid4().hex, "namespace": self.namespace, "kind": kind, "text": text,
            "source": source, "modality": modality, "ts": now if ts is None else ts, "created": now,
            "metadata": metadata or {}, "provenance": provenance or {}, "status": status, "version": 1,
            "credibility": self.rcfg.source_credibility(source), "consensus": 0.5, "uses": 0,
            "last_used": None, "parent": parent, "slot": slot, "value": value, "polarity": polarity,
            "vec": vec,
        }

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
        item = self.store.update(self.namespace, item_id, fields, "update")
        if self.organise and "vec" in fields:
            item["vec"] = fields["vec"]
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
        if mode == "hierarchical":
            hits = self.organiser.top_down(query, k, where, now=now, only_active=only_active)
        else:
            hits = self._search_flat(query, k, where, mode, now, only_active)
        if track_use and hits:
            self.store.touch(self.namespace, [h["id"] for h in hits], time.time())
        return hits

    def _search_flat(self, query: str, k: int, where, mode: str, now: float | None, only_active: bool) -> Hits:
        n = max(50, 4 * k)
        qvec = self.embedder.encode([query])[0]
        lex = self.store.fts(where, query, n) if mode in ("bm25", "hybrid", "reliable") else []
        den = self.store.dense(where, qvec, n) if mode in ("dense", "hybrid", "reliable") else []
        fused = lex if mode == "bm25" else den if mode == "dense" else rrf([lex, den])
        out = Hits()
        out.mode = mode
        if not fused:
            out.abstained = mode == "reliable"
            return out
        # MMA reweights the evidence retrieval found: a window of the 2k best-fused items, so that a very
        # reliable but irrelevant item from far down the ranking cannot jump in
        window = 4 * k if mode == "reliable" else (2 * k if only_active else k)
        items = {it["id"]: it for it in self.store.get(self.namespace, [d for d, _ in fused[:window]], with_vec=True)
                 if not only_active or it["status"] == "active"}
        fused = [(d, s) for d, s in fused if d in items]
        cand = fused[: 2 * k if mode == "reliable" else k]
        now = time.time() if now is None else now
        stale = self._stale_claims(list(items.values())) if mode == "reliable" else set()
        scored = []
        for doc, s in cand:
            it = items.get(doc)
            if it is None or it["id"] in stale:
                continue
            r = rel.reliability(it, now, self.rcfg)
            sim = float(np.dot(qvec, it["vec"]))
            score = s * (0.25 + r) if mode == "reliable" else s
            scored.append((score, r, sim, it))
        scored.sort(key=lambda x: -x[0])
        for score, r, sim, it in scored[:k]:
            out.append(self._public(it, score=score, reliability=r, similarity=sim))
        if mode == "reliable":
            out.support = max((sim * r for _, r, sim, _ in scored), default=0.0)
            if out.support < self.abstain_below:
                out.abstained = True
                out.clear()
        return out

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
        their ids, states and timestamps; embeddings are recomputed with this memory's embedder."""
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
            for key in ("consensus", "uses"):
                if isinstance(r.get(key), (int, float)):
                    if not math.isfinite(r[key]) or r[key] < 0:
                        raise KeelError(f"{p}:{n}: {key} must be a finite number >= 0, got {r[key]!r}; "
                                        "nothing was imported")
                    it[key] = r[key]
            items.append(it)
        self.store.insert(items)
        return len(items)
