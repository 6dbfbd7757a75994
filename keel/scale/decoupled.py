"""The decoupled PPO objective for stale samples (AReaL, Fu et al. 2025, arXiv 2505.24298, eq. 5).

Asynchronous rollouts sample with a behaviour policy pi_behav that may be several versions older than the
learner. AReaL separates the two roles the old policy plays in PPO: the trust region is taken around the
proximal policy pi_prox (the learner's weights when the batch arrives), and the importance weight
pi_prox / pi_behav corrects for the samples coming from an older policy:

    loss_t = -(pi_prox / pi_behav)_t * min(r_t A, clip(r_t, 1 - eps_low, 1 + eps_high) A),  r_t = pi_theta / pi_prox

The weight is a constant (no gradient), capped at `weight_cap` so that one very stale token cannot
dominate. With fresh samples pi_prox = pi_behav, the weight is 1 and this is GRPO's DAPO loss.
The alternative correction, CISPO's clipped importance weight, needs no code here: `grpo.loss: cispo`.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from keel.errors import KeelError
from keel.llm.logprobs import completion_logprobs, shared_prefix_logprobs
from keel.rl.grpo import GRPO, GRPOConfig, Rollout


class DecoupledGRPO(GRPO):
    """GRPO whose update uses the decoupled objective; rollouts and checkpoints are GRPO's own."""

    def __init__(self, model, tokenizer, cfg: GRPOConfig, weight_cap: float = 5.0):
        if cfg.loss != "dapo" or cfg.stapo or cfg.beta > 0:
            raise KeelError("the decoupled PPO correction needs grpo.loss: dapo, stapo: false and beta: 0; "
                            "with grpo.loss: cispo the clipped importance weight is the correction")
        super().__init__(model, tokenizer, cfg)
        self.weight_cap = weight_cap
        self._behav_w: torch.Tensor | None = None

    def update(self, roll: Rollout, seed: int = 0) -> dict:
        logprobs = shared_prefix_logprobs if self.cfg.share_prefix else completion_logprobs
        with torch.no_grad():
            prox = logprobs(self.model, roll.prompt_ids, roll.completion_ids, self.pad_id, with_entropy=False,
                            temperature=self.cfg.temperature)[0]
        T = prox.shape[1]
        behav = roll.old_logp[:, :T]
        self._behav_w = (torch.exp(prox - behav).clamp(max=self.weight_cap) * roll.mask[:, :T])
        out = super().update(replace(roll, old_logp=prox), seed)
        out["behav_weight_mean"] = float(self._behav_w.sum() / roll.mask[:, :T].sum().clamp(min=1.0))
        self._behav_w = None
        return out

    def token_weights(self, rows: torch.Tensor, T: int) -> torch.Tensor:
        """pi_prox / pi_behav, capped: GRPO's DAPO loss weighted per token is the decoupled objective."""
        return self._behav_w[rows, :T]
