"""`keel games ...` through the real entry point."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from keel.cli import app


def test_solve_json_last_line():
    res = CliRunner().invoke(
        app, ["games", "solve", "kuhn_poker", "--algo", "dcfr", "--iters", "50", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["algo"] == "dcfr" and out["iterations"] == 50 and out["infosets"] == 12
    assert out["curve"][-1]["iteration"] == 50 and out["exploitability"] < 0.01


def test_psro_json_last_line():
    res = CliRunner().invoke(app, ["games", "psro", "kuhn_poker", "--meta", "nash", "--iters", "4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["meta"] == "nash" and len(out["curve"]) == 4


def test_errors_are_one_line_with_exit_code_2():
    cmd = [sys.executable, "-m", "keel.cli"]
    code = "from keel.cli import main; main()"
    for args, needle in [
        (["games", "solve", "kuhn_pokr", "--json"], "Did you mean: kuhn_poker"),
        (["games", "solve", "kuhn_poker", "--algo", "cfr3"], "valid: cfr, cfr_plus"),
        (["games", "psro", "kuhn_poker", "--meta", "x"], "valid: uniform, nash"),
    ]:
        p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (cmd, p.stderr)
        assert needle in p.stderr and "Traceback" not in p.stderr
