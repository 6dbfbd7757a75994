"""Load an OpenSpiel game from its load string, with errors a user can act on."""

from __future__ import annotations

import difflib
import re

from keel.errors import KeelError

# Guard against trees that would not fit in memory: tabular solvers walk every history.
MAX_NODES = 3_000_000
ESTIMATE_SAMPLES = 200


def estimate_histories(game, samples: int = ESTIMATE_SAMPLES, seed: int = 0) -> float:
    """Knuth's estimator of tree size (Knuth 1975, "Estimating the efficiency of backtrack programs"):
    along one uniformly random root-to-leaf path, the product of the branching factors up to depth d is
    an unbiased estimate of the number of histories at depth d; their sum estimates the tree size. The
    mean over `samples` paths costs samples x depth steps, so a game far too big to build (goofspiel's
    default 13 cards: ~1e20 histories) is refused in milliseconds instead of filling memory."""
    import random

    rng = random.Random(seed)
    total = 0.0
    for _ in range(samples):
        state, weight, size = game.new_initial_state(), 1.0, 1.0
        while not state.is_terminal():
            if state.is_chance_node():
                actions = [a for a, p in state.chance_outcomes() if p > 0]
            else:
                actions = state.legal_actions(state.current_player())
            weight *= len(actions)
            size += weight
            if size > 1e30:
                break
            state = state.child(rng.choice(actions))
        total += size
    return total / samples


def check_size(game, spec: str, max_nodes: int = MAX_NODES) -> float:
    """Refuse, before building anything, a game whose estimated tree is well over `max_nodes` histories."""
    est = estimate_histories(game)
    if est > 2 * max_nodes:
        raise KeelError(
            f"{spec!r} has about {est:.2g} histories (estimated), over the limit of {max_nodes:,} that "
            "tabular solvers can hold in memory; pick a smaller variant, e.g. goofspiel(num_cards=4), "
            "leduc_poker, or fewer players"
        )
    return est


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
