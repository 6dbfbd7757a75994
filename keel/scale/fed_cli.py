"""`keel fed run CONFIG`: federated agent RL on Flower (FedAvg / FedProx, DP, SecAgg+, dropouts)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from keel.cliutil import JSON_HELP, emit
from keel.errors import KeelError

app = typer.Typer(help="Federated RL on Flower: clients train on private worlds, a server aggregates.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("run")
def run(
    source: Annotated[str, typer.Argument(help="A federated config .yaml (kind: fed)")],
    name: Annotated[str | None, typer.Option(help="Run name under runs/ (default: SOURCE-TIMESTAMP)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a field: --set rounds=3")] = None,
    baselines: Annotated[bool, typer.Option(help="Also train local-only and centralized baselines")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a federation on Flower's Simulation Engine; RUN/summary.json gets the per-round numbers."""
    from keel.config import apply_overrides, load_raw, validate
    from keel.runs import Run
    from keel.scale.fed_config import FedConfig
    from keel.scale.fed_run import centralized, check, local_only, simulate

    data, short = load_raw(source)
    data = apply_overrides(data, list(set_ or []))
    if data.get("kind", "fed") != "fed":
        raise KeelError(f"{source}: kind is {data.get('kind')!r}; `keel fed run` runs kind: fed configs")
    cfg = validate(FedConfig, data, source)
    check(cfg)
    run_ = Run.create(cfg.runs_dir, name or f"{short}-{time.strftime('%Y%m%d-%H%M%S')}",
                      cfg.model_dump(mode="json"), source)
    result = simulate(cfg, run_.path)
    for r in result["rounds"]:
        run_.log(r["round"], **{k: v for k, v in r.items() if k != "round"})
    summary = {k: v for k, v in result.items() if k != "rounds"}
    if baselines:
        summary["local_only"] = local_only(cfg)["success"]
        summary["centralized"] = centralized(cfg)["success"]
    run_.write_summary(summary)
    run_.set_status("finished")
    run_.close()
    emit({"run": str(run_.path), **summary}, as_json, title=f"federated run {run_.name}")


@app.command("app")
def app_dir(
    source: Annotated[str, typer.Argument(help="A federated config .yaml (kind: fed)")],
    directory: Annotated[str, typer.Argument(help="Where to write the Flower App (pyproject.toml)")],
    out: Annotated[str, typer.Option(help="Where the ServerApp writes rounds.jsonl")] = "fed-out",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a field: --set rounds=3")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a Flower App for the Deployment Engine: `flwr run DIR SUPERLINK` on real SuperLink/SuperNodes."""
    from pathlib import Path

    from keel.config import apply_overrides, load_raw, validate
    from keel.scale.fed_config import FedConfig
    from keel.scale.fed_deploy import write_app
    from keel.scale.fed_run import check

    data, _ = load_raw(source)
    data = apply_overrides(data, list(set_ or []))
    if data.get("kind", "fed") != "fed":
        raise KeelError(f"{source}: kind is {data.get('kind')!r}; `keel fed app` takes kind: fed configs")
    cfg = validate(FedConfig, data, source)
    check(cfg)
    path = write_app(cfg, Path(directory), Path(out))
    emit({"app": str(path.parent), "out": str(Path(out).resolve()), "clients": cfg.clients,
          "run": f"flwr run {path.parent} SUPERLINK --stream"}, as_json, title="Flower App written")
