"""Agents that act (issue 9): multi-turn rollout speed, training-step cost, and what training does.

    python benchmarks/agentic.py --part speed             # SmolLM2: rollout tokens/s vs model.generate per turn
    python benchmarks/agentic.py --part learning          # toolworld base vs SFT vs SFT+GRPO, webworld, shopping
    python benchmarks/agentic.py --quick                  # smoke run of every part on the tiny model

speed: the same episodes (toolworld, G trajectories per task) are sampled by Keel's multi-turn sampler (one
batch, the group's prompt cache shared, env tokens appended to the cache) and replayed by a plain loop that
calls `model.generate` once per model turn on the conversation so far, forced to the same token counts;
then one GRPO update on those trajectories, with and without the shared-prefix training pass (time and
peak resident memory above the loaded model, sampled every 5 ms).
learning: `keel train` runs in subprocesses (agent-sft, agent-toolworld from it, agent-webworld,
agent-shopping), seeds as asked, each evaluated greedily on the held-out splits by the jobs themselves.
Results: benchmarks/results/agentic.json through benchmarks/resultsfile.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.resultsfile import goal, write_results  # noqa: E402


# ----------------------------------------------------------------------------- memory sampling
class PeakRSS:
    """Peak resident set size of this process while the block runs, minus the RSS when it started."""

    def __enter__(self):
        import psutil

        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.stop = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


# ----------------------------------------------------------------------------- speed
def plain_generate_loop(model, tok, trajs) -> tuple[float, int]:
    """Replay each trajectory with one `model.generate` call per model turn on the conversation so far,
    forced to the same number of new tokens (sampling at temperature 1, like the rollout)."""
    import torch

    t0 = time.perf_counter()
    tokens = 0
    for tr in trajs:
        ids, mask = tr.prompt_ids + tr.ids, [0] * len(tr.prompt_ids) + tr.mask
        i = len(tr.prompt_ids)
        while i < len(ids):
            j = i
            while j < len(ids) and mask[j] == 1:
                j += 1
            if j > i:  # a model turn ids[i:j]
                x = torch.tensor([ids[:i]])
                with torch.no_grad():
                    model.generate(x, attention_mask=torch.ones_like(x), do_sample=True, temperature=1.0,
                                   top_p=1.0, top_k=0, max_new_tokens=j - i, min_new_tokens=j - i,
                                   pad_token_id=tok.pad_token_id)
                tokens += j - i
            i = j
            while i < len(ids) and mask[i] == 0:
                i += 1
    return time.perf_counter() - t0, tokens


def speed(a) -> tuple[dict, list]:
    import torch

    from keel.llm import load_model
    from keel.llm.lora import add_lora
    from keel.llm.multiturn import Start, TurnConfig, run_episodes
    from keel.rl.agent_envs import EnvConfig, make_env, task_starts
    from keel.rl.agent_rollout import to_rollout
    from keel.rl.grpo import GRPO, GRPOConfig

    torch.set_num_threads(a.threads)
    model, tok = load_model(a.model)
    turns = TurnConfig(max_turns=3, max_turn_tokens=a.turn_tokens, context_budget=1024)
    G, P = a.group, a.tasks
    env_cfg = EnvConfig(name="toolworld")
    envs = [make_env(env_cfg) for _ in range(G * P)]
    starts = [s for s in task_starts(envs[0], "train", P, 7) for _ in range(G)]
    run_episodes(model, tok, envs[:1], [Start(1, starts[0].options)], TurnConfig(max_turns=1, max_turn_tokens=4))
    t0 = time.perf_counter()
    trajs, stats = run_episodes(model, tok, envs, starts, turns, temperature=1.0, seed=3)
    ours_s = time.perf_counter() - t0
    plain_s, plain_tokens = plain_generate_loop(model, tok, trajs)
    assert plain_tokens == stats.model_tokens
    rollout = {
        "episodes": len(trajs), "tasks": P, "group_size": G, "model_tokens": stats.model_tokens,
        "env_tokens": sum(len(t.ids) - t.model_tokens for t in trajs),
        "prompt_tokens_mean": statistics.mean(len(t.prompt_ids) for t in trajs),
        "turns_mean": statistics.mean(t.turns for t in trajs),
        "keel_multiturn_s": round(ours_s, 2), "plain_generate_loop_s": round(plain_s, 2),
        "keel_tokens_per_s": round(stats.model_tokens / ours_s, 1),
        "plain_tokens_per_s": round(plain_tokens / plain_s, 1),
        "speedup": round(plain_s / ours_s, 2),
    }
    print(f"  rollout: {rollout}", flush=True)

    # one GRPO update on these trajectories: LoRA, with and without the shared-prefix training pass
    model = add_lora(model, 16)
    roll = to_rollout(trajs)
    roll.rewards = torch.tensor([float(i % 2) for i in range(len(trajs))])  # every row carries gradient
    train = {}
    for share in (True, False):
        trainer = GRPO(model, tok, GRPOConfig(group_size=G, prompts_per_step=P, lr=1e-6, share_prefix=share))
        r = trainer.finish(roll)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            trainer.update(r)
            dt = time.perf_counter() - t0
        train["shared_prefix" if share else "full_pass"] = {"step_s": round(dt, 2), "peak_mib": round(mem.mib)}
    train["trained_tokens"] = int(roll.mask.sum())
    train["sequence_tokens"] = sum(len(p) + len(c) for p, c in zip(roll.prompt_ids, roll.completion_ids,
                                                                   strict=True))
    print(f"  train step (LoRA r16): {train}", flush=True)
    goals = [goal("multi-turn rollout tokens/s vs model.generate per turn", rollout["speedup"], 2.0, "x",
                  rollout["speedup"] >= 2.0)]
    return {"rollout": rollout, "train_step": train}, goals


# ----------------------------------------------------------------------------- learning
def keel_train(source: str, name: str, sets: list[str], runs_dir: Path) -> dict:
    cmd = [str(ROOT / ".venv" / "bin" / "keel"), "train", source, "--name", name, "--json",
           "--set", f"runs_dir={runs_dir}", *[x for s in sets for x in ("--set", s)]]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(time.time() - t0, 1)
    print(f"  {name}: {out.get('final')} ({out['wall_s']} s)", flush=True)
    return out


def _succ(d: dict, split: str):
    return d.get(split, {}).get("success")


def learning(a, save) -> tuple[dict, list]:
    runs = ROOT / "runs" / "bench-agentic"
    runs.mkdir(parents=True, exist_ok=True)
    tag = time.strftime("%H%M%S")
    ev = [f"eval.episodes={a.eval_episodes}", f"eval.batch={min(16, a.eval_episodes)}",
          f"policy.threads={a.threads}"]
    model = [f"policy.model={a.model}"] if a.model != "smollm2" else []
    table: dict = {"toolworld": {"base": None, "sft": [], "sft_grpo": []}}
    for seed in a.seeds:
        sft = keel_train("agent-sft", f"sft-{tag}-s{seed}", [f"seed={seed}", f"steps={a.sft_steps}",
                         f"demos={a.demos}", f"sft.batch_size={a.sft_batch}", f"eval_base={'true' if seed == a.seeds[0] else 'false'}", *ev, *model],
                         runs)
        if seed == a.seeds[0]:
            table["toolworld"]["base"] = sft["base"]
        table["toolworld"]["sft"].append({"seed": seed, **sft["final"], "wall_s": sft["wall_s"]})
        save(table)
        rl = keel_train("agent-toolworld", f"grpo-{tag}-s{seed}", [f"seed={seed}", f"steps={a.rl_steps}",
                        f"policy.model={runs / sft['run'].split('/')[-1]}", "eval_base=false", *ev], runs)
        table["toolworld"]["sft_grpo"].append({"seed": seed, **rl["final"], "wall_s": rl["wall_s"]})
        save(table)
    goals = []
    t = table["toolworld"]
    for split, target in (("test", 0.70), ("test-templates", 0.30)):
        vals = [_succ(r, split) for r in t["sft_grpo"]]
        m = statistics.mean(vals)
        goals.append(goal(f"toolworld SFT+GRPO success on {split}", round(m, 3), target, "fraction", m >= target))
    sft_m = [_succ(r, "test") for r in t["sft"]]
    rl_m = [_succ(r, "test") for r in t["sft_grpo"]]
    spread = (max(sft_m + rl_m) - min(sft_m + rl_m)) if len(a.seeds) > 1 else None
    diff = statistics.mean(rl_m) - statistics.mean(sft_m)
    if spread is None:
        goals.append(goal("SFT+GRPO above SFT by more than the seed spread (test)", round(diff, 3), "> spread",
                          "fraction", None, "one seed only: no seed spread to compare with"))
    else:
        seed_spread = max(max(sft_m) - min(sft_m), max(rl_m) - min(rl_m))
        goals.append(goal("SFT+GRPO above SFT by more than the seed spread (test)", round(diff, 3),
                          f"> {seed_spread:.3f}", "fraction", diff > seed_spread))
    for world in a.worlds:
        r = keel_train(f"agent-{world}", f"{world}-{tag}", [f"steps={a.rl_steps}", *ev, *model], runs)
        table[world] = {"before": r["base"], "after": r["final"], "wall_s": r["wall_s"]}
        save(table, goals)
    return table, goals


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["speed", "learning", "all"], default="all")
    p.add_argument("--quick", action="store_true", help="tiny model, few steps: a smoke run of the script")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: on a busy 2-core machine, 2 wait "
                   "on each other)")
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--turn-tokens", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sft-steps", type=int, default=120)
    p.add_argument("--demos", type=int, default=512)
    p.add_argument("--sft-batch", type=int, default=8)
    p.add_argument("--rl-steps", type=int, default=16)
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--worlds", nargs="*", default=["webworld", "shopping"])
    a = p.parse_args()
    if a.quick:
        a.model, a.seeds, a.sft_steps, a.demos, a.rl_steps, a.eval_episodes = "tiny", [0], 2, 8, 1, 2
        a.turn_tokens, a.group = 8, 2
    load0 = list(os.getloadavg())
    tables, goals, notes = {}, [], [
        "2-core CPU shared with other engineers' jobs; ratios are from one run, side by side.",
        f"model {a.model}; torch threads {a.threads}"]
    name = "agentic" + ("-quick" if a.quick else "") + ("" if a.part == "all" else f"-{a.part}")

    def save(learning_table=None, learning_goals=()):  # after every finished part: a cut run keeps what it has
        if learning_table is not None:
            tables["learning"] = learning_table
        print(write_results(name, tables, goals + list(learning_goals), notes, load_average_start=load0),
              flush=True)

    if a.part in ("speed", "all"):
        tables["speed"], g = speed(a)
        goals += g
        save()
    if a.part in ("learning", "all"):
        notes.append(f"learning: seeds {a.seeds}, SFT {a.sft_steps} steps (batch {a.sft_batch}) on {a.demos} expert demos, GRPO "
                     f"{a.rl_steps} steps, {a.eval_episodes} greedy eval episodes per split, worlds {a.worlds}")
        tables["learning"], g = learning(a, save)
        goals += g
        save()


if __name__ == "__main__":
    main()
