"""Self-Evolving Curriculum: which task groups (templates) the RL step trains on, learnt while training.

Chen et al. 2025, "Self-Evolving Curriculum for LLM Reasoning", arXiv 2505.14970. Curriculum selection is a
non-stationary multi-armed bandit whose arms are problem categories (here: the env's task groups, e.g.
toolworld templates). The reward of an arm is the learning signal its problems gave this step, the mean
absolute advantage of their completions; its value is tracked with TD(0),
    Q(a) <- alpha * r(a) + (1 - alpha) * Q(a),
and each step's arms are drawn from the Boltzmann distribution softmax(Q / temperature).

Why: an agent warm-started by behaviour cloning solves most training templates every time, and a GRPO group
that all succeeds has zero advantage (no gradient); the bandit moves the draws to templates it still fails
on sometimes. The advantage here is the centred one, |r_i - mean_g r| (Dr. GRPO's, unscaled): with the std
division, a group whose rewards differ only by tiny shaping terms would look as informative as a 2-of-4 one.
Arms start at `init` (optimistic) so that every template is tried before the values settle.
"""

from __future__ import annotations

import math
import random

from pydantic import Field

from keel.config import KeelModel


class CurriculumConfig(KeelModel):
    alpha: float = Field(0.5, gt=0.0, le=1.0)  # TD(0) step size
    temperature: float = Field(0.2, gt=0.0)  # Boltzmann temperature over the arm values
    init: float = Field(0.5, ge=0.0)  # every arm's value before it is first drawn (optimistic)


class SelfEvolvingCurriculum:
    def __init__(self, groups: dict[str, list[str]], cfg: CurriculumConfig):
        self.groups = {g: sorted(ids) for g, ids in sorted(groups.items())}
        self.cfg = cfg
        self.q = {g: cfg.init for g in self.groups}
        self.draws = {g: 0 for g in self.groups}

    def probabilities(self) -> dict[str, float]:
        top = max(self.q.values())
        w = {g: math.exp((v - top) / self.cfg.temperature) for g, v in self.q.items()}
        z = sum(w.values())
        return {g: x / z for g, x in w.items()}

    def draw(self, n: int, rng: random.Random) -> list[str]:
        """`n` task ids: each from an arm drawn from softmax(Q/T) (distinct arms while there are enough)."""
        probs = self.probabilities()
        arms: list[str] = []
        while len(arms) < n:
            left = {g: p for g, p in probs.items() if g not in arms} or probs
            arms.append(rng.choices(list(left), weights=list(left.values()))[0])
        return [rng.choice(self.groups[a]) for a in arms]

    def update(self, arm_rewards: dict[str, list[float]]) -> None:
        """TD(0) on each drawn arm with the mean absolute centred advantage of its groups' rewards."""
        for arm, rewards in arm_rewards.items():
            mean = sum(rewards) / len(rewards)
            r = sum(abs(x - mean) for x in rewards) / len(rewards)
            self.q[arm] = self.cfg.alpha * r + (1 - self.cfg.alpha) * self.q[arm]
            self.draws[arm] += 1

    def stats(self) -> dict:
        """Row additions: the spread of the arm values and how many arms were ever drawn."""
        probs = self.probabilities()
        return {"curriculum_top_prob": max(probs.values()), "curriculum_arms_tried": sum(v > 0 for v in
                                                                                       self.draws.values())}

    def state_dict(self) -> dict:
        return {"q": dict(self.q), "draws": dict(self.draws)}

    def load_state_dict(self, state: dict) -> None:
        self.q.update({g: v for g, v in state["q"].items() if g in self.q})
        self.draws.update({g: v for g, v in state["draws"].items() if g in self.draws})
