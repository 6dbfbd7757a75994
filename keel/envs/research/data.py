"""One research world, built once per process: entities, corpus, questions of both splits, search index.

Everything is a pure function of (seed, entities, questions per hop), so the per-process caches below only
save time; two processes with the same settings see identical worlds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from keel.envs.research.documents import Document, write_corpus
from keel.envs.research.questions import Question, generate_questions
from keel.envs.research.search import CorpusIndex, EmbedderName, make_embedder
from keel.envs.research.world import World, generate_world


@dataclass(frozen=True)
class ResearchData:
    world: World
    docs: list[Document]
    questions: dict[str, Question]  # id -> question, both splits

    def split(self, split: str) -> list[str]:
        return [q.id for q in self.questions.values() if q.split == split]


@lru_cache(maxsize=4)
def research_data(seed: int = 0, entities: int = 2400, train_per_hop: int = 1000,
                  test_per_hop: int = 200) -> ResearchData:
    world = generate_world(seed, entities)
    docs = write_corpus(world)
    qs = generate_questions(world, "train", train_per_hop) + generate_questions(world, "test", test_per_hop)
    return ResearchData(world, docs, {q.id: q for q in qs})


@lru_cache(maxsize=4)
def corpus_index(seed: int, entities: int, embedder: EmbedderName) -> CorpusIndex:
    return CorpusIndex(research_data(seed, entities).docs, make_embedder(embedder))
