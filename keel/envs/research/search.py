"""The research agent's `search` tool: the world's corpus in a `keel.memory.Memory`, searched by BM25, dense
or hybrid retrieval (its public `add` / `search`), top-k passages formatted as Search-R1's
`<information>` block.

The memory lives in a temporary folder removed with the index, and is built once per process for a
given world and embedder (`keel.envs.research.data.corpus_index`): every env of a run searches one corpus.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from keel.envs.research.documents import Document
from keel.memory import HashEmbedder, Memory
from keel.memory.embedder import Embedder, default_embedder

Mode = Literal["bm25", "dense", "hybrid"]
EmbedderName = Literal["hash", "minilm"]


def make_embedder(name: EmbedderName) -> Embedder:
    """"hash": instant lexical feature hashing; "minilm": the real sentence embedder (slower to index)."""
    return HashEmbedder() if name == "hash" else default_embedder()


@dataclass(frozen=True)
class Passage:
    doc: int
    text: str


class CorpusIndex:
    """The corpus held in a Memory; `search(query, k, mode)` -> the top passages, best first."""

    def __init__(self, docs: list[Document], embedder: Embedder):
        self.docs = docs
        # a private temporary folder, not ":memory:": the SQLite store keeps its BM25 / vector index caches
        # in files beside the database path, and ":memory:" would put them in the working directory,
        # where a later world of the same size would load them as its own
        self._dir = tempfile.TemporaryDirectory(prefix="keel-research-")
        self.memory = Memory(Path(self._dir.name) / "corpus.db", namespace="research", embedder=embedder,
                             organise=False)
        ids = self.memory.add([d.text for d in docs], source="corpus", timestamp=0.0)
        self._doc_of = dict(zip(ids, range(len(docs)), strict=True))

    def search(self, query: str, k: int, mode: Mode) -> list[Passage]:
        hits = self.memory.search(query, k=k, mode=mode, track_use=False)
        return [Passage(self._doc_of[h["id"]], h["text"]) for h in hits]


def information(passages: list[Passage]) -> str:
    """Search-R1's observation: the passages, numbered, inside <information>...</information>."""
    body = "\n".join(f"Doc {i}: {p.text}" for i, p in enumerate(passages, 1)) or "No results."
    return f"<information>\n{body}\n</information>"
