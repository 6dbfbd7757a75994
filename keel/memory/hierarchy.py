"""Organising memory as it grows, after xMemory (Hu, Zhu, Yan, He, Gui: "Beyond RAG for Agent Memory:
Retrieval by Decoupling and Aggregation", arXiv 2602.02007).

xMemory decouples a dialogue stream into intact units and aggregates them into a hierarchy that drives
retrieval: messages -> episodes -> semantic facts -> themes, then retrieves top-down, choosing a compact,
diverse set of themes and facts and expanding to raw messages. Here, without a language model:

- episodes: a message joins the open episode unless the time gap exceeds `episode_gap_s`, or the topic
  shifts (cosine to the episode centroid below `topic_sim` once it has 3 messages), or it is full;
- facts: `keel.memory.facts` extracts slot/value statements; a fact equal to an active one in the same
  slot merges into it (provenance grows, consensus rises); a fact that contradicts an older one from a
  source about as credible supersedes it (status "superseded", the old version kept in history);
- themes: each new fact joins the nearest theme centroid (cosine >= `theme_sim`) or founds a theme; a
  theme larger than `theme_max` splits in two by 2-means, and two themes whose centroids come within
  `theme_merge_sim` merge (xMemory's split/merge keeps themes both sparse and coherent; we use these
  thresholds in place of its sparsity-semantics objective);
- top-down retrieval: themes -> facts chosen by MMR -> the messages behind them, each with a link weight
  (its fact's cosine to the query); `Memory` adds these messages to its candidate pool with a bonus
  (`keel.memory.ranking`), so the hierarchy brings evidence in without pushing retrieved evidence out;
- pruning under a capacity keeps the most valuable items: value = reliability * (1 + log(1 + uses)/2).

MMA consensus (`keel.memory.reliability`) is maintained here too, since it is a property of neighbours.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from keel.memory import facts as factlib
from keel.memory import reliability as rel
from keel.memory.retrieval import mmr
from keel.memory.store import Item, Store, Where, new_item


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...

_STOP = set(
    "the a an and or but to of in on at for with is are was were be been i you he she it we they my your his "
    "her its our their me him them this that these those do does did have has had not no so as by from "
    "about just really very now also what when where who how which there here will would can could".split()
)


@dataclass
class HierarchyConfig:
    episode_gap_s: float = 1800.0
    topic_sim: float = 0.2
    episode_max: int = 24
    theme_sim: float = 0.45
    theme_max: int = 24
    theme_merge_sim: float = 0.9
    supersede_margin: float = 0.15  # a newer fact supersedes an older one unless its source is this much less credible
    neighbours: int = 8
    # text -> facts; None: the pattern extractor (`keel.memory.facts`). `keel.memory.llm_facts` plugs a
    # constrained language-model extractor in here (measured harmful with SmolLM2-135M: see its docstring)
    extractor: Callable[[str], list[factlib.Fact]] | None = None


class Organiser:
    """Builds and reads one namespace's hierarchy in a store (it knows the store, not `Memory`)."""

    def __init__(self, store: Store, namespace: str, embedder: Encoder, rcfg: rel.ReliabilityConfig,
                 cfg: HierarchyConfig | None = None):
        self.store = store
        self.ns = namespace
        self.embedder = embedder
        self.rcfg = rcfg
        self.cfg = cfg or HierarchyConfig()

    def _item(self, text: str, vec: np.ndarray, **kw: Any) -> Item:
        return new_item(self.ns, text, vec, self.rcfg.source_credibility(kw.get("source", "user")), **kw)

    # -- on add -----------------------------------------------------------------------------------
    def annotate(self, items: list[dict[str, Any]]) -> None:
        """Give each message its main slot/value before it is stored (explicit metadata wins)."""
        for it in items:
            md = it["metadata"]
            if isinstance(md.get("slot"), str) and md["slot"]:
                it["slot"], it["value"] = md["slot"], str(md.get("value", "")).lower()
                it["polarity"] = -1 if md.get("polarity") in (-1, "negative", False) else 1
                it["_facts"] = [factlib.Fact(it["slot"], it["value"], it["polarity"], it["text"])]
                continue
            found = (self.cfg.extractor or factlib.extract)(it["text"])
            it["_facts"] = found
            if found:
                it["slot"], it["value"], it["polarity"] = found[0].slot, found[0].value, found[0].polarity

    def observe(self, items: list[dict[str, Any]]) -> None:
        for it in items:
            self.refresh_consensus([it])
            episode = self._episode_for(it)
            new_facts = self._facts_from(it, episode)
            for f in new_facts:
                self._theme_for(f)

    # -- MMA consensus --------------------------------------------------------------------------------
    def _neighbours(self, item: dict[str, Any]) -> list[tuple[dict[str, Any], float]]:
        # the plain (namespace, kind) index answers without an id selector; inactive items are dropped below
        where = Where(self.ns, kinds=(item["kind"],))
        found = dict(self.store.dense(where, item["vec"], self.cfg.neighbours + 1))
        found = {i: s for i, s in found.items() if s >= self.rcfg.related_sim and i != item["id"]}
        if item.get("slot"):
            for nb in self.store.slot_items(self.ns, item["slot"]):
                if nb["kind"] == item["kind"] and nb["status"] == "active" and nb["id"] != item["id"]:
                    found.setdefault(nb["id"], None)
        if item["kind"] == "fact":  # later messages merged into this fact are its corroborating witnesses
            for mid in item["provenance"].get("messages", [])[1:]:
                found.setdefault(mid, None)
        if not found:
            return []
        nbs = [nb for nb in self.store.get(self.ns, list(found), with_vec=True) if nb["status"] == "active"]
        return [(nb, float(np.dot(nb["vec"], item["vec"]))) for nb in nbs]

    def refresh_consensus(self, items: list[dict[str, Any]], depth: int = 1) -> None:
        """Recompute consensus of each item and (depth 1) of its neighbours that it agrees or disagrees with."""
        for it in items:
            nbs = self._neighbours(it)
            c = rel.consensus(it, nbs, self.rcfg)
            if abs(c - it["consensus"]) > 1e-4:
                self.store.update(self.ns, it["id"], {"consensus": c}, "consensus", record_history=False)
                it["consensus"] = c
            if depth > 0:
                touched = [nb for nb, s in nbs if rel.relation(it, nb, s, self.rcfg) != 0]
                self.refresh_consensus(touched, depth - 1)

    # -- episodes -----------------------------------------------------------------------------------
    def _episode_for(self, msg: dict[str, Any]) -> dict[str, Any]:
        cur = self.store.select(Where(self.ns, kinds=("episode",), statuses=("active",)), with_vec=True,
                                limit=1, order="ts DESC")
        ep = cur[0] if cur else None
        if ep is not None:
            members = ep["metadata"].get("members", [])
            gap = msg["ts"] - ep["ts"]
            shift = len(members) >= 3 and float(np.dot(ep["vec"], msg["vec"])) < self.cfg.topic_sim
            if gap > self.cfg.episode_gap_s or shift or len(members) >= self.cfg.episode_max or gap < 0:
                ep = None
        if ep is None:
            ep = self._item(msg["text"][:2000], msg["vec"], kind="episode", source=msg["source"], ts=msg["ts"],
                              metadata={"members": [msg["id"]], "start": msg["ts"]},
                              provenance={"messages": [msg["id"]]})
            self.store.insert([ep])
        else:
            members = ep["metadata"]["members"] + [msg["id"]]
            n = len(members)
            v = ep["vec"] * (n - 1) + msg["vec"]
            v = v / max(float(np.linalg.norm(v)), 1e-12)
            text = (ep["text"] + "\n" + msg["text"])[-2000:]
            md = dict(ep["metadata"], members=members)
            ep = self.store.update(self.ns, ep["id"], {"text": text, "vec": v, "ts": msg["ts"], "metadata": md,
                                                       "provenance": {"messages": members}},
                                   "grow", record_history=False)
        self.store.update(self.ns, msg["id"], {"parent": ep["id"]}, "episode", record_history=False)
        return ep

    # -- facts ----------------------------------------------------------------------------------------
    def _facts_from(self, msg: dict[str, Any], episode: dict[str, Any]) -> list[dict[str, Any]]:
        found = msg.get("_facts") or []
        if not found:
            return []
        vecs = self.embedder.encode([f.text for f in found])
        created = []
        for f, v in zip(found, vecs, strict=True):
            same_slot = [x for x in self.store.slot_items(self.ns, f.slot) if x["kind"] == "fact"
                         and x["status"] == "active"]
            twin = next((x for x in same_slot if x["value"] == f.value and x["polarity"] == f.polarity), None)
            if twin is not None:  # near-duplicate: merge into the existing fact
                prov = dict(twin["provenance"])
                prov["messages"] = list(dict.fromkeys(prov.get("messages", []) + [msg["id"]]))
                self.store.update(self.ns, twin["id"], {"provenance": prov, "ts": max(twin["ts"], msg["ts"])},
                                  "merge")
                twin = self.store.get(self.ns, [twin["id"]], with_vec=True)[0]
                self.refresh_consensus([twin])
                continue
            fact = self._item(f.text, v, kind="fact", source=msg["source"], ts=msg["ts"],
                                modality=msg["modality"], metadata={"slot": f.slot, "value": f.value},
                                provenance={"messages": [msg["id"]], "episode": episode["id"]},
                                slot=f.slot, value=f.value, polarity=f.polarity, parent=episode["id"])
            self.store.insert([fact])
            for old in same_slot:  # a contradiction: the newer, credible-enough statement supersedes
                if old["ts"] <= fact["ts"] and fact["credibility"] >= old["credibility"] - self.cfg.supersede_margin:
                    md = dict(old["metadata"], superseded_by=fact["id"])
                    self.store.update(self.ns, old["id"], {"status": "superseded", "metadata": md}, "supersede")
            self.refresh_consensus([fact])
            created.append(fact)
        return created

    # -- themes ---------------------------------------------------------------------------------------
    def _label(self, texts: list[str]) -> str:
        words = Counter(w for t in texts for w in re.findall(r"[a-z][a-z'-]+", t.lower()) if w not in _STOP)
        return " ".join(w for w, _ in words.most_common(8)) or texts[0][:80]

    def _theme_for(self, fact: dict[str, Any]) -> None:
        near = self.store.dense(Where(self.ns, kinds=("theme",)), fact["vec"], 1)  # themes: active or deleted
        if not near or near[0][1] < self.cfg.theme_sim:
            theme = self._item(self._label([fact["text"]]), fact["vec"], kind="theme", source="system",
                                 ts=fact["ts"], metadata={"members": [fact["id"]]}, provenance={"facts": [fact["id"]]})
            self.store.insert([theme])
            return
        theme = self.store.get(self.ns, [near[0][0]])[0]
        members = theme["metadata"]["members"] + [fact["id"]]
        self._set_members(theme, members)
        if len(members) > self.cfg.theme_max:
            self._split(theme, members)
        else:
            self._maybe_merge(theme["id"])

    def _set_members(self, theme: dict[str, Any], members: list[str]) -> dict[str, Any]:
        got = self.store.get(self.ns, members, with_vec=True)
        if not got:
            self.store.update(self.ns, theme["id"], {"status": "deleted"}, "empty")
            return theme
        c = np.mean([g["vec"] for g in got], axis=0)
        c = c / max(float(np.linalg.norm(c)), 1e-12)
        return self.store.update(
            self.ns, theme["id"],
            {"metadata": dict(theme["metadata"], members=[g["id"] for g in got]),
             "provenance": {"facts": [g["id"] for g in got]}, "vec": c, "text": self._label([g["text"] for g in got]),
             "ts": max(g["ts"] for g in got)},
            "theme", record_history=False,
        )

    def _split(self, theme: dict[str, Any], members: list[str]) -> None:
        got = self.store.get(self.ns, members, with_vec=True)
        x = np.stack([g["vec"] for g in got])
        # 2-means, seeded with the two mutually farthest members (deterministic)
        a = int(np.argmin(x @ x.mean(0)))
        b = int(np.argmin(x @ x[a]))
        cents = x[[a, b]]
        for _ in range(10):
            assign = np.argmax(x @ cents.T, axis=1)
            if assign.min() == assign.max():
                return
            cents = np.stack([x[assign == j].mean(0) for j in (0, 1)])
            cents /= np.linalg.norm(cents, axis=1, keepdims=True)
        keep = [g["id"] for g, j in zip(got, assign, strict=True) if j == 0]
        move = [g["id"] for g, j in zip(got, assign, strict=True) if j == 1]
        self._set_members(theme, keep)
        new = self._item("theme", cents[1], kind="theme", source="system", ts=theme["ts"],
                           metadata={"members": move, "split_from": theme["id"]}, provenance={"facts": move})
        self.store.insert([new])
        self._set_members(new, move)

    def _maybe_merge(self, theme_id: str) -> None:
        theme = self.store.get(self.ns, [theme_id], with_vec=True)[0]
        for other_id, sim in self.store.dense(Where(self.ns, kinds=("theme",)), theme["vec"], 2):
            if other_id == theme_id or sim < self.cfg.theme_merge_sim:
                continue
            other = self.store.get(self.ns, [other_id])[0]
            big, small = (theme, other) if len(theme["metadata"]["members"]) >= len(other["metadata"]["members"]) \
                else (other, theme)
            members = list(dict.fromkeys(big["metadata"]["members"] + small["metadata"]["members"]))
            if len(members) <= self.cfg.theme_max:
                self._set_members(big, members)
                self.store.update(self.ns, small["id"], {"status": "deleted",
                                  "metadata": dict(small["metadata"], merged_into=big["id"])}, "merge")
            return

    # -- top-down retrieval ---------------------------------------------------------------------------
    def linked(self, qvec: np.ndarray, k: int, now: float | None = None
               ) -> tuple[dict[str, float], list[Item], list[str]]:
        """Top-down: the themes nearest the query, their facts and the facts nearest it, a diverse choice of
        k of them (MMR over similarity x reliability), and the messages behind those facts with a link
        weight: their fact's cosine to the query. Returns (message id -> weight, chosen facts, theme ids)."""
        now = time.time() if now is None else now
        themes = self.store.dense(Where(self.ns, kinds=("theme",)), qvec, 3)
        fact_ids: list[str] = []
        for t in self.store.get(self.ns, [t for t, _ in themes]):
            fact_ids += t["metadata"].get("members", [])
        fact_ids += [f for f, _ in self.store.dense(Where(self.ns, kinds=("fact",)), qvec, 4 * k)]
        facts = [f for f in self.store.get(self.ns, list(dict.fromkeys(fact_ids)), with_vec=True)
                 if f["status"] == "active"]
        chosen: list[Item] = []
        if facts:
            fv = np.stack([f["vec"] for f in facts])
            frel = (fv @ qvec) * np.array([0.5 + rel.reliability(f, now, self.rcfg) for f in facts])
            chosen = [facts[i] for i in mmr(frel, fv, k) if frel[i] > 0]
        linked: dict[str, float] = {}
        for f in chosen:  # weight: how close the fact is to the query (a fact about food says little about homes)
            for mid in f["provenance"].get("messages", []):
                linked[mid] = max(linked.get(mid, 0.0), max(float(np.dot(f["vec"], qvec)), 0.0))
        public = [{k2: v for k2, v in f.items() if k2 not in ("vec", "namespace")} for f in chosen]
        return linked, public, [t for t, _ in themes]

    # -- forgetting -------------------------------------------------------------------------------------
    def _drop_facts(self, msg_id: str, op: str) -> None:
        """Delete the facts only this message supports (restoring what each had superseded, unless a newer
        active fact holds that slot), and unlink it from the facts others support too."""
        for f in self.store.select(Where(self.ns, kinds=("fact",), statuses=("active", "superseded"))):
            msgs = f["provenance"].get("messages", [])
            if msg_id not in msgs:
                continue
            rest = [x for x in msgs if x != msg_id]
            if rest:
                self.store.update(self.ns, f["id"], {"provenance": dict(f["provenance"], messages=rest)}, "unlink")
                continue
            self.store.update(self.ns, f["id"], {"status": "deleted"}, op)
            if f["status"] != "active" or not f.get("slot"):
                continue
            slot = self.store.slot_items(self.ns, f["slot"])
            for old in slot:
                if old["kind"] == "fact" and old["status"] == "superseded" and \
                        old["metadata"].get("superseded_by") == f["id"] and not any(
                            x["kind"] == "fact" and x["status"] == "active" and x["ts"] >= old["ts"]
                            and x["id"] != f["id"] for x in slot):
                    md = {k: v for k, v in old["metadata"].items() if k != "superseded_by"}
                    self.store.update(self.ns, old["id"], {"status": "active", "metadata": md}, "restore")

    def revise(self, msg: dict[str, Any]) -> None:
        """A message's text changed (`Memory.update`): the facts derived from its old text go (as on delete),
        and facts are derived from the new text (`msg` carries its new `_facts`, vec and text)."""
        self._drop_facts(msg["id"], "revise")
        got = self.store.get(self.ns, [msg["parent"]]) if msg.get("parent") else []
        episode = got[0] if got else {"id": None}
        for f in self._facts_from(msg, episode):
            self._theme_for(f)

    def forget(self, msg: dict[str, Any]) -> None:
        """A message was deleted: delete the facts only it supports, unlink it from the others, and
        rebuild its episode from the remaining messages (so its text does not live on in a summary)."""
        self._drop_facts(msg["id"], "delete")
        if msg.get("parent"):
            got = self.store.get(self.ns, [msg["parent"]])
            if got and got[0]["status"] == "active":
                ep = got[0]
                members = [m for m in self.store.get(self.ns, ep["metadata"].get("members", []), with_vec=True)
                           if m["id"] != msg["id"] and m["status"] != "deleted"]
                if not members:
                    self.store.update(self.ns, ep["id"], {"status": "deleted"}, "delete")
                else:
                    v = np.mean([m["vec"] for m in members], axis=0)
                    v = v / max(float(np.linalg.norm(v)), 1e-12)
                    ids = [m["id"] for m in members]
                    self.store.update(self.ns, ep["id"], {
                        "text": "\n".join(m["text"] for m in members)[-2000:], "vec": v,
                        "metadata": dict(ep["metadata"], members=ids), "provenance": {"messages": ids}}, "forget")

    # -- pruning ----------------------------------------------------------------------------------------
    def prune(self, capacity: int, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        items = self.store.select(Where(self.ns, kinds=("message", "fact"), statuses=("active",)))
        excess = len(items) - capacity
        if excess <= 0:
            return []

        def value(it: dict[str, Any]) -> float:
            return rel.reliability(it, now, self.rcfg) * (1 + 0.5 * math.log1p(it["uses"]))

        victims = sorted(items, key=value)[:excess]
        for it in victims:
            self.store.update(self.ns, it["id"], {"status": "pruned"}, "prune")
        return [it["id"] for it in victims]
