"""Spec-guided RL in the rooms grid: shields under noise, and the learners side by side.

    python benchmarks/spec_rl.py [--quick]     -> prints tables, writes benchmarks/results/spec_rl.json

Part "noise" (the shield's claim): on layouts where a winning strategy exists, at slip 0, 0.1 and 0.2
(sideways slip: a move slips to a perpendicular one; `keel.envs.rooms_grid`), the violations in
training and in evaluation, and the satisfaction, of
    game/preemptive   the safety-game shield (Alshiekh et al. 2018), pre-emptive      (goal: 0 violations)
    game/postposed    the same shield, post-posed                                    (goal: 0 violations)
    one_step          the one-step lookahead shield, pre-emptive (what Keel had before)
    none              no shield
for QRM (3 seeds) and DiRL (1 seed), on the 9-rooms grid with 6x6 rooms as shipped and with two
L-shaped hazard pairs added ("traps": cells entered safely one step ahead from which every action may
slip into a hazard). Uniform slip (any action) is recorded too: there no start is winning, the job
refuses to train, and the table shows what the one-step shield and no shield do instead.

Part "learners" (slip 0, 16 rooms as in `keel train quickstart`): QRM, DiRL and PPO (shaped reward)
on three specs of growing length, satisfaction against env steps, with the game shield and without.

Part "quickstart": `keel train quickstart` as a user runs it (a subprocess), at slip 0, and the issue's
`--set env.slip=0.1` (uniform slip: now refused before training, with the reason).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

# One BLAS thread: the policies here are tiny, and on a loaded machine a multi-threaded BLAS spins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from keel.envs.rooms_layout import NINE_ROOMS  # noqa: E402

NOTE = ("measured on a shared 2-core machine under load from other engineers' jobs: times are noisy; "
        "satisfaction and violation counts are exact for the seeds given")

REACH_AVOID = "F(goal_a & F goal_b) & G !hazard"
NINE_HAZARDS = [[list(room), list(frac)] for room, frac in NINE_ROOMS.hazards]  # the shipped ones
TRAPS = [[[1, 0], [0.2, 0.5]], [[1, 0], [0.34, 0.34]], [[2, 1], [0.2, 0.5]], [[2, 1], [0.34, 0.34]]]
LAYOUTS = {"9 rooms (6x6 cells)": None, "9 rooms + traps": NINE_HAZARDS + TRAPS}
NOISE_ENV = dict(n_rooms=9, room_size=6, max_episode_steps=400, random_start=True)
SHIELDS = {"game/preemptive": ("game", "preemptive"), "game/postposed": ("game", "postposed"),
           "one_step": ("one_step", "preemptive"), "none": ("game", "none")}

SPECS = [
    ("reach A", "F goal_a & G !hazard", "achieve goal_a ensuring !hazard"),
    ("A then B", REACH_AVOID, "(achieve goal_a; achieve goal_b) ensuring !hazard"),
    ("A then B then C", "F(goal_a & F(goal_b & F goal_c)) & G !hazard",
     "(achieve goal_a; achieve goal_b; achieve goal_c) ensuring !hazard"),
]
LEARN_ENV = dict(n_rooms=16, room_size=5, slip=0.0, max_episode_steps=400, random_start=True)
GAMMA = 0.99


def _learner(kind: str, world, spectrl: str, seed: int, shield: str, budget: int):
    from keel.rl.dirl import DiRLConfig
    from keel.rl.ppo import PPOConfig
    from keel.rl.qrm import QRMConfig
    from keel.rl.spec_learners import make_learner

    if kind == "qrm":
        cfg, n = QRMConfig(gamma=GAMMA), 32
    elif kind == "dirl":
        cfg, n = DiRLConfig(spectrl=spectrl, rollouts=100, gamma=GAMMA), 32
    else:
        cfg, n = PPOConfig(n_steps=32, batch_size=512, n_epochs=4, lr=2.5e-3, gamma=GAMMA, ent_coef=0.01), 64
    return make_learner("ppo" if kind.startswith("ppo") else kind, world, cfg, n, seed, shield, budget)


def run_one(kind: str, world_kw: dict, formula: str, spectrl: str, seed: int, solver: str, shield: str,
            budget: int, eval_every: int | None, eval_episodes: int) -> dict:
    """Train one learner; satisfaction of the greedy policy every `eval_every` steps; final evaluation."""
    from keel.errors import KeelError
    from keel.rl.product import build_world
    from keel.rl.product_env import evaluate_policy

    try:
        world = build_world(formula=formula, gamma=GAMMA, shaping=kind != "ppo_sparse", shield_solver=solver,
                            check_start=shield != "none", **world_kw)
    except KeelError as e:
        return {"refused": str(e)}
    learner = _learner(kind, world, spectrl, seed, shield, budget)
    curve: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    next_eval = eval_every
    while not learner.finished and learner.env_steps < budget:
        learner.train_step()
        if next_eval is not None and learner.env_steps >= next_eval:
            next_eval += eval_every
            curve.append((learner.env_steps, evaluate_policy(world, learner.policy(), eval_episodes, 777 + seed,
                                                             shield)["satisfaction"]))
    seconds = time.perf_counter() - t0
    final = evaluate_policy(world, learner.policy(), 200, 4242 + seed, shield)
    c = learner.counters()
    return {"curve": curve, "satisfaction": final["satisfaction"], "violations_train": int(c.violations),
            "violations_eval": final["violations_eval"], "overrides_train": int(c.overrides),
            "env_steps": int(c.env_steps), "seconds": round(seconds, 2)}


def steps_to(curve: list, level: float) -> int | None:
    return next((s for s, v in curve if v >= level), None)


def run_quickstart(*overrides: str) -> dict:
    """`keel train quickstart --json [--set ...]` as a user runs it, in a scratch directory."""
    keel = Path(sys.executable).parent / "keel"
    cmd = [str(keel), "train", "quickstart", "--json", *[x for o in overrides for x in ("--set", o)]]
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "KEEL_STOP_AFTER_ITERATIONS": ""})
        wall = time.perf_counter() - t0
    shown = "keel train quickstart --json" + "".join(f" --set {o}" for o in overrides)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if proc.returncode != 0:
        return {"command": shown, "exit_code": proc.returncode, "error": out.get("error", proc.stderr[-500:])}
    return {"command": shown, "exit_code": 0, "process_wall_seconds": round(wall, 1),
            **{k: out[k] for k in ("satisfaction", "violations_train", "violations_eval", "env_steps",
                                   "wall_seconds", "eval_episodes", "learner", "shield", "shield_solver", "slip")}}


def _pool_map(jobs: list[tuple], workers: int) -> dict:
    out = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, *args): key for key, args in jobs}
        for fut in as_completed(futures):
            key = futures[fut]
            out[key] = r = fut.result()
            msg = "refused" if "refused" in r else (f"sat={r['satisfaction']:.2f} viol_train={r['violations_train']} "
                                                    f"viol_eval={r['violations_eval']} steps={r['env_steps']}")
            print(" / ".join(map(str, key)), msg, flush=True)
    return out


def part_noise(seeds: list[int], budget: int, workers: int) -> tuple[dict, list]:
    jobs = []
    for layout, hazards in LAYOUTS.items():
        for mode, slips in (("sideways", (0.0, 0.1, 0.2)), ("uniform", (0.1,))):
            for slip in slips:
                env = {**NOISE_ENV, "hazards": hazards, "slip": slip, "slip_mode": mode}
                for sname, (solver, shield) in SHIELDS.items():
                    for kind, ks in (("qrm", seeds), ("dirl", seeds[:1])):
                        if mode == "uniform" and sname == "game/postposed":
                            continue
                        for seed in (ks if mode == "sideways" else ks[:1]):
                            key = (layout, f"{mode} {slip}", sname, kind, seed)
                            jobs.append((key, (kind, env, REACH_AVOID, SPECS[1][2], seed, solver, shield, budget,
                                               None, 0)))
    runs = _pool_map(jobs, workers)
    table: dict = {}
    for (layout, slip, sname, kind, seed), r in sorted(runs.items()):
        table.setdefault(f"{layout} / slip {slip} / {kind}", {}).setdefault(sname, []).append({"seed": seed, **r})
    rows = {}
    for name, by_shield in table.items():
        rows[name] = {}
        for sname, rs in by_shield.items():
            if any("refused" in r for r in rs):
                rows[name][sname] = {"refused": rs[0]["refused"]}
                continue
            rows[name][sname] = {
                "seeds": len(rs), "satisfaction": round(float(np.mean([r["satisfaction"] for r in rs])), 3),
                "violations_train": int(sum(r["violations_train"] for r in rs)),
                "violations_eval": int(sum(r["violations_eval"] for r in rs)),
                "overrides_train": int(sum(r["overrides_train"] for r in rs)),
                "env_steps_per_run": rs[0]["env_steps"],
            }
    print(f"\n{'layout / slip / learner':52s} " + "".join(f"{s:>26s}" for s in SHIELDS))
    for name, row in rows.items():
        cells = []
        for s in SHIELDS:
            x = row.get(s)
            cells.append("-" if x is None else "refused" if "refused" in x else
                         f"sat {x['satisfaction']:.2f} v {x['violations_train']}/{x['violations_eval']}")
        print(f"{name:52s} " + "".join(f"{c:>26s}" for c in cells))
    from resultsfile import goal

    game = [x for row in rows.values() for s, x in row.items() if s.startswith("game/") and "refused" not in x]
    game_sideways = [x for name, row in rows.items() if "sideways" in name
                     for s, x in row.items() if s.startswith("game/")]
    one_noisy = sum(x["violations_train"] + x["violations_eval"] for name, row in rows.items()
                    if "sideways 0.0" not in name for s, x in row.items() if s == "one_step" and "refused" not in x)
    none_noisy = sum(x["violations_train"] + x["violations_eval"] for name, row in rows.items()
                     if "sideways 0.0" not in name for s, x in row.items() if s == "none" and "refused" not in x)
    viol = sum(x["violations_train"] + x["violations_eval"] for x in game)
    refused_uniform = all("refused" in x for name, row in rows.items() if "uniform" in name
                          for s, x in row.items() if s.startswith("game/"))
    goals = [
        goal("violations with the game shield (pre-emptive and post-posed), slip 0 / 0.1 / 0.2, winning layouts, "
             "training + evaluation", viol, "0", "count", viol == 0 and none_noisy > 0 if none_noisy else None,
             None if none_noisy else "the unshielded runs never violated either, so this could not fail"),
        goal("every game-shield run under sideways slip trained (start winning)",
             sum("refused" not in x for x in game_sideways), len(game_sideways), "runs",
             all("refused" not in x for x in game_sideways)),
        goal("uniform slip: the game shield refuses before training (no winning start)", refused_uniform, True, "bool",
             refused_uniform),
    ]
    return {"rows": rows, "runs": {k: v for k, v in table.items()}, "budget_env_steps": budget,
            "env": NOISE_ENV, "layouts": LAYOUTS, "formula": REACH_AVOID, "spectrl": SPECS[1][2],
            "one_step_violations_with_slip": one_noisy, "unshielded_violations_with_slip": none_noisy}, goals


def part_learners(seeds: list[int], budget: dict, workers: int, eval_episodes: int) -> tuple[dict, list]:
    jobs = []
    for spec in SPECS:
        for kind in budget:
            for shield in ("preemptive", "none"):
                for seed in (seeds if not kind.startswith("ppo") else seeds[:1]):
                    every = budget[kind] // (5 if kind.startswith("ppo") else 10)
                    jobs.append(((spec[0], kind, shield, seed),
                                 (kind, LEARN_ENV, spec[1], spec[2], seed, "game", shield, budget[kind], every,
                                  eval_episodes)))
    runs = _pool_map(jobs, workers)
    table = {}
    for spec in SPECS:
        for kind in budget:
            sh = [runs[k] for k in sorted(runs) if k[:3] == (spec[0], kind, "preemptive")]
            ns = [runs[k] for k in sorted(runs) if k[:3] == (spec[0], kind, "none")]
            table[f"{spec[0]} / {kind}"] = {
                "budget_env_steps": budget[kind], "seeds": len(sh),
                "satisfaction_shielded": round(float(np.mean([r["satisfaction"] for r in sh])), 3),
                "satisfaction_unshielded": round(float(np.mean([r["satisfaction"] for r in ns])), 3),
                "steps_to_0.9": [steps_to(r["curve"], 0.9) for r in sh],
                "violations_train_shielded": int(sum(r["violations_train"] for r in sh)),
                "violations_train_unshielded": int(sum(r["violations_train"] for r in ns)),
                "violations_eval_shielded": int(sum(r["violations_eval"] for r in sh)),
                "env_steps_used": [r["env_steps"] for r in sh],
                "seconds_mean": round(float(np.mean([r["seconds"] for r in sh])), 1),
            }
    for name, row in table.items():
        print(f"{name:32s} sat {row['satisfaction_shielded']:.3f} / none {row['satisfaction_unshielded']:.3f} "
              f"viol {row['violations_train_shielded']} / none {row['violations_train_unshielded']} "
              f"steps to 0.9 {row['steps_to_0.9']}")
    from resultsfile import goal

    shielded = sum(r["violations_train_shielded"] + r["violations_eval_shielded"] for r in table.values())
    unshielded = sum(r["violations_train_unshielded"] for r in table.values())
    over = [r for r in table.values() if max(r["env_steps_used"]) > r["budget_env_steps"]]
    goals = [
        goal("violations with the game shield, slip 0, all learners and specs (train + eval)", shielded, "0", "count",
             shielded == 0 if unshielded else None, None if unshielded else "unshielded runs never violated"),
        goal("every run stays within its env-step budget (DiRL's estimation rollouts included)", len(over), "0",
             "runs over budget", not over),
    ]
    return {"table": table, "runs": {" / ".join(map(str, k)): v for k, v in sorted(runs.items())},
            "budgets_env_steps": budget, "env": LEARN_ENV, "specs": SPECS}, goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, small budgets (a few minutes)")
    parser.add_argument("--noise-steps", type=int, default=300_000, help="env steps per run in the noise part")
    parser.add_argument("--tabular-steps", type=int, default=400_000, help="QRM / DiRL budget, learners part")
    parser.add_argument("--ppo-steps", type=int, default=60_000, help="PPO's budget, learners part")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parts", default="quickstart,noise,learners")
    args = parser.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    scale = 4 if args.quick else 1
    parts = args.parts.split(",")
    tables, goals = {"quick": args.quick, "seeds": seeds}, []
    from resultsfile import goal, write_results

    load_start = list(os.getloadavg())
    if "quickstart" in parts:
        qs = run_quickstart()
        noisy = run_quickstart("env.slip=0.1")
        print(f"quickstart: {qs}\nquickstart at slip 0.1: {noisy}", flush=True)
        tables["quickstart"] = {"slip_0": qs, "slip_0.1_uniform": noisy}
        goals += [
            goal("quickstart satisfaction over 200 evaluation episodes", qs.get("satisfaction"), ">= 0.9", "rate",
                 qs.get("satisfaction", 0) >= 0.9),
            goal("quickstart violations in training + evaluation", qs.get("violations_train", -1) +
                 qs.get("violations_eval", 0), "0", "count", qs.get("violations_train") == 0
                 and qs.get("violations_eval") == 0),
            goal("`keel train quickstart --set env.slip=0.1`: refused before training with the reason (exit 2)",
                 noisy.get("exit_code"), 2, "exit code", noisy.get("exit_code") == 2
                 and "winning region" in str(noisy.get("error"))),
        ]
    if "noise" in parts:
        t, g = part_noise(seeds, args.noise_steps // scale, args.workers)
        tables["noise"], goals = t, goals + g
    if "learners" in parts:
        budget = {"qrm": args.tabular_steps // scale, "dirl": args.tabular_steps // scale,
                  "ppo_shaped": args.ppo_steps // scale}
        t, g = part_learners(seeds[:2], budget, args.workers, 50)
        tables["learners"], goals = t, goals + g
    print()
    for g in goals:
        flag = {True: "MET    ", False: "NOT MET", None: "n/a    "}[g["met"]]
        print(f"  {flag}  {g['name']}: {g['value']} {g['unit']} (target {g['target']})")
    out = write_results("spec_rl", tables, goals, NOTE, load_average_start=load_start)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
