"""Shared helpers for the hardening tests: run a `keel` command in-process and classify how it ended."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the test modules import `refused` from here as tests.hardening.conftest: make the repository importable
# under plain `pytest` too (python -m pytest adds the working directory itself)
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from typer.testing import CliRunner

from keel.errors import KeelError


class Outcome:
    """How one CLI invocation ended: exit code, output, and the exception that escaped (if any)."""

    def __init__(self, result):
        self.code = result.exit_code
        self.output = result.output
        self.exception = result.exception

    @property
    def traceback(self) -> bool:
        """An exception other than a KeelError or a normal exit: the user would see a traceback."""
        return self.exception is not None and not isinstance(self.exception, (KeelError, SystemExit))

    @property
    def clear_error(self) -> bool:
        return isinstance(self.exception, KeelError) or (self.code == 2 and not self.traceback)

    @property
    def message(self) -> str:
        return str(self.exception) if isinstance(self.exception, KeelError) else self.output


@pytest.fixture
def keel(monkeypatch, tmp_path):
    """keel(*args) -> Outcome, run in tmp_path (so runs/ and memory files land there)."""
    from keel.cli import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> Outcome:
        return Outcome(runner.invoke(app, list(args)))

    return run


def refused(out: Outcome, *words: str) -> None:
    """The command stopped with a clear error (no traceback) whose message mentions every word."""
    assert not out.traceback, f"traceback: {out.exception!r}"
    assert out.clear_error, f"not refused (exit {out.code}): {out.output[-500:]}"
    for w in words:
        assert w.lower() in out.message.lower(), f"{w!r} not in {out.message!r}"
