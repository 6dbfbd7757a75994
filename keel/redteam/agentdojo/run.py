"""A resumable AgentDojo campaign: agent x defence x suite x (user task x (no attack | attack x injection
task)), each episode run by AgentDojo's own benchmark functions (`run_task_without_injection_tasks`,
`run_task_with_injection_tasks`) so that AgentDojo's utility and security judges decide, each result
committed to the campaign SQLite store (`keel.redteam.campaign.ResultsDB`) in its own transaction.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from keel.config import KeelModel

PREFIX = "agentdojo/"  # suite names in the store, apart from toolworld's suites of the same names


class AgentDojoConfig(KeelModel):
    kind: Literal["agentdojo"] = "agentdojo"
    name: str = "agentdojo"
    runs_dir: str = "runs"
    version: str = "v1.2"
    suites: list[str] | str = "all"
    attacks: list[str] | str = Field(default_factory=lambda: ["important_instructions"])
    agent: str = "obedient"  # ground-truth | obedient | openai | local
    endpoint: str | None = None
    model: str | None = None
    defences: list[Literal["none", "guard"]] = Field(default_factory=lambda: ["none", "guard"], min_length=1)
    approver: Literal["deny", "human"] = "deny"
    policy_dir: str | None = None  # a folder of SUITE.yaml policies; default: Keel's built-in ones
    max_user_tasks: int | None = Field(None, gt=0)  # per suite, in AgentDojo's order
    max_injection_tasks: int | None = Field(None, gt=0)
    benign: bool = True
    max_iters: int = Field(40, gt=0)


def _trace_dir(logdir: str):
    """AgentDojo's benchmark functions log every episode through its `TraceLogger`, which needs an entered
    logger with a `logdir`: transcripts go there as AgentDojo's JSON files; nothing is printed."""
    from agentdojo.logging import Logger, NullLogger

    class TraceDir(NullLogger):
        def __enter__(self):
            Logger.__enter__(self)
            self.messages, self.logdir = [], logdir
            return self

        def __exit__(self, *exc):
            return Logger.__exit__(self, *exc)

    return TraceDir()


def suite_policy(cfg: AgentDojoConfig, suite: str):
    from keel.guard import builtin_policy, load_policy

    if cfg.policy_dir:
        return load_policy(Path(cfg.policy_dir) / f"{suite}.yaml")
    return builtin_policy(f"agentdojo/{suite}")


def defence_label(cfg: AgentDojoConfig, defence: str) -> str:
    return "none" if defence == "none" else f"keel-guard/{cfg.approver}"


def agent_label(cfg: AgentDojoConfig) -> str:
    return f"{cfg.agent}:{cfg.model or 'smollm2'}" if cfg.agent in ("openai", "local") else cfg.agent


def pipeline_name(cfg: AgentDojoConfig) -> str:
    """AgentDojo's attacks address the model by the name found in the pipeline's name; scripted agents are
    addressed as AgentDojo's "local" model."""
    from agentdojo.models import MODEL_NAMES

    base = f"keel-{cfg.agent}" + (f"-{cfg.model}" if cfg.model else "")
    return base if any(k in base for k in MODEL_NAMES) else f"{base}-local"


def validate_config(cfg: AgentDojoConfig) -> None:
    """Everything that can be wrong, found before a run directory is created."""
    from keel.guard import Guard
    from keel.redteam.agentdojo.agents import make_agent
    from keel.redteam.agentdojo.suites import attack_names, get_suite, suite_names

    attack_names(cfg.attacks)
    for s in suite_names(cfg.suites):
        get_suite(s, cfg.version)
        if "guard" in cfg.defences:
            Guard(suite_policy(cfg, s))
    if cfg.agent == "openai":
        make_agent("openai", None, cfg.endpoint, cfg.model)
    elif cfg.agent not in ("ground-truth", "obedient", "local"):
        make_agent(cfg.agent, None)


