"""Evolutionary search over the code of the three CFR parts, or of the PSRO meta-solver
(AlphaEvolve-style, arXiv 2602.16928).

Loop: pick a parent from the best programs so far (tournament), mutate one part (program-level AST
edit, or an LLM rewrite), evaluate the child in the sandbox on the training games for K iterations,
store it with its lineage. Fitness = - mean exploitability of the average policy after K iterations
over the training games (for PSRO: after K PSRO iterations with exact best responses). At the end the
best program is scored on held-out games next to the baselines (CFR+ and DCFR; for PSRO RM and PRD).
Everything is in the SQLite population database, so a stopped search resumes where it was.
"""

from __future__ import annotations

import inspect
import random
import time
from dataclasses import asdict, dataclass

import numpy as np

from keel.discovery.db import PopulationDB
from keel.discovery.sandbox import Limits, evaluate
from keel.errors import KeelError


@dataclass
class SearchConfig:
    train: list[str]
    test: list[str]
    generations: int = 5
    population: int = 8  # children per generation
    iters: int = 200  # K: iterations per training game
    test_iters: int = 1000
    seeds: list[str] | None = None  # default: cfr, cfr_plus, lcfr, dcfr (cfr) / uniform, rm, prd, shor (psro)
    baselines: list[str] | None = None  # default: cfr_plus, dcfr (cfr) / rm, prd (psro)
    kind: str = "cfr"  # cfr: evolve the three CFR parts; psro: evolve the PSRO meta-solver
    # Model selection without touching the test games: the `finalists` best discovered programs (by
    # training fitness) are scored on `validate` games at test_iters; the lowest mean there is the pick.
    validate: list[str] | None = None
    finalists: int = 5
    mutator: str = "program"  # program | llm | smollm2
    llm_url: str | None = None
    llm_model: str = "default"
    seed: int = 0
    tournament: int = 3
    elite: int = 8
    cpu_seconds: int = 120
    memory_mb: int = 1024
    wall_seconds: float = 300.0

    def __post_init__(self):
        if self.kind not in ("cfr", "psro"):
            raise KeelError(f"unknown search kind {self.kind!r}; valid: cfr, psro")
        cfr = self.kind == "cfr"
        if self.seeds is None:
            self.seeds = ["cfr", "cfr_plus", "lcfr", "dcfr"] if cfr else ["uniform", "rm", "prd", "shor"]
        if self.baselines is None:
            self.baselines = ["cfr_plus", "dcfr"] if cfr else ["rm", "prd"]

    @property
    def parts(self) -> tuple[str, ...]:
        from keel.discovery.sandbox import KIND_PARTS

        return KIND_PARTS[self.kind]

    def settings(self) -> dict:
        """What must not change when a search is resumed."""
        out = {"train": self.train, "iters": self.iters, "seeds": self.seeds}
        return out if self.kind == "cfr" else {**out, "kind": self.kind}


def seed_source(name: str, kind: str = "cfr") -> str:
    """A seed program: the algorithm's module source (for meta-solvers, minus its import of the helpers,
    which the sandbox provides)."""
    if kind == "psro":
        from keel.games import meta

        if name == "nash":
            raise KeelError(
                "the nash meta-solver needs scipy, which candidates cannot import; "
                "seed with uniform, rm, prd or shor"
            )
        meta.get(name)
        import importlib

        src = inspect.getsource(importlib.import_module(f"keel.games.meta.{name}"))
        return "\n".join(line for line in src.splitlines() if not line.startswith("from keel.")) + "\n"
    from keel.games import algorithms

    return inspect.getsource(algorithms.get(name))


def fitness_of(scores: dict, iters: int) -> float:
    vals = [float(curve[iters] if iters in curve else curve[str(iters)]) for curve in scores.values()]
    return -float(np.mean(vals))


