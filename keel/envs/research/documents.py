"""The corpus of the research world: documents written about its entities from varied templates.

Every fact is stated at least twice, in different phrasings: once in its subject's profile (a few sentences
about one entity) and once in a short note written from a different angle. Distractor documents mention
entities together without stating a relation ("X gave a talk in Y"), and near-twin entities
(`world.Entity.twin_of`) have profiles of their own, so the right passage has look-alikes around it.

Each document records the entities it mentions, in order of appearance (`mentions`), and the facts it
states (`facts`): what an entity tagger and a relation reader would recover from its text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from keel.envs.research.world import World

# several phrasings per relation; {s} the subject, {o} the object
PHRASES: dict[str, list[str]] = {
    "born_in": ["{s} was born in {o}.", "{s} is a native of {o}.", "{o} is where {s} was born.",
                "Born in {o}, {s} spent a childhood there."],
    "works_for": ["{s} works for {o}.", "{s} is employed by {o}.", "{o} employs {s}.",
                  "{s} holds a position at {o}."],
    "educated_at": ["{s} studied at {o}.", "{s} graduated from {o}.", "{o} is the alma mater of {s}.",
                    "{s} is an alumnus of {o}."],
    "founded_by": ["{s} was founded by {o}.", "{o} founded {s}.", "{o} is the founder of {s}.",
                   "{s} was started by {o}."],
    "headquartered_in": ["{s} is headquartered in {o}.", "{s} has its head office in {o}.",
                         "{o} hosts the headquarters of {s}.", "The main office of {s} is in {o}."],
    "campus_in": ["{s} is located in {o}.", "{s} has its campus in {o}.", "{o} is home to {s}."],
    "located_in": ["{s} is a city in {o}.", "{s} lies in {o}.", "{o} contains the city of {s}."],
    "mayor": ["{o} is the mayor of {s}.", "{s} is governed by mayor {o}.", "The mayor of {s} is {o}."],
    "flows_through": ["{s} flows through {o}.", "{s} runs through {o}.", "{o} sits on the banks of {s}."],
    "capital": ["{o} is the capital of {s}.", "The capital of {s} is {o}.",
                "{s} is governed from its capital, {o}."],
}

INTRO = {
    "person": ["{n} is a {occ}.", "{n}, a {occ}, is profiled here.", "The {occ} {n}."],
    "city": ["{n} is a city.", "{n} is a mid-sized town.", "The city of {n}."],
    "country": ["{n} is a country.", "{n} is a sovereign state.", "The nation of {n}."],
    "river": ["The {n} is a river.", "{n} is a long waterway.", "The {n}."],
    "company": ["{n} is a company.", "{n} is a private firm.", "The business {n}."],
    "university": ["{n} is a university.", "{n} is a place of higher learning.", "The school {n}."],
}

DISTRACTORS = ["{a} gave a talk in {b}.", "{a} once visited {b}.", "{a} wrote an essay about {b}.",
               "A festival in {b} honoured {a}.", "{a} opened a small office near {b}."]


@dataclass(frozen=True)
class Document:
    id: int
    text: str
    about: int  # the entity the document is about (the first mention)
    kind: str  # "profile", "note" or "distractor"
    mentions: tuple[int, ...]  # entity ids in order of appearance
    facts: tuple[tuple[int, str, int], ...]  # (subject, relation, object) stated in the text


def _fact(rng: random.Random, rel: str, s: str, o: str, avoid: int | None = None) -> tuple[str, int]:
    choices = [i for i in range(len(PHRASES[rel])) if i != avoid]
    i = rng.choice(choices)
    return PHRASES[rel][i].format(s=s, o=o), i


def _ordered(text: str, ids: list[int], world: World) -> tuple[int, ...]:
    """`ids` in order of first appearance in `text` (a longer name wins a tie with a name inside it)."""
    seen = dict.fromkeys(ids)
    return tuple(sorted(seen, key=lambda i: (text.find(world.entities[i].name), -len(world.entities[i].name))))


def write_corpus(world: World, distractors_per_entity: float = 0.5) -> list[Document]:
    rng = random.Random(f"research-corpus|{world.seed}")
    ents = world.entities
    docs: list[Document] = []
    for e in ents:
        intro = rng.choice(INTRO[e.type]).format(n=e.name, occ=e.occupation)
        parts, mentions, facts, used = [intro], [e.id], [], {}
        rels = list(e.facts.items())
        rng.shuffle(rels)
        for rel, o in rels:
            text, used[rel] = _fact(rng, rel, e.name, ents[o].name)
            parts.append(text)
            mentions.append(o)
            facts.append((e.id, rel, o))
        if e.twin_of is not None and rng.random() < 0.5:
            parts.append(f"It is not to be confused with {ents[e.twin_of].name}.")
            mentions.append(e.twin_of)
        text = " ".join(parts)
        docs.append(Document(len(docs), text, e.id, "profile", _ordered(text, mentions, world), tuple(facts)))
        for rel, o in rels:  # the same fact again, phrased differently, in a note of its own
            text, _ = _fact(rng, rel, e.name, ents[o].name, avoid=used[rel])
            docs.append(Document(len(docs), text, e.id, "note", _ordered(text, [e.id, o], world), ((e.id, rel, o),)))
    actors = [e for e in ents if e.type in ("person", "company")]  # who can give talks and write essays
    n_distract = int(len(ents) * distractors_per_entity)
    for _ in range(n_distract):
        a, b = rng.choice(actors), rng.choice(ents)
        if a.id == b.id:
            continue
        text = rng.choice(DISTRACTORS).format(a=a.name, b=b.name)
        docs.append(Document(len(docs), text, a.id, "distractor", _ordered(text, [a.id, b.id], world), ()))
    return docs
