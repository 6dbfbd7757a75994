"""Throughput, side by side in one run: Keel's batched rooms env and Keel's PPO against their peers.

    python benchmarks/throughput.py [--quick]     -> prints tables, writes benchmarks/results/throughput.json

1. `measure_env_throughput`: steps/s of `BatchedRooms` (numpy, N copies in one array step) against
   `gymnasium.vector.SyncVectorEnv` of N single `RoomsGrid` envs, same N, same pre-drawn random
   actions. Goal: >= 10x.
2. `measure_ppo_vs_sb3`: Keel PPO against Stable-Baselines3 PPO on CartPole-v1 with the same
   hyper-parameters (listed in the JSON) and the same number of env steps; env steps/s of training and
   the final mean return over evaluation episodes. Keel runs twice: on Gymnasium's numpy-vectorised
   `CartPoleVectorEnv` (its fast path) and on `SyncVectorEnv` of `gym.make("CartPole-v1")` (the same
   per-env Python stepping SB3's DummyVecEnv does), so the table shows where the speed comes from.
   Goal: >= 3x env steps/s at equal final return, where "equal" means Keel's mean evaluation return
   (over seeds) is at least 90% of SB3's, or both are at least 475 (CartPole-v1's "solved" mark).

`benchmarks/spec_rl.py` imports and calls both functions; each returns `(table_dict, goals_list)`.
Both sides run with one torch thread (the machine is shared; tiny MLPs gain nothing from more).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # resultsfile
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # keel, when run from a checkout
RESULTS = Path(__file__).resolve().parent / "results" / "throughput.json"
LOAD_NOTE = ("measured on a shared 2-core machine under load from other engineers' jobs; absolute "
             "rates are noisy, the side-by-side ratios are what to read")

# Same hyper-parameters on both sides (SB3 names on the left, Keel's PPOConfig on the right).
HPARAMS = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=4, learning_rate=1e-3, gamma=0.99,
               gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
               net_arch=[64, 64], activation="tanh", normalize_advantage=True, adam_eps=1e-5)


def _goal(name, value, target, unit, met) -> dict:
    return {"name": name, "value": round(float(value), 3), "target": target, "unit": unit, "met": bool(met)}


# --- 1. environment stepping ----------------------------------------------------------------------
def measure_env_throughput(quick: bool = False) -> tuple[dict, list[dict]]:
    import gymnasium as gym

    from keel.envs.rooms import BatchedRooms, RoomsGrid

    n_envs = 64
    steps = 1_000 if quick else 2_000
    kw = dict(n_rooms=16, obs_mode="index", slip=0.1, max_episode_steps=100)
    actions = np.random.default_rng(0).integers(5, size=(steps, n_envs))
    sides = {
        "keel BatchedRooms": BatchedRooms(num_envs=n_envs, **kw),
        "gymnasium SyncVectorEnv(RoomsGrid)": gym.vector.SyncVectorEnv(
            [lambda: RoomsGrid(**kw) for _ in range(n_envs)]),
    }
    best = {name: [0.0, 0.0] for name in sides}
    for _ in range(3):  # passes interleaved, best of 3 per side: the least disturbed by other jobs
        for name, envs in sides.items():
            envs.reset(seed=0)
            t0, c0 = time.perf_counter(), time.process_time()
            for a in actions:
                envs.step(a)
            wall, cpu = time.perf_counter() - t0, max(time.process_time() - c0, 1e-9)
            best[name] = [max(best[name][0], steps * n_envs / wall), max(best[name][1], steps * n_envs / cpu)]
    rows = {name: {"num_envs": n_envs, "env_steps": steps * n_envs, "steps_per_s": round(w),
                   "steps_per_cpu_s": round(c)} for name, (w, c) in best.items()}
    for envs in sides.values():
        envs.close()
    keel, sync = rows["keel BatchedRooms"], rows["gymnasium SyncVectorEnv(RoomsGrid)"]
    ratio, ratio_cpu = keel["steps_per_s"] / sync["steps_per_s"], keel["steps_per_cpu_s"] / sync["steps_per_cpu_s"]
    table = {"rows": rows, "ratio_wall": round(ratio, 2), "ratio_cpu": round(ratio_cpu, 2),
             "env": "16-rooms grid, slip 0.1, random actions, best of 3 passes", "notes": LOAD_NOTE}
    return table, [_goal("batched rooms env steps/s vs SyncVectorEnv (wall clock)", ratio, ">= 10", "x",
                         ratio >= 10)]


# --- 2. PPO on CartPole ---------------------------------------------------------------------------
def _evaluate(act, episodes: int, seed: int) -> float:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    total = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            ret += r
            done = term or trunc
        total.append(ret)
    return float(np.mean(total))


def _run_sb3(total_steps: int, seed: int, eval_episodes: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    h = HPARAMS
    env = make_vec_env("CartPole-v1", n_envs=h["n_envs"], seed=seed)
    model = PPO(
        "MlpPolicy", env, n_steps=h["n_steps"], batch_size=h["batch_size"], n_epochs=h["n_epochs"],
        learning_rate=h["learning_rate"], gamma=h["gamma"], gae_lambda=h["gae_lambda"],
        clip_range=h["clip_range"], ent_coef=h["ent_coef"], vf_coef=h["vf_coef"],
        max_grad_norm=h["max_grad_norm"], normalize_advantage=h["normalize_advantage"],
        policy_kwargs=dict(net_arch=dict(pi=h["net_arch"], vf=h["net_arch"]), activation_fn=torch.nn.Tanh,
                           ortho_init=True, optimizer_kwargs=dict(eps=h["adam_eps"])),
        seed=seed, device="cpu", verbose=0,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(total_steps)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ret = _evaluate(lambda o: int(model.predict(o, deterministic=True)[0]), eval_episodes, 10_000)
    return {"env_steps": int(model.num_timesteps), "seconds": seconds, "cpu_seconds": cpu, "eval_return": ret}


def _run_keel(total_steps: int, seed: int, eval_episodes: int, vector: str) -> dict:
    import gymnasium as gym
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    from keel.rl.ppo import PPOConfig, train_ppo

    h = HPARAMS
    cfg = PPOConfig(n_steps=h["n_steps"], batch_size=h["batch_size"], n_epochs=h["n_epochs"],
                    lr=h["learning_rate"], gamma=h["gamma"], gae_lambda=h["gae_lambda"],
                    clip_coef=h["clip_range"], ent_coef=h["ent_coef"], vf_coef=h["vf_coef"],
                    max_grad_norm=h["max_grad_norm"], norm_adv=h["normalize_advantage"],
                    hidden=h["net_arch"], activation=h["activation"], adam_eps=h["adam_eps"], seed=seed)
    if vector == "numpy":
        envs = CartPoleVectorEnv(num_envs=h["n_envs"])
    else:
        envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(h["n_envs"])])
    t0, c0 = time.perf_counter(), time.process_time()
    policy, stats = train_ppo(cfg, envs, total_steps)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ret = _evaluate(lambda o: int(policy.act(o, deterministic=True)), eval_episodes, 10_000)
    return {"env_steps": int(stats["steps"]), "seconds": seconds, "cpu_seconds": cpu, "eval_return": ret}


def measure_ppo_vs_sb3(quick: bool = False) -> tuple[dict, list[dict]]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    total_steps = 30_000 if quick else 100_000
    seeds = [0] if quick else [0, 1, 2]
    eval_episodes = 10 if quick else 20
    sides = {"sb3 PPO (DummyVecEnv)": lambda s: _run_sb3(total_steps, s, eval_episodes),
             "keel PPO (CartPoleVectorEnv, numpy)": lambda s: _run_keel(total_steps, s, eval_episodes, "numpy"),
             "keel PPO (SyncVectorEnv)": lambda s: _run_keel(total_steps, s, eval_episodes, "sync")}
    # warm-up, untimed: first-use imports and allocations on every side
    _run_sb3(2_048, 0, 1), _run_keel(2_048, 0, 1, "numpy"), _run_keel(2_048, 0, 1, "sync")
    per_seed: dict[str, list[dict]] = {k: [] for k in sides}
    for seed in seeds:  # interleaved, so a burst of load from elsewhere hits every side alike
        for name, fn in sides.items():
            per_seed[name].append(fn(seed))
    torch.set_num_threads(threads)
    rows = {}
    for name, runs in per_seed.items():
        steps = sum(r["env_steps"] for r in runs)
        secs, cpu = sum(r["seconds"] for r in runs), sum(r["cpu_seconds"] for r in runs)
        rows[name] = {"env_steps_per_seed": runs[0]["env_steps"], "steps_per_s": round(steps / secs),
                      "steps_per_cpu_s": round(steps / cpu),
                      "eval_return_mean": round(float(np.mean([r["eval_return"] for r in runs])), 1),
                      "eval_return_per_seed": [round(r["eval_return"], 1) for r in runs],
                      "steps_per_s_per_seed": [round(r["env_steps"] / r["seconds"]) for r in runs]}
    sb3, fast, sync = (rows[k] for k in sides)
    ratio = fast["steps_per_s"] / sb3["steps_per_s"]
    ratio_sync = sync["steps_per_s"] / sb3["steps_per_s"]
    ratio_cpu = fast["steps_per_cpu_s"] / sb3["steps_per_cpu_s"]
    ratio_sync_cpu = sync["steps_per_cpu_s"] / sb3["steps_per_cpu_s"]
    equal = fast["eval_return_mean"] >= 0.9 * sb3["eval_return_mean"] or min(
        fast["eval_return_mean"], sb3["eval_return_mean"]) >= 475
    table = {
        "rows": rows, "hyperparameters": HPARAMS, "seeds": seeds, "eval_episodes": eval_episodes,
        "ratio_keel_numpy_vs_sb3": round(ratio, 2), "ratio_keel_sync_vs_sb3": round(ratio_sync, 2),
        "ratio_cpu_keel_numpy_vs_sb3": round(ratio_cpu, 2), "ratio_cpu_keel_sync_vs_sb3": round(ratio_sync_cpu, 2),
        "equal_return": bool(equal),
        "return_criterion": "Keel's mean deterministic evaluation return over seeds >= 0.9 x SB3's, "
                            "or both >= 475",
        "notes": LOAD_NOTE + "; one torch thread on both sides",
    }
    goals = [
        _goal("keel PPO env steps/s of training vs SB3 (CartPole-v1, same hyper-parameters, wall clock)", ratio,
              ">= 3", "x", ratio >= 3 and equal),
        _goal("keel PPO env steps per CPU-second of training vs SB3 (same run)", ratio_cpu, ">= 3", "x",
              ratio_cpu >= 3 and equal),
        _goal("keel PPO final eval return / SB3's (CartPole-v1)",
              fast["eval_return_mean"] / max(sb3["eval_return_mean"], 1e-9), ">= 0.9 (or both >= 475)", "ratio",
              equal),
    ]
    return table, goals


def _print_table(title: str, rows: dict) -> None:
    cols = sorted({k for r in rows.values() for k in r if not isinstance(r[k], list)})
    print(f"\n{title}")
    print(f"  {'':40s}" + "".join(f"{c:>20s}" for c in cols))
    for name, r in rows.items():
        print(f"  {name:40s}" + "".join(f"{r.get(c, ''):>20}" for c in cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and one seed (about a minute)")
    args = parser.parse_args()
    env_table, env_goals = measure_env_throughput(args.quick)
    _print_table(f"env throughput (wall {env_table['ratio_wall']}x, cpu {env_table['ratio_cpu']}x)",
                 env_table["rows"])
    ppo_table, ppo_goals = measure_ppo_vs_sb3(args.quick)
    _print_table(f"PPO on CartPole-v1 (wall: keel numpy {ppo_table['ratio_keel_numpy_vs_sb3']}x, keel sync "
                 f"{ppo_table['ratio_keel_sync_vs_sb3']}x SB3; cpu: {ppo_table['ratio_cpu_keel_numpy_vs_sb3']}x, "
                 f"{ppo_table['ratio_cpu_keel_sync_vs_sb3']}x)", ppo_table["rows"])
    goals = env_goals + ppo_goals
    print()
    for g in goals:
        print(f"  {'MET ' if g['met'] else 'NOT MET'}  {g['name']}: {g['value']} {g['unit']} (target {g['target']})")
    from resultsfile import write_results

    out = write_results("throughput", {"quick": args.quick, "env_throughput": env_table, "ppo_vs_sb3": ppo_table},
                        goals, LOAD_NOTE)
    assert out == RESULTS
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
