"""`keel spec check|dot|graph`, with --json and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from keel.cli import app
from keel.spec import SpecError

runner = CliRunner()


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_check_json():
    r = runner.invoke(app, ["spec", "check", "F(goal_a & F goal_b) & G !hazard", "--json"])
    assert r.exit_code == 0, r.output
    out = last_json(r.output)
    assert out["states"] == 4 and out["initial"] == 0 and out["accepting"] == [2] and out["dead"] == [3]
    assert out["satisfiable"] is True and out["valid"] is False
    assert out["shortest_accepting_trace"] == [["goal_a", "goal_b"]]
    guards = {(t["from"], t["to"]): t["guard"] for t in out["transitions"]}
    assert guards[(0, 3)] == "hazard"


def test_check_unsatisfiable_and_valid():
    out = last_json(runner.invoke(app, ["spec", "check", "G a & F !a", "--json"]).output)
    assert out["satisfiable"] is False and out["shortest_accepting_trace"] is None
    out = last_json(runner.invoke(app, ["spec", "check", "F a | G !a", "--json"]).output)
    assert out["valid"] is True


def test_check_table_output():
    r = runner.invoke(app, ["spec", "check", "a U b"])
    assert r.exit_code == 0 and "transitions" in r.output and "{b}" in r.output


def test_dot_and_graph(tmp_path: Path):
    r = runner.invoke(app, ["spec", "dot", "a U b", "--out", str(tmp_path / "a.dot"), "--json"])
    assert r.exit_code == 0 and (tmp_path / "a.dot").read_text().startswith("digraph DFA")
    r = runner.invoke(app, ["spec", "graph", "achieve a; achieve b ensuring !h", "--predicates", "a,b,h", "--json"])
    out = last_json(r.output)
    assert [(e["source"], e["target"], e["safe"]) for e in out["edges"]] == [(0, 1, "true"), (1, 2, "!h")]


def test_bad_input_is_one_clear_error_with_exit_2():
    exe = Path(sys.executable).parent / "keel"
    p = subprocess.run([str(exe), "spec", "check", "G(a ->)", "--json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p
    assert "Traceback" not in p.stderr and "error:" in p.stderr
    assert "expected a proposition" in last_json(p.stdout)["error"]
    for args, message in (
        (["check", "F lava", "--props", "goal,hazard"], "defines: goal, hazard"),
        (["graph", "achieve"], "column 8"),
        (["dot", "a U"], "column 4"),
    ):
        r = runner.invoke(app, ["spec", *args])
        assert isinstance(r.exception, SpecError) and message in str(r.exception)
