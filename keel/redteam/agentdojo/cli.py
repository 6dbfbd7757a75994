"""`keel redteam agentdojo`: Keel's guard on AgentDojo's suites, judged by AgentDojo; results in
RUN/campaign.sqlite (resumable), AgentDojo's transcripts in RUN/traces/."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cliutil import JSON_HELP, emit
from keel.errors import KeelError


def agentdojo(
    suite: Annotated[str, typer.Option(help="workspace | travel | banking | slack | all")] = "all",
    attack: Annotated[list[str] | None, typer.Option(
        help="AgentDojo attack (repeatable), e.g. important_instructions, tool_knowledge, ignore_previous, "
             "injecagent; 'all' = those four")] = None,
    agent: Annotated[str, typer.Option(help="obedient | ground-truth | openai (with --endpoint, --model) | local (--model "
                                             "smollm2 | tiny | a model folder)")] = "obedient",
    endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for --agent openai")] = None,
    model: Annotated[str | None, typer.Option(help="model name at --endpoint")] = None,
    defence: Annotated[list[str] | None, typer.Option(help="none | guard (repeatable; default both)")] = None,
    approver: Annotated[str, typer.Option(help="who answers the guard's asks: deny (refuse all) | human "
                                               "(simulated, knows only the user's request)")] = "deny",
    policy_dir: Annotated[str | None, typer.Option(help="folder of SUITE.yaml policies (default: built-in)")] = None,
    user_tasks: Annotated[int | None, typer.Option(help="at most this many user tasks per suite")] = None,
    injection_tasks: Annotated[int | None, typer.Option(help="at most this many injection tasks per suite")] = None,
    version: Annotated[str, typer.Option(help="AgentDojo benchmark version")] = "v1.2",
    name: Annotated[str, typer.Option(help="run name under runs/")] = "agentdojo",
    runs_dir: Annotated[str, typer.Option(help="runs folder")] = "runs",
    resume: Annotated[bool, typer.Option(help="continue the run of the same config")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after this many new episodes (resume later)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run AgentDojo's suites with Keel's guard before AgentDojo's tool executor."""
    from keel.config import validate
    from keel.redteam.agentdojo.run import AgentDojoConfig, run_agentdojo, validate_config
    from keel.runs import Run, check_run_name

    if limit is not None and limit < 1:
        raise KeelError(f"--limit must be at least 1, got {limit}")
    check_run_name(name)  # the one run-name rule, before anything is loaded
    cfg = validate(AgentDojoConfig, {
        "name": name, "runs_dir": runs_dir, "version": version, "suites": suite,
        "attacks": ["all"] if attack == ["all"] else attack or ["important_instructions"], "agent": agent,
        "endpoint": endpoint, "model": model, "defences": defence or ["none", "guard"], "approver": approver,
        "policy_dir": policy_dir, "max_user_tasks": user_tasks, "max_injection_tasks": injection_tasks},
        "keel redteam agentdojo")
    if cfg.attacks == ["all"]:
        cfg = cfg.model_copy(update={"attacks": "all"})
    validate_config(cfg)  # every name checked before a run directory exists
    r = Run.create_or_resume(runs_dir, name, cfg.model_dump(mode="json"), "keel redteam agentdojo", resume)
    path = r.path
    try:
        out = run_agentdojo(cfg, r.path, quiet=as_json, limit=limit)
    except KeyboardInterrupt:
        raise KeelError(f"stopped; continue with the same command and --resume (run {path})") from None
    r.write_summary(out)
    r.set_status("finished" if out["complete"] else "partial")
    short = {"run": str(r.path), "episodes": out["episodes"], "complete": out["complete"],
             "approver": approver}
    for e in out["table"]:
        tag = f"{e['suite']} {e['defence']}"
        short[f"{tag} utility"] = e["utility"]
        short[f"{tag} attack_success"] = e["attack_success"]
    emit({**short, "table": out["table"], "tasks_lost_to_guard": out["tasks_lost_to_guard"]} if as_json else short,
         as_json, title="AgentDojo")
