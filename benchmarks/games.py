"""Benchmark keel.games and keel.discovery side by side with OpenSpiel.

    python benchmarks/games.py [--quick] [--part exploitability|speed|discovery|sandbox|all]

Parts (each can run alone, e.g. in parallel; results are merged into benchmarks/results/games.json):
- exploitability: every Keel solver at 100 and 1000 iterations on Kuhn and Leduc poker, next to
  OpenSpiel's own CFR, CFR+, LCFR and DCFR solvers run here (Python solvers; for Leduc at 1000 the
  C++ CFR / CFR+ solvers, whose schedule is the same, to fit the time budget).
- speed: CFR+ iterations/s on Leduc: Keel vs OpenSpiel Python CFRPlusSolver vs C++ pyspiel.CFRPlusSolver,
  interleaved rounds, median.
- discovery: a CPU-sized evolutionary search (program mutator, offline), best program vs CFR+ and
  DCFR on held-out games at 1000 iterations, its code included.
- sandbox: the hostile candidates, each must come back as a contained failure.
- rejudge: the discovered program recorded in games.json (its code, its held-out games and iteration
  count) run again next to CFR+ and DCFR, judged per game (wins and losses) as well as on the mean;
  the re-run that does not need the whole search.

The file is written only through `benchmarks/resultsfile.py`: the top level records the command,
commit and load average of the run that wrote it last, and each part keeps its own `provenance`
(a part carried over from an earlier run says so; one written before provenance was recorded has
`provenance: null`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))  # resultsfile

RESULTS = ROOT / "results" / "games.json"
LOCK_DIR = Path(tempfile.gettempdir())
NOTES = (
    "Measured on a 2-core machine shared with six other engineers' jobs (CPU under load); "
    "speed ratios come from interleaved rounds in one run, absolute it/s vary with load."
)

# Small Leduc-like poker games for the discovery's training set (Leduc itself is held out):
# two ranks instead of three, and Leduc with one raise per round.
MINI_LEDUC = (
    "universal_poker(betting=limit,numPlayers=2,numRounds=2,blind=1 1,raiseSize=2 4,firstPlayer=1 1,"
    "maxRaises=2 2,numSuits=2,numRanks=2,numHoleCards=1,numBoardCards=0 1)"
)
LEDUC_1RAISE = (
    "universal_poker(betting=limit,numPlayers=2,numRounds=2,blind=1 1,raiseSize=2 4,firstPlayer=1 1,"
    "maxRaises=1 1,numSuits=2,numRanks=3,numHoleCards=1,numBoardCards=0 1)"
)

# Validation (model selection among the best discovered programs), disjoint from train and test:
LEDUC_4RANKS = (
    "universal_poker(betting=limit,numPlayers=2,numRounds=2,blind=1 1,raiseSize=2 4,firstPlayer=1 1,"
    "maxRaises=1 1,numSuits=2,numRanks=4,numHoleCards=1,numBoardCards=0 1)"
)

KEEL_ALGOS = ["cfr", "cfr_plus", "lcfr", "dcfr", "pcfr_plus", "dpcfr_plus", "vad_cfr"]
MATCHED = ["cfr", "cfr_plus", "lcfr", "dcfr"]


def merge(part: str, data: dict, goals: list[dict]) -> None:
    """Read-modify-write games.json under a lock, so parts running in parallel do not clobber it; the
    new part carries this run's provenance, the others keep theirs."""
    from resultsfile import provenance, write_results

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / "keel-bench-games.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        parts = doc.get("tables", doc.get("parts", {}))
        for other in parts.values():
            other.setdefault("provenance", None)  # written before provenance was recorded
        parts[part] = {**data, "provenance": provenance()}
        names = {g["name"] for g in goals}
        kept = [g for g in doc.get("goals", []) if g["name"] not in names]
        carried = sorted(k for k in parts if k != part)
        notes = [NOTES, f"part {part!r} written by this run; parts {carried} carried over from earlier runs "
                        "(see each part's provenance)"]
        write_results("games", parts, kept + goals, notes)


def openspiel_solver(algo: str, game, impl: str):
    import pyspiel
    from open_spiel.python.algorithms import cfr, discounted_cfr

    if impl == "cpp":
        return {"cfr": pyspiel.CFRSolver, "cfr_plus": pyspiel.CFRPlusSolver}[algo](game)
    return {
        "cfr": cfr.CFRSolver,
        "cfr_plus": cfr.CFRPlusSolver,
        "lcfr": discounted_cfr.LCFRSolver,
        "dcfr": discounted_cfr.DCFRSolver,
    }[algo](game)


