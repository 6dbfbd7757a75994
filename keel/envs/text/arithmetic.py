"""Multi-digit arithmetic: "What is 47 + 385?" graded on the last integer in the completion.

With `answer_only` the reply must also be just the number, as the prompt asks ("47 + 38 = 85" fails).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import ClassVar

from keel.envs.text.base import Problem, Score, TextTask
from keel.errors import KeelError

INT = re.compile(r"-?\d[\d,]*")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def last_int(text: str) -> int | None:
    found = INT.findall(text)
    return int(found[-1].replace(",", "")) if found else None


@dataclass
class Arithmetic(TextTask):
    name: ClassVar[str] = "arithmetic"
    digits: int = 2  # operands have 1..digits digits, the first one exactly `digits`
    ops: str = "+"
    min_digits: int = 1
    answer_only: bool = False  # correct only if the reply is just the number, as the prompt asks

    def __post_init__(self):
        if self.digits < 1 or self.min_digits < 1 or self.min_digits > self.digits:
            raise KeelError(f"arithmetic: need 1 <= min_digits <= digits (got {self.min_digits}, {self.digits})")
        bad = set(self.ops) - set(OPS)
        if not self.ops or bad:
            raise KeelError(f"arithmetic: ops must be made of + - * (got {self.ops!r})")

    def draw(self, rng: random.Random) -> Problem:
        a = rng.randint(10 ** (self.digits - 1), 10**self.digits - 1)
        d = rng.randint(self.min_digits, self.digits)
        b = rng.randint(10 ** (d - 1) if d > 1 else 0, 10**d - 1)
        op = rng.choice(self.ops)
        return Problem(f"What is {a} {op} {b}? Reply with only the number.", str(OPS[op](a, b)), {"a": a, "b": b})

    def score(self, problem: Problem, completion: str) -> Score:
        got = last_int(completion)
        answer = int(problem.answer)
        fmt = 1.0 if re.fullmatch(r"\s*-?\d[\d,]*\.?\s*", completion) else 0.0
        if got is None:
            return Score(False, fmt, 0.0)
        # partial credit: share of the answer's digits right in place (from the units up)
        want, have = str(abs(answer))[::-1], str(abs(got))[::-1]
        partial = sum(x == y for x, y in zip(want, have, strict=False)) / max(len(want), len(have))
        return Score(got == answer and (fmt == 1.0 or not self.answer_only), fmt, partial)
