"""Read `metrics.jsonl` incrementally: the client keeps a byte offset and asks for what came after it.

Only complete lines (ending in a newline) are consumed, so a line being written is picked up whole on
the next poll. A complete line that is not JSON (a torn write followed by more lines, hand edits) is
skipped and counted, never fatal. If the file got shorter than the offset (a resumed run truncated its
log back to its checkpoint), the answer says `reset` and starts again from the beginning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_BYTES = 16 * 1024 * 1024  # per answer; the client asks again from the returned offset


def read_metrics(p: Path, offset: int = 0) -> dict[str, Any]:
    try:
        size = os.stat(p).st_size
    except FileNotFoundError:
        return {"rows": [], "offset": 0, "reset": offset > 0, "skipped": 0, "torn_tail": False, "more": False}
    reset = offset > size or offset < 0
    if reset:
        offset = 0
    with open(p, "rb") as f:
        f.seek(offset)
        chunk = f.read(MAX_BYTES)
    end = chunk.rfind(b"\n") + 1
    rows, skipped = [], 0
    for raw in chunk[:end].split(b"\n")[:-1]:
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            skipped += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
            rows.append({k: v for k, v in row.items() if _plottable(v) or k == "time"})
        else:
            skipped += 1
    more = offset + len(chunk) < size
    # an unfinished last line: being written now (picked up next time), or torn by a crash
    torn_tail = end < len(chunk) and not more
    return {"rows": rows, "offset": offset + end, "reset": reset, "skipped": skipped, "torn_tail": torn_tail,
            "more": more}


def _plottable(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