def openspiel_exploitability(game, solver, impl: str) -> float:
    import pyspiel
    from open_spiel.python.algorithms import exploitability

    if impl == "cpp":
        return float(pyspiel.exploitability(game, solver.average_policy()))
    return float(exploitability.exploitability(game, solver.average_policy()))


CACHE = ROOT / "results" / "games_openspiel_runs.json"


def _cache(update: dict | None = None) -> dict:
    """OpenSpiel's own runs, kept between invocations: its Python solvers take minutes per Leduc run here."""
    from keel.io import atomic_write_json

    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / "keel-bench-games-openspiel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(CACHE.read_text()) if CACHE.exists() else {}
        if update:
            doc.update(update)
            atomic_write_json(CACHE, doc)
    return doc


def openspiel_runs(spec: str, algo: str, marks: list[int], compute: bool = True) -> dict:
    """OpenSpiel's exploitability of `algo` at each mark (Python solver continued from mark to mark;
    for Leduc at 1000 the C++ solver where one exists), cached in games_openspiel_runs.json."""
    import pyspiel

    game = pyspiel.load_game(spec)
    row, solver, done = {}, None, 0
    for m in marks:
        impl = "cpp" if (spec == "leduc_poker" and m == 1000 and algo in ("cfr", "cfr_plus")) else "python"
        key = f"{spec}|{algo}|{impl}|{m}"
        hit = _cache().get(key)
        if hit is None and not compute:
            print(f"{spec:12s} openspiel-{impl} {algo:8s} @{m}: not measured (no cached run)", flush=True)
            continue
        if hit is None:
            if impl == "cpp" or solver is None:
                solver, done = openspiel_solver(algo, game, impl), 0
            t0, start = time.perf_counter(), done
            for _ in range(m - done):
                solver.evaluate_and_update_policy()
            done = m
            hit = {
                "exploitability": openspiel_exploitability(game, solver, impl),
                "impl": impl,
                "seconds": round(time.perf_counter() - t0, 1),
                "continued_from": start,
            }
            _cache({key: hit})
        elif impl == "python":
            solver = None  # cached: a later Python mark must be recomputed from scratch if missing
        row[str(m)] = hit["exploitability"]
        row[f"impl@{m}"] = hit["impl"]
        print(
            f"{spec:12s} openspiel-{impl} {algo:8s} @{m}: {hit['exploitability']:.4e}  ({hit['seconds']} s)",
            flush=True,
        )
    return row


def part_exploitability(quick: bool, cached_only: bool = False) -> None:
    from keel.games.cfr import solve
    from keel.games.tree import GameTree

    marks = [100] if quick else [100, 1000]
    table: dict = {}
    for spec in ["kuhn_poker", "leduc_poker"]:
        tree = GameTree.build(spec)
        rows = table.setdefault(spec, {})
        for algo in KEEL_ALGOS:
            out = solve(tree, algo, marks[-1], checkpoints=marks)
            rows[f"keel:{algo}"] = {str(c["iteration"]): c["exploitability"] for c in out["curve"]}
            print(
                f"{spec:12s} keel {algo:10s} "
                + "  ".join(f"@{c['iteration']}: {c['exploitability']:.4e}" for c in out["curve"]),
                flush=True,
            )
        for algo in MATCHED:
            # Control: the same algorithm with regrets summed in OpenSpiel's order (history by history
            # onto R). Any gap between the two Keel rows is floating-point summation order alone.
            out = solve(tree, algo, marks[-1], checkpoints=marks, sequential_regrets=True)
            rows[f"keel-sequential:{algo}"] = {str(c["iteration"]): c["exploitability"] for c in out["curve"]}
            print(
                f"{spec:12s} keel-seq {algo:6s} "
                + "  ".join(f"@{c['iteration']}: {c['exploitability']:.4e}" for c in out["curve"]),
                flush=True,
            )
            rows[f"openspiel:{algo}"] = openspiel_runs(spec, algo, marks, compute=not cached_only)
    worst, diffs, missing, order = 0.0, {}, [], {}
    for spec, rows in table.items():
        for algo in MATCHED:
            for m in marks:
                a, b = rows[f"keel:{algo}"][str(m)], rows[f"keel-sequential:{algo}"][str(m)]
                order[f"{spec}/{algo}@{m}"] = abs(a - b) / abs(b)
                if str(m) not in rows[f"openspiel:{algo}"]:
                    missing.append(f"{spec}/{algo}@{m}")
                    continue
                a, b = rows[f"keel:{algo}"][str(m)], rows[f"openspiel:{algo}"][str(m)]
                d = abs(a - b) / abs(b)
                diffs[f"{spec}/{algo}@{m}"] = d
                worst = max(worst, d)
    print(f"largest relative difference Keel vs OpenSpiel: {worst:.2e}; not measured: {missing or 'none'}")
    print("relative difference between Keel's two summation orders (floating point alone):")
    for k, v in order.items():
        print(f"  {k:28s} order {v:.1e}   vs OpenSpiel {diffs.get(k, float('nan')):.1e}")
    merge(
        "exploitability",
        {
            "table": table,
            "relative_difference": diffs,
            "summation_order_control": order,
            "iterations": marks,
            "not_measured": missing,
        },
        [
            {
                "name": "Keel CFR/CFR+/LCFR/DCFR exploitability equals OpenSpiel's (Kuhn, Leduc, "
                + "/".join(map(str, marks))
                + " iterations)"
                + (f"; not measured: {', '.join(missing)}" if missing else ""),
                "value": worst,
                "target": 0.01,
                "unit": "max relative difference",
                "met": worst < 0.01 and not missing,
            }
        ],
    )


