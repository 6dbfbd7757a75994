"""Group-relative policy optimisation for language-model policies, with DAPO / CISPO losses and STAPO.

Shao et al. 2024 (GRPO, arXiv 2402.03300); Yu et al. 2025 (DAPO, arXiv 2503.14476); MiniMax 2025 (CISPO,
arXiv 2506.13585); Liu et al. 2026 (STAPO, arXiv 2602.15620).

One step, read top to bottom:
  1. rollout: for each of `prompts_per_step` problems sample `group_size` completions with the KV-cache
     sampler (the prompt is encoded once per group), keeping each token's behaviour log-prob under the
     distribution sampled from (tempered by `temperature`); with `dynamic_sampling` (DAPO), draw more
     groups and drop those whose rewards are all equal until the batch is full (`keel.rl.dynamic`);
  2. reward each completion with the task's verifier; advantages per group (GRPO / RLOO / REINFORCE);
  3. for each mini-batch: recompute log-probs (same temperature) and entropies with gradients, the token
     loss (DAPO clip or CISPO), plus beta x KL to a frozen reference (its pass is skipped when beta = 0),
     STAPO's mask if on, the token-level mean (DAPO: sum over the mini-batch's kept tokens / their count),
     clip the gradient norm, and step, unless loss or norm is not finite.

The experience (`Rollout`) is one format for single-turn completions and multi-turn agent trajectories:
a "completion" is everything after the shared prompt, and `mask` is 1 only on tokens the model sampled,
so environment and template tokens of a conversation (`keel.llm.multiturn`) never enter the loss.

What makes it fast on a CPU: the KV-cache sampler shares each prompt's cache across its group; the
training pass also runs each prompt once and repeats its KV cache (`share_prefix`); completions whose
advantage is 0 are left out of the backward pass; with beta = 0 there is no reference model at all.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from keel.config import KeelModel
from keel.errors import KeelError
from keel.llm.logprobs import completion_logprobs, shared_prefix_logprobs
from keel.llm.lora import is_lora
from keel.llm.sampler import sample
from keel.rl import advantages, cispo, dapo, dynamic
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
    stapo_pool: Literal["positive", "correct"] = "positive"  # tau_h over positive-advantage replies (paper)
    tau_p: float = s2t.TAU_P
    stapo_q: float = s2t.Q
    epochs: int = 1  # passes over each rollout batch
    minibatches: int = 1  # optimiser steps per pass
    lr: float = 2e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    share_prefix: bool = True  # run each group's prompt once in the training pass (same gradient, less work)
    dynamic_sampling: bool = False  # DAPO: over-sample, drop groups whose rewards are all equal
    dynamic_max_tries: int = 4  # draws of prompts_per_step groups per step, at most


@dataclass
class Rollout:
    """Everything the update needs, nothing more (rows grouped by prompt, `group_size` rows per group)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]  # everything after the prompt (model and, multi-turn, env tokens)
    old_logp: torch.Tensor  # [B, T] behaviour log-probs from the sampler (0 off the mask)
    mask: torch.Tensor  # [B, T] 1 on tokens the model sampled, 0 on env/template tokens and padding
    rewards: torch.Tensor  # [B]
    correct: torch.Tensor  # [B] bool
    advantages: torch.Tensor  # [B]
    ref_logp: torch.Tensor | None = None
    texts: list[str] | None = None
    truncated: torch.Tensor | None = None  # [B] bool: cut by the context budget or turn limit (flagged)

    def groups(self, group_size: int) -> int:
        return len(self.completion_ids) // group_size

    def informative(self, group_size: int) -> list[int]:
        """Groups whose rewards are not all equal (the others have advantage 0 everywhere)."""
        r = self.rewards.view(-1, group_size)
        return torch.nonzero(r.max(1).values > r.min(1).values).flatten().tolist()

    def select_groups(self, idx: list[int], group_size: int) -> Rollout:
        rows = [g * group_size + k for g in idx for k in range(group_size)]
        t = torch.tensor(rows, dtype=torch.long)

        def pick(x):
            return None if x is None else x[t]

        return Rollout([self.prompt_ids[i] for i in rows], [self.completion_ids[i] for i in rows],
                       self.old_logp[t], self.mask[t], self.rewards[t], self.correct[t], self.advantages[t],
                       pick(self.ref_logp), None if self.texts is None else [self.texts[i] for i in rows],
                       pick(self.truncated))


