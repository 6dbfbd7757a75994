"""Tool-calling agents for toolworld: scripted references, a local-model agent and an OpenAI-compatible adapter."""

from __future__ import annotations

from keel.agents.base import Action, Agent, Finish
from keel.agents.scripted import FollowerAgent, RefuserAgent
from keel.errors import KeelError

__all__ = ["Action", "Agent", "Finish", "FollowerAgent", "RefuserAgent", "check_agent", "make_agent"]

_UNKNOWN = ("use follower, refuser, smollm2, llm:tiny, llm:MODEL_DIR or {openai: {base_url: ..., model: ...}}")


def check_agent(spec: str | dict) -> None:
    """Refuse an agent entry that make_agent could not build, without building it (no model is loaded), so
    that a campaign with a bad agent fails before it creates its run directory."""
    from pathlib import Path

    from keel.agents.trained import is_run_spec, resolve_run

    if is_run_spec(spec):
        resolve_run(spec)  # a training run: policy/ and summary.json with base_model, else a clear error
        return
    if isinstance(spec, dict) and "openai" in spec:
        if not isinstance(spec["openai"], dict):
            raise KeelError(f"agent {spec!r}: openai: must be a mapping (base_url, model, ...)")
        return
    if spec in ("follower", "refuser", "smollm2"):
        return
    if isinstance(spec, str) and spec.startswith("llm:"):
        source = spec.split(":", 1)[1]
        if source in ("tiny", "smollm2") or (Path(source).expanduser() / "config.json").is_file():
            return
        raise KeelError(f"agent {spec!r}: {source!r} is neither tiny, smollm2 nor a local Hugging Face model "
                        "directory (a folder with config.json and weights)")
    raise KeelError(f"unknown agent {spec!r}; {_UNKNOWN}")


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
