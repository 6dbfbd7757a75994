"""The `inftythink` job: bounded-round reasoning trained as in InftyThink+ (Yan et al. 2026, arXiv 2602.06960).

Two stages, read top to bottom:
  1. cold start (SFT): the task's solver traces are cut into rounds of at most N tokens, each ending with
     the summary a fresh round needs (`keel.llm.rounds.cut_trace`): (q, r_1, s_1), (q, s_1, r_2, s_2), ...,
     (q, s_{n-1}, r_n, answer); token-level NLL of every round's output given its prompt;
  2. trajectory-level RL (GRPO family): for each problem sample G multi-round trajectories
     (`keel.llm.rounds.run_rounds`); every round of trajectory i shares its scalar reward
        R(O_i) = R_task(O_i) * R_eff(O_i),   R_eff = 1 - ((n_i - 1) / phi)^2   (rounds; the paper's)
     or 1 - (tokens_i / budget)^2 (tokens), or 1 (none); advantages are normalised within the group of G
     trajectories, and the loss is the token-level mean over all rounds of all trajectories (DAPO clip /
     CISPO / STAPO from `keel.rl.grpo`, each round one row with its own prompt).

`mode: chain` trains the baseline the paper compares with: one long chain of thought, the same solver
traces uncut, the same budget (one round of N x phi tokens), the same SFT and RL steps.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import torch
from pydantic import Field

from keel.config import JobConfig
from keel.envs.text.base import Problem
from keel.envs.text.chains import ChainTask, make_chain_task
from keel.errors import KeelError
from keel.llm.rounds import RoundsConfig, RoundTrajectory, cut_trace, run_rounds
from keel.rl.agent_job import PolicyConfig
from keel.rl.agent_sft import SFTConfig
from keel.rl.grpo import GRPOConfig, Rollout

SPLITS = ("train", "test", "heldout")  # heldout: the test split at the longer lengths


class Config(JobConfig):
    kind: Literal["inftythink"] = "inftythink"
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    train_layers: int = 0  # > 0: train only the top K decoder layers (and the final norm); 0: every weight
    task: Literal["arith_chain", "countdown_chain"] = "arith_chain"
    train_options: dict[str, Any] = Field(default_factory=lambda: {"min_steps": 6, "max_steps": 12})
    heldout_options: dict[str, Any] = Field(default_factory=lambda: {"min_steps": 16, "max_steps": 24})
    mode: Literal["rounds", "chain"] = "rounds"  # chain: one long chain of the same total budget (baseline)
    rounds: RoundsConfig = Field(default_factory=RoundsConfig)
    # cold-start rounds end at random cut points (all that fit) or hold as many steps as fit ("full");
    # random cuts make training rounds begin at every step (see keel.llm.rounds.cut_trace)
    cuts: Literal["random", "full"] = "random"
    train_pool: int = 256  # training problems drawn once
    sft_steps: int = 100
    sft: SFTConfig = Field(default_factory=lambda: SFTConfig(lr=1e-4, batch_size=8))  # batch_size: problems
    rl_steps: int = 0
    grpo: GRPOConfig = Field(default_factory=lambda: GRPOConfig(group_size=4, prompts_per_step=2, lr=1e-5,
                                                                temperature=1.0))
    efficiency: Literal["rounds", "tokens", "none"] = "rounds"
    eval_n: int = 32  # per split
    eval_splits: list[str] = Field(default_factory=lambda: ["test", "heldout"])
    eval_batch: int = 16
    eval_base: bool = False
    checkpoint_every: int = 25


def effective_rounds(cfg: Config) -> RoundsConfig:
    """The rounds the policy reasons in: as configured, or (chain mode) one round of the whole budget."""
    if cfg.mode == "chain":
        return RoundsConfig(round_tokens=cfg.rounds.budget, max_rounds=1, history=cfg.rounds.history)
    return cfg.rounds


def freeze_below(model, top_layers: int) -> None:
    """Train only the top `top_layers` decoder layers and the final norm: the backward pass stops there, a
    few times cheaper than full fine-tuning on a CPU (the embeddings, tied to the output head, stay fixed)."""
    from keel.llm.lora import is_lora

    if top_layers <= 0:
        return
    if is_lora(model):
        raise KeelError("train_layers and policy.lora_r are exclusive: choose one way to cut the trained weights")
    layers = model.model.layers
    if top_layers > len(layers):
        raise KeelError(f"train_layers={top_layers} but the model has {len(layers)} decoder layers")
    model.requires_grad_(False)
    for layer in layers[len(layers) - top_layers :]:
        layer.requires_grad_(True)
    model.model.norm.requires_grad_(True)


def tasks(cfg: Config) -> tuple[ChainTask, ChainTask]:
    """(training-length task, held-out-length task)."""
    return make_chain_task(cfg.task, **cfg.train_options), make_chain_task(cfg.task, **cfg.heldout_options)


def check(cfg: Config) -> None:
    cfg.rounds.check()
    if cfg.sft_steps < 0 or cfg.rl_steps < 0 or cfg.sft_steps + cfg.rl_steps < 1:
        raise KeelError("need sft_steps >= 0, rl_steps >= 0 and at least one step in all")
    if cfg.grpo.beta > 0 or cfg.grpo.dynamic_sampling:
        raise KeelError("inftythink: grpo.beta > 0 and grpo.dynamic_sampling are not supported (advantages are "
                        "per trajectory, rows are rounds); set beta: 0 and dynamic_sampling: false")
    for s in cfg.eval_splits:
        if s not in SPLITS:
            raise KeelError(f"eval split {s!r}: use {', '.join(SPLITS)}")
    train_t, held_t = tasks(cfg)
    if held_t.min_steps <= train_t.max_steps:
        raise KeelError(f"held-out problems must be longer than any in training: heldout_options.min_steps "
                        f"({held_t.min_steps}) must exceed train_options.max_steps ({train_t.max_steps})")


def split_problems(cfg: Config, split: str, n: int, seed: int = 12345) -> tuple[ChainTask, list[Problem]]:
    train_t, held_t = tasks(cfg)
    if split == "heldout":
        return held_t, held_t.problems("test", n, seed)
    return train_t, train_t.problems(split, n, seed)


# --- 1. cold start -----------------------------------------------------------------------------------------
def cold_start_examples(task: ChainTask, problems: list[Problem], rounds: RoundsConfig, tok,
                        rng: random.Random | None = None) -> list[list]:
    """Per problem, its solver trace cut into rounds, as token-exact trajectories (mask 1 on the output,
    which is the round's text then EOS after an answer; a summary round ends at its closing tag). `rng`:
    random cut points (`cut_trace`), else rounds as full as fit."""
    from keel.llm.conversation import Trajectory

    def encode(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    out = []
    for p in problems:
        rows = []
        for rt in cut_trace(p.prompt, task.trace(p), rounds, lambda t: len(encode(t)), rng):
            tr = Trajectory(prompt_ids=encode(rt.prompt))
            for t in encode(rt.completion) + ([tok.eos_token_id] if rt.final else []):
                tr.add_model(t, 0.0)
            rows.append(tr)
        out.append(rows)
    return out


def cut_rng(cfg: Config) -> random.Random | None:
    """The cold start's cut points: seeded by the run's seed (exact resume), or None for full rounds."""
    return random.Random(f"{cfg.seed}|cuts") if cfg.cuts == "random" else None


# --- 2. trajectory-level RL --------------------------------------------------------------------------------
def trajectory_reward(task: ChainTask, problem: Problem, traj: RoundTrajectory, rounds: RoundsConfig,
                      efficiency: str) -> tuple[float, bool]:
    """(R_task * R_eff, correct) for one trajectory."""
    correct = traj.ended == "answer" and task.score(problem, traj.final_text).correct
    if efficiency == "rounds":
        eff = 1.0 - ((len(traj.rounds) - 1) / rounds.max_rounds) ** 2
    elif efficiency == "tokens":
        eff = 1.0 - (traj.generated / rounds.budget) ** 2
    else:
        eff = 1.0
    return float(correct) * eff, correct


def to_rollout(trajs: list[RoundTrajectory], rewards: torch.Tensor, correct: torch.Tensor,
               advantages: torch.Tensor) -> Rollout:
    """Every round of every trajectory is one row, carrying its trajectory's reward and advantage."""
    rows = [(i, r) for i, t in enumerate(trajs) for r in t.rounds]
    T = max(1, max(len(r.completion_ids) for _, r in rows))
    logp, mask = torch.zeros((len(rows), T)), torch.zeros((len(rows), T))
    for k, (_, r) in enumerate(rows):
        logp[k, : len(r.logprobs)] = torch.tensor(r.logprobs, dtype=torch.float32)
        mask[k, : len(r.completion_ids)] = 1.0
    owner = torch.tensor([i for i, _ in rows], dtype=torch.long)
    return Rollout(
        prompt_ids=[r.prompt_ids for _, r in rows],
        completion_ids=[r.completion_ids for _, r in rows],
        old_logp=logp,
        mask=mask,
        rewards=rewards[owner],
        correct=correct[owner],
        advantages=advantages[owner],
        texts=[r.text for _, r in rows],
        truncated=torch.tensor([trajs[i].ended != "answer" for i, _ in rows]),
    )


class RoundGroups:
    """Draws a GRPO batch: G multi-round trajectories for each of `prompts_per_step` training problems."""

    def __init__(self, cfg: Config, model, tok, task: ChainTask, pool: list[Problem]):
        self.cfg, self.model, self.tok, self.task, self.pool = cfg, model, tok, task, pool
        self.rounds = effective_rounds(cfg)
        self.last: dict = {}

    def draw(self, step: int) -> Rollout:
        from keel.rl import advantages

        g = self.cfg.grpo
        rng = random.Random(f"{self.cfg.seed}|rl|{step}")  # problems and sampling depend only on (seed, step)
        problems = [p for p in rng.sample(self.pool, g.prompts_per_step) for _ in range(g.group_size)]
        trajs, secs = run_rounds(self.model, self.tok, [p.prompt for p in problems], self.rounds, g.temperature,
                                 seed=self.cfg.seed * 1_000_003 + step)
        scored = [trajectory_reward(self.task, p, t, self.rounds, self.cfg.efficiency)
                  for p, t in zip(problems, trajs, strict=True)]
        rewards = torch.tensor([r for r, _ in scored], dtype=torch.float32)
        correct = torch.tensor([c for _, c in scored])
        adv = advantages.compute(rewards, g.group_size, g.advantage, g.scale_advantage)
        n = len(trajs)
        self.last = {"traj_reward": float(rewards.mean()), "traj_accuracy": float(correct.float().mean()),
                     "rounds": sum(len(t.rounds) for t in trajs) / n,
                     "generated": sum(t.generated for t in trajs) / n,
                     "peak_context": sum(t.peak_context for t in trajs) / n,
                     "malformed": sum(t.ended == "malformed" for t in trajs) / n, "rollout_s": secs}
        return to_rollout(trajs, rewards, correct, adv)


# --- evaluation ----------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_problems(model, tok, task: ChainTask, problems: list[Problem], rounds: RoundsConfig,
                      batch: int = 16) -> dict:
    """Greedy trajectories: accuracy, peak context (mean and max), tokens, rounds and wall time per problem."""
    trajs, secs = [], 0.0
    for i in range(0, len(problems), batch):
        chunk = problems[i : i + batch]
        got, s = run_rounds(model, tok, [p.prompt for p in chunk], rounds, temperature=0.0, seed=0)
        trajs += got
        secs += s
    n = max(len(trajs), 1)
    correct = [t.ended == "answer" and task.score(p, t.final_text).correct for p, t in zip(problems, trajs,
                                                                                           strict=True)]
    return {
        "n": len(trajs),
        "accuracy": sum(correct) / n,
        "answered": sum(t.ended == "answer" for t in trajs) / n,
        "malformed": sum(t.ended == "malformed" for t in trajs) / n,
        "out_of_rounds": sum(t.ended == "rounds" for t in trajs) / n,
        "rounds": sum(len(t.rounds) for t in trajs) / n,
        "generated_tokens": sum(t.generated for t in trajs) / n,
        "peak_context_mean": sum(t.peak_context for t in trajs) / n,
        "peak_context_max": max((t.peak_context for t in trajs), default=0),
        "seconds_per_problem": secs / n,
        "steps_mean": sum(task.steps_of(p) for p in problems) / n,
    }


