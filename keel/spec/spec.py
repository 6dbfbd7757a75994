"""`compile_ltlf`: an LTLf formula in, a `Spec` out, with its DFA, monitor, reward machine and shield."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keel.spec.automaton import DFA, compile_dfa
from keel.spec.ltlf import Formula, parse, propositions


@dataclass(frozen=True, eq=False)
class Spec:
    text: str  # the formula as written
    formula: Formula  # its syntax tree
    dfa: DFA  # minimal complete DFA over the formula's propositions

    @property
    def propositions(self) -> frozenset[str]:
        return propositions(self.formula)

    def monitor(self):
        from keel.spec.monitor import Monitor

        return Monitor(self.dfa)

    def reward_machine(self, gamma: float = 0.99, shaping: bool = True):
        from keel.spec.reward_machine import RewardMachine

        return RewardMachine(self.dfa, gamma=gamma, shaping=shaping)

    def safety_part(self) -> DFA:
        """The safety closure: the same automaton, accepting every state that is not dead.

        A trace is rejected by it exactly when some prefix can no longer be extended to satisfy the
        formula; that is what a shield must prevent.
        """
        return self.dfa.with_accepting(q for q in range(self.dfa.num_states) if not self.dfa.is_dead(q))

    def shield(self):
        from keel.spec.shield import Shield

        return Shield(self)

    @property
    def satisfiable(self) -> bool:
        return self.dfa.shortest_accepting_trace() is not None

    def describe(self) -> dict:
        """What `keel spec check` prints."""
        dfa = self.dfa
        trace = dfa.shortest_accepting_trace()
        return {
            "formula": self.text,
            "normalised": str(self.formula),
            "propositions": sorted(self.propositions),
            "states": dfa.num_states,
            "initial": dfa.initial,
            "accepting": sorted(dfa.accepting),
            "dead": sorted(dfa.dead_states),
            "satisfiable": trace is not None,
            "valid": dfa.is_valid(),
            "shortest_accepting_trace": None if trace is None else [sorted(s) for s in trace],
            "transitions": [
                {"from": q, "to": nxt, "guard": dfa.guard_text([c for a in letters for c in dfa.letters[a]])
                 if len(letters) < len(dfa.letters) else "true"}
                for q in range(dfa.num_states) for nxt, letters in dfa.edges(q).items()
            ],
        }


def compile_ltlf(formula: str, propositions: Iterable[str] | None = None) -> Spec:
    """Parse and compile an LTLf formula; with `propositions`, every name it uses must be among them."""
    tree = parse(formula, propositions)
    return Spec(text=formula, formula=tree, dfa=compile_dfa(tree))
