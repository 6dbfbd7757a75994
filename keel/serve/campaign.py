"""A red-team run's `campaign.sqlite`, read-only: the results table by suite, attack family and
language (the numbers come from `keel.redteam.campaign.metrics`, the same the safety card uses), and
each episode's transcript (its tool calls, the guard's decisions from `audit.jsonl`, replies, error).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from keel.guard.audit import read_audit
from keel.redteam.campaign import metrics
from keel.serve.paths import Refused

KEY = ("agent", "defence", "suite", "user_task", "injection_task", "attack")


def _connect(db: Path) -> sqlite3.Connection:
    # mode=ro: the dashboard never writes a run's results, even by accident
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _rows(db: Path, where: str = "", args: tuple = ()) -> list[dict[str, Any]]:
    try:
        conn = _connect(db)
        try:
            return [dict(r) for r in conn.execute(f"SELECT rowid AS id, * FROM results {where}", args)]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise Refused(422, f"{db.name} cannot be read ({e}); is the run's campaign database damaged?") from None


def summary(db: Path) -> dict[str, Any]:
    rows = _rows(db)
    m = metrics(rows)
    episodes = [{k: r[k] for k in ("id", *KEY, "family", "lang", "kind", "utility", "attack_success", "steps",
                                   "n_deny", "n_ask", "error")} for r in rows]
    return {"table": m["table"], "top_attacks": m["top_attacks"], "episodes": episodes}


def episode(db: Path, audit: Path, episode_id: int) -> dict[str, Any]:
    found = _rows(db, "WHERE rowid = ?", (episode_id,))
    if not found:
        raise Refused(404, f"no episode {episode_id} in this campaign")
    r = found[0]
    for k in ("calls", "blocked", "replies"):
        try:
            r[k] = json.loads(r[k] or "[]")
        except json.JSONDecodeError:
            r[k] = [f"(unreadable {k} column)"]
    cell = [r[k] or "" for k in KEY]
    r["decisions"] = [a for a in read_audit(audit) if a.get("cell") == cell]
    return r
