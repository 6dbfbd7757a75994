"""One toolworld episode's environment: a fresh world for a user task (with injections in place), the
tools the suite exposes, and the judges. Agents and guards are composed around it by `keel.redteam`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keel.envs.toolworld.tasks import Call, InjectionTask, Suite, UserTask
from keel.envs.toolworld.world import TOOLS, Tool, ToolError, check_args, untrusted_texts


@dataclass
class Observation:
    ok: bool
    result: Any  # the tool's structured output (or the error message)
    untrusted: list[str]  # third-party free text inside it

    @property
    def text(self) -> str:
        return json.dumps(self.result, ensure_ascii=False) if self.ok else f"ERROR: {self.result}"


class ToolEnv:
    def __init__(self, suite: Suite, task: UserTask, injections: dict[str, str] | None = None):
        self.suite = suite
        self.task = task
        self.world = suite.build(injections or {})
        self.pre = self.world.copy()
        self.tools: dict[str, Tool] = {n: TOOLS[n] for n in suite.tools}
        self.calls: list[Call] = []

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    def execute(self, call: Call) -> Observation:
        """Run one tool call; every failure (unknown tool, bad arguments, refused by the app) becomes an
        error observation for the agent, never an exception."""
        t = self.tools.get(call.tool)
        if t is None:
            return Observation(False, f"unknown tool {call.tool!r}; tools: {', '.join(self.tools)}", [])
        try:
            args = check_args(t, call.args)
            result = t.fn(self.world, **args)
        except ToolError as e:
            return Observation(False, str(e), [])
        self.calls.append(Call(call.tool, args))
        return Observation(True, result, untrusted_texts(t, result))

    def utility(self) -> bool:
        return bool(self.task.check(self.pre, self.world))

    def attack_succeeded(self, injection: InjectionTask) -> bool:
        return bool(injection.check(self.pre, self.world))
