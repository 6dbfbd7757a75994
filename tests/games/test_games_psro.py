"""PSRO with exact best responses, its meta-solvers, and the PettingZoo adapter."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import KeelError
from keel.games import meta as meta_solvers
from keel.games.meta.common import project_simplex
from keel.games.psro import PSRO, run_psro
from keel.games.tree import GameTree

RPS = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=float)
RPS_M = np.stack([RPS, -RPS], axis=-1)


def test_nash_lp_solves_rock_paper_scissors():
    x, y = meta_solvers.get("nash")(RPS_M, 1)
    np.testing.assert_allclose(x, [1 / 3] * 3, atol=1e-8)
    np.testing.assert_allclose(y, [1 / 3] * 3, atol=1e-8)


@pytest.mark.parametrize("name", ["rm", "prd", "shor"])
def test_iterative_meta_solvers_approach_rps_equilibrium(name):
    x, y = meta_solvers.get(name)(RPS_M, 100)
    np.testing.assert_allclose(x, [1 / 3] * 3, atol=0.05)
    np.testing.assert_allclose(y, [1 / 3] * 3, atol=0.05)


def test_meta_solver_errors():
    with pytest.raises(KeelError, match="valid: uniform, nash, rm, prd, shor"):
        meta_solvers.get("alpharank")
    three = np.zeros((2, 2, 2, 3))
    with pytest.raises(KeelError, match="two-player zero-sum"):
        meta_solvers.get("nash")(three, 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=8), st.floats(0, 0.1))
def test_projection_lands_on_the_floored_simplex(y, floor):
    floor = floor / len(y)
    x = project_simplex(np.array(y), floor)
    assert x.sum() == pytest.approx(1.0)
    assert (x >= floor - 1e-12).all()


def test_psro_nash_solves_kuhn():
    out = run_psro("kuhn_poker", "nash", 12)
    curve = [c["exploitability"] for c in out["curve"]]
    assert curve[0] == pytest.approx(0.458333, abs=1e-5)  # the uniform start
    assert curve[-1] < 1e-6


@pytest.mark.parametrize("meta", ["uniform", "rm", "prd", "shor"])
def test_psro_meta_solvers_improve_on_uniform_play(meta):
    out = run_psro("kuhn_poker", meta, 8)
    assert out["exploitability"] < 0.2 < out["curve"][0]["exploitability"]


def test_mixed_policy_is_realisation_equivalent():
    """The behaviour policy of a mixture earns what the mixture earns against any opponent."""
    tree = GameTree.build("kuhn_poker")
    psro = PSRO(tree, "uniform")
    for _ in range(3):
        psro.step()
    w = np.array([0.1, 0.2, 0.3, 0.4])
    mixes = [w, np.array([1.0, 0, 0, 0])]
    sigma = psro.mixed_policy(mixes)
    M = psro.payoff_tensor()
    assert tree.expected_utility(sigma)[0] == pytest.approx(float(w @ M[:, 0, 0]), abs=1e-12)


def test_psro_three_players():
    out = run_psro("kuhn_poker(players=3)", "rm", 4)
    assert out["exploitability"] < out["curve"][0]["exploitability"]


@pytest.mark.parametrize(
    "game", ["kuhn_poker", "leduc_poker", "goofspiel(num_cards=3)", "kuhn_poker(players=3)"]
)
def test_pettingzoo_adapter_passes_api_test(game):
    from pettingzoo.test import api_test

    from keel.games.pettingzoo_env import env

    api_test(env(game), num_cycles=100)


def test_pettingzoo_rewards_are_game_returns():
    from keel.games.pettingzoo_env import env

    e = env("kuhn_poker")
    e.reset(seed=3)
    total = {a: 0.0 for a in e.possible_agents}
    for agent in e.agent_iter():
        obs, reward, term, trunc, _ = e.last()
        total[agent] += reward
        e.step(None if term or trunc else int(np.flatnonzero(obs["action_mask"])[0]))
    assert sum(total.values()) == pytest.approx(0.0) and max(abs(v) for v in total.values()) >= 1
