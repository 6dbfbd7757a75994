"""The contract between multi-turn text environments and the agent trainer (`keel.rl` agent training).

An agentic environment is a plain Gymnasium environment whose observations and actions are text:

- `reset(seed=..., options={"task": TASK_ID})` -> `(first_message, info)`; `info["system"]` may hold the
  system prompt, `info["task"]` the task id.
- `step(reply)` -> `(message, reward, terminated, truncated, info)`: `reply` is the model's whole turn,
  `message` the environment's answer (a tool result, an error observation, a user turn), appended to the
  conversation in the chat role `info["role"]` ("user" unless the env says "tool"). `reward` is per-turn
  shaping; on the last turn it also carries the judge's trajectory reward. A malformed reply is an error
  observation with `info["malformed"] = True`, never the end of the episode. On the last step
  `info["episode"]` holds the episode's metrics (`success`, `calls`, `malformed`, `denied`, ...).

The single-turn `TextTaskEnv` already fits (one turn, `terminated=True`), so every text task trains through
the same path. Environments with task splits and a scripted expert implement `AgentTasks` as well.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

SPLITS = ("train", "test", "test-templates")  # test: unseen parameters; test-templates: held-out templates


@runtime_checkable
class AgentTasks(Protocol):
    """What the agent trainer needs beyond Gymnasium: named task splits and the expert's next reply."""

    def task_ids(self, split: str) -> list[str]:
        """Stable ids of the tasks in `split` (one of SPLITS, where the env has it); seeded, disjoint."""

    def expert_reply(self) -> str | None:
        """The scripted expert's reply in the current state of the episode (None when it has none)."""
