"""A tiny multi-turn agentic env for tests (the `keel.envs.agentic` contract, with splits and an expert).

Task k asks for the value of key k. The agent calls `get(k)` (a tool turn answers with the value),
then answers `ANSWER <value>`. Anything else is a malformed call: an error observation, the episode goes on.
"""

from __future__ import annotations

import re

import gymnasium as gym
from gymnasium import spaces

TASKS = {"train": [f"k{i}" for i in range(8)], "test": [f"k{i}" for i in range(8, 12)],
         "test-templates": [f"q{i}" for i in range(3)]}


def value(key: str) -> str:
    return str(sum(map(ord, key)) % 97)


class ToyAgentEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, max_steps: int = 4, deny: str = "", shaping: bool = False):
        self.observation_space = spaces.Text(max_length=4096)
        self.action_space = spaces.Text(max_length=4096)
        self.max_steps, self.deny = max_steps, deny
        self.shaping = shaping  # per-turn reward 0.5 for an even-length reply: variance for a random model
        self.key, self.steps, self.looked_up = "k0", 0, False
        self.calls = self.malformed = self.denied = 0

    def task_ids(self, split: str) -> list[str]:
        return list(TASKS[split])

    def expert_reply(self) -> str | None:
        return f"ANSWER {value(self.key)}" if self.looked_up else f"get({self.key})"

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.key = (options or {}).get("task") or TASKS["train"][int(self.np_random.integers(8))]
        self.steps, self.looked_up = 0, False
        self.calls = self.malformed = self.denied = 0
        return f"What is the value of {self.key}? Call get(KEY), then reply ANSWER VALUE.", {
            "system": "You are a tool agent.", "task": self.key}

    def _episode(self, success: bool) -> dict:
        return {"success": success, "calls": self.calls, "malformed": self.malformed, "denied": self.denied}

    def step(self, reply: str):
        self.steps += 1
        info = {"role": "tool", "malformed": False, "denied": False}
        bonus = 0.5 * (len(reply) % 2 == 0) if self.shaping else 0.0
        m = re.search(r"get\((\w+)\)", reply)
        a = re.search(r"ANSWER\s+(\d+)", reply)
        if a:
            ok = a.group(1) == value(self.key)
            info["episode"] = self._episode(ok)
            return "done", float(ok) + bonus, True, False, info
        if m:
            self.calls += 1
            if self.deny and m.group(1) == self.deny:
                self.denied += 1
                info["denied"] = True
                msg = "ERROR: denied by the guard"
            else:
                self.looked_up = m.group(1) == self.key
                msg = value(m.group(1))
        else:
            self.malformed += 1
            info["malformed"] = True
            msg = "ERROR: malformed call; use get(KEY) or ANSWER VALUE"
        if self.steps >= self.max_steps:
            info["episode"] = self._episode(False)
            return msg, bonus, False, True, info
        return msg, bonus, False, False, info


def make(**kw) -> ToyAgentEnv:
    return ToyAgentEnv(**kw)
