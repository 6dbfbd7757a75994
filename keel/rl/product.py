"""The product of the batched grid rooms world and a spec's automaton, as arrays.

Learners under a spec act in the product MDP (env state, automaton state): the reward machine (Toro Icarte
et al., ICML 2018) turns the automaton into rewards, and a shield (Alshiekh et al., AAAI 2018) into an
action mask. In the grid every cell has a fixed label set, so the whole product is tabulated once here:

    SpecWorld.tables   machine tables [u, cell] (`keel.rl.qrm.MachineTables`)
    SpecWorld.safe     the shield's mask [u, cell, action], from the env's exact one-step model

and every learner (QRM, PPO on the product, DiRL) is run and evaluated by the same code:
`ProductVecEnv` steps N copies of env x automaton (for PPO: observation = cell one-hot + automaton
one-hot), and `evaluate_policy` runs greedy episodes with the shield as configured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keel.errors import KeelError
from keel.rl.qrm import MachineTables, machine_tables

SHIELDS = ("none", "preemptive", "postposed")


@dataclass
class SpecWorld:
    model: object  # keel.envs.rooms_grid.GridModel
    spec: object  # keel.spec Spec
    formula: str
    tables: MachineTables
    safe: np.ndarray  # [U, C, A] True = the shield allows the action
    start_cells: np.ndarray  # cells an episode may start in
    slip: float
    max_episode_steps: int
    env_kwargs: dict

    @property
    def n_cells(self) -> int:
        return self.model.n_cells

    @property
    def n_actions(self) -> int:
        return self.safe.shape[2]

    @property
    def num_states(self) -> int:
        return self.tables.num_states

    def make_venv(self, num_envs: int, seed: int):
        from keel.envs.rooms_batched import BatchedRooms

        venv = BatchedRooms(num_envs=num_envs, obs_mode="index", slip=self.slip,
                            max_episode_steps=self.max_episode_steps, **self.env_kwargs)
        venv.reset(seed=seed)
        return venv

    def sample_starts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.start_cells[rng.integers(len(self.start_cells), size=n)]

    def initial_u(self, cells: np.ndarray) -> np.ndarray:
        """The automaton starts in its initial state; as in keel.spec's shields and reward machines, the
        labels of the reset state are not a step (each action's arrival state is)."""
        return np.full(len(cells), self.tables.initial, dtype=np.int64)


def build_world(n_rooms: int, room_size: int, formula: str, slip: float, max_episode_steps: int,
                random_start: bool, gamma: float, shaping: bool, goals=None, hazards=None) -> SpecWorld:
    from keel.envs.rooms_grid import make_model
    from keel.spec import compile_ltlf

    model = make_model(n_rooms, room_size, goals, hazards)
    spec = compile_ltlf(formula, model.propositions)
    tables = machine_tables(spec, model.label_sets, gamma=gamma, shaping=shaping)
    outcomes = model.outcome_cells(np.arange(model.n_cells), slip)  # [C, A, K]
    safe = shield_mask_table(spec, tables, model.label_sets, outcomes)
    if random_start:  # anywhere in the start room that is not a hazard: greedy episodes then differ
        room = model.layout.start
        in_room = model.labels[:, model.prop_index[f"room_{room[0]}_{room[1]}"]]
        start_cells = np.flatnonzero(in_room & ~model.labels[:, model.prop_index["hazard"]])
    else:
        start_cells = np.array([model.start_cell])
    if tables.terminal[tables.initial]:
        raise KeelError(f"the formula {formula!r} is already decided in the start state; give a task that needs "
                        "the agent to act")
    env_kwargs = {"n_rooms": n_rooms, "room_size": room_size, "goals": goals, "hazards": hazards}
    return SpecWorld(model, spec, formula, tables, safe, start_cells, slip, max_episode_steps, env_kwargs)


def shield_mask_table(spec, tables: MachineTables, cell_labels, outcomes: np.ndarray) -> np.ndarray:
    """safe[u, c, a] from the spec's shield: for each automaton state and cell, the pre-emptive mask.

    `outcomes[c, a]` lists the cells action a may lead to from c (the env's exact one-step model), so
    `possible_labels_after(a)` in cell c is their label sets. The keel.spec Shield decides which actions
    can drive the safety part of the formula into a dead state; it is asked once per (u, c), never
    during training.
    """
    from keel.spec.shield import Shield

    shield = Shield(spec)
    U, (C, A, _) = tables.num_states, outcomes.shape
    safe = np.ones((U, C, A), dtype=bool)
    for u in range(U):
        if tables.terminal[u]:
            continue
        for c in range(C):  # the shield's automaton is the spec's DFA: same state numbers
            after = [list(dict.fromkeys(cell_labels[c2] for c2 in outcomes[c, a])) for a in range(A)]
            safe[u, c] = shield.safe_mask(u, after, A)
    return safe


def apply_shield(mode: str, safe_now: np.ndarray, scores: np.ndarray, chosen: np.ndarray | None = None):
    """Actions under a shield. `scores` [N, A] rank actions (Q-values or logits); `chosen` is the agent's
    own choice when it already picked one (exploration). Returns (actions, overridden [N] bool).

    preemptive: the agent only ever chooses among safe actions (unsafe ones are masked out first).
    postposed:  the agent chooses freely; an unsafe choice is replaced by the best-scored safe action.
    none:       the agent's choice stands.
    """
    n = scores.shape[0]
    best_safe = np.argmax(np.where(safe_now, scores, -np.inf), axis=1)
    if chosen is None:
        chosen = np.argmax(scores, axis=1) if mode != "preemptive" else best_safe
    if mode == "none":
        return chosen, np.zeros(n, dtype=bool)
    unsafe = ~safe_now[np.arange(n), chosen]
    has_safe = safe_now.any(axis=1)
    override = unsafe & has_safe
    return np.where(override, best_safe, chosen), (override if mode == "postposed" else np.zeros(n, bool))


def evaluate_policy(world: SpecWorld, policy, episodes: int, seed: int, shield: str) -> dict:
    """Greedy episodes of `policy` (an object with reset(mask) and scores(u, cells) -> [N, A]), all run
    side by side, one per batch row. Returns satisfaction rate, violations, mean episode length."""
    rng = np.random.default_rng(seed)
    venv = world.make_venv(episodes, seed)
    cells = world.sample_starts(rng, episodes)
    venv.cells[:] = cells
    u = world.initial_u(cells)
    policy.reset(np.ones(episodes, dtype=bool))
    live = np.ones(episodes, dtype=bool)
    length = np.zeros(episodes, dtype=np.int64)
    satisfied = np.zeros(episodes, dtype=bool)
    violated = np.zeros(episodes, dtype=bool)
    overrides = 0
    for _ in range(world.max_episode_steps):
        scores = policy.scores(u, venv.cells) + 1e-9 * rng.random((episodes, world.n_actions))  # random ties
        actions, over = apply_shield(shield, world.safe[u, venv.cells], scores)
        overrides += int((over & live).sum())
        _, _, _, _, info = venv.step(actions)
        c2 = info["final_obs"]
        u2 = world.tables.next_u[u, c2]
        length += live
        satisfied |= live & world.tables.accepting[u2]
        violated |= live & world.tables.dead[u2]
        live &= ~world.tables.done[u, c2]
        venv.cells[:] = c2  # no autoreset here: each row plays exactly one episode
        venv.t[:] = 0
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


class ProductVecEnv:
    """N copies of (grid world x automaton) as a vector env for policy-gradient learners (PPO).

    Observation: one-hot cell ++ one-hot automaton state. Reward: the reward machine's (sparse 1 on
    acceptance, plus potential-based shaping when the tables were built with it). An episode ends when
    the automaton accepts or dies, or at the env's time limit (truncation). The shield, when on, acts as
    a post-posed override inside the env (`info["shield_override"]`); `action_masks()` gives the
    pre-emptive mask for learners that mask their logits.
    """

    metadata = {"autoreset_mode": "same_step"}

    def __init__(self, world: SpecWorld, num_envs: int, seed: int, shield: str):
        import gymnasium
        from gymnasium.vector import AutoresetMode

        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # what keel.rl.ppo checks for
        self.world, self.num_envs, self.shield = world, num_envs, shield
        self.venv = world.make_venv(num_envs, seed)
        self.rng = np.random.default_rng(seed + 1)
        self.obs_dim = world.n_cells + world.num_states
        self.single_observation_space = gymnasium.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(world.n_actions)
        self.u = np.zeros(num_envs, dtype=np.int64)
        self.stats = EpisodeStats()

    def observe(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, self.obs_dim), dtype=np.float32)
        rows = np.arange(self.num_envs)
        obs[rows, self.venv.cells] = 1.0
        obs[rows, self.world.n_cells + self.u] = 1.0
        return obs

    def action_masks(self) -> np.ndarray:
        return self.world.safe[self.u, self.venv.cells]

    def reset(self, seed: int | None = None):
        cells = self.world.sample_starts(self.rng, self.num_envs)
        self.venv.cells[:], self.venv.t[:] = cells, 0
        self.u = self.world.initial_u(cells)
        self.ep_return = np.zeros(self.num_envs)
        self.ep_len = np.zeros(self.num_envs, dtype=np.int64)
        return self.observe(), self._infos()

    def _infos(self) -> dict:
        return {"action_mask": self.action_masks()} if self.shield == "preemptive" else {}

    def step(self, actions, scores: np.ndarray | None = None):
        """One step of every copy. With a shield, an unsafe action is replaced by the safe action that
        `scores` ranks best (the first safe one without scores)."""
        actions = np.asarray(actions, dtype=np.int64)
        override = np.zeros(self.num_envs, dtype=bool)
        if self.shield != "none":
            if scores is None:
                scores = np.zeros((self.num_envs, self.world.n_actions))
            actions, override = apply_shield("postposed", self.action_masks(), scores, actions)
        self.last_actions = actions
        _, _, term, trunc, info = self.venv.step(actions)
        c2 = info["final_obs"]
        self.last_cells = c2  # where each copy arrived, before any reset (for off-policy learners)
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
        final_obs = None  # observation of the state each copy reached, before any reset
        if finished.any():
            final_obs = self.observe_cells(c2, u2)
            fresh = self.world.sample_starts(self.rng, int(finished.sum()))
            c2 = c2.copy()
            c2[finished] = fresh
            u2 = u2.copy()
            u2[finished] = self.world.initial_u(fresh)
            self.venv.t[finished] = 0
            self.ep_return[finished] = 0.0
            self.ep_len[finished] = 0
        self.venv.cells[:] = c2
        self.u = u2
        if final_obs is None:
            final_obs = self.observe()
        info = {"shield_override": override, "final_obs": final_obs, "_final_obs": finished, **self._infos()}
        return self.observe(), reward, done, trunc, info

    def observe_cells(self, cells, u) -> np.ndarray:
        obs = np.zeros((len(cells), self.obs_dim), dtype=np.float32)
        obs[np.arange(len(cells)), cells] = 1.0
        obs[np.arange(len(cells)), self.world.n_cells + u] = 1.0
        return obs

    def state_dict(self) -> dict:
        return {"venv": self.venv.state_dict(), "rng": self.rng.bit_generator.state, "u": self.u.copy(),
                "ep_return": self.ep_return.copy(), "ep_len": self.ep_len.copy(), "stats": self.stats.state()}

    def load_state_dict(self, s: dict) -> None:
        self.venv.load_state_dict(s["venv"])
        self.rng.bit_generator.state = s["rng"]
        self.u, self.ep_return, self.ep_len = np.array(s["u"]), np.array(s["ep_return"]), np.array(s["ep_len"])
        self.stats.load(s["stats"])


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


class PolicyScores:
    """A torch policy over product observations (`keel.rl.ppo.Policy`) seen as scores for `evaluate_policy`:
    the logits of its actor (the greedy action is their argmax)."""

    def __init__(self, policy, world: SpecWorld):
        self.policy, self.world = policy, world

    def reset(self, mask: np.ndarray) -> None:
        pass

    def scores(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray:
        obs = np.zeros((len(cells), self.world.n_cells + self.world.num_states), dtype=np.float32)
        obs[np.arange(len(cells)), cells] = 1.0
        obs[np.arange(len(cells)), self.world.n_cells + u] = 1.0
        if hasattr(self.policy, "np_forward"):  # keel.rl.ppo's numpy inference path: no torch per step
            return self.policy.np_forward(obs)[0].astype(np.float64)
        import torch

        with torch.inference_mode():
            return self.policy.actor(torch.from_numpy(obs)).numpy().astype(np.float64)
