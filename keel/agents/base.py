"""What every toolworld agent does: start on a task, then answer each observation with a tool call or a
final answer. The same campaign runs against scripted, local-model and remote-endpoint agents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from keel.envs.toolworld.env import Observation
from keel.envs.toolworld.tasks import Call, UserTask


@dataclass(frozen=True)
class Finish:
    answer: str = ""


Action = Call | Finish


class Agent(Protocol):
    name: str

    def start(self, task: UserTask, prompt: str, tools: list[dict[str, Any]]) -> None:
        """A new episode: `prompt` is the user's message (it may carry a direct injection)."""

    def act(self, observation: Observation | None) -> Action:
        """The next action, given the result of the previous one (None right after start)."""

    def user_turn(self, text: str) -> None:
        """A further user message after the agent finished (multi-turn conversations)."""
