"""The real SmolLM2-135M-Instruct: conversion, cached reload, sensible greedy output (slow: ~1 min)."""

import time

import pytest

from keel.llm import generate, load_model

pytestmark = pytest.mark.slow


def test_smollm2_loads_and_answers():
    model, tok = load_model("smollm2")
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert getattr(model.config, "quantization_config", None) is None  # trainable, savable
    out = generate(model, tok, [[{"role": "user", "content": "What is the capital of France?"}]],
                   max_new_tokens=12, temperature=0)
    assert "Paris" in out[0]
    t0 = time.time()
    load_model("smollm2")  # the cached safetensors copy
    assert time.time() - t0 < 60
