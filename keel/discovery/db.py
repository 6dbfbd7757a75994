"""The population database: every evaluated program, its lineage and scores, in one SQLite file.

Each program is written in its own transaction (WAL journal, synchronous=FULL), so a search that is
stopped keeps everything it evaluated and resumes from the last generation it finished.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from keel.errors import KeelError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS programs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    generation INTEGER NOT NULL,
    parent_id INTEGER REFERENCES programs(id),
    other_parent_id INTEGER REFERENCES programs(id),
    name TEXT,
    mutation TEXT NOT NULL,
    code TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    ok INTEGER NOT NULL,
    fitness REAL,
    train_scores TEXT,
    test_scores TEXT,
    error TEXT,
    seconds REAL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS programs_fitness ON programs(ok, fitness);
CREATE INDEX IF NOT EXISTS programs_hash ON programs(code_hash);
"""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()[:16]


@dataclass
class Program:
    id: int
    generation: int
    parent_id: int | None
    other_parent_id: int | None
    name: str | None
    mutation: str
    code: str
    ok: bool
    fitness: float | None
    train_scores: dict
    test_scores: dict
    error: str | None


class PopulationDB:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise KeelError(
                f"{self.path} is not a Keel population database ({e}); pick another --db path"
            ) from None

    def close(self) -> None:
        self.conn.close()

    # -- settings that must not change across a resumed search
    def check_meta(self, settings: dict) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        if row is None:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO meta VALUES ('settings', ?)", (json.dumps(settings, sort_keys=True),)
                )
            return
        old = json.loads(row[0])
        if old != settings:
            diff = {
                k: (old.get(k), settings.get(k))
                for k in set(old) | set(settings)
                if old.get(k) != settings.get(k)
            }
            raise KeelError(
                f"{self.path} holds a search with other settings {diff} (stored, given); "
                "use the same settings to resume, or a new --db"
            )

    def add(
        self,
        *,
        generation: int,
        code: str,
        mutation: str,
        ok: bool,
        fitness: float | None = None,
        train_scores: dict | None = None,
        error: str | None = None,
        parent_id: int | None = None,
        other_parent_id: int | None = None,
        name: str | None = None,
        seconds: float = 0.0,
    ) -> int:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            cur = self.conn.execute(
                "INSERT INTO programs (generation, parent_id, other_parent_id, name, mutation, code, "
                "code_hash, ok, fitness, train_scores, error, seconds, created) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    generation,
                    parent_id,
                    other_parent_id,
                    name,
                    mutation,
                    code,
                    code_hash(code),
                    int(ok),
                    fitness,
                    json.dumps(train_scores or {}),
                    error,
                    seconds,
                    time.time(),
                ),
            )
            return int(cur.lastrowid)

    def set_test_scores(self, pid: int, scores: dict) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE programs SET test_scores=? WHERE id=?", (json.dumps(scores), pid))

    def _row(self, r) -> Program:
        return Program(
            id=r[0],
            generation=r[1],
            parent_id=r[2],
            other_parent_id=r[3],
            name=r[4],
            mutation=r[5],
            code=r[6],
            ok=bool(r[7]),
            fitness=r[8],
            train_scores=json.loads(r[9] or "{}"),
            test_scores=json.loads(r[10] or "{}"),
            error=r[11],
        )

    _COLS = (
        "id, generation, parent_id, other_parent_id, name, mutation, code, ok, fitness, train_scores, "
        "test_scores, error"
    )

    def get(self, pid: int) -> Program:
        r = self.conn.execute(f"SELECT {self._COLS} FROM programs WHERE id=?", (pid,)).fetchone()
        if r is None:
            raise KeelError(f"no program {pid} in {self.path}")
        return self._row(r)

    def has_code(self, code: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM programs WHERE code_hash=?", (code_hash(code),)).fetchone()
            is not None
        )

    def top(self, k: int) -> list[Program]:
        rows = self.conn.execute(
            f"SELECT {self._COLS} FROM programs WHERE ok=1 ORDER BY fitness DESC, id LIMIT ?", (k,)
        ).fetchall()
        return [self._row(r) for r in rows]

    def by_name(self, name: str) -> Program | None:
        r = self.conn.execute(
            f"SELECT {self._COLS} FROM programs WHERE name=? ORDER BY id LIMIT 1", (name,)
        ).fetchone()
        return self._row(r) if r else None

    def count(self, generation: int | None = None) -> int:
        if generation is None:
            return self.conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
        return self.conn.execute(
            "SELECT COUNT(*) FROM programs WHERE generation=?", (generation,)
        ).fetchone()[0]

    def counts(self) -> dict:
        ok, failed = self.conn.execute(
            "SELECT COALESCE(SUM(ok),0), COALESCE(SUM(1-ok),0) FROM programs"
        ).fetchone()
        return {"evaluated": ok + failed, "ok": ok, "failed": failed}

    def lineage(self, pid: int) -> list[dict]:
        out, seen = [], set()
        cur: int | None = pid
        while cur is not None and cur not in seen:
            seen.add(cur)
            p = self.get(cur)
            out.append(
                {
                    "id": p.id,
                    "generation": p.generation,
                    "mutation": p.mutation,
                    "fitness": p.fitness,
                    "name": p.name,
                }
            )
            cur = p.parent_id
        return out
