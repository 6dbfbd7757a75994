"""Spec-guided RL in the 16-rooms grid: four learners side by side, with and without the shield.

    python benchmarks/spec_rl.py [--quick]     -> prints tables, writes benchmarks/results/spec_rl.json

On three specs of growing length (reach A; A then B; A then B then C; hazards always to be avoided),
for 3 seeds each (1 with --quick), it records satisfaction over greedy evaluation episodes against
environment steps for
    ppo_sparse   Keel PPO on env x automaton (obs = cell one-hot ++ automaton one-hot), sparse spec reward
    ppo_shaped   the same with the reward machine's potential-based shaping
    qrm          Q-learning for reward machines with counterfactual updates (+ shaping)
    dirl         DiRL over the SPECTRL version of the spec (tabular edge policies, Dijkstra path)
all with the pre-emptive shield, and the safety violations during training of each learner with the
shield and without it (no shield: the same learner, same seed, same budget; PPO: seed 0 only, as its
runs cost ~50x more CPU per env step, which is also why its budget is smaller). The quickstart preset is
run as `keel train quickstart` (a subprocess, so its wall time includes start-up). The throughput
measurements of `benchmarks/throughput.py` (batched env vs SyncVectorEnv, Keel PPO vs SB3) run in the
same process and their goals are merged.
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

# One BLAS thread: the policies here are tiny, and on a loaded machine a multi-threaded BLAS spins
# instead of computing (measured: 35 ms vs ~1 ms per 50-row forward under load). Set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RESULTS = ROOT / "benchmarks" / "results" / "spec_rl.json"
NOTE = ("measured on a shared 2-core machine under load from other engineers' jobs: absolute times and "
        "rates are noisy; satisfaction and violation counts are exact for the seeds given")

SPECS = [
    ("reach A", "F goal_a & G !hazard", "achieve goal_a ensuring !hazard"),
    ("A then B", "F(goal_a & F goal_b) & G !hazard", "(achieve goal_a; achieve goal_b) ensuring !hazard"),
    ("A then B then C", "F(goal_a & F(goal_b & F goal_c)) & G !hazard",
     "(achieve goal_a; achieve goal_b; achieve goal_c) ensuring !hazard"),
]
LEARNERS = ["ppo_sparse", "ppo_shaped", "qrm", "dirl"]
ENV = dict(n_rooms=16, room_size=5, slip=0.0, max_episode_steps=400, random_start=True)
GAMMA = 0.99


def _world(formula: str, shaping: bool):
    from keel.rl.product import build_world

    return build_world(formula=formula, gamma=GAMMA, shaping=shaping, **ENV)


def run_one(learner: str, spec: tuple, seed: int, shield: str, budget: int, eval_every: int,
            eval_episodes: int) -> dict:
    """Train one learner on one spec; satisfaction of the greedy policy every `eval_every` env steps."""
    from keel.rl.product import evaluate_policy

    _, formula, spectrl = spec
    world = _world(formula, shaping=learner != "ppo_sparse")
    curve: list[tuple[int, float]] = []
    t0 = time.perf_counter()

    def point(steps: int, policy) -> None:
        curve.append((int(steps), evaluate_policy(world, policy, eval_episodes, 777 + seed, shield)["satisfaction"]))

    if learner.startswith("ppo"):
        from keel.rl.ppo import PPOConfig, train_ppo
        from keel.rl.product import PolicyScores, ProductVecEnv

        env = ProductVecEnv(world, 64, seed, shield)
        cfg = PPOConfig(n_steps=32, batch_size=512, n_epochs=4, lr=2.5e-3, gamma=GAMMA, ent_coef=0.01, seed=seed)
        next_eval = [eval_every]

        def callback(policy, info) -> None:
            if info["step"] >= next_eval[0]:
                next_eval[0] += eval_every
                point(info["step"], PolicyScores(policy, world))

        policy, stats = train_ppo(cfg, env, budget, callback=callback)
        if not curve or curve[-1][0] != stats["steps"]:
            point(stats["steps"], PolicyScores(policy, world))
        final_policy, counters, steps = PolicyScores(policy, world), env.stats, stats["steps"]
    else:
        if learner == "qrm":
            from keel.rl.qrm import QRMConfig, QRMLearner

            agent = QRMLearner(world, QRMConfig(gamma=GAMMA), 32, seed, shield, epsilon_end=0.01, decay_steps=budget)
        else:
            from keel.rl.dirl import DiRLLearner

            agent = DiRLLearner(world, spectrl, budget, 32, seed, shield, gamma=GAMMA, rollouts=100)
        next_eval = eval_every
        while (not agent.finished) if learner == "dirl" else agent.env_steps < budget:
            agent.train_iteration()
            if agent.env_steps >= next_eval:
                next_eval += eval_every
                point(agent.env_steps, agent.policy())
        if not curve or curve[-1][0] != agent.env_steps:
            point(agent.env_steps, agent.policy())
        final_policy, counters, steps = agent.policy(), agent.stats, agent.env_steps
    seconds = time.perf_counter() - t0
    final = evaluate_policy(world, final_policy, 200, 4242 + seed, shield)
    return {"curve": curve, "satisfaction": final["satisfaction"], "violations_train": int(counters.violations),
            "violations_eval": final["violations_eval"], "env_steps": int(steps), "seconds": round(seconds, 2)}


def steps_to(curve: list, level: float) -> int | None:
    return next((s for s, v in curve if v >= level), None)


def run_quickstart() -> dict:
    """`keel train quickstart --json` as a user runs it, in a scratch directory."""
    keel = Path(sys.executable).parent / "keel"
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([str(keel), "train", "quickstart", "--json"], cwd=tmp, capture_output=True, text=True,
                              timeout=900, env={**os.environ, "KEEL_STOP_AFTER_ITERATIONS": ""})
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"keel train quickstart failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"command": "keel train quickstart --json", "process_wall_seconds": round(wall, 1),
            **{k: out[k] for k in ("satisfaction", "violations_train", "violations_eval", "env_steps",
                                   "wall_seconds", "eval_episodes", "learner", "shield", "formula")}}


def goal(name, value, target, unit, met) -> dict:
    return {"name": name, "value": value, "target": target, "unit": unit, "met": bool(met)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, smaller budgets (a few minutes)")
    parser.add_argument("--skip-throughput", action="store_true", help="leave out benchmarks/throughput.py")
    parser.add_argument("--full-throughput", action="store_true",
                        help="throughput.py's full sizes (3 seeds of 100k PPO steps per side); default: its quick sizes")
    parser.add_argument("--ppo-steps", type=int, default=60_000, help="PPO's env-step budget per run")
    parser.add_argument("--workers", type=int, default=2, help="processes for the learner runs")
    args = parser.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    # PPO costs ~50x more CPU per env step than the tabular learners here, so it gets a smaller budget and
    # its unshielded (violation-count) runs use seed 0 only; the tabular learners get every seed both ways.
    budget = {"qrm": 400_000, "dirl": 400_000, "ppo_sparse": args.ppo_steps, "ppo_shaped": args.ppo_steps}
    if args.quick:
        budget = {k: v // 4 for k, v in budget.items()}
    eval_every = {k: v // (5 if k.startswith("ppo") else 10) for k, v in budget.items()}
    eval_episodes = 50

    quick_start = run_quickstart()
    print(f"quickstart: {quick_start}", flush=True)

    jobs = [(spec, learner, shield, seed) for spec in SPECS for learner in LEARNERS
            for shield in ("preemptive", "none") for seed in seeds
            if not (learner.startswith("ppo") and shield == "none" and seed != seeds[0])]
    runs: dict = {}
    # Two worker processes (the machine has two cores); every run is seeded, so results do not depend on
    # which worker runs it; times are per run.
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, learner, spec, seed, shield, budget[learner], eval_every[learner],
                               eval_episodes): (spec, learner, shield, seed) for spec, learner, shield, seed in jobs}
        for fut in as_completed(futures):
            spec, learner, shield, seed = futures[fut]
            r = fut.result()
            runs.setdefault(spec[0], {}).setdefault(learner, {}).setdefault(shield, []).append({"seed": seed, **r})
            print(f"{spec[0]:16s} {learner:10s} shield={shield:10s} seed={seed} sat={r['satisfaction']:.2f} "
                  f"viol_train={r['violations_train']} steps={r['env_steps']} {r['seconds']}s", flush=True)
    for by_learner in runs.values():
        for by_shield in by_learner.values():
            for rs in by_shield.values():
                rs.sort(key=lambda r: r["seed"])

    table = {}
    for spec_name in [x[0] for x in SPECS]:
        for learner in LEARNERS:
            sh, ns = runs[spec_name][learner]["preemptive"], runs[spec_name][learner]["none"]
            table[f"{spec_name} / {learner}"] = {
                "budget_env_steps": budget[learner],
                "seeds_shielded": len(sh), "seeds_unshielded": len(ns),
                "satisfaction_shielded": round(float(np.mean([r["satisfaction"] for r in sh])), 3),
                "satisfaction_unshielded": round(float(np.mean([r["satisfaction"] for r in ns])), 3),
                "steps_to_0.9": [steps_to(r["curve"], 0.9) for r in sh],
                "violations_train_shielded": int(sum(r["violations_train"] for r in sh)),
                "violations_train_unshielded": int(sum(r["violations_train"] for r in ns)),
                "violations_eval_shielded": int(sum(r["violations_eval"] for r in sh)),
                "seconds_mean": round(float(np.mean([r["seconds"] for r in sh])), 1),
            }
    print(f"\n{'spec / learner':32s} {'budget':>8s} {'sat(shield)':>12s} {'sat(none)':>10s} {'viol shield':>12s} "
          f"{'viol none':>10s} {'steps to 0.9 (per seed)':>26s} {'s/run':>7s}")
    for name, row in table.items():
        print(f"{name:32s} {row['budget_env_steps']:>8d} {row['satisfaction_shielded']:>12.3f} "
              f"{row['satisfaction_unshielded']:>10.3f} {row['violations_train_shielded']:>12d} "
              f"{row['violations_train_unshielded']:>10d} {str(row['steps_to_0.9']):>26s} {row['seconds_mean']:>7.1f}")

    shielded_viol = sum(r["violations_train"] + r["violations_eval"] for by_l in runs.values()
                        for by_s in by_l.values() for r in by_s["preemptive"])
    goals = [
        goal("quickstart satisfaction over 200 evaluation episodes", quick_start["satisfaction"], ">= 0.9",
             "rate", quick_start["satisfaction"] >= 0.9),
        goal("quickstart violations in training", quick_start["violations_train"], "0", "count",
             quick_start["violations_train"] == 0),
        goal("quickstart violations in evaluation", quick_start["violations_eval"], "0", "count",
             quick_start["violations_eval"] == 0),
        goal("keel train quickstart wall time (process, 2 shared cores)", quick_start["process_wall_seconds"],
             "< 180", "s", quick_start["process_wall_seconds"] < 180),
        goal("violations with the pre-emptive shield, all benchmark runs (train + eval)", shielded_viol, "0",
             "count", shielded_viol == 0),
    ]
    throughput = None
    if not args.skip_throughput:
        from throughput import measure_env_throughput, measure_ppo_vs_sb3

        tq = args.quick or not args.full_throughput
        env_table, env_goals = measure_env_throughput(tq)
        ppo_table, ppo_goals = measure_ppo_vs_sb3(tq)
        throughput = {"env_throughput": env_table, "ppo_vs_sb3": ppo_table, "quick": tq,
                      "source": "benchmarks/throughput.py (measure_env_throughput, measure_ppo_vs_sb3)"}
        goals += env_goals + ppo_goals
    print()
    for g in goals:
        print(f"  {'MET    ' if g['met'] else 'NOT MET'}  {g['name']}: {g['value']} {g['unit']} (target {g['target']})")

    from keel.io import atomic_write_json

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS, {
        "quick": args.quick, "seeds": seeds, "env": ENV, "gamma": GAMMA, "specs": SPECS,
        "budgets_env_steps": budget, "eval_episodes_per_point": eval_episodes, "quickstart": quick_start,
        "table": table, "runs": runs, "throughput": throughput, "goals": goals, "notes": NOTE,
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    })
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
