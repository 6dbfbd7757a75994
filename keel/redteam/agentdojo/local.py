"""A local model (SmolLM2 or a model Keel trained) as an AgentDojo agent, through AgentDojo's own `LocalLLM`
element (its prompt-based tool calling and output parser). `LocalLLM` talks to an OpenAI-compatible chat
endpoint; `InProcessChat` answers that one request shape in process with `keel.llm`, so no server runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class _Message:
    content: str


@dataclass
class _Choice:
    message: _Message


@dataclass
class _Completion:
    choices: list[_Choice]


class _Completions:
    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int):
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens

    def create(self, model: str, messages: list[dict[str, str]], temperature: float | None = None,
               top_p: float | None = None, seed: int | None = None, **_: Any) -> _Completion:
        """Greedy decoding (AgentDojo passes a random seed; greedy makes runs repeatable)."""
        from keel.llm import generate

        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text = generate(self.model, self.tokenizer, [prompt], max_new_tokens=self.max_new_tokens, temperature=0.0,
                        top_p=1.0, seed=0)[0]
        return _Completion([_Choice(_Message(text))])


@dataclass
class _Chat:
    completions: _Completions


class InProcessChat:
    """The part of an OpenAI client that AgentDojo's `LocalLLM` uses: `client.chat.completions.create`."""

    def __init__(self, source: str = "smollm2", max_new_tokens: int = 96):
        from keel.llm import load_model

        model, tokenizer = load_model(source)
        self.chat = _Chat(_Completions(model, tokenizer, max_new_tokens))


def local_agent(source: str, max_new_tokens: int = 96) -> Any:
    """AgentDojo's `LocalLLM` over a Keel model (`source`: smollm2, tiny, or a trained model's folder)."""
    from agentdojo.agent_pipeline.llms.local_llm import LocalLLM

    return LocalLLM(InProcessChat(source, max_new_tokens), source, temperature=0.0, tool_delimiter="tool")
