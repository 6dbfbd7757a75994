"""A value head on a causal language model: V(s_t) for every completion token, from the same forward pass
that gives the token log-probs (the critic of PPO on language models).

Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences", arXiv 1909.08593) put a scalar
head on the policy's last hidden state; Search-R1 (Jin et al. 2025, arXiv 2503.09516) trains its PPO critic
the same way over the model's tokens of a search trajectory. Here the head is one linear layer on the
final (normed) hidden state of the position that *predicts* token t, i.e. the state before the model emits
t; it shares the trunk (and its LoRA adapters) with the policy, so one pass serves both losses.
"""

from __future__ import annotations

import torch

from keel.llm.logprobs import pack, token_stats


class ValueHead(torch.nn.Module):
    """Linear(hidden -> 1), zero-initialised so the first values are 0 and the first advantages are the
    returns themselves (no random critic noise in the first update)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden.float()).squeeze(-1)


def hidden_size(model) -> int:
    """The trunk's width (the config of the model, or of the base model under a PEFT wrapper)."""
    return int(model.config.hidden_size)


def logprobs_and_values(model, head: ValueHead, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                        pad_id: int, temperature: float = 1.0, with_entropy: bool = False):
    """(logp [B,T], values [B,T], entropy [B,T] or None) of each completion token, in one pass.

    Layout as `keel.llm.logprobs.completion_logprobs` (prompts left-padded to P, completions from column P):
    position P-1+t holds the state before completion token t, so its logits score t and its hidden state
    gives V(s_t). Gradients flow into the model and the head when grad is enabled."""
    from keel.llm.sampler import model_device

    ids, attn, cmask, P = pack(prompt_ids, completion_ids, pad_id)
    T = cmask.shape[1]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    dev = model_device(model)
    out = model(input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev), use_cache=False,
                logits_to_keep=T + 1, output_hidden_states=True)
    logits = out.logits[:, :-1, :]
    logp, ent, _ = token_stats(logits, ids[:, P:].to(dev), cmask.to(dev), with_entropy, temperature)
    hidden = out.hidden_states[-1][:, P - 1 : P - 1 + T, :]
    values = head(hidden) * cmask.to(dev)
    return logp.cpu(), values.cpu(), None if ent is None else ent.cpu()
