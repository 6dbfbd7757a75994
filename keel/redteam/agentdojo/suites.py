"""AgentDojo's suites and attacks by name, with one-line errors for names that do not exist."""

from __future__ import annotations

from typing import Any

from keel.errors import KeelError

VERSION = "v1.2"
SUITE_NAMES = ("workspace", "travel", "banking", "slack")
# AgentDojo's text-only attacks (prompt injections that ask for tool calls); `dos` attacks aim at utility.
DEFAULT_ATTACKS = ("important_instructions", "tool_knowledge", "ignore_previous", "injecagent")


def suite_names(spec: str | list[str]) -> list[str]:
    names = list(SUITE_NAMES) if spec == "all" else [spec] if isinstance(spec, str) else list(spec)
    for n in names:
        if n not in SUITE_NAMES:
            raise KeelError(f"unknown AgentDojo suite {n!r}; suites: {', '.join(SUITE_NAMES)} or all")
    return names


def get_suite(name: str, version: str = VERSION) -> Any:
    from agentdojo.task_suite.load_suites import get_suites

    suites = get_suites(version)
    if not suites:
        raise KeelError(f"unknown AgentDojo benchmark version {version!r}; e.g. v1, v1.1.2, v1.2, v1.2.2")
    suite_names([name])
    return suites[name]


def attack_names(spec: str | list[str]) -> list[str]:
    from agentdojo.attacks.attack_registry import ATTACKS

    names = list(DEFAULT_ATTACKS) if spec == "all" else [spec] if isinstance(spec, str) else list(spec)
    for n in names:
        if n not in ATTACKS:
            raise KeelError(f"unknown AgentDojo attack {n!r}; attacks: {', '.join(sorted(ATTACKS))}")
    return names


def load_attack(name: str, suite: Any, pipeline: Any) -> Any:
    from agentdojo.attacks.attack_registry import load_attack as _load

    attack_names([name])
    return _load(name, suite, pipeline)
