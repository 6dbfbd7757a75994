"""Group-relative policy optimisation for language-model policies, with DAPO / CISPO losses and STAPO.

Shao et al. 2024 (GRPO, arXiv 2402.03300); Yu et al. 2025 (DAPO, arXiv 2503.14476); MiniMax 2025 (CISPO,
arXiv 2506.13585); Liu et al. 2026 (STAPO, arXiv 2602.15620).

One step, read top to bottom:
  1. rollout: for each of `prompts_per_step` problems sample `group_size` completions with the KV-cache
     sampler (the prompt is encoded once per group), keeping each token's behaviour log-prob;
  2. reward each completion with the task's verifier; advantages per group (GRPO / RLOO / REINFORCE);
  3. for each mini-batch: recompute log-probs and entropies with gradients, the token loss (DAPO clip or
     CISPO), plus beta x KL to a frozen reference (its pass is skipped when beta = 0), STAPO's mask if on,
     token-level mean over kept tokens, clip the gradient norm, and step, unless loss or norm is not finite.

What makes it fast on a CPU: the KV-cache sampler shares each prompt's cache across its group; the
training pass also runs each prompt once and repeats its KV cache (`share_prefix`); completions whose
advantage is 0 are left out of the backward pass; with beta = 0 there is no reference model at all.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Literal

import torch

from keel.config import KeelModel
from keel.llm.logprobs import completion_logprobs, shared_prefix_logprobs
from keel.llm.lora import is_lora
from keel.llm.sampler import sample
from keel.rl import advantages, cispo, dapo
from keel.rl import stapo as s2t


class GRPOConfig(KeelModel):
    group_size: int = 8
    prompts_per_step: int = 2
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    advantage: Literal["grpo", "rloo", "reinforce"] = "grpo"
    scale_advantage: bool = True
    loss: Literal["dapo", "cispo"] = "dapo"
    eps_low: float = 0.2
    eps_high: float = 0.28
    cispo_eps_low: float = 1.0
    cispo_eps_high: float = 4.0
    beta: float = 0.0  # weight of the KL to the frozen reference (k3 estimator); 0 skips the reference
    stapo: bool = False
    tau_p: float = s2t.TAU_P
    stapo_q: float = s2t.Q
    epochs: int = 1  # passes over each rollout batch
    minibatches: int = 1  # optimiser steps per pass
    lr: float = 2e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    share_prefix: bool = True  # run each group's prompt once in the training pass (same gradient, less work)


@dataclass
class Rollout:
    """Everything the update needs, nothing more (rows grouped by prompt, `group_size` rows per group)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    old_logp: torch.Tensor  # [B, T] behaviour log-probs from the sampler
    mask: torch.Tensor  # [B, T] 1 on completion tokens
    rewards: torch.Tensor  # [B]
    correct: torch.Tensor  # [B] bool
    advantages: torch.Tensor  # [B]
    ref_logp: torch.Tensor | None = None
    texts: list[str] | None = None


def _pad_right(rows: list[list[float]], width: int) -> torch.Tensor:
    out = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
    return out