def make_mutator(cfg: SearchConfig):
    if cfg.mutator == "program":
        from keel.discovery.mutate import ProgramMutator

        return ProgramMutator(seed=cfg.seed, parts=cfg.parts)
    if cfg.mutator == "llm":
        from keel.discovery.llm_mutator import OpenAIMutator

        if not cfg.llm_url:
            raise KeelError(
                "--mutator llm needs --llm-url (an OpenAI-compatible base URL, e.g. http://localhost:8000/v1)"
            )
        return OpenAIMutator(cfg.llm_url, model=cfg.llm_model, seed=cfg.seed, parts=cfg.parts)
    if cfg.mutator == "smollm2":
        from keel.discovery.llm_mutator import LocalMutator

        return LocalMutator("smollm2", seed=cfg.seed, parts=cfg.parts)
    raise KeelError(f"unknown mutator {cfg.mutator!r}; valid: program, llm, smollm2")


def _trees(specs: list[str]):
    from keel.games.tree import GameTree

    return [GameTree.build(s) for s in specs]


def run_search(cfg: SearchConfig, db_path: str, progress=None, log=None) -> dict:
    if not cfg.train:
        raise KeelError("--train needs at least one game")
    if cfg.generations < 0 or cfg.population < 1 or cfg.iters < 1:
        raise KeelError("--generations must be >= 0, --population and --iters >= 1")
    for s in cfg.seeds + cfg.baselines:
        seed_source(s, cfg.kind)  # validates the names
    db = PopulationDB(db_path)
    db.check_meta(cfg.settings())
    rng = random.Random(cfg.seed * 7919 + db.count())
    mutator = make_mutator(cfg)
    train_trees = _trees(cfg.train)
    limits = Limits(cfg.cpu_seconds, cfg.memory_mb, cfg.wall_seconds)
    t_start = time.time()

    def score(code: str):
        return evaluate(code, train_trees, cfg.iters, [cfg.iters], limits, kind=cfg.kind)

    # Generation 0: the seed algorithms, exactly as written in keel.games.algorithms.
    for name in cfg.seeds:
        if db.by_name(name) is None:
            code = seed_source(name, cfg.kind)
            res = score(code)
            fit = fitness_of(res.scores, cfg.iters) if res.ok else None
            db.add(
                generation=0,
                code=code,
                mutation="seed",
                ok=res.ok,
                fitness=fit,
                train_scores=res.scores,
                error=res.error or None,
                name=name,
                seconds=res.seconds,
            )
            if log:
                log(f"seed {name}: fitness {fit}")
    total = cfg.generations * cfg.population
    done = sum(db.count(g) for g in range(1, cfg.generations + 1))
    if progress:
        progress(done, total)
    for g in range(1, cfg.generations + 1):
        while db.count(g) < cfg.population:
            elite = db.top(cfg.elite)
            if not elite:
                raise KeelError("no seed program evaluated successfully; check the training games")
            parent = max(rng.sample(elite, min(cfg.tournament, len(elite))), key=lambda p: p.fitness)
            other = rng.choice(elite)
            child, desc = None, ""
            for _ in range(5):
                try:
                    if cfg.mutator == "program":
                        child, desc = mutator.mutate(parent.code, other.code)
                    else:
                        child, desc = mutator.mutate(parent.code, other.code, fitness=parent.fitness)
                except ValueError as e:
                    child, desc = None, str(e)
                    continue
                if not db.has_code(child):
                    break
                child = None
            if child is None:
                db.add(
                    generation=g,
                    code="",
                    mutation=desc[:200] or "mutation failed",
                    ok=False,
                    error="no new program: " + desc[:300],
                    parent_id=parent.id,
                )
            else:
                res = score(child)
                fit = fitness_of(res.scores, cfg.iters) if res.ok else None
                pid = db.add(
                    generation=g,
                    code=child,
                    mutation=desc,
                    ok=res.ok,
                    fitness=fit,
                    train_scores=res.scores,
                    error=res.error or None,
                    parent_id=parent.id,
                    other_parent_id=other.id if desc.startswith("crossover") else None,
                    seconds=res.seconds,
                )
                if log:
                    log(f"gen {g} #{pid} {desc} -> " + (f"fitness {fit:.4g}" if res.ok else res.error))
            done += 1
            if progress:
                progress(done, total)
    best = db.top(1)[0]
    validation = None
    if cfg.validate:
        best, validation = select_on_validation(cfg, db, limits, log)
    lineage = db.lineage(best.id)
    summary = {
        "db": str(db.path),
        "best_id": best.id,
        "best_name": best.name,
        "best_fitness": best.fitness,
        "best_mutation": best.mutation,
        "generations": cfg.generations,
        **db.counts(),
        "search_seconds": round(time.time() - t_start, 1),
        "lineage": lineage,
        "train_scores": best.train_scores,
        "code": present(best, lineage),
        "seed_fitness": {n: (db.by_name(n).fitness if db.by_name(n) else None) for n in cfg.seeds},
    }
    if validation is not None:
        summary["validation"] = validation
    if cfg.test:
        summary["test"] = held_out(cfg, db, best, limits)
    db.close()
    return summary