def part_speed(quick: bool) -> None:
    import pyspiel
    from open_spiel.python.algorithms import cfr

    from keel.games.cfr import make_solver
    from keel.games.tree import GameTree

    t0 = time.perf_counter()
    tree = GameTree.build("leduc_poker")
    build_s = time.perf_counter() - t0
    game = tree.game
    keel_s, py_s, cpp_s = make_solver(tree, "cfr_plus"), cfr.CFRPlusSolver(game), pyspiel.CFRPlusSolver(game)
    rounds = 3 if quick else 5
    n_keel, n_py, n_cpp = 200, (3 if quick else 6), 50
    rates = {"keel": [], "openspiel_python": [], "openspiel_cpp": []}
    for r in range(rounds):
        for name, solver, n in [
            ("keel", keel_s, n_keel),
            ("openspiel_python", py_s, n_py),
            ("openspiel_cpp", cpp_s, n_cpp),
        ]:
            step = solver.iteration if name == "keel" else solver.evaluate_and_update_policy
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            rates[name].append(n / (time.perf_counter() - t0))
        print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.1f} it/s" for k, v in rates.items()), flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    vs_py, vs_cpp = med["keel"] / med["openspiel_python"], med["keel"] / med["openspiel_cpp"]
    print(f"median it/s: {med}; Keel/Python {vs_py:.1f}x, Keel/C++ {vs_cpp:.2f}x; tree build {build_s:.2f} s")
    merge(
        "speed",
        {
            "game": "leduc_poker",
            "algo": "cfr_plus",
            "rounds": rates,
            "median_it_per_s": med,
            "keel_over_python": vs_py,
            "keel_over_cpp": vs_cpp,
            "keel_tree_build_seconds": build_s,
        },
        [
            {
                "name": "Leduc CFR+ it/s, Keel vs OpenSpiel Python CFRPlusSolver",
                "value": vs_py,
                "target": 20,
                "unit": "x",
                "met": vs_py >= 20,
            },
            {
                "name": "Leduc CFR+ it/s, Keel vs OpenSpiel C++ pyspiel.CFRPlusSolver",
                "value": vs_cpp,
                "target": 1,
                "unit": "x (> 1 is faster)",
                "met": vs_cpp > 1,
            },
        ],
    )


