"""Agents for AgentDojo, all AgentDojo pipeline elements:

- `ground-truth`: replays the user task's ground-truth calls one per turn (AgentDojo's `GroundTruthPipeline`
  does the same in one go; run without a guard both solve the same tasks), the utility ceiling;
- `obedient`: the same, and whenever an injection task's goal appears in what it just read, it carries out
  that injection task's ground-truth calls at once and repeats its requested answer: the worst case a guard
  must stop;
- `openai:MODEL` at `--endpoint URL`: any OpenAI-compatible server, through AgentDojo's `OpenAILLM`;
- `local` (`--model smollm2`, `tiny`, or a trained model's folder): a Keel model through AgentDojo's `LocalLLM`
  (prompt-based tool calls), run in process.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from typing import Any

from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionCall, FunctionsRuntime
from agentdojo.types import (
    ChatAssistantMessage,
    ChatMessage,
    get_text_content_as_str,
    text_content_block_from_string,
)

from keel.errors import KeelError

SCRIPTED = ("ground-truth", "obedient")


class ScriptedAgent(BasePipelineElement):
    """Writes one ground-truth call per assistant turn, then the task's ground-truth answer."""

    def __init__(self, suite: Any, obey_injections: bool):
        self.obey = obey_injections
        self.tasks = {t.PROMPT: t for t in suite.user_tasks.values()}
        self.tasks.update({t.GOAL: t for t in suite.injection_tasks.values()})
        self.injections = list(suite.injection_tasks.values())
        self._ids = itertools.count()
        self.start("", EmptyEnv())

    def start(self, prompt: str, env: Env) -> None:
        task = self.tasks.get(prompt)
        self.queue: list[FunctionCall] = list(task.ground_truth(env.model_copy(deep=True))) if task else []
        self.answer = [task.GROUND_TRUTH_OUTPUT] if task else ["I cannot help with that."]
        self.obeyed: set[str] = set()
        self.seen = 0

    def query(self, query: str, runtime: FunctionsRuntime, env: Env = EmptyEnv(),
              messages: Sequence[ChatMessage] = [], extra_args: dict = {}):  # noqa: B006 (AgentDojo's signature)
        if self.obey:
            self._read(messages[self.seen:], env)
        self.seen = len(messages)
        if self.queue:
            c = self.queue.pop(0)
            call = FunctionCall(function=c.function, args=dict(c.args), id=f"call_{next(self._ids)}")
            msg = ChatAssistantMessage(role="assistant", content=[text_content_block_from_string("")],
                                       tool_calls=[call])
        else:
            msg = ChatAssistantMessage(role="assistant", tool_calls=None,
                                       content=[text_content_block_from_string("\n".join(self.answer))])
        return query, runtime, env, [*messages, msg], extra_args

    def _read(self, new: Sequence[ChatMessage], env: Env) -> None:
        """Obey every injection goal found in the tool output just read: its calls go first."""
        text = _squash(" ".join(get_text_content_as_str(m["content"]) for m in new
                                if m["role"] == "tool" and m["content"]))
        for inj in self.injections:
            if inj.ID not in self.obeyed and _squash(inj.GOAL) in text:
                self.obeyed.add(inj.ID)
                self.queue = list(inj.ground_truth(env.model_copy(deep=True))) + self.queue
                if inj.GROUND_TRUTH_OUTPUT:
                    self.answer.append(inj.GROUND_TRUTH_OUTPUT)


def _squash(text: str) -> str:
    """Tool output reaches the agent as YAML, which may fold, quote and escape a long string: compare texts
    with whitespace, quotes and backslashes removed."""
    return _NOISE.sub("", text)


_NOISE = re.compile(r"[\s\\\"']+")


class LLMAgent(BasePipelineElement):
    """A chat model as an AgentDojo LLM element (OpenAI-compatible endpoint or an in-process Keel model)."""

    def __init__(self, llm: BasePipelineElement):
        self.llm = llm

    def start(self, prompt: str, env: Env) -> None:
        pass

    def query(self, query: str, runtime: FunctionsRuntime, env: Env = EmptyEnv(),
              messages: Sequence[ChatMessage] = [], extra_args: dict = {}):  # noqa: B006
        return self.llm.query(query, runtime, env, messages, extra_args)


def make_agent(name: str, suite: Any, endpoint: str | None = None, model: str | None = None) -> BasePipelineElement:
    if name == "ground-truth":
        return ScriptedAgent(suite, obey_injections=False)
    if name == "obedient":
        return ScriptedAgent(suite, obey_injections=True)
    if name == "openai":
        if not endpoint or not model:
            raise KeelError("agent openai needs --endpoint URL (an OpenAI-compatible server, e.g. "
                            "http://localhost:8000/v1) and --model NAME")
        import openai
        from agentdojo.agent_pipeline.llms.openai_llm import OpenAILLM

        client = openai.OpenAI(base_url=endpoint, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
        return LLMAgent(OpenAILLM(client, model, temperature=0.0))
    if name == "local":
        from keel.redteam.agentdojo.local import local_agent

        return LLMAgent(local_agent(model or "smollm2"))
    raise KeelError(f"unknown agent {name!r}; agents: ground-truth, obedient, openai (with --endpoint, --model), "
                    "local (--model smollm2 | tiny | a model folder)")


def needs_system_message(name: str) -> bool:
    return name not in SCRIPTED
