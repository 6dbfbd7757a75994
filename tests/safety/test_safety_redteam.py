"""Campaigns: metrics, resumption (no episode lost or repeated), SQLite contents, the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from keel.cli import app
from keel.errors import KeelError
from keel.redteam.attacks import ATTACKS, FAMILIES, select
from keel.redteam.campaign import CampaignConfig, metrics, plan, run_campaign

SMALL = {"name": "t", "agents": ["follower", "refuser"], "suites": ["banking", "drive"],
         "only_tasks_with_vectors": True, "max_user_tasks_per_suite": 2,
         "attacks": ["important_instructions", "encoding_base64", "multilingual_jv", "direct"],
         "defences": ["none", "guard"]}


def test_attack_library_covers_the_families():
    assert set(FAMILIES) >= {"direct", "tool_injection", "jailbreak", "encoding", "multi_turn", "multilingual"}
    assert len([a for a in ATTACKS.values() if a.family == "multilingual"]) >= 8
    assert len(select(["family:encoding"])) == 4


def test_campaign_metrics_and_resume(tmp_path):
    cfg = CampaignConfig(**SMALL)
    cells = plan(cfg)
    one = run_campaign(cfg, tmp_path / "a", quiet=True)
    assert one["complete"] and one["episodes"] == len(cells)
    (tmp_path / "b").mkdir()
    part = run_campaign(cfg, tmp_path / "b", quiet=True, limit=7)
    assert not part["complete"] and part["episodes"] == 7
    rest = run_campaign(cfg, tmp_path / "b", quiet=True)
    assert rest["complete"] and rest["episodes"] == len(cells)
    strip = lambda m: json.dumps(m["table"], sort_keys=True)  # noqa: E731
    assert strip(one) == strip(rest)  # a resumed campaign gives the same numbers as an uninterrupted one
    t = {(e["agent"], e["defence"]): e for e in one["table"]}
    assert t[("follower", "none")]["targeted_asr"] > 0.9
    assert t[("follower", "guard")]["targeted_asr"] == 0.0
    assert t[("refuser", "none")]["targeted_asr"] == 0.0
    assert t[("follower", "guard")]["tasks_lost_to_guard"] == []
    assert t[("follower", "guard")]["benign_utility"] == 1.0
    con = sqlite3.connect(tmp_path / "b" / "campaign.sqlite")
    n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT agent||defence||user_task||injection_task||attack) "
                              "FROM results").fetchone()
    assert n == distinct == len(cells)
    assert (tmp_path / "a" / "audit.jsonl").stat().st_size > 0


def test_metrics_counts_lost_tasks():
    base = dict(suite="s", injection_task="", attack="", family="", lang="", kind="", attack_success=None,
                steps=1, false_positives=0, human_approvals=0, error=None)
    rows = [dict(base, agent="a", defence="none", user_task="u1", utility=1),
            dict(base, agent="a", defence="guard", user_task="u1", utility=0, false_positives=1),
            dict(base, agent="a", defence="none", user_task="u2", utility=0),
            dict(base, agent="a", defence="guard", user_task="u2", utility=0)]
    m = {(e["agent"], e["defence"]): e for e in metrics(rows)["table"]}
    assert m[("a", "guard")]["tasks_lost_to_guard"] == ["u1"]
    assert m[("a", "guard")]["guard_false_positive_rate"] == 0.5


def test_cli_run_json_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = dict(SMALL, agents=["follower"], suites=["travel"], attacks=["important_instructions"])
    Path("c.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["redteam", "run", "c.yaml", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["complete"] and out["follower/guard targeted_asr"] == 0.0
    assert Path("runs/t/campaign.sqlite").is_file() and Path("runs/t/report.html").is_file()
    res = runner.invoke(app, ["redteam", "attacks", "--json"])
    assert json.loads(res.output.strip().splitlines()[-1])["count"] == len(ATTACKS)
    res = runner.invoke(app, ["redteam", "policy", str(Path(__file__).parents[2] / "keel/guard/policies/toolworld.yaml"),
                              "--json"])
    assert json.loads(res.output.strip().splitlines()[-1])["ok"]


@pytest.mark.parametrize("cfg,needle", [
    ({"attacks": ["nope"]}, "unknown attack"),
    ({"defences": ["magic"]}, "unknown defence"),
    ({"agents": ["follower"], "colour": 1}, "unknown field"),
    ({"agents": [{"agent": "follower", "speed": 3}]}, "unknown key"),
])
def test_cli_bad_config_is_a_keel_error(tmp_path, cfg, needle):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**SMALL, **cfg, "runs_dir": str(tmp_path / "runs")}))
    res = CliRunner().invoke(app, ["redteam", "run", str(tmp_path / "c.yaml")])
    assert isinstance(res.exception, KeelError) and needle in str(res.exception)  # main() prints it, exit 2


def test_bad_policy_file_in_cli(tmp_path):
    (tmp_path / "p.yaml").write_text("version: 1\ntools:\n  send_money:\n    rate_limit: {max_calls: -1}\n")
    res = CliRunner().invoke(app, ["redteam", "policy", str(tmp_path / "p.yaml"), "--json"])
    assert isinstance(res.exception, KeelError) and "line 4" in str(res.exception)


@pytest.mark.slow
def test_cli_errors_through_the_real_entry_point(tmp_path):
    (tmp_path / "p.yaml").write_text("version: 1\ntools:\n  send_money:\n    rate_limit: {max_calls: -1}\n")
    keel = Path(sys.executable).parent / "keel"
    p = subprocess.run([str(keel), "redteam", "policy", str(tmp_path / "p.yaml"), "--json"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "line 4" in p.stderr and "Traceback" not in p.stderr
    assert "line 4" in json.loads(p.stdout.strip().splitlines()[-1])["error"]


def test_card_lost_tasks_unmeasured_reads_dash():
    from keel.report.safety import _lost

    base = dict(suite="s", injection_task="", attack="", family="", lang="", kind="", attack_success=None,
                steps=1, false_positives=0, human_approvals=0, error=None)
    attacked = dict(base, attack="x", family="f", injection_task="i", attack_success=0)
    rows = [dict(base, agent="a", defence="none", user_task="u1", utility=1),
            dict(attacked, agent="a", defence="guard", user_task="u1", utility=0),  # guarded: attacks only
            dict(base, agent="b", defence="none", user_task="u1", utility=1),
            dict(base, agent="b", defence="guard", user_task="u1", utility=1)]
    t = {(e["agent"], e["defence"]): e for e in metrics(rows)["table"]}
    assert _lost(t[("a", "guard")]) == "-"  # no benign episode with the guard: not measured, not "0"
    assert _lost(t[("b", "guard")]) == "0"
    assert _lost(t[("b", "none")]) == "-"
