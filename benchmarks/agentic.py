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
import shutil
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
def finished(name: str, runs_dir: Path) -> dict | None:
    """The summary and timing of run NAME if a benchmark invocation finished it, else None."""
    side = runs_dir / f"{name}.bench.json"
    summary = runs_dir / name / "summary.json"
    if side.is_file() and summary.is_file():
        return {**json.loads(summary.read_text()), "run": str(runs_dir / name), **json.loads(side.read_text())}
    return None


def rl_rollouts(out: dict) -> dict:
    """What the GRPO run trained on, from its metrics: groups drawn and kept (all-equal groups carry no
    gradient), the training rollouts' mean success, and where a curriculum drew from (its final top arms)."""
    from keel.runs import Run

    rows = [r for r in Run(Path(out["run"])).metrics() if "dyn_groups_drawn" in r]
    res = {"groups_drawn": sum(r["dyn_groups_drawn"] for r in rows),
           "groups_kept": sum(r["dyn_groups_kept"] for r in rows),
           "rollout_success_mean": round(statistics.mean(r["accuracy"] for r in rows), 3) if rows else None,
           "steps_without_gradient": sum(r["dyn_groups_kept"] == 0 for r in rows)}
    cur = out.get("curriculum")
    if cur:
        res["curriculum_draws"] = {k: v for k, v in sorted(cur["draws"].items(), key=lambda kv: -kv[1]) if v}
    return res


def keel_train(source: str, name: str, sets: list[str], runs_dir: Path, deadline: float | None = None) -> dict:
    """`keel train SOURCE --name NAME` in a subprocess, or the finished run of that name (a study split over
    several invocations picks up where the last one stopped). Wall time and load average are kept beside
    the run (NAME.bench.json). None when `deadline` (time.time()) has passed and the run is not done."""
    out = finished(name, runs_dir)
    if out is not None:
        print(f"  {name}: finished earlier, reused: {out.get('final')}", flush=True)
        return out
    if deadline is not None and time.time() > deadline:
        return None
    if (runs_dir / name).exists():
        shutil.rmtree(runs_dir / name)  # an unfinished run of an interrupted invocation: start it over
    cmd = [str(ROOT / ".venv" / "bin" / "keel"), "train", source, "--name", name, "--json",
           "--set", f"runs_dir={runs_dir}", *[x for s in sets for x in ("--set", s)]]
    t0, load0 = time.time(), list(os.getloadavg())
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    timing = {"wall_s": round(time.time() - t0, 1), "load_start": load0, "load_end": list(os.getloadavg()),
              "command": " ".join(["keel", "train", source, "--name", name, *[x for s in sets for x in ("--set", s)]])}
    (runs_dir / f"{name}.bench.json").write_text(json.dumps(timing))
    out.update(timing)
    print(f"  {name}: {out.get('final')} ({out['wall_s']} s)", flush=True)
    return out


def keel_eval(run: Path, split: str, sets: list[str], cache: Path) -> dict:
    """`keel eval RUN --split SPLIT --set ...` in a subprocess (its JSON; the run's own policy.threads), kept in
    `cache` so that a study split over invocations evaluates each run once."""
    from keel.io import atomic_write_json

    if cache.is_file():
        return json.loads(cache.read_text())
    cmd = [str(ROOT / ".venv" / "bin" / "keel"), "eval", str(run), "--split", split, "--json",
           *[x for s in sets for x in ("--set", s)]]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out = {**out, "wall_s": round(time.time() - t0, 1), "command": " ".join(["keel", *cmd[1:]])}
    atomic_write_json(cache, out)  # a cut run never leaves half a cache file to be reused
    return out


def _succ(d: dict, split: str):
    return d.get(split, {}).get("success")


def _opt(flag: str, value) -> list[str]:
    return [] if value is None else [f"{flag}={value}"]


