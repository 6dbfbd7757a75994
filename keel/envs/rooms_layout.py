"""Room layouts of the 9-rooms and 16-rooms worlds of DiRL.

Jothimurugan, Bansal, Bastani, Alur. "Compositional Reinforcement Learning from Logical
Specifications", NeurIPS 2021. Their benchmark is a grid of square rooms in which some walls have a
door and others do not, so the agent must find the path through the doors. We fix one such layout
for 3x3 and one for 4x4 rooms (some walls without doors, every room reachable) and let users give
their own doors, goal rooms and hazards.

A layout is shared by the grid world (`rooms_grid.py`, `rooms_batched.py`) and the continuous one
(`rooms_continuous.py`), so both speak the same propositions:

    room_R_C   the agent is in room (row R, column C); row 0 is the top row
    door       the agent stands in a doorway (next to a door opening)
    goal_X     the agent is in goal region X (the centre of goal X's room)
    hazard     the agent is in a hazard (must be avoided)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from keel.errors import KeelError

Room = tuple[int, int]
Door = tuple[Room, Room]  # a pair of adjacent rooms, the smaller one first

_NAME = re.compile(r"[a-z][a-z0-9_]*$")


def _door(a: Room, b: Room) -> Door:
    return (a, b) if a <= b else (b, a)


def _doors(horizontal: Mapping[int, Iterable[int]], vertical: Mapping[int, Iterable[int]]) -> frozenset[Door]:
    """Doors from `{row: [c, ...]}` (door between (row, c) and (row, c+1)) and `{col: [r, ...]}`
    (door between (r, col) and (r+1, col))."""
    out = set()
    for r, cs in horizontal.items():
        out.update(_door((r, c), (r, c + 1)) for c in cs)
    for c, rs in vertical.items():
        out.update(_door((r, c), (r + 1, c)) for r in rs)
    return frozenset(out)


@dataclass(frozen=True)
class Layout:
    """Rooms on an `n_rows x n_cols` grid, doors between some adjacent rooms, named goal rooms, hazards.

    `hazards` are given per room as local positions in [0, 1) x [0, 1) (row fraction, column fraction):
    each world places its hazard cells / discs there, so the same layout means the same thing in the
    grid and in the continuous world.
    """

    n_rows: int
    n_cols: int
    doors: frozenset[Door]
    goals: Mapping[str, Room] = field(default_factory=dict)
    hazards: tuple[tuple[Room, tuple[float, float]], ...] = ()
    start: Room = (0, 0)

    def __post_init__(self) -> None:
        if self.n_rows < 1 or self.n_cols < 1:
            raise KeelError(f"a rooms layout needs at least 1x1 rooms, got {self.n_rows}x{self.n_cols}")
        for a, b in self.doors:
            for room in (a, b):
                self.check_room(room, "door")
            if abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1:
                raise KeelError(f"door {a}-{b}: a door joins two rooms that share a wall")
        for name, room in self.goals.items():
            if not _NAME.match(name):
                raise KeelError(f"goal name {name!r} must be a lowercase identifier like 'a' or 'kitchen'")
            self.check_room(room, f"goal_{name}")
        for room, (fy, fx) in self.hazards:
            self.check_room(room, "hazard")
            if not (0.0 <= fy < 1.0 and 0.0 <= fx < 1.0):
                raise KeelError(f"hazard in room {room}: local position ({fy}, {fx}) must lie in [0, 1) x [0, 1)")
        self.check_room(self.start, "start")

    def check_room(self, room: Room, what: str) -> None:
        r, c = room
        if not (0 <= r < self.n_rows and 0 <= c < self.n_cols):
            raise KeelError(
                f"{what}: room {tuple(room)} is outside the {self.n_rows}x{self.n_cols} rooms "
                f"(rows 0..{self.n_rows - 1}, columns 0..{self.n_cols - 1})"
            )

    def has_door(self, a: Room, b: Room) -> bool:
        return _door(a, b) in self.doors

    @property
    def rooms(self) -> list[Room]:
        return [(r, c) for r in range(self.n_rows) for c in range(self.n_cols)]

    @property
    def propositions(self) -> list[str]:
        """Every proposition, in a fixed order (the column order of label matrices)."""
        rooms = [f"room_{r}_{c}" for r, c in self.rooms]
        goals = [f"goal_{g}" for g in sorted(self.goals)]
        return rooms + ["door"] + goals + ["hazard"]

    def with_changes(
        self,
        goals: Mapping[str, Iterable[int]] | None = None,
        hazards: Iterable | None = None,
        start: Iterable[int] | None = None,
    ) -> Layout:
        """This layout with other goal rooms, hazards or start room (user overrides)."""
        return Layout(
            self.n_rows,
            self.n_cols,
            self.doors,
            {k: _room(v, f"goal_{k}") for k, v in goals.items()} if goals is not None else self.goals,
            tuple(_hazard(h) for h in hazards) if hazards is not None else self.hazards,
            _room(start, "start") if start is not None else self.start,
        )


def _room(v: Iterable[int], what: str) -> Room:
    try:
        r, c = (int(x) for x in v)
    except (TypeError, ValueError):
        raise KeelError(f"{what}: a room is given as [row, column], got {v!r}") from None
    return (r, c)


def _hazard(h) -> tuple[Room, tuple[float, float]]:
    try:
        room, (fy, fx) = h
        return _room(room, "hazard"), (float(fy), float(fx))
    except (TypeError, ValueError):
        raise KeelError(
            f"hazard {h!r}: give each hazard as [[row, column], [y_fraction, x_fraction]], "
            "e.g. [[1, 1], [0.2, 0.2]]"
        ) from None


# --- the two DiRL worlds ----------------------------------------------------------------------------
# Some walls have no door, so the shortest path between two rooms is often not the straight one.

NINE_ROOMS = Layout(
    3,
    3,
    _doors(horizontal={0: [0], 1: [0, 1], 2: [1]}, vertical={0: [0, 1], 1: [1], 2: [0, 1]}),
    goals={"a": (0, 2), "b": (2, 2), "c": (2, 0)},
    hazards=(((1, 1), (0.2, 0.2)), ((1, 1), (0.7, 0.7)), ((1, 2), (0.2, 0.7)), ((2, 1), (0.7, 0.2))),
)

SIXTEEN_ROOMS = Layout(
    4,
    4,
    _doors(
        horizontal={0: [0, 2], 1: [0, 1, 2], 2: [1], 3: [0, 1, 2]},
        vertical={0: [0, 2], 1: [1], 2: [0, 2], 3: [1, 2]},
    ),
    goals={"a": (0, 3), "b": (3, 3), "c": (3, 0)},
    hazards=(
        ((0, 1), (0.7, 0.2)),
        ((1, 1), (0.2, 0.2)),
        ((1, 1), (0.7, 0.7)),
        ((1, 2), (0.2, 0.7)),
        ((1, 2), (0.7, 0.2)),
        ((2, 2), (0.2, 0.7)),
        ((3, 2), (0.7, 0.7)),
        ((2, 3), (0.2, 0.2)),
    ),
)

LAYOUTS = {9: NINE_ROOMS, 16: SIXTEEN_ROOMS}


def get_layout(n_rooms: int) -> Layout:
    if n_rooms not in LAYOUTS:
        raise KeelError(f"rooms world with {n_rooms} rooms is not defined; choose one of {sorted(LAYOUTS)}")
    return LAYOUTS[n_rooms]
