"""The kinds of training job `keel train` knows, each a module with `Config`, `train` and `evaluate`.

A job module defines:
    Config              a `keel.config.JobConfig` subclass (pydantic, unknown fields refused)
    train(cfg, run)     trains, logging to `run` (a `keel.runs.Run`); returns a summary dict
    evaluate(run, **kw) evaluates the run's last checkpoint; returns a dict of numbers
Add a kind by adding one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from keel.errors import KeelError

JOBS: dict[str, str] = {
    "spec_rl": "keel.rl.spec_job",
    "llm_rl": "keel.rl.llm_job",
    "agent_sft": "keel.rl.agent_sft",
    "agent_rl": "keel.rl.agent_rl",
    "inftythink": "keel.rl.inftythink",
    "agent_empo2": "keel.rl.empo2_job",
    "distill_agentark": "keel.distill.agentark_job",
    "pa_moe": "keel.distill.pa_moe_job",
}


# Config kinds that another command runs, so `keel train` can point there instead.
OTHER_COMMANDS: dict[str, str] = {"redteam": "keel redteam run"}


def job_module(kind: str) -> ModuleType:
    if kind in OTHER_COMMANDS:
        raise KeelError(f"a `{kind}` config is not a training job; run it with `{OTHER_COMMANDS[kind]}`")
    if kind not in JOBS:
        raise KeelError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(JOBS))}")
    return importlib.import_module(JOBS[kind])


def check_job_config(module: ModuleType, cfg) -> None:
    """Run the job's optional `check(cfg)` before `keel train` creates runs/NAME: a job that can find
    config errors without training (a formula that does not parse, an unknown proposition or model)
    defines it, so that such errors leave no directory behind. (Errors that only training finds are
    cleaned up too: `Run.abandon`.)"""
    check = getattr(module, "check", None)  # optional, so that every job kind need not define it
    if check is not None:
        check(cfg)
