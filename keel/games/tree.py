"""A game tree as flat numpy arrays, built by walking the OpenSpiel tree once.

Every later pass (reach probabilities forward, values backward, regrets per information set) is a
handful of whole-level numpy operations instead of a Python call per history; this is what makes the
CFR family fast here (the idea of tensorised CFR, e.g. Kim 2024, "GPU-Accelerated Counterfactual
Regret Minimization", arXiv 2408.14778, done on the CPU).

Layout:
- Nodes (histories) are numbered in breadth-first order, so depth d is the contiguous block
  `level_start[d]:level_start[d+1]` and every parent comes before its children.
- An edge is identified by its child node: `owner[c]` is the player who chose it (-1 for chance),
  `slot[c]` the global action slot (-1 for chance edges), `chance[c]` the chance probability (1 else).
- Information sets are numbered player by player, and their actions ("slots") are contiguous, so
  player p owns the slot range `slot_start[p]:slot_start[p+1]`. Per-information-set reductions over
  slots are `np.add.reduceat` over `iset_slot_start`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from keel.errors import KeelError
from keel.games.load import MAX_NODES, check_size, load_game


@dataclass
class PlayerView:
    """What the CFR passes need for one player, precomputed once."""

    lo: int  # first global slot of this player
    hi: int  # one past the last
    kids: np.ndarray  # nodes entered by an action of this player
    parents: np.ndarray  # their parents (this player's decision nodes, one row per edge)
    kid_slot: np.ndarray  # local slot (global - lo) of each such edge
    seg_start: np.ndarray  # local start slot of each of this player's information sets
    seg_id: np.ndarray  # local slot -> local information-set index
    others: np.ndarray  # columns of the reach matrix that are not this player (incl. chance)


class GameTree:
    """The whole tree of a (small) OpenSpiel game, as arrays. Build with `GameTree.build(spec)`."""

    def __init__(self, spec: str, game, num_players: int):
        self.spec = spec
        self.game = game
        self.num_players = num_players

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, spec: str, max_nodes: int = MAX_NODES) -> GameTree:
        game = load_game(spec)
        check_size(game, spec, max_nodes)
        n = game.num_players()
        tree = cls(spec, game, n)
        parent, owner, tmp_slot, chance, depth, node_iset, node_player = [], [], [], [], [], [], []
        utils: dict[int, list[float]] = {}
        iset_index: dict[tuple[int, str], int] = {}
        iset_player, iset_actions, iset_keys = [], [], []
        queue = deque([(game.new_initial_state(), -1, -2, -1, 1.0, 0)])
        while queue:
            state, par, own, tslot, prob, d = queue.popleft()
            idx = len(parent)
            if idx + len(queue) >= max_nodes:  # queued states count too: they are what fills memory
                raise KeelError(
                    f"{spec!r} has more than {max_nodes} histories: too large for tabular solvers; "
                    "pick a smaller variant (fewer cards, dice sides or players)"
                )
            parent.append(par)
            owner.append(own)
            tmp_slot.append(tslot)
            chance.append(prob)
            depth.append(d)
            if state.is_terminal():
                node_iset.append(-1)
                node_player.append(-2)
                utils[idx] = list(state.returns())
            elif state.is_chance_node():
                node_iset.append(-1)
                node_player.append(-1)
                for a, p in state.chance_outcomes():
                    if p > 0:
                        queue.append((state.child(a), idx, -1, -1, float(p), d + 1))
            else:
                p = state.current_player()
                key = state.information_state_string(p)
                legal = state.legal_actions(p)
                i = iset_index.get((p, key))
                if i is None:
                    i = len(iset_player)
                    iset_index[(p, key)] = i
                    iset_player.append(p)
                    iset_actions.append(list(legal))
                    iset_keys.append(key)
                elif iset_actions[i] != list(legal):
                    raise KeelError(f"{spec!r}: legal actions differ inside one information set")
                node_iset.append(i)
                node_player.append(p)
                for k, a in enumerate(legal):
                    queue.append((state.child(a), idx, p, i * 1_000_000 + k, 1.0, d + 1))
        tree._finish(
            parent,
            owner,
            tmp_slot,
            chance,
            depth,
            node_iset,
            node_player,
            utils,
            iset_player,
            iset_actions,
            iset_keys,
        )
        return tree

    def _finish(
        self,
        parent,
        owner,
        tmp_slot,
        chance,
        depth,
        node_iset,
        node_player,
        utils,
        iset_player,
        iset_actions,
        iset_keys,
    ) -> None:
        n = self.num_players
        # Renumber information sets player by player so that each player's slots are contiguous.
        order = sorted(range(len(iset_player)), key=lambda i: (iset_player[i], i))
        new_of_old = np.empty(len(order), dtype=np.int64)
        new_of_old[order] = np.arange(len(order))
        sizes = np.array([len(iset_actions[i]) for i in order], dtype=np.int64)
        self.iset_slot_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.iset_player = np.array([iset_player[i] for i in order], dtype=np.int64)
        self.iset_keys = [iset_keys[i] for i in order]
        self.iset_actions = [iset_actions[i] for i in order]
        self.num_slots = int(self.iset_slot_start[-1])
        self.slot_iset = np.repeat(np.arange(len(order)), sizes)
        self.slot_action = np.array([a for acts in self.iset_actions for a in acts], dtype=np.int64)

        self.parent = np.array(parent, dtype=np.int64)
        self.owner = np.array(owner, dtype=np.int64)
        tmp = np.array(tmp_slot, dtype=np.int64)
        dec = tmp >= 0
        self.slot = np.full(len(parent), -1, dtype=np.int64)
        self.slot[dec] = self.iset_slot_start[new_of_old[tmp[dec] // 1_000_000]] + tmp[dec] % 1_000_000
        self.chance = np.array(chance, dtype=np.float64)
        self.depth = np.array(depth, dtype=np.int64)
        iset = np.array(node_iset, dtype=np.int64)
        self.node_iset = np.where(iset >= 0, new_of_old[np.maximum(iset, 0)], -1)
        self.node_player = np.array(node_player, dtype=np.int64)
        self.num_nodes = len(parent)
        self.utility = np.zeros((self.num_nodes, n))
        for i, u in utils.items():
            self.utility[i] = u
        self.level_start = np.searchsorted(self.depth, np.arange(self.depth.max() + 2)).astype(np.int64)
        self.num_levels = len(self.level_start) - 1
        # Per-level parent offsets for the backward pass (children of level d+1 into level d).
        self._level_par = [None] + [
            self.parent[self.level_start[d] : self.level_start[d + 1]] - self.level_start[d - 1]
            for d in range(1, self.num_levels)
        ]
        self.dec_kids = np.flatnonzero(self.slot >= 0)
        self.dec_kid_slot = self.slot[self.dec_kids]
        counts = np.bincount(self.iset_player, minlength=n)
        iset_start = np.concatenate([[0], np.cumsum(counts)])
        self.slot_start = self.iset_slot_start[iset_start]
        self.views = []
        for p in range(n):
            lo, hi = int(self.slot_start[p]), int(self.slot_start[p + 1])
            kids = np.flatnonzero(self.owner == p)
            seg = self.iset_slot_start[iset_start[p] : iset_start[p + 1]] - lo
            self.views.append(
                PlayerView(
                    lo=lo,
                    hi=hi,
                    kids=kids,
                    parents=self.parent[kids],
                    kid_slot=self.slot[kids] - lo,
                    seg_start=seg.astype(np.int64),
                    seg_id=self.slot_iset[lo:hi] - iset_start[p],
                    others=np.array([c for c in range(n + 1) if c != p], dtype=np.int64),
                )
            )

    # ------------------------------------------------------------------ passes
    @property
    def num_isets(self) -> int:
        return len(self.iset_player)

    def uniform_policy(self) -> np.ndarray:
        sizes = np.diff(self.iset_slot_start)
        return 1.0 / np.repeat(sizes, sizes).astype(np.float64)

    def edge_probs(self, sigma: np.ndarray) -> np.ndarray:
        """Probability of the edge into each node: chance probability or the acting player's policy."""
        ep = self.chance.copy()
        ep[self.dec_kids] = sigma[self.dec_kid_slot]
        return ep

    def reach(self, ep: np.ndarray) -> np.ndarray:
        """(num_nodes, num_players + 1) reach probabilities per player; the last column is chance."""
        n = self.num_players
        r = np.ones((self.num_nodes, n + 1))
        own = np.where(self.owner == -1, n, self.owner)  # column of each edge's owner; root is -2 -> unused
        for d in range(1, self.num_levels):
            s, e = self.level_start[d], self.level_start[d + 1]
            r[s:e] = r[self.parent[s:e]]
            r[np.arange(s, e), own[s:e]] *= ep[s:e]
        return r

    def values(self, ep: np.ndarray, terminal_values: np.ndarray) -> np.ndarray:
        """Backward pass: expected value of each node given edge probabilities (1-D or 2-D values)."""
        v = terminal_values.copy()
        for d in range(self.num_levels - 1, 0, -1):
            s, e = self.level_start[d], self.level_start[d + 1]
            ps, pe = self.level_start[d - 1], self.level_start[d]
            w = v[s:e] * (ep[s:e] if v.ndim == 1 else ep[s:e, None])
            if v.ndim == 1:
                v[ps:pe] += np.bincount(self._level_par[d], weights=w, minlength=pe - ps)
            else:
                np.add.at(v[ps:pe], self._level_par[d], w)
        return v

    def expected_utility(self, sigma: np.ndarray) -> np.ndarray:
        """Expected return of every player when all play `sigma`."""
        ep = self.edge_probs(sigma)
        return np.array([self.values(ep, self.utility[:, p])[0] for p in range(self.num_players)])

    # ------------------------------------------------------------------ policies
    def normalize(self, weights: np.ndarray) -> np.ndarray:
        """Per information set: weights / sum, uniform where the sum is not positive or not finite."""
        w = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
        sums = np.add.reduceat(w, self.iset_slot_start[:-1])[self.slot_iset]
        ok = sums > 0
        return np.where(ok, w / np.where(ok, sums, 1.0), self.uniform_policy())

    def to_openspiel(self, sigma: np.ndarray):
        """The policy as an OpenSpiel `TabularPolicy` (for cross-checks with OpenSpiel's algorithms)."""
        from open_spiel.python import policy as policy_lib

        tab = policy_lib.TabularPolicy(self.game)
        for i, key in enumerate(self.iset_keys):
            row = tab.state_lookup[key]
            tab.action_probability_array[row] = 0.0
            s = self.iset_slot_start[i]
            for k, a in enumerate(self.iset_actions[i]):
                tab.action_probability_array[row, a] = sigma[s + k]
        return tab

    def from_openspiel(self, tab) -> np.ndarray:
        sigma = np.zeros(self.num_slots)
        for i, key in enumerate(self.iset_keys):
            row = tab.state_lookup[key]
            s = self.iset_slot_start[i]
            for k, a in enumerate(self.iset_actions[i]):
                sigma[s + k] = tab.action_probability_array[row, a]
        return sigma

    def policy_dict(self, sigma: np.ndarray) -> dict[str, dict[int, float]]:
        out = {}
        for i, key in enumerate(self.iset_keys):
            s = self.iset_slot_start[i]
            out[f"p{self.iset_player[i]}:{key}"] = {
                int(a): float(sigma[s + k]) for k, a in enumerate(self.iset_actions[i])
            }
        return out

    def stats(self) -> dict:
        return {
            "game": self.spec,
            "players": self.num_players,
            "histories": self.num_nodes,
            "infosets": self.num_isets,
            "actions": self.num_slots,
            "depth": self.num_levels,
        }
