"""N copies of the product (grid world x automaton) stepped together, its counters, and greedy evaluation.

`ProductVecEnv` is a Gymnasium-style vector env over `keel.rl.product.SpecWorld` (same-step autoreset;
observation = cell one-hot ++ automaton one-hot; reward = the reward machine's). The world's batched
grid (`BatchedRooms`) does the stepping, through its public API (`step`, `place`); the shield is the
world's (`SpecWorld.filter`). `evaluate_policy` runs greedy episodes of any `ScorePolicy` under the
shield the caller names, one episode per batch row.
"""

from __future__ import annotations

import numpy as np

from keel.rl.learner import ScorePolicy
from keel.rl.product import SpecWorld


class EpisodeStats:
    """Running training counters: episodes, satisfied episodes, violations, returns (per log interval too)."""

    def __init__(self):
        self.episodes = self.satisfied = self.violations = self.overrides = 0
        self.window: list[tuple[bool, bool, float, int]] = []

    def add(self, finished, accepted, dead, returns, lengths) -> None:
        for i in np.flatnonzero(finished):
            self.episodes += 1
            self.satisfied += bool(accepted[i])
            self.window.append((bool(accepted[i]), bool(dead[i]), float(returns[i]), int(lengths[i])))

    def flush(self) -> dict:
        """Per-interval metrics over the episodes that finished since the last flush."""
        w, self.window = self.window, []
        if not w:
            return {"episodes": self.episodes, "violations_train": self.violations}
        return {
            "satisfaction_train": float(np.mean([x[0] for x in w])),
            "episode_return": float(np.mean([x[2] for x in w])),
            "episode_length": float(np.mean([x[3] for x in w])),
            "episodes": self.episodes,
            "violations_train": self.violations,
        }

    def state(self) -> dict:
        return {"episodes": self.episodes, "satisfied": self.satisfied, "violations": self.violations,
                "overrides": self.overrides, "window": list(self.window)}

    def load(self, s: dict) -> None:
        self.episodes, self.satisfied = s["episodes"], s["satisfied"]
        self.violations, self.overrides = s["violations"], s["overrides"]
        self.window = [tuple(x) for x in s["window"]]


class ProductVecEnv:
    """N copies of (grid world x automaton) as a vector env (for PPO and QRM).

    Reward: the reward machine's (sparse 1 on acceptance, plus potential-based shaping when the tables
    were built with it). An episode ends when the automaton accepts or dies, or at the env's time limit
    (truncation). Shield: `preemptive` offers `info["action_mask"]` (and refuses an action outside it);
    `postposed` replaces an unsafe action by the safe action `scores` ranks best and says so in
    `info["shield_override"]`; both through `SpecWorld.filter`.
    """

    def __init__(self, world: SpecWorld, num_envs: int, seed: int, shield: str):
        import gymnasium
        from gymnasium.vector import AutoresetMode

        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # what keel.rl.ppo checks for
        self.world, self.num_envs, self.shield = world, num_envs, shield
        self.venv = world.make_venv(num_envs, seed)
        self.rng = np.random.default_rng(seed + 1)
        self.obs_dim = world.obs_dim
        self.single_observation_space = gymnasium.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(world.n_actions)
        self.u = np.zeros(num_envs, dtype=np.int64)
        self.ep_return = np.zeros(num_envs)
        self.ep_len = np.zeros(num_envs, dtype=np.int64)
        self.last_actions = np.zeros(num_envs, dtype=np.int64)
        self.last_cells = np.zeros(num_envs, dtype=np.int64)
        self.stats = EpisodeStats()

    @property
    def cells(self) -> np.ndarray:
        """Each copy's current cell (a copy; the batched grid owns the state)."""
        return self.venv.get_state()[:, 0]

    def observe(self) -> np.ndarray:
        return self.world.observe(self.cells, self.u)

    def action_masks(self) -> np.ndarray:
        return self.world.mask(self.u, self.cells)

    def reset(self, seed: int | None = None):
        cells = self.world.sample_starts(self.rng, self.num_envs)
        self.venv.place(cells)
        self.u = self.world.initial_u(cells)
        self.ep_return = np.zeros(self.num_envs)
        self.ep_len = np.zeros(self.num_envs, dtype=np.int64)
        return self.observe(), self._infos()

    def _infos(self) -> dict:
        return {"action_mask": self.action_masks()} if self.shield == "preemptive" else {}

    def step(self, actions, scores: np.ndarray | None = None):
        """One step of every copy. Under a shield, an action outside the mask is replaced by the safe
        action `scores` ranks best (the first safe one without scores)."""
        actions = np.asarray(actions, dtype=np.int64)
        if scores is None:
            scores = np.zeros((self.num_envs, self.world.n_actions))
        actions, override = self.world.filter(self.shield, self.u, self.cells, scores, actions)
        self.last_actions = actions
        _, _, _, trunc, info = self.venv.step(actions)
        c2 = np.asarray(info["final_obs"])  # index observations: the cell each copy reached
        self.last_cells = c2  # before any reset (for off-policy learners)
        t = self.world.tables
        u2 = t.next_u[self.u, c2]
        reward = t.reward[self.u, c2].astype(np.float32)
        done = t.done[self.u, c2]
        trunc = trunc & ~done
        self.ep_return += reward
        self.ep_len += 1
        finished = done | trunc
        self.stats.add(finished, t.accepting[u2], t.dead[u2], self.ep_return, self.ep_len)
        self.stats.violations += int(t.dead[u2].sum())
        self.stats.overrides += int(override.sum())
        final_obs = self.world.observe(c2, u2)  # observation of the state each copy reached, before any reset
        # the grid reset copies at its own time limit to its start cell; every finished copy restarts
        # from a start cell of ours, every other one stays where it arrived
        cells, u2 = c2.copy(), u2.copy()
        if finished.any():
            cells[finished] = self.world.sample_starts(self.rng, int(finished.sum()))
            u2[finished] = self.world.initial_u(cells[finished])
            self.ep_return[finished] = 0.0
            self.ep_len[finished] = 0
        self.venv.place(cells[finished], finished)
        self.u = u2
        info = {"shield_override": override, "final_obs": final_obs, "_final_obs": finished, **self._infos()}
        return self.observe(), reward, done, trunc, info

    def state_dict(self) -> dict:
        return {"venv": self.venv.state_dict(), "rng": self.rng.bit_generator.state, "u": self.u.copy(),
                "ep_return": self.ep_return.copy(), "ep_len": self.ep_len.copy(), "stats": self.stats.state()}

    def load_state_dict(self, s: dict) -> None:
        self.venv.load_state_dict(s["venv"])
        self.rng.bit_generator.state = s["rng"]
        self.u, self.ep_return, self.ep_len = np.array(s["u"]), np.array(s["ep_return"]), np.array(s["ep_len"])
        self.stats.load(s["stats"])


