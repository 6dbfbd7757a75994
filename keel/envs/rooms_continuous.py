"""The continuous rooms world of DiRL: a 2-D position, a bounded 2-D displacement, walls that block.

Jothimurugan, Bansal, Bastani, Alur. "Compositional Reinforcement Learning from Logical
Specifications", NeurIPS 2021, Section 6 (the 9-rooms and 16-rooms environments): rooms are
`room_size` x `room_size` squares; a wall between two rooms has an opening of `door_width` in its
middle when the layout puts a door there. The agent moves by (dx, dy) in [-max_step, max_step]^2;
the x move happens first, then the y move, each stopped just short of a wall it would cross outside
an opening. Coordinates: x grows to the right, y grows downwards (row 0 is the top row), like the
grid world.

Regions (all propositions are "predicate value > 0", so labels and quantitative semantics agree):
    room_R_C   value = distance to the nearest edge of the room (negative outside it)
    door       an opening's box: `door_width` along the wall, `door_depth` deep on each side
    goal_X     a disc of `goal_radius` at the centre of goal X's room
    hazard     discs of `hazard_radius` at each hazard's position
The dynamics are deterministic, so `possible_labels_after(action)` is exact (one label set).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from keel.envs.rooms_layout import Layout, get_layout
from keel.errors import KeelError

_EPS = 1e-4  # how far short of a wall a blocked move stops


class ContinuousModel:
    """Geometry of one continuous world: walls, doors, regions; vectorised over positions."""

    def __init__(self, layout: Layout, room_size: float = 8.0, door_width: float = 2.0,
                 goal_radius: float = 1.0, hazard_radius: float = 0.8, door_depth: float = 1.0):
        if not 0 < door_width < room_size:
            raise KeelError(f"door_width must be in (0, room_size={room_size}), got {door_width}")
        self.layout, self.s, self.door_width = layout, float(room_size), float(door_width)
        self.goal_radius, self.hazard_radius, self.door_depth = goal_radius, hazard_radius, door_depth
        self.width, self.height = layout.n_cols * self.s, layout.n_rows * self.s
        self.propositions = layout.propositions
        self.prop_index = {p: i for i, p in enumerate(self.propositions)}
        s = self.s
        # door[r, c, 0]: door between (r, c) and (r, c+1); door[r, c, 1]: between (r, c) and (r+1, c)
        self.door = np.zeros((layout.n_rows, layout.n_cols, 2), dtype=bool)
        for (r1, c1), (r2, _) in layout.doors:
            self.door[r1, c1, 0 if r1 == r2 else 1] = True
        self.goal_centres = {g: np.array([(c + 0.5) * s, (r + 0.5) * s]) for g, (r, c) in layout.goals.items()}
        self.hazard_centres = np.array([[(c + fx) * s, (r + fy) * s] for (r, c), (fy, fx) in layout.hazards]
                                       ).reshape(-1, 2)
        r0, c0 = layout.start
        self.start = np.array([(c0 + 0.5) * s, (r0 + 0.5) * s])
        # door boxes as (centre_x, centre_y, half_x, half_y)
        boxes = []
        for r, c, k in zip(*np.nonzero(self.door), strict=True):
            if k == 0:
                boxes.append(((c + 1) * s, (r + 0.5) * s, door_depth, door_width / 2))
            else:
                boxes.append(((c + 0.5) * s, (r + 1) * s, door_width / 2, door_depth))
        self.door_boxes = np.array(boxes, dtype=float).reshape(-1, 4)
        self._check_hazards()

    # --- dynamics ---------------------------------------------------------------------------------
    def move(self, pos: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """New positions (N, 2) after displacements (N, 2); each axis is stopped at a closed wall."""
        pos = np.array(pos, dtype=float).reshape(-1, 2)
        delta = np.asarray(delta, dtype=float).reshape(-1, 2)
        x, y = pos[:, 0], pos[:, 1]
        x = self._move_axis(x, y, delta[:, 0], self.width, horizontal=True)
        y = self._move_axis(y, x, delta[:, 1], self.height, horizontal=False)
        return np.stack([x, y], axis=1)

    def _move_axis(self, a, b, d, limit, horizontal):
        """Move coordinate a by d at fixed cross coordinate b; walls at multiples of s."""
        s, n_rows, n_cols = self.s, self.layout.n_rows, self.layout.n_cols
        new = np.clip(a + d, _EPS, limit - _EPS)
        ra, rn = np.floor(a / s).astype(int), np.floor(new / s).astype(int)
        cross = ra != rn  # |d| < s, so at most one wall is crossed
        if cross.any():
            lo = np.minimum(ra, rn)[cross]  # the room on the lower side of the crossed wall
            rb = np.clip(np.floor(b[cross] / s).astype(int), 0, (n_rows if horizontal else n_cols) - 1)
            if horizontal:
                has = self.door[rb, np.clip(lo, 0, n_cols - 1), 0]
            else:
                has = self.door[np.clip(lo, 0, n_rows - 1), rb, 1]
            in_gap = np.abs(b[cross] - (rb + 0.5) * s) <= self.door_width / 2
            wall = (lo + 1) * s
            stopped = np.where(rn[cross] > ra[cross], wall - _EPS, wall + _EPS)
            new[cross] = np.where(has & in_gap, new[cross], stopped)
        return new

    # --- regions ----------------------------------------------------------------------------------
    def values(self, pos: np.ndarray) -> np.ndarray:
        """(N, P) quantitative semantics of every proposition at positions (N, 2)."""
        pos = np.asarray(pos, dtype=float).reshape(-1, 2)
        x, y, s = pos[:, 0], pos[:, 1], self.s
        out = np.empty((len(pos), len(self.propositions)))
        for r, c in self.layout.rooms:
            out[:, self.prop_index[f"room_{r}_{c}"]] = np.minimum.reduce(
                [x - c * s, (c + 1) * s - x, y - r * s, (r + 1) * s - y])
        if len(self.door_boxes):
            bx = self.door_boxes
            inside = np.minimum(bx[None, :, 2] - np.abs(x[:, None] - bx[None, :, 0]),
                                bx[None, :, 3] - np.abs(y[:, None] - bx[None, :, 1]))
            out[:, self.prop_index["door"]] = inside.max(1)
        else:
            out[:, self.prop_index["door"]] = -s
        for g, centre in self.goal_centres.items():
            out[:, self.prop_index[f"goal_{g}"]] = self.goal_radius - np.linalg.norm(pos - centre, axis=1)
        if len(self.hazard_centres):
            d = np.linalg.norm(pos[:, None, :] - self.hazard_centres[None], axis=2)
            out[:, self.prop_index["hazard"]] = (self.hazard_radius - d).max(1)
        else:
            out[:, self.prop_index["hazard"]] = -s
        return out

    def label_matrix(self, pos) -> np.ndarray:
        return self.values(pos) > 0

    def label_set(self, pos) -> frozenset[str]:
        row = self.label_matrix(pos)[0]
        return frozenset(p for p, on in zip(self.propositions, row, strict=True) if on)

    def _check_hazards(self) -> None:
        """No hazard on the start or a goal, and every goal reachable without touching a hazard
        (flood fill on a lattice of step h, moving with the real dynamics)."""
        if len(self.hazard_centres) == 0:
            return
        named = {"start": self.start} | {f"goal_{g}": c for g, c in self.goal_centres.items()}
        for what, centre in named.items():
            d = np.linalg.norm(self.hazard_centres - centre, axis=1).min()
            if d <= self.hazard_radius + (self.goal_radius if what != "start" else 0.0):
                raise KeelError(f"a hazard overlaps the {what}; move it elsewhere in its room")
        h = 0.25
        nx, ny = int(round(self.width / h)), int(round(self.height / h))
        gx, gy = np.meshgrid((np.arange(nx) + 0.5) * h, (np.arange(ny) + 0.5) * h)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        free = self.values(pts)[:, self.prop_index["hazard"]] <= 0
        nbr = []
        for d in ((h, 0), (-h, 0), (0, h), (0, -h)):
            q = self.move(pts, np.tile(d, (len(pts), 1)))
            moved = np.abs(q - pts).sum(1) > h / 2
            idx = np.clip((q[:, 1] // h).astype(int), 0, ny - 1) * nx + np.clip((q[:, 0] // h).astype(int), 0, nx - 1)
            nbr.append(np.where(moved, idx, np.arange(len(pts))))
        nbr = np.stack(nbr, axis=1)
        reached = np.zeros(len(pts), dtype=bool)
        frontier = np.zeros(len(pts), dtype=bool)
        frontier[int(self.start[1] // h) * nx + int(self.start[0] // h)] = True
        while frontier.any():
            reached |= frontier
            nxt = np.zeros(len(pts), dtype=bool)
            nxt[nbr[frontier].ravel()] = True
            frontier = nxt & free & ~reached
        for g, centre in self.goal_centres.items():
            if not reached[int(centre[1] // h) * nx + int(centre[0] // h)]:
                raise KeelError(f"goal_{g} cannot be reached from the start without entering a hazard; "
                                "move or remove hazards")


class RoomsContinuous(gym.Env):
    """The continuous rooms world, one copy. Observation: position (x, y); action: (dx, dy) / max_step.

    `task`: optionally a proposition; reaching it gives reward 1 and ends the episode.
    `start_noise`: the start is the centre of the start room plus uniform noise of this half-width.
    """

    metadata = {"render_modes": []}

    def __init__(self, n_rooms: int = 16, room_size: float = 8.0, door_width: float = 2.0,
                 max_step: float = 1.0, max_episode_steps: int = 200, task: str | None = None,
                 start_noise: float = 0.5, goals=None, hazards=None, start=None, render_mode=None):
        layout = get_layout(n_rooms)
        if goals is not None or hazards is not None or start is not None:
            layout = layout.with_changes(goals=goals, hazards=hazards, start=start)
        self.model = ContinuousModel(layout, room_size, door_width)
        if not 0 < max_step < room_size:
            raise KeelError(f"max_step must be in (0, room_size={room_size}), got {max_step}")
        if max_episode_steps < 1:
            raise KeelError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        if task is not None and task not in self.model.prop_index:
            raise KeelError(f"task {task!r} is not a proposition of this world; it has: "
                            f"{', '.join(self.model.propositions)}")
        if not 0 <= start_noise < room_size / 2 - 1:
            raise KeelError(f"start_noise must be in [0, {room_size / 2 - 1}), got {start_noise}")
        self.max_step, self.max_episode_steps, self.task = float(max_step), max_episode_steps, task
        self.start_noise = float(start_noise)
        hi = np.array([self.model.width, self.model.height], dtype=np.float32)
        self.observation_space = spaces.Box(np.zeros(2, dtype=np.float32), hi, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.render_mode = render_mode
        self.pos, self.t = self.model.start.copy(), 0

    # --- the proposition contract ---------------------------------------------------------------
    @property
    def propositions(self) -> frozenset[str]:
        return frozenset(self.model.propositions)

    def labels(self, state=None) -> frozenset[str]:
        """The propositions true now, or at position `state` (as from `get_state()`) when given."""
        return self.model.label_set(self.pos if state is None else np.asarray(state, dtype=float)[:2])

    def _next_pos(self, action) -> np.ndarray:
        a = np.clip(np.asarray(action, dtype=float).reshape(2), -1.0, 1.0)
        return self.model.move(self.pos, a * self.max_step)[0]

    def possible_labels_after(self, action) -> list[frozenset[str]]:
        return [self.model.label_set(self._next_pos(action))]

    def predicate_names(self) -> list[str]:
        return list(self.model.propositions)

    def predicate_value(self, name: str, state) -> float:
        if name not in self.model.prop_index:
            raise KeelError(f"unknown predicate {name!r}; this world has: {', '.join(self.model.propositions)}")
        return float(self.model.values(np.asarray(state, dtype=float)[:2])[0, self.model.prop_index[name]])

    def get_state(self) -> np.ndarray:
        return self.pos.copy()

    def set_state(self, state) -> None:
        state = np.asarray(state, dtype=float).ravel()
        self.pos = np.clip(state[:2], _EPS, [self.model.width - _EPS, self.model.height - _EPS])

    # --- Gymnasium ------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        return self.pos.astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.model.start + self.np_random.uniform(-self.start_noise, self.start_noise, 2)
        self.t = 0
        return self._obs(), {"labels": self.labels()}

    def step(self, action):
        self.pos = self._next_pos(action)
        self.t += 1
        labels = self.labels()
        reached = self.task is not None and self.task in labels
        truncated = self.t >= self.max_episode_steps and not reached
        return self._obs(), float(reached), reached, truncated, {"labels": labels}
