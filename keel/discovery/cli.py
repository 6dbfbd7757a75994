"""`keel discover`: evolve CFR variants (the three parts) and score them on held-out games."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cliutil import JSON_HELP, emit
from keel.errors import KeelError

app = typer.Typer(
    help="Discover multi-agent learning algorithms by evolving their code.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _games(text: str) -> list[str]:
    """Comma-separated game strings; commas inside parentheses belong to the game."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return [g for g in out if g]


@app.command()
def cfr(
    train: Annotated[
        str, typer.Option(help="Training games, comma-separated, e.g. 'kuhn_poker,goofspiel(num_cards=3)'")
    ],
    test: Annotated[str, typer.Option(help="Held-out games, comma-separated (empty: none)")] = "",
    validate: Annotated[
        str,
        typer.Option(
            help="Validation games: pick among the --finalists best on these (empty: best on train)"
        ),
    ] = "",
    finalists: Annotated[int, typer.Option(help="Discovered programs compared on the validation games")] = 5,
    generations: Annotated[
        int, typer.Option(help="Generations to run (resumes: existing ones are kept)")
    ] = 5,
    population: Annotated[int, typer.Option(help="Children evaluated per generation")] = 8,
    iters: Annotated[int, typer.Option(help="CFR iterations per training game (K in the fitness)")] = 200,
    test_iters: Annotated[int, typer.Option(help="Iterations on the held-out games")] = 1000,
    db: Annotated[
        str, typer.Option(help="Population database (SQLite); reuse it to resume")
    ] = "runs/discover-cfr.sqlite",
    mutator: Annotated[
        str, typer.Option(help="program (offline), llm (OpenAI-compatible endpoint) or smollm2")
    ] = "program",
    llm_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible API, e.g. http://localhost:8000/v1")
    ] = None,
    llm_model: Annotated[str, typer.Option(help="Model name sent to the endpoint")] = "default",
    seeds: Annotated[str, typer.Option(help="Initial programs (algorithm names)")] = "cfr,cfr_plus,lcfr,dcfr",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    cpu_seconds: Annotated[int, typer.Option(help="CPU-time limit per candidate")] = 120,
    memory_mb: Annotated[int, typer.Option(help="Extra address space per candidate (MiB)")] = 1024,
    as_json: JsonOpt = False,
) -> None:
    """Evolve CFR variants on --train games; report the best one's code and its held-out exploitability."""
    from keel.discovery.search import SearchConfig, run_search
    from keel.games import algorithms
    from keel.progress import progress_bar

    seed_names = [s.strip() for s in seeds.split(",") if s.strip()]
    for s in seed_names:
        algorithms.get(s)
    if mutator not in ("program", "llm", "smollm2"):
        raise KeelError(f"unknown --mutator {mutator!r}; valid: program, llm, smollm2")
    cfg = SearchConfig(
        train=_games(train),
        test=_games(test),
        generations=generations,
        population=population,
        iters=iters,
        test_iters=test_iters,
        seeds=seed_names,
        mutator=mutator,
        llm_url=llm_url,
        llm_model=llm_model,
        seed=seed,
        validate=_games(validate) or None,
        finalists=finalists,
        cpu_seconds=cpu_seconds,
        memory_mb=memory_mb,
    )
    from keel.games.load import load_game

    for g in cfg.train + cfg.test + (cfg.validate or []):
        load_game(g)  # fail fast on a bad game name before any work
    with progress_bar(as_json) as bar:
        task = bar.add_task("discover cfr", total=max(1, generations * population), info="")
        out = run_search(cfg, db, progress=lambda d, t: bar.update(task, completed=d, total=max(t, 1)))
    if not as_json:
        from keel.cliutil import console

        console.print(out["code"], highlight=False, markup=False)
        test = out.get("test", {})
        out = {
            k: out[k] for k in ("db", "best_id", "best_fitness", "best_mutation", "evaluated", "ok", "failed")
        }
        out["held-out mean exploitability"] = test.get("mean")
        out["best beats"] = test.get("best_beats")
    emit(out, as_json, title="discover cfr")


@app.command()
def psro(
    train: Annotated[
        str, typer.Option(help="Training games, comma-separated, e.g. 'kuhn_poker,goofspiel(num_cards=3)'")
    ],
    test: Annotated[str, typer.Option(help="Held-out games, comma-separated (empty: none)")] = "",
    validate: Annotated[
        str,
        typer.Option(
            help="Validation games: pick among the --finalists best on these (empty: best on train)"
        ),
    ] = "",
    finalists: Annotated[int, typer.Option(help="Discovered programs compared on the validation games")] = 5,
    generations: Annotated[
        int, typer.Option(help="Generations to run (resumes: existing ones are kept)")
    ] = 5,
    population: Annotated[int, typer.Option(help="Children evaluated per generation")] = 8,
    iters: Annotated[int, typer.Option(help="PSRO iterations per training game (K in the fitness)")] = 15,
    test_iters: Annotated[int, typer.Option(help="PSRO iterations on the held-out games")] = 15,
    db: Annotated[
        str, typer.Option(help="Population database (SQLite); reuse it to resume")
    ] = "runs/discover-psro.sqlite",
    mutator: Annotated[
        str, typer.Option(help="program (offline), llm (OpenAI-compatible endpoint) or smollm2")
    ] = "program",
    llm_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible API, e.g. http://localhost:8000/v1")
    ] = None,
    llm_model: Annotated[str, typer.Option(help="Model name sent to the endpoint")] = "default",
    seeds: Annotated[str, typer.Option(help="Initial meta-solvers")] = "uniform,rm,prd,shor",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    cpu_seconds: Annotated[int, typer.Option(help="CPU-time limit per candidate")] = 120,
    memory_mb: Annotated[int, typer.Option(help="Extra address space per candidate (MiB)")] = 1024,
    as_json: JsonOpt = False,
) -> None:
    """Evolve PSRO meta-solvers on --train games; report the best one and its held-out exploitability."""
    from keel.discovery.search import SearchConfig, run_search
    from keel.games.load import load_game
    from keel.progress import progress_bar

    if mutator not in ("program", "llm", "smollm2"):
        raise KeelError(f"unknown --mutator {mutator!r}; valid: program, llm, smollm2")
    cfg = SearchConfig(
        train=_games(train),
        test=_games(test),
        generations=generations,
        population=population,
        iters=iters,
        test_iters=test_iters,
        seeds=[s.strip() for s in seeds.split(",") if s.strip()],
        mutator=mutator,
        llm_url=llm_url,
        llm_model=llm_model,
        seed=seed,
        validate=_games(validate) or None,
        finalists=finalists,
        cpu_seconds=cpu_seconds,
        memory_mb=memory_mb,
        kind="psro",
    )
    for g in cfg.train + cfg.test + (cfg.validate or []):
        load_game(g)
    with progress_bar(as_json) as bar:
        task = bar.add_task("discover psro", total=max(1, generations * population), info="")
        out = run_search(cfg, db, progress=lambda d, t: bar.update(task, completed=d, total=max(t, 1)))
    if not as_json:
        from keel.cliutil import console

        console.print(out["code"], highlight=False, markup=False)
        test = out.get("test", {})
        out = {
            k: out[k] for k in ("db", "best_id", "best_fitness", "best_mutation", "evaluated", "ok", "failed")
        }
        out["held-out mean exploitability"] = test.get("mean")
        out["best beats"] = test.get("best_beats")
    emit(out, as_json, title="discover psro")
