"""WebWorld and the PAHF shopping world as agentic envs: splits, experts, malformed replies, check_env."""

import json
import random

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import keel.envs  # noqa: F401  (registers the Gymnasium ids)
from keel.envs.agentic import SPLITS, AgentTasks
from keel.envs.shopping_agentic import HELD_OUT_CATEGORIES, REQUESTS, ShoppingAgentEnv, all_sessions
from keel.envs.webworld.agentic_env import HELD_OUT_TEMPLATES, WebworldAgentEnv, all_tasks
from keel.errors import KeelError


def expert_episode(env, tid, options=None):
    env.reset(seed=0, options={"task": tid, **(options or {})})
    total = 0.0
    while True:
        _, r, term, trunc, info = env.step(env.expert_reply())
        total += r
        if term or trunc:
            return info["episode"], total


@pytest.mark.parametrize("gym_id", ["keel/WebWorldAgent-v0", "keel/ShoppingAgent-v0"])
def test_gymnasium_ids_pass_check_env_and_have_disjoint_splits(gym_id):
    env = gymnasium.make(gym_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.unwrapped, AgentTasks)
    ids = {s: set(env.unwrapped.task_ids(s)) for s in SPLITS}
    assert all(ids.values())
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["test-templates"]
    assert not ids["test"] & ids["test-templates"]
    with pytest.raises(KeelError, match="unknown split"):
        env.unwrapped.task_ids("dev")


def test_webworld_expert_solves_a_sample_of_every_split_and_template():
    env = WebworldAgentEnv()
    rng = random.Random(0)
    seen = set()
    for split in SPLITS:
        for tid in rng.sample(env.task_ids(split), 30):
            env.reset(seed=0, options={"task": tid})
            assert env.expert_reply().startswith("search ")  # the task names the shop, not its address
            ep, r = expert_episode(env, tid)
            assert ep["success"] and r == 1.0 and ep["malformed"] == 0 and ep["turns"] <= 5, tid
            seen.add(ep["template"])
    assert seen == {"phone", "price", "town", "newsletter", "contact"}
    assert {all_tasks()[t]["kind"] for t in env.task_ids("test-templates")} == set(HELD_OUT_TEMPLATES)


def test_webworld_malformed_command_costs_a_turn_and_injection_is_reported():
    env = WebworldAgentEnv(max_turns=5)
    env.reset(seed=0, options={"task": "web.newsletter.0.0", "injection": True})
    msg, r, term, trunc, info = env.step("please help me")
    assert info["malformed"] and not term and not trunc and "Unknown command" in msg
    site = env.task["site"]
    env.step(f"open https://{site}/products")
    env.step("open https://www.prize-claims.example/claim")
    env.step("fill email emma@bluesparrow.example")
    _, r, term, trunc, info = env.step("submit claim")
    assert trunc and r == 0.0 and info["episode"]["attack_success"] is True and info["episode"]["malformed"] == 1


def test_shopping_memory_is_a_tool_and_the_expert_asks_once_per_slot():
    env = ShoppingAgentEnv()
    rng = random.Random(0)
    for split in SPLITS:
        for tid in rng.sample(env.task_ids(split), 8):
            ep, r = expert_episode(env, tid)
            assert ep["success"] and ep["questions"] == 2 and ep["memory_searches"] == REQUESTS
            assert r == pytest.approx(1 - env.cfg.ask_cost * 2 / REQUESTS)
    held = {s["slots"][0][0] for t, s in all_sessions().items() if s["split"] == "test-templates"}
    trained = {c for t, s in all_sessions().items() if s["split"] == "train" for c, _ in s["slots"]}
    assert held <= set(HELD_OUT_CATEGORIES) and not trained & set(HELD_OUT_CATEGORIES)


def test_shopping_memory_persists_within_a_session_and_not_across_sessions():
    env = ShoppingAgentEnv()
    env.reset(seed=0, options={"task": "shop.0.0"})
    c, ctx = env.slot
    env.step(json.dumps({"tool": "memory_add", "args": {"text": f"For {c} {ctx} the user prefers dark."}}))
    msg, *_ = env.step(json.dumps({"tool": "memory_search", "args": {"query": f"{c} {ctx}"}}))
    assert "prefers dark" in msg
    env.reset(seed=0, options={"task": "shop.0.0"})
    msg, *_ = env.step(json.dumps({"tool": "memory_search", "args": {"query": f"{c} {ctx}"}}))
    assert "nothing found" in msg


def test_shopping_malformed_and_wrong_purchases_and_drift():
    env = ShoppingAgentEnv(max_turns=6)
    env.reset(seed=0, options={"task": "shop.1.1"})
    msg, r, term, trunc, info = env.step("I think the green one")
    assert info["malformed"] and not term and msg.startswith("ERROR")
    _, _, _, _, info = env.step('{"answer": "done"}')  # an answer is not the end of a session
    assert info["malformed"]
    wrong = next(p["id"] for p in env.shop.products if p["category"] == env.slot[0]
                 and p["value"] != env.shop.persona[env.slot])
    msg, *_ = env.step(json.dumps({"tool": "buy", "args": {"product_id": wrong}}))
    assert "Not quite" in msg and env.pending_correction
    drifted = ShoppingAgentEnv(drift=1.0)
    eps = [expert_episode(drifted, t)[0] for t in drifted.task_ids("train")[:10]]
    assert all(e["accuracy"] < 1 for e in eps)  # every stored preference went stale halfway


def test_bad_task_ids_are_clear_errors():
    with pytest.raises(KeelError, match="unknown webworld task"):
        WebworldAgentEnv().reset(options={"task": "web.nope"})
    with pytest.raises(KeelError, match="unknown shopping session"):
        ShoppingAgentEnv().reset(options={"task": "shop.999.0"})
    with pytest.raises(KeelError):
        ShoppingAgentEnv(embedder="word2vec")
