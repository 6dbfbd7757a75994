"""BM25 over an in-memory inverted index with numpy postings (Robertson & Zaragoza, "The Probabilistic
Relevance Framework: BM25 and Beyond", 2009; the sparse-scoring idea of bm25s, Lù 2024, arXiv 2407.03618).

    score(d, q) = sum_{t in q} idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Why not just FTS5's bm25(): FTS5 ranks every document matching any query term one row at a time, so a
query with a common word costs hundreds of milliseconds at 100k items. Here each term's postings are
two int32 arrays and scoring is a few vectorised numpy operations. The index is derived data: SQLite
(with its FTS5 table) stays the source of truth, and this index is rebuilt from it / caught up from the
store's change log, exactly like the FAISS index. It also keeps each document's timestamp, so that a
time-range filter (a date the query names) is a vectorised comparison rather than an id list from SQL.
"""

from __future__ import annotations

import io
import math
from array import array
from collections import Counter
from collections.abc import Callable

import numpy as np


class LexicalIndex:
    def __init__(self, tokenize: Callable[[str], list[str]], k1: float = 1.2, b: float = 0.75):
        self.tokenize = tokenize
        self.k1, self.b = k1, b
        self.slot_of: dict[int, int] = {}  # item rid -> slot
        self.rids = np.zeros(1024, dtype=np.int64)
        self.dl = np.zeros(1024, dtype=np.float32)
        self.ts = np.zeros(1024, dtype=np.float64)
        self.alive = np.zeros(1024, dtype=bool)
        self.size = 0
        self.n_alive = 0
        self.total_len = 0.0
        self.postings: dict[str, tuple[array, array]] = {}

    def _grow(self) -> None:
        cap = len(self.rids) * 2
        for name in ("rids", "dl", "ts", "alive"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def add(self, rid: int, text: str, ts: float = 0.0) -> None:
        if rid in self.slot_of:
            self.remove(rid)
        if self.size == len(self.rids):
            self._grow()
        slot = self.size
        self.size += 1
        tokens = self.tokenize(text)
        self.slot_of[rid] = slot
        self.rids[slot], self.dl[slot], self.ts[slot], self.alive[slot] = rid, len(tokens), ts, True
        self.n_alive += 1
        self.total_len += len(tokens)
        for term, tf in Counter(tokens).items():
            p = self.postings.get(term)
            if p is None:
                p = self.postings[term] = (array("i"), array("i"))
            p[0].append(slot)
            p[1].append(tf)

    def remove(self, rid: int) -> None:
        slot = self.slot_of.pop(rid, None)
        if slot is not None:
            self.alive[slot] = False
            self.n_alive -= 1
            self.total_len -= float(self.dl[slot])

    def _in_time(self, time_range: tuple[float | None, float | None]) -> np.ndarray:
        lo, hi = time_range
        ts = self.ts[: self.size]
        keep = self.alive[: self.size].copy()
        if lo is not None:
            keep &= ts >= lo
        if hi is not None:
            keep &= ts <= hi
        return keep

    def rids_in_time(self, time_range: tuple[float | None, float | None]) -> np.ndarray:
        """The rids of live documents whose timestamp lies in [lo, hi] (None: open)."""
        return self.rids[: self.size][self._in_time(time_range)]

    def search(self, query: str, n: int, allowed: np.ndarray | None = None,
               time_range: tuple[float | None, float | None] | None = None) -> list[tuple[int, float]]:
        """(rid, score) of the n best documents; `allowed` restricts to those rids, `time_range` to those
        timestamps."""
        if self.n_alive == 0:
            return []
        N = self.n_alive
        avgdl = max(self.total_len / N, 1e-9)
        scores = np.zeros(self.size, dtype=np.float32)
        alive = self.alive[: self.size]
        for term in set(self.tokenize(query)):
            p = self.postings.get(term)
            if p is None:
                continue
            slots = np.frombuffer(p[0], dtype=np.int32)
            tf = np.frombuffer(p[1], dtype=np.int32).astype(np.float32)
            live = alive[slots]
            df = int(live.sum())
            if df == 0 or (df > N // 2 and df > 5000):
                continue  # in over half of a large index: under ln 2 each, and a long postings list to score
            idf = math.log(1.0 + (N - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1.0 - self.b + self.b * self.dl[slots] / avgdl)
            scores[slots] += np.where(live, idf * tf * (self.k1 + 1.0) / (tf + norm), 0.0)
        if allowed is not None:
            scores[~np.isin(self.rids[: self.size], allowed)] = 0.0
        if time_range is not None:
            scores[~self._in_time(time_range)] = 0.0
        nz = np.flatnonzero(scores > 0)
        if nz.size == 0:
            return []
        top = nz[np.argsort(-scores[nz], kind="stable")[:n]] if nz.size <= n else \
            nz[np.argpartition(-scores[nz], n - 1)[:n]]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.rids[s]), float(scores[s])) for s in top]

    # -- persistence (a cache: SQLite stays the source of truth) ------------------------------------------
    def to_bytes(self, seq: int) -> bytes:
        terms = list(self.postings)
        lens = np.array([len(self.postings[t][0]) for t in terms], dtype=np.int64)
        slots = np.concatenate([np.frombuffer(self.postings[t][0], dtype=np.int32) for t in terms]) if terms \
            else np.zeros(0, dtype=np.int32)
        tfs = np.concatenate([np.frombuffer(self.postings[t][1], dtype=np.int32) for t in terms]) if terms \
            else np.zeros(0, dtype=np.int32)
        buf = io.BytesIO()
        np.savez(buf, seq=np.array([seq]), size=np.array([self.size]), rids=self.rids[: self.size],
                 dl=self.dl[: self.size], ts=self.ts[: self.size], alive=self.alive[: self.size],
                 terms=np.array("\x00".join(terms)),
                 lens=lens, slots=slots, tfs=tfs)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, tokenize: Callable[[str], list[str]], data: bytes) -> tuple[LexicalIndex, int]:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        lex = cls(tokenize)
        size = int(z["size"][0])
        cap = max(1024, size)
        lex.rids, lex.dl, lex.ts, lex.alive = (np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.float32),
                                               np.zeros(cap, dtype=np.float64), np.zeros(cap, dtype=bool))
        # a file from before timestamps were kept has no "ts": KeyError, and the caller rebuilds it
        lex.rids[:size], lex.dl[:size], lex.ts[:size], lex.alive[:size] = z["rids"], z["dl"], z["ts"], z["alive"]
        lex.size = size
        live = np.flatnonzero(lex.alive[:size])
        lex.slot_of = dict(zip(lex.rids[live].tolist(), live.tolist(), strict=True))
        lex.n_alive = len(live)
        lex.total_len = float(lex.dl[live].sum())
        text = str(z["terms"])
        terms = text.split("\x00") if text else []
        ends = np.cumsum(z["lens"])
        slots, tfs = z["slots"], z["tfs"]
        start = 0
        for t, end in zip(terms, ends.tolist(), strict=True):
            lex.postings[t] = (array("i", slots[start:end].tobytes()), array("i", tfs[start:end].tobytes()))
            start = end
        return lex, int(z["seq"][0])
