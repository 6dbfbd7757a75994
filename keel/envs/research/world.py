"""A seeded, generated knowledge world for research agents (the Search-R1 setting, arXiv 2503.09516, made
synthetic so nothing is downloaded and nothing is in a model's pretraining data).

Entities are fictional people, cities, countries, rivers, companies and universities with made-up names. A
share of the names are near-twins of another entity's name ("Quillax Labs" / "Quillax Works", "Orlen
Vask" / "Orlen Vasker"): their documents are the distractors a retriever must see past. Relations are typed
and functional (one object per subject), so every composed chain has exactly one answer.

The split is by entity: every entity belongs to one side, `train` or `test`, and relations only link
entities of the same side. Question chains therefore stay on one side, and a test question's whole chain
(every entity it passes through, its answer included) is unseen in training questions. Documents of both
sides share one corpus, as a search engine would; twins cross sides, so distractors do too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

TYPES = ("country", "city", "river", "company", "university", "person")

# relation -> (subject type, object type); functional: each subject has exactly one object
RELATIONS: dict[str, tuple[str, str]] = {
    "born_in": ("person", "city"),
    "works_for": ("person", "company"),
    "educated_at": ("person", "university"),
    "founded_by": ("company", "person"),
    "headquartered_in": ("company", "city"),
    "campus_in": ("university", "city"),
    "located_in": ("city", "country"),
    "mayor": ("city", "person"),
    "flows_through": ("river", "city"),
    "capital": ("country", "city"),
}

# share of each type among the entities (the default 2,400 gives 40 countries, 400 cities, ...)
SHARES = {"country": 40, "city": 400, "river": 160, "company": 420, "university": 180, "person": 1200}
TEST_SHARE = 0.25  # entities on the test side
TWIN_SHARE = 0.2  # entities whose name is a near-twin of another's

_ONSET = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kl", "l", "m", "n", "p", "qu", "r", "s", "st",
          "t", "th", "tr", "v", "w", "z", "c", "j"]
_VOWEL = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia"]
_CODA = ["", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "st", "v"]
_COMPANY = ["Labs", "Works", "Industries", "Systems", "Holdings", "Foods", "Motors", "Textiles"]
_UNIVERSITY = ["University", "Institute", "College", "Academy"]
_CITY = ["", "", "", "holm", "ford", "burg", "port", "field"]
_OCCUPATION = ["engineer", "painter", "economist", "physician", "architect", "historian", "chemist",
               "novelist", "lawyer", "composer", "botanist", "journalist"]


@dataclass
class Entity:
    id: int
    type: str
    name: str
    split: str  # "train" or "test"
    twin_of: int | None = None  # the entity whose name this one's imitates
    occupation: str = ""  # persons only (flavour text in documents)
    facts: dict[str, int] = field(default_factory=dict)  # relation -> object entity id


@dataclass
class World:
    seed: int
    entities: list[Entity]

    def by_type(self, type_: str, split: str | None = None) -> list[Entity]:
        return [e for e in self.entities if e.type == type_ and (split is None or e.split == split)]

    def triples(self) -> list[tuple[int, str, int]]:
        return [(e.id, r, o) for e in self.entities for r, o in e.facts.items()]


def _word(rng: random.Random, syllables: int) -> str:
    w = "".join(rng.choice(_ONSET) + rng.choice(_VOWEL) for _ in range(syllables)) + rng.choice(_CODA)
    return w.capitalize()


def _base_name(rng: random.Random, type_: str) -> str:
    if type_ == "person":
        return f"{_word(rng, rng.choice([1, 2]))} {_word(rng, 2)}"
    if type_ == "city":
        return _word(rng, rng.choice([1, 2])) + rng.choice(_CITY)
    if type_ == "country":
        return _word(rng, 2) + rng.choice(["ia", "land", "stan", "ora"])
    if type_ == "river":
        return f"{_word(rng, 2)} River"
    if type_ == "company":
        return f"{_word(rng, 2)} {rng.choice(_COMPANY)}"
    return f"{_word(rng, 2)} {rng.choice(_UNIVERSITY)}"


def _twin_name(rng: random.Random, name: str, type_: str) -> str:
    """A name a reader (or BM25) could mistake for `name`: same first word, altered or swapped last part."""
    head, _, tail = name.rpartition(" ")
    if type_ == "company":
        return f"{head} {rng.choice([c for c in _COMPANY if c != tail])}"
    if type_ == "university":
        return f"{head} {rng.choice([u for u in _UNIVERSITY if u != tail])}"
    if type_ == "river":
        return f"{head} Creek"
    word = tail
    i = rng.randrange(1, len(word))
    changed = word[:i] + rng.choice("aeiou") + word[i:] if rng.random() < 0.5 else word + rng.choice(["ov", "ek", "ix"])
    return f"{head} {changed}" if head else changed


def generate_world(seed: int = 0, entities: int = 2400) -> World:
    """The world of `seed` with about `entities` entities (each type's share as in SHARES, at least 4 each)."""
    rng = random.Random(f"research-world|{seed}")
    total = sum(SHARES.values())
    counts = {t: max(4, round(entities * s / total)) for t, s in SHARES.items()}
    used: set[str] = set()
    ents: list[Entity] = []

    def fresh(make) -> str:
        for _ in range(1000):
            n = make()
            if n.lower() not in used:
                used.add(n.lower())
                return n
        raise RuntimeError("name space exhausted")  # not reachable at the sizes the world is built for

    for t in TYPES:
        n_twins = int(counts[t] * TWIN_SHARE)
        base: list[Entity] = []
        for _ in range(counts[t] - n_twins):
            e = Entity(len(ents), t, fresh(lambda t=t: _base_name(rng, t)), "train")
            base.append(e)
            ents.append(e)
        for src in rng.sample(base, n_twins):
            ents.append(Entity(len(ents), t, fresh(lambda s=src, t=t: _twin_name(rng, s.name, t)), "train",
                               twin_of=src.id))
    for e in ents:
        e.split = "test" if rng.random() < TEST_SHARE else "train"
        if e.type == "person":
            e.occupation = rng.choice(_OCCUPATION)
    world = World(seed, ents)
    pools = {(t, s): world.by_type(t, s) for t in TYPES for s in ("train", "test")}
    for split in ("train", "test"):  # every type needs members on both sides for relations to close
        for t in TYPES:
            if not pools[(t, split)]:
                donor = next(e for e in world.by_type(t) if e.twin_of is None)
                pools[(t, donor.split)].remove(donor)
                donor.split = split
                pools[(t, split)].append(donor)
    for e in ents:
        for rel, (st, ot) in RELATIONS.items():
            if st == e.type and rel != "capital":
                e.facts[rel] = rng.choice(pools[(ot, e.split)]).id
    for side in ("train", "test"):  # every country holds a city, and its capital is one of its own
        countries, cities = pools[("country", side)], list(pools[("city", side)])
        rng.shuffle(cities)
        for c, x in zip(countries, cities, strict=False):
            x.facts["located_in"] = c.id
        for c in countries:
            mine = [x for x in pools[("city", side)] if x.facts["located_in"] == c.id]
            c.facts["capital"] = rng.choice(mine).id if mine else rng.choice(pools[("city", side)]).id
    return world
