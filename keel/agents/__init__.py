"""Tool-calling agents for toolworld: scripted references, a local-model agent and an OpenAI-compatible adapter."""

from __future__ import annotations

from keel.agents.base import Action, Agent, Finish
from keel.agents.scripted import FollowerAgent, RefuserAgent
from keel.errors import KeelError

__all__ = ["Action", "Agent", "Finish", "FollowerAgent", "RefuserAgent", "make_agent"]


def make_agent(spec: str | dict, seed: int = 0):
    """An agent from a config entry: "follower", "refuser", "smollm2", "llm:tiny", "llm:PATH", a trained run
    "runs/NAME" (`keel.agents.trained`), or {"openai": {"base_url": ..., "model": ...}}."""
    if isinstance(spec, dict) and "openai" in spec:
        from keel.agents.openai_compat import OpenAICompatAgent

        return OpenAICompatAgent(**spec["openai"])
    if spec == "follower":
        return FollowerAgent()
    if spec == "refuser":
        return RefuserAgent()
    from keel.agents.trained import is_run_spec

    if is_run_spec(spec):
        from keel.agents.trained import TrainedAgent

        return TrainedAgent(spec, seed=seed)
    if isinstance(spec, str) and (spec == "smollm2" or spec.startswith("llm:")):
        from keel.agents.llm_agent import LocalModelAgent

        return LocalModelAgent(spec.split(":", 1)[1] if spec.startswith("llm:") else "smollm2", seed=seed)
    raise KeelError(f"unknown agent {spec!r}; use follower, refuser, smollm2, llm:tiny, llm:MODEL_DIR, runs/NAME or "
                    "{openai: {base_url: ..., model: ...}}")