def learning(a, save) -> tuple[dict, list]:
    """Base vs SFT vs SFT+GRPO on toolworld (per seed), then webworld and shopping before/after. The preset
    settings are used unless a flag overrides them; `--budget-min` stops before a run that would start
    after it (run the same command again, same --tag, to go on)."""
    runs = ROOT / "runs" / "bench-agentic"
    runs.mkdir(parents=True, exist_ok=True)
    tag = a.tag or time.strftime("%H%M%S")
    deadline = time.time() + 60 * a.budget_min if a.budget_min else None
    ev = [*_opt("eval.episodes", a.eval_episodes), f"policy.threads={a.threads}"]
    model = [f"policy.model={a.model}"] if a.model != "smollm2" else []
    table: dict = {"toolworld": {"base": None, "sft": [], "sft_grpo": []}, "tag": tag, "complete": False}
    t = table["toolworld"]
    for seed in a.seeds:
        sft = keel_train("agent-sft", f"sft-{tag}-s{seed}", [
            f"seed={seed}", *_opt("steps", a.sft_steps), *_opt("demos", a.demos), *_opt("sft.batch_size", a.sft_batch),
            f"eval_base={'true' if seed == a.seeds[0] and not a.skip_base else 'false'}", *ev, *model], runs, deadline)
        if sft is None:
            return table, _learning_goals(t, a)
        if seed == a.seeds[0]:
            t["base"] = sft.get("base")
        t["sft"].append({"seed": seed, **sft["final"], **_timing(sft)})
        save(table, _learning_goals(t, a))
        rl = keel_train("agent-toolworld", f"grpo-{tag}-s{seed}", [
            f"seed={seed}", *_opt("steps", a.rl_steps), f"policy.model={runs / sft['run'].split('/')[-1]}",
            "eval_base=false", *ev], runs, deadline)
        if rl is None:
            return table, _learning_goals(t, a)
        t["sft_grpo"].append({"seed": seed, **rl["final"], **_timing(rl), "train_rollouts": rl_rollouts(rl)})
        save(table, _learning_goals(t, a))
    if a.heldout_wording:
        # the same test tasks asked in words no training prompt uses (keel.envs.toolworld.wordings): does the
        # agent read the request, or match the training sentence?
        for arm, kind in (("sft", "sft"), ("sft_grpo", "grpo")):
            for r in t[arm]:
                name = f"{kind}-{tag}-s{r['seed']}"
                ev_h = keel_eval(runs / name, "test", ["env.options.wording=heldout"], runs / f"{name}.wording.json")
                r["test_heldout_wording"] = {k: ev_h[k] for k in ("success", "malformed_rate", "calls_per_task",
                                                                   "denials_per_task", "episodes") if k in ev_h}
                r["test_heldout_wording"]["command"] = ev_h["command"]
        save(table, _learning_goals(t, a))
    if a.compare_tag:
        # an earlier study's finished runs of the same seeds, side by side (e.g. uniform task draws)
        c = {"tag": a.compare_tag, "sft": [], "sft_grpo": []}
        for seed in a.seeds:
            sft, rl = (finished(f"{k}-{a.compare_tag}-s{seed}", runs) for k in ("sft", "grpo"))
            if sft is not None:
                c["sft"].append({"seed": seed, **sft["final"], **_timing(sft)})
                if not t["base"] and sft.get("base"):
                    t["base"], t["base_from"] = sft["base"], sft["run"]
            if rl is not None:
                c["sft_grpo"].append({"seed": seed, **rl["final"], **_timing(rl), "train_rollouts": rl_rollouts(rl)})
            if (rec := finished(f"sft-rec-{a.compare_tag}-s{seed}", runs)) is not None:
                c["sft_recovery"] = {"seed": seed, "recovery_demos": rec.get("recovery_demos"),
                                     "demos": rec.get("demos"), **rec["final"], **_timing(rec)}
        table["toolworld_compare"] = c
        save(table, _learning_goals(t, a))
    if a.recovery_arm:
        # ablation: the first seed's SFT again with recovery demonstrations (keel.rl.agent_recovery) added
        seed = a.seeds[0] if a.seeds else 0
        rec = keel_train("agent-sft", f"sft-rec-{tag}-s{seed}", [
            f"seed={seed}", f"recovery={a.recovery_arm}", *_opt("steps", a.sft_steps), *_opt("demos", a.demos),
            *_opt("sft.batch_size", a.sft_batch), "eval_base=false", *ev, *model], runs, deadline)
        if rec is None:
            return table, _learning_goals(t, a)
        t["sft_recovery"] = {"seed": seed, "recovery": a.recovery_arm, "recovery_demos": rec.get("recovery_demos"),
                             "demos": rec.get("demos"), **rec["final"], **_timing(rec)}
        save(table, _learning_goals(t, a))
    if a.wording_arm:
        # ablation: the first seed's SFT again with its training tasks asked in varied words (the generator's
        # sentence or one of two paraphrases per episode, keel.envs.toolworld.train_wordings); test tasks keep
        # the generator's words, and the held-out wording evaluation asks them in words neither run saw
        seed = a.seeds[0] if a.seeds else 0
        name = f"sft-varied-{tag}-s{seed}"
        var = keel_train("agent-sft", name, [
            f"seed={seed}", "env.options.wording=varied", *_opt("steps", a.sft_steps), *_opt("demos", a.demos),
            *_opt("sft.batch_size", a.sft_batch), "eval_base=false", *ev, *model], runs, deadline)
        if var is None:
            return table, _learning_goals(t, a)
        t["sft_varied"] = {"seed": seed, **var["final"], **_timing(var)}
        ev_h = keel_eval(runs / name, "test", ["env.options.wording=heldout"], runs / f"{name}.wording.json")
        t["sft_varied"]["test_heldout_wording"] = {**{k: ev_h[k] for k in ("success", "malformed_rate", "calls_per_task",
                                                                          "denials_per_task", "episodes") if k in ev_h},
                                                   "command": ev_h["command"]}
        save(table, _learning_goals(t, a))
    for world in a.worlds:
        # the base model solves nothing in these worlds (no reward for GRPO to learn from), so each is warm-started
        # like toolworld: behaviour cloning of that world's expert (agent-sft with the world preset's env, turns
        # and eval), then the world's GRPO preset from that checkpoint
        pre = preset(f"agent-{world}")
        same = [f"{k}={json.dumps(pre[k])}" for k in ("env", "turns", "eval")]
        wev = [*_opt("eval.episodes", a.world_eval_episodes or a.eval_episodes), f"policy.threads={a.threads}"]
        wtag = a.world_tag or tag
        sft = keel_train("agent-sft", f"sft-{world}-{wtag}", [
            *same, *_opt("steps", a.world_sft_steps or a.sft_steps), *_opt("demos", a.demos),
            *_opt("sft.batch_size", a.sft_batch), *wev, *model], runs, deadline)
        if sft is None:
            return table, _learning_goals(t, a)
        table[world] = {"base": sft["base"], "sft": sft["final"], "sft_timing": _timing(sft)}
        save(table, _learning_goals(t, a))
        r = keel_train(f"agent-{world}", f"{world}-{wtag}", [*_opt("steps", a.world_rl_steps), *wev,
                       f"policy.model={runs / sft['run'].split('/')[-1]}", "eval_base=false"], runs, deadline)
        if r is None:
            return table, _learning_goals(t, a)
        table[world].update({"sft_grpo": r["final"], **_timing(r)})
        save(table, _learning_goals(t, a))
    t["by_template"] = by_template(t)
    table["complete"] = True
    return table, _learning_goals(t, a)