class GRPO:
    def __init__(self, model, tokenizer, cfg: GRPOConfig):
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        self.pad_id = tokenizer.pad_token_id
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ref = None
        if cfg.beta > 0 and not is_lora(model):  # with LoRA the reference is the model, adapters off
            self.ref = copy.deepcopy(model).eval().requires_grad_(False)

    # --- 1 + 2: rollout and advantages --------------------------------------------------------------
    def rollout(self, problems, task, reward: str = "exact", seed: int | None = None, system=None) -> Rollout:
        c = self.cfg
        s = sample(self.model, self.tok, [p.messages(system) for p in problems], n=c.group_size,
                   max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, seed=seed)
        scores = [task.score(problems[i], text) for i, text in zip(s.prompt_index, s.texts, strict=True)]
        rewards = torch.tensor([sc.reward(reward) for sc in scores], dtype=torch.float32)
        T = max(1, max(len(x) for x in s.completion_ids))
        mask = _pad_right([[1.0] * len(x) for x in s.completion_ids], T)
        roll = Rollout(
            prompt_ids=s.prompt_ids,
            completion_ids=s.completion_ids,
            old_logp=_pad_right(s.logprobs, T),
            mask=mask,
            rewards=rewards,
            correct=torch.tensor([sc.correct for sc in scores]),
            advantages=advantages.compute(rewards, c.group_size, c.advantage, c.scale_advantage),
            texts=s.texts,
        )
        if c.beta > 0:
            roll.ref_logp = self._ref_logp(roll)
        return roll

    @torch.no_grad()
    def _ref_logp(self, roll: Rollout) -> torch.Tensor:
        if self.ref is not None:
            return completion_logprobs(self.ref, roll.prompt_ids, roll.completion_ids, self.pad_id, False)[0]
        with self.model.disable_adapter():
            return completion_logprobs(self.model, roll.prompt_ids, roll.completion_ids, self.pad_id, False)[0]

    # --- 3: the update ------------------------------------------------------------------------------
    def loss(self, roll: Rollout, rows: torch.Tensor, denom=None) -> tuple[torch.Tensor, dict]:
        """The mini-batch loss over `rows` of the rollout, and what to log about it.

        Token-level mean: sum over kept tokens / `denom` (default: the rows' completion tokens), where
        STAPO's silenced tokens leave both the sum and the denominator (renormalising over the rest).
        """
        c = self.cfg
        P = [roll.prompt_ids[i] for i in rows]
        C = [roll.completion_ids[i] for i in rows]
        logprobs = shared_prefix_logprobs if c.share_prefix else completion_logprobs
        logp, ent, mask = logprobs(self.model, P, C, self.pad_id, with_entropy=True)
        T = mask.shape[1]
        old, adv = roll.old_logp[rows, :T], roll.advantages[rows][:, None]
        if c.loss == "dapo":
            tok_loss, clipped = dapo.token_loss(logp, old, adv, c.eps_low, c.eps_high)
        else:
            tok_loss, clipped = cispo.token_loss(logp, old, adv, c.cispo_eps_low, c.cispo_eps_high)
        if c.beta > 0:  # k3 estimator of KL(pi || ref), unbiased and non-negative (Schulman 2020)
            d = roll.ref_logp[rows, :T] - logp
            tok_loss = tok_loss + c.beta * (torch.exp(d) - d - 1.0)
        silenced, tau_h = None, float("nan")
        if c.stapo:
            silenced, tau_h = s2t.spurious_mask(logp.detach().exp(), ent, adv.squeeze(1), mask,
                                                  roll.correct[rows], c.tau_p, c.stapo_q)
        loss = s2t.aggregate(tok_loss, mask, silenced, denom)
        n = mask.sum().clamp(min=1.0)
        info = {
            "entropy": float((ent * mask).sum() / n),
            "clip_frac": float((clipped * mask).sum() / n),
            "masked_frac": float((silenced * mask).sum() / n) if silenced is not None else 0.0,
            "tau_h": tau_h,
        }
        return loss, info

    def update(self, roll: Rollout, seed: int = 0) -> dict:
        c = self.cfg
        self.model.train()
        B = len(roll.completion_ids)
        g = torch.Generator().manual_seed(seed)
        logs, skipped = [], 0
        # With no KL term, a completion whose advantage is 0 (its whole group got the same reward) adds
        # exactly nothing to the gradient: leave it out of the passes, but keep its tokens in the
        # token-mean denominator so the loss scale is unchanged. Often most of the batch on a hard task.
        useful = torch.arange(B) if c.beta > 0 else torch.nonzero(roll.advantages != 0).flatten()
        if len(useful) == 0:  # nothing to learn from this batch (entropy is not measured then)
            return {"loss": 0.0, "clip_frac": 0.0, "masked_frac": 0.0, "grad_norm": 0.0, "skipped": 0,
                    "updated_rows": 0}
        for _ in range(c.epochs):
            order = useful[torch.randperm(len(useful), generator=g)]
            for rows in order.chunk(c.minibatches):
                self.opt.zero_grad(set_to_none=True)
                denom = roll.mask[rows].sum() if c.beta > 0 else roll.mask.sum() * len(rows) / B
                loss, info = self.loss(roll, rows, denom)
                finite = bool(torch.isfinite(loss))
                if finite:
                    loss.backward()
                    params = [p for p in self.model.parameters() if p.grad is not None]
                    norm = float(torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm))
                    finite = math.isfinite(norm)
                else:
                    norm = float("nan")
                if finite:
                    self.opt.step()
                else:  # a non-finite loss or gradient would poison the weights: skip this step, log it
                    skipped += 1
                self.opt.zero_grad(set_to_none=True)
                logs.append({**info, "loss": float(loss.detach()), "grad_norm": norm})
        self.model.eval()
        out = {k: sum(d[k] for d in logs) / len(logs) for k in logs[0] if k not in ("grad_norm", "tau_h")}
        taus = [d["tau_h"] for d in logs if math.isfinite(d["tau_h"])]
        if taus:  # STAPO's entropy threshold, when there were low-probability tokens in correct replies
            out["tau_h"] = sum(taus) / len(taus)
        out["grad_norm"] = max(d["grad_norm"] for d in logs)  # the largest, so spikes show
        out["skipped"] = skipped
        out["updated_rows"] = len(useful)
        return out

    def step(self, problems, task, reward: str = "exact", seed: int = 0, system=None) -> dict:
        """One rollout + update; returns the metrics to log."""
        t0 = time.perf_counter()
        roll = self.rollout(problems, task, reward, seed=seed, system=system)
        t1 = time.perf_counter()
        info = self.update(roll, seed=seed)
        t2 = time.perf_counter()
        tokens = int(roll.mask.sum())
        return {
            "reward": float(roll.rewards.mean()),
            "accuracy": float(roll.correct.float().mean()),
            "completion_len": tokens / len(roll.completion_ids),
            **info,
            "gen_s": t1 - t0,
            "train_s": t2 - t1,
            "tokens_per_s": tokens / max(t2 - t0, 1e-9),
        }

    # --- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        trainable = {k for k, p in self.model.named_parameters() if p.requires_grad}
        weights = {k: v for k, v in self.model.state_dict().items() if k in trainable}
        return {"model": weights, "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        missing = self.model.load_state_dict(state["model"], strict=False)
        if missing.unexpected_keys:
            raise RuntimeError(f"checkpoint has unexpected weights: {missing.unexpected_keys[:5]}")
        self.opt.load_state_dict(state["opt"])


@torch.no_grad()
def accuracy(model, tokenizer, task, problems, max_new_tokens: int = 16, batch: int = 32, system=None,
             reward: str = "exact") -> dict:
    """Greedy-decoding accuracy (and mean reward) of `model` on `problems`."""
    correct, total_reward = 0, 0.0
    for i in range(0, len(problems), batch):
        chunk = problems[i : i + batch]
        s = sample(model, tokenizer, [p.messages(system) for p in chunk], n=1, max_new_tokens=max_new_tokens,
                   temperature=0.0, seed=0)
        for p, text in zip(chunk, s.texts, strict=True):
            sc = task.score(p, text)
            correct += sc.correct
            total_reward += sc.reward(reward)
    n = max(len(problems), 1)
    return {"accuracy": correct / n, "reward": total_reward / n, "n": len(problems)}
