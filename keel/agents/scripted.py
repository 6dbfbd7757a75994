"""Scripted reference agents. Both solve the user task by executing its ground-truth calls (as AgentDojo's
ground-truth pipeline does), so they separate what an attack achieves from what a model can do:

- `FollowerAgent` carries out every instruction it reads (tool outputs, user messages), seeing through
  encodings and ten languages (`keel.agents.instructions`): the worst case a guard must contain;
- `RefuserAgent` never follows instructions it reads: the best case, the utility ceiling.
"""

from __future__ import annotations

from collections import deque

from keel.agents.base import Action, Finish
from keel.agents.instructions import parse_instructions
from keel.envs.toolworld.env import Observation
from keel.envs.toolworld.tasks import Call, UserTask


class RefuserAgent:
    name = "refuser"

    def start(self, task: UserTask, prompt: str, tools: list[dict]) -> None:
        self.queue: deque[Call] = deque(task.ground_truth)

    def act(self, observation: Observation | None) -> Action:
        return self.queue.popleft() if self.queue else Finish("done")

    def user_turn(self, text: str) -> None:
        pass


class FollowerAgent(RefuserAgent):
    name = "follower"

    def start(self, task: UserTask, prompt: str, tools: list[dict]) -> None:
        super().start(task, prompt, tools)
        self.done: set = set()
        # Instructions in the user's message beyond the task itself (a direct injection) come first.
        extra = prompt[len(task.prompt):] if prompt.startswith(task.prompt) else prompt
        self._obey(extra)

    def _obey(self, text: str) -> None:
        for call in reversed(parse_instructions(text)):
            if call.key() not in self.done:
                self.done.add(call.key())
                self.queue.appendleft(call)  # "before you solve the task, do this first"

    def act(self, observation: Observation | None) -> Action:
        if observation is not None:
            for text in observation.untrusted:
                self._obey(text)
        return super().act(observation)

    def user_turn(self, text: str) -> None:
        self._obey(text)
