"""Which phase each agent turn is in, and how the PA-MoE experts are used across phases.

A toolworld turn is labelled by what the reply does (read by the env's own parser): `look up` (a call that
only reads: list_, read_, search_, get_ tools), `act` (any other call: it changes the world), `confirm`
(the final {"answer": ...}), `malformed` (no readable call). These labels are for measurement only: the
router never sees them (PA-MoE learns its phases from the RL objective).
"""

from __future__ import annotations

import math
from collections import Counter

PHASES = ("look up", "act", "confirm", "malformed")
LOOKUP_PREFIXES = ("list_", "read_", "search_", "get_")


def turn_phase(reply: str) -> str:
    from keel.agents.base import Finish
    from keel.agents.parsing import ParseError
    from keel.envs.toolworld.agentic_env import read_reply
    from keel.envs.toolworld.world import TOOLS

    try:
        act = read_reply(reply, set(TOOLS))
    except ParseError:
        return "malformed"
    if isinstance(act, Finish):
        return "confirm"
    return "look up" if act.tool.startswith(LOOKUP_PREFIXES) else "act"


def turn_phases(messages: list[dict]) -> list[str]:
    """The phase of every assistant turn of a conversation, in order."""
    return [turn_phase(m["content"]) for m in messages if m["role"] == "assistant"]


def usage(pairs: list[tuple[str, int]], experts: int) -> dict[str, list[int]]:
    """Phase x expert counts: {phase: [turns routed to expert 0, 1, ...]} (phases that occurred)."""
    c = Counter(pairs)
    return {p: [c[(p, e)] for e in range(experts)] for p in PHASES if any(c[(p, e)] for e in range(experts))}


def _entropy(counts: list[int]) -> float:
    n = sum(counts)
    return -sum(k / n * math.log(k / n) for k in counts if k) if n else 0.0


def specialisation(table: dict[str, list[int]]) -> dict[str, float]:
    """How much the expert tells about the phase: mutual information I(phase; expert) over H(phase)
    (0: experts are phase-blind, 1: each expert serves one phase), and purity (the share of turns whose
    expert's most frequent phase is theirs)."""
    rows = list(table.values())
    n = sum(sum(r) for r in rows)
    if not n:
        return {"turns": 0, "nmi_phase": 0.0, "purity": 0.0, "experts_used": 0}
    cols = [sum(r[e] for r in rows) for e in range(len(rows[0]))]
    h_phase = _entropy([sum(r) for r in rows])
    h_cond = sum(c / n * _entropy([r[e] for r in rows]) for e, c in enumerate(cols) if c)
    purity = sum(max(r[e] for r in rows) for e in range(len(cols))) / n
    return {"turns": n, "nmi_phase": (h_phase - h_cond) / h_phase if h_phase > 0 else 0.0, "purity": purity,
            "experts_used": sum(1 for c in cols if c)}
