"""`keel memory`: no data loss on export, clear errors for bad input, read-only files, no namespace leak."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.conftest import refused

DB = ["--db", "m.db", "--embedder", "hash"]


def _two_namespaces(keel):
    assert keel("memory", "add", "alice likes tea", *DB, "-n", "alice").code == 0
    assert keel("memory", "add", "bob likes coffee", *DB, "-n", "bob").code == 0


def _namespaces(path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT namespace FROM items ORDER BY namespace")]
    finally:
        con.close()


def test_export_onto_its_own_database_is_refused_and_loses_nothing(keel, tmp_path):
    _two_namespaces(keel)
    out = keel("memory", "export", "m.db", *DB, "-n", "alice")
    refused(out, "database")
    assert _namespaces(tmp_path / "m.db") == ["alice", "bob"]
    out = keel("memory", "export", "./m.db", "--db", str(tmp_path / "m.db"), "-n", "alice", "--force")
    refused(out, "database")
    assert _namespaces(tmp_path / "m.db") == ["alice", "bob"]


def test_export_over_an_existing_file_needs_force(keel, tmp_path):
    _two_namespaces(keel)
    (tmp_path / "keep.jsonl").write_text("precious\n")
    refused(keel("memory", "export", "keep.jsonl", *DB, "-n", "alice"), "--force")
    assert (tmp_path / "keep.jsonl").read_text() == "precious\n"
    assert keel("memory", "export", "keep.jsonl", *DB, "-n", "alice", "--force").code == 0
    assert json.loads((tmp_path / "keep.jsonl").read_text().splitlines()[0])["text"] == "alice likes tea"


def test_export_to_a_folder_is_a_clear_error(keel, tmp_path):
    _two_namespaces(keel)
    (tmp_path / "out").mkdir()
    refused(keel("memory", "export", "out", *DB, "-n", "alice"), "folder")


def test_unknown_namespace_does_not_list_the_others(keel):
    _two_namespaces(keel)
    out = keel("memory", "search", "tea", *DB, "-n", "zed")
    refused(out, "zed")
    assert "bob" not in out.message and "alice" not in out.message


@pytest.mark.parametrize("emb", ["hash-0", "hash-abc", "hash--5", "bogus"])
def test_bad_embedder_names(keel, emb):
    refused(keel("memory", "add", "hi", "--db", "e.db", "--embedder", emb), "embedder")


def test_invalid_surrogates_in_text_are_refused(keel, tmp_path):
    refused(keel("memory", "add", "bad \udcff text", *DB), "utf-8")
    (tmp_path / "imp.jsonl").write_text(json.dumps({"text": "ok \ud800 no"}) + "\n")
    refused(keel("memory", "import", "imp.jsonl", *DB), "imp.jsonl:1")


@pytest.mark.parametrize(
    "record, word",
    [
        ({"text": "a", "provenance": ["x"]}, "provenance"),
        ({"text": "a", "provenance": "x"}, "provenance"),
        ({"text": "a", "polarity": "yes"}, "polarity"),
        ({"text": "a", "polarity": float("nan")}, "polarity"),
        ({"text": "a", "consensus": float("nan")}, "consensus"),
        ({"text": "a", "uses": float("inf")}, "uses"),
        ({"text": "a", "ts": float("nan")}, "timestamp"),
        ({"text": "a", "metadata": [1]}, "metadata"),
    ],
)
def test_malformed_import_fields_name_the_line(keel, tmp_path, record, word):
    lines = [json.dumps({"text": "fine"}), json.dumps(record)]
    (tmp_path / "imp.jsonl").write_text("\n".join(lines) + "\n")
    refused(keel("memory", "import", "imp.jsonl", *DB), "imp.jsonl:2", word)


def test_binary_import_file(keel, tmp_path):
    (tmp_path / "imp.jsonl").write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    refused(keel("memory", "import", "imp.jsonl", *DB), "utf-8")


def _make_read_only(path) -> bool:
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        return True
    # root ignores permission bits; the immutable flag binds root too (where the filesystem has it)
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def test_read_only_memory_searches_but_refuses_writes(keel, tmp_path):
    _two_namespaces(keel)
    db = tmp_path / "m.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")  # a read-only copy as it would be shipped
    con.close()
    if not _make_read_only(db):
        pytest.skip("cannot make a file read-only here")
    try:
        out = keel("memory", "search", "tea", *DB, "-n", "alice", "--json")
        assert out.code == 0, out.output
        assert json.loads(out.output.strip().splitlines()[-1])["hits"][0]["text"] == "alice likes tea"
        refused(keel("memory", "add", "more", *DB, "-n", "alice"), "read-only")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(db)], capture_output=True)


def test_usage_errors_print_a_json_line(tmp_path):
    p = subprocess.run([str(Path(sys.executable).parent / "keel"), "memory", "search", "--json", "--bogus-flag"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "error" in json.loads(p.stdout.strip().splitlines()[-1])


def test_a_writer_that_waits_too_long_gets_a_clear_busy_error(tmp_path, monkeypatch):
    from keel.errors import KeelError
    from keel.memory import store_sqlite
    from keel.memory.embedder import HashEmbedder
    from keel.memory.memory import Memory

    mem = Memory(tmp_path / "b.db", embedder=HashEmbedder(16))
    holder = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT", 0.2)
    try:
        with pytest.raises(KeelError, match="busy"):
            mem.add("blocked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert mem.add("now it goes")
    mem.close()


_WRITER = """
import os, sys, time
from keel.memory.embedder import HashEmbedder
from keel.memory.memory import Memory
m = Memory(sys.argv[1], namespace=sys.argv[2], embedder=HashEmbedder(32))
# start together: on a quiet machine one writer could finish before the other has even imported Keel
open(f"{sys.argv[1]}.ready.{sys.argv[2]}", "w").close()
deadline = time.time() + 60
while not all(os.path.exists(f"{sys.argv[1]}.ready.{ns}") for ns in ("a", "b")) and time.time() < deadline:
    time.sleep(0.005)
for i in range(int(sys.argv[3])):
    m.add(f"{sys.argv[2]} note {i}")
    print(time.time(), flush=True)
m.close()
"""


def test_two_writers_both_make_progress(tmp_path):
    """Two processes adding to one file: each commits while the other is still writing (no starvation)."""
    db = str(tmp_path / "c.db")
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, db, ns, "150"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=os.getcwd()) for ns in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    stamps = [[float(x) for x in out.split()] for out, _ in outs]
    assert [len(s) for s in stamps] == [150, 150]
    first_done = min(s[-1] for s in stamps)
    # the writer that finished last had committed part of its work before the other one finished
    loser = max(stamps, key=lambda s: s[-1])
    assert sum(t < first_done for t in loser) >= 15
    assert _namespaces(db) == ["a", "b"]


def test_markup_in_memory_text_is_printed_verbatim(keel):
    assert keel("memory", "add", "[/x] closing tag and [a, b] list", *DB, "-n", "alice").code == 0
    out = keel("memory", "search", "closing tag", *DB, "-n", "alice")
    assert out.code == 0, repr(out.exception)
    assert "[/x] closing tag and [a, b] list" in out.output