class PolicyScores:
    """A torch policy over product observations (`keel.rl.ppo.Policy`) seen as a `ScorePolicy`: the
    logits of its actor, computed on its numpy inference path."""

    def __init__(self, policy, world: SpecWorld):
        self.policy, self.world = policy, world

    def reset(self, mask: np.ndarray) -> None:
        pass

    def scores(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return self.policy.np_forward(self.world.observe(cells, u))[0].astype(np.float64)


def evaluate_policy(world: SpecWorld, policy: ScorePolicy, episodes: int, seed: int, shield: str) -> dict:
    """Greedy episodes of `policy`, all run side by side, one per batch row, under `shield`. Returns
    satisfaction rate, violations (episodes that violated), mean episode length, shield overrides."""
    rng = np.random.default_rng(seed)
    venv = world.make_venv(episodes, seed)
    cells = world.sample_starts(rng, episodes)
    venv.place(cells)
    u = world.initial_u(cells)
    policy.reset(np.ones(episodes, dtype=bool))
    live = np.ones(episodes, dtype=bool)
    length = np.zeros(episodes, dtype=np.int64)
    satisfied = np.zeros(episodes, dtype=bool)
    violated = np.zeros(episodes, dtype=bool)
    overrides = 0
    for _ in range(world.max_episode_steps):
        scores = policy.scores(u, cells) + 1e-9 * rng.random((episodes, world.n_actions))  # random ties
        actions, over = world.filter(shield, u, cells, scores)
        overrides += int((over & live).sum())
        _, _, _, _, info = venv.step(actions)
        c2 = np.asarray(info["final_obs"])
        u2 = world.tables.next_u[u, c2]
        length += live
        satisfied |= live & world.tables.accepting[u2]
        violated |= live & world.tables.dead[u2]
        live &= ~world.tables.done[u, c2]
        cells = np.where(live, c2, cells)
        venv.place(cells)  # no autoreset here: each row plays exactly one episode (the clock restarts too)
        u = np.where(live, u2, u)
        if not live.any():
            break
    return {
        "satisfaction": float(satisfied.mean()),
        "violations_eval": int(violated.sum()),
        "mean_episode_length": float(length.mean()),
        "episodes": int(episodes),
        "shield_overrides_eval": overrides,
    }
