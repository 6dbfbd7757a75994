"""Context budgets, the shopping environment and the PAHF loop."""

from __future__ import annotations

import pytest

from keel.errors import KeelError
from keel.memory import HashEmbedder, Memory
from keel.memory.context import Budget, approx_tokens, assemble, build_context
from keel.memory.pahf import PAHFAgent, run_protocol
from keel.memory.shopping_env import CATEGORIES, ShoppingEnv, slots


def test_budget_priorities_and_reserves():
    instr = ["You are a helpful assistant."]  # 7 tokens
    prefs = ["User prefers tea over coffee.", "User is vegetarian."]
    facts = [f"fact number {i} is rather long and detailed" for i in range(10)]
    recent = [f"turn {i}" for i in range(10)]
    out = build_context(Budget(60, reserve={"recent": 0.2}), instr, prefs, facts, recent)
    assert out["tokens"] <= 60
    s = out["sections"]
    assert s["instructions"] == instr and s["preferences"] == prefs  # higher priority kept whole
    assert s["recent"] and s["recent"] == recent[-len(s["recent"]):]  # the newest turns, in order
    assert 0 < len(s["facts"]) < 10 and out["dropped"]["facts"] == 10 - len(s["facts"])
    cost = sum(approx_tokens(t) + 1 for sec in s.values() for t in sec)
    assert cost == out["tokens"]
    no_reserve = build_context(Budget(60, reserve={}), instr, prefs, facts, recent)
    # without a reserve, facts (higher priority) take the space the turns had
    assert len(no_reserve["sections"]["facts"]) > len(s["facts"])
    assert len(no_reserve["sections"]["recent"]) < len(s["recent"])
    with pytest.raises(KeelError, match="instructions alone"):
        build_context(5, instr)
    with pytest.raises(KeelError, match="unknown context section"):
        Budget(10, reserve={"memes": 0.1})


def test_assemble_from_memory(tmp_path):
    m = Memory(tmp_path / "m.db", embedder=HashEmbedder())
    m.add("For coffee at work the user prefers dark roast.", metadata={"type": "preference"})
    m.add(["I live in Lisbon.", "The meeting with Ana is on Monday."])
    ctx = assemble(m, "coffee order for the Monday meeting", 80, instructions=["Be brief."],
                   recent=["user: order coffee", "assistant: which one?"])
    assert "dark roast" in ctx["text"] and ctx["tokens"] <= 80
    assert ctx["sections"]["preferences"][0].startswith("For coffee")
    m.close()


def test_shopping_env_is_a_gymnasium_env():
    from gymnasium.utils.env_checker import check_env

    env = ShoppingEnv(seed=1)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    c, ctx = info["category"], info["context"]
    answer, r, term, _, _ = env.step("ask")
    assert r == 0 and not term and env.persona[(c, ctx)] in answer
    right = next(p for p in info["candidates"] if env.by_id[p]["value"] == env.persona[(c, ctx)])
    assert env.step(f"buy {right}")[1] == 1.0
    before = dict(env.persona)
    changed = env.drift(0.5)
    assert len(changed) == len(slots()) // 2 and all(env.persona[s] != before[s] for s in changed)


def test_pahf_agent_asks_once_then_follows_feedback(tmp_path):
    import numpy as np

    m = Memory(tmp_path / "m.db", embedder=HashEmbedder(), abstain_below=0.0)
    env = ShoppingEnv(seed=0)
    agent = PAHFAgent(m, ask=True, learn_post=True, rng=np.random.default_rng(0))
    task = slots()[0]
    r1 = agent.episode(_Fixed(env, task))
    r2 = agent.episode(_Fixed(env, task))
    assert r1 == {"success": True, "asked": True} and r2 == {"success": True, "asked": False}
    env.persona[task] = next(v for v in CATEGORIES[task[0]][1] if v != env.persona[task])  # drift
    r3 = agent.episode(_Fixed(env, task))  # stale memory: wrong, then corrected by feedback
    r4 = agent.episode(_Fixed(env, task))
    assert r3 == {"success": False, "asked": False} and r4 == {"success": True, "asked": False}
    pref = agent.retrieve(*task)
    assert [h["op"] for h in m.history(pref["id"])] == ["add", "update"]
    m.close()


class _Fixed:
    """The env with its task pinned (reset always poses `task`)."""

    def __init__(self, env, task):
        self.env, self.task, self.by_id = env, task, env.by_id

    def reset(self, seed=None):
        return self.env.reset(options={"task": self.task})

    def step(self, a):
        return self.env.step(a)


def test_pahf_protocol_beats_baselines(tmp_path):
    r = run_protocol(tmp_path / "p.db", embedder=HashEmbedder(), users=1, train_episodes=16, test_episodes=8)
    t = r["table"]
    assert r["pahf_ahead"]
    assert t["pahf"]["success 1-learn"] >= t["post_only"]["success 1-learn"]
    assert t["pahf"]["success 4-test-after-drift"] > t["pre_only"]["success 4-test-after-drift"]
    assert t["no_memory"]["questions 1-learn"] == 0 and t["pahf"]["questions 2-test"] < 0.5
