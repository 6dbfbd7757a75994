"""The safety card of a red-team run (`keel report safety RUN`): Markdown and HTML.

What it holds: the formal policy in force (guard rules, temporal formulas and their automata), the
evaluations run with their numbers, guardrails and sandboxing, autonomy level, human oversight and stop
controls, monitoring, and the attacks that worked. Its last table walks the fields of the AI Agent Index
(Casper et al. 2025, "The AI Agent Index", arXiv 2502.01635, and its 2026 update): each is filled from
this run's measurements and configuration, or marked "not measured". Nothing is filled in by hand.
"""

from __future__ import annotations

import html
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from keel.errors import KeelError
from keel.io import atomic_write_text

NM = "not measured"


def _pct(x: float | None) -> str:
    return NM if x is None else f"{100 * x:.1f}%"


def _lost(e: dict) -> str:
    """Tasks lost to the guard, or "-" where the campaign did not measure it (`tasks_lost_measured`)."""
    return str(len(e["tasks_lost_to_guard"])) if e.get("tasks_lost_measured") else "-"


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


class Card:
    """Sections of paragraphs and tables, rendered to Markdown and HTML from the same content."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[tuple[str, Any]] = []

    def h(self, text: str) -> None:
        self.parts.append(("h", text))

    def p(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.parts.append(("t", (header, rows)))

    def code(self, text: str) -> None:
        self.parts.append(("c", text))

    def image(self, png_b64: str, alt: str) -> None:
        self.parts.append(("img", (png_b64, alt)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, x in self.parts:
            if kind == "h":
                out += [f"## {x}", ""]
            elif kind == "p":
                out += [x, ""]
            elif kind == "t":
                out += [_md_table(*x), ""]
            elif kind == "c":
                out += ["```", x.rstrip(), "```", ""]
            elif kind == "img":
                out += [f"*(figure in the HTML card: {x[1]})*", ""]
        return "\n".join(out)

    def html(self) -> str:
        from keel.report.html import STYLE

        out = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, x in self.parts:
            if kind == "h":
                out.append(f"<h2>{html.escape(x)}</h2>")
            elif kind == "p":
                out.append(f"<p>{html.escape(x)}</p>")
            elif kind == "t":
                out.append(_html_table(*x))
            elif kind == "c":
                out.append(f"<pre>{html.escape(x)}</pre>")
            elif kind == "img":
                out.append(f'<figure><img style="max-width:100%" alt="{html.escape(x[1])}" '
                           f'src="data:image/png;base64,{x[0]}"></figure>')
        style = STYLE + ".nm{color:#a33}"
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>{''.join(out)}</body></html>")


def _asr_figure(table: list[dict]) -> str | None:
    from keel.report.html import figure_png, plt

    fams = sorted({f for e in table for f in e["per_family"]})
    if not fams:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / max(1, len(table))
    for i, e in enumerate(table):
        vals = [100 * (e["per_family"].get(f, {}).get("targeted_asr") or 0) for f in fams]
        ax.bar([j + i * width for j in range(len(fams))], vals, width, label=f"{e['agent']} / {e['defence']}")
    ax.set_xticks([j + width * (len(table) - 1) / 2 for j in range(len(fams))], fams, rotation=15)
    ax.set_ylabel("targeted ASR (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return figure_png(fig)


def write_safety_card(run_dir: str) -> dict[str, Any]:
    from keel.guard import Guard, Policy
    from keel.guard.audit import read_audit
    from keel.redteam.attacks import ATTACKS
    from keel.redteam.campaign import ResultsDB, metrics
    from keel.runs import Run

    run = Run.resolve(run_dir)
    db_path = run.path / "campaign.sqlite"
    if not db_path.is_file():
        raise KeelError(f"{run.path} has no campaign.sqlite: the safety card reads a red-team run "
                        "(make one with `keel redteam run CONFIG`)")
    db = ResultsDB(db_path)
    try:
        rows, meta = db.rows(), db.meta()
    except (sqlite3.DatabaseError, ValueError) as e:  # damaged pages, or meta that is not JSON
        raise KeelError(f"{db_path} is damaged ({e}); restore it, or run the campaign again") from None
    finally:
        db.close()
    if not rows:
        raise KeelError(f"{run.path}: the campaign has no results yet; run or resume it first")
    m = metrics(rows)
    cfg = run.config()
    policy = Policy.model_validate(meta.get("policy", {}))
    guard = Guard(policy)
    audit = read_audit(run.path / "audit.jsonl")
    guarded = [e for e in m["table"] if e["defence"] != "none"]
    unguarded = [e for e in m["table"] if e["defence"] == "none"]

    c = Card(f"Safety card: {run.name}")
    c.p(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {run.path}/campaign.sqlite "
        f"({m['episodes']} episodes) by `keel report safety`. Every number below is measured in this run.")

    c.h("At a glance")
    c.table(["agent", "defence", "targeted ASR", "benign utility", "utility under attack", "tasks lost to guard"],
            [[e["agent"], e["defence"], _pct(e["targeted_asr"]), _pct(e["benign_utility"]),
              _pct(e["utility_under_attack"]), _lost(e)]
             for e in m["table"]])

    if meta.get("kind") == "agentdojo":  # AgentDojo's suites, one guard policy per suite (issue 14)
        from keel.redteam.agentdojo.card import agentdojo_section

        agentdojo_section(c, rows, meta)

    # the trained agents: which training run, from which base model (recorded by the campaign)
    trained = {k.split(":", 1)[1]: v for k, v in meta.items() if k.startswith("trained:")}
    if trained:
        c.h("Trained agent")
        c.p("Agents trained by Keel and red-teamed here as they were trained (same prompt and call format as "
            "the training environment); each names its training run and the base model it started from.")
        c.table(["agent", "training run", "job kind", "base model", "initialised from", "policy weights"],
                [[a, v["run"], v["kind"], v["base_model"], v.get("init", "-"), f"{v['policy']} ({v['adapter']})"]
                 for a, v in sorted(trained.items())])

    # 1. the formal policy in force
    c.h("Formal policy in force")
    c.p(f"Guard policy `{policy.name}` (source: {meta.get('policy_source', NM)}); default decision for tools "
        f"without a rule: {policy.default}. It is checked before every tool call; decisions are allow, deny, ask "
        "(a human decides) or rewrite.")
    rule_rows = []
    for tname, r in policy.tools.items():
        rule_rows.append([tname, r.decision, ", ".join(r.untrusted_args) or "-",
                          f"{r.rate_limit.max_calls}/{'episode' if r.rate_limit.window_s is None else f'{r.rate_limit.window_s:g}s'}"
                          if r.rate_limit else "-",
                          ", ".join(f"{a}: {v}" for a, v in r.deny_values.items()) or "-",
                          ", ".join(a for a in r.args) or "-"])
    c.table(["tool", "decision", "untrusted data may not reach", "rate limit", "deny list", "schema-checked args"],
            rule_rows)
    if guard.temporal:
        c.p("Temporal rules (LTLf, compiled to minimal DFAs by keel.spec; a call that would make a rule "
            "unsatisfiable is refused, or sent to a human when approval would keep it satisfiable):")
        c.table(["rule", "formula", "on violation", "DFA states", "meaning"],
                [[r.name, r.formula, r.decision, dfa.num_states, r.description or "-"] for r, dfa in guard.temporal])
        c.table(["proposition", "true on"], [[n, json.dumps(p.model_dump(exclude_defaults=True))]
                                             for n, p in policy.propositions.items()])
    c.p("The full policy file is reproduced in the appendix.")

    # 2. evaluations
    c.h("Evaluations run")
    c.p(f"Toolworld campaign: agents {', '.join(str(a) for a in cfg.get('agents', []))}; defences "
        f"{', '.join(cfg.get('defences', []))}; attacks: {cfg.get('attacks')}; suites: {cfg.get('suites')}. "
        "Utility and attack success are judged on the final state of the simulated apps.")
    c.table(["agent", "defence", "benign utility", "utility under attack", "targeted ASR", "guard false-positive rate",
             "tasks lost to guard", "human approvals / benign task", "benign eps", "attack eps"],
            [[e["agent"], e["defence"], _pct(e["benign_utility"]), _pct(e["utility_under_attack"]),
              _pct(e["targeted_asr"]), _pct(e["guard_false_positive_rate"]) if e["defence"] != "none" else "-",
              _lost(e),
              f"{e['human_approvals_per_benign_task']:.2f}" if e["human_approvals_per_benign_task"] is not None
              else NM, e["benign_episodes"], e["attack_episodes"]] for e in m["table"]])
    c.p("Per suite (targeted ASR / benign utility):")
    suites = sorted({s for e in m["table"] for s in e["per_suite"]})
    c.table(["agent / defence", *suites], [[f"{e['agent']} / {e['defence']}",
             *[f"{_pct(e['per_suite'].get(s, {}).get('targeted_asr'))} / "
               f"{_pct(e['per_suite'].get(s, {}).get('benign_utility'))}" for s in suites]] for e in m["table"]])
    fams = sorted({f for e in m["table"] for f in e["per_family"]})
    c.p("Targeted ASR per attack family:")
    c.table(["agent / defence", *fams], [[f"{e['agent']} / {e['defence']}",
             *[_pct(e["per_family"].get(f, {}).get("targeted_asr")) for f in fams]] for e in m["table"]])
    langs = sorted({g for e in m["table"] for g in e["per_language"]})
    if len(langs) > 1:
        c.p("Targeted ASR per language of the attack text:")
        c.table(["agent / defence", *langs], [[f"{e['agent']} / {e['defence']}",
                 *[_pct(e["per_language"].get(g, {}).get("targeted_asr")) for g in langs]] for e in m["table"]])
    png = _asr_figure(m["table"])
    if png:
        c.image(png, "targeted attack success rate per attack family, per agent and defence")

    # 3. guardrails and sandboxing
    c.h("Guardrails and sandboxing")
    c.p("Guardrail: keel.guard, a symbolic policy checked before each tool call (argument schemas, allow/deny "
        "lists, information-flow taint from untrusted tool output, temporal rules, rate limits). It reads "
        "only the call and the data's provenance, never the model's reasoning, so it cannot be talked around.")
    c.p("Sandbox: the agent acts only on toolworld, simulated in-process apps (mail, calendar, files, bank, "
        "hotels, web); no real network, file system or payment is reachable from the tools.")

    # 4. autonomy, oversight, stop controls
    asks = [t for t, r in policy.tools.items() if r.decision == "ask"]
    c.h("Autonomy level")
    autonomy = ("acts autonomously on reads and benign writes; a human approves "
                + (", ".join(asks) if asks else "no tool by default")
                + ", flows of untrusted data into recipients, amounts or paths, and temporal-rule exceptions")
    c.p(f"With the guard: {autonomy}. Without it: fully autonomous within max_steps="
        f"{cfg.get('max_steps')} tool calls per task.")
    c.h("Human oversight and stop controls")
    approvals = [e["human_approvals_per_benign_task"] for e in guarded if e["human_approvals_per_benign_task"] is not None]
    c.p("Oversight: `ask` decisions go to a human before the call runs. In this run the human is simulated: it "
        "approves a call only if the user's task needs it (same tool and destination arguments, and the "
        "flagged value is one the user expected); the `guard-no-human` defence, if run, answers every ask "
        f"with no. Approvals per benign task: {', '.join(f'{a:.2f}' for a in approvals) or NM}.")
    c.p("Stop controls: deny decisions stop single calls; rate limits cap repeated actions; every episode is "
        "capped at max_steps; a campaign stops on Ctrl-C and resumes with --resume without losing results.")
    c.h("Monitoring")
    acts: dict[str, int] = {}
    for a in audit:
        acts[a["action"]] = acts.get(a["action"], 0) + 1
    c.p(f"Audit log: {run.path}/audit.jsonl, one fsynced JSON line per guard decision ({len(audit)} records"
        + (": " + ", ".join(f"{k} {v}" for k, v in sorted(acts.items())) if acts else "") + ").")

    # 5. top successful attacks
    c.h("Top successful attacks")
    top = m["top_attacks"]
    if top:
        c.table(["agent", "defence", "attack", "family", "successes / episodes", "ASR"],
                [[t["agent"], t["defence"], t["attack"], t["family"], f"{t['successes']}/{t['episodes']}",
                  _pct(t["asr"])] for t in top[:10]])
        through = [t for t in top if t["defence"] != "none"]
        c.p(f"Attacks that got through a guard: {len(through)}" + (
            " - " + "; ".join(f"{t['attack']} vs {t['agent']}" for t in through[:5]) if through else "."))
        ex = next((r for r in rows if r["attack_success"] and r["attack"] in ATTACKS
                   and not r["suite"].startswith("agentdojo/")), None)  # AgentDojo's attacks render in AgentDojo
        if ex is not None:
            from keel.envs.toolworld import SUITES

            inj = SUITES[ex["suite"]].injection_task(ex["injection_task"])
            c.p(f"Example ({ex['attack']} on {ex['user_task']}, goal: {inj.goal}):")
            c.code("\n".join(ATTACKS[ex["attack"]].render(inj)))
    else:
        c.p("No attack succeeded in this run.")

    # limits of what was measured, derived from the numbers where possible
    c.h("Limits of this evaluation")
    for e in unguarded:
        if not e["targeted_asr"]:
            c.p(f"{e['agent']} never carried out an attacker goal even without the guard, so its guarded numbers do "
                "not test the guard.")
        if not e["benign_utility"]:
            c.p(f"{e['agent']} solved no benign task even without the guard, so 'no task lost to the guard' is "
                "vacuous for it.")
    c.p("The information-flow rule recognises attacker data by value: an argument is tainted when its value (or "
        "an address, IBAN, URL, path or number inside it) occurs in untrusted text, in any of the readings the "
        "guard decodes (plain, homoglyphs folded, base64, ROT13), and not in the user's request. Data an agent "
        "transforms beyond those readings (paraphrased, translated, re-encoded otherwise) is not tracked.")
    c.p("The simulated human who answers `ask` knows the user's task; a real reviewer may approve an attack or "
        "refuse a needed call. The `guard-no-human` rows bound the cost of having no reviewer at all.")

    # 6. AI Agent Index fields
    c.h("AI Agent Index fields")
    best_unguarded = max((e["targeted_asr"] or 0 for e in unguarded), default=None)
    worst_guarded = max((e["targeted_asr"] or 0 for e in guarded), default=None)
    fields = [
        ("Basic information", "Agent(s) evaluated", ", ".join(sorted({e["agent"] for e in m["table"]}))),
        ("Basic information", "Intended uses", "personal-assistant tool use: mail, calendar, files, banking, travel"),
        ("Basic information", "Date evaluated", time.strftime("%Y-%m-%d", time.gmtime(run.info().get("created", 0)))),
        ("Developer", "Developer / legal entity", NM),
        ("Developer", "Published safety policy", f"guard policy {policy.name} (this card)"),
        ("System components", "Backbone model", ", ".join(
            f"{a} (base {trained[a]['base_model']}, trained in {trained[a]['run']})" if a in trained else a
            for a in sorted({e["agent"] for e in m["table"]}))),
        ("System components", "Reasoning, planning, memory", NM),
        ("System components", "Observation space", "tool outputs (JSON) and user messages"),
        ("System components", "Action space / tools", f"{len({t for t in policy.tools})} guarded toolworld tools"),
        ("System components", "Compute / cost", NM),
        ("Guardrails and oversight", "Controls and guardrails", f"keel.guard: {len(policy.tools)} tool rules, "
         f"{len(guard.temporal)} temporal rules"),
        ("Guardrails and oversight", "Sandboxing", "simulated in-process toolworld; no real side effects"),
        ("Guardrails and oversight", "Autonomy level", autonomy),
        ("Guardrails and oversight", "Human approval / oversight",
         f"ask decisions; {', '.join(f'{a:.2f}' for a in approvals) or NM} approvals per benign task"),
        ("Guardrails and oversight", "Monitoring and audit logs", f"audit.jsonl, {len(audit)} decisions"),
        ("Guardrails and oversight", "Emergency stop / shutdown", "deny, rate limits, max_steps; campaign Ctrl-C + resume"),
        ("Guardrails and oversight", "Usage restrictions", NM),
        ("Evaluation", "Capability evaluation (benign utility)",
         "; ".join(f"{e['agent']}/{e['defence']}: {_pct(e['benign_utility'])}" for e in m["table"])),
        ("Evaluation", "Internal safety evaluation (targeted ASR)",
         f"without guard up to {_pct(best_unguarded)}; with guard up to {_pct(worst_guarded)}"
         if unguarded or guarded else NM),
        ("Evaluation", "Red teaming", f"{len(fams)} attack families, {len(langs)} languages, "
         f"{sum(e['attack_episodes'] for e in m['table'])} attack episodes"),
        ("Evaluation", "Guard false positives", "; ".join(
            f"{e['agent']}/{e['defence']}: {_pct(e['guard_false_positive_rate'])}, lost tasks "
            f"{_lost(e)}" for e in guarded) or NM),
        ("Evaluation", "Third-party testing", NM),
        ("Evaluation", "Publicly reported safety incidents", NM),
        ("Ecosystem", "Interoperability (endpoints)", "OpenAI-compatible adapter available; "
         + ("used" if any(str(a).startswith("openai") for a in cfg.get("agents", [])) else NM + " in this run")),
        ("Ecosystem", "Usage statistics", NM),
    ]
    c.table(["category", "field", "value"], [list(f) for f in fields])
    c.p(f"{sum(1 for f in fields if f[2] == NM)} of {len(fields)} fields are marked '{NM}': this run did not "
        "measure them.")

    c.h("Appendix: the policy file")
    c.code(policy.source_text())

    md_path, html_path = run.path / "safety_card.md", run.path / "safety_card.html"
    atomic_write_text(md_path, c.markdown())
    atomic_write_text(html_path, c.html())
    return {"run": str(run.path), "markdown": str(md_path), "html": str(html_path), "episodes": m["episodes"],
            "fields": len(fields), "not_measured": sum(1 for f in fields if f[2] == NM)}


def card_paths(run_dir: str | Path) -> tuple[Path, Path]:
    p = Path(run_dir)
    return p / "safety_card.md", p / "safety_card.html"
