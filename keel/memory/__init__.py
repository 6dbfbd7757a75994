"""Long-term memory for agents: storage, embeddings, hybrid retrieval, reliability (MMA), hierarchy
(xMemory), context budgets and personalisation from feedback (PAHF). Start with `Memory`."""

from keel.memory.embedder import CachedEmbedder, HashEmbedder, MiniLMEmbedder
from keel.memory.memory import Hits, Memory

__all__ = ["Memory", "Hits", "HashEmbedder", "MiniLMEmbedder", "CachedEmbedder"]
