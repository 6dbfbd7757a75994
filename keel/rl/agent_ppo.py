"""PPO with a value head for multi-turn language-model agents (the critic-based arm of Search-R1's study).

Schulman et al. 2017 (PPO, arXiv 1707.06347) with GAE (Schulman et al. 2016, arXiv 1506.02438), as Search-R1
(Jin et al. 2025, arXiv 2503.09516) trains its search agent and Search-R1++ (arXiv 2602.19526) compares it
with REINFORCE and GRPO. The MDP's steps are the tokens the model sampled; the tokens the environment wrote
(`<information>` passages, template pieces: mask 0) are not actions and not states of it, so GAE runs over
the model's tokens only, skipping the env's, and neither loss sees them. Over the model tokens k = 1..n:

    delta_k = r_k + gamma V(s_{k+1}) - V(s_k)     (V(s_{n+1}) = 0; r_k = 0 except r_n = the episode reward)
    A_k     = sum_l (gamma lam)^l delta_{k+l},     R_k = A_k + V(s_k)   (the value target)

then (whitened A over the batch's model tokens, as veRL does for Search-R1's PPO) per token
    L_pi = -min(rho A, clip(rho, 1-eps, 1+eps) A),            rho = pi_theta / pi_old
    L_V  = 1/2 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)
    L    = mean_tokens(L_pi) + vf_coef mean_tokens(L_V)  (+ beta KL(pi || ref) when the GRPO config asks).

`keel.rl.value_head` gives V from the same forward pass as the log-probs (shared trunk). Everything else
(rollouts, token masks, checkpoints, the agent_rl job) is GRPO's: `AgentPPO` is a `GRPO` whose advantages
come from the critic instead of the group. Search-R1 uses gamma = lam = 1 (the defaults here).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from keel.config import KeelModel
from keel.errors import KeelError
from keel.rl import dapo
from keel.rl.grpo import GRPO, GRPOConfig, Rollout
from keel.rl.value_head import ValueHead, hidden_size, logprobs_and_values


class PPOConfig(KeelModel):
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(1.0, ge=0, le=1)
    clip: float = Field(0.2, gt=0)  # the policy ratio's clip range eps
    value_clip: float = Field(0.5, gt=0)  # c: how far a value may move from the rollout's per update
    vf_coef: float = Field(0.5, ge=0)  # weight of the value loss (the trunk is shared with the policy)
    value_lr: float = Field(1e-3, gt=0)  # the head's learning rate (the trunk keeps the policy's)
    whiten: bool = True  # normalise advantages over the batch's model tokens


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) [B,T] over the masked tokens of each row, the reward on its last masked token;
    unmasked positions get 0 and are skipped (the recursion carries over them unchanged)."""
    B, T = mask.shape
    m = mask > 0
    is_last = torch.zeros_like(m)
    has = m.any(dim=1)
    last_idx = (m.float() * torch.arange(1, T + 1)).argmax(dim=1)
    is_last[has, last_idx[has]] = True
    adv = torch.zeros(B, T)
    run = torch.zeros(B)  # A of the next model token
    next_v = torch.zeros(B)  # V of the next model token (0 after the last)
    for t in range(T - 1, -1, -1):
        r = torch.where(is_last[:, t], rewards.float(), torch.zeros(B))
        delta = r + gamma * next_v - values[:, t]
        a = delta + gamma * lam * run
        adv[:, t] = torch.where(m[:, t], a, torch.zeros(B))
        run = torch.where(m[:, t], a, run)
        next_v = torch.where(m[:, t], values[:, t], next_v)
    return adv, (adv + values) * mask


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    n = mask.sum().clamp(min=1.0)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / n
    return (x - mean) * torch.rsqrt(var + eps) * mask


def value_loss(v: torch.Tensor, v_old: torch.Tensor, ret: torch.Tensor, c: float) -> torch.Tensor:
    """Per-token clipped value loss (PPO2 / veRL)."""
    v_clipped = v_old + torch.clamp(v - v_old, -c, c)
    return 0.5 * torch.maximum((v - ret) ** 2, (v_clipped - ret) ** 2)


