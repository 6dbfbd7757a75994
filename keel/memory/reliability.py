"""Reliability of a memory item, after MMA: Multimodal Memory Agent (Lu, Cheng, Zhang, Tang; arXiv 2602.16493).

MMA scores each memory item by three signals and uses the score to reweight evidence and to abstain:

    r_i = w_s * C(source_i) + w_t * 0.5 ** (age_i / half_life) + w_c * K_i

C is a configurable source-credibility table. K_i is the item's consensus with its network of related
items: related items that agree raise it, items that contradict it lower it, each weighted by the
neighbour's own credibility and its similarity to i:

    K_i = 1/2 + 1/2 * sum_j a_ij c_j s_ij w_ij / (1 + sum_j |a_ij| c_j s_ij w_ij)

with a_ij in {+1 agree, -1 contradict, 0 unrelated} and w_ij = 1 for a newer neighbour and 1/2 for an
older one, times `self_support` (1/4) when an agreeing neighbour has the same source (a speaker repeating
itself is not independent corroboration); questions claim nothing and relate to nothing. An older contradicting item does not count against a newer one unless its source is more
credible by more than `update_margin`: a newer statement from a comparable source is an update (the
user moved house), not a live conflict; the older statement, in turn, is contradicted by the newer one
at full weight. The 1 in the denominator is a prior: an item nobody has confirmed or denied sits at 1/2.

Contradiction without a language model (the method, stated plainly):
  1. slot conflict: both items state a value for the same (subject, attribute) slot — extracted by
     `keel.memory.facts` — and the values differ, or the polarity differs ("I like X" / "I don't like X");
  2. same slot, same value, same polarity: agreement;
  3. no slot on either: embedding similarity >= `dup_sim` with the same content words (one set within
     the other) counts as agreement; if exactly one of the two carries a negation cue ("not", "never",
     "no longer", ...) it is a contradiction; near-identical wording with different content words
     ("Tom lives in Oslo" / "Tom lives in Rome") is neither.
Consensus is stored per item and recomputed for an item and its neighbours whenever one of them is
added or changed; recency depends on the clock, so it is computed at query time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CREDIBILITY = {
    "system": 1.0, "user": 0.9, "tool": 0.8, "assistant": 0.6, "document": 0.7, "web": 0.5,
    "unknown": 0.5, "rumor": 0.2,
}
NEGATION = re.compile(r"\b(not|never|no longer|don't|doesn't|didn't|isn't|aren't|wasn't|won't|no)\b", re.I)


@dataclass
class ReliabilityConfig:
    credibility: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CREDIBILITY))
    half_life_days: float = 30.0
    # MMA's weights (arXiv 2602.16493): source 0.45, recency 0.40, consensus 0.15
    w_source: float = 0.45
    w_time: float = 0.40
    w_consensus: float = 0.15
    dup_sim: float = 0.9  # cosine above which two unslotted items are "the same claim"
    related_sim: float = 0.5  # cosine above which an item is a neighbour at all
    self_support: float = 0.25  # weight of agreement that comes from the same source
    update_margin: float = 0.15  # a newer claim updates (not conflicts with) an older one from a source at most this much more credible

    def source_credibility(self, source: str) -> float:
        return float(self.credibility.get(source, self.credibility.get("unknown", 0.5)))


def recency(ts: float, now: float, half_life_days: float) -> float:
    age = max(0.0, now - ts)
    return 0.5 ** (age / (half_life_days * 86400.0))


def relation(a: dict[str, Any], b: dict[str, Any], sim: float, cfg: ReliabilityConfig) -> int:
    """+1 if b supports a, -1 if it contradicts a, 0 if unrelated (see the module docstring)."""
    if a["text"].rstrip().endswith("?") or b["text"].rstrip().endswith("?"):
        return 0  # a question claims nothing, so it neither supports nor denies
    if a.get("slot") and a.get("slot") == b.get("slot"):
        same = (a.get("value") or "").lower() == (b.get("value") or "").lower()
        return 1 if same and a.get("polarity", 1) == b.get("polarity", 1) else -1
    if a.get("slot") and b.get("slot"):
        return 0  # two different slots: neither supports nor denies
    if sim >= cfg.dup_sim:
        neg_a, neg_b = bool(NEGATION.search(a["text"])), bool(NEGATION.search(b["text"]))
        if neg_a != neg_b:
            return -1
        # near-identical wording only corroborates when it says the same things: "Tom lives in Oslo" and
        # "Tom lives in Rome" are close in embedding space but do not support each other
        wa, wb = _content(a["text"]), _content(b["text"])
        return 1 if wa <= wb or wb <= wa else 0
    return 0


_WORDS = re.compile(r"[a-z0-9']+")
_STOP = frozenset("a an the and or but to of in on at for with is are was were be i you he she it we they my your "
                  "me this that so as by from not no never don't".split())


def _content(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORDS.findall(text.lower()) if w not in _STOP)


def consensus(item: dict[str, Any], neighbours: list[tuple[dict[str, Any], float]], cfg: ReliabilityConfig) -> float:
    num, den = 0.0, 1.0
    for nb, sim in neighbours:
        if nb["id"] == item["id"]:
            continue
        a = relation(item, nb, sim, cfg)
        if a == 0:
            continue
        if a < 0 and nb["ts"] < item["ts"] and item["credibility"] >= nb["credibility"] - cfg.update_margin:
            continue  # an older claim that this one updates is history, not a live conflict
        w = 1.0 if nb["ts"] >= item["ts"] else 0.5
        if a > 0 and nb["source"] == item["source"]:
            w *= cfg.self_support  # a source repeating itself is weak evidence, not independent corroboration
        mass = nb["credibility"] * max(sim, 0.0) * w
        num += a * mass
        den += mass
    return 0.5 + 0.5 * num / den


def reliability(item: dict[str, Any], now: float, cfg: ReliabilityConfig) -> float:
    return (
        cfg.w_source * item["credibility"]
        + cfg.w_time * recency(item["ts"], now, cfg.half_life_days)
        + cfg.w_consensus * item["consensus"]
    )
