"""Advantages for group rollouts: one scalar per completion, broadcast to its tokens by the losses.

- GRPO (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300): A_i = (r_i - mean_g r) / (std_g r + eps),
  normalised within the group g of completions of one prompt (`scale=False` gives Dr. GRPO's centring only).
- RLOO (Ahmadian et al. 2024, arXiv 2402.14740): A_i = r_i - mean_{j != i} r_j, the leave-one-out baseline.
- REINFORCE with baseline (Williams 1992): A_i = r_i - mean over the whole batch.
"""

from __future__ import annotations

import torch

from keel.errors import KeelError

KINDS = ("grpo", "rloo", "reinforce")


def compute(rewards: torch.Tensor, group_size: int, kind: str = "grpo", scale: bool = True,
            eps: float = 1e-4) -> torch.Tensor:
    """Advantages for `rewards` laid out group by group (rows [k*G, (k+1)*G) share a prompt)."""
    if rewards.numel() % group_size:
        raise KeelError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)
    if kind == "grpo":
        adv = r - r.mean(dim=1, keepdim=True)
        if scale:
            adv = adv / (r.std(dim=1, keepdim=True, unbiased=False) + eps)
    elif kind == "rloo":
        if group_size < 2:
            raise KeelError("RLOO needs group_size >= 2 (the baseline leaves one completion out)")
        adv = group_size / (group_size - 1) * (r - r.mean(dim=1, keepdim=True))
    elif kind == "reinforce":
        adv = r - r.mean()
    else:
        raise KeelError(f"unknown advantage {kind!r}; use one of {', '.join(KINDS)}")
    return adv.reshape(-1)
