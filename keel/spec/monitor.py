"""Runtime verification of an LTLf formula: after each step, is the trace so far satisfied, violated, or open?

The three-valued reading of finite-trace monitoring (Bauer, Leucker, Schallhart, "Runtime verification
for LTL and TLTL", TOSEM 2011, adapted to finite traces as in De Giacomo et al., "Monitoring business
constraints with LTLf", BPM 2014): SATISFIED if the trace would satisfy the formula were it to end now,
VIOLATED if no continuation can satisfy it (the automaton is in a dead state), OPEN otherwise.
SATISFIED is not final: `G !a` is satisfied until an `a` arrives, after which it is VIOLATED for ever.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from keel.spec.automaton import DFA


class Verdict(StrEnum):
    SATISFIED = "satisfied"
    VIOLATED = "violated"
    OPEN = "open"


class Monitor:
    """Feeds label sets to a DFA, one step at a time."""

    def __init__(self, dfa: DFA):
        self.dfa = dfa
        self.state = dfa.initial
        self.steps = 0

    def reset(self) -> None:
        self.state = self.dfa.initial
        self.steps = 0

    def step(self, labels: Iterable[str]) -> Verdict:
        self.state = self.dfa.step(self.state, labels)
        self.steps += 1
        return self.verdict

    @property
    def verdict(self) -> Verdict:
        """The verdict for the trace so far (OPEN before the first step: LTLf traces are non-empty)."""
        if self.dfa.is_accepting(self.state):
            return Verdict.SATISFIED
        if self.dfa.is_dead(self.state):
            return Verdict.VIOLATED
        return Verdict.OPEN

    def run(self, trace: Iterable[Iterable[str]]) -> Verdict:
        """Reset, then feed a whole trace; the verdict at its end."""
        self.reset()
        verdict = self.verdict
        for labels in trace:
            verdict = self.step(labels)
        return verdict
