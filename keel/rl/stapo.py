"""STAPO: silence rare spurious tokens in policy-gradient RL for language models.

Liu et al. 2026, "STAPO: Stabilizing Reinforcement Learning for LLMs by Silencing Rare Spurious Tokens",
arXiv 2602.15620. Token gradients grow as the token's probability and the position's entropy shrink; a
token that is both improbable and sampled where the policy is confident, inside a rewarded response,
inherits the whole sequence reward and gets an outsized update. The S2T mask drops exactly those:
    masked_t  iff  A_t > 0  and  pi(token_t) < tau_p  and  H_t < tau_h
where tau_h is recomputed for every mini-batch as the q-quantile of the entropies of the low-probability
(pi < tau_p) tokens in the positive-advantage responses, as in the paper (the switch `pool="correct"` in
`keel.rl.grpo` keeps Keel's earlier choice, the responses the verifier called correct; they differ when a
reward is not 0/1 or an advantage is not group-centred). The loss is then renormalised over the unmasked
tokens. In Keel a mini-batch holds the completions that carry gradient (advantage != 0; see grpo.update).
"""

from __future__ import annotations

import torch

TAU_P = 0.002
Q = 0.75


def entropy_threshold(prob: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, pool_rows: torch.Tensor,
                      tau_p: float = TAU_P, q: float = Q) -> float:
    """tau_h: the q-quantile of entropy over low-probability tokens of the `pool_rows` responses [B] bool
    (the positive-advantage ones in the paper); -inf if there are none."""
    pool = (mask > 0) & (prob < tau_p) & pool_rows.bool()[:, None]
    if not pool.any():
        return float("-inf")
    return float(torch.quantile(entropy[pool].float(), q))


def spurious_mask(prob: torch.Tensor, entropy: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                  pool_rows: torch.Tensor, tau_p: float = TAU_P, q: float = Q) -> tuple[torch.Tensor, float]:
    """(1 where a token is silenced, else 0) [B,T], and the tau_h used. `adv` is per row [B] or per token;
    `pool_rows` [B] are the responses tau_h is taken over (see `entropy_threshold`)."""
    tau_h = entropy_threshold(prob, entropy, mask, pool_rows, tau_p, q)
    a = adv if adv.dim() == 2 else adv[:, None].expand_as(prob)
    silenced = (mask > 0) & (a > 0) & (prob < tau_p) & (entropy < tau_h)
    return silenced.float(), tau_h


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, silenced: torch.Tensor | None = None,
              denom: torch.Tensor | float | None = None) -> torch.Tensor:
    """Token-level mean of the loss over kept tokens: renormalised over the unmasked ones.

    `denom` is the token count the mean is over when only part of the batch is passed (see grpo.update);
    silenced tokens are taken out of it too.
    """
    keep = mask if silenced is None else mask * (1.0 - silenced)
    n = keep.sum() if denom is None else denom - (0.0 if silenced is None else (mask * silenced).sum())
    return (token_loss * keep).sum() / torch.as_tensor(n).clamp(min=1.0)
