"""The real embedder, offline: semantics that BM25 cannot see, batching and the cache."""

from __future__ import annotations

import numpy as np

from keel.memory import HashEmbedder, Memory
from keel.memory.embedder import CachedEmbedder


def test_minilm_is_offline_normalised_and_semantic(minilm):
    v = minilm.encode(["I adopted a puppy last week", "We got a new dog", "The stock market fell"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_dense_and_hybrid_find_paraphrases(minilm, tmp_path):
    m = Memory(tmp_path / "m.db", embedder=minilm)
    texts = ["I adopted a puppy named Biscuit", "My sister works as an architect in Berlin",
             "The quarterly budget review is on Thursday", "I am allergic to peanuts"]
    ids = m.add(texts, timestamp=1_700_000_000)
    q = "what kind of pet do they have?"  # no word in common with the answer
    assert not any(h["id"] == ids[0] for h in m.search(q, k=4, mode="bm25"))
    assert m.search(q, k=1, mode="dense")[0]["id"] == ids[0]
    assert m.search(q, k=1, mode="hybrid")[0]["id"] == ids[0]
    assert m.search("food allergy", k=1, now=1_700_000_000)[0]["id"] == ids[3]
    m.close()


def test_cache_skips_repeated_texts():
    calls = []

    class Counting(HashEmbedder):
        def _encode(self, texts):
            calls.append(len(texts))
            return super()._encode(texts)

    emb = CachedEmbedder(Counting(), capacity=3)
    a = emb.encode(["x", "y", "x"])
    b = emb.encode(["y", "z"])
    assert calls == [2, 1] and np.allclose(a[1], b[0]) and emb.hits == 2
    emb.encode(["w", "v"])  # capacity 3: the least recently used fall out
    emb.encode(["x"])
    assert calls[-1] == 1
