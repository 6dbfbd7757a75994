"""xMemory organisation: episode boundaries, themes that split and merge, diverse top-down retrieval."""

from __future__ import annotations

from keel.memory import HashEmbedder, Memory
from keel.memory.hierarchy import HierarchyConfig
from keel.memory.store import Where

T0 = 1_700_000_000.0


def _items(m, kind):
    return m.store.select(Where(m.namespace, kinds=(kind,), statuses=("active",)))


def test_episodes_split_on_time_gap_and_size(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), hierarchy=HierarchyConfig(episode_gap_s=600, episode_max=4))
    ids = m.add([f"we talked about the garden plan step {i}" for i in range(3)], timestamp=T0)
    ids += m.add(["much later: the garden plan again"], timestamp=T0 + 3600)  # gap > 10 min
    ids += m.add([f"garden plan detail {i}" for i in range(5)], timestamp=T0 + 3700)  # 5 > max 4
    eps = sorted(_items(m, "episode"), key=lambda e: e["metadata"]["start"])
    assert [len(e["metadata"]["members"]) for e in eps] == [3, 4, 2]
    assert eps[0]["metadata"]["members"] == ids[:3]
    assert all(m.get(i)["parent"] in {e["id"] for e in eps} for i in ids)
    m.close()


def test_themes_split_when_large_and_keep_every_fact(tmp_path):
    cfg = HierarchyConfig(theme_sim=0.0, theme_max=6)  # every fact joins the nearest theme; split above 6
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), hierarchy=cfg)
    texts = [f"I like {x}" for x in ("red apples", "green apples", "apple pie", "apple juice", "baked apples")]
    texts += [f"I like {x}" for x in ("fast trains", "night trains", "train stations", "model trains")]
    m.add(texts, timestamp=T0)
    themes = _items(m, "theme")
    facts = _items(m, "fact")
    assert len(facts) == 9 and len(themes) >= 2
    members = [f for t in themes for f in t["metadata"]["members"]]
    assert sorted(members) == sorted(f["id"] for f in facts)  # a partition: nothing lost, nothing twice
    assert all(len(t["metadata"]["members"]) <= 6 for t in themes)
    m.close()


def test_top_down_is_diverse(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), abstain_below=0.0)
    dup = "the project deadline is friday at noon"
    m.add([dup, dup, dup + " sharp", "the project budget is ten thousand euros", "the project lead is Marta"],
          timestamp=T0)
    flat = [h["text"] for h in m.search("project deadline budget lead", k=3, mode="dense")]
    top = [h["text"] for h in m.search("project deadline budget lead", k=3, mode="hierarchical")]
    assert sum(t.startswith("the project deadline") for t in flat) >= 2  # similarity top-k is redundant
    assert sum(t.startswith("the project deadline") for t in top) == 1  # top-down covers more facts
    assert len(set(top)) == 3
    m.close()


def test_delete_forgets_what_was_derived(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder())
    a, b = m.add(["My favourite colour is teal.", "The weather was fine."], timestamp=T0)
    c = m.add("My favourite colour is teal, still.", timestamp=T0 + 60)[0]
    fact = _items(m, "fact")[0]
    assert fact["provenance"]["messages"] == [a, c]
    m.delete(a)
    assert m.get(fact["id"])["provenance"]["messages"] == [c]  # still supported by c
    episode = _items(m, "episode")[0]
    assert "teal." not in episode["text"].split("\n")[0] and a not in episode["metadata"]["members"]
    m.delete(c)
    assert m.get(fact["id"])["status"] == "deleted"  # no message supports it any more
    assert m.history(fact["id"])[0]["text"] == "My favourite colour is teal."  # history keeps it
    assert m.get(b)["status"] == "active"
    m.close()


def test_update_replaces_the_facts_derived_from_the_old_text(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder())
    m.add("I live in Lisbon.", timestamp=T0)
    moved = m.add("I moved to Porto last month.", timestamp=T0 + 60)[0]
    facts = {f["value"]: f for f in m.store.slot_items(m.namespace, "user|lives in") if f["kind"] == "fact"}
    assert facts["porto"]["status"] == "active" and facts["lisbon"]["status"] == "superseded"
    m.update(moved, "I moved to Madrid last month.")
    now = {f["value"]: f for f in m.store.slot_items(m.namespace, "user|lives in") if f["kind"] == "fact"}
    active = [v for v, f in now.items() if f["status"] == "active"]
    assert active == ["madrid"]  # the Porto fact no longer stands; Madrid supersedes Lisbon
    assert m.get(facts["porto"]["id"])["status"] == "deleted" and now["lisbon"]["status"] == "superseded"
    m.update(moved, "The weather was nice last month.")  # now it states no fact at all
    assert m.get(now["madrid"]["id"])["status"] == "deleted"
    assert m.get(facts["lisbon"]["id"])["status"] == "active"  # nothing newer holds the slot: Lisbon stands again
    assert [h["op"] for h in m.history(facts["porto"]["id"])][-1] == "revise"
    m.close()
