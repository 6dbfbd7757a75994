"""Research agents (Search-R1, arXiv 2503.09516; Search-R1++, arXiv 2602.19526) on the generated research
world: the SFT warm start, the study's three findings side by side, and the trained agent against its baselines.

    python benchmarks/research.py --part sft [--sft-steps 40]          # SFT warm start + base / SFT / RTA eval
    python benchmarks/research.py --part rl --conditions all --seeds 0 --steps 8
    python benchmarks/research.py --part all ...                        # both in one process (one lock hold)
    python benchmarks/research.py --quick                               # every part on the tiny model, seconds

Parts (run each under `flock /tmp/keel-long.lock nice -n 5 ...`; every part merges into
runs/bench-research/state.json and rewrites benchmarks/results/research.json from everything so far):
- sft: `keel train agent-research-sft` in-process (the `agent_sft` job: LoRA behaviour cloning of the world's
  expert, which searches hop by hop) once per template (fast demos, slow demos with a <think> before each
  action), then greedy EM on held-out-entity test questions by hop count for the prompted base model (no
  SFT), each SFT policy, and retrieval-then-answer (one search with the question, no learning).
- rl: from the SFT policy of the condition's template, RL for `--steps` steps (the GRPO-family trainer of
  `keel.rl.grpo` or PPO with a value head, `keel.rl.agent_ppo`, on the multi-turn rollouts of `keel.rl.agent_rl`)
  under each condition, logging per step the training reward, EM, F1, answered rate and searches; then the same
  by-hop test evaluation. Conditions (template, reward, algorithm):
    fast-em-reinforce (reference), slow-em-reinforce (finding 1), fast-f1-reinforce and
    fast-f1pen-reinforce (finding 2), fast-em-ppo and fast-em-grpo (finding 3).
Definitions: reward-curve variance = variance over steps of the per-step mean training reward; a collapse =
a step whose mean training reward falls below half the best earlier step's (best >= 0.1); answer avoidance =
the share of episodes that end without an <answer>.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.resultsfile import goal, provenance, write_results  # noqa: E402
from keel.io import atomic_write_json  # noqa: E402

ENV = "keel.envs.research.agentic_env:ResearchAgentEnv"
CONDITIONS = {  # name -> (template, reward, algorithm), in the order they run
    "fast-em-reinforce": ("fast", "em", "reinforce"),
    "fast-em-ppo": ("fast", "em", "ppo"),
    "fast-em-grpo": ("fast", "em", "grpo"),
    "fast-f1-reinforce": ("fast", "f1", "reinforce"),
    "fast-f1pen-reinforce": ("fast", "f1_penalised", "reinforce"),
    "slow-em-reinforce": ("slow", "em", "reinforce"),
}


def env_options(a, template: str, reward: str) -> dict:
    o = {"template": template, "reward": reward, "retriever": "hybrid", "top_k": 3, "max_turns": a.max_turns}
    if a.entities:
        o["entities"] = a.entities
    return o


def turns(a) -> dict:
    return {"max_turns": a.max_turns, "max_turn_tokens": a.turn_tokens, "context_budget": 1024}


# ----------------------------------------------------------------------------- evaluation by hops
def episode_row(tr) -> dict:
    """What one trajectory did: EM, F1, whether it answered, searches, tokens (the env's verdict when it
    judged the episode; a context-cut episode counts as unanswered with EM 0)."""
    from keel.envs.research.agentic_env import read_reply

    acts = [read_reply(m["content"]) for m in tr.messages if m["role"] == "assistant"]
    ep = tr.episode
    return {"em": float(ep.get("em", 0.0)), "f1": float(ep.get("f1", 0.0)),
            "answered": bool(ep.get("answered", False)),
            "searches": sum(a == "search" and bool(arg) for a, arg, _ in acts),
            "thoughts": sum(bool(t) for _, _, t in acts), "model_tokens": tr.model_tokens,
            "turns": tr.turns, "malformed": tr.malformed, "reward": tr.reward}


def summarise(rows: list[dict]) -> dict:
    n = max(len(rows), 1)
    return {"n": len(rows), **{k: round(sum(r[k] for r in rows) / n, 4)
                               for k in ("em", "f1", "answered", "searches", "thoughts", "model_tokens", "turns")}}


def eval_by_hops(model, tok, a, template: str, per_hop: int, seed: int = 12345) -> dict:
    """Greedy episodes on the first `per_hop` held-out (test split) questions of each hop count."""
    from keel.envs.research.agentic_env import ResearchAgentEnv
    from keel.llm.multiturn import Start, TurnConfig, run_episodes

    opts = env_options(a, template, "em")
    env0 = ResearchAgentEnv(**opts)
    qs = env0.data.questions
    ids = [i for h in (1, 2, 3, 4) for i in [j for j in env0.task_ids("test") if qs[j].hops == h][:per_hop]]
    starts = [Start(seed + k, {"task": t}) for k, t in enumerate(ids)]
    envs = [env0] + [ResearchAgentEnv(**opts) for _ in range(min(a.eval_batch, len(starts)) - 1)]
    rows: dict[int, list[dict]] = {}
    for i in range(0, len(starts), a.eval_batch):
        chunk = starts[i : i + a.eval_batch]
        trajs, _ = run_episodes(model, tok, envs[: len(chunk)], chunk, TurnConfig(**turns(a)), temperature=0.0,
                                seed=seed)
        for st, tr in zip(chunk, trajs, strict=True):
            rows.setdefault(qs[st.options["task"]].hops, []).append(episode_row(tr))
    out = {str(h): summarise(r) for h, r in sorted(rows.items())}
    out["all"] = summarise([r for rs in rows.values() for r in rs])
    return out


def retrieval_then_answer(a, per_hop: int) -> dict:
    from keel.envs.research.agentic_env import ResearchAgentEnv
    from keel.envs.research.baseline import retrieve_then_answer
    from keel.envs.research.questions import exact_match

    env = ResearchAgentEnv(**env_options(a, "fast", "em"))
    qs = env.data.questions
    out, every = {}, []
    for h in (1, 2, 3, 4):
        ids = [j for j in env.task_ids("test") if qs[j].hops == h][:per_hop]
        ems = [exact_match(retrieve_then_answer(env.data, env.index, qs[i], "hybrid"), qs[i].answer) for i in ids]
        out[str(h)] = {"n": len(ems), "em": round(sum(ems) / len(ems), 4), "searches": 1.0}
        every += ems
    out["all"] = {"n": len(every), "em": round(sum(every) / len(every), 4), "searches": 1.0}
    return out


# ----------------------------------------------------------------------------- parts
def sft_run_dir(a, template: str) -> Path:
    return Path(a.runs) / f"bench-research-sft-{template}"


def part_sft(a, state: dict) -> None:
    from keel.config import load_job_config
    from keel.rl import agent_sft
    from keel.rl.agent_job import build_policy, load_policy
    from keel.runs import Run

    ws = state.setdefault("warm_start", {})
    ws["retrieve_then_answer"] = retrieval_then_answer(a, a.per_hop)
    for template in a.templates:
        d = sft_run_dir(a, template)
        over = [f"policy.model={a.model}", f"steps={a.sft_steps}", f"demos={a.demos}", "eval_base=false",
                "eval.splits=[]", f"sft.batch_size={a.sft_batch}", f"checkpoint_every={a.sft_steps}",
                f"env.options.template={template}", f"env.options.max_turns={a.max_turns}",
                f"turns.max_turns={a.max_turns}", f"turns.max_turn_tokens={a.turn_tokens}",
                f"runs_dir={a.runs}", f"policy.threads={a.threads}"]
        if a.entities:
            over.append(f"env.options.entities={a.entities}")
        cfg, _ = load_job_config("agent-research-sft", over)
        if d.exists():
            import shutil

            shutil.rmtree(d)
        run = Run.create(a.runs, d.name, cfg.model_dump(mode="json"), "benchmarks/research.py")
        t0 = time.perf_counter()
        summary = agent_sft.train(cfg, run, quiet=True)
        train_s = time.perf_counter() - t0
        losses = [r["loss"] for r in run.metrics() if "loss" in r]
        model, tok = load_policy(d)
        t0 = time.perf_counter()
        ev = eval_by_hops(model, tok, a, template, a.per_hop)
        ws[f"sft_{template}"] = {"steps": a.sft_steps, "demos": summary["demos"], "batch": a.sft_batch,
                                 "loss_first": losses[0], "loss_last": losses[-1], "train_s": round(train_s, 1),
                                 "eval_s": round(time.perf_counter() - t0, 1), "eval": ev}
        print(f"sft {template}", json.dumps(ev["all"]), f"{train_s:.0f}s", flush=True)
        del model
        save_state(a, state)
    if not a.skip_base:
        t0 = time.perf_counter()
        base, tok, _ = build_policy(_policy(a.model))
        ws["base_prompted"] = {"fast": eval_by_hops(base, tok, a, "fast", a.per_hop)}
        ws["base_eval_s"] = round(time.perf_counter() - t0, 1)
        print("base", json.dumps(ws["base_prompted"]["fast"]["all"]), f"{ws['base_eval_s']}s", flush=True)
        del base
        save_state(a, state)


def _policy(model: str, lora: int = 16, threads: int = 2):
    from keel.rl.agent_job import PolicyConfig

    return PolicyConfig(model=model, lora_r=lora, threads=threads)


def rl_config(a, cond: str, seed: int):
    from keel.config import validate
    from keel.rl import agent_rl

    template, reward, algo = CONDITIONS[cond]
    warm = sft_run_dir(a, template)
    if not warm.exists():  # no SFT on this template's demos: start from the fast one (only the prompt differs)
        warm = sft_run_dir(a, "fast")
    grpo = {"group_size": a.group, "prompts_per_step": a.prompts, "lr": a.lr, "temperature": 1.0,
            "advantage": "grpo" if algo == "grpo" else "reinforce"}
    data = {"kind": "agent_rl", "seed": seed, "runs_dir": a.runs,
            "policy": {"model": str(warm), "lora_r": 16, "threads": a.threads},
            "env": {"name": ENV, "options": env_options(a, template, reward)}, "turns": turns(a),
            "steps": a.steps, "eval_base": False, "grpo": grpo}
    if algo == "ppo":
        data["ppo"] = {}
    return validate(agent_rl.Config, data, f"condition {cond}")


def train_condition(a, cond: str, seed: int) -> dict:
    """RL from the condition's SFT policy; per-step training stats and the final by-hop test evaluation."""
    from keel.rl.agent_job import build_policy
    from keel.rl.agent_ppo import make_trainer
    from keel.rl.agent_rl import AgentGroups

    cfg = rl_config(a, cond, seed)
    model, tok, _ = build_policy(cfg.policy)
    trainer = make_trainer(model, tok, cfg.grpo, cfg.ppo)
    groups = AgentGroups(cfg, model, tok)
    curve, t0 = [], time.perf_counter()
    for step in range(1, cfg.steps + 1):
        m = trainer.train_on(lambda i, step=step: trainer.finish(groups.draw(step, i)),
                             seed=cfg.seed * 1_000_003 + step)
        rows = [episode_row(t) for t in groups.last_trajs]
        s = summarise(rows)
        curve.append({"step": step, "reward": round(m["reward"], 4), **{k: s[k] for k in
                      ("em", "f1", "answered", "searches", "thoughts", "model_tokens")},
                      **{k: round(float(m[k]), 4) for k in ("loss", "grad_norm", "entropy", "value_loss",
                                                              "explained_variance") if k in m}})
        print(cond, seed, curve[-1], flush=True)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = eval_by_hops(model, tok, a, CONDITIONS[cond][0], a.per_hop)
    print(cond, seed, "test", json.dumps(ev["all"]), f"train {train_s:.0f}s", flush=True)
    return {"curve": curve, "eval": ev, "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t0, 1),
            "warm_start": cfg.policy.model}


