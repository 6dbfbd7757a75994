"""Long text tasks whose step-by-step solutions outgrow one bounded reasoning round (InftyThink+, arXiv
2602.06960): multi-step arithmetic chains and countdown with more numbers, each with a solver that writes
the trace, one line per step, and says after which steps a round may end and what its summary must carry.

The length knob is the number of steps (`min_steps`..`max_steps`): a held-out split made with a larger
`min_steps` than the training split's `max_steps` holds only problems longer than any seen in training.
Both tasks answer on a final line `Answer: ...`, graded exactly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import ClassVar

from keel.envs.text.base import Problem, Score, TextTask
from keel.envs.text.countdown import evaluate as eval_expr
from keel.errors import KeelError

ANSWER = re.compile(r"Answer:\s*([^\n]*)")


@dataclass(frozen=True)
class Trace:
    """A solver's solution: `steps[i]` is one line; `summaries[i]` is what a round that ends after step i
    must write so that a fresh round (seeing only the question and that summary) can go on, or None where
    a round may not end; `answer` is the final line."""

    steps: tuple[str, ...]
    summaries: tuple[str | None, ...]
    answer: str

    def text(self) -> str:
        """The whole uncut chain: every step, then the answer."""
        return "\n".join([*self.steps, self.answer])


def final_answer(text: str) -> str | None:
    found = ANSWER.findall(text)
    return found[-1].strip() if found else None


class ChainTask(TextTask):
    """A text task with a step-by-step solver (`trace`); `steps_of` is the length the knob measures,
    drawn problems have `min_steps`..`max_steps` of it."""

    min_steps: int
    max_steps: int

    def trace(self, problem: Problem) -> Trace:
        raise NotImplementedError

    def steps_of(self, problem: Problem) -> int:
        return len(self.trace(problem).steps)


def _check_lengths(name: str, lo: int, hi: int) -> None:
    if lo < 1 or hi < lo:
        raise KeelError(f"{name}: need 1 <= min_steps <= max_steps (got {lo}, {hi})")


@dataclass
class ArithChain(ChainTask):
    """Start at a number and apply a numbered list of + / - steps with one-digit operands (values stay in
    0..99): "Start at 23. Apply in order: (1) +7 (2) -4 (3) +3 ...". Trace line: "(2) -4: 30-4=26";
    summary: "(3) +3 from 26", the next step exactly as its line will begin, and the value reached.

    Both forms let the model find its place by copying rather than searching: a line writes the step's
    number, then the operation that follows that number in the question (the pattern "(2) -4" is copied
    from it), and a fresh round copies its first "(3) +3" from the summary beside it. Measured with
    SmolLM2-135M (benchmarks/inftythink.py pilots, 120 SFT steps, top 6 layers), on training-length
    test problems and 10-13-step held-out ones:
      lines "(2) 30-4=26", summary "after step 2: 26": rounds lost their place, re-applying steps 3-6
        until out of rounds (held-out accuracy 0);
      the same with the operations left listed in the summary ("...; next +3 -1"): the model miscopied
        the list (test accuracy 0.58 -> 0.25);
      lines as now, summary "next (3) from 26": step numbers right, but a round's first operation was
        often wrong, copied after the summary's "(3)" rather than the question's (test 0.5, held-out 0);
      lines as now, summary "(2) done: 26" (go on from it as from a chain's last line): the same wrong
        first operations, and off-by-one step numbers in summaries (test 0.5, held-out 0);
      as now, with rounds cut greedily (two steps each): held-out 0.083 against one chain's 0.5; no
        training round began at step 9 or later, and held-out rounds that had to wrote "(1)" or "(10)"
        instead of the summary's "(9)" (commit acfaa4b). Hence random cuts in the cold start
        (`keel.rl.inftythink.Config.cuts`)."""

    name: ClassVar[str] = "arith_chain"
    min_steps: int = 6
    max_steps: int = 12
    max_operand: int = 9

    def __post_init__(self):
        _check_lengths(self.name, self.min_steps, self.max_steps)
        if not 1 <= self.max_operand <= 9:
            raise KeelError(f"{self.name}: max_operand must be in 1..9 (got {self.max_operand})")

    def draw(self, rng: random.Random) -> Problem:
        start = rng.randint(10, 99)
        value, ops = start, []
        for _ in range(rng.randint(self.min_steps, self.max_steps)):
            b = rng.randint(1, self.max_operand)
            # keep the running value in 0..99 so every step is two digits and one digit
            op = rng.choice("+-") if b <= value and value + b <= 99 else ("-" if value + b > 99 else "+")
            value = value + b if op == "+" else value - b
            ops.append(f"{op}{b}")
        listed = " ".join(f"({i}) {o}" for i, o in enumerate(ops, 1))
        prompt = f"Start at {start}. Apply in order: {listed}. What is the result?"
        return Problem(prompt, str(value), {"start": start, "ops": ops})

    def trace(self, problem: Problem) -> Trace:
        ops = problem.meta["ops"]
        value, steps, summaries = problem.meta["start"], [], []
        for i, op in enumerate(ops, 1):
            b = int(op[1:])
            new = value + b if op[0] == "+" else value - b
            steps.append(f"({i}) {op}: {value}{op}={new}")
            summaries.append(f"({i + 1}) {ops[i]} from {new}" if i < len(ops) else f"all steps done: {new}")
            value = new
        return Trace(tuple(steps), tuple(summaries), f"Answer: {value}")

    def steps_of(self, problem: Problem) -> int:
        return len(problem.meta["ops"])

    def score(self, problem: Problem, completion: str) -> Score:
        got = final_answer(completion)
        if got is None:
            return Score(False, 0.0, 0.0)
        ok = re.fullmatch(r"-?\d+", got) is not None
        return Score(ok and int(got) == int(problem.answer), 1.0 if ok else 0.5, float(ok))


@dataclass
class CountdownChain(ChainTask):
    """Countdown with more numbers: reach the target using every number once, combined left to right with
    + - * (no negative intermediate values). The solver is a depth-first search in a fixed order (numbers
    ascending, then + - *); its trace is every move it tries ("8*4=32"), "back to V" when it returns
    from a dead end, and the answer expression. A round may end right after a move (never after a
    backtrack), and its summary is the path from the root: with the fixed order that is the whole search
    state, since every earlier sibling on the path has been tried. `steps` counts trace lines."""

    name: ClassVar[str] = "countdown_chain"
    numbers: int = 4
    max_number: int = 9
    min_steps: int = 8
    max_steps: int = 24

    def __post_init__(self):
        _check_lengths(self.name, self.min_steps, self.max_steps)
        if self.numbers < 2 or self.max_number < 2:
            raise KeelError(f"{self.name}: need numbers >= 2 and max_number >= 2")
        if self.min_steps < self.numbers - 1:
            raise KeelError(f"{self.name}: a solution takes {self.numbers - 1} moves; min_steps must be at least "
                            "that")

    def _raw(self, rng: random.Random) -> Problem:
        nums = [rng.randint(1, self.max_number) for _ in range(self.numbers)]
        order = rng.sample(nums, len(nums))
        value = order[0]
        for x in order[1:]:
            op = rng.choice("+-*" if value >= x else "+*")
            value = {"+": value + x, "-": value - x, "*": value * x}[op]
        listed = ", ".join(map(str, nums))
        prompt = (f"Using all of the numbers {listed}, each once, combined left to right with + - *, reach "
                  f"{value}.")
        return Problem(prompt, str(value), {"numbers": nums})

    def draw(self, rng: random.Random) -> Problem:
        # rejection on trace length: the knob bounds how long the search runs before it finds the target
        for _ in range(10_000):
            p = self._raw(rng)
            if self.min_steps <= len(_search(p.meta["numbers"], int(p.answer))[0]) <= self.max_steps:
                return p
        raise KeelError(f"{self.name}: no problem with {self.min_steps}..{self.max_steps} trace steps in 10,000 "
                        "draws; widen the range")

    def trace(self, problem: Problem) -> Trace:
        steps, summaries, expr = _search(problem.meta["numbers"], int(problem.answer))
        return Trace(tuple(steps), tuple(summaries), f"Answer: {expr}")

    def score(self, problem: Problem, completion: str) -> Score:
        got = final_answer(completion)
        res = eval_expr(got) if got else None
        if res is None:
            return Score(False, 0.0, 0.0)
        value, used = res
        fair = sorted(used) == sorted(problem.meta["numbers"])
        return Score(fair and value == int(problem.answer), 1.0 if fair else 0.5, float(fair))


OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _search(numbers: list[int], target: int) -> tuple[list[str], list[str | None], str]:
    """The depth-first search's trace lines, the summary after each (None after a backtrack), and the
    solution as a left-to-right expression."""
    steps: list[str] = []
    summaries: list[str | None] = []

    def path_text(path: list[tuple[str, int]], value: int) -> str:
        return "path " + " ".join(f"{op}{x}" if op else str(x) for op, x in path) + f" = {value}"

    def dfs(value: int, left: list[int], path: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
        if not left:
            return path if value == target else None
        for x in sorted(set(left)):
            rest = list(left)
            rest.remove(x)
            for op, f in OPS.items():
                new = f(value, x)
                if new < 0:
                    continue
                steps.append(f"{value}{op}{x}={new}")
                summaries.append(path_text(path + [(op, x)], new))
                found = dfs(new, rest, path + [(op, x)])
                if found is not None:
                    return found
                steps.append(f"back to {value}")
                summaries.append(None)
        return None

    for first in sorted(set(numbers)):
        rest = list(numbers)
        rest.remove(first)
        steps.append(f"start {first}")
        summaries.append(path_text([("", first)], first))
        found = dfs(first, rest, [("", first)])
        if found is not None:
            expr = str(found[0][1])
            for op, x in found[1:]:
                expr = f"({expr}{op}{x})"
            return steps, summaries, expr
    raise KeelError(f"countdown: {numbers} cannot reach {target}")  # the generator only makes solvable ones


CHAIN_TASKS: dict[str, type[ChainTask]] = {t.name: t for t in (ArithChain, CountdownChain)}


def make_chain_task(name: str, **options) -> ChainTask:
    if name not in CHAIN_TASKS:
        raise KeelError(f"unknown chain task {name!r}; known: {', '.join(sorted(CHAIN_TASKS))}")
    try:
        return CHAIN_TASKS[name](**options)
    except TypeError as e:
        raise KeelError(f"chain task {name}: bad options {options}: {e}") from None
