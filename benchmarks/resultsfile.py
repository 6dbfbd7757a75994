"""The one way a benchmark writes `benchmarks/results/NAME.json`: the raw tables, the goals, and the
provenance a reader needs to trust them (exact command, git commit, dirty flag, load average, time).

Only scripts call this; a results file edited or merged by hand is a defect. A goal that could not
fail (a baseline that never failed, an attack that moved nothing) is written with `met=None` and a reason.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from keel.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def goal(name: str, value: Any, target: Any, unit: str, met: bool | None, reason: str | None = None) -> dict:
    """One entry of the `goals` list; `met=None` needs a `reason` (why the goal could not fail)."""
    if met is None and not reason:
        raise ValueError(f"goal {name!r}: met=None needs the reason it could not fail")
    g = {"name": name, "value": value, "target": target, "unit": unit, "met": met}
    if reason:
        g["reason"] = reason
    return g


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance() -> dict:
    """Where the numbers came from: command line, commit (+ whether the tree had local changes), load."""
    return {
        "command": " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv]),
        "commit": _git("rev-parse", "HEAD") or "unknown",
        # local changes to code or data, not to results files (a study writes its own file several times)
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ":/",
                           ":(top,exclude)benchmarks/results")),
        "load_average": list(os.getloadavg()),
        "cpus": os.cpu_count(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_results(name: str, tables: dict, goals: list[dict], notes: list[str] | str = (),
                  load_average_start: list[float] | None = None) -> Path:
    """Write `results/NAME.json` atomically and return its path."""
    out = RESULTS / f"{name}.json"
    doc = {**provenance(), "tables": tables, "goals": goals,
           "notes": [notes] if isinstance(notes, str) else list(notes)}
    if load_average_start is not None:
        doc["load_average_start"] = list(load_average_start)
    atomic_write_json(out, doc)
    return out
