"""Context budgets: assemble an agent's prompt context from memory within a token budget.

The sections, in priority order: instructions (never dropped: if they alone overflow the budget, that
is an error), the user's preferences, facts retrieved for the query, and recent conversation turns.
Each section may reserve a share of the budget so that a lower priority is not starved (by default
recent turns keep 20%); reserves are granted in priority order, then the remaining budget is filled
greedily by priority, whole items only (a half-fact is worse than none), skipping an item that does
not fit and trying the smaller ones after it. Recent turns are taken newest first, then shown in
chronological order. This is the "context engineering" of MemGPT/Letta (Packer et al. 2023,
arXiv 2310.08560) reduced to its budget arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError

if TYPE_CHECKING:
    from keel.memory.memory import Memory

SECTIONS = ("instructions", "preferences", "facts", "recent")
_PIECE = re.compile(r"\w+|[^\w\s]")


def approx_tokens(text: str) -> int:
    """Words and punctuation marks: close to a subword tokenizer's count for English, and free."""
    return len(_PIECE.findall(text))


@dataclass
class Budget:
    tokens: int
    reserve: dict[str, float] = field(default_factory=lambda: {"recent": 0.2})
    separator_tokens: int = 1

    def __post_init__(self):
        if not isinstance(self.tokens, int) or self.tokens <= 0:
            raise KeelError(f"a context budget must be a positive number of tokens, got {self.tokens!r}")
        bad = [k for k in self.reserve if k not in SECTIONS]
        if bad:
            raise KeelError(f"unknown context section {bad[0]!r}; sections: {', '.join(SECTIONS)}")
        if sum(self.reserve.values()) > 1:
            raise KeelError("context reserves add up to more than the whole budget")


def build_context(
    budget: Budget | int,
    instructions: list[str] | None = None,
    preferences: list[str] | None = None,
    facts: list[str] | None = None,
    recent: list[str] | None = None,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> dict[str, Any]:
    """The chosen texts per section, the assembled text, the tokens used and what was dropped."""
    b = budget if isinstance(budget, Budget) else Budget(budget)
    given = {
        "instructions": list(instructions or []), "preferences": list(preferences or []),
        "facts": list(facts or []), "recent": list(reversed(recent or [])),  # newest first
    }
    cost = {s: [count_tokens(t) + b.separator_tokens for t in given[s]] for s in SECTIONS}
    need = sum(cost["instructions"])
    if need > b.tokens:
        raise KeelError(f"the instructions alone take {need} tokens, over the budget of {b.tokens}; "
                        "shorten them or raise the budget")
    chosen: dict[str, list[int]] = {s: [] for s in SECTIONS}
    chosen["instructions"] = list(range(len(given["instructions"])))
    used = need

    def fill(section: str, limit: int) -> None:
        nonlocal used
        spent = sum(cost[section][i] for i in chosen[section])
        for i, c in enumerate(cost[section]):
            if i in chosen[section]:
                continue
            if used + c <= b.tokens and spent + c <= limit:
                chosen[section].append(i)
                used += c
                spent += c

    for s in SECTIONS[1:]:  # reserves first, in priority order
        if s in b.reserve:
            fill(s, int(b.reserve[s] * b.tokens))
    for s in SECTIONS[1:]:  # then whatever is left, by priority
        fill(s, b.tokens)
    out = {s: [given[s][i] for i in sorted(chosen[s])] for s in SECTIONS}
    out["recent"] = list(reversed(out["recent"]))  # back to chronological order
    titles = {"instructions": "Instructions", "preferences": "User preferences", "facts": "Relevant memories",
              "recent": "Recent conversation"}
    text = "\n\n".join(f"## {titles[s]}\n" + "\n".join(out[s]) for s in SECTIONS if out[s])
    return {
        "text": text, "sections": out, "tokens": used, "budget": b.tokens,
        "dropped": {s: len(given[s]) - len(out[s]) for s in SECTIONS},
    }


def assemble(
    memory: Memory,
    query: str,
    budget: Budget | int,
    instructions: list[str] | None = None,
    recent: list[str] | None = None,
    k: int = 10,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> dict[str, Any]:
    """Context for `query` from `memory`: stored preferences (facts about likes and preferences, and items
    with metadata.type == "preference"), then facts and messages retrieved top-down for the query."""
    prefs = memory.search(query, k=k, filters={"metadata.type": "preference"}, mode="hybrid", track_use=False)
    pref_facts = [h for h in memory.search(query, k=k, mode="reliable", kinds=("fact",), track_use=False)
                  if h.get("slot") and ("|likes:" in h["slot"] or h["slot"].endswith("|prefers"))]
    retrieved = memory.search(query, k=k, mode="hierarchical")
    preferences = list(dict.fromkeys([h["text"] for h in prefs] + [h["text"] for h in pref_facts]))
    facts = [t for t in dict.fromkeys(f["text"] for f in getattr(retrieved, "facts", [])) if t not in preferences]
    facts += [h["text"] for h in retrieved if h["text"] not in preferences and h["text"] not in facts]
    return build_context(budget, instructions, preferences, facts, recent, count_tokens)
