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

import numpy as np
from pydantic import Field

from keel.config import KeelModel
from keel.rl.learner import Batch, Counters
from keel.rl.product import MachineTables, SpecWorld
from keel.rl.product_env import ProductVecEnv
from keel.rl.tabular import epsilon_greedy
from keel.spec.shield import mask_scores

__all__ = ["QRM", "QRMConfig", "QRMLearner", "MachineTables"]


class QRMConfig(KeelModel):
    """QRM's hyper-parameters (the spec_rl job embeds this class as its `qrm` section)."""

    gamma: float = Field(0.99, gt=0.0, le=1.0)
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="learning rate; the grid is nearly deterministic")
    epsilon: float = Field(0.2, ge=0.0, le=1.0, description="exploration among the (shield-)safe actions at the start")
    epsilon_end: float | None = Field(0.01, ge=0.0, le=1.0,
                                      description="exploration at the end of the budget (linear decay); None = constant")
    q_init: float = Field(1.0, ge=0.0, description="optimism: Q starts this far above the return's upper bound")


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
        return q if self.safe is None else mask_scores(self.safe[u, c], q)

    def act(self, u: np.ndarray, c: np.ndarray, rng: np.random.Generator, epsilon: float) -> np.ndarray:
        """Epsilon-greedy over safe actions (`keel.rl.tabular.epsilon_greedy`)."""
        return epsilon_greedy(self._masked_q(u, c), rng, epsilon)

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
            q_next = mask_scores(self.safe[u2, c2[None, :]], q_next)
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
    """QRM run on N copies of the product world (`keel.rl.product_env.ProductVecEnv`); a `Learner`.

    Shield: `preemptive` masks unsafe actions when acting and when bootstrapping (the agent lives in the
    shielded MDP); `postposed` lets the agent pick, and the env replaces an unsafe pick by the best safe
    action; the update uses the action actually taken, and the agent's overridden pick is updated with the
    same transition (from the agent's view its action led there), so it stops preferring it.
    """

    def __init__(self, world: SpecWorld, cfg: QRMConfig, num_envs: int, seed: int, shield: str,
                 decay_steps: int = 1):
        self.world, self.cfg = world, cfg
        self.env = ProductVecEnv(world, num_envs, seed, shield)
        self.env.reset()
        self.agent = QRM(world.tables, world.n_cells, world.n_actions, cfg,
                         safe=world.safe if shield == "preemptive" else None)
        self.rng = np.random.default_rng(seed + 2)
        self.eps0, self.eps1 = cfg.epsilon, cfg.epsilon if cfg.epsilon_end is None else cfg.epsilon_end
        self.decay_steps = max(1, decay_steps)
        self._env_steps = 0
        self.updates = 0

    @property
    def env_steps(self) -> int:
        return self._env_steps

    @property
    def finished(self) -> bool:
        return False  # QRM learns for as long as it is given steps

    @property
    def stats(self):
        return self.env.stats

    def epsilon(self) -> float:
        frac = min(1.0, self._env_steps / self.decay_steps)
        return self.eps0 + frac * (self.eps1 - self.eps0)

    def collect(self) -> Batch:
        """One step of every copy: cells `c`, the agent's picks `chosen`, the actions taken `a` (after a
        post-posed shield), the cells reached `c2`, and which picks the shield `overridden`."""
        env = self.env
        c, u = env.cells, env.u
        chosen = self.agent.act(u, c, self.rng, self.epsilon())
        _, _, _, _, info = env.step(chosen, scores=self.agent.Q[u, c])
        self._env_steps += env.num_envs
        return {"c": c, "chosen": chosen, "a": env.last_actions, "c2": env.last_cells,
                "overridden": info["shield_override"]}

    def learn(self, batch: Batch) -> dict[str, float]:
        """One counterfactual update per copy for every machine state; a post-posed override also
        updates the agent's own pick with the same transition (from its view its action led there)."""
        c, c2, over = batch["c"], batch["c2"], batch["overridden"]
        no_end = np.zeros(len(c), dtype=bool)
        self.agent.update(c, batch["a"], c2, no_end)
        if over.any():
            self.agent.update(c[over], batch["chosen"][over], c2[over], no_end[over])
        self.updates += 1
        return {"epsilon": self.epsilon()}

    def train_step(self) -> dict[str, float]:
        return self.learn(self.collect())

    # --- SplitLearner: collect and learn in different processes (keel.scale) ------------------------
    def weights(self) -> np.ndarray:
        return self.agent.Q.copy()

    def set_weights(self, weights: np.ndarray) -> None:
        self.agent.Q[...] = weights

    def merge(self, batches: list[Batch]) -> Batch:
        """Several workers' batches as one step of all their copies (every array is per copy)."""
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    def policy(self):
        return _GreedyQ(self.agent.Q)

    def counters(self) -> Counters:
        s = self.env.stats
        return Counters(self._env_steps, s.episodes, s.violations, s.overrides, self.updates)

    def metrics(self) -> dict[str, float]:
        return self.env.stats.flush()

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "env": self.env.state_dict(),
                "rng": self.rng.bit_generator.state, "env_steps": self._env_steps, "updates": self.updates}

    def load_state_dict(self, s: dict) -> None:
        self.agent.load_state_dict(s["agent"])
        self.env.load_state_dict(s["env"])
        self.rng.bit_generator.state = s["rng"]
        self._env_steps = int(s["env_steps"])
        self.updates = int(s["updates"])


class _GreedyQ:
    """The greedy policy of a Q-table over (machine state, cell): scores are the Q-values."""

    def __init__(self, Q: np.ndarray):
        self.Q = Q

    def reset(self, mask: np.ndarray) -> None:
        pass

    def scores(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return self.Q[u, cells]
