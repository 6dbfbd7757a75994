"""Ensembles of small policies (nanochat-style): majority vote, logit averaging, best-of-N with a verifier.

- Majority vote (self-consistency, Wang et al. 2022, arXiv 2203.11171, when the N replies come from one
  model): the answer most replies give (`keel.distill.answers` decides when two replies agree).
- Logit averaging: decode one reply token by token from the mean of the members' next-token logits. The
  mean of logits and the mean of log-probabilities differ by one constant per row, so both give the same
  distribution: the normalised geometric mean (product of experts) of the members' distributions.
- Best-of-N (Cobbe et al. 2021, arXiv 2110.14168): the reply a verifier scores highest; here the verifier is
  a learned reward model (`keel.distill.prm.PRM`), never the task's answer key, which would be an oracle.

Cost is counted in tokens the models process (prompt + generated, per member), so one model sampled N
times and N models sampled once are compared at equal compute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from keel.errors import KeelError
from keel.llm.lora import is_lora
from keel.llm.sampler import Prompt, _eos_ids, encode_prompts, left_pad, model_step


def majority_vote(keys: Sequence[str | None]) -> str | None:
    """The most common non-None key; a tie goes to the key seen first (so the order of members matters)."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(k for k in keys if k is not None and counts[k] == top)


def average_logits(logits: torch.Tensor) -> torch.Tensor:
    """[N, B, V] next-token logits of N members -> [B, V] ensemble logits (their mean)."""
    if logits.dim() != 3 or logits.shape[0] < 1:
        raise KeelError(f"average_logits wants [members, batch, vocab] logits, got shape {tuple(logits.shape)}")
    return logits.float().mean(0)


def best_of_n(scores: Sequence[float]) -> int:
    """Index of the candidate the verifier scores highest (the first one on a tie)."""
    if not scores:
        raise KeelError("best_of_n needs at least one scored candidate")
    return max(range(len(scores)), key=lambda i: scores[i])


@dataclass
class Member:
    """One policy of an ensemble: a model, and the name of its LoRA adapter when members share a base."""

    model: torch.nn.Module
    adapter: str | None = None

    def activate(self) -> torch.nn.Module:
        if self.adapter is not None:
            if not is_lora(self.model):
                raise KeelError(f"member adapter {self.adapter!r} given, but the model has no LoRA adapters")
            self.model.set_adapter(self.adapter)
        return self.model


@torch.no_grad()
def logit_average_generate(members: list[Member], tokenizer, prompts: list[Prompt], max_new_tokens: int = 8,
                           ) -> tuple[list[str], list[int]]:
    """Greedy replies decoded from the members' averaged logits, and the tokens each prompt cost
    (prompt + generated, summed over the members). Every member keeps its own KV cache."""
    if not members:
        raise KeelError("logit averaging needs at least one member")
    encoded = encode_prompts(tokenizer, prompts)
    ids, mask = left_pad(encoded, tokenizer.pad_token_id)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    eos = _eos_ids(members[0].model, tokenizer)
    caches, logits = [], []
    for m in members:
        lg, cache = model_step(m.activate(), ids, mask, pos, None)
        caches.append(cache)
        logits.append(lg)
    B = len(prompts)
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    next_pos = mask.sum(-1)
    for t in range(max_new_tokens):
        tok = average_logits(torch.stack(logits)).argmax(-1)
        for i in range(B):
            if not done[i]:
                out[i].append(int(tok[i]))
                done[i] = int(tok[i]) in eos
        if all(done) or t == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((B, 1), dtype=torch.long)], dim=1)
        logits = []
        for j, m in enumerate(members):
            lg, caches[j] = model_step(m.activate(), tok[:, None], mask, next_pos[:, None], caches[j])
            logits.append(lg)
        next_pos = next_pos + 1
    texts = [tokenizer.decode(o, skip_special_tokens=True) for o in out]
    cost = [len(members) * (len(e) + len(o)) for e, o in zip(encoded, out, strict=True)]
    return texts, cost