def cat_rollouts(parts: list[Rollout]) -> Rollout:
    """One batch from several (columns padded to the widest); advantages stay as computed per group."""
    T = max(p.mask.shape[1] for p in parts)

    def widen(x):
        return torch.nn.functional.pad(x, (0, T - x.shape[1]))

    def cat(xs):
        return None if any(x is None for x in xs) else torch.cat(xs)

    return Rollout(
        prompt_ids=[r for p in parts for r in p.prompt_ids],
        completion_ids=[r for p in parts for r in p.completion_ids],
        old_logp=torch.cat([widen(p.old_logp) for p in parts]),
        mask=torch.cat([widen(p.mask) for p in parts]),
        rewards=torch.cat([p.rewards for p in parts]),
        correct=torch.cat([p.correct for p in parts]),
        advantages=torch.cat([p.advantages for p in parts]),
        ref_logp=cat([widen(p.ref_logp) if p.ref_logp is not None else None for p in parts]),
        texts=None if any(p.texts is None for p in parts) else [t for p in parts for t in p.texts],
        truncated=cat([p.truncated for p in parts]),
    )


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
    def finish(self, roll: Rollout) -> Rollout:
        """Advantages per group, and the reference log-probs when the KL term is on."""
        c = self.cfg
        roll.advantages = advantages.compute(roll.rewards, c.group_size, c.advantage, c.scale_advantage)
        if c.beta > 0:
            roll.ref_logp = self._ref_logp(roll)
        return roll

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
            advantages=torch.zeros(len(rewards)),
            texts=s.texts,
        )
        return self.finish(roll)

    @torch.no_grad()
    def _ref_logp(self, roll: Rollout) -> torch.Tensor:
        T = self.cfg.temperature
        if self.ref is not None:
            return completion_logprobs(self.ref, roll.prompt_ids, roll.completion_ids, self.pad_id, False, T)[0]
        with self.model.disable_adapter():
            return completion_logprobs(self.model, roll.prompt_ids, roll.completion_ids, self.pad_id, False, T)[0]

    # --- 3: the update ------------------------------------------------------------------------------
    def loss(self, roll: Rollout, rows: torch.Tensor, denom=None) -> tuple[torch.Tensor, dict]:
        """The mini-batch loss over `rows` of the rollout, and what to log about it.

        Token-level mean: sum over kept tokens / `denom` (default: the rows' model tokens), where STAPO's
        silenced tokens leave both the sum and the denominator (renormalising over the rest). Only tokens
        the model sampled (`roll.mask`) count: env and template tokens of a conversation never do.
        """
        c = self.cfg
        P = [roll.prompt_ids[i] for i in rows]
        C = [roll.completion_ids[i] for i in rows]
        logprobs = shared_prefix_logprobs if c.share_prefix else completion_logprobs
        logp, ent, _ = logprobs(self.model, P, C, self.pad_id, with_entropy=True, temperature=c.temperature)
        T = logp.shape[1]
        mask = roll.mask[rows, :T]
        old, adv = roll.old_logp[rows, :T], roll.advantages[rows][:, None]
        if c.loss == "dapo":
            tok_loss, clipped = dapo.token_loss(logp, old, adv, c.eps_low, c.eps_high)
        else:
            tok_loss, clipped = cispo.token_loss(logp, old, adv, c.cispo_eps_low, c.cispo_eps_high)
        if c.beta > 0:  # k3 estimator of KL(pi || ref), unbiased and non-negative (Schulman 2020)
            d = roll.ref_logp[rows, :T] - logp
            tok_loss = tok_loss + c.beta * (torch.exp(d) - d - 1.0)
        if (w := self.token_weights(rows, T)) is not None:
            tok_loss = tok_loss * w
        silenced, tau_h = None, float("nan")
        if c.stapo:
            pool = roll.advantages[rows] > 0 if c.stapo_pool == "positive" else roll.correct[rows]
            silenced, tau_h = s2t.spurious_mask(logp.detach().exp(), ent, adv.squeeze(1), mask, pool,
                                                  c.tau_p, c.stapo_q)
        loss = s2t.aggregate(tok_loss, mask, silenced, denom)
        n = mask.sum().clamp(min=1.0)
        info = {
            "entropy": float((ent * mask).sum() / n),
            "clip_frac": float((clipped * mask).sum() / n),
            "masked_frac": float((silenced * mask).sum() / n) if silenced is not None else 0.0,
            "tau_h": tau_h,
        }
        return loss, info

    def token_weights(self, rows: torch.Tensor, T: int) -> torch.Tensor | None:
        """Constant per-token weights on the loss of `rows` (none here; an off-policy correction, e.g.
        keel.scale.decoupled, overrides this instead of re-writing the loss)."""
        return None

    def update(self, roll: Rollout, seed: int = 0) -> dict:
        c = self.cfg
        self.model.train()
        B = len(roll.completion_ids)
        g = torch.Generator().manual_seed(seed)
        logs, skipped = [], 0
        # DAPO's token-level mean: each optimiser step's loss is the sum over the model tokens of its
        # mini-batch divided by their count. With no KL term, a completion whose advantage is 0 (its whole
        # group got the same reward) adds exactly nothing to that sum: leave it out of the passes but keep
        # its tokens in the count, so the loss is the same as with it. Often most of the batch.
        carries = torch.ones(B, dtype=torch.bool) if c.beta > 0 else roll.advantages != 0
        useful = int(carries.sum())
        if useful == 0:  # nothing to learn from this batch (entropy is not measured then)
            return {"loss": 0.0, "clip_frac": 0.0, "masked_frac": 0.0, "grad_norm": 0.0, "skipped": 0,
                    "updated_rows": 0}
        for _ in range(c.epochs):
            order = torch.randperm(B, generator=g)
            for chunk in order.chunk(c.minibatches):
                rows = chunk[carries[chunk]]
                if len(rows) == 0:
                    continue
                self.opt.zero_grad(set_to_none=True)
                denom = roll.mask[chunk].sum()
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
        out["updated_rows"] = useful
        return out

    def train_on(self, draw: Callable[[int], Rollout], seed: int = 0) -> dict:
        """One step on rollouts from `draw(try_index)` (with DAPO dynamic sampling when on): the metrics."""
        c = self.cfg
        t0 = time.perf_counter()
        dyn: dict = {}
        if c.dynamic_sampling:
            draws: list[Rollout] = []

            def drawn(i: int) -> Rollout:
                draws.append(draw(i))
                return draws[-1]

            roll, dyn = dynamic.fill(drawn, cat_rollouts, c.prompts_per_step, c.group_size, c.dynamic_max_tries)
            first = draws[0]  # reward and accuracy of the first draw: what the policy does, unfiltered
        else:
            roll = first = draw(0)
        t1 = time.perf_counter()
        info = self.update(roll, seed=seed)
        t2 = time.perf_counter()
        tokens = int(first.mask.sum())
        n = max(len(first.completion_ids), 1)
        out = {
            "reward": float(first.rewards.mean()) if len(first.rewards) else float("nan"),
            "accuracy": float(first.correct.float().mean()) if len(first.correct) else float("nan"),
            "completion_len": tokens / n,
            **info,
            **dyn,
            "gen_s": t1 - t0,
            "train_s": t2 - t1,
            "tokens_per_s": tokens / max(t2 - t0, 1e-9),
        }
        if first.truncated is not None:
            out["truncated_frac"] = float(first.truncated.float().mean()) if len(first.truncated) else 0.0
        return out

    def step(self, problems, task, reward: str = "exact", seed: int = 0, system=None,
             more: Callable[[int], list] | None = None) -> dict:
        """One rollout + update; returns the metrics to log. With dynamic sampling, `more(i)` gives the
        problems of the i-th extra draw (i >= 1)."""

        def draw(i: int) -> Rollout:
            if i > 0 and more is None:
                raise KeelError("dynamic sampling needs a source of more problems (pass `more`)")
            return self.rollout(problems if i == 0 else more(i), task, reward, seed=seed + 7919 * i,
                                system=system)

        return self.train_on(draw, seed=seed)

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
