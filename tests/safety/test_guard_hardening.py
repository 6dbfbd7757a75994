"""Hostile policy files (issue 17): each is refused with one clear PolicyError naming the file (and line)
instead of hanging, exhausting memory or printing a traceback. The inputs are module constants so that
benchmarks/robustness.py can replay them."""

from __future__ import annotations

import re

import pytest

from keel.guard import DENY, Guard, PolicyError, load_policy, parse_policy

# A "billion laughs" alias bomb: 9**9 strings once expanded.
ALIAS_BOMB = "".join(
    f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9 if p else ['"x"'] * 9) + "]\n"
    for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi", strict=True))
# A catastrophic-backtracking pattern and the argument that triggers it in a backtracking engine.
CATASTROPHIC_POLICY = "tools:\n  t:\n    args: {x: {pattern: '(a+)+$'}}\n"
CATASTROPHIC_ARG = "a" * 50_000 + "b"
DEEP_BRACKETS = "tools: " + "[" * 5000 + "]" * 5000 + "\n"
BAD_TEMPORAL = "version: 1\npropositions:\n  a: {tool: t}\ntemporal:\n  - name: r\n    formula: 'G(a -> '\n"
NOT_UTF8 = b"version: 1\nname: \xff\xfe\n"


def test_alias_bomb_is_refused():
    with pytest.raises(PolicyError, match=r"p\.yaml, line \d+: YAML aliases expand to more than"):
        parse_policy(ALIAS_BOMB, "p.yaml")


def test_catastrophic_pattern_runs_in_linear_time():
    g = Guard(parse_policy(CATASTROPHIC_POLICY))
    assert not isinstance(g.rules["t"].schemas["x"][1], re.Pattern)  # RE2, not Python's backtracking re
    d = g.check("t", {"x": CATASTROPHIC_ARG})
    assert d.action == DENY and "does not match" in d.reason


def test_pattern_re2_cannot_run_is_refused_at_load():
    with pytest.raises(PolicyError, match="RE2"):
        parse_policy("tools:\n  t:\n    args: {x: {pattern: '(a)\\1'}}\n", "p.yaml")


def test_deep_nesting_is_a_clear_error():
    with pytest.raises(PolicyError, match=r"p\.yaml.*(nest|depth)"):
        parse_policy(DEEP_BRACKETS, "p.yaml")


def test_temporal_rule_error_names_file_and_line(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(BAD_TEMPORAL)
    with pytest.raises(PolicyError, match=rf"{re.escape(str(f))}, line 6: temporal rule 'r'"):
        Guard(load_policy(f))


def test_binary_policy_file_is_a_clear_error(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_bytes(NOT_UTF8)
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(f)
