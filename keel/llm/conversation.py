"""Token-exact multi-turn conversations in the model's own chat template.

A trajectory is the prompt (system + first user message + the template's generation prompt) followed by
interleaved pieces: the model's sampled tokens, kept exactly as sampled (never decoded and re-tokenised,
so the training pass sees the very tokens whose log-probs the sampler stored), and the template pieces
that carry each environment message (end of the assistant turn, the user/tool turn, the next generation
prompt). The loss mask is 1 on model tokens and 0 on everything the environment or the template wrote.

Template pieces are found by rendering the template around a sentinel reply, so any chat template that
renders a conversation append-only works (ChatML, Llama 3, Qwen, ...), not only SmolLM2's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.errors import KeelError

SENTINEL = "\u2063KEEL-REPLY\u2063"  # stands in for the model's reply when rendering the template
_CONTEXT = [{"role": "user", "content": "."}]


def prompt_messages(first_message: str, system: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": first_message}]


class ChatPieces:
    """Token ids of the template pieces around a model's turn, for one tokenizer's chat template."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise KeelError("the policy's tokenizer has no chat template; agents need a chat (instruct) model")
        closed = self._render(_CONTEXT + [{"role": "assistant", "content": SENTINEL}], False)
        at = closed.find(SENTINEL)
        if at < 0:
            raise KeelError("the chat template does not render the assistant's reply verbatim")
        self._closed = closed
        self.end_of_turn = closed[at + len(SENTINEL):]  # e.g. "<|im_end|>\n"

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The conversation so far, rendered with the generation prompt for the model's first turn."""
        ids = self.encode(self._render(messages, True))
        if not ids:
            raise KeelError("empty prompt: the environment's first message rendered to no tokens")
        return ids

    def after_turn_ids(self, message: str, role: str, last_token: int | None) -> list[int]:
        """Tokens that close the model's turn, carry the env `message` as `role`, and open the next turn.

        If the model ended its turn with the template's own end-of-turn token (usually its EOS), that token
        is already in the sequence (as sampled) and is not written again.
        """
        opened = self._render(_CONTEXT + [{"role": "assistant", "content": SENTINEL},
                                          {"role": role, "content": message}], True)
        if not opened.startswith(self._closed):
            raise KeelError("the chat template is not append-only (adding a message changed earlier text); "
                            "multi-turn training needs one that is")
        close = self.end_of_turn
        if last_token is not None:
            last = self.tok.convert_ids_to_tokens(int(last_token))
            if isinstance(last, str) and last and close.startswith(last):
                close = close[len(last):]
        return self.encode(close + opened[len(self._closed):])


@dataclass
class Trajectory:
    """One episode as the trainer sees it: the prompt, then model and env tokens with their mask."""

    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)  # everything after the prompt
    mask: list[int] = field(default_factory=list)  # 1: the model sampled it; 0: env or template wrote it
    logprobs: list[float] = field(default_factory=list)  # behaviour log-prob of model tokens (0 elsewhere)
    messages: list[dict] = field(default_factory=list)  # the conversation as text, for logs and reports
    reward: float = 0.0  # sum of the env's rewards (per-turn shaping + the judge's trajectory reward)
    success: bool = False
    terminated: bool = False  # the env ended the episode
    truncated: str = ""  # "" or why the episode was cut: "context" (budget), "turns" (max_turns), "env"
    turns: int = 0
    malformed: int = 0
    denied: int = 0
    episode: dict = field(default_factory=dict)  # the env's episode metrics (info["episode"])

    def add_model(self, token: int, logp: float) -> None:
        self.ids.append(int(token))
        self.mask.append(1)
        self.logprobs.append(float(logp))

    def add_env(self, tokens: list[int]) -> None:
        self.ids.extend(int(t) for t in tokens)
        self.mask.extend([0] * len(tokens))
        self.logprobs.extend([0.0] * len(tokens))

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.ids)

    @property
    def model_tokens(self) -> int:
        return sum(self.mask)
