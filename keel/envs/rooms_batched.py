"""`BatchedRooms`: N copies of the grid rooms world stepped at once with numpy arrays.

The dynamics are the single env's (`rooms_grid.RoomsGrid`): both index the same `GridModel` tables,
and one step draws the same random numbers per copy (a uniform for the slip test, then an action), so
a batch of one seeded like a single env follows it exactly. A step is a few fancy-indexing operations
over all copies; there is no Python loop over envs.

Finished copies are reset in the same step (Gymnasium's "same-step" autoreset): the returned
observation is the new episode's first one, and `infos` carries what the finishing step reached:

    infos["labels"]      (N, P) bool   labels of the state each copy reached with this step
    infos["final_obs"]   (N, ...)      observation of that state (equal to obs for copies not done)
    infos["_final_obs"]  (N,) bool     which copies finished (and were reset)

`label_matrix()` / `label_sets()` give the labels of the current states (after any reset), which is
what a monitor or reward machine of a fresh episode starts from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from keel.envs.rooms_grid import N_ACTIONS, SLIP_TO, check_common, make_model


class _Batched(VectorEnv):
    """What both batched worlds share: the batched spaces, the step counters and the proposition list."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def _init_batch(self, single_obs: spaces.Space, single_act: spaces.Space, propositions) -> None:
        self.single_observation_space = single_obs
        self.single_action_space = single_act
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self.closed = False
        self.proposition_list: list[str] = list(propositions)
        self.t = np.zeros(self.num_envs, dtype=np.int64)
        self.rng, _ = seeding.np_random(None)

    # --- the proposition contract, batched ------------------------------------------------------
    @property
    def propositions(self) -> frozenset[str]:
        return frozenset(self.proposition_list)


