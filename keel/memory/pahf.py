"""PAHF: Personalized Agents from Human Feedback (Liang et al., arXiv 2602.16173), on Keel's memory.

The loop, per task:
  1. pre-action clarification: if the task is ambiguous and memory holds no matching preference, ask the
     user and write the answer to memory;
  2. act on the preference retrieved from memory (a random candidate if there is none);
  3. post-action feedback: if the user corrects the action, rewrite the stored preference (the old
     version stays in the item's history), so the agent follows preferences that drift.
Baselines switch channels off: no memory at all, pre-action only, post-action only.

The four-phase protocol of the paper: (1) learn with feedback, (2) test, then the persona drifts,
(3) learn again with feedback, (4) test. In test phases the user gives no post-action correction; the
agent's own behaviour (asking when memory has nothing) is unchanged. We report the success rate and
the questions asked per episode in each phase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.memory.memory import Memory
from keel.memory.shopping_env import CATEGORIES, ShoppingEnv

AGENTS = {  # name: (ask before acting, learn from post-action feedback, has memory)
    "no_memory": (False, False, False),
    "pre_only": (True, False, True),
    "post_only": (False, True, True),
    "pahf": (True, True, True),
}
PHASES = ("1-learn", "2-test", "3-learn-after-drift", "4-test-after-drift")


def parse_value(text: str, category: str) -> str | None:
    """The attribute value of `category` named in the user's words (longest match wins)."""
    values = sorted(CATEGORIES[category][1], key=len, reverse=True)
    low = text.lower()
    return next((v for v in values if re.search(rf"\b{re.escape(v)}\b", low)), None)


@dataclass
class PAHFAgent:
    memory: Memory | None
    ask: bool
    learn_post: bool
    rng: np.random.Generator

    def retrieve(self, category: str, context: str) -> dict[str, Any] | None:
        if self.memory is None:
            return None
        hits = self.memory.search(f"preference for {category} {context}", k=5, mode="hybrid",
                                  filters={"metadata.type": "preference"})
        return next((h for h in hits if h["metadata"].get("category") == category
                     and h["metadata"].get("context") == context), None)

    def remember(self, category: str, context: str, value: str, existing: dict[str, Any] | None,
                 source: str) -> None:
        text = f"For {category} {context} the user prefers {value}."
        md = {"type": "preference", "category": category, "context": context, "value": value, "via": source}
        if existing is None:
            self.memory.add(text, source="user", metadata=md)
        elif existing["metadata"].get("value") != value:
            self.memory.update(existing["id"], text=text, metadata=md)

    def episode(self, env: ShoppingEnv, seed: int | None = None) -> dict[str, Any]:
        obs, info = env.reset(seed=seed)
        c, ctx = info["category"], info["context"]
        pref = self.retrieve(c, ctx)
        value = pref["metadata"]["value"] if pref else None
        asked = False
        if value is None and self.ask:  # 1. pre-action clarification
            answer, *_ = env.step("ask")
            asked = True
            value = parse_value(answer, c)
            if value and self.memory is not None:
                self.remember(c, ctx, value, None, "clarification")
                pref = self.retrieve(c, ctx)
        # 2. act on the retrieved preference
        matching = [p for p in info["candidates"] if env.by_id[p]["value"] == value]
        choice = matching[0] if matching else str(self.rng.choice(info["candidates"]))
        feedback, reward, *_ = env.step(f"buy {choice}")
        # 3. post-action feedback rewrites the preference
        if self.learn_post and self.memory is not None and reward < 1 and feedback:
            corrected = parse_value(feedback, c)
            if corrected:
                self.remember(c, ctx, corrected, pref, "feedback")
        return {"success": reward >= 1, "asked": asked}


def run_protocol(store: str | Path, embedder=None, users: int = 4, train_episodes: int = 36,
                 test_episodes: int = 24, drift: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """Every agent meets the same users, tasks and drift; returns success and questions per phase."""
    results: dict[str, Any] = {a: {p: {"success": [], "questions": []} for p in PHASES} for a in AGENTS}
    for name, (ask, post, has_mem) in AGENTS.items():
        for u in range(users):
            mem = Memory(store, namespace=f"{name}-u{u}", embedder=embedder, abstain_below=0.0) if has_mem else None
            agent = PAHFAgent(mem, ask, post, np.random.default_rng(seed * 1000 + u))
            env = ShoppingEnv(seed=seed * 1000 + u)
            for phase in PHASES:
                if phase.startswith("3"):
                    env.drift(drift)
                env.post_feedback = "learn" in phase
                n = train_episodes if "learn" in phase else test_episodes
                for _ in range(n):
                    r = agent.episode(env)
                    results[name][phase]["success"].append(r["success"])
                    results[name][phase]["questions"].append(r["asked"])
            if mem is not None:
                mem.close()
    table = {}
    for name in AGENTS:
        row = {}
        for phase in PHASES:
            row[f"success {phase}"] = float(np.mean(results[name][phase]["success"]))
            row[f"questions {phase}"] = float(np.mean(results[name][phase]["questions"]))
        row["success overall"] = float(np.mean([s for p in PHASES for s in results[name][p]["success"]]))
        table[name] = row
    best_other = max(table[a]["success overall"] for a in AGENTS if a != "pahf")
    return {"table": table, "pahf_ahead": table["pahf"]["success overall"] > best_other,
            "users": users, "train_episodes": train_episodes, "test_episodes": test_episodes, "drift": drift}
