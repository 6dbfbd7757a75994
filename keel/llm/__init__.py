"""Language-model policies: loading SmolLM2 (or a tiny test model), batched KV-cache sampling, log-probs."""

from keel.llm.logprobs import completion_logprobs, shared_prefix_logprobs
from keel.llm.model import load_model
from keel.llm.sampler import Samples, generate, sample

__all__ = ["load_model", "generate", "sample", "Samples", "completion_logprobs", "shared_prefix_logprobs"]
