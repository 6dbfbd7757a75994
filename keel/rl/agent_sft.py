"""The `agent_sft` job: behaviour cloning of the env's scripted expert (full fine-tuning or LoRA).

Demonstrations are expert episodes on training tasks (`AgentTasks.expert_reply`), tokenised exactly as the
model would produce them (`keel.rl.agent_rollout.expert_trajectory`); the loss is the token-level mean
negative log-likelihood of the expert's tokens (mask 1), never of the env's. `keel train agent-sft`.
"""

from __future__ import annotations

import itertools
import math
import random
import time
import warnings
from typing import Literal

from pydantic import Field

from keel.config import JobConfig, KeelModel
from keel.errors import KeelError
from keel.llm.multiturn import TurnConfig
from keel.rl.agent_envs import EnvConfig
from keel.rl.agent_job import EvalConfig, PolicyConfig


class SFTConfig(KeelModel):
    lr: float = 5e-5
    weight_decay: float = 0.0
    batch_size: int = 8
    max_grad_norm: float = 1.0
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: linear warmup, then decay to lr/10
    warmup: int = 0  # steps of linear warmup (cosine schedule)
    bf16: bool = False  # matmuls in bfloat16 (torch.autocast); weights and optimiser stay fp32
    share_prefix: bool = False  # batches of one system prompt, run once per batch (same gradient, less work)


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
    # share of those tasks demonstrated once more with one masked mistake the expert recovers from
    # (keel.rl.agent_recovery): the cloned agent sees error observations and what to do after them
    recovery: float = Field(default=0.0, ge=0.0, le=1.0)
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
        logprobs = common_prefix_logprobs if self.cfg.share_prefix else completion_logprobs
        with torch.autocast(model_device(self.model).type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            logp, _, _ = logprobs(self.model, roll.prompt_ids, roll.completion_ids, self.tok.pad_token_id,
                                  with_entropy=False)
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


def common_prefix_logprobs(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                           with_entropy: bool = False):
    """`keel.llm.completion_logprobs`, with the tokens every prompt starts with (the system prompt of a batch
    of one env's demonstrations, most of each prompt) run once: its KV cache is repeated to the rows, which
    go on from there right-padded. Autograd sums the rows' gradients into the shared pass, so the gradient
    is the full pass's; the vocabulary head only sees positions that predict completion tokens."""
    import torch

    from keel.llm import completion_logprobs
    from keel.llm.logprobs import token_stats
    from keel.llm.sampler import _cache_kw, model_device

    L = 0
    shortest = min(len(p) for p in prompt_ids)
    while L < shortest - 1 and all(p[L] == prompt_ids[0][L] for p in prompt_ids):
        L += 1
    if L < 8 or len(prompt_ids) < 2:  # nothing worth sharing
        return completion_logprobs(model, prompt_ids, completion_ids, pad_id, with_entropy)
    dev, B = model_device(model), len(prompt_ids)
    pre = torch.tensor([prompt_ids[0][:L]], device=dev)
    out = model(input_ids=pre, attention_mask=torch.ones_like(pre), position_ids=torch.arange(L, device=dev)[None],
                use_cache=True, logits_to_keep=1)
    cache = out.get("cache")
    cache = cache if cache is not None else out["past_key_values"]
    cache.reorder_cache(torch.zeros(B, dtype=torch.long, device=dev))  # differentiable: grads flow back to pre
    rows = [p[L:] + c for p, c in zip(prompt_ids, completion_ids, strict=True)]
    S, T = max(len(r) for r in rows), max(max((len(c) for c in completion_ids), default=0), 1)
    ids = torch.full((B, S), pad_id, dtype=torch.long)
    amask = torch.zeros((B, L + S), dtype=torch.long)
    amask[:, :L] = 1
    targets = torch.full((B, T), pad_id, dtype=torch.long)
    cmask = torch.zeros((B, T))
    first = torch.tensor([len(p) - L - 1 for p in prompt_ids])  # suffix index predicting completion token 0
    for i, (r, c) in enumerate(zip(rows, completion_ids, strict=True)):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        amask[i, L : L + len(r)] = 1
        if c:
            targets[i, : len(c)] = torch.tensor(c, dtype=torch.long)
            cmask[i, : len(c)] = 1
    keep = S - int(first.min())  # logits of the last `keep` suffix positions cover every prediction needed
    pos = (L + torch.arange(S))[None].expand(B, S)
    out = model(input_ids=ids.to(dev), attention_mask=amask.to(dev), position_ids=pos.to(dev), use_cache=True,
                logits_to_keep=keep, **{_cache_kw(model): cache})
    idx = (first[:, None] + torch.arange(T)[None] - (S - keep)).clamp(max=keep - 1)  # padding rows: any index
    logits = out.logits.gather(1, idx.to(dev)[..., None].expand(-1, -1, out.logits.shape[-1]))
    stats = token_stats(logits, targets.to(dev), cmask.to(dev), with_entropy)
    return tuple(None if x is None else x.cpu() for x in stats)


def demonstrations(cfg: Config, tok) -> list:
    from keel.envs.agentic import AgentTasks
    from keel.llm.conversation import ChatPieces
    from keel.rl.agent_envs import make_env, task_starts
    from keel.rl.agent_recovery import mistake, premature
    from keel.rl.agent_rollout import expert_trajectory

    env = make_env(cfg.env, "train")
    if not isinstance(env, AgentTasks):
        raise KeelError(f"env {cfg.env.name!r} has no scripted expert; agent_sft needs one (toolworld, webworld, "
                        "shopping)")
    n = min(cfg.demos, len(env.task_ids("train")))
    pieces = ChatPieces(tok)
    starts = task_starts(env, "train", n, cfg.seed, cfg.env.draw)
    demos = [expert_trajectory(env, st, tok, pieces, cfg.turns.max_turns) for st in starts]
    if cfg.recovery > 0:
        rng = random.Random(f"{cfg.seed}|recovery")
        for st, d in zip(starts, demos[:n], strict=True):
            if d.success and rng.random() < cfg.recovery:
                said = [m["content"] for m in d.messages if m["role"] == "assistant"]
                request = next((m["content"] for m in d.messages if m["role"] == "user"), "")
                # half of the detours go where a premature call is possible (a look-up the next call needs),
                # the mistake a cloned agent makes on unseen task templates; the rest at a random turn
                early = [t for t in range(len(said) - 1) if premature(said[t + 1], request, random.Random(0))]
                turn = rng.choice(early) if early and rng.random() < 0.5 else rng.randrange(d.turns)
                ahead = said[turn + 1] if turn + 1 < len(said) else None
                detour = (turn, lambda reply, ahead=ahead, request=request: mistake(reply, rng, ahead, request))
                r = expert_trajectory(env, st, tok, pieces, cfg.turns.max_turns, detour=detour)
                if r.episode.get("detour"):  # the env answered the mistake with an error, as intended
                    demos.append(r)
    good = [d for d in demos if d.success and d.length <= cfg.turns.context_budget]
    if not good:
        raise KeelError("the expert solved none of the sampled training tasks within the context budget; "
                        "raise turns.context_budget or check the env's expert")
    return good


def cut_by_reply_cap(demos: list, cap: int) -> int:
    """How many demonstrations have an expert reply longer than `cap` tokens (end-of-turn included): tasks the
    agent can never finish under that cap. Warns when there are any (small caps are fine for smoke runs)."""
    longest = [max((len(list(g)) for m, g in itertools.groupby(d.mask) if m), default=0) for d in demos]
    cut = sum(n > cap for n in longest)
    if cut:
        warnings.warn(f"agent_sft: the expert's replies reach {max(longest)} tokens but turns.max_turn_tokens is "
                      f"{cap}: {cut} of {len(demos)} demonstrated tasks cannot be finished by the agent in "
                      "evaluation or RL; raise turns.max_turn_tokens", stacklevel=2)
    return cut


def draw_batch(demos: list, cfg: SFTConfig, rng: random.Random) -> list:
    """`batch_size` distinct demonstrations; with `share_prefix`, all of one system prompt (the group drawn in
    proportion to its size), so the batch shares most of its prompt tokens."""
    pool = demos
    if cfg.share_prefix:
        groups: dict[str, list] = {}
        for d in demos:
            groups.setdefault(d.messages[0]["content"] if d.messages[0]["role"] == "system" else "", []).append(d)
        pool = rng.choice([groups[k] for k in sorted(groups) for _ in groups[k]])
    return [pool[i] for i in rng.sample(range(len(pool)), min(cfg.batch_size, len(pool)))]


def check(cfg: Config) -> None:
    if cfg.steps < 1 or cfg.sft.batch_size < 1:
        raise KeelError("steps and sft.batch_size must be >= 1")
    for s in cfg.eval.splits:
        if s not in ("train", "test", "test-templates"):
            raise KeelError(f"eval split {s!r}: use train, test or test-templates")


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.agent_job import build_policy, end_step, finish_run, resume_or_start, split_rows

    check(cfg)
    model, tok, prov = build_policy(cfg.policy)
    demos = demonstrations(cfg, tok)
    cut = cut_by_reply_cap(demos, cfg.turns.max_turn_tokens)
    bc = BehaviourCloning(model, tok, cfg.sft)
    start, base = resume_or_start(run, bc, model, tok, cfg, resume)
    t0, last = time.time(), {}
    with progress_bar(quiet) as bar:
        job = bar.add_task("SFT", total=cfg.steps, completed=start, info="")
        for step in range(start + 1, cfg.steps + 1):
            rng = random.Random(f"{cfg.seed}|{step}")  # the batch depends only on (seed, step): exact resume
            batch = draw_batch(demos, cfg.sft, rng)
            last = bc.step(batch, lr_at(cfg.sft, step, cfg.steps))
            end_step(run, step, dict(last), cfg, model, tok, bc, base)
            bar.update(job, advance=1, info=f"loss {last['loss']:.3f}")
    final = {s: {k: v for k, v in r.items() if "/" not in k} for s, r in split_rows(run).items()}
    return finish_run(run, model, tok, final, {
        "kind": "agent_sft", **prov, "steps": cfg.steps, "demos": len(demos),
        "recovery_demos": sum(bool(d.episode.get("detour")) for d in demos), "demos_cut_by_max_turn_tokens": cut,
        "last_loss": last.get("loss"), "base": base, "train_seconds": round(time.time() - t0, 1)})


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False,
             overrides: list[str] | None = None) -> dict:
    from keel.rl.agent_job import evaluate_run

    return evaluate_run(run, Config, episodes, split, seed, overrides)
