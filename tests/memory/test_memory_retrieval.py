"""Retrieval that earns its place: score-aware fusion, dates in queries, neighbouring turns, second hop,
MMA weights, one Store protocol, no import cycles."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
from pathlib import Path

import numpy as np
import pytest

from keel.memory import HashEmbedder, Memory, temporal
from keel.memory.ranking import SearchConfig, bm25_order
from keel.memory.reliability import ReliabilityConfig, reliability
from keel.memory.retrieval import convex, rrf
from keel.memory.store import Store

T0 = dt.datetime(2025, 6, 18, 15, tzinfo=dt.UTC).timestamp()  # a Wednesday afternoon
DAY = 86400.0
ALICE = ["Alice moved to Lisbon in March 2025.", "Alice's favourite food is ramen."]
OSLO = "Oslo is the capital of Norway; its winters are long and dark."


def test_alice_lisbon_first_in_every_mode(minilm, tmp_path):
    m = Memory(tmp_path / "m.db", embedder=minilm, abstain_below=0.0)
    ids = m.add(ALICE, timestamp=T0)
    m.add(OSLO, source="web", timestamp=T0)
    for mode in ("bm25", "dense", "hybrid", "reliable", "hierarchical"):
        hits = m.search("Where does Alice live?", k=3, mode=mode, now=T0 + DAY)
        assert hits[0]["id"] == ids[0], (mode, [h["text"] for h in hits])
    m.close()


def test_rrf_ties_but_convex_fusion_uses_the_scores():
    lex = [("ramen", 1.00), ("lisbon", 0.95)]  # BM25 barely prefers ramen
    den = [("lisbon", 0.62), ("ramen", 0.30)]  # the embedding strongly prefers lisbon
    fused = rrf([lex, den])
    assert fused[0][1] == fused[1][1]  # a coin toss for RRF
    score = convex(dict(lex), dict(den), alpha=0.5)
    assert score["lisbon"] > score["ramen"]
    # BM25 mode: equal matched words -> the embedding orders them, not the document length
    texts = {"ramen": "Alice's favourite food is ramen.", "lisbon": "Alice moved to Lisbon in March 2025."}
    assert bm25_order("Where does Alice live?", lex, texts, dict(den)) == ["lisbon", "ramen"]
    assert bm25_order("Alice ramen", [("lisbon", 2.0), ("ramen", 1.0)], texts, dict(den))[0] == "lisbon"


def test_mma_weights_are_the_papers():
    cfg = ReliabilityConfig()
    assert (cfg.w_source, cfg.w_time, cfg.w_consensus) == (0.45, 0.40, 0.15)
    item = {"credibility": 0.9, "ts": T0, "consensus": 0.5}
    assert reliability(item, T0, cfg) == pytest.approx(0.45 * 0.9 + 0.40 * 1.0 + 0.15 * 0.5)
    custom = ReliabilityConfig(w_source=1.0, w_time=0.0, w_consensus=0.0)
    assert reliability(item, T0, custom) == pytest.approx(0.9)


@pytest.mark.parametrize("query,start,end", [
    ("what did I do yesterday?", "2025-06-17", "2025-06-18"),
    ("what did I do last weekend?", "2025-06-13", "2025-06-16"),
    ("what did I do two weeks ago", "2025-05-31", "2025-06-08"),
    ("where was I in March 2025", "2025-03-01", "2025-04-01"),
    ("what happened on June 2", "2025-06-02", "2025-06-03"),
    ("anything on Monday?", "2025-06-16", "2025-06-17"),
])
def test_dates_in_queries_resolve_against_now(query, start, end):
    w = temporal.parse(query, T0).window
    day = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")  # noqa: E731
    assert w is not None and day(w[0]) == start and day(w[1] - 1) <= end and day(w[1]) >= end
    assert temporal.parse("where do I live?", T0) == temporal.TimeQuery()
    assert temporal.parse("the week before my trip to Oslo", T0).anchor == "my trip to oslo"


def _chat(m: Memory, turns: list[tuple[str, str]], ts: float) -> list[str]:
    return m.add([{"role": r, "content": t, "timestamp": ts + 60 * i} for i, (r, t) in enumerate(turns)])


FILLER = [("user", "the bus was late again"), ("assistant", "Sorry to hear that."), ("user", "my plants are dying"),
          ("assistant", "Tell me more!"), ("user", "work was fine today"), ("assistant", "Nice.")]


def test_date_window_finds_the_activity_of_that_day(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), abstain_below=-1.0)
    ids = {}
    for back, act in ((1, "kayaking"), (5, "pottery"), (9, "running")):
        ids[back] = _chat(m, FILLER[:2] + [("user", f"today I went {act}, loved it")], T0 - back * DAY)[-1]
    no_dates = Memory(tmp_path / "m.db", embedder=HashEmbedder(), abstain_below=-1.0,
                      search=SearchConfig(time_bonus=0.0, window_pool=0))
    right = {True: 0, False: 0}
    for back in (1, 5, 9):
        q = f"what did I do {back} days ago?"
        assert m.search(q, k=1, now=T0)[0]["id"] == ids[back]
        right[False] += no_dates.search(q, k=1, now=T0)[0]["id"] == ids[back]
    assert right[False] < 3  # the words alone cannot tell the days apart
    assert m.search("what did I do the week before my trip to Oslo?", k=1, now=T0)  # an anchor that is absent
    m.close()
    no_dates.close()


def test_neighbouring_turn_and_second_hop_bring_in_evidence(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), abstain_below=-1.0)
    asked = _chat(m, FILLER + [("assistant", "What's your favourite food these days?"), ("user", "probably pierogi")]
                  + FILLER, T0)
    reply = asked[len(FILLER) + 1]
    pet = _chat(m, FILLER + [("user", "guess who has a rescue cat now? Mateo!")] + FILLER, T0 + 3 * DAY)[len(FILLER)]
    city = _chat(m, FILLER + [("user", "Mateo says Bergen is great")] + FILLER, T0 + 9 * DAY)[len(FILLER)]
    q1 = "what is my favourite food?"
    assert reply in [h["id"] for h in m.search(q1, k=3, now=T0 + 10 * DAY)]
    assert reply not in [h["id"] for h in m.search(q1, k=3, mode="hybrid")]
    q2 = "where does my friend with a rescue cat live?"
    got = [h["id"] for h in m.search(q2, k=5, now=T0 + 10 * DAY)]
    assert pet in got and city in got
    plain = Memory(tmp_path / "m.db", embedder=HashEmbedder(), abstain_below=-1.0, search=SearchConfig(hop=0.0))
    assert city not in [h["id"] for h in plain.search(q2, k=5, now=T0 + 10 * DAY)]
    m.close()
    plain.close()


def test_sqlite_and_postgres_stores_implement_the_store_protocol():
    from keel.memory.store_pg import PostgresStore
    from keel.memory.store_sqlite import SQLiteStore

    wanted = {n: inspect.signature(f) for n, f in vars(Store).items() if callable(f) and not n.startswith("_")}
    assert len(wanted) >= 15
    for cls in (SQLiteStore, PostgresStore):
        for name, sig in wanted.items():
            have = inspect.signature(getattr(cls, name))
            assert list(have.parameters) == list(sig.parameters), (cls.__name__, name)
        assert isinstance(cls.backend, str)


def test_no_import_cycles_in_keel_memory():
    root = Path(__file__).resolve().parents[2] / "keel" / "memory"
    graph: dict[str, set[str]] = {}
    for f in root.glob("*.py"):
        mod = f"keel.memory.{f.stem}"
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keel.memory"):
                deps.add(node.module if node.module != "keel.memory" else f"keel.memory.{node.names[0].name}")
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("keel.memory.")}
        graph[mod] = {d for d in deps if d != mod}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in graph.get(n, ()):
            assert state.get(d) != 1, f"import cycle: {' -> '.join(path + [d])}"
            if d not in state:
                visit(d, path + [d])
        state[n] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [mod])


@pytest.mark.slow
def test_onnx_minilm_matches_torch():
    from keel.memory.embedder import MiniLMEmbedder

    texts = ["Where does Alice live?", "a much longer sentence " * 20, "hi"]
    a, b = MiniLMEmbedder(backend="onnx").encode(texts), MiniLMEmbedder(backend="torch").encode(texts)
    assert np.min(np.sum(a * b, axis=1)) > 0.9999
