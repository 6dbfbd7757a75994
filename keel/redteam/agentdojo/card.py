"""The AgentDojo section of the safety card (`keel report safety RUN` on a `keel redteam agentdojo` run):
per suite, utility, utility under attack and attack success, with and without the guard; the tasks the
guard cost and the rule that cost them; the policy in force per suite."""

from __future__ import annotations

import json
from typing import Any, Protocol


class CardLike(Protocol):
    def h(self, text: str) -> None: ...

    def p(self, text: str) -> None: ...

    def table(self, header: list[str], rows: list[list[Any]]) -> None: ...


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.1f}%"


def agentdojo_section(c: CardLike, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    from keel.guard import builtin_policy
    from keel.redteam.agentdojo.run import summarize

    s = summarize(rows)
    info = meta.get("agentdojo", {})
    c.h("AgentDojo")
    c.p(f"AgentDojo {info.get('version', '?')} (Debenedetti et al. 2024), judged by AgentDojo's own utility and "
        f"security checks. Agent: {info.get('agent', '?')}; attacks: {', '.join(info.get('attacks', [])) or 'none'}; "
        f"the guard's asks answered by: {info.get('approver', '?')}.")
    c.table(["suite", "agent", "defence", "utility", "utility under attack", "attack success", "benign eps",
             "attack eps"],
            [[e["suite"].removeprefix("agentdojo/"), e["agent"], e["defence"], _pct(e["utility"]),
              _pct(e["utility_under_attack"]), _pct(e["attack_success"]), e["benign_episodes"], e["attack_episodes"]]
             for e in s["table"]])
    if s["tasks_lost_to_guard"]:
        c.p("User tasks solved without the guard and not with it, and the rules that refused their calls:")
        c.table(["suite", "user task", "blocked by"], [[x["suite"], x["user_task"], ", ".join(x["blocked_by"])]
                                                       for x in s["tasks_lost_to_guard"]])
    else:
        c.p("No user task solved without the guard was lost with it in this run.")
    if s["attacks_through_guard"]:
        c.p(f"{len(s['attacks_through_guard'])} attacked episodes reached the injection task's goal through the "
            "guard (first 20):")
        c.table(["suite", "user task", "injection task", "attack"],
                [[x["suite"], x["user_task"], x["injection_task"], x["attack"]] for x in s["attacks_through_guard"][:20]])
    pols = meta.get("policies", {})
    if pols:
        c.p("Guard policy per suite (keel/guard/policies/agentdojo/SUITE.yaml): the rules per tool.")
        out = []
        for suite in pols:
            p = builtin_policy(f"agentdojo/{suite}")
            for tool, r in p.tools.items():
                kinds = {k: v for k, v in r.model_dump(exclude_defaults=True).items() if k != "decision"}
                out.append([suite, tool, json.dumps(kinds)])
            for t in p.temporal:
                out.append([suite, f"temporal {t.name}", t.formula])
        c.table(["suite", "tool / rule", "rule"], out)
