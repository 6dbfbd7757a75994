"""AgentDojo's suites and attacks by name, with one-line errors for names that do not exist."""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

from keel.errors import KeelError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when the wheel has it

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
    """A copy of AgentDojo's registered suite whose environments load with libyaml (same data, ~10x faster
    than the pure-Python parser AgentDojo uses); the registered suite itself is left untouched."""
    from agentdojo.task_suite.load_suites import get_suites

    suites = get_suites(version)
    if not suites:
        raise KeelError(f"unknown AgentDojo benchmark version {version!r}; e.g. v1, v1.1.2, v1.2, v1.2.2")
    suite_names([name])
    fast = copy.copy(suites[name])
    fast.load_and_inject_default_environment = functools.partial(_load_env, fast)
    fast.get_injection_vector_defaults = functools.partial(_defaults, fast.name, fast.data_path)
    return fast


@functools.lru_cache(maxsize=16)
def _text(name: str, data_path: Any, file: str) -> str:
    from agentdojo.task_suite.task_suite import read_suite_file

    return read_suite_file(name, file, data_path)


def _defaults(name: str, data_path: Any) -> dict[str, str]:
    return dict(_defaults_cached(name, data_path))


@functools.lru_cache(maxsize=16)
def _defaults_cached(name: str, data_path: Any) -> tuple:
    from agentdojo.task_suite.task_suite import InjectionVector

    raw = yaml.load(_text(name, data_path, "injection_vectors.yaml"), Loader=_LOADER)
    return tuple((k, InjectionVector.model_validate(v).default) for k, v in raw.items())


def _load_env(suite: Any, injections: dict[str, str]) -> Any:
    """AgentDojo's `TaskSuite.load_and_inject_default_environment`, parsed with libyaml."""
    from agentdojo.task_suite.task_suite import validate_injections

    defaults = _defaults(suite.name, suite.data_path)
    validate_injections(injections, defaults)
    text = _text(suite.name, suite.data_path, "environment.yaml").format(**dict(defaults, **injections))
    return suite.environment_type.model_validate(yaml.load(text, Loader=_LOADER))


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