def part_discovery(quick: bool, generations: int, db: str) -> None:
    from keel.discovery.search import SearchConfig, run_search

    if quick:
        cfg = SearchConfig(
            train=["kuhn_poker", "goofspiel(num_cards=3)"],
            test=["liars_dice(dice_sides=3)"],
            generations=2,
            population=4,
            iters=100,
            test_iters=300,
        )
    else:
        cfg = SearchConfig(
            train=[
                "kuhn_poker",
                "goofspiel(num_cards=3)",
                "liars_dice(dice_sides=3)",
                MINI_LEDUC,
                LEDUC_1RAISE,
            ],
            test=["leduc_poker", "liars_dice(dice_sides=4)", "goofspiel(num_cards=4)"],
            validate=[LEDUC_4RANKS, "kuhn_poker(players=3)"],
            generations=generations,
            population=12,
            iters=1000,
            test_iters=1000,
            seed=1,
        )
    t0 = time.time()
    out = run_search(cfg, db, log=lambda s: print(s, flush=True))
    test = out["test"]
    print(json.dumps(test, indent=1))
    print(out["code"])
    best, base = test["mean"].get("best"), [test["mean"].get(b) for b in cfg.baselines]
    ratio = best / min(base) if best is not None and all(b is not None for b in base) else None
    merge(
        "discovery",
        {
            "config": {k: v for k, v in cfg.__dict__.items()},
            "wall_seconds": round(time.time() - t0, 1),
            **out,
        },
        [
            {
                "name": f"discovered CFR variant: held-out mean exploitability @{cfg.test_iters} "
                "vs best of CFR+, DCFR",
                "value": ratio,
                "target": 1.0,
                "unit": "ratio (< 1 beats both)",
                "met": bool(test["beats_all"]),
            }
        ],
    )


def part_rejudge(quick: bool) -> None:
    """Run the recorded discovered program again next to CFR+ and DCFR on its held-out games; per game
    a win is a lower exploitability at the same iteration count."""
    from keel.discovery.sandbox import Limits, evaluate
    from keel.discovery.search import seed_source
    from keel.games.tree import GameTree

    doc = json.loads(RESULTS.read_text())
    disc = doc.get("tables", doc.get("parts", {}))["discovery"]
    cfg = disc["config"]
    games = cfg["test"][:1] if quick else cfg["test"]
    iters = 100 if quick else cfg["test_iters"]
    trees = [GameTree.build(g) for g in games]
    limits = Limits(cpu_seconds=cfg.get("cpu_seconds", 120) * 4, memory_mb=cfg.get("memory_mb", 1024),
                    wall_seconds=1800.0)
    t0 = time.time()
    sources = {"discovered": disc["code"], **{b: seed_source(b, "cfr") for b in cfg["baselines"]}}
    expl = {}
    for name, code in sources.items():
        res = evaluate(code, trees, iters, [iters], limits, kind="cfr")
        if not res.ok:
            raise SystemExit(f"{name} failed: {res.error}")
        expl[name] = {g: c[iters] for g, c in res.scores.items()}
        print(name, expl[name], flush=True)
    per_game, wins, losses = {}, {}, {}
    for b in cfg["baselines"]:
        wins[b] = [g for g in games if expl["discovered"][g] < expl[b][g]]
        losses[b] = [g for g in games if expl["discovered"][g] > expl[b][g]]
    for g in games:
        per_game[g] = {"exploitability": {n: expl[n][g] for n in expl},
                       "ratio_vs": {b: expl["discovered"][g] / expl[b][g] for b in cfg["baselines"]},
                       "wins_vs": [b for b in cfg["baselines"] if g in wins[b]],
                       "loses_to": [b for b in cfg["baselines"] if g in losses[b]]}
    means = {n: float(np.mean(list(v.values()))) for n, v in expl.items()}
    ratio = means["discovered"] / min(means[b] for b in cfg["baselines"])
    data = {"program_id": disc.get("best_id"), "games": games, "iterations": iters, "per_game": per_game,
            "mean_exploitability": means, "wins": wins, "losses": losses, "seconds": round(time.time() - t0, 1)}
    goals = [
        {"name": f"rejudged discovered CFR variant: held-out mean exploitability @{iters} vs best of "
                 f"{', '.join(cfg['baselines'])}", "value": ratio, "target": 1.0, "unit": "ratio (< 1 beats both)",
         "met": bool(ratio < 1)},
    ]
    for b in cfg["baselines"]:
        goals.append({"name": f"rejudged discovered CFR variant beats {b} on every held-out game @{iters}",
                      "value": f"{len(wins[b])} wins / {len(losses[b])} losses (loses on: {', '.join(losses[b]) or '-'})",
                      "target": f"{len(games)} wins", "unit": "games", "met": not losses[b]})
    print(json.dumps(data, indent=1))
    merge("rejudge", data, goals)


