"""The product of the grid rooms world and a spec's automaton: one owned abstraction for every learner.

Learners under a spec act in the product MDP (cell, automaton state u). This module owns everything
the product is made of, tabulated once per world and spec (in the grid every cell has a fixed label
set, so every table is indexed by [u, cell]):

    SpecWorld.tables    the reward machine as arrays (`MachineTables`; Toro Icarte et al., ICML 2018)
    SpecWorld.safe      the shield [u, cell, action] (Alshiekh et al., AAAI 2018): by default the
                        maximal winning region of the safety game of (world model x automaton),
                        `keel.spec.shield.Shield.solve`; `shield_solver="one_step"` keeps the old
                        one-step lookahead for comparison (it promises nothing under slip)
    SpecWorld.winning   the winning region [u, cell] of that game
    SpecWorld.observe   the observation of a product state (cell one-hot ++ automaton one-hot)
    SpecWorld.filter    the shield applied to a batch of choices (`keel.spec.shield.filter_actions`)

The shield table is computed once per (world, formula, slip, solver) in a process and reused; a start
state outside the winning region is refused before any training (`KeelError`). Stepping N copies is
`keel.rl.product_env`; learners are `keel.rl.qrm`, `keel.rl.dirl` and `keel.rl.ppo` (through
`keel.rl.spec_learners`), all behind `keel.rl.learner.Learner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from keel.errors import KeelError

SHIELDS = ("none", "preemptive", "postposed")
ShieldSolver = Literal["game", "one_step"]


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
    Machine states are the DFA's own numbers (0..U-1), so shield tables index the same way."""
    rm = spec.reward_machine(gamma=gamma, shaping=shaping)
    dfa = spec.dfa
    states = list(rm.states)
    if states != list(range(len(states))):
        raise AssertionError("reward machine states must be numbered 0..U-1 like the DFA's")
    distinct = sorted(set(cell_labels), key=lambda s: sorted(s))
    lid = {lab: i for i, lab in enumerate(distinct)}
    cell_lid = np.array([lid[lab] for lab in cell_labels], dtype=np.int64)
    U, L = len(states), len(distinct)
    nxt = np.zeros((U, L), dtype=np.int64)
    rew = np.zeros((U, L), dtype=np.float64)
    done = np.zeros((U, L), dtype=bool)
    for u in states:
        for lab, j in lid.items():
            nxt[u, j], rew[u, j], done[u, j] = rm.step(u, lab)
    accepting = np.array([dfa.is_accepting(u) for u in states])
    dead = np.array([dfa.is_dead(u) for u in states])
    return MachineTables(
        next_u=nxt[:, cell_lid], reward=rew[:, cell_lid], done=done[:, cell_lid], terminal=accepting | dead,
        accepting=accepting, dead=dead, initial=int(rm.initial),
        potential=np.array([rm.potential(u) if shaping else 0.0 for u in states]),
    )


