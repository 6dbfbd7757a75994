"""The runs table: one row per run directory (kind, preset, status, key metrics, start, wall time).

Each row is cached against the modification times and sizes of the files it was read from, so a page
reload over a thousand runs costs a thousand `stat`s plus the runs that changed; the server fills the
cache in the background as it starts (`warm_up`). A run whose files are
damaged (torn metrics line, corrupted summary) still gets a row, with the problem named in it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from keel.serve.paths import RunsRoot
from keel.trackers import scalars

FILES = ("config.yaml", "run.json", "summary.json", "metrics.jsonl")
# The numbers a researcher looks at first, by metric name (the last part of a flattened key).
PREFERRED = ("satisfaction", "test_accuracy", "accuracy", "targeted_asr", "benign_utility", "exploitability",
             "test_reward", "reward", "satisfaction_train", "violations_eval", "loss", "episodes")
KEY_METRICS = 4
LIVE_SECONDS = 120.0  # a run with no process to ask counts as running while its log moved this recently
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KIND = re.compile(r"^kind: *([A-Za-z0-9_.-]+) *$", re.M)
_HOST = socket.gethostname()


def _stamp(d: str) -> tuple | None:
    out = []
    for f in FILES:
        try:
            st = os.stat(f"{d}/{f}")
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            if f == "config.yaml":
                return None
            out.append(None)
    return tuple(out)


def _read(path: str, tail: int = 0) -> bytes:
    """A whole file, or its last `tail` bytes, by raw descriptor (the cold read of a thousand runs is
    mostly open/read calls; Python's buffered text layer doubled their cost)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if tail and size > tail:
            os.lseek(fd, size - tail, os.SEEK_SET)
            size = tail
        chunks = []
        while size > 0:
            b = os.read(fd, size)
            if not b:
                break
            chunks.append(b)
            size -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _json_file(path: str, problems: list[str]) -> dict[str, Any]:
    name = os.path.basename(path)
    try:
        data = json.loads(_read(path))
    except FileNotFoundError:
        return {}
    except OSError as e:
        problems.append(f"{name} cannot be read ({e.strerror})")
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        problems.append(f"{name} is not valid JSON ({e.__class__.__name__}); the run may have crashed "
                        "while writing it")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{name} holds a {type(data).__name__}, not an object")
        return {}
    return data


def last_metrics(p: str | Path, problems: list[str]) -> dict[str, Any]:
    """The last complete, valid line of metrics.jsonl, read from the file's tail."""
    try:
        tail = _read(str(p), 65536)
        size = os.stat(p).st_size if len(tail) == 65536 else len(tail)
    except FileNotFoundError:
        return {}
    except OSError as e:
        problems.append(f"metrics.jsonl cannot be read ({e.strerror})")
        return {}
    lines = tail.split(b"\n")
    if size > len(tail):
        lines = lines[1:]  # the first piece may start mid-line
    if lines[-1]:
        problems.append("metrics.jsonl ends in a torn line (a crash mid-write); earlier lines are intact")
    for raw in reversed(lines[:-1]):  # the last piece is empty, or the torn line
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            return row
    return {}


def status_of(info: dict[str, Any], metrics_mtime: float | None, now: float) -> str:
    """running / finished / failed / interrupted, from run.json and whether its process still lives."""
    s = info.get("status", "running")
    if s in ("finished", "failed", "interrupted"):
        return s
    if s == "partial":  # a campaign stopped before its last cell (resumable)
        return "interrupted"
    pid = info.get("pid")
    if isinstance(pid, int) and info.get("host") == _HOST:
        try:
            os.kill(pid, 0)
            return "running"
        except ProcessLookupError:
            return "interrupted"
        except PermissionError:
            return "running"
    recent = metrics_mtime is not None and now - metrics_mtime < LIVE_SECONDS
    return "running" if recent or now - float(info.get("created", 0) or 0) < LIVE_SECONDS else "interrupted"


def key_metrics(numbers: dict[str, float]) -> dict[str, float]:
    rank = {n: i for i, n in enumerate(PREFERRED)}
    pos = {k: i for i, k in enumerate(numbers)}
    # preferred names first, then the less nested (a table row before its per-family breakdown)
    order = sorted(numbers, key=lambda k: (rank.get(k.rsplit("/", 1)[-1], len(rank)), k.count("/"), pos[k]))
    return {k: numbers[k] for k in order[:KEY_METRICS]}


def _kind(text: str, problems: list[str]) -> str:
    """The config's top-level `kind` (all the table needs): read off its line, parsed only if unusual."""
    m = _KIND.search(text)
    if m:
        return m.group(1)
    try:
        config = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError:
        problems.append("config.yaml is not valid YAML")
        return "?"
    return str(config.get("kind", "?")) if isinstance(config, dict) else "?"


_EMPTY: dict[str, Any] = {
    "name": "", "kind": "?", "preset": "", "status": "interrupted", "created": None, "wall_seconds": None,
    "step": None, "updated": None, "metrics": {}, "problems": [], "has_report": False, "has_safety_card": False,
    "has_campaign": False}


def read_row(d: str | Path, metrics_mtime: float | None = None) -> dict[str, Any]:
    problems: list[str] = []
    d = str(d)
    names = set(os.listdir(d))  # one call answers which optional files exist
    try:
        kind = _kind(_read(f"{d}/config.yaml").decode("utf-8"), problems)
    except UnicodeDecodeError:
        kind, problems = "?", ["config.yaml is not UTF-8 text"]
    except OSError as e:
        kind, problems = "?", [f"config.yaml cannot be read ({e.strerror})"]
    info = _json_file(f"{d}/run.json", problems) if "run.json" in names else {}
    summary = _json_file(f"{d}/summary.json", problems) if "summary.json" in names else {}
    last = last_metrics(f"{d}/metrics.jsonl", problems) if "metrics.jsonl" in names else {}
    if metrics_mtime is None and "metrics.jsonl" in names:
        metrics_mtime = os.stat(f"{d}/metrics.jsonl").st_mtime
    now = time.time()
    status = status_of(info, metrics_mtime, now)
    created = float(info.get("created", 0) or 0) or None
    wall = summary.get("wall_seconds")
    if not isinstance(wall, (int, float)) and created:
        end = last.get("time") if status != "running" else now
        wall = (float(end) - created) if isinstance(end, (int, float)) else None
    numbers = {k: v for k, v in (scalars(summary) or scalars(last)).items() if k != "wall_seconds"}  # a column
    source = str(info.get("source", ""))
    return {
        "name": os.path.basename(d), "kind": kind, "preset": Path(source).stem if source else "",
        "status": status, "created": created, "wall_seconds": wall, "step": last.get("step"),
        "updated": metrics_mtime, "metrics": key_metrics(numbers), "problems": problems,
        "has_report": "report.html" in names, "has_safety_card": "safety_card.html" in names,
        "has_campaign": "campaign.sqlite" in names,
    }


class RunsIndex:
    def __init__(self, root: RunsRoot):
        self.root = root
        self._cache: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._lock = threading.Lock()  # one reader at a time: a second caller then finds the cache warm

    def warm_up(self) -> None:
        """Read every run once in the background, as the server starts, so the first page load is fast."""
        threading.Thread(target=self.rows, name="keel-serve-index", daemon=True).start()

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._rows()

    def _rows(self) -> list[dict[str, Any]]:
        out, seen = [], set()
        if not self.root.root.is_dir():
            return out
        with os.scandir(self.root.root) as it:
            for e in it:
                if not e.is_dir(follow_symlinks=False) or e.name.startswith("."):
                    continue
                stamp = _stamp(e.path)
                if stamp is None:
                    continue
                seen.add(e.name)
                hit = self._cache.get(e.name)
                # a running row's status depends on the clock and the process too: re-read it every time
                if hit is None or hit[0] != stamp or hit[1]["status"] == "running":
                    metrics = stamp[FILES.index("metrics.jsonl")]
                    try:
                        hit = (stamp, read_row(e.path, metrics[0] / 1e9 if metrics else None))
                    except OSError as err:  # an unreadable folder still gets a row that says so
                        hit = (stamp, {**_EMPTY, "name": e.name, "problems": [f"cannot be read ({err.strerror})"]})
                    self._cache[e.name] = hit
                out.append(hit[1])
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        out.sort(key=lambda r: -(r["created"] or 0))
        return out