HOSTILE = {
    "infinite loop": "def accumulate_regret(R, r, t, mem, seg):\n    while True:\n        pass\n",
    "memory bomb": "def accumulate_regret(R, r, t, mem, seg):\n    x = [0] * (10 ** 11)\n    return R\n",
    "numpy memory bomb": "def accumulate_regret(R, r, t, mem, seg):\n    return R + np.ones((10 ** 6, 10 ** 6)).sum()\n",
    "open file": "def accumulate_regret(R, r, t, mem, seg):\n    open('/tmp/keel-pwned', 'w').write('x')\n    return R\n",
    "import os": "import os\ndef accumulate_regret(R, r, t, mem, seg):\n    os.system('touch /tmp/keel-pwned')\n"
    "    return R\n",
    "dunder escape": "def accumulate_regret(R, r, t, mem, seg):\n"
    "    for c in ().__class__.__bases__[0].__subclasses__():\n"
    "        if c.__name__ == '_wrap_close':\n"
    "            rc = c.__init__.__globals__['system']('touch /tmp/keel-pwned')\n"
    "            R = R + 1 / (rc == 0)  # fails unless the shell ran\n"
    "    return R\n",
    "builtins escape": "def accumulate_regret(R, r, t, mem, seg):\n"
    "    g = accumulate_regret.__globals__['__builtins__']\n"
    "    g['open']('/tmp/keel-pwned', 'w')\n    return R\n",
    "fork bomb": "def accumulate_regret(R, r, t, mem, seg):\n    __import__('os').fork()\n    return R\n",
    "huge output": "def accumulate_regret(R, r, t, mem, seg):\n    print('x' * 10 ** 9)\n    return R\n",
}
REST = (
    "def regret_to_policy(R, r, t, mem, seg):\n    return np.maximum(R, 0)\n"
    "def accumulate_policy(S, c, t, mem, seg):\n    return S + c\n"
)


def part_sandbox(quick: bool) -> None:
    from keel.discovery.sandbox import Limits, evaluate
    from keel.games.tree import GameTree

    tree = GameTree.build("kuhn_poker")
    limits = Limits(cpu_seconds=2, memory_mb=256, wall_seconds=15)
    rows, contained = {}, 0
    for name, code in HOSTILE.items():
        for check in (True, False):  # also without the AST layer: the process layer must hold alone
            res = evaluate(code + REST, [tree], 5, limits=limits, check=check)
            ok = (not res.ok) and not Path("/tmp/keel-pwned").exists()
            contained += ok
            rows[f"{name} ({'ast+process' if check else 'process only'})"] = {
                "contained": ok,
                "error": res.error,
                "seconds": round(res.seconds, 2),
            }
            print(
                f"{name:18s} {'ast+process' if check else 'process only':12s} contained={ok} {res.error[:70]}"
            )
    total = 2 * len(HOSTILE)
    merge(
        "sandbox",
        {"cases": rows},
        [
            {
                "name": "hostile candidates contained by the sandbox",
                "value": contained,
                "target": total,
                "unit": "cases",
                "met": contained == total,
            }
        ],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--part", default="all", choices=["all", "exploitability", "speed", "discovery", "sandbox", "rejudge"]
    )
    ap.add_argument("--generations", type=int, default=8, help="discovery: generations of 12 children each")
    ap.add_argument("--db", default="runs/bench-discover-cfr.sqlite")
    ap.add_argument(
        "--cached-only",
        action="store_true",
        help="exploitability: use cached OpenSpiel runs, skip missing ones",
    )
    ap.add_argument(
        "--openspiel",
        nargs=2,
        metavar=("GAME", "ALGO"),
        help="only run (and cache) OpenSpiel's solver ALGO on GAME at 100 and 1000 iterations",
    )
    args = ap.parse_args()
    np.seterr(all="ignore")
    if args.openspiel:
        openspiel_runs(args.openspiel[0], args.openspiel[1], [100] if args.quick else [100, 1000])
        return
    parts = ["sandbox", "speed", "exploitability", "discovery", "rejudge"] if args.part == "all" else [args.part]
    for p in parts:
        if p == "rejudge":
            part_rejudge(args.quick)
        elif p == "discovery":
            part_discovery(args.quick, args.generations, args.db)
        elif p == "exploitability":
            part_exploitability(args.quick, args.cached_only)
        elif p == "speed":
            part_speed(args.quick)
        else:
            part_sandbox(args.quick)
    doc = json.loads(RESULTS.read_text())
    print("\ngoals:")
    for g in doc["goals"]:
        print(
            f"  [{'met' if g['met'] else 'NOT met'}] {g['name']}: {g['value']} "
            f"(target {g['target']} {g['unit']})"
        )


if __name__ == "__main__":
    main()
