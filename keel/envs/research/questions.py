"""Questions of 1 to 4 hops over the research world, and their exact-match / F1 scoring.

A question is a composed relation chain from a named start entity: "Who is the founder of the employer of
Orlen Vask?" is works_for then founded_by. Chains never revisit an entity, so no hop is a no-op, and as the
world's relations are functional each chain has one answer. Chains stay on one side of the world's entity
split, which makes train and test questions entity-disjoint (`world`).

Scoring follows the SQuAD / Search-R1 convention: answers are compared after lower-casing and removing
punctuation, articles and extra spaces; F1 is over the bag of normalised tokens.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass

from keel.envs.research.world import RELATIONS, World

# relation -> noun phrase for "the object of {subject phrase}"
NOUN_PHRASE = {
    "born_in": "the birthplace of {}",
    "works_for": "the employer of {}",
    "educated_at": "the university attended by {}",
    "founded_by": "the founder of {}",
    "headquartered_in": "the headquarters city of {}",
    "campus_in": "the city that is home to {}",
    "located_in": "the country containing {}",
    "mayor": "the mayor of {}",
    "flows_through": "the city that {} flows through",
    "capital": "the capital of {}",
}

# relation -> what a searcher types to find that one fact about a named entity
QUERY = {
    "born_in": "where was {} born",
    "works_for": "who employs {}",
    "educated_at": "where did {} study",
    "founded_by": "who founded {}",
    "headquartered_in": "where is {} headquartered",
    "campus_in": "where is {} located",
    "located_in": "which country is {} in",
    "mayor": "who is the mayor of {}",
    "flows_through": "which city does {} flow through",
    "capital": "what is the capital of {}",
}

# the searcher's rephrasings when a query misses: the question form, relation words around the name, the name
_WORDS = {"born_in": "born birthplace native", "works_for": "employs employer works job position",
          "educated_at": "studied graduated alumnus alma mater", "founded_by": "founded founder started",
          "headquartered_in": "headquarters head office", "campus_in": "campus located home",
          "located_in": "city in country lies contains", "mayor": "mayor governed",
          "flows_through": "flows runs river banks", "capital": "capital governed"}
QUERIES = (lambda rel, name: QUERY[rel].format(name),
           lambda rel, name: f"{name} {_WORDS[rel]}",
           lambda rel, name: name)

HOPS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Question:
    id: str
    split: str
    text: str
    chain: tuple[int, ...]  # entity ids: start, then the object of each hop (the last is the answer)
    relations: tuple[str, ...]
    answer: str
    answer_type: str

    @property
    def hops(self) -> int:
        return len(self.relations)


def phrase(world: World, start: int, relations: tuple[str, ...]) -> str:
    np_ = world.entities[start].name
    for rel in relations:
        np_ = NOUN_PHRASE[rel].format(np_)
    return np_


def _walk(world: World, rng: random.Random, start: int, hops: int) -> tuple[tuple[int, ...], tuple[str, ...]] | None:
    chain, rels = [start], []
    for _ in range(hops):
        e = world.entities[chain[-1]]
        options = [(r, o) for r, o in sorted(e.facts.items()) if o not in chain]
        if not options:
            return None
        r, o = rng.choice(options)
        chain.append(o)
        rels.append(r)
    return tuple(chain), tuple(rels)


def generate_questions(world: World, split: str, per_hop: int) -> list[Question]:
    """Up to `per_hop` distinct questions of each hop count, from entities of `split` ("train" or "test")."""
    rng = random.Random(f"research-questions|{world.seed}|{split}")
    starts = [e.id for e in world.entities if e.split == split]
    out: list[Question] = []
    for h in HOPS:
        seen: set[tuple] = set()
        for _ in range(per_hop * 20):
            if len(seen) >= per_hop:
                break
            walked = _walk(world, rng, rng.choice(starts), h)
            if walked is None or walked in seen:
                continue
            seen.add(walked)
            chain, rels = walked
            ans = world.entities[chain[-1]]
            lead = "Who is" if ans.type == "person" else "What is"
            text = f"{lead} {phrase(world, chain[0], rels)}?"
            out.append(Question(f"{split}-{h}-{len(seen) - 1}", split, text, chain, rels, ans.name, ans.type))
    return out


def answer_type(relations: tuple[str, ...]) -> str:
    return RELATIONS[relations[-1]][1]


def normalize(text: str) -> str:
    text = text.lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)
