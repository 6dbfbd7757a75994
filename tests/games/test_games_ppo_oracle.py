"""The PPO best-response oracle: its Gymnasium env, the read-out per information set, and PSRO with it."""

import numpy as np
import pytest

from keel.games.exploitability import best_response, opponent_reach
from keel.games.pettingzoo_env import OpenSpielAEC
from keel.games.ppo_oracle import BestResponseEnv, ppo_best_response, tabular_opponent, tabularise
from keel.games.tree import GameTree


@pytest.fixture(scope="module")
def kuhn():
    return GameTree.build("kuhn_poker")


def test_best_response_env_passes_gymnasium_checks(kuhn):
    from gymnasium.utils.env_checker import check_env

    env = BestResponseEnv(
        lambda: OpenSpielAEC("kuhn_poker"), "player_1", tabular_opponent(kuhn, kuhn.uniform_policy(), seed=0)
    )
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert info["action_mask"].sum() == 2
    total, done = 0.0, False
    while not done:
        obs, r, done, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        total += r
    assert total in (-2.0, -1.0, 1.0, 2.0)


class _Greedy:
    """Stands in for a trained policy: always the last legal action."""

    def act(self, obs, mask=None, deterministic=False):
        return np.array([np.flatnonzero(m)[-1] for m in mask])


def test_tabularise_reads_one_action_per_information_set(kuhn):
    pure = tabularise(kuhn, 0, _Greedy())
    v = kuhn.views[0]
    assert pure.sum() == len(v.seg_start) and set(np.unique(pure)) <= {0.0, 1.0}
    assert (pure[v.seg_start + 1] == 1).all()  # kuhn: two actions, the last one is bet


@pytest.mark.slow
def test_ppo_best_response_reaches_the_exact_value(kuhn):
    sigma = kuhn.uniform_policy()
    pure = ppo_best_response(kuhn, 0, sigma, steps=8000)
    exact, _ = best_response(kuhn, 0, opponent_reach(kuhn, kuhn.reach(kuhn.edge_probs(sigma)), 0))
    s = sigma.copy()
    s[kuhn.views[0].lo : kuhn.views[0].hi] = pure
    assert kuhn.expected_utility(s)[0] >= exact - 0.05


@pytest.mark.slow
def test_psro_with_ppo_oracle_improves(kuhn):
    from keel.games.psro import run_psro

    out = run_psro(kuhn, "nash", 3, oracle="ppo", ppo_steps=4000)
    assert out["exploitability"] < out["curve"][0]["exploitability"]
