"""A reward machine from a compiled LTLf formula, with potential-based shaping on distance to acceptance.

Reward machines: Toro Icarte, Klassen, Valenzano, McIlraith, "Using reward machines for high-level task
specification and decomposition in RL", ICML 2018. The machine's states are the DFA's; reading the
labels of a step moves it and pays 1 when it reaches acceptance (the sparse spec reward).

Shaping: Ng, Harada, Russell, "Policy invariance under reward transformations", ICML 1999. Adding
F(q, q') = gamma * Phi(q') - Phi(q) leaves optimal policies unchanged. We use Phi(q) = -d(q), minus the
fewest steps from q to acceptance, as in Camacho et al., "LTL and beyond: formal languages for reward
function specification in RL", IJCAI 2019. A dead state has no finite distance; it gets
Phi = -(D + 1), D the largest finite distance, so that falling into it is the worst move and rewards
stay on the scale of the automaton (not of an "infinite" number).
"""

from __future__ import annotations

from collections.abc import Iterable

from keel.spec.automaton import DFA


class RewardMachine:
    def __init__(self, dfa: DFA, gamma: float = 0.99, shaping: bool = True):
        if not 0.0 < gamma <= 1.0:
            from keel.spec.ltlf import SpecError

            raise SpecError(f"gamma must be in (0, 1], got {gamma}")
        self.dfa = dfa
        self.gamma = float(gamma)
        self.shaping = bool(shaping)
        self.initial = dfa.initial
        self.states = list(range(dfa.num_states))
        finite = [dfa.distance(q) for q in self.states if not dfa.is_dead(q)]
        self.dead_potential = -float(max(finite, default=0) + 1)
        self._phi = [self.dead_potential if dfa.is_dead(q) else -float(dfa.distance(q)) for q in self.states]

    def potential(self, q: int) -> float:
        return self._phi[q]

    def is_terminal(self, q: int) -> bool:
        return self.dfa.is_accepting(q) or self.dfa.is_dead(q)

    def step(self, q: int, labels: Iterable[str]) -> tuple[int, float, bool]:
        """(next state, reward, done): done when the spec is satisfied or can no longer be."""
        nxt = self.dfa.step(q, labels)
        reward = 1.0 if self.dfa.is_accepting(nxt) else 0.0
        if self.shaping:
            reward += self.gamma * self._phi[nxt] - self._phi[q]
        return nxt, reward, self.is_terminal(nxt)
