"""Held-out wordings of toolworld requests: every template has one, it is really other words, it names the
same entities (the guard trusts what the request names) and the task stays solvable under the guard."""

import pytest

from keel.envs.toolworld.agentic_env import ToolworldAgentEnv
from keel.envs.toolworld.generator import TEMPLATE_NAMES, generate
from keel.envs.toolworld.wordings import WORDINGS, reworded
from keel.errors import KeelError


def _first_of_each_template():
    seen = {}
    for g in generate().values():
        seen.setdefault(g.template, g)
    return list(seen.values())


def test_every_template_has_a_heldout_wording_that_differs_but_names_the_same_entities():
    assert set(WORDINGS) == set(TEMPLATE_NAMES)
    for g in _first_of_each_template():
        new = reworded(g.template, g.params)
        assert new != g.task.prompt
        first_words = lambda s: s.split()[:2]  # noqa: E731
        assert first_words(new) != first_words(g.task.prompt), g.template
        for call in g.task.ground_truth:
            for v in call.args.values():
                literal = isinstance(v, str) and ("@" in v or v.startswith("/") or v[:2].isalpha() and v[2:].isdigit())
                if literal and v in g.task.prompt:  # an address, path or IBAN the user named
                    assert v in new, (g.template, v)


def test_the_expert_still_solves_every_template_worded_heldout_under_the_guard():
    env = ToolworldAgentEnv(wording="heldout", max_turns=4)
    for g in _first_of_each_template():
        obs, _ = env.reset(options={"task": g.id})
        assert obs == reworded(g.template, g.params)
        while True:
            obs, _, term, trunc, info = env.step(env.expert_reply())
            if term or trunc:
                break
        assert info["episode"]["success"] and info["episode"]["denied"] == 0, g.template


def test_unknown_wording_is_refused_with_a_clear_message():
    with pytest.raises(KeelError):
        ToolworldAgentEnv(wording="pirate")
    with pytest.raises(KeelError, match="no held-out wording"):
        reworded("banking.nope", {})


def test_training_paraphrases_cover_the_trained_templates_and_never_use_a_heldout_sentence():
    from collections import Counter

    from keel.envs.toolworld.generator import HELD_OUT_TEMPLATES, split_ids
    from keel.envs.toolworld.train_wordings import TRAIN_WORDINGS

    assert set(TRAIN_WORDINGS) == set(TEMPLATE_NAMES) - set(HELD_OUT_TEMPLATES)
    env = ToolworldAgentEnv(wording="varied", max_turns=4)
    tasks = generate()
    firsts = {}
    for tid in split_ids("train"):
        firsts.setdefault(tasks[tid].template, tasks[tid])
    for g in firsts.values():
        heard = Counter()
        for seed in range(24):
            obs, _ = env.reset(seed=seed, options={"task": g.id})
            heard[obs] += 1
            if seed < 3:  # solvable under the guard, whichever wording was drawn
                while True:
                    _, _, term, trunc, info = env.step(env.expert_reply())
                    if term or trunc:
                        break
                assert info["episode"]["success"] and info["episode"]["denied"] == 0, (g.template, obs)
        assert len(heard) == 3 and g.task.prompt in heard, g.template  # the original and both paraphrases
        assert reworded(g.template, g.params) not in heard


def test_varied_wording_leaves_the_original_envs_draws_alone():
    a, b = ToolworldAgentEnv(max_turns=4), ToolworldAgentEnv(max_turns=4, wording="varied")
    for seed in range(5):
        (_, ia), (_, ib) = a.reset(seed=seed), b.reset(seed=seed)
        assert ia["task"] == ib["task"]  # same task drawn: only the words may differ


def test_varied_wording_leaves_test_tasks_in_the_generators_words():
    from keel.envs.toolworld.generator import split_ids

    env = ToolworldAgentEnv(wording="varied", max_turns=4)
    for tid in split_ids("test")[:20] + split_ids("test-templates")[:4]:
        obs, _ = env.reset(seed=1, options={"task": tid})
        assert obs == generate()[tid].task.prompt
