"""The embedded default store: one SQLite file (WAL, transactions), FTS5 for BM25, FAISS for vectors.

Durability: SQLite is the source of truth. Each write is one `BEGIN IMMEDIATE` transaction that writes
the item, its full-text row, a history row and a change-log row together, with `synchronous=FULL`,
so an acknowledged write survives a SIGKILL or power loss. The FAISS index (an exact inner-product
index per namespace and kind) is derived data: it remembers the change-log sequence number it reflects,
is saved atomically next to the database, and on open (or when another process has written) it
replays the change log from that number. A missing or corrupt index file is rebuilt from SQLite.

Several processes may write one file at once: SQLite serialises the writers, and each process catches
its in-memory vector index up from the change log before it searches. Write transactions are short and
taken by polling every millisecond or so (see `_begin`), so two busy writers both make progress; one
that waits BUSY_TIMEOUT seconds gets a clear "busy" error. A file the user may not write (permissions,
immutable flag) opens read-only: searches work, and writes say that it is read-only.

(The Python here is built without `enable_load_extension`, so `sqlite-vec` cannot be loaded; FAISS,
kept beside the file, is the vector index.)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.io import atomic_write_bytes
from keel.memory.lexical import LexicalIndex
from keel.memory.store import COLUMNS, INDEXED, Where, query_terms

SCHEMA_VERSION = 1
SAVE_EVERY = 5000  # replayed changes after which an index is saved again (or half its size, if larger)
IVF_MIN = 40_000  # from this many vectors, an IVF index replaces exact search (retrained as it grows 4x)
NPROBE = 48  # IVF cells scanned per query
BUSY_TIMEOUT = 60.0  # seconds a writer waits for another process's write transaction before giving up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  rid INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL, namespace TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
  source TEXT NOT NULL, modality TEXT NOT NULL, ts REAL NOT NULL, created REAL NOT NULL,
  metadata TEXT NOT NULL, provenance TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
  credibility REAL NOT NULL, consensus REAL NOT NULL, uses INTEGER NOT NULL, last_used REAL,
  parent TEXT, slot TEXT, value TEXT, polarity INTEGER NOT NULL, vec BLOB NOT NULL,
  UNIQUE (namespace, id)
);
CREATE INDEX IF NOT EXISTS items_ns ON items(namespace, kind, status, ts);
CREATE INDEX IF NOT EXISTS items_slot ON items(namespace, slot);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(text, tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS items_vocab USING fts5vocab(items_fts, 'row');
CREATE TABLE IF NOT EXISTS history (
  hid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, namespace TEXT NOT NULL, version INTEGER NOT NULL,
  op TEXT NOT NULL, at REAL NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_id ON history(id);
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, kind TEXT NOT NULL, rid INTEGER NOT NULL,
  op TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_ns ON changes(namespace, kind, seq);
"""

_SELECT = ", ".join(COLUMNS)
_WORD = re.compile(r"\w+", re.UNICODE)


def _row_to_item(row: sqlite3.Row | tuple, with_vec: bool = False) -> dict[str, Any]:
    item = dict(zip(COLUMNS, row[: len(COLUMNS)], strict=True))
    item["metadata"] = json.loads(item["metadata"])
    item["provenance"] = json.loads(item["provenance"])
    if with_vec:
        item["vec"] = np.frombuffer(row[len(COLUMNS)], dtype=np.float32)
    return item


