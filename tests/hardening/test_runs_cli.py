"""`keel train|eval|report`: run names stay under runs/, bad configs leave no directory, damaged run
files (run.json, checkpoints, metrics, summary, campaign.sqlite) are one-line errors, never tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hardening.conftest import refused

KEEL = str(Path(sys.executable).parent / "keel")


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    """The real entry point (keel.cli.main): how errors are printed matters here."""
    return subprocess.run([KEEL, *args], capture_output=True, text=True, cwd=cwd, timeout=180)


@pytest.mark.parametrize("name", ["../x", "/tmp/keel-abs-run", "a/../../x", "", ".", "..", "a/b", "x\x00y"])
def test_run_names_stay_under_runs(keel, tmp_path, name):
    out = keel("train", "quickstart", "--name", name, "--set", "total_steps=1")
    refused(out, "name")
    assert not (tmp_path.parent / "x").exists()
    assert not Path("/tmp/keel-abs-run").exists()


def test_run_name_is_checked_by_run_create(tmp_path):
    from keel.errors import KeelError
    from keel.runs import Run

    with pytest.raises(KeelError, match="name"):
        Run.create(tmp_path / "runs", "../escape", {"kind": "x"})
    assert not (tmp_path / "escape").exists()


def test_redteam_config_name_cannot_escape(keel, tmp_path):
    (tmp_path / "c.yaml").write_text("kind: redteam\nname: ../x\nagents: [follower]\n")
    refused(keel("redteam", "run", "c.yaml"), "name")
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("override, word", [
    ("formula=F(goal_a &", "formula"),
    ("formula=F nosuchprop", "nosuchprop"),
])
def test_bad_formula_leaves_no_run_directory(keel, tmp_path, override, word):
    out = keel("train", "quickstart", "--name", "r1", "--set", override, "--set", "total_steps=1")
    refused(out, word)
    assert not (tmp_path / "runs" / "r1").exists()


@pytest.mark.parametrize("body, word", [
    ("agents: [nosuchagent]\n", "nosuchagent"),
    ("agents: [follower]\nattacks: [nosuchattack]\n", "nosuchattack"),
    ("agents: [follower]\ndefences: [nosuchdefence]\n", "nosuchdefence"),
    ("agents: ['llm:/no/such/model/dir']\n", "/no/such/model/dir"),
])
def test_bad_campaign_leaves_no_run_directory(keel, tmp_path, body, word):
    (tmp_path / "c.yaml").write_text("kind: redteam\nname: rt\n" + body)
    refused(keel("redteam", "run", "c.yaml"), word)
    assert not (tmp_path / "runs" / "rt").exists()


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_redteam_limit_must_be_positive(keel, tmp_path, limit):
    (tmp_path / "c.yaml").write_text("kind: redteam\nname: rt\nagents: [follower]\n")
    refused(keel("redteam", "run", "c.yaml", "--limit", limit), "--limit")
    assert not (tmp_path / "runs" / "rt").exists()


def test_markup_in_user_text_is_printed_verbatim(tmp_path):
    p = _cli("train", "[/x]", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "[/x]" in p.stderr
    p = _cli("train", "quickstart", "--set", "formula=F [bold]", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "[bold]" in p.stderr


def test_usage_error_under_json_prints_a_json_line(tmp_path):
    p = _cli("train", "--json", "--no-such-option", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "error" in json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def _trained(tmp_path_factory) -> Path:
    """One tiny real spec_rl run (a few seconds), copied by each test that damages it."""
    from typer.testing import CliRunner

    from keel.cli import app

    root = tmp_path_factory.mktemp("trained")
    res = CliRunner().invoke(app, ["train", "quickstart", "--name", "r", "--json", "--set", f"runs_dir={root}",
                                   *[f"--set={x}" for x in TINY]])
    assert res.exit_code == 0, res.output
    return root / "r"


TINY = ["total_steps=2000", "log_every=1000", "checkpoint_every=1000", "eval_episodes=5", "num_envs=4"]


@pytest.fixture
def fake_run(_trained, tmp_path) -> Path:
    """A copy of the tiny run at tmp_path/runs/r, with its config pointing there."""
    from keel.config import load_yaml

    path = tmp_path / "runs" / "r"
    shutil.copytree(_trained, path)
    cfg = load_yaml((path / "config.yaml").read_text(), "config")
    cfg["runs_dir"] = str(tmp_path / "runs")
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    info = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps({**info, "status": "running"}))
    return path


def test_corrupt_run_json_during_resume_discovery(keel, tmp_path, fake_run):
    path = fake_run
    (path / "run.json").write_bytes(b'{"status": "runn')
    out = keel("train", "quickstart", "--resume")
    assert not out.traceback, repr(out.exception)
    (path / "run.json").write_bytes(b"\xff\xfe\x00")
    out = keel("train", "quickstart", "--resume")
    assert not out.traceback, repr(out.exception)


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04trunc", b"\x80\x02garbage"])
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_damaged_checkpoint_is_a_clear_error(keel, tmp_path, damage, command, fake_run):
    path = fake_run
    ckpt = sorted((path / "checkpoints").glob("*.pt"))[-1]
    ckpt.write_bytes(damage)
    if command == "eval":
        out = keel("eval", str(path))
    else:
        out = keel("train", "quickstart", "--name", "r", "--resume", "--set", f"runs_dir={tmp_path / 'runs'}",
                   *[f"--set={x}" for x in TINY])
    refused(out, ckpt.name)


@pytest.mark.parametrize("args, word", [
    (["--episodes", "1000000000000"], "episodes"),
    (["--episodes", "0"], "episodes"),
    (["--split", "bogus"], "split"),
])
def test_eval_options_are_validated(keel, tmp_path, args, word, fake_run):
    path = fake_run
    refused(keel("eval", str(path), *args), word)


def test_report_with_damaged_metrics_and_summary(keel, tmp_path, fake_run):
    path = fake_run
    (path / "metrics.jsonl").write_text('{"time": 1}\n{"step": 5}\n{"step": "x", "a": [1]}\n{"nostep": 1, "a": 2}\n')
    (path / "summary.json").write_text('{"satisfaction": 0.')
    out = keel("report", str(path))
    assert not out.traceback, repr(out.exception)
    if out.code != 0:
        refused(out, "summary.json")
    (path / "summary.json").write_bytes(b"\xff\xfe")
    (path / "metrics.jsonl").write_bytes(b"\xff\xfe\n")
    out = keel("report", str(path))
    assert not out.traceback, repr(out.exception)


def test_report_of_a_damaged_config(keel, tmp_path, fake_run):
    path = fake_run
    (path / "config.yaml").write_text("kind: [unclosed\n")
    refused(keel("report", str(path)), "config.yaml")
    (path / "config.yaml").write_bytes(b"\x00\xff binary")
    refused(keel("eval", str(path)), "config.yaml")


@pytest.mark.parametrize("content", [b"not a database at all, just text" * 100, b"", b"SQLite format 3\x00" + b"\x00" * 50])
def test_safety_card_of_a_corrupt_campaign(keel, tmp_path, content):
    from keel.runs import Run

    run = Run.create(tmp_path / "runs", "rt", {"kind": "redteam"}, "c.yaml")
    (run.path / "campaign.sqlite").write_bytes(content)
    refused(keel("report", "safety", str(run.path)), "campaign")


def test_output_paths_that_are_folders(keel, tmp_path):
    (tmp_path / "outdir").mkdir()
    refused(keel("spec", "dot", "F a", "--out", "outdir"), "outdir")
    (tmp_path / "afile").write_text("x")
    refused(keel("spec", "dot", "F a", "--out", "afile/sub.dot"), "afile")


def test_start_up_error_inside_a_job_leaves_no_run_directory(keel, tmp_path):
    """A job kind without a check hook (llm_rl) finds a bad model only once training starts: Run.abandon
    removes the directory it had just made."""
    out = keel("train", "llm-tiny", "--name", "m", "--set", "model=/no/such/model/dir")
    refused(out, "/no/such/model/dir")
    assert not (tmp_path / "runs" / "m").exists()
