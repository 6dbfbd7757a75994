"""Shields: zero violations of the safety part under a random agent, given an exact one-step model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from keel.spec import PostPosedShield, PreemptiveShield, Shield, SpecError, compile_ltlf

MOVES = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]  # stay, up, down, left, right


class HazardGrid(gym.Env):
    """A 6x6 grid with hazard cells, a key cell and a door; with probability `slip` a move fails (stay).

    Propositions: hazard, key, door, goal. The one-step model lists every cell a move may lead to.
    (Slipping to *any* neighbour would leave no safe action next to a hazard: a one-step shield cannot
    help there; `Shield.solve` handles that with a full model, see test_spec_shield_game.)
    """

    metadata = {"render_modes": []}
    SIZE = 6
    HAZARDS = {(1, 1), (1, 2), (2, 4), (3, 1), (4, 3), (4, 4), (0, 4)}
    KEY, DOOR, GOAL = (5, 0), (0, 5), (5, 5)

    def __init__(self, slip: float = 0.2, horizon: int = 60):
        self.slip = slip
        self.horizon = horizon
        self.observation_space = gym.spaces.Box(0, self.SIZE - 1, shape=(2,), dtype=np.int64)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.propositions = frozenset({"hazard", "key", "door", "goal"})
        self.pos = (0, 0)
        self.t = 0

    def _move(self, pos, a):
        r, c = pos[0] + MOVES[a][0], pos[1] + MOVES[a][1]
        return (min(max(r, 0), self.SIZE - 1), min(max(c, 0), self.SIZE - 1))

    def _labels(self, pos) -> frozenset[str]:
        out = set()
        if pos in self.HAZARDS:
            out.add("hazard")
        if pos == self.KEY:
            out.add("key")
        if pos == self.DOOR:
            out.add("door")
        if pos == self.GOAL:
            out.add("goal")
        return frozenset(out)

    def labels(self) -> frozenset[str]:
        return self._labels(self.pos)

    def possible_labels_after(self, action: int) -> list[frozenset[str]]:
        cells = {self._move(self.pos, action)}
        if self.slip > 0:
            cells.add(self.pos)
        return sorted({self._labels(c) for c in cells}, key=sorted)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = (0, 0), 0
        return np.array(self.pos), {"labels": self.labels()}

    def step(self, action):
        a = int(action)
        if self.slip > 0 and self.np_random.random() < self.slip:
            a = 0
        self.pos = self._move(self.pos, a)
        self.t += 1
        return np.array(self.pos), 0.0, self.pos == self.GOAL, self.t >= self.horizon, {"labels": self.labels()}


def rollout(env, spec, steps: int, seed: int, use_mask: bool) -> tuple[int, int, int]:
    """Random agent; returns (violations seen by an independent monitor, overrides, episodes)."""
    rng = np.random.default_rng(seed)
    monitor = spec.monitor()
    obs, info = env.reset(seed=seed)
    violations = overrides = episodes = 0
    for _ in range(steps):
        if use_mask:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        else:
            action = int(rng.integers(env.action_space.n))
        obs, _, term, trunc, info = env.step(action)
        overrides += bool(info.get("shield_override", False))
        if monitor.step(info["labels"]).value == "violated":
            violations += 1
            monitor.reset()
        if term or trunc:
            episodes += 1
            monitor.reset()
            obs, info = env.reset()
    return violations, overrides, episodes


SAFETY = "G !hazard & (!door W key)"  # never a hazard; no door before the key


@pytest.fixture(scope="module")
def spec():
    return compile_ltlf(SAFETY, HazardGrid().propositions)


def test_unshielded_random_agent_violates(spec):
    violations, _, _ = rollout(HazardGrid(), spec, 3000, seed=0, use_mask=False)
    assert violations > 50


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_preemptive_shield_zero_violations(slip, spec):
    env = PreemptiveShield(HazardGrid(slip=slip), spec)
    violations, overrides, episodes = rollout(env, spec, 3000, seed=1, use_mask=True)
    assert violations == 0 and env.violations == 0
    assert overrides == 0  # the agent only picked from the mask
    assert episodes > 10


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_preemptive_shield_refuses_unsafe_actions(slip, spec):
    env = PreemptiveShield(HazardGrid(slip=slip), spec)
    violations, overrides, _ = rollout(env, spec, 3000, seed=2, use_mask=False)
    assert violations == 0 and env.violations == 0
    assert overrides > 0 and env.overrides == overrides


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_post_posed_shield_zero_violations(slip, spec):
    env = PostPosedShield(HazardGrid(slip=slip), spec)
    violations, overrides, _ = rollout(env, spec, 3000, seed=3, use_mask=False)
    assert violations == 0 and env.violations == 0
    assert overrides > 0


def test_functional_mask_next_to_hazard(spec):
    env = HazardGrid(slip=0.0)
    env.reset(seed=0)
    env.pos = (1, 0)  # hazard to the right (1,1), nothing else around
    shield = Shield(spec)
    mask = shield.safe_mask(shield.initial, env.possible_labels_after, env.action_space.n)
    assert mask.tolist() == [True, True, True, True, False]
    # Before the key, the door is as forbidden as a hazard; after it, allowed.
    env.pos = (1, 5)  # below the door
    q = shield.initial
    assert shield.safe_mask(q, env.possible_labels_after, 5)[1] is np.False_  # up = door
    q_key = shield.advance(q, {"key"})
    assert shield.safe_mask(q_key, env.possible_labels_after, 5)[1] is np.True_


def test_shield_refuses_bad_envs(spec):
    class Box(gym.Env):
        action_space = gym.spaces.Box(-1, 1, shape=(1,))
        observation_space = gym.spaces.Box(-1, 1, shape=(1,))

    with pytest.raises(SpecError, match="Discrete"):
        PreemptiveShield(Box(), spec)
    with pytest.raises(SpecError, match="unknown proposition"):
        PreemptiveShield(HazardGrid(), compile_ltlf("G !lava"))


PERPENDICULAR = {1: (3, 4), 2: (3, 4), 3: (1, 2), 4: (1, 2)}  # up/down slip sideways, left/right slip vertically


class SlipperyGrid(HazardGrid):
    """Four moves (no stay); with probability `slip` a move goes sideways instead. Cell (2, 1) sits between
    hazards (1, 1) and (3, 1): every move from it may end in a hazard, yet entering it from (2, 0) is
    safe one step ahead. Only the safety game (`Shield.solve`) sees that trap coming."""

    def __init__(self, slip: float = 0.3, horizon: int = 80):
        super().__init__(slip, horizon)
        self.action_space = gym.spaces.Discrete(4)

    def _outcomes(self, pos, action: int) -> list[tuple[int, int]]:
        move = action + 1  # index into MOVES, skipping stay
        return [self._move(pos, move), *(self._move(pos, m) for m in PERPENDICULAR[move])]

    def step(self, action):
        intended, *sideways = self._outcomes(self.pos, int(action))
        self.pos = sideways[int(self.np_random.integers(2))] if self.np_random.random() < self.slip else intended
        self.t += 1
        return np.array(self.pos), 0.0, self.pos == self.GOAL, self.t >= self.horizon, {"labels": self.labels()}

    def possible_labels_after(self, action):
        return sorted({self._labels(c) for c in self._outcomes(self.pos, int(action))}, key=sorted)

    def model(self):
        cells = [(r, c) for r in range(self.SIZE) for c in range(self.SIZE)]
        index = {cell: i for i, cell in enumerate(cells)}
        outcomes = np.array([[[index[x] for x in self._outcomes(cell, a)] for a in range(4)] for cell in cells])
        return [self._labels(c) for c in cells], outcomes, index


def test_safety_game_shield_zero_violations_where_one_step_fails(spec):
    env = SlipperyGrid(slip=0.3, horizon=80)
    labels, outcomes, index = env.model()
    table = Shield(spec).solve(labels, outcomes)
    q0 = spec.dfa.initial
    assert table.winning[q0, index[(0, 0)]]
    assert not table.winning[q0, index[(2, 1)]]  # the trap between two hazards
    assert not table.safe[q0, index[(2, 0)], 3]  # so moving right into it is refused
    one_step = Shield(spec).safe_mask(q0, lambda a: [labels[c] for c in outcomes[index[(2, 0)], a]], 4)
    assert one_step[3]  # ... which one step of lookahead allows
    rng = np.random.default_rng(0)
    violations = {"game": 0, "one_step": 0}
    for kind in violations:
        shield = Shield(spec)
        env.reset(seed=5)
        q = shield.initial
        for _ in range(4000):
            if kind == "game":
                mask = table.mask(q, index[env.pos])
            else:
                mask = shield.safe_mask(q, env.possible_labels_after, 4)
            _, _, term, trunc, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            q = shield.advance(q, info["labels"])
            if spec.dfa.is_dead(q) or term or trunc:
                violations[kind] += spec.dfa.is_dead(q)
                env.reset()
                q = shield.initial
    assert violations["game"] == 0
    assert violations["one_step"] > 0


def test_solve_refuses_bad_shapes(spec):
    with pytest.raises(SpecError, match="shape"):
        Shield(spec).solve([frozenset()] * 3, np.zeros((2, 5, 1)))
    with pytest.raises(SpecError, match="outside"):
        Shield(spec).solve([frozenset()] * 2, np.full((2, 5, 1), 7))


def test_shield_on_the_rooms_world():
    from keel.envs import rooms  # first-party: a broken import must fail here, not skip

    spec = compile_ltlf("F(goal_a & F goal_b) & G !hazard", rooms.RoomsGrid().propositions)
    rng = np.random.default_rng(0)
    for wrapper in (PreemptiveShield, PostPosedShield):
        env = wrapper(rooms.RoomsGrid(n_rooms=16, slip=0.0, max_episode_steps=100), spec)
        assert env.table is not None  # the grid offers its finite model: the safety game is solved
        obs, info = env.reset(seed=0)
        for _ in range(2000):
            action = rng.choice(np.flatnonzero(info["action_mask"])) if "action_mask" in info else rng.integers(5)
            obs, _, term, trunc, info = env.step(int(action))
            if term or trunc:
                obs, info = env.reset()
        assert env.violations == 0 and env.no_safe_action == 0
    assert env.overrides > 0  # the post-posed shield had work to do


@pytest.mark.parametrize("wrapper", [PreemptiveShield, PostPosedShield])
def test_game_shield_wrappers_on_the_slippery_rooms_world(wrapper):
    from keel.envs import rooms

    spec = compile_ltlf("G !hazard", rooms.RoomsGrid().propositions)
    env = wrapper(rooms.RoomsGrid(n_rooms=9, room_size=5, slip=0.3, slip_mode="sideways", max_episode_steps=200), spec)
    monitor_violations = 0
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=1)
    for _ in range(4000):  # a random agent the shield must keep safe whatever the slips do
        obs, _, term, trunc, info = env.step(int(rng.integers(5)))
        monitor_violations += "hazard" in info["labels"]
        if term or trunc:
            obs, info = env.reset()
    assert env.violations == 0 and monitor_violations == 0 and env.overrides > 0
    # uniform slip: a hazard the agent can reach can be forced on it; the shield says so at reset
    bad = wrapper(rooms.RoomsGrid(n_rooms=9, room_size=5, slip=0.3), spec)
    with pytest.raises(SpecError, match="winning region"):
        bad.reset(seed=0)