def select_on_validation(cfg: SearchConfig, db: PopulationDB, limits: Limits, log=None):
    """Among the best discovered (non-seed) programs by training fitness, pick the one with the lowest mean
    exploitability on the validation games (disjoint from the test games)."""
    trees = _trees(cfg.validate)
    finalists = [p for p in db.top(cfg.finalists + len(cfg.seeds)) if p.name is None][: cfg.finalists]
    if not finalists:
        return db.top(1)[0], {"games": cfg.validate, "note": "no discovered program ran; kept the best seed"}
    rows = {}
    for p in finalists:
        res = evaluate(p.code, trees, cfg.test_iters, [cfg.test_iters], limits, kind=cfg.kind)
        rows[p.id] = float(np.mean([c[cfg.test_iters] for c in res.scores.values()])) if res.ok else None
        if log:
            log(f"validation #{p.id}: {rows[p.id]}")
    scored = [p for p in finalists if rows[p.id] is not None]
    pick = min(scored, key=lambda p: rows[p.id]) if scored else finalists[0]
    return pick, {
        "games": cfg.validate,
        "iterations": cfg.test_iters,
        "mean_exploitability": rows,
        "picked": pick.id,
    }


def present(program, lineage: list[dict]) -> str:
    """The program as a reader should see it: its lineage on top instead of the seed's docstring
    (mutated programs inherit their root seed's module docstring, which no longer describes them)."""
    import ast

    tree = ast.parse(program.code)
    body = tree.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and program.name is None
    ):
        body = body[1:]
    steps = " <- ".join(f"#{x['id']} {x['name'] or x['mutation']}" for x in lineage)
    head = f"# keel.discovery program #{program.id} (generation {program.generation})\n# lineage: {steps}\n"
    return head + ast.unparse(ast.Module(body=body, type_ignores=[])) + "\n"


def held_out(cfg: SearchConfig, db: PopulationDB, best, limits: Limits) -> dict:
    """Exploitability at `test_iters` on held-out games: the best program vs the baselines."""
    trees = _trees(cfg.test)
    rows = {}
    res = evaluate(best.code, trees, cfg.test_iters, [cfg.test_iters], limits, kind=cfg.kind)
    if not res.ok:
        rows["best"] = {"error": res.error}
    else:
        rows["best"] = {g: c[cfg.test_iters] for g, c in res.scores.items()}
        db.set_test_scores(best.id, rows["best"])
    for name in cfg.baselines:
        r = evaluate(
            seed_source(name, cfg.kind), trees, cfg.test_iters, [cfg.test_iters], limits, kind=cfg.kind
        )
        rows[name] = {g: c[cfg.test_iters] for g, c in r.scores.items()} if r.ok else {"error": r.error}
    means = {k: float(np.mean(list(v.values()))) for k, v in rows.items() if "error" not in v}
    beats = {b: ("best" in means and b in means and means["best"] < means[b]) for b in cfg.baselines}
    return {
        "iterations": cfg.test_iters,
        "games": cfg.test,
        "exploitability": rows,
        "mean": means,
        "best_beats": beats,
        "beats_all": all(beats.values()) if beats else False,
    }


def config_dict(cfg: SearchConfig) -> dict:
    return asdict(cfg)
