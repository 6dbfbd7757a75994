"""A Keel-trained agent (`runs/NAME` of an agent training job) acting in toolworld for `keel redteam`.

The run directory holds the policy as a Hugging Face model folder `policy/` (full weights, or a PEFT/LoRA
adapter over the base model) and `summary.json` naming `base_model` and `kind`. The agent talks to the
model exactly as the training environment did (`keel.envs.toolworld.agentic_env`): the same system prompt,
the task as the first user message, tool results as "tool" messages, unreadable replies answered with the
same error text, greedy decoding of one JSON line per turn. So the red team attacks the policy it trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.agents.base import Action, Finish
from keel.agents.parsing import ParseError
from keel.envs.toolworld.agentic_env import (
    ToolworldEnvConfig,
    error_message,
    read_reply,
    result_message,
    system_prompt,
)
from keel.envs.toolworld.env import Observation
from keel.envs.toolworld.tasks import Call, UserTask
from keel.errors import KeelError


@dataclass(frozen=True)
class TrainedRun:
    path: Path
    name: str
    base_model: str  # what the policy weights load on (a model name, or a full policy folder)
    kind: str
    root_model: str  # the model the training chain started from (= base_model unless it chained runs)
    init: str | None  # the run it was initialised from (e.g. the SFT run of a GRPO run)
    env_options: dict[str, Any]  # the training env's options (config.yaml env.options), where recorded

    @property
    def policy_dir(self) -> Path:
        return self.path / "policy"

    def record(self) -> dict[str, str]:
        """What a campaign records about the agent (and the safety card prints)."""
        return {"run": str(self.path), "name": self.name, "base_model": self.root_model, "kind": self.kind,
                "weights_on": self.base_model, "init": self.init or "-", "policy": str(self.policy_dir),
                "adapter": "lora" if (self.policy_dir / "adapter_config.json").is_file() else "full"}


def is_run_spec(spec: Any) -> bool:
    """An agent entry naming a training run: a path such as runs/NAME (named agents have no slash)."""
    return isinstance(spec, str) and not spec.startswith("llm:") and ("/" in spec or spec.startswith("runs"))


def resolve_run(spec: str) -> TrainedRun:
    """The training run behind `spec`, checked: a directory with policy/ and a summary naming the base model."""
    path = Path(spec).expanduser()
    hint = "train one with `keel train agent-toolworld` (or agent-sft) and name it as runs/NAME"
    if not path.is_dir():
        raise KeelError(f"agent {spec!r}: no run directory {path}; {hint}")
    summary = path / "summary.json"
    if not (path / "policy").is_dir():
        raise KeelError(f"agent {spec!r}: {path} has no policy/ folder: not an agent training run, or it has not "
                        f"saved its policy yet; {hint}")
    if not summary.is_file():
        raise KeelError(f"agent {spec!r}: {path} has no summary.json (the run did not finish); resume it first")
    try:
        data = json.loads(summary.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KeelError(f"agent {spec!r}: {summary} is not valid JSON ({e})") from None
    base = data.get("base_model") if isinstance(data, dict) else None
    if not isinstance(base, str) or not base:
        raise KeelError(f"agent {spec!r}: {summary} does not name its base_model; only agent training runs "
                        "(keel train agent-*) can be red-teamed as trained agents")
    root, init = data.get("root_model"), data.get("init")
    return TrainedRun(path, path.name, base, str(data.get("kind", "unknown")),
                      root if isinstance(root, str) and root else base, init if isinstance(init, str) else None,
                      _env_options(path))


def _env_options(path: Path) -> dict[str, Any]:
    """The env options the run trained with (so the agent shows tool output cut as it was in training)."""
    import yaml

    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text()) if (path / "config.yaml").is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    env = cfg.get("env") if isinstance(cfg, dict) else None
    opts = env.get("options") if isinstance(env, dict) else None
    return opts if isinstance(opts, dict) else {}


def load_trained(run: TrainedRun):
    """(model, tokenizer) of the run's policy, in eval mode, loaded by the trainer's own loader (full
    weights, or the base model with the LoRA adapter)."""
    from keel.rl.agent_job import load_policy

    return load_policy(run.path)


class TrainedAgent:
    """The Agent protocol (`keel.agents.base`) over a trained policy, in the training env's conversation format."""

    retries = 2  # extra tries on an unreadable reply, each answered with the env's error message

    def __init__(self, spec: str, max_new_tokens: int = 64, seed: int = 0, model=None, batcher=None):
        self.run = resolve_run(spec)
        self.name = f"run:{self.run.name}"
        if batcher is not None:
            self.model, self.tokenizer = batcher.model, batcher.tokenizer
        else:
            self.model, self.tokenizer = model if model is not None else load_trained(self.run)
        self.batcher, self.max_new_tokens, self.seed = batcher, max_new_tokens, seed
        chars = self.run.env_options.get("max_result_chars")
        self.max_result_chars = chars if isinstance(chars, int) and chars > 0 else \
            ToolworldEnvConfig().max_result_chars

    def start(self, task: UserTask, prompt: str, tools: list[dict[str, Any]]) -> None:
        self.tool_names = {t["name"] for t in tools}
        self.messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt(tools)},
                                               {"role": "user", "content": prompt}]
        self.last: Action | None = None
        self.replies: list[str] = []

    def complete(self, messages: list[dict[str, str]]) -> str:
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if self.batcher is not None:
            return self.batcher.complete(prompt).strip()
        from keel.llm import generate

        return generate(self.model, self.tokenizer, [prompt], max_new_tokens=self.max_new_tokens, temperature=0.0,
                        top_p=1.0, stop=["\n"], seed=self.seed)[0].strip()

    def act(self, observation: Observation | None) -> Action:
        if observation is not None and isinstance(self.last, Call):
            self.messages.append({"role": "tool", "content": result_message(self.last.tool, observation,
                                                                            self.max_result_chars)})
        for _ in range(1 + self.retries):
            reply = self.complete(self.messages)
            self.replies.append(reply)
            self.messages.append({"role": "assistant", "content": reply})
            try:
                self.last = read_reply(reply, self.tool_names)
                return self.last
            except ParseError as e:
                self.messages.append({"role": "user", "content": error_message(e)})
        self.last = Finish("")
        return self.last

    def user_turn(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        self.last = None
