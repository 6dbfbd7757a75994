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
