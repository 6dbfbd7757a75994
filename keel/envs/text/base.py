"""Text tasks with verifiable rewards: seeded problem generators with disjoint train / test splits.

A task is one small class: `draw(rng)` makes a random `Problem`, `score(problem, completion)` grades a
completion. The split of a problem is a stable hash of its prompt, so train and test can never share a
problem whatever the seeds, and a given (split, n, seed) always yields the same problems.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from keel.errors import KeelError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Problem:
    prompt: str  # the user message
    answer: str = ""  # the reference answer, where there is one
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def messages(self, system: str | None = None) -> list[dict]:
        msgs = [{"role": "system", "content": system}] if system else []
        return msgs + [{"role": "user", "content": self.prompt}]


@dataclass(frozen=True)
class Score:
    correct: bool  # the exact answer (or every constraint) was met
    format: float  # 0..1: the completion has the asked-for shape
    partial: float  # 0..1: partial credit

    def reward(self, kind: str = "exact") -> float:
        """The scalar reward: `exact` (1 if correct), `format` (exact + 0.1 x format), or `partial`."""
        if kind == "exact":
            return float(self.correct)
        if kind == "format":
            return float(self.correct) + 0.1 * self.format
        if kind == "partial":
            return 1.0 if self.correct else 0.5 * self.partial
        raise KeelError(f"unknown reward {kind!r}; use exact, format or partial")


class TextTask:
    """Subclass and define `name`, `draw` and `score`; everything else (splits, batches) comes from here."""

    name: ClassVar[str] = ""
    test_fraction: ClassVar[float] = 0.2
    system: ClassVar[str | None] = None

    def draw(self, rng: random.Random) -> Problem:
        raise NotImplementedError

    def score(self, problem: Problem, completion: str) -> Score:
        raise NotImplementedError

    def split_of(self, problem: Problem) -> str:
        h = int.from_bytes(hashlib.sha256(f"{self.name}|{problem.prompt}".encode()).digest()[:8], "big")
        return "test" if (h % 10_000) < self.test_fraction * 10_000 else "train"

    def problems(self, split: str, n: int, seed: int = 0, unique: bool = True) -> list[Problem]:
        """`n` problems of `split`, drawn with `seed` (rejection sampling on the split hash)."""
        if split not in SPLITS:
            raise KeelError(f"unknown split {split!r}; use train or test")
        rng = random.Random(f"{self.name}|{split}|{seed}")
        out: list[Problem] = []
        seen: set[str] = set()
        for _ in range(max(1000, 200 * n)):
            if len(out) == n:
                return out
            p = self.draw(rng)
            if self.split_of(p) != split or (unique and p.prompt in seen):
                continue
            seen.add(p.prompt)
            out.append(p)
        if len(out) < n:
            raise KeelError(
                f"task {self.name} has too few distinct {split} problems for n={n} (found {len(out)}); "
                "ask for fewer or make the task larger"
            )
        return out