def part_rl(a, state: dict) -> None:
    """Every condition x seed, in order, while the time budget allows another of the same length."""
    runs = state.setdefault("runs", {})
    if not sft_run_dir(a, "fast").exists():
        raise SystemExit("no SFT policy: run --part sft first")
    last = 0.0
    for seed in a.seeds:
        for cond in a.conditions:
            left = a.deadline - time.time()
            if left < max(1.1 * last, 60.0):
                state.setdefault("skipped", []).append(f"{cond} seed {seed}: {left:.0f}s left of the time budget")
                print("skipped", state["skipped"][-1], flush=True)
                continue
            t0 = time.time()
            runs.setdefault(cond, {})[str(seed)] = train_condition(a, cond, seed)
            last = time.time() - t0
            save_state(a, state)  # a run cut short keeps the finished conditions


# ----------------------------------------------------------------------------- findings
def collapses(rewards: list[float]) -> int:
    n, best = 0, float("-inf")
    for r in rewards:
        if best >= 0.1 and r < 0.5 * best:
            n += 1
        best = max(best, r)
    return n


def stats(runs: dict, cond: str) -> dict | None:
    seeds = runs.get(cond)
    if not seeds:
        return None
    rs = list(seeds.values())

    def mean(xs):
        return round(statistics.mean(xs), 4)

    rewards = [[c["reward"] for c in r["curve"]] for r in rs]
    return {
        "seeds": len(rs),
        "reward_var": mean([statistics.pvariance(x) for x in rewards]),
        "collapses": sum(collapses(x) for x in rewards),
        "train_reward_first_last": [mean([x[0] for x in rewards]), mean([x[-1] for x in rewards])],
        "train_answered_first_last": [mean([r["curve"][0]["answered"] for r in rs]),
                                      mean([r["curve"][-1]["answered"] for r in rs])],
        "train_searches_first_last": [mean([r["curve"][0]["searches"] for r in rs]),
                                      mean([r["curve"][-1]["searches"] for r in rs])],
        "test": {h: {k: mean([r["eval"][h][k] for r in rs]) for k in ("em", "f1", "answered", "searches")}
                 for h in ("1", "2", "3", "4", "all")},
        "test_em_seeds": [r["eval"]["all"]["em"] for r in rs],
    }


