"""The shared suite: every test runs on SQLite and on PostgreSQL+pgvector."""

from __future__ import annotations

import pytest

from keel.errors import KeelError
from keel.memory.reliability import ReliabilityConfig

T0 = 1_700_000_000.0
DAY = 86400.0


def test_add_get_search_roundtrip(make_memory):
    m = make_memory()
    ids = m.add(["The cat sat on the mat", "Quarterly revenue grew nine percent", "Paris is in France"],
                timestamp=T0, metadata={"topic": "misc"})
    assert len(ids) == 3 and len(set(ids)) == 3
    got = m.get(ids[1])
    assert got["text"] == "Quarterly revenue grew nine percent" and got["metadata"]["topic"] == "misc"
    for mode in ("bm25", "dense", "hybrid", "reliable", "hierarchical"):
        hits = m.search("revenue grew", k=2, mode=mode, now=T0)
        assert hits and hits[0]["id"] == ids[1], mode
        h = hits[0]
        assert {"id", "text", "score", "reliability", "metadata", "provenance"} <= set(h)
        assert h["provenance"]["source"] == "user" and h["provenance"]["timestamp"] == pytest.approx(T0)


def test_namespaces_isolate_users(make_memory):
    alice, bob = make_memory("alice"), make_memory("bob")
    a_id = alice.add("Alice's secret code is 4471", timestamp=T0)[0]
    bob.add("Bob likes jazz", timestamp=T0)
    assert all("4471" not in h["text"] for h in bob.search("secret code 4471", mode="hybrid"))
    with pytest.raises(KeelError, match="namespace 'bob'"):
        bob.get(a_id)
    with pytest.raises(KeelError):
        bob.update(a_id, "stolen")
    with pytest.raises(KeelError):
        bob.delete(a_id)
    assert alice.get(a_id)["text"] == "Alice's secret code is 4471"
    assert set(alice.namespaces()) == {"alice", "bob"}
    with pytest.raises(KeelError, match="invalid namespace"):
        make_memory("no spaces allowed")


def test_update_delete_and_history(make_memory):
    m = make_memory()
    i = m.add("my favourite tea is green tea", timestamp=T0)[0]
    m.update(i, "my favourite tea is oolong", metadata={"edited": True})
    assert m.get(i)["text"] == "my favourite tea is oolong"
    assert [h["text"] for h in m.history(i)] == ["my favourite tea is green tea", "my favourite tea is oolong"]
    assert m.search("oolong", mode="bm25")[0]["id"] == i
    assert not m.search("green", mode="bm25")
    m.delete(i)
    assert not m.search("oolong", mode="bm25") and not m.search("oolong", mode="dense")
    hist = m.history(i)
    assert [h["op"] for h in hist] == ["add", "update", "delete"] and hist[-1]["status"] == "deleted"


def test_filters_and_time_range(make_memory):
    m = make_memory()
    m.add("flight to Oslo booked", source="tool", timestamp=T0, metadata={"topic": "travel", "n": 1})
    m.add("flight delayed by rain", source="user", timestamp=T0 + 10 * DAY, metadata={"topic": "travel", "n": 2})
    m.add("flight simulator game", source="user", timestamp=T0 + 20 * DAY, metadata={"topic": "games", "n": 3})
    for mode in ("bm25", "dense", "hybrid"):
        texts = lambda mode=mode, **kw: {h["text"] for h in m.search("flight", k=10, mode=mode, **kw)}  # noqa: E731
        assert texts(filters={"source": "tool"}) == {"flight to Oslo booked"}
        assert texts(filters={"metadata.topic": "travel"}) == {"flight to Oslo booked", "flight delayed by rain"}
        assert texts(filters={"metadata.n": [2, 3]}) == {"flight delayed by rain", "flight simulator game"}
        assert texts(time_range=(T0 + DAY, None)) == {"flight delayed by rain", "flight simulator game"}
        assert texts(time_range=(T0 + DAY, T0 + 15 * DAY)) == {"flight delayed by rain"}
        assert texts(time_range=(None, T0 + 15 * DAY), filters={"metadata.topic": "travel"}) == {
            "flight to Oslo booked", "flight delayed by rain"}
    with pytest.raises(KeelError, match="unknown filter 'topic'"):
        m.search("flight", filters={"topic": "travel"})
    with pytest.raises(KeelError, match="time_range"):
        m.search("flight", time_range=(T0 + DAY, T0))


def test_contradiction_supersedes_and_lowers_consensus(make_memory):
    m = make_memory(abstain_below=0.0)
    old = m.add("I live in Lisbon.", timestamp=T0)[0]
    new = m.add("I moved to Porto.", timestamp=T0 + 100 * DAY)[0]
    facts = m.search("live lisbon porto moved", k=10, mode="hybrid", filters={"status": ["active", "superseded"]},
                     kinds=("fact",))
    by_value = {f["value"]: f for f in facts}
    assert by_value["lisbon"]["status"] == "superseded" and by_value["porto"]["status"] == "active"
    assert [h["op"] for h in m.history(by_value["lisbon"]["id"])] == ["add", "supersede"]
    assert m.get(old)["consensus"] < 0.5  # contradicted by a newer statement of the same slot
    q = "where do I live? Lisbon or Porto"
    assert {h["id"] for h in m.search(q, k=2, mode="hybrid")} == {old, new}
    hits = m.search(q, k=2, now=T0 + 100 * DAY)
    assert [h["id"] for h in hits] == [new]  # the superseded claim is left out of reliability-aware search


