"""benchmarks/research.py's finding rules on hand-made runs: the collapse count and each goal can fail."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("research_bench", ROOT / "benchmarks" / "research.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_collapse_count(bench):
    assert bench.collapses([0.2, 0.5, 0.2, 0.6, 0.29, 0.31]) == 2  # 0.2 < 0.25 and 0.29 < 0.3
    assert bench.collapses([0.05, 0.0, 0.04]) == 0  # never reached 0.1: nothing to collapse from
    assert bench.collapses([0.4, 0.3, 0.35]) == 0


def _run(rewards, answered, em, searches):
    curve = [{"reward": r, "answered": a, "searches": searches} for r, a in zip(rewards, answered, strict=True)]
    ev = {h: {"em": em, "f1": em, "answered": answered[-1], "searches": searches} for h in ("1", "2", "3", "4", "all")}
    return {"0": {"curve": curve, "eval": ev}}


def test_findings_goals_follow_the_numbers(bench):
    state = {"runs": {
        "fast-em-reinforce": _run([0.3, 0.32, 0.31], [1, 1, 1], 0.4, 2.0),
        "slow-em-reinforce": _run([0.3, 0.1, 0.4], [1, 0.6, 1], 0.2, 3.0),
        "fast-f1-reinforce": _run([0.3, 0.2, 0.1], [0.9, 0.6, 0.3], 0.1, 2.0),
        "fast-f1pen-reinforce": _run([0.3, 0.3, 0.35], [0.9, 0.95, 1.0], 0.45, 2.0),
        "fast-em-ppo": _run([0.3, 0.3, 0.3], [1, 1, 1], 0.3, 3.0),
        "fast-em-grpo": _run([0.5, 0.0, 0.5], [1, 1, 1], 0.3, 2.0),
    }, "warm_start": {"base_prompted": {"fast": {h: {"em": 0.0} for h in "1234"}},
                      "retrieve_then_answer": {h: {"em": 0.1} for h in "1234"}}}
    st, goals = bench.findings(state)
    assert [g["met"] for g in goals] == [True, True, True, True, True]
    assert st["slow-em-reinforce"]["collapses"] == 1
    # flip the template finding: the fast curve now swings and the goal must fail
    state["runs"]["fast-em-reinforce"] = _run([0.6, 0.0, 0.6], [1, 1, 1], 0.4, 2.0)
    _, goals = bench.findings(state)
    assert goals[0]["met"] is False
    # F1 that keeps answering: no answer avoidance, finding 2 not reproduced
    state["runs"]["fast-f1-reinforce"] = _run([0.3, 0.3, 0.3], [0.9, 0.95, 1.0], 0.4, 2.0)
    _, goals = bench.findings(state)
    assert goals[1]["met"] is False
