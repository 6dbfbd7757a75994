"""The `agent_sft` job: behaviour cloning of the env's scripted expert (full fine-tuning or LoRA).

Demonstrations are expert episodes on training tasks (`AgentTasks.expert_reply`), tokenised exactly as the
model would produce them (`keel.rl.agent_rollout.expert_trajectory`); the loss is the token-level mean
negative log-likelihood of the expert's tokens (mask 1), never of the env's. `keel train agent-sft`.
"""

from __future__ import annotations

import math
import random
import time
from typing import Literal

from pydantic import Field

from keel.config import JobConfig, KeelModel
from keel.errors import KeelError
from keel.llm.multiturn import TurnConfig
from keel.rl.agent_envs import EnvConfig
from keel.rl.agent_job import EvalConfig, PolicyConfig
from keel.rl.agent_job import split_rows as _split_rows  # noqa: F401  (old private name, still imported elsewhere)


class SFTConfig(KeelModel):
    lr: float = 5e-5
    weight_decay: float = 0.0
    batch_size: int = 8
    max_grad_norm: float = 1.0
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: linear warmup, then decay to lr/10
    warmup: int = 0  # steps of linear warmup (cosine schedule)
    bf16: bool = False  # matmuls in bfloat16 (torch.autocast); weights and optimiser stay fp32


def lr_at(cfg: SFTConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step `step` (1-based) of `total`: a function of the step only, so a
    resumed run continues on the same schedule."""
    if cfg.schedule == "constant":
        return cfg.lr
    if step <= cfg.warmup:
        return cfg.lr * step / max(cfg.warmup, 1)
    frac = (step - cfg.warmup) / max(total - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


class Config(JobConfig):
    kind: Literal["agent_sft"] = "agent_sft"
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    env: EnvConfig = Field(default_factory=lambda: EnvConfig(name="toolworld"))
    turns: TurnConfig = Field(default_factory=TurnConfig)  # for evaluation episodes
    demos: int = 512  # expert episodes on distinct training tasks (fewer if the split is smaller)
    steps: int = 100
    checkpoint_every: int = 25
    eval: EvalConfig = Field(default_factory=EvalConfig)
    eval_base: bool = True
    sft: SFTConfig = Field(default_factory=SFTConfig)


class BehaviourCloning:
    """Token-level NLL of the model tokens of demonstration trajectories, one optimiser step per batch."""

    def __init__(self, model, tokenizer, cfg: SFTConfig):
        import torch

        self.model, self.tok, self.cfg = model, tokenizer, cfg
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def loss(self, batch) -> tuple:
        import torch

        from keel.llm import completion_logprobs
        from keel.llm.sampler import model_device
        from keel.rl.agent_rollout import to_rollout

        roll = to_rollout(batch)
        with torch.autocast(model_device(self.model).type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            logp, _, _ = completion_logprobs(self.model, roll.prompt_ids, roll.completion_ids,
                                             self.tok.pad_token_id, with_entropy=False)
        mask = roll.mask[:, : logp.shape[1]]
        n = mask.sum().clamp(min=1.0)
        return -(logp * mask).sum() / n, int(n)

    def step(self, batch, lr: float | None = None) -> dict:
        """One optimiser step on `batch` (at learning rate `lr` when given, else the configured one)."""
        import torch

        for g in self.opt.param_groups:
            g["lr"] = self.cfg.lr if lr is None else lr
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss, n = self.loss(batch)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm))
        if torch.isfinite(loss) and norm == norm:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.model.eval()
        return {"loss": float(loss.detach()), "grad_norm": norm, "tokens": n, "lr": self.opt.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        trainable = {k for k, p in self.model.named_parameters() if p.requires_grad}
        return {"model": {k: v for k, v in self.model.state_dict().items() if k in trainable},
                "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        missing = self.model.load_state_dict(state["model"], strict=False)
        if missing.unexpected_keys:
            raise KeelError(f"checkpoint has unexpected weights: {missing.unexpected_keys[:5]}")
        self.opt.load_state_dict(state["opt"])


def demonstrations(cfg: Config, tok) -> list:
    from keel.envs.agentic import AgentTasks
    from keel.llm.conversation import ChatPieces
    from keel.rl.agent_envs import make_env, task_starts
    from keel.rl.agent_rollout import expert_trajectory

    env = make_env(cfg.env, "train")
    if not isinstance(env, AgentTasks):
        raise KeelError(f"env {cfg.env.name!r} has no scripted expert; agent_sft needs one (toolworld, webworld, "
                        "shopping)")
    n = min(cfg.demos, len(env.task_ids("train")))
    pieces = ChatPieces(tok)
    demos = [expert_trajectory(env, st, tok, pieces, cfg.turns.max_turns) for st in task_starts(env, "train", n,
                                                                                                cfg.seed)]
    good = [d for d in demos if d.success and d.length <= cfg.turns.context_budget]
    if not good:
        raise KeelError("the expert solved none of the sampled training tasks within the context budget; "
                        "raise turns.context_budget or check the env's expert")
    return good


def check(cfg: Config) -> None:
    if cfg.steps < 1 or cfg.sft.batch_size < 1:
        raise KeelError("steps and sft.batch_size must be >= 1")
    for s in cfg.eval.splits:
        if s not in ("train", "test", "test-templates"):
            raise KeelError(f"eval split {s!r}: use train, test or test-templates")


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.agent_job import build_policy, end_step, resume_or_start, save_policy, split_rows

    check(cfg)
    model, tok, prov = build_policy(cfg.policy)
    demos = demonstrations(cfg, tok)
    bc = BehaviourCloning(model, tok, cfg.sft)
    start, base = resume_or_start(run, bc, model, tok, cfg, resume)
    t0, last = time.time(), {}
    with progress_bar(quiet) as bar:
        job = bar.add_task("SFT", total=cfg.steps, completed=start, info="")
        for step in range(start + 1, cfg.steps + 1):
            rng = random.Random(f"{cfg.seed}|{step}")  # the batch depends only on (seed, step): exact resume
            batch = [demos[i] for i in rng.sample(range(len(demos)), min(cfg.sft.batch_size, len(demos)))]
            last = bc.step(batch, lr_at(cfg.sft, step, cfg.steps))
            end_step(run, step, dict(last), cfg, model, tok, bc, base)
            bar.update(job, advance=1, info=f"loss {last['loss']:.3f}")
    save_policy(model, tok, run.path)
    final = {s: {k: v for k, v in r.items() if "/" not in k} for s, r in split_rows(run).items()}
    summary = {"kind": "agent_sft", **prov, "steps": cfg.steps, "demos": len(demos), "last_loss": last.get("loss"),
               "base": base, "final": final, "train_seconds": round(time.time() - t0, 1),
               "policy": str(run.path / "policy")}
    run.write_summary(summary)
    return summary


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False) -> dict:
    from keel.rl.agent_job import evaluate_run

    return evaluate_run(run, Config, episodes, split, seed)