def run_agentdojo(cfg: AgentDojoConfig, run_dir: Path, quiet: bool = False, limit: int | None = None) -> dict:
    from agentdojo.agent_pipeline.agent_pipeline import load_system_message
    from agentdojo.agent_pipeline.basic_elements import SystemMessage
    from agentdojo.benchmark import run_task_with_injection_tasks, run_task_without_injection_tasks

    from keel.guard import Guard
    from keel.progress import progress_bar
    from keel.redteam.agentdojo.agents import make_agent, needs_system_message
    from keel.redteam.agentdojo.approver import make_approver
    from keel.redteam.agentdojo.element import GuardedPipeline
    from keel.redteam.agentdojo.suites import attack_names, get_suite, load_attack, suite_names
    from keel.redteam.campaign import Cell, ResultsDB
    from keel.redteam.episode import EpisodeResult

    validate_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    db = ResultsDB(run_dir / "campaign.sqlite")
    db.set_meta("kind", "agentdojo")
    db.set_meta("agentdojo", {"version": cfg.version, "approver": make_approver(cfg.approver).name,
                              "agent": agent_label(cfg), "attacks": attack_names(cfg.attacks)})
    done, new, check_ns, exec_ns = db.done(), 0, [], []
    agent_name = agent_label(cfg)
    plan = []  # (suite, defence, user task id, attack, injection task id), in a fixed order
    suites = {s: get_suite(s, cfg.version) for s in suite_names(cfg.suites)}
    for s, suite in suites.items():
        users = list(suite.user_tasks)[:cfg.max_user_tasks]
        injs = list(suite.injection_tasks)[:cfg.max_injection_tasks]
        for d in cfg.defences:
            for u in users:
                if cfg.benign:
                    plan.append((s, d, u, "", ""))
                plan += [(s, d, u, a, i) for a in attack_names(cfg.attacks) for i in injs]
    key = lambda p: (agent_name, defence_label(cfg, p[1]), PREFIX + p[0], p[2], p[4], p[3])  # noqa: E731
    todo = [p for p in plan if key(p) not in done][:limit]
    db.set_meta("policies", {s: suite_policy(cfg, s).name for s in suites} if "guard" in cfg.defences else {})
    try:
        with progress_bar(quiet) as bar, _trace_dir(str(run_dir / "traces")):
            job = bar.add_task("agentdojo", total=len(todo), info=f"{len(plan) - len(todo)} done before")
            for (s, d) in dict.fromkeys((p[0], p[1]) for p in todo):
                suite = suites[s]
                guard = Guard(suite_policy(cfg, s)) if d == "guard" else None
                agent = make_agent(cfg.agent, suite, cfg.endpoint, cfg.model)
                pre = [SystemMessage(load_system_message(None))] if needs_system_message(cfg.agent) else []
                pipe = GuardedPipeline(agent, guard, make_approver(cfg.approver), pipeline_name(cfg),
                                       max_iters=cfg.max_iters, pre=pre)
                attacks = {a: load_attack(a, suite, pipe) for a in attack_names(cfg.attacks)}
                needed = _needed_calls(suite)
                for p in [p for p in todo if p[0] == s and p[1] == d]:
                    _, _, u, a, i = p
                    task = suite.get_user_task_by_id(u)
                    t0, n0 = time.time(), len(pipe.logs)
                    if not a:
                        utility, _ = run_task_without_injection_tasks(suite, pipe, task, None, True, cfg.version)
                        success = None
                    else:
                        ut, sec = run_task_with_injection_tasks(suite, pipe, task, attacks[a], None, True, [i],
                                                                cfg.version)
                        utility, success = ut[(u, i)], sec[(u, i)]
                    log = pipe.logs[-1] if len(pipe.logs) > n0 else None
                    r = EpisodeResult(utility=bool(utility), attack_success=success,
                                      steps=len(log.calls) if log else 0)
                    if log is not None:
                        r.decisions.update(log.decisions)
                        r.blocked, r.calls = log.blocked, log.calls
                        r.false_positives = sum(1 for b in log.blocked if (b["tool"], _sig(b["args"])) in needed[u])
                        check_ns += log.check_ns
                        exec_ns += log.exec_ns
                    cell = Cell(*key(p))
                    db.put(cell, r, a, "en", "agentdojo", time.time() - t0)
                    new += 1
                    bar.update(job, advance=1, info=f"{s}/{u} {a or 'benign'} {i}")
    finally:
        if check_ns:
            db.set_meta(f"guard_check_ns:{time.time():.0f}", timing(check_ns))
    out = summarize(db.rows())
    out["guard_check_ns"], out["executor_ns"] = timing(check_ns), timing(exec_ns)
    out["cells_total"], out["cells_new"] = len(plan), new
    out["complete"] = len(db.done() & {key(p) for p in plan}) == len(plan)
    db.close()
    return out


def timing(ns: list[int]) -> dict[str, float] | None:
    if not ns:
        return None
    q = sorted(ns)
    return {"n": len(q), "mean": statistics.fmean(q), "median": statistics.median(q), "p99": q[int(0.99 * (len(q) - 1))]}


def _sig(args: dict[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)[:200]) for k, v in args.items()))


def _needed_calls(suite: Any) -> dict[str, set[tuple]]:
    """The calls each user task's ground truth makes on the default environment, to count false positives."""
    out = {}
    env = suite.load_and_inject_default_environment({})
    for uid, t in suite.user_tasks.items():
        calls = t.ground_truth(t.init_environment(env.model_copy(deep=True)))
        out[uid] = {(c.function, _sig(dict(c.args))) for c in calls}
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AgentDojo's three numbers per agent x defence x suite, and the benign tasks the guard lost, with the
    rule that stopped them."""
    import json
    from collections import defaultdict

    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        groups[(r["agent"], r["defence"], r["suite"])].append(r)
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    table = []
    for (agent, defence, suite), rs in sorted(groups.items()):
        benign = [r for r in rs if not r["attack"]]
        att = [r for r in rs if r["attack"]]
        table.append({"agent": agent, "defence": defence, "suite": suite, "benign_episodes": len(benign),
                      "attack_episodes": len(att), "utility": mean([r["utility"] for r in benign]),
                      "utility_under_attack": mean([r["utility"] for r in att]),
                      "attack_success": mean([r["attack_success"] for r in att]),
                      "attacks_succeeded": sum(r["attack_success"] or 0 for r in att),
                      "per_attack": {a: mean([r["attack_success"] for r in att if r["attack"] == a])
                                     for a in sorted({r["attack"] for r in att})}})
    base = {(r["agent"], r["suite"], r["user_task"]): r["utility"] for r in rows
            if r["defence"] == "none" and not r["attack"]}
    lost = [{"agent": r["agent"], "defence": r["defence"], "suite": r["suite"], "user_task": r["user_task"],
             "blocked_by": sorted({b["rule"] for b in json.loads(r["blocked"] or "[]")}) or ["(no call refused)"]}
            for r in rows if r["defence"] != "none" and not r["attack"] and r["utility"] == 0
            and base.get((r["agent"], r["suite"], r["user_task"])) == 1]
    breaches = [{k: r[k] for k in ("agent", "defence", "suite", "user_task", "injection_task", "attack")}
                for r in rows if r["defence"] != "none" and r["attack_success"]]
    return {"table": table, "tasks_lost_to_guard": lost, "attacks_through_guard": breaches, "episodes": len(rows)}
