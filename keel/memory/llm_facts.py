"""Fact extraction with a small local language model, for the messages the pattern extractor finds nothing in.

An option, not the default (`HierarchyConfig(extractor=LLMFactExtractor(model, tokenizer))`): measured
in `benchmarks/memory.py --only llm_extraction` against the conversation benchmark's fact labels. A
135M-parameter model asked to write facts freely writes garbage (issue 13, first try); here it is
constrained so that it can only say what the message says:

  1. few-shot prompt (examples written for this file, from neither half of the benchmark's templates);
  2. the attribute is chosen by greedy decoding restricted to a closed schema (a prefix tree of the
     allowed answers, "none" among them), as in grammar-constrained decoding (Geng, Josifoski, Peyrard &
     West, "Grammar-Constrained Decoding for Structured NLP Tasks without Finetuning", EMNLP 2023);
  3. the value is decoded greedily with only the message's own tokens allowed (at most `max_value_tokens`),
     then kept only if it is a span of the message: the model can pick, never invent.

The pattern extractor (`keel.memory.facts`) runs first; the model only sees what it found nothing in.

Measured (benchmarks/results/memory.json, llm_extraction; SmolLM2-135M-Instruct, 2 users of the evaluation
half): precision 0.04, recall 0.11 of the labelled facts, 0.13 s per message (p50), and the default mode's
recall@10 fell from 0.958 to 0.896 with its facts. It stays an option, off by default; do not turn it on
with a model this small.
"""

from __future__ import annotations

from typing import Any

from keel.memory import facts as factlib

# The schema: attributes a personal memory keeps (broader than any benchmark's labels), and "none".
ATTRIBUTES = ("lives in", "occupation", "favourite food", "drinks", "hobby", "pet", "partner", "car",
              "allergy", "studies")

_SHOTS = [
    ("just got the keys to our flat in Hamburg, so happy", "lives in = Hamburg"),
    ("night shifts at the ER again, such is the life of a paramedic", "occupation = paramedic"),
    ("lol did you see that match yesterday", "none"),
    ("grabbed katsu curry for lunch again, my absolute favourite", "favourite food = katsu curry"),
    ("I take a matcha latte every morning now", "drinks = matcha latte"),
    ("can you set a timer for ten minutes", "none"),
]


def _prefix() -> str:
    lines = ["Write the fact the user states about themselves, or none."]
    for msg, fact in _SHOTS:
        lines += [f"Message: {msg}", f"Fact: {fact}"]
    return "\n".join(lines) + "\n"


def _question(text: str) -> str:
    return f"Message: {' '.join(text.split())[:400]}\nFact:"


class LLMFactExtractor:
    """A `HierarchyConfig.extractor`: patterns first, then the constrained model (see the module doc). The
    few-shot prefix is encoded once; each message reuses a copy of its KV cache."""

    def __init__(self, model: Any, tokenizer: Any, max_value_tokens: int = 8):
        self.model = model
        self.tok = tokenizer
        self.max_value_tokens = max_value_tokens
        self.calls = 0  # messages the model was asked about
        self._options = {a: self._enc(f" {a} =") for a in ATTRIBUTES}
        self._options["none"] = self._enc(" none")
        self._newline = set(self._enc("\n"))
        self._prefix: tuple[int, Any] | None = None

    def _enc(self, s: str) -> list[int]:
        return self.tok(s, add_special_tokens=False).input_ids

    def __call__(self, text: str) -> list[factlib.Fact]:
        found = factlib.extract(text)
        if found:
            return found
        got = self.model_fact(text)
        return [got] if got else []

    def _feed(self, ids: list[int], pos: int, cache: Any):
        """Feed tokens after `pos` cached ones: (last logits, cache, new position)."""
        import torch

        from keel.llm.sampler import model_step

        end = pos + len(ids)
        logits, cache = model_step(self.model, torch.tensor([ids]), torch.ones(1, end, dtype=torch.long),
                                   torch.arange(pos, end).unsqueeze(0), cache)
        return logits[0], cache, end

    def model_fact(self, text: str) -> factlib.Fact | None:
        """The model's (constrained) fact for one message, or None."""
        import copy

        import torch

        self.calls += 1
        with torch.no_grad():
            if self._prefix is None:
                ids = self.tok(_prefix()).input_ids
                _, cache, pos = self._feed(ids, 0, None)
                self._prefix = (pos, cache)
            pos, cache = self._prefix[0], copy.deepcopy(self._prefix[1])
            logits, cache, pos = self._feed(self._enc(_question(text)), pos, cache)
            name, logits, cache, pos = self._choose_attribute(logits, cache, pos)
            if name == "none":
                return None
            allowed = list(set(self._enc(" " + text)) | set(self._enc(text)) | self._newline)
            value_ids: list[int] = []
            for _ in range(self.max_value_tokens):
                mask = torch.full_like(logits, float("-inf"))
                mask[allowed] = 0.0
                t = int(torch.argmax(logits + mask))
                if t in self._newline:
                    break
                value_ids.append(t)
                logits, cache, pos = self._feed([t], pos, cache)
        value = self.tok.decode(value_ids).strip(" .,!?")
        if not value or value.lower() not in text.lower():  # a span of the message, or nothing
            return None
        v = factlib.clean_value(value)
        return factlib.Fact(slot=f"user|{name}", value=v, polarity=1, text=text) if v else None

    def _choose_attribute(self, logits, cache, pos):
        """Greedy decoding through the prefix tree of the schema's answers: (name, logits, cache, pos)."""
        prefix: list[int] = []
        live = dict(self._options)
        while True:
            nxt = {ids[len(prefix)] for ids in live.values() if len(ids) > len(prefix)}
            t = max(nxt, key=lambda x: float(logits[x]))
            prefix.append(t)
            live = {a: ids for a, ids in live.items() if ids[: len(prefix)] == prefix}
            if len(live) == 1:  # decided: feed the rest of the answer in one pass
                name, ids = next(iter(live.items()))
                if name == "none":
                    return name, logits, cache, pos
                logits, cache, pos = self._feed(ids[len(prefix) - 1 :], pos, cache)
                return name, logits, cache, pos
            logits, cache, pos = self._feed([t], pos, cache)