def evaluate_splits(model, tok, cfg: Config, seed: int = 12345) -> dict:
    out = {}
    for s in cfg.eval_splits:
        task, problems = split_problems(cfg, s, cfg.eval_n, seed)
        out[s] = evaluate_problems(model, tok, task, problems, effective_rounds(cfg), cfg.eval_batch)
    return out


# --- the job -------------------------------------------------------------------------------------------------
def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.agent_job import build_policy, save_policy
    from keel.rl.agent_sft import BehaviourCloning
    from keel.rl.grpo import GRPO

    check(cfg)
    model, tok, prov = build_policy(cfg.policy)
    freeze_below(model, cfg.train_layers)
    rounds = effective_rounds(cfg)
    task, _ = tasks(cfg)
    pool = task.problems("train", cfg.train_pool, cfg.seed)
    total = cfg.sft_steps + cfg.rl_steps
    bc = BehaviourCloning(model, tok, cfg.sft)
    rl = GRPO(model, tok, cfg.grpo) if cfg.rl_steps else None
    start, base = 0, None
    if resume and (ckpt := run.load_checkpoint()) is not None:
        state, start = ckpt
        (bc if start <= cfg.sft_steps else rl).load_state_dict(state["trainer"])
        base = state.get("base")
        run.truncate_metrics(start)
    if base is None:
        base = evaluate_splits(model, tok, cfg) if cfg.eval_base else {}
        for s, m in base.items():
            run.log(0, **{f"{s}/{k}": v for k, v in m.items()})
    examples = cold_start_examples(task, pool, rounds, tok, cut_rng(cfg)) if cfg.sft_steps > start else []
    groups = RoundGroups(cfg, model, tok, task, pool)
    t0, last, final = time.time(), {}, {}
    with progress_bar(quiet) as bar:
        job = bar.add_task("InftyThink", total=total, completed=start, info="")
        for step in range(start + 1, total + 1):
            if step <= cfg.sft_steps:  # the batch is `batch_size` problems, all their rounds
                rng = random.Random(f"{cfg.seed}|sft|{step}")
                picked = rng.sample(range(len(examples)), min(cfg.sft.batch_size, len(examples)))
                last = {"phase": "sft", **bc.step([tr for i in picked for tr in examples[i]])}
                trainer = bc
            else:
                assert rl is not None
                last = {"phase": "rl", **rl.train_on(lambda i, step=step: groups.draw(step), seed=step)}
                last.update(groups.last)
                trainer = rl
            if step == total:
                final = evaluate_splits(model, tok, cfg)
                for s, m in final.items():
                    last.update({f"{s}/{k}": v for k, v in m.items()})
            run.log(step, **last)
            if step == total or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.sft_steps:
                run.save_checkpoint({"trainer": trainer.state_dict(), "base": base}, step)
            bar.update(job, advance=1, info=f"{last['phase']} loss {last.get('loss', float('nan')):.3f}")
    save_policy(model, tok, run.path)
    summary = {"kind": "inftythink", **prov, "mode": cfg.mode, "sft_steps": cfg.sft_steps, "rl_steps": cfg.rl_steps,
               "base": base, "final": final, "train_seconds": round(time.time() - t0, 1),
               "policy": str(run.path / "policy")}
    run.write_summary(summary)
    return summary


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345,
             quiet: bool = False) -> dict:
    """`keel eval RUN --split test|train`: the saved policy's greedy bounded-round metrics. The test split is
    measured twice: at the training lengths ("test") and at the longer held-out lengths ("heldout")."""
    from keel.config import validate
    from keel.rl.agent_job import load_policy

    if split not in ("train", "test"):
        raise KeelError(f"split {split!r}: inftythink runs evaluate on train or test (test includes the longer "
                        "held-out problems)")
    cfg = validate(Config, run.config(), str(run.path / "config.yaml"))
    model, tok = load_policy(run.path, cfg.policy.device)
    out: dict = {"split": split, "mode": cfg.mode}
    for s in (["train"] if split == "train" else ["test", "heldout"]):
        task, problems = split_problems(cfg, s, episodes or cfg.eval_n, seed)
        out[s] = evaluate_problems(model, tok, task, problems, effective_rounds(cfg), cfg.eval_batch)
    return out


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import table

    rows = [r for r in run.metrics() if "heldout/accuracy" in r]
    return [("Held-out (longer) accuracy", table({f"step {r['step']}": r["heldout/accuracy"] for r in rows}))]
