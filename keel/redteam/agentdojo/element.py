"""The Keel guard as an AgentDojo pipeline element, in front of AgentDojo's own `ToolsExecutor`.

Each tool call the agent asks for is checked by `keel.guard.Guard` first: allowed (or rewritten) calls go
to the executor; a denied call comes back to the agent as a tool error naming the rule; an `ask` goes to
the approver. Every output the executor returns is shown to the guard (`observe_output`), which splits it
into trusted and third-party text by the policy's `sources`.

AgentDojo's trace judges (e.g. slack's injection_task_5) read the calls in the assistant messages. When
the episode ends, `GuardedPipeline` removes the calls the guard stopped from those messages, so the judges
see the calls that ran; each stopped call stays in the transcript as its tool-error message.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.agent_pipeline.basic_elements import InitQuery
from agentdojo.agent_pipeline.tool_execution import ToolsExecutionLoop, ToolsExecutor, tool_result_to_str
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionCall, FunctionsRuntime
from agentdojo.logging import Logger
from agentdojo.types import ChatMessage, ChatToolResultMessage, text_content_block_from_string

from keel.guard import ASK, Guard
from keel.redteam.agentdojo.approver import Approver


@dataclass
class EpisodeLog:
    """What the guard did in one episode (one `pipeline.query`)."""

    request: str
    decisions: Counter = field(default_factory=Counter)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    check_ns: list[int] = field(default_factory=list)  # guard time per call (check + approver + resolve)
    exec_ns: list[int] = field(default_factory=list)  # AgentDojo's executor time per call that ran
    stopped: set[int] = field(default_factory=set)  # id() of the FunctionCall objects the guard stopped
    trace: list[tuple[str, dict, Any]] = field(default_factory=list)  # (tool, args, raw output) if recording


class Agent(Protocol):
    """An AgentDojo element that writes assistant messages, told when an episode starts."""

    def start(self, prompt: str, env: Env) -> None: ...

    def query(self, query: str, runtime: FunctionsRuntime, env: Env = ..., messages: Sequence[ChatMessage] = ...,
              extra_args: dict = ...) -> tuple[str, FunctionsRuntime, Env, Sequence[ChatMessage], dict]: ...


class GuardedToolsExecutor(BasePipelineElement):
    def __init__(self, guard: Guard | None, approver: Approver, log: list[EpisodeLog], record: bool = False):
        self.guard, self.approver, self.logs, self.record = guard, approver, log, record
        self._raw: list[Any] = []
        self.executor = ToolsExecutor(self._capture)

    def _capture(self, result: Any) -> str:
        self._raw.append(result)
        return tool_result_to_str(result)

    def query(self, query: str, runtime: FunctionsRuntime, env: Env = EmptyEnv(),
              messages: Sequence[ChatMessage] = [], extra_args: dict = {}):  # noqa: B006 (AgentDojo's signature)
        if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["tool_calls"]:
            return query, runtime, env, messages, extra_args
        log = self.logs[-1]
        results: list[ChatMessage] = []
        for call in messages[-1]["tool_calls"]:
            log.calls.append(call.function)
            if self.guard is None:
                results += self._run(query, runtime, env, messages, call)
                continue
            t0 = time.perf_counter_ns()
            d = self.guard.check(call.function, dict(call.args))
            log.decisions[d.action] += 1
            if d.action == ASK:
                ok = self.approver.approve(d, self.guard.context.trusted)
                log.decisions["approved" if ok else "declined"] += 1
                d = self.guard.resolve(d, ok)
            log.check_ns.append(time.perf_counter_ns() - t0)
            if d.runs:
                run_call = call if d.args == call.args else call.model_copy(update={"args": dict(d.args)})
                results += self._run(query, runtime, env, messages, run_call)
                continue
            if self.record:
                log.trace.append((call.function, dict(call.args), None))
            log.blocked.append({"tool": d.tool, "args": {k: str(v)[:200] for k, v in d.args.items()},
                                "rule": d.rule, "reason": d.reason})
            log.stopped.add(id(call))
            results.append(ChatToolResultMessage(
                role="tool", content=[text_content_block_from_string("")], tool_call_id=call.id, tool_call=call,
                error=f"Keel guard refused this call ({d.rule}): {d.reason}"))
        return query, runtime, env, [*messages, *results], extra_args

    def _run(self, query, runtime, env, messages, call: FunctionCall) -> list[ChatMessage]:
        """One call through AgentDojo's executor; its raw output shown to the guard."""
        self._raw.clear()
        one = {**messages[-1], "tool_calls": [call]}
        t0 = time.perf_counter_ns()
        _, _, _, out, _ = self.executor.query(query, runtime, env, [*messages[:-1], one], {})
        self.logs[-1].exec_ns.append(time.perf_counter_ns() - t0)
        if self.guard is not None and self._raw:
            self.guard.observe_output(call.function, self._raw[0])
        if self.record:
            self.logs[-1].trace.append((call.function, dict(call.args), self._raw[0] if self._raw else None))
        return list(out[len(messages):])


class GuardedPipeline(BasePipelineElement):
    """[system message], user query, agent, then a loop of (guarded executor, agent) until the agent stops."""

    def __init__(self, agent: Agent, guard: Guard | None, approver: Approver, name: str, max_iters: int = 40,
                 pre: Sequence[BasePipelineElement] = (), record: bool = False):
        self.name = name
        self.agent, self.guard = agent, guard
        self.logs: list[EpisodeLog] = []
        self.executor = GuardedToolsExecutor(guard, approver, self.logs, record)
        self.elements = [*pre, InitQuery(), agent, ToolsExecutionLoop([self.executor, agent], max_iters=max_iters)]

    def query(self, query: str, runtime: FunctionsRuntime, env: Env = EmptyEnv(),
              messages: Sequence[ChatMessage] = [], extra_args: dict = {}):  # noqa: B006
        self.logs.append(EpisodeLog(query))
        if self.guard is not None:
            self.guard.reset(query)
        self.agent.start(query, env)
        extra = dict(extra_args)
        logger = Logger.get()  # AgentDojo's trace logger: the transcript goes into RUN/traces/
        for el in self.elements:
            query, runtime, env, messages, extra = el.query(query, runtime, env, messages, extra)
            logger.log(messages)
        messages = _without_stopped(messages, self.logs[-1])
        logger.log(messages)
        return query, runtime, env, messages, extra


def _without_stopped(messages: Sequence[ChatMessage], log: EpisodeLog) -> list[ChatMessage]:
    stopped = log.stopped
    if not stopped:
        return list(messages)
    out: list[ChatMessage] = []
    for m in messages:
        if m["role"] == "assistant" and m["tool_calls"]:
            keep = [c for c in m["tool_calls"] if id(c) not in stopped]
            m = {**m, "tool_calls": keep}
        out.append(m)
    return out