def test_reliability_weighs_source_and_abstains(make_memory):
    cfg = ReliabilityConfig(credibility={"expert": 1.0, "rumor": 0.1, "unknown": 0.5})
    m = make_memory(reliability=cfg, abstain_below=0.15)
    a = m.add("the bridge closes at nine tonight", source="rumor", timestamp=T0)[0]
    b = m.add("the bridge closes at ten tonight", source="expert", timestamp=T0)[0]
    plain = m.search("bridge closes tonight", k=2, mode="hybrid")
    assert {h["id"] for h in plain} == {a, b}
    hits = m.search("bridge closes tonight", k=2, now=T0)
    assert hits[0]["id"] == b and hits[0]["reliability"] > hits[1]["reliability"]
    weak = m.search("quantum chromodynamics lattice", k=2, now=T0)
    assert weak.abstained and len(weak) == 0


def test_duplicate_facts_merge(make_memory):
    m = make_memory()
    m.add("My favourite colour is green.", timestamp=T0)
    m.add("My favourite colour is green, as always.", timestamp=T0 + DAY)
    facts = m.search("favourite colour", k=5, mode="hybrid", kinds=("fact",))
    assert len(facts) == 1 and len(facts[0]["provenance"]["messages"]) == 2
    assert facts[0]["consensus"] > 0.5


def test_export_import_roundtrip(make_memory, tmp_path):
    m = make_memory()
    ids = m.add(["alpha beta", "gamma delta"], timestamp=T0, metadata={"x": 1})
    m.update(ids[0], "alpha beta epsilon")
    path = tmp_path / "alice.jsonl"
    n = m.export(path)
    assert n == m.stats()["items"]
    m.search("alpha", k=2)  # gives the hits a use count and a last-used time, which must travel too
    path2 = tmp_path / "alice2.jsonl"
    assert m.export(path2) == n
    other = make_memory("carol")
    assert other.import_(path2) == n
    assert m.get(ids[0])["uses"] >= 1 and m.get(ids[0])["last_used"] is not None
    for item_id in ids:
        before, after = m.get(item_id), other.get(item_id)
        for field in ("reliability", "provenance"):  # reliability: recency is computed at read time
            before.pop(field), after.pop(field)
        assert after == before  # every other field: text, kind, status, version, timestamps, slots, usage...
        assert other.get(item_id)["provenance"] == {**m.get(item_id)["provenance"], "imported_from": "alice2.jsonl"}
    assert other.get(ids[0])["text"] == "alpha beta epsilon" and other.get(ids[0])["version"] == 2
    assert other.search("epsilon", mode="bm25")[0]["id"] == ids[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    before = other.stats()["items"]
    with pytest.raises(KeelError, match="bad.jsonl:2"):
        other.import_(bad)
    assert other.stats()["items"] == before  # all or nothing


def test_bad_input_is_refused_and_store_stays_intact(make_memory):
    m = make_memory(max_chars=1000)
    keep = m.add("a sentence worth keeping", timestamp=T0)[0]
    for bad, match in [("", "empty"), ("   ", "empty"), ("x" * 1001, "over the limit"), (42, "takes a text"), ([42], "must be a string"),
                       ([], "non-empty list"), ([{"role": "user"}], "no 'content'")]:
        with pytest.raises(KeelError, match=match):
            m.add(bad)
    with pytest.raises(KeelError, match="JSON"):
        m.add("ok", metadata={"f": object()})
    with pytest.raises(KeelError, match="ISO"):
        m.add("ok", timestamp="yesterday-ish")
    with pytest.raises(KeelError, match="k must be"):
        m.search("ok", k=0)
    with pytest.raises(KeelError, match="unknown search mode"):
        m.search("ok", mode="magic")
    with pytest.raises(KeelError, match="no memory"):
        m.get("nope")
    assert m.stats()["messages_active"] == 1 and m.get(keep)["text"] == "a sentence worth keeping"


def test_prune_under_capacity_keeps_history(make_memory):
    cfg = ReliabilityConfig(credibility={"good": 1.0, "bad": 0.1, "unknown": 0.5})
    m = make_memory(reliability=cfg, organise=False)
    good = m.add([f"useful note number {i}" for i in range(4)], source="good", timestamp=T0)
    bad = m.add([f"dubious note number {i}" for i in range(4)], source="bad", timestamp=T0)
    dropped = m.prune(capacity=5, now=T0)
    assert set(dropped) <= set(bad) and len(dropped) == 3
    assert m.stats()["messages_active"] == 5
    assert m.history(dropped[0])[-1]["status"] == "pruned"
    assert all(h["id"] not in dropped for h in m.search("note number", k=10, mode="hybrid"))
    assert all(m.get(g)["status"] == "active" for g in good)
