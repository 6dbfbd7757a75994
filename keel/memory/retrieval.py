"""Hybrid retrieval: score-aware fusion of BM25 and dense rankings, reciprocal-rank fusion, and maximal
marginal relevance (Carbonell & Goldstein, SIGIR 1998) for diverse selection.

`convex` is the convex combination of normalised scores that Bruch, Gai & Ingber ("An Analysis of Fusion
Functions for Hybrid Retrieval", ACM TOIS 2023) found better than RRF and more sample-efficient to tune:

    f(d) = alpha * cos_n(q, d) + (1 - alpha) * bm25_n(q, d)

with each score divided by the best score of the query's candidates, from a theoretical minimum of 0
(their "TMM" normalisation; negative cosines count as 0). Min-max over the observed candidates instead
would stretch any two near-equal scores to 0 and 1. Unlike RRF, which sees only ranks, it keeps how far apart two
documents are: a document that BM25 barely prefers but the embedding strongly prefers wins, where RRF
calls it a tie (1/61 + 1/62 either way) and the order is a coin toss. Every candidate gets its exact
cosine (the caller computes it), so a document that only BM25 found is not penalised for being absent
from the dense list. Remaining ties go to the higher cosine, then the newer item, then the id.

RRF (Cormack, Clarke & Buettcher, SIGIR 2009) scores sum_r 1 / (k + rank_r(d)); kept for comparison.
"""

from __future__ import annotations

import numpy as np

RRF_K = 60


def rrf(rankings: list[list[tuple[str, float]]], k: int = RRF_K) -> list[tuple[str, float]]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (doc, _) in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda x: -x[1])


def convex(lex: dict[str, float], cos: dict[str, float], alpha: float) -> dict[str, float]:
    """Fused scores of every candidate in `cos` (its exact cosine) with its BM25 from `lex` (0 if absent)."""
    if not cos:
        return {}
    top = max(lex.values(), default=0.0)
    hi = max(max(cos.values()), 1e-9)
    return {d: alpha * max(c, 0.0) / hi + (1 - alpha) * (lex.get(d, 0.0) / top if top > 0 else 0.0)
            for d, c in cos.items()}


def mmr(relevance: np.ndarray, vecs: np.ndarray, k: int, lam: float = 0.7) -> list[int]:
    """Indices of k items chosen greedily by lam * relevance - (1 - lam) * max similarity to those chosen."""
    n = len(relevance)
    if n == 0:
        return []
    sims = vecs @ vecs.T
    chosen: list[int] = []
    best_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isinf(best_sim), 0.0, best_sim)
        score = lam * relevance - (1 - lam) * redundancy
        score[~available] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        available[i] = False
        best_sim = np.maximum(np.where(np.isinf(best_sim), -1.0, best_sim), sims[i])
    return chosen
