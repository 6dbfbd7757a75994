"""`keel memory ...` through the real CLI entry point (subprocess), with --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from keel.cli import app
from keel.errors import KeelError

KEEL = [sys.executable, "-c", "from keel.cli import main; main()"]


class _Result:
    def __init__(self, r):
        self.returncode = 2 if isinstance(r.exception, KeelError) else r.exit_code
        self.stdout = r.stdout + (str(r.exception) if isinstance(r.exception, KeelError) else "")
        self.stderr = ""
        if r.exception is not None and not isinstance(r.exception, (KeelError, SystemExit)):
            raise r.exception


def keel(*args, cwd: Path) -> _Result:
    """In process (fast); the real entry point's exit code and message are checked once below."""
    return _Result(CliRunner().invoke(app, list(args), env={"KEEL_MEMORY": str(cwd / "mem.db")}))


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_memory_cli_roundtrip(tmp_path):
    r = keel("memory", "add", "I keep my passport in the blue drawer", "--embedder", "hash",
             "--metadata", '{"topic": "home"}', "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    item = last_json(r.stdout)["id"]
    keel("memory", "add", "The dentist appointment is on Friday", "--source", "tool", "--json", cwd=tmp_path)
    r = keel("memory", "search", "passport drawer", "--mode", "hybrid", "--filter", "metadata.topic=home",
             "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = last_json(r.stdout)
    assert [h["id"] for h in res["hits"]] == [item]
    r = keel("memory", "stats", "--json", cwd=tmp_path)
    assert last_json(r.stdout)["messages_active"] == 2
    r = keel("memory", "export", str(tmp_path / "out.jsonl"), "--json", cwd=tmp_path)
    n = last_json(r.stdout)["exported"]
    r = keel("memory", "import", str(tmp_path / "out.jsonl"), "--namespace", "copy", "--json", cwd=tmp_path)
    assert last_json(r.stdout)["imported"] == n
    r = keel("memory", "search", "dentist", "--mode", "bm25", "--namespace", "copy", "--json", cwd=tmp_path)
    assert last_json(r.stdout)["hits"][0]["text"] == "The dentist appointment is on Friday"


def test_memory_cli_errors_are_one_line(tmp_path):
    keel("memory", "add", "hello there", "--embedder", "hash", cwd=tmp_path)
    cases = [
        ("memory", "search", "x", "--namespace", "nobody"),
        ("memory", "search", "x", "--filter", "colour=red"),
        ("memory", "add", ""),
        ("memory", "add", "x", "--metadata", "{not json"),
        ("memory", "stats", "--db", str(tmp_path / "missing.db")),
    ]
    for args in cases:
        r = keel(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout
    (tmp_path / "bad.db").write_bytes(b"garbage" * 500)
    r = subprocess.run([*KEEL, "memory", "stats", "--db", str(tmp_path / "bad.db"), "--json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 2 and "not a readable Keel memory" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