class _VectorIndex:
    """One namespace+kind's FAISS index and the change-log sequence number it reflects."""

    def __init__(self, dim: int):
        import faiss

        # One thread: these searches are small, and OpenMP threads spinning on a shared 2-core machine
        # cost far more than they save (measured: 19 ms -> well under 1 ms for a small index).
        faiss.omp_set_num_threads(1)
        self.faiss = faiss
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.seq = 0
        self.unsaved = 0

    @property
    def is_ivf(self) -> bool:
        return isinstance(self.index, self.faiss.IndexIVF)

    @property
    def trained_size(self) -> int:
        return int(self.index.nlist) ** 2 if self.is_ivf else 0

    def build_ivf(self, vecs: np.ndarray, ids: np.ndarray, seed: int = 0) -> None:
        """An inverted-file index (Jegou, Douze & Schmid 2011, as in FAISS): k-means cells of about sqrt(n)
        vectors, and a query scans the NPROBE cells nearest to it instead of every vector. Exact search
        at 100k items reads 150 MB per query (~20 ms here); this reads a few percent of it."""
        faiss = self.faiss
        n = len(vecs)
        nlist = max(64, int(np.sqrt(n)))
        self._quantizer = faiss.IndexFlatIP(self.dim)  # kept alive: the IVF index points to it
        ivf = faiss.IndexIVFFlat(self._quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 10
        ivf.cp.seed = seed
        sample = np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False)
        ivf.train(vecs[sample])
        ivf.add_with_ids(vecs, ids)
        ivf.nprobe = NPROBE
        self.index = ivf

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None):
        faiss = self.faiss
        if self.is_ivf:
            self.index.nprobe = NPROBE
            params = faiss.SearchParametersIVF(nprobe=NPROBE)
            if allowed is not None:
                params.sel = faiss.IDSelectorBatch(allowed)
            return self.index.search(q, k, params=params)
        if allowed is None:
            return self.index.search(q, k)
        return self.index.search(q, k, params=faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed)))

    def to_bytes(self) -> bytes:
        blob = self.faiss.serialize_index(self.index).tobytes()
        return b"KEELVEC1" + struct.pack("<q", self.seq) + hashlib.sha1(blob).digest() + blob

    @classmethod
    def from_bytes(cls, dim: int, data: bytes) -> _VectorIndex | None:
        if len(data) < 36 or data[:8] != b"KEELVEC1":
            return None
        seq = struct.unpack("<q", data[8:16])[0]
        blob = data[36:]
        if hashlib.sha1(blob).digest() != data[16:36]:
            return None
        vi = cls(dim)
        index = vi.faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        if index.d != dim:
            return None
        vi.index, vi.seq = index, seq
        return vi


