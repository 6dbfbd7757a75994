"""QRM, DiRL and the shields on small rooms grids (9 rooms of 3x3 cells)."""

import numpy as np
import pytest

from keel.rl.dirl import DiRLConfig, DiRLLearner
from keel.rl.learner import Learner
from keel.rl.product import build_world
from keel.rl.product_env import evaluate_policy
from keel.rl.qrm import QRMConfig, QRMLearner

REACH_AVOID = "F(goal_a & F goal_b) & G !hazard"


def world(formula=REACH_AVOID, **kw):
    args = dict(n_rooms=9, room_size=3, slip=0.0, max_episode_steps=100, random_start=True, gamma=0.99,
                shaping=True)
    return build_world(formula=formula, **{**args, **kw})


def train_qrm(w, steps, shield="preemptive", epsilon=0.2, seed=0):
    learner = QRMLearner(w, QRMConfig(epsilon=epsilon, epsilon_end=min(epsilon, 0.01)), num_envs=16, seed=seed,
                         shield=shield, decay_steps=steps)
    while learner.env_steps < steps:
        learner.train_step()
    return learner


def test_qrm_learns_reach_a_then_b_with_zero_violations():
    w = world()
    learner = train_qrm(w, 32_000)
    ev = evaluate_policy(w, learner.policy(), 100, seed=5, shield="preemptive")
    assert ev["satisfaction"] >= 0.9
    assert learner.stats.violations == 0 and ev["violations_eval"] == 0
    # an untrained agent does not satisfy the spec: the test measures learning
    fresh = train_qrm(w, 16)
    assert evaluate_policy(w, fresh.policy(), 100, seed=5, shield="preemptive")["satisfaction"] < 0.5


def test_counterfactual_updates_learn_every_machine_state_from_one_stream():
    # Real experience in u1 (goal_a already seen) starts at goal_a's room, far from the start room; yet
    # the greedy policy of u1 started in the START room reaches b, because every step taken in u0 there
    # also updated Q[u1] (counterfactually).
    w = world()
    learner = train_qrm(w, 32_000)
    u1 = int(w.tables.next_u[w.tables.initial, w.model.centre_cell(w.model.layout.goals["a"])])
    assert not w.tables.terminal[u1] and u1 != w.tables.initial
    Q = learner.agent.Q
    cell = int(w.start_cells[0])
    for _ in range(100):
        a = int(np.argmax(np.where(w.safe[u1, cell], Q[u1, cell], -np.inf)))
        cell = int(w.model.next_cell[cell, a])
        if w.tables.accepting[w.tables.next_u[u1, cell]]:
            break
    assert w.tables.accepting[w.tables.next_u[u1, cell]]


@pytest.mark.parametrize("shield", ["preemptive", "postposed"])
def test_shields_give_zero_violations_where_random_exploration_violates(shield):
    w = world()
    unshielded = train_qrm(w, 8_000, shield="none", epsilon=1.0)
    assert unshielded.stats.violations > 0  # a random walk does step on hazards here
    shielded = train_qrm(w, 8_000, shield=shield, epsilon=1.0)
    assert shielded.stats.violations == 0
    ev = evaluate_policy(w, shielded.policy(), 100, seed=3, shield=shield)
    assert ev["violations_eval"] == 0
    if shield == "postposed":
        assert shielded.stats.overrides > 0  # the random agent did pick unsafe actions; they were replaced


def test_dirl_picks_the_path_that_succeeds():
    # Two ways to finish: reach goal_b while staying in the start room (impossible: success 0), or
    # reach goal_a, then goal_c (both learnable). DiRL must estimate both and follow the second.
    w = world(formula="F goal_a & G !hazard")
    task = "(achieve goal_b ensuring room_0_0) or (achieve goal_a; achieve goal_c)"
    dirl = DiRLLearner(w, DiRLConfig(spectrl=task, rollouts=50), total_steps=60_000, num_envs=16, seed=0,
                       shield="preemptive")
    while not dirl.finished:
        dirl.train_step()
    assert dirl.env_steps <= 60_000  # every step counts against the budget, estimation rollouts too
    d = dirl.describe()
    by_reach = {e["reach"]: e for e in d["edges"]}
    impossible = next(e for r, e in by_reach.items() if "goal_b" in r)
    assert impossible["success"] == 0.0 and not impossible["on_path"]
    path_reaches = [str(dirl.graph.edges[e].reach) for e in d["path"]]
    assert len(path_reaches) == 2 and "goal_a" in path_reaches[0] and "goal_c" in path_reaches[1]
    assert all(dirl.success[e] >= 0.9 for e in d["path"])
    ev = evaluate_policy(w, dirl.policy(), 100, seed=1, shield="preemptive")
    assert ev["satisfaction"] >= 0.9 and ev["violations_eval"] == 0


@pytest.mark.parametrize("kind", ["qrm", "dirl"])
def test_state_dict_round_trip_continues_exactly(kind):
    import copy

    w = world()

    def make():
        if kind == "qrm":
            return QRMLearner(w, QRMConfig(), num_envs=8, seed=4, shield="postposed", decay_steps=8000)
        return DiRLLearner(w, DiRLConfig(spectrl="achieve goal_a; achieve goal_b", rollouts=10), total_steps=8000,
                           num_envs=8, seed=4, shield="postposed")

    a = make()
    assert isinstance(a, Learner)
    for _ in range(300):
        a.train_step()
    snap = copy.deepcopy(a.state_dict())
    for _ in range(400):
        if not a.finished:
            a.train_step()
    b = make()
    b.load_state_dict(copy.deepcopy(snap))
    for _ in range(400):
        if not b.finished:
            b.train_step()
    qa = a.agent.Q if kind == "qrm" else np.stack(a.Q)
    qb = b.agent.Q if kind == "qrm" else np.stack(b.Q)
    assert np.array_equal(qa, qb) and a.env_steps == b.env_steps
    assert a.stats.state() == b.stats.state()


def test_dirl_hands_on_the_states_where_rollouts_reached_the_target_and_counts_every_step():
    w = world(formula="F(goal_a & F goal_b) & G !hazard")
    budget = 40_000
    dirl = DiRLLearner(w, DiRLConfig(spectrl="achieve goal_a; achieve goal_b", rollouts=50), total_steps=budget,
                       num_envs=16, seed=1, shield="preemptive")
    steps = 0
    while not dirl.finished:
        before = dirl.env_steps
        dirl.train_step()
        assert dirl.env_steps > before  # each turn takes steps (estimation ones are counted too)
        steps += 1
    assert dirl.env_steps <= budget  # estimation rollouts are inside the budget, not on top of it
    assert steps * 16 < dirl.env_steps  # ... and they were counted: more steps than training turns alone
    assert len(dirl.D) == 3
    for v, (cells, us) in dirl.D.items():
        if v == dirl.graph.initial:
            continue
        e = dirl.parent[v]
        assert len(cells) > 0 and dirl.reach[e][cells].all()  # rollouts stopped where they reached the target
        assert not w.tables.dead[us].any()
