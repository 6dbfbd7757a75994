"""Text tasks: disjoint seeded splits and verifiers."""

import random

import pytest

from keel.envs.text import TASKS, make_task
from keel.envs.text.countdown import evaluate
from keel.errors import KeelError


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_are_disjoint_and_seeded(name):
    task = make_task(name)
    train = task.problems("train", 60, seed=0)
    test = task.problems("test", 15, seed=0)
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert all(task.split_of(p) == "test" for p in test)
    assert [p.prompt for p in task.problems("test", 15, seed=0)] == [p.prompt for p in test]
    assert [p.prompt for p in task.problems("train", 15, seed=1)] != [p.prompt for p in train[:15]]


def test_arithmetic_scoring():
    task = make_task("arithmetic", digits=2)
    p = task.problems("test", 1)[0]
    ans = int(p.answer)
    assert task.score(p, str(ans)).correct and task.score(p, str(ans)).format == 1.0
    s = task.score(p, f"{p.meta['a']} + {p.meta['b']} = {ans}")
    assert s.correct and s.format == 0.0
    wrong = task.score(p, str(ans + 10))
    assert not wrong.correct and 0 < wrong.partial < 1
    assert task.score(p, "no idea").reward("partial") == 0.0
    with pytest.raises(KeelError):
        make_task("arithmetic", ops="^")


def test_countdown_verifier():
    task = make_task("countdown")
    p = task.problems("train", 1, seed=3)[0]
    a, b, c = p.meta["numbers"]
    rng = random.Random(0)
    assert evaluate("(2 + 3) * 4")[0] == 20
    assert evaluate("__import__('os')") is None
    # brute force a correct expression and check the verifier accepts it
    exprs = [f"{a} + {b} + {c}", f"{a} * {b} - {c}", f"{a} + {b} * {c}", f"({a} + {b}) * {c}", f"{a} * {b} + {c}"]
    good = [e for e in exprs if evaluate(e)[0] == int(p.answer)]
    assert good and task.score(p, rng.choice(good)).correct
    if p.answer not in map(str, p.meta["numbers"]):
        assert not task.score(p, p.answer).correct  # the bare target is not made of the given numbers
    assert not task.score(p, f"{a} + {a} + {a} + {a}").correct  # a reused number is refused


def test_instruct_format_checks():
    task = make_task("instruct")
    p = task.problems("train", 1, seed=0)[0]
    s = task.score(p, "")
    assert not s.correct
    from keel.envs.text.instruct import CHECKS

    assert CHECKS["max_words"]("one two three", "5") and not CHECKS["max_words"]("a b c d e f", "5")
    assert CHECKS["end_with"]("it is blue.", "blue") and CHECKS["bullets"]("- a\n- b", "2")
    assert CHECKS["lowercase"]("all small", "") and not CHECKS["uppercase"]("Mixed", "")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_text_env_passes_gymnasium_checker(name):
    from gymnasium.utils.env_checker import check_env

    from keel.envs.text import TextTaskEnv

    env = TextTaskEnv(make_task(name), pool=20)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs == env.problem.prompt
    _, reward, terminated, _, step_info = env.step(info["answer"] or "x")
    assert terminated and reward in (0.0, 1.0)
    assert step_info["correct"] == (reward == 1.0)
