"""CISPO: clipped importance-sampling policy optimisation.

MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention", arXiv 2506.13585.
Instead of clipping the token update (which zeroes the gradient of clipped tokens, often the rare
"reflection" tokens), clip the importance weight itself and stop its gradient:
    loss_t = -sg(clip(r_t, 1 - eps_low, 1 + eps_high)) * A_i * log pi_theta(token_t)
so every token keeps a REINFORCE-style gradient, bounded in size by the clipped weight.
"""

from __future__ import annotations

import torch


def token_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps_low: float = 1.0,
               eps_high: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token loss, per-token 'weight was clipped' 0/1). eps_low=1 means no lower bound (weight >= 0)."""
    ratio = torch.exp(logp - old_logp).detach()
    weight = torch.clamp(ratio, max(0.0, 1.0 - eps_low), 1.0 + eps_high)
    loss = -weight * adv * logp
    return loss, (weight != ratio).float()