class BatchedRooms(_Batched):

    def __init__(
        self,
        num_envs: int = 8,
        n_rooms: int = 16,
        room_size: int = 5,
        obs_mode: str = "index",
        slip: float = 0.0,
        max_episode_steps: int = 200,
        task: str | None = None,
        goals=None,
        hazards=None,
        start=None,
        slip_mode: str = "uniform",
    ):
        self.model = m = make_model(n_rooms, room_size, goals, hazards, start)
        check_common(obs_mode, slip, max_episode_steps, task, m.propositions, slip_mode)
        self.num_envs = int(num_envs)
        self.obs_mode, self.slip, self.max_episode_steps, self.task = obs_mode, float(slip), max_episode_steps, task
        self.slip_mode = slip_mode
        self._task_col = m.prop_index[task] if task else None
        self._init_batch(m.observation_space(obs_mode), spaces.Discrete(N_ACTIONS), m.propositions)
        self.cells = np.full(self.num_envs, m.start_cell, dtype=np.int64)

    def label_matrix(self) -> np.ndarray:
        """(N, P) bool: the propositions true in each copy's current state, columns = proposition_list."""
        return self.model.labels[self.cells]

    def label_sets(self) -> list[frozenset[str]]:
        return [self.model.label_sets[c] for c in self.cells]

    def possible_label_matrix(self) -> np.ndarray:
        """(N, A, K, P) bool: the label sets each action may produce (K outcomes; K = 1 without slip)."""
        return self.model.labels[self.model.outcome_cells(self.cells, self.slip, self.slip_mode)]

    def possible_labels_after(self, i: int, action: int) -> list[frozenset[str]]:
        """The single env's `possible_labels_after(action)` for copy i."""
        cells = self.model.outcome_cells(self.cells[i], self.slip, self.slip_mode)[int(action)]
        return list(dict.fromkeys(self.model.label_sets[c] for c in cells))

    def place(self, cells, rows: np.ndarray | None = None) -> None:
        """Put the given copies (all without `rows`; `rows` a bool mask or indices) in `cells` at the
        start of a fresh episode (step count 0). For callers that choose their own start states (a
        random start room, DiRL's start distributions) or replay the state a step reached."""
        rows = slice(None) if rows is None else rows
        self.cells[rows] = cells
        self.t[rows] = 0

    def get_state(self) -> np.ndarray:
        """(N, 2) int: each copy's cell and step count."""
        return np.stack([self.cells, self.t], axis=1)

    def set_state(self, state) -> None:
        state = np.asarray(state, dtype=np.int64).reshape(self.num_envs, -1)
        self.cells = state[:, 0].copy()
        self.t = state[:, 1].copy() if state.shape[1] > 1 else np.zeros(self.num_envs, dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where we are (for checkpoints)."""
        return {"cells": self.cells.copy(), "t": self.t.copy(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cells, self.t = np.array(state["cells"]), np.array(state["t"])
        self.rng.bit_generator.state = state["rng"]

    def observe(self) -> np.ndarray:
        return self.model.observe(self.cells.copy(), self.obs_mode)  # never a view of our state

    # --- VectorEnv --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng, _ = seeding.np_random(seed)
        self.cells[:] = self.model.start_cell
        self.t[:] = 0
        return self.observe(), {"labels": self.label_matrix()}

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if self.slip > 0:  # the same draws, in the same order, as the single env
            u = self.rng.random(self.num_envs)
            draw = self.rng.integers(SLIP_TO[self.slip_mode].shape[1], size=self.num_envs)
            actions = self.model.slip_actions(actions, u < self.slip, draw, self.slip_mode)
        self.cells = self.model.next_cell[self.cells, actions]
        self.t += 1
        labels = self.model.labels[self.cells]
        if self._task_col is None:
            terminated = np.zeros(self.num_envs, dtype=bool)
        else:
            terminated = labels[:, self._task_col].copy()
        truncated = (self.t >= self.max_episode_steps) & ~terminated
        rewards = terminated.astype(np.float32)
        done = terminated | truncated
        final_obs = self.observe()
        if done.any():
            self.cells[done] = self.model.start_cell
            self.t[done] = 0
            obs = self.observe()
        else:
            obs = final_obs
        infos = {"labels": labels, "final_obs": final_obs, "_final_obs": done}
        return obs, rewards, terminated, truncated, infos


class BatchedRoomsContinuous(_Batched):
    """N copies of the continuous rooms world (`rooms_continuous.RoomsContinuous`) as numpy arrays.

    The single env's own vectorised geometry (`ContinuousModel.move` / `.values`) steps all copies at
    once; per row the arithmetic is the same, so a copy follows the single env exactly. Same-step
    autoreset and the same `infos` keys as `BatchedRooms`. The start noise of a reset is drawn from
    one generator for the whole batch (a batch of one matches a single env seeded alike).
    """

    def __init__(self, num_envs: int = 8, n_rooms: int = 16, room_size: float = 8.0, door_width: float = 2.0,
                 max_step: float = 1.0, max_episode_steps: int = 200, task: str | None = None,
                 start_noise: float = 0.5, goals=None, hazards=None, start=None):
        from keel.envs.rooms_continuous import RoomsContinuous

        # one single env validates the arguments and owns the geometry the batch shares
        self._single = RoomsContinuous(n_rooms, room_size, door_width, max_step, max_episode_steps, task,
                                       start_noise, goals, hazards, start)
        self.model = m = self._single.model
        self.num_envs = int(num_envs)
        self.max_step, self.max_episode_steps, self.task = float(max_step), max_episode_steps, task
        self.start_noise = float(start_noise)
        self._task_col = m.prop_index[task] if task else None
        self._init_batch(self._single.observation_space, self._single.action_space, m.propositions)
        self.pos = np.tile(m.start, (self.num_envs, 1))

    def label_matrix(self) -> np.ndarray:
        """(N, P) bool: the propositions true in each copy's current state."""
        return self.model.label_matrix(self.pos)

    def label_sets(self) -> list[frozenset[str]]:
        return [frozenset(self.proposition_list[j] for j in np.flatnonzero(row)) for row in self.label_matrix()]

    def _next_pos(self, actions) -> np.ndarray:
        a = np.clip(np.asarray(actions, dtype=float).reshape(self.num_envs, 2), -1.0, 1.0)
        return self.model.move(self.pos, a * self.max_step)

    def labels_after(self, actions) -> np.ndarray:
        """(N, P) bool: the labels each copy would have after its action (exact: no noise)."""
        return self.model.label_matrix(self._next_pos(actions))

    def possible_labels_after(self, i: int, action) -> list[frozenset[str]]:
        pos = self.model.move(self.pos[i], np.clip(np.asarray(action, dtype=float), -1, 1) * self.max_step)
        return [self.model.label_set(pos)]

    def get_state(self) -> np.ndarray:
        return self.pos.copy()

    def set_state(self, state) -> None:
        self.pos = np.clip(np.asarray(state, dtype=float).reshape(self.num_envs, 2), 1e-4,
                           [self.model.width - 1e-4, self.model.height - 1e-4])

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos.copy(), "t": self.t.copy(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.t = np.array(state["pos"]), np.array(state["t"])
        self.rng.bit_generator.state = state["rng"]

    def _starts(self, k: int) -> np.ndarray:
        return self.model.start + self.rng.uniform(-self.start_noise, self.start_noise, (k, 2))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng, _ = seeding.np_random(seed)
        self.pos = self._starts(self.num_envs)
        self.t[:] = 0
        return self.pos.astype(np.float32), {"labels": self.label_matrix()}

    def step(self, actions):
        self.pos = self._next_pos(actions)
        self.t += 1
        labels = self.model.label_matrix(self.pos)
        if self._task_col is None:
            terminated = np.zeros(self.num_envs, dtype=bool)
        else:
            terminated = labels[:, self._task_col].copy()
        truncated = (self.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final_obs = self.pos.astype(np.float32)
        if done.any():
            self.pos[done] = self._starts(int(done.sum()))
            self.t[done] = 0
            obs = self.pos.astype(np.float32)
        else:
            obs = final_obs.copy()
        infos = {"labels": labels, "final_obs": final_obs, "_final_obs": done}
        return obs, terminated.astype(np.float32), terminated, truncated, infos
