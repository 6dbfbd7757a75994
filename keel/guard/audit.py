"""The guard's audit log: one JSON line per decision, append-only, flushed at once and fsynced.

`sync="always"` fsyncs every record (nothing acknowledged is lost, at a millisecond a record);
`sync="batch"` fsyncs every `batch` records and on `flush()`/`close()` (a crash can lose the unsynced tail,
never corrupt what came before: a torn last line is skipped by `read_audit`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from keel.io import to_json


class AuditLog:
    def __init__(self, path: str | Path, sync: str = "always", batch: int = 64, context: dict | None = None):
        if sync not in ("always", "batch"):
            raise ValueError("sync must be 'always' or 'batch'")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: every write lands at the end, even with several writers; nothing is ever rewritten.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.sync, self.batch, self._pending = sync, batch, 0
        self.context = dict(context or {})

    def append(self, decision: Any, **extra: Any) -> None:
        rec = {"time": time.time(), "action": decision.action, "tool": decision.tool, "args": decision.args,
               "reason": decision.reason, "rule": decision.rule, "labels": sorted(decision.labels),
               **self.context, **extra}
        os.write(self._fd, (to_json(rec) + "\n").encode())
        self._pending += 1
        if self.sync == "always" or self._pending >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            os.fsync(self._fd)
            self._pending = 0

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_audit(path: str | Path) -> list[dict]:
    rows = []
    p = Path(path)
    if not p.is_file():
        return rows
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a crash
    return rows
