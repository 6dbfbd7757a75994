"""PSRO with exact best responses (Lanctot et al. 2017, "A Unified Game-Theoretic Approach to
Multiagent Reinforcement Learning").

Each player keeps a population of policies (starting from uniform). Every iteration:
  1. complete the empirical payoff tensor M for all population profiles (exact tree evaluation);
  2. a meta-solver turns M into one mixture per player;
  3. every player adds an exact best response to the others' mixtures.
The oracle is exact (`best_response`) or PPO (`keel.games.ppo_oracle`, trained in the PettingZoo
adapter against the others' mixture and read out per information set).
A mixture over behaviour policies is played as its realisation-equivalent behaviour policy
(Kuhn's theorem): sigma(I, a) = sum_k w_k pi_k(I) pi_k(I, a) / sum_k w_k pi_k(I), where pi_k(I) is
member k's own reach of I. Exploitability of that profile is what PSRO reports.
"""

from __future__ import annotations

import itertools

import numpy as np

from keel.games import meta
from keel.games.exploitability import best_response, nash_conv
from keel.games.tree import GameTree


class PSRO:
    def __init__(
        self,
        tree: GameTree,
        meta_solver="nash",
        oracle: str = "exact",
        ppo_steps: int = 20_000,
        seed: int = 0,
    ):
        from keel.errors import KeelError

        if oracle not in ("exact", "ppo"):
            raise KeelError(f"unknown oracle {oracle!r}; valid: exact, ppo")
        if oracle == "ppo" and not tree.game.get_type().provides_information_state_tensor:
            raise KeelError(
                f"{tree.spec} has no information-state tensor for a PPO best response; use --oracle exact"
            )
        self.oracle, self.ppo_steps, self.seed = oracle, ppo_steps, seed
        # A name from keel.games.meta, or any callable meta_solver(M, iteration) (discovery passes its own).
        self.tree = tree
        self.meta = meta.get(meta_solver) if isinstance(meta_solver, str) else meta_solver
        n = tree.num_players
        uni = tree.uniform_policy()
        self.pop = [[uni[v.lo : v.hi].copy()] for v in tree.views]  # per player, local slot policies
        self._reach = [[self._own_reach(p, self.pop[p][0])] for p in range(n)]
        self.payoffs: dict[tuple, np.ndarray] = {}
        self.iteration = 0
        # One history per information set, to read a player's own reach of the set.
        first = np.full(tree.num_isets, -1, dtype=np.int64)
        nodes = np.flatnonzero(tree.node_iset >= 0)
        first[tree.node_iset[nodes[::-1]]] = nodes[::-1]
        self._iset_node = first
        self._chance = tree.reach(tree.edge_probs(uni))[:, n]

    def _joint(self, members: tuple[int, ...]) -> np.ndarray:
        sigma = np.zeros(self.tree.num_slots)
        for p, k in enumerate(members):
            v = self.tree.views[p]
            sigma[v.lo : v.hi] = self.pop[p][k]
        return sigma

    def _own_reach(self, p: int, local: np.ndarray) -> np.ndarray:
        sigma = self.tree.uniform_policy()
        v = self.tree.views[p]
        sigma[v.lo : v.hi] = local
        return self.tree.reach(self.tree.edge_probs(sigma))[:, p]

    def payoff_tensor(self) -> np.ndarray:
        sizes = [len(pp) for pp in self.pop]
        M = np.zeros(sizes + [self.tree.num_players])
        for prof in itertools.product(*[range(s) for s in sizes]):
            if prof not in self.payoffs:
                self.payoffs[prof] = self.tree.expected_utility(self._joint(prof))
            M[prof] = self.payoffs[prof]
        return M

    def mixed_policy(self, mixes: list[np.ndarray]) -> np.ndarray:
        """The realisation-equivalent behaviour policy of each player's mixture."""
        tree = self.tree
        sigma = np.zeros(tree.num_slots)
        for p, v in enumerate(tree.views):
            num = np.zeros(v.hi - v.lo)
            den = np.zeros(v.hi - v.lo)
            isets = tree.slot_iset[v.lo : v.hi]
            for w, pol, reach in zip(mixes[p], self.pop[p], self._reach[p], strict=True):
                r = reach[self._iset_node[isets]]
                num += w * r * pol
                den += w * r
            sigma[v.lo : v.hi] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return tree.normalize(sigma)

    def step(self) -> dict:
        self.iteration += 1
        tree = self.tree
        M = self.payoff_tensor()
        mixes = self.meta(M, self.iteration)
        sigma = self.mixed_policy(mixes)
        nc = nash_conv(tree, sigma)
        mix_reach = [
            sum(w * r for w, r in zip(mixes[p], self._reach[p], strict=True)) for p in range(tree.num_players)
        ]
        new = []
        for p in range(tree.num_players):
            if self.oracle == "ppo":
                from keel.games.ppo_oracle import ppo_best_response

                new.append(
                    ppo_best_response(tree, p, sigma, self.ppo_steps, seed=self.seed + 7 * self.iteration + p)
                )
                continue
            opp = self._chance.copy()
            for j in range(tree.num_players):
                if j != p:
                    opp *= mix_reach[j]
            _, pure = best_response(tree, p, opp)
            new.append(pure)
        for p, pure in enumerate(new):
            self.pop[p].append(pure)
            self._reach[p].append(self._own_reach(p, pure))
        return {
            "iteration": self.iteration,
            "exploitability": nc["exploitability"],
            "nash_conv": nc["nash_conv"],
            "policy": sigma,  # the meta-strategy as a behaviour policy (the sandbox scores it itself)
            "population": [len(pp) - 1 for pp in self.pop],
            "meta": [m.round(4).tolist() for m in mixes],
        }


def run_psro(
    game: str | GameTree,
    meta: str = "nash",
    iters: int = 20,
    progress=None,
    oracle: str = "exact",
    ppo_steps: int = 20_000,
    seed: int = 0,
) -> dict:
    from keel.errors import KeelError

    if iters < 1:
        raise KeelError(f"--iters must be at least 1, got {iters}")
    tree = game if isinstance(game, GameTree) else GameTree.build(game)
    psro = PSRO(tree, meta, oracle, ppo_steps, seed)
    curve = []
    for i in range(iters):
        row = psro.step()
        curve.append({k: row[k] for k in ("iteration", "exploitability", "nash_conv")})
        if progress:
            progress(i + 1)
    return {
        "game": tree.spec,
        "meta": meta,
        "oracle": oracle,
        "iterations": iters,
        "exploitability": curve[-1]["exploitability"],
        "curve": curve,
        "population": row["population"],
        "final_meta": row["meta"],
    }
