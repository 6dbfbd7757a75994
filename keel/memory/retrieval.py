"""Hybrid retrieval: reciprocal-rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009) of BM25 and dense
rankings, and maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998) for diverse selection.

RRF scores a document by sum_r 1 / (k + rank_r(d)) over the rankings r that contain it; it needs no
score calibration between BM25 and cosine, which is why it is the usual way to fuse them (k = 60).
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
