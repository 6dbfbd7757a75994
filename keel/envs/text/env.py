"""A text task as a one-step Gymnasium environment: the observation is the prompt, the action the reply."""

from __future__ import annotations

import random
import string

import gymnasium as gym
from gymnasium import spaces

from keel.envs.text.base import TextTask

CHARSET = string.printable


class TextTaskEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, task: TextTask, split: str = "train", pool: int = 256, reward: str = "exact",
                 max_length: int = 512):
        self.task, self.reward_kind = task, reward
        self.problems = task.problems(split, pool, seed=0)
        self.observation_space = spaces.Text(max_length=max_length, charset=CHARSET)
        self.action_space = spaces.Text(max_length=max_length, charset=CHARSET)
        self.problem = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = random.Random(int(self.np_random.integers(2**31)))
        self.problem = rng.choice(self.problems)
        return self.problem.prompt, {"answer": self.problem.answer}

    def step(self, action: str):
        score = self.task.score(self.problem, action)
        info = {"correct": score.correct, "format": score.format, "partial": score.partial}
        return self.problem.prompt, score.reward(self.reward_kind), True, False, info
