"""Token-level PPO clipped surrogate with decoupled bounds (DAPO "clip-higher").

Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale", arXiv 2503.14476.
Per token t of completion i, with ratio r = pi_theta / pi_old and advantage A_i:
    loss_t = -min(r A_i, clip(r, 1 - eps_low, 1 + eps_high) A_i)
A larger eps_high lets unlikely tokens with positive advantage grow, which keeps entropy from collapsing.
The caller averages over tokens (token-level aggregation), not per sequence.
"""

from __future__ import annotations

import torch


def token_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps_low: float = 0.2,
               eps_high: float = 0.28) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token loss, per-token 'was clipped' 0/1) for log-probs [B,T] and advantages broadcastable to them."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).float()  # the clip bound is the active one
    return loss, was_clipped.detach()
