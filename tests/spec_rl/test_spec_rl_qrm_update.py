"""QRM's counterfactual update on a hand-made reward machine, checked number by number."""

import numpy as np

from keel.rl.qrm import QRM, MachineTables, QRMConfig

# A corridor of 3 cells (0 - 1 - 2), labels {} / {a} / {b}; machine: u0 --a--> u1 --b--> u2 (accepting).
# Actions: 0 = left, 1 = right.
CELL_LABELS = [frozenset(), frozenset({"a"}), frozenset({"b"})]


def hand_tables() -> MachineTables:
    delta = {0: {frozenset(): 0, frozenset({"a"}): 1, frozenset({"b"}): 0},
             1: {frozenset(): 1, frozenset({"a"}): 1, frozenset({"b"}): 2},
             2: {lab: 2 for lab in CELL_LABELS}}
    next_u = np.array([[delta[u][lab] for lab in CELL_LABELS] for u in range(3)])
    reward = np.array([[1.0 if (u != 2 and next_u[u, c] == 2) else 0.0 for c in range(3)] for u in range(3)])
    done = next_u == 2
    terminal = np.array([False, False, True])
    return MachineTables(next_u, reward, done, terminal, terminal.copy(), np.zeros(3, bool), initial=0)


def test_one_real_step_updates_every_machine_state_with_its_own_reward():
    cfg = QRMConfig(gamma=0.9, alpha=0.5, q_init=0.3)
    agent = QRM(hand_tables(), n_cells=3, n_actions=2, cfg=cfg)
    agent.Q[0, 2, :] = [0.2, 0.6]  # what u0 would bootstrap from in cell 2
    agent.update(np.array([1]), np.array([1]), np.array([2]), np.array([False]))
    # u1 in cell 1 moving right sees b: accepted, reward 1, no bootstrap
    assert np.isclose(agent.Q[1, 1, 1], 0.3 + 0.5 * (1.0 - 0.3))
    # u0 in cell 1 moving right sees b without a before: stays u0, reward 0, bootstraps from Q[u0, 2]
    assert np.isclose(agent.Q[0, 1, 1], 0.3 + 0.5 * (0.9 * 0.6 - 0.3))
    # nothing else moved; the terminal state keeps value 0
    untouched = np.ones_like(agent.Q, bool)
    untouched[1, 1, 1] = untouched[0, 1, 1] = False
    expected = np.full_like(agent.Q, 0.3)
    expected[2] = 0.0
    expected[0, 2] = [0.2, 0.6]
    assert np.allclose(agent.Q[untouched], expected[untouched])


def test_batched_update_equals_one_by_one_and_env_terminal_stops_bootstrap():
    cfg = QRMConfig(gamma=0.9, alpha=0.5, q_init=0.0)
    rng = np.random.default_rng(0)
    batched = QRM(hand_tables(), 3, 2, cfg)
    single = QRM(hand_tables(), 3, 2, cfg)
    batched.Q[:2] = single.Q[:2] = rng.random((2, 3, 2))
    old = batched.Q[0, 2, 0]
    c, a, c2 = np.array([0, 2]), np.array([1, 0]), np.array([1, 1])
    batched.update(c, a, c2, np.array([False, True]))
    for i in range(2):
        single.update(c[i:i + 1], a[i:i + 1], c2[i:i + 1], np.array([i == 1]))
    assert np.allclose(batched.Q, single.Q)
    # env 1 ended for the env's own reason: target is the reward alone (0 here)
    assert np.isclose(batched.Q[0, 2, 0], 0.5 * old)


def test_shield_mask_limits_both_acting_and_bootstrap():
    cfg = QRMConfig(gamma=1.0, alpha=1.0, q_init=0.0, epsilon=1.0)
    safe = np.ones((3, 3, 2), bool)
    safe[:, 1, 1] = False  # moving right from cell 1 is forbidden
    agent = QRM(hand_tables(), 3, 2, cfg, safe=safe)
    rng = np.random.default_rng(1)
    acts = agent.act(np.zeros(500, int), np.ones(500, int), rng, epsilon=1.0)
    assert set(acts.tolist()) == {0}
    agent.Q[1, 1] = [0.25, 5.0]  # u0 sees a and becomes u1; the unsafe action's value must not be bootstrapped from
    agent.update(np.array([0]), np.array([1]), np.array([1]), np.array([False]))
    assert np.isclose(agent.Q[0, 0, 1], 0.25)
