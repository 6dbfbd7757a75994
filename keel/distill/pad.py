"""Process-aware distillation (PAD), the third AgentArk strategy (arXiv 2602.03955): GRPO whose reward is
the task's verifiable reward plus the debate-trained PRM's step reward (`keel.distill.prm`).

    r_i = r_verify(y_i) + w * mean_steps PRM(x, y_i[: step])

The update is Keel's GRPO (`keel.rl.grpo`) unchanged; only the rollout's rewards gain the PRM term, and the
group advantages are recomputed from them. The student starts from the DA student (AgentArk's strategies
are hierarchical), or from any model handed in.
"""

from __future__ import annotations

import random

from pydantic import Field

from keel.config import KeelModel
from keel.distill.prm import PRM
from keel.envs.text import Problem, TextTask
from keel.rl.grpo import GRPO, GRPOConfig, Rollout


class PADConfig(KeelModel):
    steps: int = 10
    prm_weight: float = 0.5  # w: the step reward's weight next to the verifiable reward (0..1 each)
    reward: str = "format"  # the verifiable reward (keel.envs.text.Score.reward)
    grpo: GRPOConfig = Field(default_factory=lambda: GRPOConfig(group_size=8, prompts_per_step=2,
                                                                max_new_tokens=8, temperature=0.7, lr=1e-5))


class PAD(GRPO):
    """GRPO with the PRM's step reward added to each completion's verifiable reward."""

    def __init__(self, model, tokenizer, cfg: GRPOConfig, prm: PRM, prm_weight: float):
        super().__init__(model, tokenizer, cfg)
        self.prm, self.w = prm, prm_weight
        self.last_prm = float("nan")

    def rollout(self, problems, task, reward: str = "exact", seed: int | None = None, system=None) -> Rollout:
        roll = super().rollout(problems, task, reward, seed=seed, system=system)
        g = self.cfg.group_size  # rows are grouped by problem, group_size rows each
        msgs = [problems[i // g].messages(system) for i in range(len(roll.texts))]
        step_reward = self.prm.score(msgs, roll.texts)
        self.last_prm = float(step_reward.mean())
        roll.rewards = roll.rewards + self.w * step_reward
        return self.finish(roll)  # advantages again, from the combined reward


def train_pad(model, tokenizer, task: TextTask, prm: PRM, pool: list[Problem], cfg: PADConfig, seed: int = 0,
              system: str | None = None) -> list[dict]:
    """`cfg.steps` PAD steps on problems drawn from `pool`; the metrics of every step."""
    trainer = PAD(model, tokenizer, cfg.grpo, prm, cfg.prm_weight)
    logs = []
    for step in range(1, cfg.steps + 1):
        problems = random.Random(f"pad|{seed}|{step}").sample(pool, cfg.grpo.prompts_per_step)
        info = trainer.step(problems, task, cfg.reward, seed=seed * 1_000_003 + step, system=system)
        logs.append({"step": step, "prm_reward": trainer.last_prm, **info})
    return logs
