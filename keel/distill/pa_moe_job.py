"""The `pa_moe` job: multi-turn agent GRPO of a phase-aware mixture of LoRA experts (`keel.distill.pa_moe`,
arXiv 2602.17038). `keel train agent-pamoe`.

Everything but the policy is `agent_rl`'s: its config (this one adds `moe`), envs, grouped multi-turn
rollouts, the GRPO family update, checkpoints and resume. The policy is the source model (an `agent_sft`
run is folded in first: the SFT warm start) with `moe.experts` LoRA experts and a phase router, or with
`moe.experts: 1` a single LoRA of rank `moe.rank` (the same-size baseline, through the same code). The
update adds the router's load-balancing loss; every step logs the experts' usage by phase of turn, and the
final evaluation writes the phase x expert table on each split into the summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from keel.distill.pa_moe import PhaseMoEConfig
from keel.errors import KeelError
from keel.rl import agent_rl
from keel.rl.grpo import GRPO

WEIGHTS = "pa_moe.safetensors"


class Config(agent_rl.Config):
    kind: Literal["pa_moe"] = "pa_moe"  # type: ignore[assignment]
    moe: PhaseMoEConfig = Field(default_factory=PhaseMoEConfig)


def check(cfg: Config) -> None:
    agent_rl.check(cfg)
    if cfg.policy.lora_r:
        raise KeelError("pa_moe: policy.lora_r must be 0 (the experts are the adapters; set moe.rank)")
    if cfg.ppo is not None:
        raise KeelError("pa_moe trains with the GRPO family; remove the ppo section")
    if cfg.grpo.beta > 0:
        raise KeelError("pa_moe: grpo.beta must be 0 (no frozen reference copy is kept)")


class PhaseGRPO(GRPO):
    """GRPO whose loss routes each sequence by its segments and adds the router's load-balancing term;
    the router may have its own learning rate (`moe.router_lr`)."""

    def __init__(self, model, tokenizer, cfg):
        import torch

        super().__init__(model, tokenizer, cfg)
        if model.router is not None and model.cfg.router_lr is not None:
            router = set(map(id, model.router.parameters()))
            rest = [p for p in model.parameters() if p.requires_grad and id(p) not in router]
            self.opt = torch.optim.AdamW([{"params": rest}, {"params": list(model.router.parameters()),
                                                              "lr": model.cfg.router_lr}],
                                         lr=cfg.lr, weight_decay=cfg.weight_decay)

    def loss(self, roll, rows, denom=None):
        from keel.distill.pa_moe import PlanRow, balance_loss

        plan = [PlanRow(roll.prompt_ids[i], roll.completion_ids[i], roll.mask[i].long().tolist()) for i in rows]
        with self.model.planned(plan):
            loss, info = super().loss(roll, rows, denom)
            probs, choice = self.model.last_routing
        if self.model.router is not None:
            bal = balance_loss(probs, choice)
            loss = loss + self.model.cfg.balance_coef * bal
            info["balance"] = float(bal.detach())
        return loss, info


def build(cfg: Config):
    """(policy, tokenizer, provenance): the source model with its SFT adapter folded in, then the experts."""
    from keel.distill.pa_moe import PhaseMoEPolicy
    from keel.rl.agent_job import build_policy

    model, tok, prov = build_policy(cfg.policy)
    policy = PhaseMoEPolicy(model, cfg.moe, seed=cfg.seed)
    if policy.router is not None and cfg.moe.router_init == "kmeans":
        prov["router_init"] = policy.init_router_kmeans(demo_sequences(cfg, tok), seed=cfg.seed)
    policy.eval()
    return policy, tok, prov


def demo_sequences(cfg: Config, tok) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt, ids, mask) of `moe.router_init_demos` expert demonstrations on training tasks."""
    from keel.llm.conversation import ChatPieces
    from keel.rl.agent_envs import make_env, task_starts
    from keel.rl.agent_rollout import expert_trajectory

    env = make_env(cfg.env, "train")
    pieces = ChatPieces(tok)
    demos = [expert_trajectory(env, st, tok, pieces, cfg.turns.max_turns)
             for st in task_starts(env, "train", cfg.moe.router_init_demos, cfg.seed + 7)]
    return [(d.prompt_ids, d.ids, d.mask) for d in demos]


def episodes_with_usage(policy, tok, cfg: Config, split: str, episodes: int, seed: int = 12345) -> dict:
    """Greedy episodes on the first `episodes` tasks of `split`: agent_job's metrics, plus the phase x
    expert table of their turns and how specialised it is."""
    from keel.distill.pa_moe_phases import specialisation, usage
    from keel.llm.multiturn import run_episodes
    from keel.rl.agent_envs import make_env, split_starts
    from keel.rl.agent_job import metrics

    env0 = make_env(cfg.env, split)
    starts = split_starts(env0, split, episodes, seed)
    b = max(1, min(cfg.eval.batch, len(starts)))
    envs = [env0] + [make_env(cfg.env, split) for _ in range(b - 1)]
    trajs = []
    for i in range(0, len(starts), b):
        chunk = starts[i : i + b]
        got, _ = run_episodes(policy, tok, envs[: len(chunk)], chunk, cfg.turns, temperature=0.0, seed=seed)
        trajs += got
    table = usage(turn_experts(policy, trajs), cfg.moe.experts)
    return {**metrics(trajs), "usage": table, **specialisation(table)}


