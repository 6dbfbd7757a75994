"""The distill_agentark job through the CLI on the tiny model: train (debate, DA SFT, PRM, PAD), eval,
resume from the SFT checkpoint, and a bad config refused with a one-line error."""

import json

import torch
from typer.testing import CliRunner

from keel.cli import app
from keel.runs import Run


def test_distill_tiny_trains_evaluates_and_resumes(tmp_path):
    threads = torch.get_num_threads()  # the preset sets 1; give the rest of the suite its own back
    try:
        runner = CliRunner()
        res = runner.invoke(app, ["train", "distill-tiny", "--name", "d1", "--json", "--set", f"runs_dir={tmp_path}"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output.strip().splitlines()[-1])
        assert out["strategy"] == "pad" and 0.0 <= out["test_accuracy"] <= 1.0
        assert out["tokens_per_problem"] <= 2 * out["base_tokens_per_problem"]
        run = Run(tmp_path / "d1")
        steps = [r["step"] for r in run.metrics()]
        assert steps == [1, 2, 3]  # SFT, one PAD step, final evaluation
        debate = json.loads((run.path / "debate.json").read_text())
        assert len(debate) == 6 and all(len(t["steps"]) == 4 for t in debate)
        assert run.load_checkpoint()[1] == 2
        res = runner.invoke(app, ["eval", str(run.path), "--split", "test", "--json"])
        assert res.exit_code == 0, res.output
        ev = json.loads(res.output.strip().splitlines()[-1])
        assert {"base_accuracy", "student_accuracy", "improvement"} <= set(ev)
        # resume from the SFT stage: PAD runs again, the metrics log does not repeat the SFT step
        for f in sorted(run.checkpoints.glob("step_*.pt"))[1:]:
            f.unlink()
        res = runner.invoke(app, ["train", "distill-tiny", "--name", "d1", "--resume", "--json", "--set",
                                  f"runs_dir={tmp_path}"])
        assert res.exit_code == 0, res.output
        assert [r["step"] for r in Run(tmp_path / "d1").metrics()] == [1, 2, 3]
    finally:
        torch.set_num_threads(threads)


def test_distill_bad_strategy_is_one_line_error(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    res = subprocess.run([str(Path(sys.executable).parent / "keel"), "train", "distill-tiny", "--name", "d2", "--set",
                          f"runs_dir={tmp_path}", "--set", "strategy=vote"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr
    assert "strategy" in res.stderr + res.stdout and "Traceback" not in res.stderr