def by_template(t: dict) -> dict:
    """{split: {arm: {template: mean success over seeds}}} from the rows' per-template evaluation."""
    out: dict = {}
    for arm in ("sft", "sft_grpo"):
        for split in ("test", "test-templates"):
            per = [r[split]["success_by_group"] for r in t[arm] if "success_by_group" in r.get(split, {})]
            if per:
                out.setdefault(split, {})[arm] = {g: round(statistics.mean(p[g] for p in per if g in p), 3)
                                                  for g in sorted(set().union(*per))}
    return out


def preset(name: str) -> dict:
    """A preset's YAML as a dict (the world presets' env, turns and eval go to its warm start)."""
    import yaml

    return yaml.safe_load((ROOT / "keel" / "presets" / f"{name}.yaml").read_text())


def _timing(out: dict) -> dict:
    """Wall time, load, the command and the turn limits the run was trained under (from its config.yaml: a
    preset may have changed since a reused run was trained)."""
    import yaml

    cfg = yaml.safe_load((Path(out["run"]) / "config.yaml").read_text()) if "run" in out else {}
    return {**{k: out[k] for k in ("wall_s", "load_start", "load_end", "command") if k in out},
            "turns": cfg.get("turns")}


def _learning_goals(t: dict, a) -> list:
    goals = []
    if not t["sft_grpo"]:
        return goals
    for split, target in (("test", 0.70), ("test-templates", 0.30)):
        m = statistics.mean(_succ(r, split) for r in t["sft_grpo"])
        goals.append(goal(f"toolworld SFT+GRPO success on {split}", round(m, 3), target, "fraction", m >= target))
    n = len(t["sft_grpo"])
    sft_m = [_succ(r, "test") for r in t["sft"][:n]]
    rl_m = [_succ(r, "test") for r in t["sft_grpo"]]
    diff = statistics.mean(rl_m) - statistics.mean(sft_m)
    name = "SFT+GRPO above SFT by more than the seed spread (test)"
    if n < 2:
        goals.append(goal(name, round(diff, 3), "> spread", "fraction", None,
                          f"{n} seed only: no seed spread to compare with"))
    else:
        seed_spread = max(max(sft_m) - min(sft_m), max(rl_m) - min(rl_m))
        goals.append(goal(name, round(diff, 3), f"> {seed_spread:.3f}", "fraction", diff > seed_spread))
    first = t["sft_grpo"][0]
    if "wall_s" in first and "wall_s" in t["sft"][0]:
        minutes, both = first["wall_s"] / 60, (t["sft"][0]["wall_s"] + first["wall_s"]) / 60
        goals.append({**goal("keel train agent-toolworld on 2 cores (seed 0, from the SFT run, evaluations "
                             "included)", round(minutes, 1), 30, "minutes", minutes <= 30),
                      "with_agent_sft_minutes": round(both, 1),
                      "load_average": {"sft": [t["sft"][0]["load_start"], t["sft"][0]["load_end"]],
                                       "grpo": [first["load_start"], first["load_end"]]}})
    return goals


