"""The memory browser: namespaces, items with reliability and provenance, an item's history, and one
query answered by every search mode side by side. Only `keel.memory.Memory`'s public face is used
(`namespaces`, `export`, `get`, `history`, `search` with `track_use=False`, so browsing changes nothing).

Every call runs on one worker thread: a SQLite connection belongs to the thread that opened it, while
the web server answers requests from a pool.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from keel.errors import KeelError

CACHE_SECONDS = 5.0  # how long an item listing of a namespace is reused


def make_embedder(name: str):
    """`minilm` (the default memory embedder) or `hash-DIM` (the feature-hashing one, for tests)."""
    from keel.memory.embedder import HashEmbedder, default_embedder

    if name == "minilm":
        return default_embedder()
    if name.startswith("hash-") and name[5:].isdigit():
        return HashEmbedder(int(name[5:]))
    raise KeelError(f"--memory-embedder {name!r}: use minilm or hash-DIM (the embedder the memory was made with)")


def check_location(location: str) -> str:
    if location.startswith(("postgresql://", "postgres://")):
        return location
    if not Path(location).is_file():
        raise KeelError(f"--memory {location}: no such memory file (give a memory .db file or a postgresql:// URL)")
    return str(Path(location).resolve())


class MemoryBrowser:
    def __init__(self, location: str, embedder: str = "minilm"):
        self.location = check_location(location)
        self.embedder_name = embedder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-memory")
        self._mems: dict[str, Any] = {}
        self._listing: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._embedder = None

    def _run(self, fn, *args):
        return self._pool.submit(fn, *args).result()

    def _mem(self, namespace: str):
        from keel.memory import Memory

        if self._embedder is None:
            self._embedder = make_embedder(self.embedder_name)
        if namespace not in self._mems:
            self._mems[namespace] = Memory(self.location, namespace=namespace, embedder=self._embedder)
        return self._mems[namespace]

    def close(self) -> None:
        def _close():
            for m in self._mems.values():
                m.close()
        self._run(_close)
        self._pool.shutdown()

    # -- what the pages ask -------------------------------------------------------------------------
    def namespaces(self) -> list[dict[str, Any]]:
        def go():
            names = self._mem("default").namespaces()
            return [self._mem(n).stats() for n in names]
        return self._run(go)

    def items(self, namespace: str, offset: int = 0, limit: int = 50, text: str = "") -> dict[str, Any]:
        def go():
            listing = self._all_items(namespace)
            chosen = [it for it in listing if text.lower() in it["text"].lower()] if text else listing
            mem = self._mem(namespace)
            page = [_brief(mem.get(it["id"])) for it in chosen[offset: offset + limit]]
            return {"total": len(chosen), "offset": offset, "items": page}
        return self._run(go)

    def _all_items(self, namespace: str) -> list[dict[str, Any]]:
        hit = self._listing.get(namespace)
        if hit and time.time() - hit[0] < CACHE_SECONDS:
            return hit[1]
        fd, tmp = tempfile.mkstemp(suffix=".jsonl", prefix="keel-serve-")
        os.close(fd)
        try:
            self._mem(namespace).export(tmp)
            rows = [json.loads(line) for line in Path(tmp).read_text(encoding="utf-8").splitlines() if line]
        finally:
            os.unlink(tmp)
        rows = [{"id": r["id"], "text": r["text"], "ts": r.get("ts", 0)} for r in rows]
        rows.sort(key=lambda r: -(r["ts"] or 0))
        self._listing[namespace] = (time.time(), rows)
        return rows

    def item(self, namespace: str, item_id: str) -> dict[str, Any]:
        def go():
            mem = self._mem(namespace)
            return {"item": _brief(mem.get(item_id), full=True), "history": mem.history(item_id)}
        return self._run(go)

    def search(self, namespace: str, query: str, k: int = 5) -> dict[str, Any]:
        from keel.memory.memory import MODES

        def go():
            mem = self._mem(namespace)
            out = {}
            for mode in MODES:
                t0 = time.perf_counter()
                hits = mem.search(query, k=k, mode=mode, track_use=False)
                out[mode] = {"hits": [_brief(h) for h in hits], "abstained": hits.abstained,
                             "support": hits.support, "ms": 1000 * (time.perf_counter() - t0)}
            return out
        return self._run(go)


def _brief(it: dict[str, Any], full: bool = False) -> dict[str, Any]:
    keys = ("id", "kind", "status", "text", "source", "ts", "reliability", "credibility", "consensus", "uses",
            "version", "slot", "value", "score", "similarity", "provenance")
    out = {k: it.get(k) for k in keys if k in it}
    if full:
        out.update({k: v for k, v in it.items() if k not in out})
    return out
