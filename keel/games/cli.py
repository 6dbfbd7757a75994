"""`keel games`: solve OpenSpiel games with the CFR family, or run PSRO."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from keel.cliutil import JSON_HELP, emit
from keel.errors import KeelError

app = typer.Typer(
    help="Equilibrium learning in imperfect-information games: CFR family, PSRO.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _params(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise KeelError(f"--param {item!r}: write NAME=VALUE, e.g. --param alpha=1.5")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise KeelError(f"--param {item!r}: the value must be a number") from None
        if not math.isfinite(out[k.strip()]):
            raise KeelError(f"--param {item!r}: the value must be a finite number (not nan or inf)")
    return out


@app.command()
def solve(
    game: Annotated[
        str, typer.Argument(help="OpenSpiel load string, e.g. kuhn_poker or 'leduc_poker(players=3)'")
    ],
    algo: Annotated[
        str, typer.Option(help="cfr, cfr_plus, lcfr, dcfr, pcfr_plus, dpcfr_plus, vad_cfr")
    ] = "cfr_plus",
    iters: Annotated[int, typer.Option(help="Iterations", min=1, max=10_000_000)] = 1000,
    param: Annotated[
        list[str] | None, typer.Option(help="Algorithm constant NAME=VALUE, e.g. alpha=1.5")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a CFR-family solver; print the exploitability curve of its average policy."""
    from keel.games import algorithms
    from keel.games.cfr import solve as run_solve
    from keel.games.tree import GameTree
    from keel.progress import progress_bar

    algorithms.get(algo)
    params = _params(param)
    tree = GameTree.build(game)
    with progress_bar(as_json) as bar:
        task = bar.add_task(f"{algo} on {game}", total=iters, info="")
        out = run_solve(tree, algo, iters, params, progress=lambda t: bar.update(task, completed=t))
    out.pop("solver")
    out.pop("tree")
    out.update(tree.stats())
    out["params"] = params
    if not as_json:
        out = {k: v for k, v in out.items() if k != "curve"} | {
            "curve": ", ".join(f"{c['iteration']}:{c['exploitability']:.3g}" for c in out["curve"])
        }
    emit(out, as_json, title=f"{algo} on {game}")


@app.command()
def psro(
    game: Annotated[str, typer.Argument(help="OpenSpiel load string, e.g. kuhn_poker")],
    meta: Annotated[str, typer.Option(help="Meta-solver: uniform, nash, rm, prd, shor")] = "nash",
    iters: Annotated[int, typer.Option(help="PSRO iterations (one best response per player each)", min=1, max=10_000)] = 20,
    oracle: Annotated[
        str, typer.Option(help="Best responses: exact, or ppo (trained in the PettingZoo env)")
    ] = "exact",
    ppo_steps: Annotated[int, typer.Option(help="PPO environment steps per best response", min=1)] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (PPO oracle)")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """PSRO with exact or PPO best responses; print the exploitability of the meta-strategy per iteration."""
    from keel.games import meta as meta_solvers
    from keel.games.psro import run_psro
    from keel.progress import progress_bar

    meta_solvers.get(meta)
    with progress_bar(as_json) as bar:
        task = bar.add_task(f"PSRO-{meta} on {game}", total=iters, info="")
        out = run_psro(
            game,
            meta,
            iters,
            progress=lambda t: bar.update(task, completed=t),
            oracle=oracle,
            ppo_steps=ppo_steps,
            seed=seed,
        )
    if not as_json:
        out["curve"] = ", ".join(f"{c['iteration']}:{c['exploitability']:.3g}" for c in out["curve"])
    emit(out, as_json, title=f"PSRO-{meta} on {game}")


@app.command()
def info(
    game: Annotated[str, typer.Argument(help="OpenSpiel load string")], as_json: JsonOpt = False
) -> None:
    """Size of a game's tree: histories, information sets, actions, depth."""
    from keel.games.tree import GameTree

    emit(GameTree.build(game).stats(), as_json, title=game)
