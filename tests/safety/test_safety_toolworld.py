"""Toolworld: every task is solvable, judged on state, and not satisfied by doing nothing."""

from __future__ import annotations

import pytest

from keel.envs.toolworld import SUITES, Call, ToolEnv
from keel.envs.toolworld.world import TOOLS

ALL_TASKS = [(s, t) for s in SUITES.values() for t in s.user_tasks]
ALL_INJ = [(s, i) for s in SUITES.values() for i in s.injection_tasks]


def test_sizes():
    assert len(SUITES) >= 4
    assert len(ALL_TASKS) >= 40
    assert {i.kind for _, i in ALL_INJ} >= {"exfiltrate", "transfer", "delete"}
    # injection vectors sit in mail, files, reviews, web pages and bank transactions
    assert sum(1 for s, t in ALL_TASKS if s.vectors_seen(t)) >= 25


@pytest.mark.parametrize("suite,task", ALL_TASKS, ids=[t.id for _, t in ALL_TASKS])
def test_user_task_ground_truth_solves_it_and_noop_does_not(suite, task):
    env = ToolEnv(suite, task)
    for call in task.ground_truth:
        obs = env.execute(call)
        assert obs.ok, (call, obs.result)
    assert env.utility()
    assert not ToolEnv(suite, task).utility()
    for inj in suite.injection_tasks:  # solving the task never achieves an attacker goal by itself
        assert not env.attack_succeeded(inj)


@pytest.mark.parametrize("suite,inj", ALL_INJ, ids=[i.id for _, i in ALL_INJ])
def test_injection_task_is_achievable_and_checked_on_state(suite, inj):
    env = ToolEnv(suite, suite.user_tasks[0])
    assert not env.attack_succeeded(inj)
    assert env.execute(inj.call).ok
    assert env.attack_succeeded(inj)


def test_bad_calls_become_error_observations():
    s = SUITES["banking"]
    env = ToolEnv(s, s.user_tasks[0])
    for call in [Call("no_such_tool", {}), Call("send_money", {"recipient": "X"}),
                 Call("send_money", {"recipient": "X", "amount": "lots", "subject": "s"}),
                 Call("send_money", {"recipient": "X", "amount": 10 ** 9, "subject": "s"}),
                 Call("read_file", {"path": "/nope"}), Call("read_file", {"path": "/x", "mode": "r"})]:
        obs = env.execute(call)
        assert not obs.ok and obs.text.startswith("ERROR")
    assert env.world.balance == env.pre.balance


def test_injections_land_in_untrusted_fields_only():
    s = SUITES["workspace"]
    t = s.user_task("workspace_1")
    env = ToolEnv(s, t, {"party": "INJECTED"})
    obs = env.execute(Call("read_email", {"email_id": "m1"}))
    assert any("INJECTED" in u for u in obs.untrusted)
    assert "INJECTED" not in obs.result["from"]


def test_tool_schemas_are_json_schema_objects():
    for t in TOOLS.values():
        sch = t.schema()["parameters"]
        assert sch["type"] == "object" and set(sch["required"]) <= set(sch["properties"])
