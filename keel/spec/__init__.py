"""Formal specifications: LTLf formulas -> minimal DFAs -> monitors, reward machines and shields;
SPECTRL task specs -> DiRL abstract graphs.

    from keel.spec import compile_ltlf, SpecError
    spec = compile_ltlf("F(goal_a & F goal_b) & G !hazard", env.propositions)
    monitor = spec.monitor(); rm = spec.reward_machine(); env = PreemptiveShield(env, spec)

Heavy modules (numpy, gymnasium) load on first use so that `keel --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from keel.spec.ltlf import SpecError

_LAZY = {
    "compile_ltlf": "keel.spec.spec",
    "Spec": "keel.spec.spec",
    "DFA": "keel.spec.automaton",
    "Monitor": "keel.spec.monitor",
    "Verdict": "keel.spec.monitor",
    "RewardMachine": "keel.spec.reward_machine",
    "Shield": "keel.spec.shield",
    "PreemptiveShield": "keel.spec.shield",
    "PostPosedShield": "keel.spec.shield",
    "compile_spectrl": "keel.spec.spectrl",
    "AbstractGraph": "keel.spec.spectrl",
    "Predicate": "keel.spec.spectrl",
    "Edge": "keel.spec.spectrl",
    "task_value": "keel.spec.spectrl",
}

__all__ = ["SpecError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keel.spec' has no attribute {name!r}")
