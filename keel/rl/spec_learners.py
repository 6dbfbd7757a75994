"""The spec-RL learners by name, each a `keel.rl.learner.Learner` on a `keel.rl.product.SpecWorld`.

    qrm   `keel.rl.qrm.QRMLearner`
    ppo   `ProductPPO`: Keel's PPO (`keel.rl.ppo.PPO`) on `ProductVecEnv` (observation = cell one-hot ++
          automaton one-hot), with the product's counters and a `ScorePolicy` view of its actor
    dirl  `keel.rl.dirl.DiRLLearner`
"""

from __future__ import annotations

from typing import Any

from keel.rl.learner import Batch, Counters
from keel.rl.product import SpecWorld
from keel.rl.product_env import PolicyScores, ProductVecEnv


class ProductPPO:
    """PPO on N copies of the product world: the PPO learner, with the product env's spec counters."""

    def __init__(self, world: SpecWorld, cfg, num_envs: int, seed: int, shield: str, total_steps: int):
        from keel.rl.ppo import PPO

        self.world = world
        self.env = ProductVecEnv(world, num_envs, seed, shield)
        self.ppo = PPO(cfg.model_copy(update={"seed": seed}), self.env, total_steps)

    @property
    def env_steps(self) -> int:
        return self.ppo.env_steps

    @property
    def finished(self) -> bool:
        return self.ppo.finished

    def collect(self) -> Batch:
        return self.ppo.collect()

    def learn(self, batch: Batch) -> dict[str, float]:
        return self.ppo.learn(batch)

    def train_step(self) -> dict[str, float]:
        return self.ppo.train_step()

    def weights(self) -> dict[str, Any]:
        return self.ppo.weights()

    def set_weights(self, weights: dict[str, Any]) -> None:
        self.ppo.set_weights(weights)

    def merge(self, batches: list[Batch]) -> Batch:
        return self.ppo.merge(batches)

    def policy(self) -> PolicyScores:
        return PolicyScores(self.ppo.policy, self.world)

    def counters(self) -> Counters:
        s = self.env.stats
        return Counters(self.ppo.env_steps, s.episodes, s.violations, s.overrides, self.ppo.iteration)

    def metrics(self) -> dict[str, float]:
        return self.env.stats.flush()

    def state_dict(self) -> dict[str, Any]:
        return self.ppo.state_dict()  # the env (with its counters) is inside: ProductVecEnv.state_dict

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ppo.load_state_dict(state)


def make_learner(kind: str, world: SpecWorld, algo_cfg, num_envs: int, seed: int, shield: str, total_steps: int):
    """The learner `kind` ('qrm', 'ppo' or 'dirl') with its own config class `algo_cfg`."""
    if kind == "qrm":
        from keel.rl.qrm import QRMLearner

        return QRMLearner(world, algo_cfg, num_envs, seed, shield, decay_steps=total_steps)
    if kind == "ppo":
        return ProductPPO(world, algo_cfg, num_envs, seed, shield, total_steps)
    if kind == "dirl":
        from keel.rl.dirl import DiRLLearner

        return DiRLLearner(world, algo_cfg, total_steps, num_envs, seed, shield)
    raise ValueError(f"unknown learner {kind!r}")