def carry_over(name: str, part: str):
    """(part, table, goals, note) of `part` from the existing results file, or None."""
    from benchmarks.resultsfile import RESULTS

    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    if part not in old.get("tables", {}):
        return None
    speed_goal = "multi-turn rollout tokens/s vs model.generate per turn"
    keep = [g for g in old["goals"] if (g["name"] == speed_goal) == (part == "speed")]
    earlier = [n for n in old.get("notes", []) if n.startswith(f"{part}: not re-run")]
    note = earlier[0] if earlier else (f"{part}: not re-run by this command; its table and goals are carried over from the run of commit "
            f"{old.get('commit', '?')[:10]} finished {old.get('finished', '?')} (`{old.get('command', '?')}`)")
    return part, old["tables"][part], keep, note


def carry_worlds(name: str, worlds: list[str]) -> tuple[dict, list[str]]:
    """The webworld/shopping rows of the existing results file for the worlds this command does not retrain
    ({world: row}, notes saying where they come from); each row holds its own training commands."""
    from benchmarks.resultsfile import RESULTS

    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return {}, []
    old = json.loads(path.read_text())
    rows = {w: old["tables"]["learning"][w] for w in ("webworld", "shopping")
            if w not in worlds and w in old.get("tables", {}).get("learning", {})}
    if not rows:
        return {}, []
    earlier = [n for n in old.get("notes", []) if n.startswith("worlds: not re-run")]
    return rows, earlier or [f"worlds: not re-run by this command; the {', '.join(rows)} rows are carried over from the "
                             f"results of commit {old.get('commit', '?')[:10]} finished {old.get('finished', '?')} "
                             f"(`{old.get('command', '?')}`); each row holds its own training commands and load"]


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
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="toolworld seeds; none: worlds only")
    p.add_argument("--skip-base", action="store_true",
                   help="no base-model evaluation (a study split over invocations evaluates it in one of them)")
    p.add_argument("--sft-steps", type=int, default=None, help="default: the agent-sft preset's")
    p.add_argument("--demos", type=int, default=None)
    p.add_argument("--sft-batch", type=int, default=None)
    p.add_argument("--rl-steps", type=int, default=None, help="default: each RL preset's")
    p.add_argument("--world-rl-steps", type=int, default=None, help="webworld/shopping GRPO steps; default: "
                   "each preset's")
    p.add_argument("--world-sft-steps", type=int, default=None, help="webworld/shopping; default: --sft-steps")
    p.add_argument("--world-eval-episodes", type=int, default=None, help="webworld/shopping; default: "
                   "--eval-episodes")
    p.add_argument("--eval-episodes", type=int, default=None, help="per split; default: each preset's")
    p.add_argument("--worlds", nargs="*", default=["webworld", "shopping"])
    p.add_argument("--tag", default=None, help="run-name tag; the same tag reuses finished runs (default: time)")
    p.add_argument("--recovery-arm", type=float, default=None,
                   help="also train the first seed's SFT with this share of recovery demonstrations (ablation)")
    p.add_argument("--world-tag", default=None,
                   help="run-name tag of the webworld/shopping runs (default: --tag), e.g. to reuse an earlier study's")
    p.add_argument("--compare-tag", default=None,
                   help="also tabulate an earlier study's finished toolworld runs of the same seeds (reused, never trained)")
    p.add_argument("--wording-arm", action="store_true",
                   help="also train the first seed's SFT with its training tasks asked in varied words (ablation)")
    p.add_argument("--heldout-wording", action="store_true",
                   help="also evaluate every toolworld run on the test split worded as no training prompt is")
    p.add_argument("--budget-min", type=float, default=None,
                   help="start no training run after this many minutes (the lock's hold limit); rerun to go on")
    a = p.parse_args()
    if a.quick:
        a.model, a.seeds, a.sft_steps, a.demos, a.rl_steps, a.eval_episodes = "tiny", [0], 2, 8, 1, 2
        a.world_rl_steps = 1
        a.turn_tokens, a.group = 8, 2
    load0 = list(os.getloadavg())
    tables, goals, notes = {}, [], [
        "2-core CPU shared with other engineers' jobs; ratios are from one run, side by side.",
        f"model {a.model}; torch threads {a.threads}"]
    name = "agentic" + ("-quick" if a.quick else "")
    carried = carry_over(name, "learning" if a.part == "speed" else "speed") if a.part != "all" else None
    if carried is not None:  # the part not re-run keeps its numbers (and says from which run they are)
        part, table, part_goals, note = carried
        tables[part], goals[:0] = table, part_goals
        notes.append(note)

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
        notes.append(f"learning: seeds {a.seeds}, worlds {a.worlds}; settings are the presets' (agent-sft, "
                     "agent-toolworld, agent-webworld, agent-shopping; the worlds warm-started by agent-sft on "
                     f"their expert) except: SFT steps {a.sft_steps}, demos {a.demos}, batch {a.sft_batch}, RL steps "
                     f"{a.rl_steps} (worlds: SFT {a.world_sft_steps or a.sft_steps}, RL {a.world_rl_steps}), eval "
                     f"episodes {a.eval_episodes} (worlds {a.world_eval_episodes or a.eval_episodes}) (None = preset); "
                     "every evaluation is greedy on the first N tasks of the split (round-robin over templates)")
        from keel.envs.toolworld.generator import HELD_OUT_TEMPLATES, TEMPLATE_NAMES

        notes.append(f"toolworld: {len(TEMPLATE_NAMES) - len(HELD_OUT_TEMPLATES)} training templates, "
                     f"{len(HELD_OUT_TEMPLATES)} held out ({', '.join(HELD_OUT_TEMPLATES)}); see "
                     "keel.envs.toolworld.generator for the coverage templates added in round 2")
        worlds_kept, worlds_notes = carry_worlds(name, a.worlds) if not a.quick else ({}, [])
        tables["learning"], g = learning(a, save)
        goals += g
        if worlds_kept and tables["learning"].get("complete"):
            tables["learning"].update(worlds_kept)
            notes.extend(worlds_notes)
        trained = [r for k in ("sft", "sft_grpo") for r in tables["learning"]["toolworld"][k]]
        caps = {r["turns"]["max_turn_tokens"] for r in trained if r.get("turns")}
        now = preset("agent-toolworld")["turns"]["max_turn_tokens"]
        if caps - {now}:
            notes.append(f"toolworld runs were trained and evaluated with turns.max_turn_tokens {sorted(caps)}; the "
                         f"presets now use {now} (the expert's replies reach 80-86 tokens, so a cap of 64 makes part "
                         "of the test tasks unfinishable)")
        if a.world_tag and a.world_tag != (a.tag or ""):
            notes.append(f"webworld/shopping rows are the finished runs of study tag {a.world_tag!r} (each row holds "
                         "its own training command and load average), not retrained with this tag")
        if a.compare_tag:
            cmp = tables["learning"].get("toolworld_compare", {})
            notes.append(f"toolworld_compare: the finished runs of study tag {a.compare_tag!r} for the same seeds, "
                         "reused (each row holds its own training command); compare the two studies' settings in "
                         "their runs' config.yaml (env.draw, curriculum)"
                         + ("" if cmp.get("sft") else " - none found"))
            if tables["learning"]["toolworld"].get("base_from"):
                notes.append(f"toolworld base row: evaluated in {tables['learning']['toolworld']['base_from']} "
                             "(the same greedy evaluation of the untrained model)")
        var = tables["learning"]["toolworld"].get("sft_varied")
        if var:
            notes.append(f"sft_varied: an ablation, seed {var['seed']} only: the same SFT with each training task asked "
                         "in one of three wordings (the generator's sentence or one of two paraphrases, "
                         "keel.envs.toolworld.train_wordings), drawn per episode; compare with the sft row of the same "
                         "seed on test (generator's words) and test_heldout_wording (words no run trained on)")
        rec = tables["learning"]["toolworld"].get("sft_recovery")
        if rec:
            notes.append(f"sft_recovery: an ablation, seed {rec['seed']} only: the same SFT with recovery "
                         f"demonstrations (recovery={rec['recovery']}: {rec.get('recovery_demos')} of "
                         f"{rec.get('demos')} demos hold one masked mistake the expert recovers from); compare "
                         "with the sft row of the same seed")
        save()


if __name__ == "__main__":
    main()
