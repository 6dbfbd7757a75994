"""`keel spec ...`: inspect formulas and task specs from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cliutil import JSON_HELP, console, emit

app = typer.Typer(help="Formal specifications: LTLf formulas -> automata; SPECTRL task specs -> DiRL graphs.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
PropsOpt = Annotated[
    str | None,
    typer.Option("--props", help="Comma-separated propositions the environment defines; others are errors"),
]


def _props(props: str | None) -> list[str] | None:
    if props is None:
        return None
    return [p.strip() for p in props.split(",") if p.strip()]


@app.command()
def check(
    formula: Annotated[str, typer.Argument(help='An LTLf formula, e.g. "F(goal_a & F goal_b) & G !hazard"')],
    props: PropsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compile FORMULA and print its minimal DFA: states, accepting states, satisfiability, a shortest model."""
    from keel.spec.spec import compile_ltlf

    info = compile_ltlf(formula, _props(props)).describe()
    if as_json:
        emit(info, as_json=True)
        return
    transitions = info.pop("transitions")
    trace = info["shortest_accepting_trace"]
    info["shortest_accepting_trace"] = (
        "none" if trace is None else " ; ".join("{" + ", ".join(step) + "}" for step in trace)
    )
    emit(info, as_json=False, title="LTLf automaton")
    from rich.table import Table

    table = Table(title="transitions")
    for col in ("from", "to", "guard"):
        table.add_column(col)
    for t in transitions:
        table.add_row(str(t["from"]), str(t["to"]), t["guard"])
    console.print(table)


@app.command()
def dot(
    formula: Annotated[str, typer.Argument(help="An LTLf formula")],
    props: PropsOpt = None,
    out: Annotated[str | None, typer.Option(help="Write the DOT text to this file instead of stdout")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print FORMULA's minimal DFA as Graphviz DOT (dashed = dead states, double circle = accepting)."""
    from keel.io import atomic_write_text
    from keel.spec.spec import compile_ltlf

    text = compile_ltlf(formula, _props(props)).dfa.to_dot(title=formula)
    if out:
        atomic_write_text(out, text)
    if as_json:
        emit({"formula": formula, "dot": text, "out": out}, as_json=True)
    elif not out:
        print(text, end="")
    else:
        console.print(f"wrote {out}")


@app.command()
def graph(
    task: Annotated[str, typer.Argument(help='A SPECTRL task, e.g. "achieve a; achieve b ensuring !hazard"')],
    predicates: Annotated[
        str | None, typer.Option(help="Comma-separated predicate (region) names the environment defines")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compile a SPECTRL task spec to its DiRL abstract graph and print vertices and edges."""
    from keel.spec.spectrl import compile_spectrl

    g = compile_spectrl(task, _props(predicates))
    info = g.to_dict()
    if as_json:
        emit(info, as_json=True)
        return
    from rich.table import Table

    emit({"task": task, "vertices": len(g.vertices), "edges": len(g.edges), "initial": g.initial,
          "final": sorted(g.final)}, as_json=False, title="DiRL abstract graph")
    table = Table(title="edges")
    for col in ("source", "target", "reach", "safe"):
        table.add_column(col)
    for e in g.edges:
        table.add_row(str(e.source), str(e.target), str(e.reach), str(e.safe))
    console.print(table)
