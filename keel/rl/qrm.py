"""QRM: Q-learning for reward machines with counterfactual updates.

Toro Icarte, Klassen, Valenzano, McIlraith, "Using Reward Machines for High-Level Task Specification and
Decomposition in Reinforcement Learning", ICML 2018.

The agent learns one tabular Q-function over (reward-machine state u, env state s, action a). The reward
machine is a deterministic automaton over label sets, so a single real transition (s, a, s') tells us, for
EVERY machine state u, what u would have become (u' = delta(u, L(s'))) and what reward it would have paid
(r = rho(u, L(s'))). QRM uses that: each real step updates Q[u, s, a] for all u at once ("counterfactual
experience"), which is what makes it far more sample-efficient than Q-learning on the product.

Here everything is an array, for the batched grid: labels depend only on the cell, so the machine is
precomputed as tables indexed by [u, cell] (next state, reward including optional potential-based shaping,
done), and a pre-emptive shield (Alshiekh et al. 2018) as a boolean table safe[u, cell, a]. One update
touches a [U, N] block (all machine states x all envs of the batch) with numpy fancy indexing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class MachineTables:
    """A reward machine as arrays over (machine state, cell).

    next_u[u, c]  machine state after seeing the labels of cell c from state u
    reward[u, c]  the reward that transition pays (sparse 1 on acceptance, plus shaping if asked)
    done[u, c]    the episode ends there (accepting or dead machine state)
    terminal[u]   u itself is accepting or dead: it is never a state the agent acts in
    accepting[u]  u is accepting (the spec is satisfied)
    dead[u]       no accepting state is reachable from u (the spec is violated for ever)
    potential[u]  the shaping potential Phi(u) (0 everywhere without shaping)
    """

    next_u: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    terminal: np.ndarray
    accepting: np.ndarray
    dead: np.ndarray
    initial: int
    potential: np.ndarray | None = None

    @property
    def num_states(self) -> int:
        return self.next_u.shape[0]


def machine_tables(spec, cell_labels: Sequence[frozenset[str]], gamma: float, shaping: bool) -> MachineTables:
    """Tabulate `spec`'s reward machine over the label sets of the cells (one label set per cell).

    Machine states are renumbered 0..U-1 (the automaton's own numbering may start at 1).
    """
    rm = spec.reward_machine(gamma=gamma, shaping=shaping)
    dfa = spec.dfa
    states = sorted(int(u) for u in rm.states)
    index = {u: i for i, u in enumerate(states)}
    distinct = sorted(set(cell_labels), key=lambda s: sorted(s))
    lid = {lab: i for i, lab in enumerate(distinct)}
    cell_lid = np.array([lid[lab] for lab in cell_labels], dtype=np.int64)
    U, L = len(states), len(distinct)
    nxt = np.zeros((U, L), dtype=np.int64)
    rew = np.zeros((U, L), dtype=np.float64)
    done = np.zeros((U, L), dtype=bool)
    for u in states:
        for lab, j in lid.items():
            u2, r, d = rm.step(u, lab)
            nxt[index[u], j], rew[index[u], j], done[index[u], j] = index[int(u2)], r, d
    accepting = np.array([dfa.is_accepting(u) for u in states])
    dead = np.array([dfa.is_dead(u) for u in states])
    return MachineTables(
        next_u=nxt[:, cell_lid],
        reward=rew[:, cell_lid],
        done=done[:, cell_lid],
        terminal=accepting | dead,
        accepting=accepting,
        dead=dead,
        initial=index[int(rm.initial)],
        potential=np.array([rm.potential(u) if shaping else 0.0 for u in states]),
    )


@dataclass
class QRMConfig:
    gamma: float = 0.99
    alpha: float = 0.5  # learning rate; the grid is deterministic, so a large step is fine
    epsilon: float = 0.1  # epsilon-greedy exploration among the (shield-)safe actions
    q_init: float = 1.0  # optimism margin: Q starts at an upper bound of the return, plus this


class QRM:
    """Tabular QRM over (machine state, cell, action), with an optional pre-emptive shield table."""

    def __init__(self, tables: MachineTables, n_cells: int, n_actions: int, cfg: QRMConfig,
                 safe: np.ndarray | None = None):
        self.t, self.cfg = tables, cfg
        self.n_actions = n_actions
        # Optimistic initial values drive systematic exploration of the rooms. With shaping, the return from
        # u telescopes to at most 1 - Phi(u) (Phi <= 0), so that is where "optimistic" starts.
        phi = tables.potential if tables.potential is not None else np.zeros(tables.num_states)
        q0 = cfg.q_init - phi
        self.Q = np.repeat(q0[:, None, None], n_cells, axis=1).repeat(n_actions, axis=2).astype(np.float64)
        self.Q[tables.terminal] = 0.0  # terminal machine states have no future
        self.safe = safe
        self.active = np.flatnonzero(~tables.terminal)  # the machine states the agent can be in

    def _masked_q(self, u: np.ndarray, c: np.ndarray) -> np.ndarray:
        q = self.Q[u, c]
        if self.safe is not None:
            q = np.where(self.safe[u, c], q, -np.inf)
        return q

    def act(self, u: np.ndarray, c: np.ndarray, rng: np.random.Generator, epsilon: float) -> np.ndarray:
        """Epsilon-greedy over safe actions; greedy ties broken at random (not always the first action)."""
        q = self._masked_q(u, c)
        noise = rng.random(q.shape)
        greedy = np.argmax(np.where(q == q.max(axis=1, keepdims=True), noise, -1.0), axis=1)
        allowed = np.isfinite(q)
        rand_pick = np.argmax(np.where(allowed, rng.random(q.shape), -1.0), axis=1)
        explore = rng.random(len(u)) < epsilon
        return np.where(explore, rand_pick, greedy)

    def update(self, c: np.ndarray, a: np.ndarray, c2: np.ndarray, env_done: np.ndarray) -> None:
        """Counterfactual Q-learning update for every active machine state and every env of the batch.

        For each u: u' = delta(u, L(c2)), r = rho(u, L(c2)),
        Q[u, c, a] += alpha * (r + gamma * (1 - done) * max_{a' safe} Q[u', c2, a'] - Q[u, c, a]).
        `env_done` marks envs whose episode ended for the env's own reasons (a true terminal, not a time
        limit: a time-limit truncation still bootstraps).
        """
        g = self.cfg
        u = self.active[:, None]  # [K, 1]
        u2 = self.t.next_u[u, c2[None, :]]  # [K, N]
        r = self.t.reward[u, c2[None, :]]
        done = self.t.done[u, c2[None, :]] | env_done[None, :]
        q_next = self.Q[u2, c2[None, :]]  # [K, N, A]
        if self.safe is not None:
            q_next = np.where(self.safe[u2, c2[None, :]], q_next, -np.inf)
        v_next = np.max(q_next, axis=-1)
        v_next = np.where(np.isfinite(v_next), v_next, 0.0)
        target = r + g.gamma * np.where(done, 0.0, v_next)
        idx = (np.broadcast_to(u, u2.shape), np.broadcast_to(c[None, :], u2.shape),
               np.broadcast_to(a[None, :], u2.shape))
        # with duplicate (u, c, a) in a batch, one of the equal-target updates wins: still a valid Q-step
        self.Q[idx] += g.alpha * (target - self.Q[idx])

    def state_dict(self) -> dict:
        return {"Q": self.Q.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.Q[...] = state["Q"]


class QRMLearner:
    """QRM run on N copies of the product world (`keel.rl.product.ProductVecEnv`).

    Shield: `preemptive` masks unsafe actions when acting and when bootstrapping (the agent lives in the
    shielded MDP); `postposed` lets the agent pick, and the env replaces an unsafe pick by the best safe
    action; the update uses the action actually taken, and the agent's overridden pick is updated with the
    same transition (from the agent's view its action led there), so it stops preferring it.
    """

    def __init__(self, world, cfg: QRMConfig, num_envs: int, seed: int, shield: str,
                 epsilon_end: float | None = None, decay_steps: int = 1):
        from keel.rl.product import ProductVecEnv

        self.world, self.cfg = world, cfg
        self.env = ProductVecEnv(world, num_envs, seed, shield)
        self.env.reset()
        self.agent = QRM(world.tables, world.n_cells, world.n_actions, cfg,
                         safe=world.safe if shield == "preemptive" else None)
        self.rng = np.random.default_rng(seed + 2)
        self.eps0, self.eps1 = cfg.epsilon, cfg.epsilon if epsilon_end is None else epsilon_end
        self.decay_steps = max(1, decay_steps)
        self.env_steps = 0

    @property
    def stats(self):
        return self.env.stats

    def epsilon(self) -> float:
        frac = min(1.0, self.env_steps / self.decay_steps)
        return self.eps0 + frac * (self.eps1 - self.eps0)

    def train_iteration(self) -> None:
        """One step of every copy, then one counterfactual update per copy for every machine state."""
        env = self.env
        c, u = env.venv.cells.copy(), env.u
        a = self.agent.act(u, c, self.rng, self.epsilon())
        _, _, _, _, info = env.step(a, scores=self.agent.Q[u, c])
        no_end = np.zeros(env.num_envs, dtype=bool)
        self.agent.update(c, env.last_actions, env.last_cells, no_end)
        over = info["shield_override"]
        if over.any():  # post-posed: the agent's own (unsafe) pick led, from its view, to the same place
            self.agent.update(c[over], a[over], env.last_cells[over], no_end[over])
        self.env_steps += env.num_envs

    def policy(self):
        return _GreedyQ(self.agent.Q)

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "env": self.env.state_dict(),
                "rng": self.rng.bit_generator.state, "env_steps": self.env_steps}

    def load_state_dict(self, s: dict) -> None:
        self.agent.load_state_dict(s["agent"])
        self.env.load_state_dict(s["env"])
        self.rng.bit_generator.state = s["rng"]
        self.env_steps = int(s["env_steps"])


class _GreedyQ:
    """The greedy policy of a Q-table over (machine state, cell): scores are the Q-values."""

    def __init__(self, Q: np.ndarray):
        self.Q = Q

    def reset(self, mask: np.ndarray) -> None:
        pass

    def scores(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return self.Q[u, cells]
