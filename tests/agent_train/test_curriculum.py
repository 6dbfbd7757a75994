"""How agent training draws its tasks: template-balanced draws and the Self-Evolving Curriculum bandit."""

import random
from collections import Counter

import pytest
import torch

from keel.config import validate
from keel.errors import KeelError
from keel.rl import agent_rl
from keel.rl.agent_envs import balanced_picks, groups_of, task_group, task_starts
from keel.rl.curriculum import CurriculumConfig, SelfEvolvingCurriculum
from keel.runs import Run
from tests.agent_train.test_agent_jobs import _rl


def test_balanced_draws_give_rare_groups_as_many_tasks_as_common_ones():
    groups = {"big": [f"big.{i}" for i in range(100)], "a": ["a.0", "a.1"], "b": ["b.0", "b.1", "b.2"]}
    picks = balanced_picks(groups, 6, random.Random(0))
    assert len(set(picks)) == 6
    assert Counter(p.split(".")[0] for p in picks) == {"big": 2, "a": 2, "b": 2}
    # a group that runs out leaves the rest to the others, still without repeats
    picks = balanced_picks(groups, 20, random.Random(1))
    assert len(set(picks)) == 20 and sum(p.startswith("a.") for p in picks) == 2


def test_toolworld_training_draws_cover_every_template_when_balanced():
    from keel.envs.toolworld.agentic_env import ToolworldAgentEnv

    env = ToolworldAgentEnv()
    groups = groups_of(env, env.task_ids("train"))
    assert task_group(env, "gen.banking.send.17") == "gen.banking.send"
    n = len(groups)
    balanced = {task_group(env, s.options["task"]) for s in task_starts(env, "train", n, 3, "balanced")}
    uniform = {task_group(env, s.options["task"]) for s in task_starts(env, "train", n, 3)}
    assert len(balanced) == n > len(uniform)  # uniform over ids follows the templates' sizes


def test_the_bandit_moves_draws_to_arms_whose_groups_disagree():
    cur = SelfEvolvingCurriculum({"solved": ["s.0", "s.1"], "mixed": ["m.0"], "failed": ["f.0"]},
                                 CurriculumConfig(alpha=0.5, temperature=0.2, init=0.5))
    assert len(set(cur.probabilities().values())) == 1  # optimistic, equal start
    for _ in range(3):
        cur.update({"solved": [1.0, 1.0, 1.0, 1.0], "mixed": [1.0, 0.0, 1.0, 0.0], "failed": [0.0] * 4})
    p = cur.probabilities()
    # TD(0): a 2-of-4 group's mean |centred advantage| is 0.5, an all-equal group's 0 (halved thrice from 0.5)
    assert cur.q == pytest.approx({"solved": 0.0625, "mixed": 0.5, "failed": 0.0625})
    assert p["mixed"] > 0.8 and p["solved"] == pytest.approx(p["failed"])
    picks = cur.draw(2, random.Random(0))
    assert len({p.split(".")[0] for p in picks}) == 2  # distinct arms while there are enough
    again = SelfEvolvingCurriculum(cur.groups, cur.cfg)
    again.load_state_dict(cur.state_dict())
    assert again.probabilities() == p


def test_curriculum_rl_resumes_exactly_and_reports_its_arms(tmp_path):
    torch.set_num_threads(1)
    cur = {"curriculum": {"temperature": 0.1}}
    straight = Run.create(tmp_path, "straight", {}, "x")
    out = agent_rl.train(_rl(tmp_path, 3, **cur), straight, quiet=True)
    assert sum(out["curriculum"]["draws"].values()) >= 6  # 2 groups per draw, 3 steps
    assert all("curriculum_top_prob" in r for r in straight.metrics() if "reward" in r)
    split = Run.create(tmp_path, "split", {}, "x")
    agent_rl.train(_rl(tmp_path, 2, **cur), split, quiet=True)
    split.close()
    split = Run(split.path)
    again = agent_rl.train(_rl(tmp_path, 3, **cur), split, resume=True, quiet=True)
    assert again["curriculum"] == out["curriculum"]
    wa, wb = straight.load_checkpoint()[0]["trainer"]["model"], split.load_checkpoint()[0]["trainer"]["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_a_curriculum_needs_an_env_with_task_splits(tmp_path):
    cfg = _rl(tmp_path, 1, env={"name": "text", "task": "arithmetic", "options": {"digits": 1}, "pool": 8},
              curriculum={})
    with pytest.raises(KeelError, match="no named task splits"):
        agent_rl.train(cfg, Run.create(tmp_path, "r", {}, "x"), quiet=True)
    with pytest.raises(KeelError):
        validate(agent_rl.Config, {"kind": "agent_rl", "curriculum": {"temperature": 0}}, "t")


def test_evaluation_reports_success_per_task_group(tmp_path):
    from keel.llm.multiturn import TurnConfig
    from keel.rl.agent_envs import EnvConfig
    from keel.rl.agent_job import load_policy, run_split

    run = Run.create(tmp_path, "r", {}, "x")
    agent_rl.train(_rl(tmp_path, 1), run, quiet=True)
    model, tok = load_policy(run.path)
    out = run_split(model, tok, EnvConfig(name="tests.agent_train.toyenv:make"), TurnConfig(max_turns=2,
                    max_turn_tokens=4, context_budget=400), "test", 3, batch=3)
    assert set(out["success_by_group"]) == {"k8", "k9", "k10"}  # toy ids have no template part: one task each
    assert sum(out["success_by_group"].values()) / 3 == pytest.approx(out["success"])
