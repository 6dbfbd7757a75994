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


TrainOpt = Annotated[
    str, typer.Option(help="Training games, comma-separated, e.g. 'kuhn_poker,goofspiel(num_cards=3)'")
]
TestOpt = Annotated[str, typer.Option(help="Held-out games, comma-separated (empty: none)")]
ValidateOpt = Annotated[
    str,
    typer.Option(help="Validation games: pick among the --finalists best on these (empty: best on train)"),
]
FinalistsOpt = Annotated[int, typer.Option(help="Discovered programs compared on the validation games", min=1)]
GenerationsOpt = Annotated[int, typer.Option(help="Generations to run (resumes: existing ones are kept)", min=0)]
PopulationOpt = Annotated[int, typer.Option(help="Children evaluated per generation", min=1, max=10_000)]
DbOpt = Annotated[str, typer.Option(help="Population database (SQLite); reuse it to resume")]
MutatorOpt = Annotated[
    str, typer.Option(help="program (offline), llm (OpenAI-compatible endpoint) or smollm2")
]
LlmUrlOpt = Annotated[
    str | None, typer.Option(help="Base URL of an OpenAI-compatible API, e.g. http://localhost:8000/v1")
]
LlmModelOpt = Annotated[str, typer.Option(help="Model name sent to the endpoint")]
SeedOpt = Annotated[int, typer.Option(help="Random seed")]
# Ranges checked by click (a usage error, exit 2): a limit of 0 or less would kill every candidate at once
# (or, for setrlimit, raise a traceback), and a huge one is no limit at all.
CpuSecondsOpt = Annotated[int, typer.Option(help="CPU-time limit per candidate (1-3600 s)", min=1, max=3600)]
MemoryMbOpt = Annotated[int, typer.Option(help="Extra address space per candidate (16-65536 MiB)", min=16,
                                          max=65536)]


def _discover(
    kind: str,
    *,
    train: str,
    test: str,
    validate: str,
    seeds: list[str],
    db: str,
    as_json: bool,
    generations: int,
    population: int,
    mutator: str,
    **settings,
) -> None:
    """Build the SearchConfig for `kind`, check the games, run the search and report it."""
    from keel.discovery.search import SearchConfig, run_search
    from keel.games.load import check_size, load_game
    from keel.progress import progress_bar

    if mutator not in ("program", "llm", "smollm2"):
        raise KeelError(f"unknown --mutator {mutator!r}; valid: program, llm, smollm2")
    cfg = SearchConfig(
        train=_games(train),
        test=_games(test),
        generations=generations,
        population=population,
        seeds=seeds,
        mutator=mutator,
        validate=_games(validate) or None,
        kind=kind,
        **settings,
    )
    for g in cfg.train + cfg.test + (cfg.validate or []):
        check_size(load_game(g), g)  # fail fast on a bad or far-too-big game before any work (or db file)
    with progress_bar(as_json) as bar:
        task = bar.add_task(f"discover {kind}", total=max(1, generations * population), info="")
        out = run_search(cfg, db, progress=lambda d, t: bar.update(task, completed=d, total=max(t, 1)))
    if not as_json:
        from keel.cliutil import console

        console.print(out["code"], highlight=False, markup=False)
        held_out = out.get("test", {})
        out = {
            k: out[k] for k in ("db", "best_id", "best_fitness", "best_mutation", "evaluated", "ok", "failed")
        }
        out["held-out mean exploitability"] = held_out.get("mean")
        out["best beats"] = held_out.get("best_beats")
    emit(out, as_json, title=f"discover {kind}")


def _seed_names(seeds: str) -> list[str]:
    return [s.strip() for s in seeds.split(",") if s.strip()]


@app.command()
def cfr(
    train: TrainOpt,
    test: TestOpt = "",
    validate: ValidateOpt = "",
    finalists: FinalistsOpt = 5,
    generations: GenerationsOpt = 5,
    population: PopulationOpt = 8,
    iters: Annotated[int, typer.Option(help="CFR iterations per training game (K in the fitness)", min=1, max=1_000_000)] = 200,
    test_iters: Annotated[int, typer.Option(help="Iterations on the held-out games", min=1, max=1_000_000)] = 1000,
    db: DbOpt = "runs/discover-cfr.sqlite",
    mutator: MutatorOpt = "program",
    llm_url: LlmUrlOpt = None,
    llm_model: LlmModelOpt = "default",
    seeds: Annotated[str, typer.Option(help="Initial programs (algorithm names)")] = "cfr,cfr_plus,lcfr,dcfr",
    seed: SeedOpt = 0,
    cpu_seconds: CpuSecondsOpt = 120,
    memory_mb: MemoryMbOpt = 1024,
    as_json: JsonOpt = False,
) -> None:
    """Evolve CFR variants on --train games; report the best one's code and its held-out exploitability."""
    opts = dict(locals())  # the options above, by name; taken before any other local exists
    opts["seeds"] = _seed_names(seeds)
    from keel.games import algorithms

    for s in opts["seeds"]:
        algorithms.get(s)
    _discover("cfr", **opts)


@app.command()
def psro(
    train: TrainOpt,
    test: TestOpt = "",
    validate: ValidateOpt = "",
    finalists: FinalistsOpt = 5,
    generations: GenerationsOpt = 5,
    population: PopulationOpt = 8,
    iters: Annotated[int, typer.Option(help="PSRO iterations per training game (K in the fitness)", min=1, max=10_000)] = 15,
    test_iters: Annotated[int, typer.Option(help="PSRO iterations on the held-out games", min=1, max=10_000)] = 15,
    db: DbOpt = "runs/discover-psro.sqlite",
    mutator: MutatorOpt = "program",
    llm_url: LlmUrlOpt = None,
    llm_model: LlmModelOpt = "default",
    seeds: Annotated[str, typer.Option(help="Initial meta-solvers")] = "uniform,rm,prd,shor",
    seed: SeedOpt = 0,
    cpu_seconds: CpuSecondsOpt = 120,
    memory_mb: MemoryMbOpt = 1024,
    as_json: JsonOpt = False,
) -> None:
    """Evolve PSRO meta-solvers on --train games; report the best one and its held-out exploitability."""
    opts = dict(locals())  # the options above, by name; taken before any other local exists
    opts["seeds"] = _seed_names(seeds)
    _discover("psro", **opts)
