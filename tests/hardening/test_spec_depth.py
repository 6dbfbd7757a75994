"""Formulas and SPECTRL tasks nested deeper than Python's stack allows are one-line errors."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import refused


@pytest.mark.parametrize("formula", [
    "X(" * 300 + "a" + ")" * 300,
    "(" * 5000 + "a" + ")" * 5000,
    "!" * 5000 + "a",
    " & ".join(["a"] * 3000),
    " U ".join(["a"] * 3000),
    " -> ".join(["a"] * 3000),
])
def test_deep_formulas(keel, formula):
    refused(keel("spec", "dot", formula), "nested")


def test_moderate_nesting_still_works(keel):
    out = keel("spec", "dot", "X(" * 60 + "a" + ")" * 60)
    assert out.code == 0, out.exception
    out = keel("spec", "dot", " & ".join(f"p{i}" for i in range(8)))
    assert out.code == 0, out.exception


@pytest.mark.parametrize("task", [
    "; ".join(["achieve a"] * 1000),
    " or ".join(["achieve a"] * 1000),
    "achieve " + "!" * 5000 + "a",
    "(" * 3000 + "achieve a" + ")" * 3000,
])
def test_deep_spectrl_tasks(keel, task):
    refused(keel("spec", "graph", task), "nested")


def test_deep_formula_in_a_training_config(keel, tmp_path):
    out = keel("train", "quickstart", "--name", "d", "--set", "formula=" + "X(" * 300 + "goal_a" + ")" * 300)
    refused(out, "nested")
    assert not (tmp_path / "runs" / "d").exists()
