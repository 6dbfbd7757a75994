"""Load an OpenSpiel game from its load string, with errors a user can act on."""

from __future__ import annotations

import difflib
import re

from keel.errors import KeelError

# Guard against trees that would not fit in memory: tabular solvers walk every history.
MAX_NODES = 3_000_000


def load_game(spec: str):
    """`kuhn_poker`, `leduc_poker(players=3)`, `goofspiel(num_cards=4)`, ... -> a sequential pyspiel game.

    Simultaneous-move games are converted to turn-based ones (what CFR needs)."""
    import pyspiel

    spec = spec.strip()
    m = re.fullmatch(r"([A-Za-z0-9_]+)(\((.*)\))?", spec)
    if not m:
        raise KeelError(
            f"cannot parse game {spec!r}: write NAME or NAME(param=value,...), e.g. leduc_poker(players=3)"
        )
    name = m.group(1)
    names = list(pyspiel.registered_names())
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeelError(f"unknown game {name!r}.{hint} Valid games: {', '.join(sorted(names))}")
    try:
        game = pyspiel.load_game(spec)
    except pyspiel.SpielError as e:
        msg = str(e).strip().splitlines()[0]
        params = sorted(pyspiel.load_game(name).get_parameters())
        raise KeelError(f"cannot load {spec!r}: {msg}. Parameters of {name}: {', '.join(params)}") from None
    gtype = game.get_type()
    if gtype.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
        game = pyspiel.convert_to_turn_based(game)
    elif gtype.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise KeelError(
            f"{spec!r} is a {gtype.dynamics} game; Keel's solvers need sequential or simultaneous games"
        )
    if gtype.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
        raise KeelError(
            f"{spec!r} has sampled chance (no explicit chance outcomes); pick a game with explicit chance"
        )
    return game