@dataclass
class SpecWorld:
    model: object  # keel.envs.rooms_grid.GridModel
    spec: object  # keel.spec Spec
    formula: str
    tables: MachineTables
    safe: np.ndarray  # [U, C, A] True = the shield allows the action
    winning: np.ndarray  # [U, C] True = violations can be avoided for ever from here (the game's region)
    start_cells: np.ndarray  # cells an episode may start in
    slip: float
    max_episode_steps: int
    env_kwargs: dict
    shield_solver: str = "game"

    @property
    def n_cells(self) -> int:
        return self.model.n_cells

    @property
    def n_actions(self) -> int:
        return self.safe.shape[2]

    @property
    def num_states(self) -> int:
        return self.tables.num_states

    @property
    def obs_dim(self) -> int:
        return self.n_cells + self.num_states

    def observe(self, cells: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Observations of product states: cell one-hot ++ automaton-state one-hot, float32 [N, C + U]."""
        obs = np.zeros((len(cells), self.obs_dim), dtype=np.float32)
        rows = np.arange(len(cells))
        obs[rows, cells] = 1.0
        obs[rows, self.n_cells + u] = 1.0
        return obs

    def mask(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """The shield's allowed actions [N, A] in product states (u, cells)."""
        return self.safe[u, cells]

    def filter(self, mode: str, u: np.ndarray, cells: np.ndarray, scores: np.ndarray,
               chosen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(actions, overridden) under shield `mode`: `keel.spec.shield.filter_actions` on this world's table."""
        from keel.spec.shield import filter_actions

        return filter_actions(mode, self.mask(u, cells), scores, chosen)

    def make_venv(self, num_envs: int, seed: int):
        from keel.envs.rooms_batched import BatchedRooms

        venv = BatchedRooms(num_envs=num_envs, obs_mode="index", slip=self.slip,
                            max_episode_steps=self.max_episode_steps, **self.env_kwargs)
        venv.reset(seed=seed)
        return venv

    @property
    def slip_mode(self) -> str:
        return self.env_kwargs["slip_mode"]

    def next_cells(self, rng: np.random.Generator, cells: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Where `actions` take the agent from `cells` under this world's slip, drawn from `rng` (for
        learners that step rows of their own, like DiRL's rollouts; the same dynamics as BatchedRooms)."""
        from keel.envs.rooms_grid import SLIP_TO

        slipped = rng.random(len(cells)) < self.slip
        draw = rng.integers(SLIP_TO[self.slip_mode].shape[1], size=len(cells))
        return self.model.next_cell[cells, self.model.slip_actions(actions, slipped, draw, self.slip_mode)]

    def sample_starts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.start_cells[rng.integers(len(self.start_cells), size=n)]

    def initial_u(self, cells: np.ndarray) -> np.ndarray:
        """The automaton starts in its initial state; as in keel.spec's shields and reward machines, the
        labels of the reset state are not a step (each action's arrival state is)."""
        return np.full(len(cells), self.tables.initial, dtype=np.int64)


def build_world(n_rooms: int, room_size: int, formula: str, slip: float, max_episode_steps: int,
                random_start: bool, gamma: float, shaping: bool, goals=None, hazards=None,
                slip_mode: str = "uniform", shield_solver: ShieldSolver = "game",
                check_start: bool = True) -> SpecWorld:
    """The product world. `check_start`: refuse (KeelError) a start cell outside the shield's winning
    region, so a shielded run never starts where no shield can keep it safe."""
    from keel.envs.rooms_grid import check_common, make_model
    from keel.spec import compile_ltlf

    model = make_model(n_rooms, room_size, goals, hazards)
    check_common("index", slip, max_episode_steps, None, model.propositions, slip_mode)
    spec = compile_ltlf(formula, model.propositions)
    tables = machine_tables(spec, model.label_sets, gamma=gamma, shaping=shaping)
    if tables.terminal[tables.initial]:
        raise KeelError(f"the formula {formula!r} is already decided in the start state; give a task that needs "
                        "the agent to act")
    safe, winning = shield_tables(spec, model, slip, slip_mode, shield_solver)
    if random_start:  # anywhere in the start room that is not a hazard: greedy episodes then differ
        room = model.layout.start
        in_room = model.labels[:, model.prop_index[f"room_{room[0]}_{room[1]}"]]
        start_cells = np.flatnonzero(in_room & ~model.labels[:, model.prop_index["hazard"]])
    else:
        start_cells = np.array([model.start_cell])
    lost = start_cells[~winning[tables.initial, start_cells]]
    if check_start and len(lost):
        yx = ", ".join(str(tuple(int(v) for v in model.yx[c])) for c in lost[:4])
        more = "" if len(lost) <= 4 else f" and {len(lost) - 4} more"
        why = ("with uniform slip every action has the same possible outcomes, so any hazard the agent "
               "can reach at all can be forced on it; use env.slip_mode: sideways, or env.slip: 0"
               if slip > 0 and slip_mode == "uniform" else "move hazards away from the start room or lower env.slip")
        raise KeelError(f"{len(lost)} of {len(start_cells)} start cells (row, col) {yx}{more} are not in the winning "
                        f"region of the safety game of {formula!r} at slip {slip} ({slip_mode}): no shield can "
                        f"promise zero violations from there; {why} (or train with shield: none)")
    env_kwargs = {"n_rooms": n_rooms, "room_size": room_size, "goals": goals, "hazards": hazards,
                  "slip_mode": slip_mode}
    return SpecWorld(model, spec, formula, tables, safe, winning, start_cells, slip, max_episode_steps, env_kwargs,
                     shield_solver)


_SHIELD_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def shield_tables(spec, model, slip: float, slip_mode: str, solver: str) -> tuple[np.ndarray, np.ndarray]:
    """(safe [U, C, A], winning [U, C]) for the spec on the grid's finite model; once per process per
    (layout, formula, slip, solver): the tables are read-only, so every world built alike shares them.

    `outcomes[c, a]` lists every cell action a may lead to from c (with slip: every cell it may slip to),
    the adversary's choices in the safety game. In dead or accepting automaton states the agent never
    acts, so their rows allow everything.
    """
    from keel.spec.shield import Shield

    if solver not in ("game", "one_step"):
        raise KeelError(f"shield_solver must be 'game' or 'one_step', got {solver!r}")
    key = (repr(model.layout), model.k, spec.text, float(slip) > 0, slip_mode, solver)
    if key not in _SHIELD_CACHE:
        outcomes = model.outcome_cells(np.arange(model.n_cells), slip, slip_mode)  # [C, A, K]
        shield = Shield(spec)
        table = shield.solve(model.label_sets, outcomes, ends_on_accept=True) if solver == "game" else \
            shield.one_step_table(model.label_sets, outcomes)
        safe = table.safe.copy()
        terminal = np.array([spec.dfa.is_accepting(q) or spec.dfa.is_dead(q) for q in range(spec.dfa.num_states)])
        safe[terminal] = True
        # a lost pair (no action keeps the run winning): every action, as `ShieldTable.mask` does
        safe[~safe.any(axis=-1)] = True
        safe.flags.writeable = False
        winning = table.winning.copy()
        winning.flags.writeable = False
        _SHIELD_CACHE[key] = (safe, winning)
    return _SHIELD_CACHE[key]
