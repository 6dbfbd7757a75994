"""Countdown: reach a target with + - * / over given numbers, each used at most once."""

from __future__ import annotations

import ast
import operator
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from keel.envs.text.base import Problem, Score, TextTask

BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
EXPR = re.compile(r"[\d\s+\-*/()]*\d[\d\s+\-*/()]*")


def evaluate(expr: str) -> tuple[Fraction, list[int]] | None:
    """The exact value of an arithmetic expression and the integers it uses; None if not one."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return None
    used: list[int] = []

    def ev(node) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            return BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError("not allowed")

    try:
        return ev(tree.body), used
    except (ValueError, ZeroDivisionError):
        return None


@dataclass
class Countdown(TextTask):
    name: ClassVar[str] = "countdown"
    count: int = 3
    max_number: int = 20

    def draw(self, rng: random.Random) -> Problem:
        nums = [rng.randint(1, self.max_number) for _ in range(self.count)]
        # the target is the value of a random expression over the numbers, so a solution always exists
        a, b, c = nums[0], nums[1], nums[2] if self.count > 2 else 1
        target = rng.choice([a + b + c, a * b - c, a + b * c, (a + b) * c, a * b + c])
        if target <= 0:
            target = a + b + c
        listed = ", ".join(map(str, nums))
        prompt = (
            f"Using the numbers {listed} (each at most once) and + - * /, write an expression equal to "
            f"{target}. Reply with only the expression."
        )
        return Problem(prompt, str(target), {"numbers": nums})

    def score(self, problem: Problem, completion: str) -> Score:
        target = int(problem.answer)
        candidates = [m.strip() for m in EXPR.findall(completion.split("=")[0]) if m.strip()]
        if not candidates:
            return Score(False, 0.0, 0.0)
        expr = max(candidates, key=len)
        res = evaluate(expr)
        if res is None:
            return Score(False, 0.0, 0.0)
        value, used = res
        allowed = not (Counter(used) - Counter(problem.meta["numbers"]))
        fmt = 1.0 if allowed else 0.5
        partial = max(0.0, 1.0 - abs(float(value) - target) / max(target, 1)) if allowed else 0.0
        return Score(allowed and value == target, fmt, partial)