def findings(state: dict) -> tuple[dict, list[dict]]:
    runs, ws = state.get("runs", {}), state.get("warm_start", {})
    st = {c: s for c in CONDITIONS if (s := stats(runs, c)) is not None}
    goals = []
    f, s = st.get("fast-em-reinforce"), st.get("slow-em-reinforce")
    if f and s:
        goals.append(goal("finding 1: fast template more stable than slow (reward-curve variance, collapses; "
                          "fast-em-reinforce vs slow-em-reinforce)",
                          {"fast": [f["reward_var"], f["collapses"]], "slow": [s["reward_var"], s["collapses"]]},
                          "fast variance < slow and fast collapses <= slow", "variance, count",
                          f["reward_var"] < s["reward_var"] and f["collapses"] <= s["collapses"]))
    f1, pen = st.get("fast-f1-reinforce"), st.get("fast-f1pen-reinforce")
    if f1 and pen:
        avoid = f1["train_answered_first_last"][1] < f1["train_answered_first_last"][0]
        goals.append(goal("finding 2: F1 alone collapses through answer avoidance (answered rate falls over "
                          "training) and F1 + penalties keeps answering (last-step answered rate higher)",
                          {"f1 answered first->last": f1["train_answered_first_last"],
                           "f1_penalised answered first->last": pen["train_answered_first_last"],
                           "test EM f1 / f1_penalised": [f1["test"]["all"]["em"], pen["test"]["all"]["em"]]},
                          "f1 answered falls and f1_penalised last > f1 last", "share answered",
                          avoid and pen["train_answered_first_last"][1] > f1["train_answered_first_last"][1]))
    r, p, g = st.get("fast-em-reinforce"), st.get("fast-em-ppo"), st.get("fast-em-grpo")
    if r and p and g:
        goals.append(goal("finding 3: REINFORCE >= PPO held-out EM with fewer searches per question",
                          {"EM reinforce/ppo/grpo": [r["test"]["all"]["em"], p["test"]["all"]["em"],
                                                     g["test"]["all"]["em"]],
                           "searches reinforce/ppo/grpo": [r["test"]["all"]["searches"], p["test"]["all"]["searches"],
                                                           g["test"]["all"]["searches"]]},
                          "EM reinforce >= ppo and searches reinforce < ppo", "EM, searches",
                          r["test"]["all"]["em"] >= p["test"]["all"]["em"]
                          and r["test"]["all"]["searches"] < p["test"]["all"]["searches"]))
        goals.append(goal("finding 3b: GRPO the least stable (largest reward-curve variance of the three)",
                          {"reward_var reinforce/ppo/grpo": [r["reward_var"], p["reward_var"], g["reward_var"]],
                           "collapses": [r["collapses"], p["collapses"], g["collapses"]]},
                          "grpo variance largest", "variance", g["reward_var"] > max(r["reward_var"], p["reward_var"])))
    if st and ws.get("base_prompted") and ws.get("retrieve_then_answer"):
        best = max(st, key=lambda c: st[c]["test"]["all"]["em"])
        multi = [h for h in ("2", "3", "4")]
        tr = statistics.mean(st[best]["test"][h]["em"] for h in multi)
        base = statistics.mean(ws["base_prompted"]["fast"][h]["em"] for h in multi)
        rta = statistics.mean(ws["retrieve_then_answer"][h]["em"] for h in multi)
        goals.append(goal(f"trained agent ({best}) beats the prompted base and retrieval-then-answer on held-out "
                          "multi-hop EM (mean over 2-4 hops)", {"trained": round(tr, 4), "base": round(base, 4),
                                                                 "retrieve_then_answer": round(rta, 4)},
                          "trained > base and trained > retrieve_then_answer", "EM", tr > base and tr > rta))
    return st, goals


