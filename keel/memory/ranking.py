"""How search turns retrieved candidates into a ranking: the knobs (tuned on the development half of
`benchmarks/memory.py`'s conversation benchmark, never on its evaluation half) and the small pure steps.

Order of the steps in the default ("reliable") mode, each a re-ranking of one candidate pool, so a later
step can move evidence down but never drop what retrieval found:
  1. score-aware fusion of BM25 and cosine (`retrieval.convex`);
  2. dates in the query (`temporal`): a bonus for items inside the window the query names;
  3. MMA reliability (`reliability`): a bounded multiplier, 1 + w * (r - 1/2), so that an unreliable but
     relevant item moves down a little rather than out;
  4. context expansion: the turns just before and after each of the best hits in the same conversation
     enter with a share of that hit's score (a fact said in reply to a question lives in the reply);
  5. a second hop for questions whose answer lies in another session: the names (capitalised words
     not in the query) in the best hits become a BM25 query, and what it finds joins with a share of
     the score of the hit that named them (iterative retrieval, as in multi-hop QA: the first hop finds
     "my friend Mateo adopted a rescue cat", the second "Mateo says Bergen is great");
  6. hierarchical mode adds the messages behind the xMemory facts and themes nearest the query, and
     moves near-duplicates of better hits to the end (xMemory's aim: a compact, non-redundant set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class SearchConfig:
    """Defaults from the grid search on the development half (benchmarks/memory.py `_tune`, 4 users, 48
    questions): alpha 0.8, neighbour 0.4, hop 0.5, time bonus 0.6 were best (recall@10 0.854); reliability
    0 and 0.3 tied there, and 0.3 is kept so MMA reliability orders near-equal evidence."""

    alpha: float = 0.8  # weight of the (normalised) cosine in fusion; 1 - alpha for BM25
    pool: int = 50  # candidates taken from each retriever (at least 4k)
    time_bonus: float = 0.6  # added to the fused score of items inside a date window the query names
    window_pool: int = 10  # candidates retrieved inside that window on their own
    reliability: float = 0.3  # fused score *= 1 + reliability * (r - 0.5)
    expand_top: int = 3  # how many of the best hits bring their neighbouring turns
    neighbour: float = 0.4  # a neighbouring turn's score as a share of the hit that brought it
    neighbour_gap_s: float = 1800.0  # turns further apart than this are not one conversation
    hop_top: int = 2  # how many of the best hits give names for a second hop
    hop: float = 0.5  # a second-hop hit's score as a share of the hit that named it (0: no second hop)
    hierarchy: float = 0.15  # bonus for a message behind a fact/theme near the query, times its link weight
    dedup_sim: float = 0.9  # hierarchical mode: a hit this close to a better one is redundant, moved last


def _stem(w: str) -> str:
    return w[:-1] if len(w) > 3 and w.endswith("s") else w


def lexical_signature(query: str, text: str) -> frozenset[str]:
    """Which query words a text contains (lower-cased, plural s stripped)."""
    words = {_stem(w) for w in _WORD.findall(text.lower())}
    return frozenset(t for t in {_stem(w) for w in _WORD.findall(query.lower())} if t in words)


def bm25_order(query: str, lex: list[tuple[str, float]], texts: dict[str, str], cos: dict[str, float]) -> list[str]:
    """BM25 order, with ties broken by meaning rather than by length. Documents that match exactly the
    same query words differ in BM25 only through length normalisation, a weak signal: among them the
    one closer to the query in embedding space goes first (the group sits where its best BM25 is)."""
    groups: dict[frozenset[str], list[str]] = {}
    for d, _ in lex:
        if d in texts:
            groups.setdefault(lexical_signature(query, texts[d]), []).append(d)
    best = {d: i for i, d in enumerate(d for d, _ in lex)}
    order = sorted(groups.values(), key=lambda g: min(best[d] for d in g))
    return [d for g in order for d in sorted(g, key=lambda d: -cos.get(d, 0.0))]


def demote_duplicates(order: list[str], vecs: dict[str, np.ndarray], sim: float) -> list[str]:
    """Keep the order, but move each item whose cosine to an item kept before it is >= sim to the end."""
    kept: list[str] = []
    later: list[str] = []
    for d in order:
        if kept and max(float(np.dot(vecs[d], vecs[x])) for x in kept) >= sim:
            later.append(d)
        else:
            kept.append(d)
    return kept + later


_NAME = re.compile(r"\b[A-Z][\w'-]{2,}")
# capitalised only because they start a sentence (BM25's idf discounts the rest of the common words)
_STARTERS = frozenset("the this that these those what when where who how why which and but so then also just "
                      "yes yeah no not okay ok oh ha haha lol well hey hi hello thanks thank sorry please my our "
                      "your his her their its we you they she he it there here got good nice great tell happy "
                      "anyway honestly today guess did".split())


def names(text: str, query: str) -> list[str]:
    """Capitalised words of a text that are not common sentence starters and that the query does not use."""
    q = {w.lower() for w in _WORD.findall(query)}
    return [w for w in dict.fromkeys(_NAME.findall(text)) if w.lower() not in q and w.lower() not in _STARTERS]
