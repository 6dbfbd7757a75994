"""Instruction-format following: answer about a topic under checkable constraints (IFEval-style)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from keel.envs.text.base import Problem, Score, TextTask

TOPICS = ["the sea", "autumn", "coffee", "a city at night", "robots", "the moon", "bread", "trains", "music",
          "winter", "a library", "bees", "mountains", "rain", "chess", "gardens", "bicycles", "owls"]
WORDS = ["blue", "quiet", "stone", "river", "light", "ember"]


def _constraints(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, argument) pairs; kinds are checked by CHECKS."""
    pool = [
        ("max_words", str(rng.choice([5, 8, 12]))),
        ("lowercase", ""),
        ("uppercase", ""),
        ("end_with", rng.choice(WORDS)),
        ("include", rng.choice(WORDS)),
        ("bullets", str(rng.choice([2, 3]))),
    ]
    picked = rng.sample(pool, 2)
    kinds = {k for k, _ in picked}
    if {"lowercase", "uppercase"} <= kinds:  # contradictory: replace one
        picked = [p for p in picked if p[0] != "uppercase"] + [("include", rng.choice(WORDS))]
    return picked


PHRASES = {
    "max_words": "use at most {} words",
    "lowercase": "write only lowercase letters",
    "uppercase": "write only capital letters",
    "end_with": "end with the word '{}'",
    "include": "include the word '{}'",
    "bullets": "give exactly {} bullet points starting with '- '",
}

CHECKS: dict[str, Callable[[str, str], bool]] = {
    "max_words": lambda t, a: 0 < len(t.split()) <= int(a),
    "lowercase": lambda t, a: t.strip() != "" and t == t.lower(),
    "uppercase": lambda t, a: t.strip() != "" and t == t.upper(),
    "end_with": lambda t, a: re.sub(r"[^\w]+$", "", t.strip().lower()).endswith(a.lower()),
    "include": lambda t, a: re.search(rf"\b{re.escape(a)}\b", t, re.IGNORECASE) is not None,
    "bullets": lambda t, a: sum(1 for ln in t.splitlines() if ln.strip().startswith("- ")) == int(a),
}


@dataclass
class InstructFormat(TextTask):
    name: ClassVar[str] = "instruct"

    def draw(self, rng: random.Random) -> Problem:
        topic = rng.choice(TOPICS)
        cons = _constraints(rng)
        rules = " and ".join(PHRASES[k].format(a) for k, a in cons)
        return Problem(f"Write about {topic}. You must {rules}.", "", {"constraints": cons})

    def score(self, problem: Problem, completion: str) -> Score:
        met = [CHECKS[k](completion, a) for k, a in problem.meta["constraints"]]
        share = sum(met) / len(met)
        return Score(all(met), share, share)
