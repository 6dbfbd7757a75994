"""The local-model mutator through keel.llm (slow: loads a model)."""

import pytest

from keel.discovery.llm_mutator import LocalMutator
from keel.discovery.search import seed_source


@pytest.mark.slow
def test_local_mutator_with_tiny_model_fails_cleanly_or_splices():
    m = LocalMutator("tiny", seed=0, max_new_tokens=16)
    try:
        child, desc = m.mutate(seed_source("cfr"))
    except ValueError as e:  # a random tiny model writes no usable function: a failed candidate, not a crash
        assert "unusable LLM rewrite" in str(e)
    else:
        assert "def accumulate_regret" in child and desc.startswith("llm:")
    assert m._calls == 1
