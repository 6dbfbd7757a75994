"""Keel's CFR family against OpenSpiel: same trees, same numbers."""

import numpy as np
import pytest
from open_spiel.python.algorithms import cfr, discounted_cfr, exploitability

from keel.errors import KeelError
from keel.games import algorithms
from keel.games.cfr import make_solver, solve
from keel.games.exploitability import nash_conv
from keel.games.tree import GameTree


@pytest.fixture(scope="module")
def kuhn():
    return GameTree.build("kuhn_poker")


@pytest.fixture(scope="module")
def leduc():
    return GameTree.build("leduc_poker")


def test_tree_shape(kuhn):
    assert kuhn.num_nodes == 58 and kuhn.num_isets == 12 and kuhn.num_slots == 24
    # Every player's slots are contiguous and cover all slots once.
    assert kuhn.slot_start.tolist() == [0, 12, 24]


OPENSPIEL = {
    "cfr": cfr.CFRSolver,
    "cfr_plus": cfr.CFRPlusSolver,
    "lcfr": discounted_cfr.LCFRSolver,
    "dcfr": discounted_cfr.DCFRSolver,
}


@pytest.mark.parametrize("algo", list(OPENSPIEL))
def test_matches_openspiel_solver_on_kuhn(kuhn, algo):
    mine, theirs = make_solver(kuhn, algo), OPENSPIEL[algo](kuhn.game)
    for _ in range(60):
        mine.iteration()
        theirs.evaluate_and_update_policy()
    a = exploitability.exploitability(kuhn.game, theirs.average_policy())
    b = nash_conv(kuhn, mine.average_policy())["exploitability"]
    assert b == pytest.approx(a, rel=1e-9)
    np.testing.assert_allclose(mine.average_policy(), kuhn.from_openspiel(theirs.average_policy()), atol=1e-9)


@pytest.mark.parametrize("algo", ["cfr_plus", "dcfr"])
def test_matches_openspiel_solver_on_leduc(leduc, algo):
    mine, theirs = make_solver(leduc, algo), OPENSPIEL[algo](leduc.game)
    for _ in range(3):
        mine.iteration()
        theirs.evaluate_and_update_policy()
    np.testing.assert_allclose(
        mine.average_policy(), leduc.from_openspiel(theirs.average_policy()), atol=1e-9
    )


@pytest.mark.parametrize("algo", algorithms.NAMES)
def test_every_solver_exploitability_cross_checked(kuhn, algo):
    out = solve(kuhn, algo, 200)
    sigma = out["solver"].average_policy()
    theirs = exploitability.exploitability(kuhn.game, kuhn.to_openspiel(sigma))
    assert out["exploitability"] == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert out["exploitability"] < 0.02  # all of them learn: uniform play is 0.458


@pytest.mark.parametrize(
    "spec", ["kuhn_poker(players=3)", "goofspiel(num_cards=3)", "liars_dice(dice_sides=2)"]
)
def test_nash_conv_cross_checked_on_other_games(spec):
    tree = GameTree.build(spec)
    out = solve(tree, "pcfr_plus", 30)
    sigma = out["solver"].average_policy()
    theirs = exploitability.nash_conv(tree.game, tree.to_openspiel(sigma))
    assert out["nash_conv"] == pytest.approx(theirs, rel=1e-7, abs=1e-10)


def test_best_response_of_random_policies_matches_openspiel(leduc):
    rng = np.random.default_rng(0)
    sigma = leduc.normalize(rng.random(leduc.num_slots) ** 3)
    theirs = exploitability.nash_conv(leduc.game, leduc.to_openspiel(sigma))
    assert nash_conv(leduc, sigma)["nash_conv"] == pytest.approx(theirs, rel=1e-9)


def test_cfr_plus_converges_to_kuhn_value(kuhn):
    out = solve(kuhn, "cfr_plus", 1000)
    assert out["exploitability"] < 1e-3
    assert kuhn.expected_utility(out["solver"].average_policy())[0] == pytest.approx(-1 / 18, abs=2e-3)


def test_simultaneous_and_alternating_differ_but_both_learn(kuhn):
    from keel.games.cfr import CFRSolver, parts_from_module

    sim = CFRSolver(kuhn, parts_from_module(algorithms.get("cfr")), alternating=False)
    alt = CFRSolver(kuhn, parts_from_module(algorithms.get("cfr")), alternating=True)
    for _ in range(200):
        sim.iteration()
        alt.iteration()
    p_sim, p_alt = sim.average_policy(), alt.average_policy()
    # the two schedules are different algorithms: after 200 iterations their average policies differ
    assert np.abs(p_sim - p_alt).max() > 1e-3
    assert not np.allclose(sim.R, alt.R)  # the cumulative regrets too
    assert nash_conv(kuhn, p_sim)["exploitability"] < 0.02
    assert nash_conv(kuhn, p_alt)["exploitability"] < 0.02


def test_bad_inputs_are_clear_errors():
    with pytest.raises(KeelError, match="unknown game 'kuhn_pokr'.*kuhn_poker"):
        GameTree.build("kuhn_pokr")
    with pytest.raises(KeelError, match="Parameters of kuhn_poker: players"):
        GameTree.build("kuhn_poker(cards=3)")
    with pytest.raises(KeelError, match="valid: cfr, cfr_plus"):
        algorithms.get("cfr++x")
    with pytest.raises(KeelError, match="unknown parameter 'zeta'; valid: alpha, beta, gamma"):
        make_solver(GameTree.build("kuhn_poker"), "dcfr", {"zeta": 1.0})
    with pytest.raises(KeelError, match="over the limit of 100"):
        GameTree.build("leduc_poker", max_nodes=100)


def test_sequential_regret_order_also_matches_openspiel(kuhn):
    mine, theirs = make_solver(kuhn, "cfr_plus", sequential_regrets=True), OPENSPIEL["cfr_plus"](kuhn.game)
    for _ in range(60):
        mine.iteration()
        theirs.evaluate_and_update_policy()
    np.testing.assert_allclose(mine.average_policy(), kuhn.from_openspiel(theirs.average_policy()), atol=1e-12)