class SQLiteStore:
    backend = "sqlite"

    def __init__(self, path: str | Path, dim: int, embedder_name: str, lexical: str = "memory"):
        if lexical not in ("memory", "fts5"):
            raise KeelError(f"lexical must be 'memory' or 'fts5', got {lexical!r}")
        self.lexical = lexical
        self.path = Path(path)
        self.dim = dim
        if self.path.exists() and self.path.is_dir():
            raise KeelError(f"{self.path} is a folder; give the path of a memory file (e.g. memory.db)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # An in-memory database keeps its index caches in a private temporary folder: beside ":memory:" they
        # would land in the working directory, where the next in-memory store would load them as its own.
        self._tmp = tempfile.TemporaryDirectory(prefix="keel-memory-") if str(path) == ":memory:" else None
        self.vec_dir = Path(self._tmp.name) if self._tmp else self.path.with_name(self.path.name + ".vec")
        self._depth = 0
        self._stems: dict[str, str] = {}
        self._lex: dict[tuple[str, str], tuple[LexicalIndex, list[int]]] = {}
        self._indexes: dict[tuple[str, str], _VectorIndex] = {}
        self._touched: set[tuple[str, str]] = set()  # (namespace, kind) indexes the open transaction changes
        # os.access also sees the immutable flag, which binds root too
        self.read_only = self.path.is_file() and not os.access(self.path, os.W_OK)
        self.db: sqlite3.Connection | None = None
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self._connect(embedder_name)
                break
            except sqlite3.OperationalError as e:
                # Two processes opening a new file at once: switching it to WAL and creating the schema take
                # locks for which SQLite may answer "locked" at once instead of calling its busy handler.
                # Those steps are idempotent, so start over on a fresh connection.
                if self.db is not None:
                    self.db.close()
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                    raise self._unreadable(e) from None
                time.sleep(random.uniform(0.001, 0.02))
            except sqlite3.DatabaseError as e:
                if self.db is not None:
                    self.db.close()
                raise self._unreadable(e) from None

    def _unreadable(self, e: sqlite3.DatabaseError) -> KeelError:
        if "locked" in str(e) or "busy" in str(e):
            return KeelError(f"{self.path} is busy: another process held it locked for {BUSY_TIMEOUT:.0f} s "
                             "while this one opened it; try again when it is done")
        return KeelError(
            f"{self.path} is not a readable Keel memory ({e}); restore it from a backup or an export "
            "(keel memory import), or choose a new path"
        )

    def _connect(self, embedder_name: str) -> None:
        """Open the connection, make sure of WAL mode and the schema, and check the file's metadata."""
        if self.read_only:
            uri = f"file:{self.path.resolve().as_posix()}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None, check_same_thread=False)
        else:
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=60000")
        if not self.read_only:
            self.db.executescript(_SCHEMA)  # idempotent CREATE ... IF NOT EXISTS, each autocommitted
        self.db.execute("CREATE VIRTUAL TABLE temp.stemmer USING fts5(t, tokenize='porter unicode61')")
        self.db.execute("CREATE VIRTUAL TABLE temp.stemmer_v USING fts5vocab(temp, stemmer, 'row')")
        self.db.execute("CREATE VIRTUAL TABLE temp.stemmer_i USING fts5vocab(temp, stemmer, 'instance')")
        if self.read_only:
            self._check_meta(embedder_name)
        else:
            with self._tx():
                self._check_meta(embedder_name)

    # -- plumbing ---------------------------------------------------------------------------------
    class _Tx:
        """A write transaction; nested ones join the outermost (so `batch()` makes one commit of many)."""

        def __init__(self, store: SQLiteStore):
            self.store = store

        def __enter__(self):
            if self.store.read_only:
                raise KeelError(f"{self.store.path} is read-only: searching works, but adding or changing "
                                "memories needs write access to the file (check its permissions)")
            if self.store._depth == 0:
                self.store._begin()
            self.store._depth += 1
            return self.store.db

        def __exit__(self, exc_type, exc, tb):
            self.store._depth -= 1
            if self.store._depth == 0:
                if exc_type is None:
                    self.store.db.execute("COMMIT")
                    self.store._catch_up()
                else:
                    self.store._touched.clear()
                    self.store.db.execute("ROLLBACK")
                    # vector indexes may have replayed rolled-back changes: reload them from the database
                    self.store._indexes.clear()
                    self.store._lex.clear()
            return False

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, retried every ~1 ms (with jitter) until BUSY_TIMEOUT. SQLite's own busy handler
        sleeps longer and longer between tries, so a process that commits and begins again in a loop
        took the lock every time and starved a second writer for its whole run (and a CLI `memory add`
        beside it died with "database is locked"). Frequent tries land in the other writer's gaps."""
        self.db.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + BUSY_TIMEOUT
        try:
            while True:
                try:
                    self.db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) and "busy" not in str(e):
                        raise
                    if time.monotonic() > deadline:
                        raise KeelError(
                            f"{self.path} is busy: another process held its write lock for {BUSY_TIMEOUT:.0f} s; "
                            "try again when it is done"
                        ) from None
                    time.sleep(random.uniform(0.0002, 0.002))
        finally:
            self.db.execute("PRAGMA busy_timeout=60000")

    def _tx(self) -> SQLiteStore._Tx:
        return SQLiteStore._Tx(self)

    def batch(self) -> SQLiteStore._Tx:
        """Group several writes into one transaction (one fsync): all of them happen, or none."""
        return SQLiteStore._Tx(self)

    def _check_meta(self, embedder_name: str) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        want = {"schema": str(SCHEMA_VERSION), "dim": str(self.dim), "embedder": embedder_name}
        if not meta:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", list(want.items()))
            return
        if meta.get("schema") != want["schema"]:
            raise KeelError(f"{self.path}: schema version {meta.get('schema')}, this Keel reads {SCHEMA_VERSION}")
        if meta.get("embedder") != embedder_name or meta.get("dim") != want["dim"]:
            raise KeelError(
                f"{self.path} was written with embedder {meta.get('embedder')} (dim {meta.get('dim')}), "
                f"not {embedder_name} (dim {self.dim}); open it with the same embedder, or export and re-import"
            )

    def close(self) -> None:
        if self.read_only:  # the derived index files beside a read-only memory are left as they are
            self._indexes.clear()
            self._lex.clear()
        for key, vi in self._indexes.items():
            if vi.unsaved:
                self._save_index(key, vi)
        for key, (_, seq) in self._lex.items():
            if seq[1]:
                self._save_lexical(key)
        self._indexes.clear()
        self._lex.clear()
        self.db.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- writes -----------------------------------------------------------------------------------
    def insert(self, items: list[dict[str, Any]]) -> list[str]:
        """Insert items in one transaction: all are stored, or none."""
        now = time.time()
        with self._tx() as db:
            for it in items:
                vec = np.asarray(it["vec"], dtype=np.float32)
                values = [it[c] for c in COLUMNS]
                values[COLUMNS.index("metadata")] = json.dumps(it["metadata"], sort_keys=True)
                values[COLUMNS.index("provenance")] = json.dumps(it["provenance"], sort_keys=True)
                cur = db.execute(
                    f"INSERT INTO items ({_SELECT}, vec) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                    [*values, vec.tobytes()],
                )
                rid = cur.lastrowid
                if it["status"] in INDEXED:
                    self._touched.add((it["namespace"], it["kind"]))
                    db.execute("INSERT INTO items_fts(rowid, text) VALUES (?, ?)", (rid, it["text"]))
                    db.execute(
                        "INSERT INTO changes(namespace, kind, rid, op) VALUES (?, ?, ?, 'put')",
                        (it["namespace"], it["kind"], rid),
                    )
                self._history(db, it, "add", now)
        return [it["id"] for it in items]

    def _history(self, db, item: dict[str, Any], op: str, at: float) -> None:
        record = {k: item[k] for k in COLUMNS if k not in ("namespace",)}
        db.execute(
            "INSERT INTO history(id, namespace, version, op, at, record) VALUES (?, ?, ?, ?, ?, ?)",
            (item["id"], item["namespace"], item["version"], op, at, json.dumps(record, sort_keys=True)),
        )

    def update(self, namespace: str, item_id: str, fields: dict[str, Any], op: str,
               record_history: bool = True) -> dict[str, Any]:
        """Change fields of one item; text or vector changes re-index it, leaving the index drops it."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_SELECT}, rid FROM items WHERE id = ? AND namespace = ?", (item_id, namespace)
            ).fetchone()
            if row is None:
                raise KeelError(f"no memory {item_id!r} in namespace {namespace!r}")
            item = _row_to_item(row)
            rid = row[-1]
            was_indexed = item["status"] in INDEXED
            item.update({k: v for k, v in fields.items() if k != "vec"})
            if record_history:
                item["version"] += 1
            sets = {k: item[k] for k in fields if k != "vec"}
            sets["version"] = item["version"]
            sets["metadata"] = json.dumps(item["metadata"], sort_keys=True)
            sets["provenance"] = json.dumps(item["provenance"], sort_keys=True)
            if "vec" in fields:
                sets["vec"] = np.asarray(fields["vec"], dtype=np.float32).tobytes()
            db.execute(
                f"UPDATE items SET {', '.join(f'{k} = ?' for k in sets)} WHERE rid = ?", [*sets.values(), rid]
            )
            now_indexed = item["status"] in INDEXED
            if was_indexed and (not now_indexed or "text" in fields):
                db.execute("DELETE FROM items_fts WHERE rowid = ?", (rid,))
            if now_indexed and (not was_indexed or "text" in fields):
                db.execute("INSERT INTO items_fts(rowid, text) VALUES (?, ?)", (rid, item["text"]))
            if was_indexed != now_indexed or {"vec", "text", "ts"} & set(fields):  # what the indexes hold
                self._touched.add((namespace, item["kind"]))
                db.execute(
                    "INSERT INTO changes(namespace, kind, rid, op) VALUES (?, ?, ?, ?)",
                    (namespace, item["kind"], rid, "put" if now_indexed else "del"),
                )
            if record_history:
                self._history(db, item, op, time.time())
        return item

    def touch(self, namespace: str, ids: list[str], at: float) -> None:
        """Count a use of each item (retrieval), without a history row: usage is not content."""
        if not ids or self.read_only:  # a read-only memory still answers searches; usage goes uncounted
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET uses = uses + 1, last_used = ? WHERE id = ? AND namespace = ?",
                [(at, i, namespace) for i in ids],
            )

    # -- reads ------------------------------------------------------------------------------------
    def _where_sql(self, where: Where, alias: str = "") -> tuple[str, list[Any]]:
        a = alias
        parts = [f"{a}namespace = ?"]
        params: list[Any] = [where.namespace]
        for col, values in (("kind", where.kinds), ("status", where.statuses)):
            parts.append(f"{a}{col} IN ({', '.join('?' * len(values))})")
            params += list(values)
        for col, values in where.equals.items():
            parts.append(f"{a}{col} IN ({', '.join('?' * len(values))})")
            params += list(values)
        for key, values in where.meta.items():
            parts.append(f"json_extract({a}metadata, '$.{key}') IN ({', '.join('?' * len(values))})")
            params += [int(v) if isinstance(v, bool) else v for v in values]
        lo, hi = where.time_range
        if lo is not None:
            parts.append(f"{a}ts >= ?")
            params.append(lo)
        if hi is not None:
            parts.append(f"{a}ts <= ?")
            params.append(hi)
        return " AND ".join(parts), params

    def get(self, namespace: str, ids: list[str], with_vec: bool = False) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        cols = _SELECT + (", vec" if with_vec else "")
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.db.execute(
                f"SELECT {cols} FROM items WHERE namespace = ? AND id IN ({', '.join('?' * len(chunk))})",
                [namespace, *chunk],
            ).fetchall()
            for r in rows:
                it = _row_to_item(r, with_vec)
                out[it["id"]] = it
        return [out[i] for i in ids if i in out]

    def select(self, where: Where, with_vec: bool = False, limit: int | None = None,
               order: str = "ts") -> list[dict[str, Any]]:
        sql, params = self._where_sql(where)
        cols = _SELECT + (", vec" if with_vec else "")
        lim = f" LIMIT {int(limit)}" if limit else ""
        rows = self.db.execute(f"SELECT {cols} FROM items WHERE {sql} ORDER BY {order}{lim}", params).fetchall()
        return [_row_to_item(r, with_vec) for r in rows]

    def slot_items(self, namespace: str, slot: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {_SELECT} FROM items WHERE namespace = ? AND slot = ? AND status IN ('active', 'superseded')",
            (namespace, slot),
        ).fetchall()
        return [_row_to_item(r) for r in rows]

    def neighbours(self, where: Where, anchors: list[tuple[str, float]], gap: float) -> list[dict[str, Any] | None]:
        """For each (id, ts): the item matching `where` just before it (within `gap` seconds), then the one
        just after it; None where there is none. Vectors included."""
        out: list[dict[str, Any] | None] = []
        for d, ts in anchors:
            for lo, hi, order in ((ts - gap, ts, "ts DESC"), (ts, ts + gap, "ts ASC")):
                w = Where(**{**where.__dict__, "time_range": (lo, hi)})
                out.append(next((x for x in self.select(w, with_vec=True, limit=3, order=order) if x["id"] != d), None))
        return out

    def fts(self, where: Where, query: str, n: int) -> list[tuple[str, float]]:
        """BM25 over items matching `where`: the in-memory index (`keel.memory.lexical`) by default, or
        FTS5's own bm25() when the store was opened with lexical="fts5"."""
        if self.lexical == "fts5":
            return self._fts5(where, query, n)
        scored: dict[int, float] = {}
        for kind in where.kinds:
            lex = self._lexical(where.namespace, kind)
            if where.is_time_only():  # a date window: the index's own timestamps, no id list from SQL
                scored.update(lex.search(query, n, time_range=where.time_range))
                continue
            allowed = None if where.is_plain() else self._allowed(where, kind)
            if allowed is not None and allowed.size == 0:
                continue
            scored.update(lex.search(query, n, allowed))
        return self._named(sorted(scored.items(), key=lambda x: -x[1])[:n])

    def _allowed(self, where: Where, kind: str) -> np.ndarray:
        sql, params = self._where_sql(Where(**{**where.__dict__, "kinds": (kind,)}))
        return np.array([r[0] for r in self.db.execute(f"SELECT rid FROM items WHERE {sql}", params)], dtype=np.int64)

    def _named(self, top: list[tuple[int, float]]) -> list[tuple[str, float]]:
        if not top:
            return []
        rids = [r for r, _ in top]
        names = dict(self.db.execute(
            f"SELECT rid, id FROM items WHERE rid IN ({', '.join('?' * len(rids))})", rids).fetchall())
        return [(names[r], s) for r, s in top if r in names]

    def _fts5(self, where: Where, query: str, n: int) -> list[tuple[str, float]]:
        """BM25 (FTS5's bm25(), negated so that higher is better) over items matching `where`."""
        terms = self._informative(query_terms(query))
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        sql, params = self._where_sql(where, "i.")
        rows = self.db.execute(
            f"SELECT i.id, -bm25(items_fts) AS s FROM items_fts JOIN items i ON i.rid = items_fts.rowid "
            f"WHERE items_fts MATCH ? AND {sql} ORDER BY bm25(items_fts) LIMIT ?",
            [match, *params, n],
        ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def _informative(self, terms: list[str]) -> list[str]:
        """Drop query terms found in more than half of all documents. FTS5's BM25 gives such a term an IDF
        of 1e-6, so it changes no score, but matching it means scanning most of the index (words like
        "the" made a 100k-item search take hundreds of ms). Document frequencies come from fts5vocab."""
        if len(terms) <= 1:
            return terms
        n_docs = self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM items_fts").fetchone()[0]
        df = dict(self.db.execute(
            f"SELECT term, doc FROM items_vocab WHERE term IN ({', '.join('?' * len(terms))})",
            [self._stem(t) for t in terms]).fetchall())
        keep = [t for t in terms if df.get(self._stem(t), 0) <= n_docs / 2]
        return keep or terms

    def _stem(self, term: str) -> str:
        if term not in self._stems:
            self._learn_stems([term])
        return self._stems[term]

    def _learn_stems(self, terms: list[str]) -> None:
        """The index's form of terms: run them through the same tokenizer (porter + unicode61) in a
        temporary FTS5 table, one row per term, and read the tokens back from its vocabulary."""
        new = [t for t in dict.fromkeys(terms) if t not in self._stems]
        if len(self._stems) + len(new) > 500_000:
            self._stems.clear()
        for i in range(0, len(new), 5000):
            chunk = new[i : i + 5000]
            self.db.execute("SAVEPOINT stems")  # one transaction for the batch, nested or not
            self.db.executemany("INSERT INTO temp.stemmer(rowid, t) VALUES (?, ?)", enumerate(chunk))
            got = dict(self.db.execute("SELECT doc, term FROM temp.stemmer_i").fetchall())
            self.db.execute("DELETE FROM temp.stemmer")
            self.db.execute("RELEASE stems")
            for j, t in enumerate(chunk):
                self._stems[t] = got.get(j, t)

    def _tokens(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        missing = [w for w in words if w not in self._stems]
        if missing:
            self._learn_stems(missing)
        return [self._stems[w] for w in words]

    def dense(self, where: Where, qvec: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Exact inner-product (cosine) search; filters other than kind use FAISS ID selectors."""
        q = np.asarray(qvec, dtype=np.float32).reshape(1, -1)
        scored: dict[int, float] = {}
        for kind in where.kinds:
            vi = self._index(where.namespace, kind)
            if vi.index.ntotal == 0:
                continue
            if where.is_plain():
                dist, ids = vi.search(q, min(n, vi.index.ntotal))
            else:
                allowed = self._lexical(where.namespace, kind).rids_in_time(where.time_range) \
                    if where.is_time_only() and self.lexical == "memory" else self._allowed(where, kind)
                if allowed.size == 0:
                    continue
                dist, ids = vi.search(q, min(n, allowed.size), allowed)
            for d, i in zip(dist[0], ids[0], strict=True):
                if i >= 0:
                    scored[int(i)] = float(d)
        return self._named(sorted(scored.items(), key=lambda x: -x[1])[:n])

    def history(self, namespace: str, item_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT version, op, at, record FROM history WHERE namespace = ? AND id = ? ORDER BY hid",
            (namespace, item_id),
        ).fetchall()
        return [{"version": v, "op": op, "at": at, **json.loads(rec)} for v, op, at, rec in rows]

    def taken(self, namespace: str, ids: list[str]) -> set[str]:
        """Which of these ids exist in the namespace."""
        return {it["id"] for it in self.get(namespace, ids)}

    def namespaces(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT namespace FROM items ORDER BY namespace")]

    def counts(self, namespace: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT kind, status, COUNT(*) FROM items WHERE namespace = ? GROUP BY kind, status", (namespace,)
        ).fetchall()
        return {f"{k}.{s}": c for k, s, c in rows}

    def history_ids(self, namespace: str) -> list[str]:
        """Every item id that ever existed in the namespace (for export of full history)."""
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT id FROM history WHERE namespace = ? ORDER BY hid", (namespace,))]

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- the derived indexes ----------------------------------------------------------------------------
    def _max_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]

    def _changes_since(self, namespace: str, kind: str, seq: int) -> tuple[list[tuple[int, int, str]], dict[int, str]]:
        """The (namespace, kind) change-log rows after `seq`, and the last op of each rid they touch."""
        rows = self.db.execute(
            "SELECT seq, rid, op FROM changes WHERE namespace = ? AND kind = ? AND seq > ? ORDER BY seq",
            (namespace, kind, seq),
        ).fetchall()
        last: dict[int, str] = {}
        for _, rid, op in rows:
            last[rid] = op
        return rows, last

    def _live_rows(self, rids: list[int], column: str):
        """(rid, column) of the active or superseded items among `rids`, a list per chunk of 5000."""
        for i in range(0, len(rids), 5000):
            chunk = rids[i : i + 5000]
            yield self.db.execute(
                f"SELECT rid, {column} FROM items WHERE rid IN ({', '.join('?' * len(chunk))}) "
                "AND status IN ('active', 'superseded')", chunk,
            ).fetchall()

    def _lexical(self, namespace: str, kind: str) -> LexicalIndex:
        """The (namespace, kind) BM25 index, built from the change log on first use, then caught up."""
        key = (namespace, kind)
        if key not in self._lex:
            lex, start = LexicalIndex(self._tokens), 0
            f = self._index_file(key).with_suffix(".bm25")
            if f.exists():
                try:
                    lex, start = LexicalIndex.from_bytes(self._tokens, f.read_bytes())
                except Exception:  # a damaged file is only a cache: rebuild from the change log
                    lex, start = LexicalIndex(self._tokens), 0
            max_seq = self._max_seq()
            if start > max_seq:
                lex, start = LexicalIndex(self._tokens), 0
            self._lex[key] = (lex, [start, 0])  # [seq reflected, changes replayed since the last save]
        lex, seq = self._lex[key]
        rows, last = self._changes_since(namespace, kind, seq[0])
        if rows:
            for rid in last:
                lex.remove(rid)
            puts = [r for r, op in last.items() if op == "put"]
            for rows_t in self._live_rows(puts, "text, ts"):
                self._learn_stems([w for _, text, _ in rows_t for w in _WORD.findall(text.lower())])
                for rid, text, ts in rows_t:
                    lex.add(rid, text, ts)
            seq[0] = rows[-1][0]
            seq[1] += len(rows)
            if seq[1] >= max(SAVE_EVERY, lex.n_alive // 2):
                self._save_lexical(key)
        return lex

    def _catch_up(self) -> None:
        """After a commit: bring the indexes of what it changed up to date now, so that the first search
        after a bulk add does not build them (at 100k items that was 10.8 s; spread over the adds, each
        pays for its own items). They are caches: a failure here leaves them to the next search."""
        touched, self._touched = self._touched, set()
        for namespace, kind in sorted(touched):
            try:
                self._index(namespace, kind)
                if self.lexical == "memory":
                    self._lexical(namespace, kind)
            except (OSError, sqlite3.Error):
                self._indexes.pop((namespace, kind), None)
                self._lex.pop((namespace, kind), None)

    def _save_lexical(self, key: tuple[str, str]) -> None:
        lex, seq = self._lex[key]
        atomic_write_bytes(self._index_file(key).with_suffix(".bm25"), lex.to_bytes(seq[0]))
        seq[1] = 0

    def _index_file(self, key: tuple[str, str]) -> Path:
        h = hashlib.sha1(f"{key[0]}\x00{key[1]}".encode()).hexdigest()[:16]
        return self.vec_dir / f"{h}.faiss"

    def _save_index(self, key: tuple[str, str], vi: _VectorIndex) -> None:
        atomic_write_bytes(self._index_file(key), vi.to_bytes())
        vi.unsaved = 0

    def _index(self, namespace: str, kind: str) -> _VectorIndex:
        """The (namespace, kind) index, loaded or rebuilt, then caught up with the change log."""
        key = (namespace, kind)
        vi = self._indexes.get(key)
        if vi is None:
            f = self._index_file(key)
            if f.exists():
                try:
                    vi = _VectorIndex.from_bytes(self.dim, f.read_bytes())
                except Exception:  # a damaged file is only a cache: rebuild it
                    vi = None
            max_seq = self._max_seq()
            if vi is None or vi.seq > max_seq:
                vi = _VectorIndex(self.dim)
            self._indexes[key] = vi
        rows, last = self._changes_since(namespace, kind, vi.seq)
        if rows:
            rids = np.array(list(last), dtype=np.int64)
            vi.index.remove_ids(rids)
            puts = [r for r, op in last.items() if op == "put"]
            for got in self._live_rows(puts, "vec"):
                if got:
                    vecs = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in got])
                    vi.index.add_with_ids(vecs, np.array([r for r, _ in got], dtype=np.int64))
            vi.seq = rows[-1][0]
            vi.unsaved += len(rows)
            n = vi.index.ntotal
            if (not vi.is_ivf and n >= IVF_MIN) or (vi.is_ivf and n > 4 * vi.trained_size):
                self._rebuild_ivf(namespace, kind, vi)
            if vi.unsaved >= max(SAVE_EVERY, n // 2):  # a save rewrites the whole file: not every few adds
                self._save_index(key, vi)
        return vi

    def _rebuild_ivf(self, namespace: str, kind: str, vi: _VectorIndex) -> None:
        """Train an IVF index on the (namespace, kind) vectors now in SQLite; the change-log position is
        read in the same snapshot, so later changes replay on top of it."""
        self.db.execute("SAVEPOINT ivf")  # one consistent snapshot of items and changes
        try:
            seq = self._max_seq()
            rows = self.db.execute(
                "SELECT rid, vec FROM items WHERE namespace = ? AND kind = ? AND status IN ('active', 'superseded')",
                (namespace, kind)).fetchall()
        finally:
            self.db.execute("RELEASE ivf")
        vecs = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
        vi.build_ivf(vecs, np.array([r for r, _ in rows], dtype=np.int64))
        vi.seq = max(vi.seq, seq)
        vi.unsaved = max(SAVE_EVERY, vi.index.ntotal)  # save the trained index
