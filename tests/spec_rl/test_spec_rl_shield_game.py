"""The safety-game shield of the product world under slip (Alshiekh et al. 2018), against one-step lookahead."""

import numpy as np
import pytest

from keel.errors import KeelError
from keel.rl.product import build_world
from keel.rl.product_env import evaluate_policy
from keel.rl.qrm import QRMConfig, QRMLearner

REACH_AVOID = "F(goal_a & F goal_b) & G !hazard"
# Two L-shaped hazard pairs: the cell in each corner is entered safely one step ahead, yet from it every
# action may slip into a hazard (a trap only the safety game sees coming).
TRAPS = [[[1, 0], [0.2, 0.5]], [[1, 0], [0.34, 0.34]], [[1, 1], [0.2, 0.5]], [[1, 1], [0.34, 0.34]]]


def world(slip=0.1, slip_mode="sideways", solver="game", **kw):
    args = dict(n_rooms=9, room_size=6, formula=REACH_AVOID, slip=slip, max_episode_steps=100, random_start=True,
                gamma=0.99, shaping=True, slip_mode=slip_mode, shield_solver=solver)
    return build_world(**{**args, **kw})


def test_game_shield_allows_no_action_from_which_slip_can_reach_a_hazard():
    w = world(slip=0.1)
    m, t = w.model, w.tables
    outcomes = m.outcome_cells(np.arange(m.n_cells), w.slip, "sideways")  # [C, A, K]
    checked = 0
    for u in np.flatnonzero(~t.terminal):
        for c in np.flatnonzero(w.winning[u]):
            for a in np.flatnonzero(w.safe[u, c]):
                c2 = outcomes[c, a]
                u2 = t.next_u[u, c2]
                assert not t.dead[u2].any(), (u, c, a)  # no slip of an allowed action violates now ...
                assert (w.winning[u2, c2] | t.accepting[u2]).all()  # ... nor leaves the winning region
                checked += 1
    assert checked > 1000
    # every start cell is winning and keeps at least one action
    assert w.winning[t.initial, w.start_cells].all() and w.safe[t.initial, w.start_cells].any(axis=1).all()


def test_one_step_shield_under_uniform_slip_lets_the_agent_step_into_hazards_and_the_game_refuses():
    # What the one-step shield did at slip 0.1 in the 16-rooms grid: next to a hazard every action has
    # the same possible outcomes, none is "safe", so all are allowed, including the move into the hazard.
    w = build_world(16, 5, REACH_AVOID, 0.1, 400, True, 0.99, True, shield_solver="one_step", check_start=False)
    m, u0 = w.model, w.tables.initial
    hazard = m.labels[:, m.prop_index["hazard"]]
    into = [(c, a) for c in range(m.n_cells) for a in range(5)
            if not hazard[c] and hazard[m.next_cell[c, a]] and w.safe[u0, c, a]]
    assert len(into) == 32
    # Under uniform slip a reachable hazard can always be forced: no winning start, said before training.
    with pytest.raises(KeelError, match="winning region.*slip_mode: sideways"):
        build_world(16, 5, REACH_AVOID, 0.1, 400, True, 0.99, True)
    # ... and with sideways slip the game shield allows none of those moves
    g = build_world(16, 5, REACH_AVOID, 0.1, 400, True, 0.99, True, slip_mode="sideways")
    assert not any(g.safe[u0, c, a] for c, a in into if g.winning[u0, c])


def test_one_step_misses_the_trap_the_game_avoids():
    one, game = world(solver="one_step", hazards=TRAPS), world(solver="game", hazards=TRAPS)
    m, u0 = game.model, game.tables.initial
    traps = [c for c in range(m.n_cells) if not game.winning[u0, c] and not m.labels[c, m.prop_index["hazard"]]]
    assert traps  # the corner cells
    enter = [(c, a) for c in range(m.n_cells) for a in range(5) if m.next_cell[c, a] in traps and c not in traps]
    assert any(one.safe[u0, c, a] for c, a in enter)
    assert not any(game.safe[u0, c, a] for c, a in enter if game.winning[u0, c])


@pytest.mark.parametrize("shield", ["preemptive", "postposed"])
def test_random_exploration_under_slip_has_zero_violations_only_with_the_game_shield(shield):
    def violations(solver, shield):
        w = world(slip=0.3, solver=solver, hazards=TRAPS)
        learner = QRMLearner(w, QRMConfig(epsilon=1.0, epsilon_end=1.0), num_envs=16, seed=0, shield=shield)
        while learner.env_steps < 30_000:
            learner.train_step()
        ev = evaluate_policy(w, learner.policy(), 50, seed=2, shield=shield)
        return learner.counters().violations, ev["violations_eval"]

    assert violations("game", shield) == (0, 0)
    assert sum(violations("game", "none")) > 0  # the same random agent unshielded violates
    assert violations("one_step", shield)[0] > 0  # and so it does under one-step lookahead


def test_shield_tables_are_computed_once_per_world_and_spec():
    a, b = world(), world()
    assert a.safe is b.safe and a.winning is b.winning
    assert not a.safe.flags.writeable
    assert world(solver="one_step").safe is not a.safe
