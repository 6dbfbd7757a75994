"""SQLite durability: SIGKILL mid bulk add, several writer processes, corrupt files, the vector index
rebuilt from the database."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from keel.errors import KeelError
from keel.memory import HashEmbedder, Memory

WRITER = r"""
import sys
from keel.memory import HashEmbedder, Memory
path, tag, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = Memory(path, namespace="shared", embedder=HashEmbedder(), organise=False)
for start in range(0, n, batch):
    ids = m.add([f"{tag} item {i} says hello" for i in range(start, min(n, start + batch))])
    print(" ".join(ids), flush=True)  # acknowledged: add() returned
m.close()
"""


def _writer(path, tag, n, batch):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(n), str(batch)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_sigkill_mid_bulk_add_loses_nothing_acknowledged(tmp_path):
    path = tmp_path / "m.db"
    proc = _writer(path, "w", 100_000, 20)
    acked: list[str] = []
    deadline = time.time() + 60
    while len(acked) < 200 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked += line.split()
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of the bulk add
    proc.wait()
    assert len(acked) >= 200
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    m = Memory(path, namespace="shared", embedder=HashEmbedder(), organise=False)
    got = m.store.get("shared", acked)
    assert len(got) == len(acked)  # every acknowledged item is readable
    assert m.search("w item 7 says hello", k=1, mode="dense")[0]["text"] == "w item 7 says hello"
    m.add("still writable after the crash")
    m.close()


def test_several_writer_processes_lose_nothing(tmp_path):
    path = tmp_path / "m.db"
    Memory(path, namespace="shared", embedder=HashEmbedder()).close()  # create the schema once
    procs = [_writer(path, f"p{j}", 60, 5) for j in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    acked = [i for out in outs for i in out.split()]
    assert len(acked) == 180
    m = Memory(path, namespace="shared", embedder=HashEmbedder(), organise=False)
    assert m.stats()["messages_active"] == 180
    assert len(m.store.get("shared", acked)) == 180
    for j in range(3):  # both indexes caught up with every writer
        assert m.search(f"p{j} item 59 says hello", k=1, mode="dense")[0]["text"] == f"p{j} item 59 says hello"
        assert len(m.search(f"p{j}", k=100, mode="bm25")) == 60
    assert m.store.integrity() == "ok"
    m.close()


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(KeelError, match="not a readable Keel memory"):
        Memory(path, embedder=HashEmbedder())
    assert path.read_bytes().startswith(b"this is not a database")  # left untouched
    with pytest.raises(KeelError, match="is a folder"):
        Memory(tmp_path, embedder=HashEmbedder())


def test_open_waits_out_a_lock_taken_while_another_process_creates_the_file(tmp_path, monkeypatch):
    """SQLite may answer "database is locked" at once (no busy handler) while a second process switches a new
    file to WAL or creates its schema: the open starts over instead of failing (CI saw it fail)."""
    from keel.memory.store_sqlite import SQLiteStore

    real, tries = SQLiteStore._connect, []

    def flaky(self, embedder_name):
        tries.append(1)
        if len(tries) < 3:
            self.db = sqlite3.connect(":memory:")
            raise sqlite3.OperationalError("database is locked")
        real(self, embedder_name)

    monkeypatch.setattr(SQLiteStore, "_connect", flaky)
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder())
    assert len(tries) == 3 and m.add("kept")
    m.close()


def test_open_gives_up_on_a_lock_that_is_never_released_with_a_busy_error(tmp_path, monkeypatch):
    from keel.memory import store_sqlite

    def locked(self, embedder_name):
        self.db = sqlite3.connect(":memory:")
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store_sqlite.SQLiteStore, "_connect", locked)
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT", 0.05)
    with pytest.raises(KeelError, match="is busy"):
        Memory(tmp_path / "m.db", embedder=HashEmbedder())


def test_wrong_embedder_is_refused(tmp_path):
    path = tmp_path / "m.db"
    Memory(path, embedder=HashEmbedder(384)).close()
    with pytest.raises(KeelError, match="same embedder"):
        Memory(path, embedder=HashEmbedder(128))


def test_vector_index_persists_and_rebuilds(tmp_path):
    path = tmp_path / "m.db"
    m = Memory(path, embedder=HashEmbedder(), organise=False)
    m.add([f"note {i} about topic {i % 7}" for i in range(50)])
    m.search("note 3", mode="hybrid")
    m.close()
    files = list((tmp_path / "m.db.vec").glob("*.faiss")) + list((tmp_path / "m.db.vec").glob("*.bm25"))
    assert len(files) == 2  # both derived indexes saved on close
    m = Memory(path, embedder=HashEmbedder(), organise=False)
    assert m.search("note 3 about topic 3", k=1, mode="dense")[0]["text"] == "note 3 about topic 3"
    assert m.search("note 3 about topic 3", k=1, mode="bm25")[0]["text"] == "note 3 about topic 3"
    m.add("note 99 added after reopening")
    assert m.search("note 99 added", k=1, mode="bm25")[0]["text"] == "note 99 added after reopening"
    m.close()
    for f in files:
        f.write_bytes(b"garbage")  # a damaged index is only a cache
    m = Memory(path, embedder=HashEmbedder(), organise=False)
    assert m.search("note 3 about topic 3", k=1, mode="dense")[0]["text"] == "note 3 about topic 3"
    assert m.search("note 99 added", k=1, mode="bm25")[0]["text"] == "note 99 added after reopening"
    m.close()


def test_ivf_index_takes_over_when_large(tmp_path, monkeypatch):
    from keel.memory import store_sqlite

    monkeypatch.setattr(store_sqlite, "IVF_MIN", 500)
    path = tmp_path / "m.db"
    m = Memory(path, embedder=HashEmbedder(), organise=False)
    ids = m.add([f"record {i} colour {i % 11} shape {i % 13} size {i % 7}" for i in range(1200)])
    assert m.search("record 77 colour 0 shape 12 size 0", k=1, mode="dense")[0]["id"] == ids[77]
    vi = m.store._indexes[("default", "message")]
    assert vi.is_ivf and vi.index.ntotal == 1200
    m.delete(ids[77])  # removals and filters work on the IVF index too
    assert all(h["id"] != ids[77] for h in m.search("record 77 colour 0 shape 12 size 0", k=5, mode="dense"))
    assert m.search("record 5 colour 5", k=1, mode="dense", filters={"source": "user"})
    m.close()
    m = Memory(path, embedder=HashEmbedder(), organise=False)  # the trained index is saved and reloaded
    assert m.search("record 78 colour 1 shape 0 size 1", k=1, mode="dense")[0]["id"] == ids[78]
    assert m.store._indexes[("default", "message")].is_ivf
    m.close()


def test_indexes_are_built_on_add_not_at_the_first_search(tmp_path, monkeypatch):
    from keel.memory import store_sqlite

    monkeypatch.setattr(store_sqlite, "IVF_MIN", 500)
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), organise=False)
    for s in range(0, 1200, 300):
        m.add([f"record {i} colour {i % 11}" for i in range(s, s + 300)])
    vi = m.store._indexes[("default", "message")]
    lex, _ = m.store._lex[("default", "message")]
    assert vi.is_ivf and vi.index.ntotal == 1200 and lex.n_alive == 1200  # before any search
    seq = m.store._max_seq()
    assert vi.seq == seq  # caught up: the first search replays nothing
    try:
        with m.store.batch():
            m.add("a line that is rolled back")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert all(h["text"] != "a line that is rolled back" for h in m.search("rolled back", k=3, mode="bm25"))
    m.close()


def test_time_filter_sees_changed_timestamps_and_old_index_files_are_rebuilt(tmp_path):
    path = tmp_path / "m.db"
    m = Memory(path, embedder=HashEmbedder(), organise=False)
    a, _ = m.add(["an early note about kites", "another note about kites"], timestamp=1000.0)
    m.store.update("default", a, {"ts": 5000.0}, "move")  # a timestamp change reaches the index's copy
    assert [h["id"] for h in m.search("kites", k=5, mode="bm25", time_range=(4000, 6000))] == [a]
    m.close()
    files = list((tmp_path / "m.db.vec").glob("*.bm25"))
    assert files
    for f in files:  # as written before timestamps were kept
        z = dict(np.load(io.BytesIO(f.read_bytes())))
        z.pop("ts")
        buf = io.BytesIO()
        np.savez(buf, **z)
        f.write_bytes(buf.getvalue())
    m = Memory(path, embedder=HashEmbedder(), organise=False)
    assert [h["id"] for h in m.search("kites", k=5, mode="bm25", time_range=(4000, 6000))] == [a]
    m.close()