# ----------------------------------------------------------------------------- state and results
def state_path(a) -> Path:
    return Path(a.runs) / "bench-research" / "state.json"


def load_state(a) -> dict:
    p = state_path(a)
    return json.loads(p.read_text()) if p.exists() and not a.fresh else {}


def save_state(a, state: dict) -> None:
    """The state, and the results file rewritten from it (a part cut short still leaves its numbers)."""
    atomic_write_json(state_path(a), state)
    write(a, state, a.load0)


def write(a, state: dict, load0: list[float]) -> None:
    st, goals = findings(state)
    tables = {"settings": state.get("settings"), "parts": state.get("parts", []),
              "warm_start": state.get("warm_start", {}), "findings": st,
              "runs": state.get("runs", {}), "skipped": state.get("skipped", [])}
    notes = [
        "held out = test split: questions whose whole entity chain is on the held-out side of the entity split",
        "SmolLM2-135M-Instruct with LoRA r=16 on 2 shared CPU cores: a few RL steps per run, far below the "
        "paper's hundreds of steps on 3B/7B models; a finding whose goal is not met did not reproduce at this "
        "scale (read the numbers, not only the flag)",
        "each condition starts from the SFT warm start of its own template when one was trained (runs' "
        "warm_start field), else from the fast one (then only the system prompt differs)",
        "reward-curve variance is over the per-step mean training reward; a collapse is a step below half the "
        "best earlier step (best >= 0.1); answer avoidance = share of episodes ending without <answer>",
        "parts were run separately (see tables.parts); comparisons inside one finding come from one part run "
        "where the table's parts show so",
    ]
    name = "research_quick" if a.quick else "research"
    print(write_results(name, tables, goals, notes, load_average_start=load0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["sft", "rl", "all", "report"], default="report")
    ap.add_argument("--quick", action="store_true", help="every part on the tiny model (a smoke run)")
    ap.add_argument("--fresh", action="store_true", help="forget the stored state of earlier parts")
    ap.add_argument("--skip-base", action="store_true", help="sft part: do not evaluate the prompted base model")
    ap.add_argument("--budget-s", type=float, default=1140, help="rl: start no condition that would end past this")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--templates", default="fast,slow")
    ap.add_argument("--conditions", default="all")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sft-steps", type=int, default=40)
    ap.add_argument("--sft-batch", type=int, default=8)
    ap.add_argument("--demos", type=int, default=256)
    ap.add_argument("--per-hop", type=int, default=8, help="held-out test questions per hop count")
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-turns", type=int, default=5)
    ap.add_argument("--turn-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--entities", type=int, default=0, help="world size (0: the default 2,400)")
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    a = ap.parse_args()
    a.templates = a.templates.split(",")
    a.conditions = list(CONDITIONS) if a.conditions == "all" else a.conditions.split(",")
    a.seeds = [int(s) for s in a.seeds.split(",")]
    if unknown := [c for c in a.conditions if c not in CONDITIONS]:
        raise SystemExit(f"unknown conditions {unknown}; use {', '.join(CONDITIONS)}")
    if a.quick:
        a.model, a.steps, a.sft_steps, a.demos, a.per_hop, a.turn_tokens = "tiny", 2, 2, 8, 1, 6
        a.max_turns, a.entities, a.threads, a.group, a.prompts, a.demos = 5, 200, 1, 2, 1, 16
        a.runs = str(Path(a.runs) / "quick")
    load0 = a.load0 = list(os.getloadavg())
    a.deadline = time.time() + a.budget_s
    state = load_state(a)
    state["settings"] = {k: v for k, v in vars(a).items()
                         if k not in ("part", "fresh", "runs", "conditions", "seeds", "load0", "deadline")}
    parts = ["sft", "rl"] if a.quick or a.part == "all" else [a.part]
    for part in parts:
        t0 = time.perf_counter()
        if part == "sft":
            part_sft(a, state)
        elif part == "rl":
            part_rl(a, state)
        if part != "report":
            state.setdefault("parts", []).append({"part": part, **provenance(),
                                                  "wall_s": round(time.perf_counter() - t0, 1),
                                                  "conditions": a.conditions if part == "rl" else None,
                                                  "seeds": a.seeds if part == "rl" else None,
                                                  "load_average_start": load0})
        save_state(a, state)
    write(a, state, load0)


if __name__ == "__main__":
    main()
