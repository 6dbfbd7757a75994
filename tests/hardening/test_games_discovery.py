"""`keel games` and `keel discover`: oversized games refused before they fill memory; ranges checked."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import refused


@pytest.mark.parametrize("command", ["info", "solve"])
@pytest.mark.parametrize("game", ["goofspiel", "liars_dice(numdice=2)"])
def test_huge_games_are_refused_before_building(keel, command, game):
    out = keel("games", command, game)
    refused(out, "histories", "limit")


def test_size_estimate_is_close_on_small_games():
    from keel.games.load import estimate_histories, load_game
    from keel.games.tree import GameTree

    for spec in ["kuhn_poker", "leduc_poker", "goofspiel(num_cards=4)"]:
        true = GameTree.build(spec).stats()["histories"]
        assert 0.5 * true < estimate_histories(load_game(spec)) < 2 * true


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_params_must_be_finite(keel, value):
    refused(keel("games", "solve", "kuhn_poker", "--iters", "2", "--param", f"alpha={value}"), "finite")


@pytest.mark.parametrize("args", [["--cpu-seconds", "0"], ["--cpu-seconds", "-5"], ["--memory-mb", "-100"],
                                  ["--population", "0"], ["--iters", "-1"]])
def test_discover_ranges(keel, tmp_path, args):
    out = keel("discover", "cfr", "--generations", "1", "--db", str(tmp_path / "d.sqlite"), *args)
    assert out.code == 2 and not out.traceback, (out.code, out.exception, out.output[-300:])
    assert not (tmp_path / "d.sqlite").exists()


@pytest.mark.parametrize("args", [["--iters", "0"], ["--iters", "-3"]])
def test_games_iteration_ranges(keel, args):
    out = keel("games", "solve", "kuhn_poker", *args)
    assert out.code == 2 and not out.traceback
