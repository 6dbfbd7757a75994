"""The constrained language-model extractor, on the tiny random model (SmolLM2's architecture): whatever the
model prefers, it can only answer from the schema and with a span of the message."""

from __future__ import annotations

import pytest

from keel.memory import HashEmbedder, Memory
from keel.memory.hierarchy import HierarchyConfig
from keel.memory.llm_facts import ATTRIBUTES, LLMFactExtractor


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("transformers")
    from keel.llm.model import load_model

    return load_model("tiny", seed=3)


def test_model_answers_stay_inside_the_schema_and_the_message(tiny):
    ex = LLMFactExtractor(*tiny)
    texts = ["the bakery near the station in Utrecht is my new local", "ha, what a week", "zzz qqq",
             "these days my mornings start with yerba mate"]
    for text in texts:
        f = ex.model_fact(text)
        if f is not None:
            assert f.slot.split("|")[1] in ATTRIBUTES and f.slot.startswith("user|")
            assert f.value and all(w in text.lower() for w in f.value.split())
    assert ex.calls == len(texts)


def test_patterns_first_and_the_model_only_for_the_rest(tiny, tmp_path):
    ex = LLMFactExtractor(*tiny)
    assert ex("I live in Lisbon.")[0].slot == "user|lives in" and ex.calls == 0  # the pattern extractor's
    ex("nothing a pattern would catch here")
    assert ex.calls == 1
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), hierarchy=HierarchyConfig(extractor=ex))
    m.add(["I live in Lisbon.", "ok cool"])  # plugs in where the pattern extractor sits
    assert ex.calls == 2
    m.close()