class AgentPPO(GRPO):
    """GRPO's trainer with the group baseline replaced by a learned critic (see the module docstring)."""

    def __init__(self, model, tokenizer, cfg: GRPOConfig, ppo: PPOConfig):
        if cfg.stapo or cfg.dynamic_sampling or cfg.loss != "dapo":
            raise KeelError("ppo: turn off grpo.stapo and grpo.dynamic_sampling and keep grpo.loss dapo (they "
                            "are group-advantage methods; PPO's advantages come from its value head)")
        super().__init__(model, tokenizer, cfg)
        self.ppo = ppo
        from keel.llm.sampler import model_device

        self.head = ValueHead(hidden_size(model)).to(model_device(model))
        self.opt.add_param_group({"params": list(self.head.parameters()), "lr": ppo.value_lr})

    def finish(self, roll: Rollout) -> Rollout:
        """No group advantages (the critic's are computed in `update`); the reference log-probs if beta > 0."""
        if self.cfg.beta > 0:
            roll.ref_logp = self._ref_logp(roll)
        roll.advantages = roll.rewards.clone()  # per-row placeholder; every row is trained (value loss)
        return roll

    def _pass(self, roll: Rollout, rows: torch.Tensor, with_entropy: bool = False):
        return logprobs_and_values(self.model, self.head, [roll.prompt_ids[i] for i in rows],
                                   [roll.completion_ids[i] for i in rows], self.pad_id, self.cfg.temperature,
                                   with_entropy)

    def advantages(self, roll: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(V_old, A, R) [B,T] of the batch under the current critic (before any update on it)."""
        with torch.no_grad():
            _, v_old, _ = self._pass(roll, torch.arange(len(roll.completion_ids)))
        mask = roll.mask[:, : v_old.shape[1]]
        adv, ret = gae(roll.rewards, v_old, mask, self.ppo.gamma, self.ppo.lam)
        if self.ppo.whiten:
            adv = masked_whiten(adv, mask)
        return v_old, adv, ret

    def loss(self, roll: Rollout, rows: torch.Tensor, denom=None, critic=None) -> tuple[torch.Tensor, dict]:
        v_old, adv, ret = critic
        c, p = self.cfg, self.ppo
        logp, v, ent = self._pass(roll, rows, with_entropy=True)
        T = logp.shape[1]
        mask = roll.mask[rows, :T]
        n = mask.sum().clamp(min=1.0)
        pg, clipped = dapo.token_loss(logp, roll.old_logp[rows, :T], adv[rows, :T], p.clip, p.clip)
        if c.beta > 0:  # k3 estimator of KL(pi || ref), as GRPO's loss
            d = roll.ref_logp[rows, :T] - logp
            pg = pg + c.beta * (torch.exp(d) - d - 1.0)
        vl = value_loss(v, v_old[rows, :T], ret[rows, :T], p.value_clip)
        pg_loss, v_loss = (pg * mask).sum() / n, (vl * mask).sum() / n
        info = {"pg_loss": float(pg_loss.detach()), "value_loss": float(v_loss.detach()),
                "entropy": float((ent * mask).sum() / n), "clip_frac": float((clipped * mask).sum() / n),
                "value_mean": float((v.detach() * mask).sum() / n)}
        return pg_loss + p.vf_coef * v_loss, info

    def update(self, roll: Rollout, seed: int = 0) -> dict:
        c = self.cfg
        B = len(roll.completion_ids)
        critic = self.advantages(roll)
        v_old, _, ret = critic
        mask = roll.mask[:, : v_old.shape[1]]
        self.model.train()
        g = torch.Generator().manual_seed(seed)
        logs, skipped = [], 0
        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.head.parameters())
        for _ in range(c.epochs):
            for rows in torch.randperm(B, generator=g).chunk(c.minibatches):
                self.opt.zero_grad(set_to_none=True)
                loss, info = self.loss(roll, rows, critic=critic)
                finite = bool(torch.isfinite(loss))
                norm = float("nan")
                if finite:
                    loss.backward()
                    norm = float(torch.nn.utils.clip_grad_norm_([q for q in params if q.grad is not None],
                                                                c.max_grad_norm))
                    finite = math.isfinite(norm)
                if finite:
                    self.opt.step()
                else:  # a non-finite loss or gradient would poison the weights: skip the step, log it
                    skipped += 1
                self.opt.zero_grad(set_to_none=True)
                logs.append({**info, "loss": float(loss.detach()), "grad_norm": norm})
        self.model.eval()
        out = {k: sum(d[k] for d in logs) / len(logs) for k in logs[0] if k != "grad_norm"}
        n = mask.sum().clamp(min=1.0)
        resid = ((ret - v_old) * mask).pow(2).sum() / n
        var = (((ret - (ret * mask).sum() / n) * mask) ** 2).sum() / n
        out.update(grad_norm=max(d["grad_norm"] for d in logs), skipped=skipped, updated_rows=B,
                   masked_frac=0.0, explained_variance=float(1 - resid / var) if var > 0 else float("nan"))
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "value_head": self.head.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["value_head"])
        super().load_state_dict(state)


def make_trainer(model, tokenizer, cfg: GRPOConfig, ppo: PPOConfig | None) -> GRPO:
    """The agent trainer: the GRPO family (grpo.advantage: grpo | rloo | reinforce), or PPO with a value head
    when a `ppo` section is given."""
    return GRPO(model, tokenizer, cfg) if ppo is None else AgentPPO(model, tokenizer, cfg, ppo)
