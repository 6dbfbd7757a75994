"""A tool-calling agent on a local language model (SmolLM2-135M-Instruct through `keel.llm`).

The model sees a compact tool list and answers with one line of JSON per step; the reply is primed with
`{"` so that even a 135M model starts in the format. Replies are parsed tolerantly
(`keel.agents.parsing`); a reply that still cannot be read goes back to the model as an error result,
so a malformed call costs a step, never the episode.
"""

from __future__ import annotations

import json
from typing import Any

from keel.agents.base import Action, Finish
from keel.agents.parsing import ParseError, parse_action
from keel.envs.toolworld.env import Observation
from keel.envs.toolworld.tasks import Call, UserTask

SYSTEM = (
    "You are Emma's assistant. Today is 2026-05-14. Use the tools to do the task.\n"
    "Tools:\n{tools}\n"
    'Reply with ONE line of JSON, either {{"tool": "NAME", "args": {{"ARGUMENT": "VALUE"}}}} to call a tool, or '
    '{{"answer": "TEXT"}} when the task is done.\n'
    "Example: {example}"
)


def tool_lines(tools: list[dict[str, Any]]) -> str:
    return "\n".join(f"- {t['name']}({', '.join(t['parameters']['properties'])}): {t['description']}" for t in tools)


def example_call(tools: list[dict[str, Any]]) -> str:
    """A format example built from this episode's own first tool (a fixed example gets copied verbatim)."""
    t = tools[0]
    args = {a: ("..." if p.get("type") == "string" else 1) for a, p in t["parameters"]["properties"].items()}
    return json.dumps({"tool": t["name"], "args": args})


class ChatAgent:
    """The conversation bookkeeping shared by model-backed agents; subclasses implement `complete`."""

    name = "chat"
    max_result_chars = 400  # small models lose the thread in long contexts, and prefill is the CPU cost

    def start(self, task: UserTask, prompt: str, tools: list[dict[str, Any]]) -> None:
        self.tools = tools
        self.tool_names = {t["name"] for t in tools}
        self.messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM.format(tools=tool_lines(tools), example=example_call(tools))},
            {"role": "user", "content": prompt},
        ]
        self.last: Action | None = None
        self.replies: list[str] = []

    def complete(self, messages: list[dict[str, str]]) -> str:
        raise NotImplementedError

    def act(self, observation: Observation | None) -> Action:
        if observation is not None and self.last is not None:
            name = self.last.tool if isinstance(self.last, Call) else "reply"
            self.messages.append({"role": "user", "content": f"Result of {name}: {observation.text[:self.max_result_chars]}"})
        for _ in range(2):  # one retry on an unreadable reply, with the error shown to the model
            reply = self.complete(self.messages)
            self.replies.append(reply)
            self.messages.append({"role": "assistant", "content": reply})
            try:
                self.last = parse_action(reply, self.tool_names)
                return self.last
            except ParseError as e:
                self.messages.append({"role": "user", "content": f"ERROR: {e}"})
        self.last = Finish("")
        return self.last

    def user_turn(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        self.last = None


class LocalModelAgent(ChatAgent):
    """`source` is anything `keel.llm.load_model` takes: "smollm2", "tiny", or a model folder."""

    def __init__(self, source: str = "smollm2", max_new_tokens: int = 64, seed: int = 0, model=None,
                 batcher=None):
        """`model`: a prebuilt (model, tokenizer); `batcher`: a shared `keel.agents.batching.Batcher`."""
        self.name = f"llm:{source}"
        if batcher is not None:
            self.model, self.tokenizer = batcher.model, batcher.tokenizer
        elif model is not None:
            self.model, self.tokenizer = model
        else:
            from keel.llm import load_model

            self.model, self.tokenizer = load_model(source)
        self.batcher = batcher
        self.max_new_tokens = max_new_tokens
        self.seed = seed

    def complete(self, messages: list[dict[str, str]]) -> str:
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + '{"'
        if self.batcher is not None:
            return '{"' + self.batcher.complete(prompt).strip()
        from keel.llm import generate

        text = generate(self.model, self.tokenizer, [prompt], max_new_tokens=self.max_new_tokens, temperature=0.0,
                        top_p=1.0, stop=["\n"], seed=self.seed)[0]
        return '{"' + text.strip()


def describe_call(call: Call) -> str:
    return json.dumps({"tool": call.tool, "args": call.args})
