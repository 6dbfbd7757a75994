"""`keel redteam ...`: run red-team campaigns, list the attack library, check guard policies."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cliutil import JSON_HELP, emit
from keel.errors import KeelError

app = typer.Typer(help="Red-team agents: attack campaigns on toolworld, guard policies, attack library.",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("run")
def run(
    config: Annotated[str, typer.Argument(help="Campaign YAML file (or preset name, e.g. redteam-quick)")],
    name: Annotated[str | None, typer.Option(help="Run name under runs_dir (default: the config's name)")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted campaign of the same config")] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many new episodes (resume later)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a campaign: agents x defences x tasks x attacks; results in RUN/campaign.sqlite."""
    from keel.redteam.campaign import check_campaign, load_config, run_campaign
    from keel.report.html import table, write_report
    from keel.runs import Run, check_run_name

    if limit is not None and limit < 1:
        raise KeelError(f"--limit must be at least 1 (new episodes to run before stopping), got {limit}")
    cfg = load_config(config)
    run_name = check_run_name(name or cfg.name)
    check_campaign(cfg)  # suites, attacks, defences, agents, policy: all before the run directory exists
    r = Run.create_or_resume(cfg.runs_dir, run_name, cfg.model_dump(mode="json"), config, resume)
    try:
        result = run_campaign(cfg, r.path, quiet=as_json, limit=limit)
    except KeyboardInterrupt:
        raise KeelError(f"stopped; continue with: keel redteam run {config} --name {run_name} --resume") from None
    r.write_summary(result)
    r.set_status("finished" if result["complete"] else "partial")
    rows = [{k: v for k, v in e.items() if not k.startswith("per_")} for e in result["table"]]
    write_report(r, [(f"{e['agent']} / {e['defence']}", table(e)) for e in rows])
    short = {"run": str(r.path), "episodes": result["episodes"], "complete": result["complete"]}
    for e in result["table"]:
        tag = f"{e['agent']}/{e['defence']}"
        short[f"{tag} benign_utility"] = e["benign_utility"]
        short[f"{tag} utility_under_attack"] = e["utility_under_attack"]
        short[f"{tag} targeted_asr"] = e["targeted_asr"]
    emit({**short, "table": result["table"]} if as_json else short, as_json, title="red-team campaign")


@app.command("attacks")
def attacks(as_json: JsonOpt = False) -> None:
    """List the attack library (name, family, channel, language)."""
    from keel.redteam.attacks import ATTACKS

    rows = {a.name: f"{a.family} / {a.channel} / {a.lang}" for a in ATTACKS.values()}
    emit({"count": len(rows), **rows} if not as_json else {"count": len(rows), "attacks": [
        {"name": a.name, "family": a.family, "channel": a.channel, "lang": a.lang} for a in ATTACKS.values()]},
        as_json, title="attacks")


@app.command("policy")
def policy(
    path: Annotated[str, typer.Argument(help="A guard policy YAML file")],
    as_json: JsonOpt = False,
) -> None:
    """Check a guard policy file: schema, line of any error, temporal rules compiled."""
    from keel.guard import Guard, load_policy

    p = load_policy(path)
    g = Guard(p)
    emit({"policy": p.name, "tools": len(p.tools), "temporal_rules": len(g.temporal),
          "automaton_states": [dfa.num_states for _, dfa in g.temporal], "ok": True}, as_json, title="policy")


from keel.redteam.agentdojo.cli import agentdojo as _agentdojo  # noqa: E402 (AgentDojo's suites, issue 14)

app.command("agentdojo")(_agentdojo)
