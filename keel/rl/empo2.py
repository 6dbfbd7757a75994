"""EMPO²: exploratory memory-augmented hybrid on- and off-policy optimisation of a language-model agent.

Liu, Kim, Luo, Li, Yang 2026, "Exploratory Memory-Augmented LLM Agent via Hybrid On- and Off-Policy
Optimization", arXiv 2602.23008 (ICLR 2026). Read top to bottom, one training step:

  1. mode: draw one of three (the paper's recipe; shares `p_off`, `p_on_tips`, the rest plain on-policy):
       on       rollouts without memory, GRPO update of the no-memory policy pi_theta(a | s);
       on_tips  rollouts with retrieved tips u in the prompt, GRPO update of pi_theta(a | s, u);
       off      rollouts with tips, then an update of the no-memory policy on the same tokens with the
                tips taken out of the context: the importance ratio is
                    r_t = pi_theta(a_t | s_t) / pi_old(a_t | s_t, u),
                the behaviour log-prob stored by the sampler being the with-tips one, inside the same clipped
                token loss (`keel.rl.dapo`); a model turn that holds a token with
                    log pi_theta(a_t | s_t) < `low_prob`   (default -5: p < 0.7%)
                under the no-memory policy is masked out (`low_prob_keep`): distilling what the policy
                would almost never do on its own only adds variance;
  2. reward: the env's reward plus `novelty_coef` x the mean over the episode's states of the intrinsic
     bonus 1 / (1 + n), n the number of similar states already in memory (`novelty_bonus`): unseen states
     pay 1, the bonus decays as a state is revisited;
  3. advantages per group (GRPO), the update (`keel.rl.grpo.GRPO.update`);
  4. memory: every episode's states go into `keel.memory` with a tip the policy writes about the episode
     (`keel.rl.empo2_tips`), for the next tip-guided rollouts.

The job that runs it is `keel.rl.empo2_job` (`keel train agent-empo2`); adaptation to unseen tasks with
memory alone (no weight update) is `keel.rl.empo2_adapt`.
"""

from __future__ import annotations

import random
from typing import Literal

import torch
from pydantic import Field, model_validator

from keel.config import KeelModel
from keel.rl.empo2_tips import TipsConfig
from keel.rl.grpo import Rollout

Mode = Literal["on", "on_tips", "off"]


class EMPO2Config(KeelModel):
    p_off: float = Field(0.17, ge=0, le=1)  # share of off-policy (tips distilled into no-memory) steps
    p_on_tips: float = Field(0.08, ge=0, le=1)  # share of on-policy steps with tips in the prompt
    low_prob: float = -5.0  # mask (off-policy) model turns holding a token with log pi(a|s) below this
    mask_unit: Literal["turn", "token"] = "turn"  # drop the whole turn (as the reference code), or the token
    novelty_coef: float = Field(0.1, ge=0)  # weight of the intrinsic bonus in the reward
    tips: TipsConfig = Field(default_factory=TipsConfig)

    @model_validator(mode="after")
    def _shares(self) -> EMPO2Config:
        if self.p_off + self.p_on_tips > 1:
            raise ValueError(f"p_off + p_on_tips is {self.p_off + self.p_on_tips}; the shares must sum to <= 1")
        return self


def draw_mode(cfg: EMPO2Config, key: int) -> Mode:
    """The step's mode, a function of (seed, step) only, so a resumed run draws the same sequence."""
    u = random.Random(f"empo2|{key}").random()
    return "off" if u < cfg.p_off else "on_tips" if u < cfg.p_off + cfg.p_on_tips else "on"


def novelty_bonus(n_similar: int) -> float:
    """The intrinsic reward of a state already seen `n_similar` times (similar stored states): 1 / (1 + n)."""
    return 1.0 / (1.0 + max(int(n_similar), 0))


def turn_ids(mask: torch.Tensor) -> torch.Tensor:
    """[B, T] -> the index of the model turn each mask-1 token belongs to (runs of 1s), -1 elsewhere."""
    m = mask > 0
    starts = m & ~torch.nn.functional.pad(m, (1, 0))[:, :-1]
    return torch.where(m, starts.long().cumsum(1) - 1, torch.full_like(mask, -1, dtype=torch.long))


def low_prob_keep(logp_plain: torch.Tensor, mask: torch.Tensor, threshold: float,
                  unit: Literal["turn", "token"] = "turn") -> torch.Tensor:
    """0/1 [B, T]: the model tokens kept in the off-policy loss. A token is low-probability when the
    no-memory policy gives it log-prob < `threshold`; `unit="token"` drops just those tokens,
    `unit="turn"` drops every token of a model turn that holds one."""
    m = mask > 0
    low = m & (logp_plain < threshold)
    if unit == "token":
        return (m & ~low).float()
    ids = turn_ids(mask)
    bad = torch.zeros_like(mask, dtype=torch.bool)
    for b in range(mask.shape[0]):
        for t in ids[b][low[b]].unique().tolist():
            bad[b] |= ids[b] == t
    return (m & ~bad).float()


@torch.no_grad()
def plain_logprobs(model, roll: Rollout, plain_prompts: list[list[int]], pad_id: int,
                   temperature: float) -> torch.Tensor:
    """log pi_theta(a_t | s_t) of the rollout's tokens with the tips-free prompts, [B, T] (0 past each row)."""
    from keel.llm.logprobs import completion_logprobs

    was = model.training
    model.eval()
    logp, _, _ = completion_logprobs(model, plain_prompts, roll.completion_ids, pad_id, with_entropy=False,
                                     temperature=temperature)
    model.train(was)
    T = roll.mask.shape[1]
    return torch.nn.functional.pad(logp, (0, max(0, T - logp.shape[1])))[:, :T]


def off_policy(roll: Rollout, plain_prompts: list[list[int]], logp_plain: torch.Tensor, cfg: EMPO2Config
               ) -> tuple[Rollout, dict]:
    """The tip-guided rollout as experience for the no-memory policy: prompts without the tips, the
    sampler's with-tips log-probs kept as the behaviour policy (so the loss's ratio is the importance weight
    pi_theta(a|s) / pi_old(a|s,u)), and low-probability turns (or tokens) masked out."""
    keep = low_prob_keep(logp_plain, roll.mask, cfg.low_prob, cfg.mask_unit)
    n = float(roll.mask.sum().clamp(min=1.0))
    ratio = torch.exp(logp_plain - roll.old_logp) * roll.mask
    out = Rollout(list(plain_prompts), roll.completion_ids, roll.old_logp, roll.mask * keep, roll.rewards,
                  roll.correct, roll.advantages, roll.ref_logp, roll.texts, roll.truncated)
    stats = {"off_masked_frac": 1.0 - float(keep.sum()) / n, "off_mean_ratio": float(ratio.sum()) / n}
    return out, stats
