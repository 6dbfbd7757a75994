"""The safety card: written from a campaign, every AI Agent Index field filled or 'not measured', rendered by
headless Chromium into a non-trivial screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from keel.cli import app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("card")
    cfg = {"name": "card", "runs_dir": str(d / "runs"), "agents": ["follower"], "suites": "all",
           "only_tasks_with_vectors": True, "max_user_tasks_per_suite": 1, "max_injection_tasks_per_suite": 1,
           "attacks": ["important_instructions", "multilingual_bn"],
           "defences": ["none", "guard"]}
    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["redteam", "run", str(d / "c.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    return d / "runs" / "card"


def test_card_fields(run_dir):
    res = CliRunner().invoke(app, ["report", "safety", str(run_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    md = Path(out["markdown"]).read_text()
    for section in ("Formal policy in force", "Evaluations run", "Guardrails and sandboxing", "Autonomy level",
                    "Human oversight and stop controls", "Monitoring", "Top successful attacks", "AI Agent Index"):
        assert f"## {section}" in md
    assert "G(large_transfer -> approved)" in md  # the temporal rules in force
    index = md.split("## AI Agent Index fields")[1].split("##")[0]
    rows = [r for r in index.splitlines() if r.startswith("| ") and not r.startswith("| category")]
    assert len(rows) == out["fields"] >= 20
    assert all(r.rstrip(" |").split("|")[-1].strip() for r in rows)  # every field has a value
    assert out["not_measured"] == sum(r.split("|")[3].strip() == "not measured" for r in rows)
    assert "| follower | guard | 0.0%" in md


def test_card_refuses_a_non_redteam_run(tmp_path):
    from keel.errors import KeelError
    from keel.report.safety import write_safety_card

    (tmp_path / "config.yaml").write_text("kind: spec_rl\n")
    with pytest.raises(KeelError, match="campaign.sqlite"):
        write_safety_card(str(tmp_path))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install -y chromium)")
def test_card_screenshot_in_headless_chromium(run_dir, tmp_path):
    from keel.report.safety import write_safety_card

    html = Path(write_safety_card(str(run_dir))["html"])
    png = tmp_path / "card.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1200,2000",
                    f"file://{html}"], capture_output=True, timeout=180)
    assert png.is_file() and png.stat().st_size > 20_000
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] == 2000 and img.shape[1] == 1200
    assert img[..., :3].std() > 0.05  # not a blank page: text and tables rendered
    dark = (img[..., :3].mean(axis=-1) < 0.5).mean()
    assert 0.005 < dark < 0.5
