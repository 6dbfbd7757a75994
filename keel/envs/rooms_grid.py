"""The rooms world of DiRL as a grid: each room is k x k cells, doors are one-cell openings.

Jothimurugan, Bansal, Bastani, Alur. "Compositional Reinforcement Learning from Logical
Specifications", NeurIPS 2021 (the 9-rooms and 16-rooms benchmarks), here discretised so tabular
learners (QRM) get an integer state and shields get an exact one-step model.

All dynamics live in two tables built once per world (`GridModel`): `next_cell[cell, action]` and
`labels[cell, proposition]`. The single env (`RoomsGrid`) and the batched one (`BatchedRooms`,
`rooms_batched.py`) index the same tables, so their dynamics agree by construction; the tests check
it anyway.

Actions: 0 up, 1 down, 2 left, 3 right, 4 stay. With `slip > 0`, the chosen action is replaced, with
probability `slip`, by another (`possible_labels_after` lists every outcome):
- `slip_mode="uniform"` (default): by one drawn uniformly from all five. The agent then cannot steer
  away from anything: every action has the same set of possible outcomes, so next to a hazard no action
  is safe for sure and, as a safety game, no hazard reachable at all can be avoided for sure.
- `slip_mode="sideways"`: a move slips to one of the two perpendicular moves (as in the slippery
  gridworlds of the shielding literature), `stay` to any of the four. The agent keeps control, so a
  safety-game shield (`keel.spec.shield`) has winning strategies to offer.
Walls stop the agent (it stays in its cell); a wall between two rooms can be crossed only
through its door, the middle cell of the wall.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from keel.envs.rooms_layout import Layout, get_layout
from keel.errors import KeelError

UP, DOWN, LEFT, RIGHT, STAY = range(5)
N_ACTIONS = 5
_MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)])
OBS_MODES = ("index", "onehot", "xy")
SLIP_MODES = ("uniform", "sideways")
# SLIP_TO[mode][a, i]: the action taken when action a slips and the slip draw is i (the env draws
# i uniformly from range(SLIP_TO[mode].shape[1])). Each row lists every alternative equally often.
SLIP_TO = {
    "uniform": np.tile(np.arange(N_ACTIONS), (N_ACTIONS, 1)),
    "sideways": np.array([[LEFT, RIGHT, LEFT, RIGHT], [LEFT, RIGHT, LEFT, RIGHT], [UP, DOWN, UP, DOWN],
                          [UP, DOWN, UP, DOWN], [UP, DOWN, LEFT, RIGHT]]),
}


class GridModel:
    """The tables of one grid world: transitions, labels, quantitative predicates, observations."""

    def __init__(self, layout: Layout, room_size: int = 5):
        if room_size < 3:
            raise KeelError(f"room_size must be at least 3 cells (a door needs a middle cell), got {room_size}")
        self.layout, self.k = layout, room_size
        k = room_size
        self.height, self.width = layout.n_rows * k, layout.n_cols * k
        self.n_cells = self.height * self.width
        ys, xs = np.divmod(np.arange(self.n_cells), self.width)
        self.yx = np.stack([ys, xs], axis=1)
        self.propositions = layout.propositions
        self.prop_index = {p: i for i, p in enumerate(self.propositions)}
        self.start_cell = self.centre_cell(layout.start)

        # Transitions: a move that leaves the grid, or crosses a room wall anywhere but at its door, stays.
        mid = k // 2
        nxt = np.empty((self.n_cells, N_ACTIONS), dtype=np.int64)
        for a, (dy, dx) in enumerate(_MOVES):
            y2, x2 = ys + dy, xs + dx
            inside = (y2 >= 0) & (y2 < self.height) & (x2 >= 0) & (x2 < self.width)
            y2c, x2c = np.clip(y2, 0, self.height - 1), np.clip(x2, 0, self.width - 1)
            same_room = (ys // k == y2c // k) & (xs // k == x2c // k)
            at_door_pos = (xs % k == mid) if dy else (ys % k == mid)
            door = np.array([layout.has_door((y // k, x // k), (y2 // k, x2 // k)) for y, x, y2, x2
                             in zip(ys, xs, y2c, x2c, strict=True)])
            ok = inside & (same_room | (at_door_pos & door))
            nxt[:, a] = np.where(ok, y2c * self.width + x2c, np.arange(self.n_cells))
        self.next_cell = nxt

        # Labels: which propositions hold in each cell.
        lab = np.zeros((self.n_cells, len(self.propositions)), dtype=bool)
        for r, c in layout.rooms:
            lab[:, self.prop_index[f"room_{r}_{c}"]] = (ys // k == r) & (xs // k == c)
        moved = nxt != np.arange(self.n_cells)[:, None]
        crosses = np.zeros(self.n_cells, dtype=bool)
        for a in range(4):  # a doorway cell is one from which a move goes through a door
            tgt = nxt[:, a]
            crosses |= moved[:, a] & ((ys // k != self.yx[tgt, 0] // k) | (xs // k != self.yx[tgt, 1] // k))
        lab[:, self.prop_index["door"]] = crosses
        for name, room in layout.goals.items():
            lab[self.centre_cell(room), self.prop_index[f"goal_{name}"]] = True
        self.hazard_cells = sorted({self.local_cell(room, f) for room, f in layout.hazards})
        lab[self.hazard_cells, self.prop_index["hazard"]] = True
        self.labels = lab
        self.label_sets = [frozenset(self.propositions[j] for j in np.flatnonzero(row)) for row in lab]
        self._check_hazards()

        # Quantitative semantics (for SPECTRL / DiRL): > 0 iff the proposition holds. Inside its cells:
        # the Manhattan distance to the nearest cell where it does not hold; outside: 1 - the distance to
        # the nearest cell where it holds.
        self.pred_values = np.zeros((self.n_cells, len(self.propositions)), dtype=np.float32)
        for j in range(len(self.propositions)):
            self.pred_values[:, j] = _signed_distance(self.yx, lab[:, j])

        self.xy = np.stack([(xs + 0.5) / self.width, (ys + 0.5) / self.height], axis=1).astype(np.float32)

    def centre_cell(self, room) -> int:
        r, c = room
        return (r * self.k + self.k // 2) * self.width + c * self.k + self.k // 2

    def local_cell(self, room, frac) -> int:
        (r, c), (fy, fx) = room, frac
        return (r * self.k + int(fy * self.k)) * self.width + c * self.k + int(fx * self.k)

    def _check_hazards(self) -> None:
        """Hazards may not sit on the start or a goal, and every goal must stay reachable around them."""
        hz = set(self.hazard_cells)
        named = {"start": self.start_cell} | {f"goal_{g}": self.centre_cell(r) for g, r in self.layout.goals.items()}
        for what, cell in named.items():
            if cell in hz:
                raise KeelError(f"a hazard covers the {what} cell; move the hazard elsewhere in its room")
        seen, todo = {self.start_cell}, deque([self.start_cell])
        while todo:
            cell = todo.popleft()
            for nxt in self.next_cell[cell]:
                if nxt not in seen and nxt not in hz:
                    seen.add(int(nxt))
                    todo.append(int(nxt))
        for what, cell in named.items():
            if cell not in seen:
                raise KeelError(f"{what} cannot be reached from the start without entering a hazard; "
                                "move or remove hazards (or add doors)")

    def observe(self, cells, mode: str):
        """Observations of an int or an int array of cells."""
        if mode == "index":
            return cells
        if mode == "onehot":
            eye = np.zeros((np.size(cells), self.n_cells), dtype=np.float32)
            eye[np.arange(np.size(cells)), np.ravel(cells)] = 1.0
            return eye[0] if np.ndim(cells) == 0 else eye
        return self.xy[cells].copy()  # a row of self.xy would be a view into the table

    def observation_space(self, mode: str) -> spaces.Space:
        if mode == "index":
            return spaces.Discrete(self.n_cells)
        if mode == "onehot":
            return spaces.Box(0.0, 1.0, (self.n_cells,), dtype=np.float32)
        return spaces.Box(0.0, 1.0, (2,), dtype=np.float32)

    def outcome_cells(self, cells, slip: float, slip_mode: str = "uniform") -> np.ndarray:
        """(..., A, K) cells each action may lead to: K = 1 without slip; else the action itself and
        every action it may slip to (`SLIP_TO`; a cell may repeat): K = 5 in both slip modes."""
        nxt = self.next_cell[cells]  # (..., A)
        if slip <= 0.0:
            return nxt[..., None]
        if slip_mode == "uniform":  # every action may become any action (itself included): K = A
            return np.broadcast_to(nxt[..., None, :], nxt.shape + (N_ACTIONS,))
        to = np.concatenate([np.arange(N_ACTIONS)[:, None], SLIP_TO[slip_mode]], axis=1)  # (A, 1 + K')
        return nxt[..., to]

    def slip_actions(self, actions: np.ndarray, slipped: np.ndarray, draw: np.ndarray, slip_mode: str) -> np.ndarray:
        """The actions actually taken: `actions` where not `slipped`, else SLIP_TO[slip_mode][action, draw]."""
        return np.where(slipped, SLIP_TO[slip_mode][actions, draw], actions)


def _signed_distance(yx: np.ndarray, member: np.ndarray) -> np.ndarray:
    inside, outside = yx[member], yx[~member]
    out = np.empty(len(yx), dtype=np.float32)
    if len(inside) == 0:
        return np.full(len(yx), -float(yx.max() * 2 + 1), dtype=np.float32)
    d_in = np.abs(yx[:, None, :] - inside[None, :, :]).sum(-1).min(1)  # 0 on member cells
    out[~member] = 1.0 - d_in[~member]
    if len(outside):
        d_out = np.abs(yx[member][:, None, :] - outside[None, :, :]).sum(-1).min(1)
        out[member] = d_out
    else:
        out[member] = float(yx.max() * 2 + 1)
    return out


_DEFAULT_MODELS: dict[tuple[int, int], GridModel] = {}


def make_model(n_rooms: int = 16, room_size: int = 5, goals=None, hazards=None, start=None) -> GridModel:
    layout = get_layout(n_rooms)
    if goals is not None or hazards is not None or start is not None:
        layout = layout.with_changes(goals=goals, hazards=hazards, start=start)
        return GridModel(layout, room_size)
    if (n_rooms, room_size) not in _DEFAULT_MODELS:  # the tables are read-only, so copies share them
        _DEFAULT_MODELS[n_rooms, room_size] = GridModel(layout, room_size)
    return _DEFAULT_MODELS[n_rooms, room_size]


def check_common(obs_mode: str, slip: float, max_episode_steps: int, task: str | None, props,
                 slip_mode: str = "uniform") -> None:
    if slip_mode not in SLIP_MODES:
        raise KeelError(f"slip_mode must be one of {', '.join(SLIP_MODES)}, got {slip_mode!r}")
    if obs_mode not in OBS_MODES:
        raise KeelError(f"obs_mode must be one of {', '.join(OBS_MODES)}, got {obs_mode!r}")
    if not 0.0 <= slip < 1.0:
        raise KeelError(f"slip is a probability in [0, 1), got {slip}")
    if max_episode_steps < 1:
        raise KeelError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    if task is not None and task not in props:
        raise KeelError(f"task {task!r} is not a proposition of this world; it has: {', '.join(props)}")


class RoomsGrid(gym.Env):
    """One copy of the grid rooms world, following the Keel proposition contract.

    `task`: optionally a proposition (e.g. "goal_a"); reaching it gives reward 1 and ends the episode.
    Without it the reward is always 0 and specs (reward machines, shields) supply the task.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        n_rooms: int = 16,
        room_size: int = 5,
        obs_mode: str = "index",
        slip: float = 0.0,
        max_episode_steps: int = 200,
        task: str | None = None,
        goals=None,
        hazards=None,
        start=None,
        render_mode: str | None = None,
        slip_mode: str = "uniform",
    ):
        if render_mode not in (None, "ansi"):
            raise KeelError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.model = make_model(n_rooms, room_size, goals, hazards, start)
        check_common(obs_mode, slip, max_episode_steps, task, self.model.propositions, slip_mode)
        self.obs_mode, self.slip, self.max_episode_steps, self.task = obs_mode, float(slip), max_episode_steps, task
        self.slip_mode = slip_mode
        self._task_col = self.model.prop_index[task] if task else None
        self.observation_space = self.model.observation_space(obs_mode)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.render_mode = render_mode
        self.cell, self.t = self.model.start_cell, 0

    # --- the proposition contract ---------------------------------------------------------------
    @property
    def propositions(self) -> frozenset[str]:
        return frozenset(self.model.propositions)

    def labels(self, state=None) -> frozenset[str]:
        """The propositions true now, or in `state` (as from `get_state()`) when given."""
        cell = self.cell if state is None else int(np.asarray(state).ravel()[0])
        return self.model.label_sets[cell]

    def possible_labels_after(self, action) -> list[frozenset[str]]:
        cells = self.model.outcome_cells(self.cell, self.slip, self.slip_mode)[int(action)]
        return list(dict.fromkeys(self.model.label_sets[c] for c in cells))

    # --- the finite model a safety-game shield solves (`keel.spec.shield.FiniteModel`) ------------
    def shield_model(self) -> tuple[list[frozenset[str]], np.ndarray]:
        """(labels of every cell, outcomes[cell, action, k]: every cell the action may lead to)."""
        return self.model.label_sets, self.model.outcome_cells(np.arange(self.model.n_cells), self.slip,
                                                               self.slip_mode)

    def model_state(self) -> int:
        """The index of the current state in `shield_model()`: the cell."""
        return int(self.cell)

    def predicate_names(self) -> list[str]:
        return list(self.model.propositions)

    def predicate_value(self, name: str, state) -> float:
        if name not in self.model.prop_index:
            raise KeelError(f"unknown predicate {name!r}; this world has: {', '.join(self.model.propositions)}")
        return float(self.model.pred_values[int(np.asarray(state).ravel()[0]), self.model.prop_index[name]])

    def get_state(self) -> np.ndarray:
        return np.array([self.cell, self.t], dtype=np.int64)

    def set_state(self, state) -> None:
        state = np.asarray(state).ravel()
        self.cell = int(state[0])
        self.t = int(state[1]) if len(state) > 1 else 0

    # --- Gymnasium ------------------------------------------------------------------------------
    def _obs(self):
        return self.model.observe(np.int64(self.cell), self.obs_mode)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell, self.t = self.model.start_cell, 0
        return self._obs(), {"labels": self.labels()}

    def step(self, action):
        a = int(action)
        if self.slip > 0:  # draw both numbers every step, as the batched env does, so the two stay in lockstep
            u, draw = self.np_random.random(), int(self.np_random.integers(SLIP_TO[self.slip_mode].shape[1]))
            if u < self.slip:
                a = int(SLIP_TO[self.slip_mode][a, draw])
        self.cell = int(self.model.next_cell[self.cell, a])
        self.t += 1
        reached = self._task_col is not None and bool(self.model.labels[self.cell, self._task_col])
        truncated = self.t >= self.max_episode_steps and not reached
        return self._obs(), float(reached), reached, truncated, {"labels": self.labels()}

    def render(self):
        """Text picture: '#' walls (a gap is a door), '@' the agent, 'x' hazards, goal initials."""
        m, k = self.model, self.model.k
        rows, cols = m.layout.n_rows, m.layout.n_cols
        pic = np.full((rows * (k + 1) + 1, cols * (k + 1) + 1), "#", dtype="<U1")

        def at(cell):  # picture coordinates of a grid cell: one wall line before each room
            y, x = m.yx[cell]
            return y + y // k + 1, x + x // k + 1

        for cell in range(m.n_cells):
            pic[at(cell)] = "."
        for cell in m.hazard_cells:
            pic[at(cell)] = "x"
        for name, room in m.layout.goals.items():
            pic[at(m.centre_cell(room))] = name[0].upper()
        for (r1, c1), (r2, _) in m.layout.doors:
            if r1 == r2:  # door in the wall to the right of room (r1, c1)
                pic[r1 * (k + 1) + 1 + k // 2, (c1 + 1) * (k + 1)] = " "
            else:  # door in the wall below it
                pic[(r1 + 1) * (k + 1), c1 * (k + 1) + 1 + k // 2] = " "
        pic[at(self.cell)] = "@"
        return "\n".join("".join(row) for row in pic)