def turn_experts(policy, trajs) -> list[tuple[str, int]]:
    """(phase, expert) of every model turn of `trajs` (the expert recomputed from the trajectory)."""
    from keel.distill.pa_moe_phases import turn_phases

    out = []
    for t in trajs:
        phases = turn_phases(t.messages)
        out += list(zip(phases, policy.trajectory_experts(t.prompt_ids, t.ids, t.mask), strict=False))
    return out


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.distill.pa_moe_phases import specialisation, usage
    from keel.progress import progress_bar
    from keel.rl.agent_job import resume_or_start

    check(cfg)
    policy, tok, prov = build(cfg)
    trainer = PhaseGRPO(policy, tok, cfg.grpo)
    groups = agent_rl.AgentGroups(cfg, policy, tok)
    start, base = resume_or_start(run, trainer, policy, tok, cfg, resume)
    t0, last, pairs = time.time(), {}, []
    with progress_bar(quiet) as bar:
        job = bar.add_task("PA-MoE GRPO", total=cfg.steps, completed=start, info="")
        for step in range(start + 1, cfg.steps + 1):
            last = trainer.train_on(lambda i, step=step: trainer.finish(groups.draw(step, i)),
                                    seed=cfg.seed * 1_000_003 + step)
            step_pairs = turn_experts(policy, groups.last_trajs)
            pairs += step_pairs
            spec = specialisation(usage(step_pairs, cfg.moe.experts))
            last.update(nmi_phase=spec["nmi_phase"], experts_used=spec["experts_used"])
            run.log(step, **last)
            if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                run.save_checkpoint({"trainer": trainer.state_dict(), "base": base}, step)
            bar.update(job, advance=1, info=f"reward {last['reward']:.2f} success {last['accuracy']:.2f}")
    final = {s: episodes_with_usage(policy, tok, cfg, s, cfg.eval.episodes) for s in cfg.eval.splits}
    for s, m in final.items():
        run.log(cfg.steps, **{f"{s}/{k}": v for k, v in m.items() if not isinstance(v, dict)})
    save(policy, run.path, prov)
    train_usage = usage(pairs, cfg.moe.experts)
    summary = {"kind": "pa_moe", **prov, "experts": cfg.moe.experts, "rank": cfg.moe.rank,
               "lora_parameters": policy.lora_parameters(), "router_parameters": policy.router_parameters(),
               "steps": cfg.steps, "last_reward": last.get("reward"), "base": base, "final": final,
               "train_usage": train_usage, "train_specialisation": specialisation(train_usage),
               "train_seconds": round(time.time() - t0, 1), "policy": str(run.path / "policy")}
    run.write_summary(summary)
    return summary


def save(policy, run_path: Path, prov: dict) -> Path:
    """`runs/NAME/policy/`: the experts and router (safetensors) and what they sit on (json)."""
    from safetensors.torch import save_file

    from keel.io import atomic_write_json

    out = Path(run_path) / "policy"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{WEIGHTS}.tmp"
    save_file(policy.adapter_state(), str(tmp))
    tmp.replace(out / WEIGHTS)
    atomic_write_json(out / "pa_moe.json", {"moe": policy.cfg.model_dump(), **prov})
    return out


def load(run) -> tuple[object, object, Config]:
    """(policy, tokenizer, config) of a pa_moe run: its saved experts, else its last checkpoint."""
    from safetensors.torch import load_file

    from keel.config import validate

    cfg = validate(Config, run.config(), str(run.path / "config.yaml"))
    policy, tok, _ = build(cfg)
    w = run.path / "policy" / WEIGHTS
    if w.is_file():
        policy.load_adapter_state(load_file(str(w)))
    else:
        ckpt = run.load_checkpoint()
        if ckpt is None:
            raise KeelError(f"{run.path} has no saved policy or checkpoint yet; train it first")
        policy.load_adapter_state(ckpt[0]["trainer"]["model"])
    policy.eval()
    return policy, tok, cfg


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False) -> dict:
    policy, tok, cfg = load(run)
    return {"split": split, **episodes_with_usage(policy, tok, cfg, split, episodes or cfg.eval.episodes, seed)}


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import table

    s = run.summary() if (run.path / "summary.json").is_file() else {}
    rows = [r for r in run.metrics() if "reward" in r]
    out = [("Training reward", table({f"step {r['step']}": r["reward"] for r in rows[-20:]}))]
    for split, m in (s.get("final") or {}).items():
        out.append((f"Expert usage by phase ({split})", table({p: json.dumps(v) for p, v in m["usage"].items()})))
    return out
