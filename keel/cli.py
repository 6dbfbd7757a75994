"""The `keel` command. Every command takes `--json` and then prints one JSON object as its last line.

Subpackages add their own command groups in `keel/<package>/cli.py` (a `typer.Typer` named `app`);
they are listed in SUBCOMMANDS and registered here. Heavy imports happen inside commands, so that
`keel --help` stays instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from typing import Annotated

import typer
from rich.markup import escape

from keel.cliutil import JSON_HELP, console, emit, err_console
from keel.errors import KeelError
from keel.io import to_json

app = typer.Typer(
    help="Keel: train agents' policies and memory with RL under formal specifications, then red-team them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SUBCOMMANDS = {
    "spec": "keel.spec.cli",
    "memory": "keel.memory.cli",
    "games": "keel.games.cli",
    "discover": "keel.discovery.cli",
    "redteam": "keel.redteam.cli",
    "fed": "keel.scale.fed_cli",
}

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
MAX_EVAL_EPISODES = 1_000_000


@app.command()
def train(
    source: Annotated[str, typer.Argument(help="A preset name (e.g. quickstart) or a path to a config .yaml")],
    name: Annotated[str | None, typer.Option(help="Run name under runs/ (default: SOURCE-TIMESTAMP)")] = None,
    resume: Annotated[bool, typer.Option(help="Continue run NAME (or the latest unfinished run of SOURCE)")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a field: --set seed=3")] = None,
    log: Annotated[list[str] | None, typer.Option(
        "--log", help="Also log to wandb or trackio (when installed); TensorBoard files are always written")] = None,
    backend: Annotated[str, typer.Option(help="in-process, or ray (rollout workers + learner)")] = "in-process",
    address: Annotated[str | None, typer.Option(help="Ray: auto or HOST:PORT (default: a local Ray)")] = None,
    rollout_workers: Annotated[int, typer.Option(help="Ray: rollout worker actors")] = 1,
    mode: Annotated[str, typer.Option(help="Ray: sync, or async (AReaL-style, staleness-capped)")] = "sync",
    max_staleness: Annotated[int, typer.Option(help="Ray async: max policy versions a sample lags")] = 1,
    device: Annotated[str | None, typer.Option(
        help="cpu or cuda: where an agent job's language model runs (same as --set policy.device=...)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train: a preset or config file in, a run directory with metrics, checkpoints and a report out."""
    from keel.config import load_job_config
    from keel.jobs import check_job_config, job_module
    from keel.runs import Run, check_run_name

    if name is not None:
        check_run_name(name)
    if device is not None:
        if device not in ("cpu", "cuda"):
            raise KeelError(f"--device must be cpu or cuda, got {device!r}")
        set_ = [*(set_ or []), f"policy.device={device}"]
    cfg, short = load_job_config(source, set_)
    module = job_module(cfg.kind)
    check_job_config(module, cfg)  # everything that can be found wrong before runs/NAME exists
    if log:
        from keel.trackers import check_external

        check_external(log)  # refused before a run directory is made
    scale = None
    if backend != "in-process":  # keel.scale and Ray are imported only here
        from keel.scale.ray_job import settings

        scale = settings(cfg, backend, address, rollout_workers, mode, max_staleness)
    config_dict = cfg.model_dump(mode="json")
    if resume:
        run = Run.resolve(f"{cfg.runs_dir}/{name}") if name else Run.latest_unfinished(cfg.runs_dir, source)
        if run is None:
            raise KeelError(f"no unfinished run of {source} under {cfg.runs_dir}/ to resume; drop --resume")
        if run.config() != config_dict:
            raise KeelError(f"{run.path}/config.yaml differs from this config; resume with the same config")
        if scale is None and (run.path / "scale.json").is_file():  # trained on Ray: can it go on in-process?
            from keel.scale.ray_job import check_in_process_resume

            check_in_process_resume(cfg, run)
    else:
        run = Run.create(cfg.runs_dir, name or f"{short}-{time.strftime('%Y%m%d-%H%M%S')}", config_dict, source)
    if log:
        run.log_to(log)
    try:
        if scale is None:
            summary = module.train(cfg, run, resume=resume, quiet=as_json)
        else:
            from keel.scale.ray_job import train as train_on_ray

            summary = train_on_ray(cfg, run, resume, as_json, scale)
    except KeelError:
        if not resume:
            run.abandon()  # a start-up error: leave no half-made run behind
        raise
    except KeyboardInterrupt:
        run.set_status("interrupted")  # shown as such by `keel serve`; --resume continues it
        run.close()
        console.print(f"[yellow]stopped.[/] resume with: keel train {escape(source)} --name {run.name} --resume",
                      markup=True)
        raise typer.Exit(130) from None
    except BaseException:
        run.set_status("failed")
        run.close()
        raise
    run.write_summary(summary)
    run.set_status("finished")
    report = _write_run_report(run, module)
    run.close()
    emit({"run": str(run.path), **summary, "report": str(report)}, as_json, title=f"run {run.name}")


@app.command("eval")
def evaluate(
    run_dir: Annotated[str, typer.Argument(metavar="RUN", help="Run directory (or its name under runs/)")],
    episodes: Annotated[int | None, typer.Option(help="Evaluation episodes (job default if unset)")] = None,
    split: Annotated[str, typer.Option(
        help="train or test; agent runs also test-templates (held-out task templates)")] = "test",
    seed: Annotated[int, typer.Option(help="Evaluation seed")] = 12345,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Agent runs: evaluate under other limits, e.g. --set turns.max_turn_tokens=96")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a run's last checkpoint and store the numbers in RUN/eval.json."""
    from keel.io import atomic_write_json
    from keel.jobs import job_module
    from keel.runs import Run

    if episodes is not None and not 1 <= episodes <= MAX_EVAL_EPISODES:
        raise KeelError(f"--episodes must be from 1 to {MAX_EVAL_EPISODES:,}, got {episodes}")
    if split not in ("train", "test", "test-templates"):
        raise KeelError(f"--split must be train, test or test-templates, got {split!r}")
    run = Run.resolve(run_dir)
    module = job_module(str(run.config().get("kind")))
    if set_:
        import inspect

        if "overrides" not in inspect.signature(module.evaluate).parameters:
            raise KeelError(f"--set is for agent runs (turn limits, env options); {run.name} is a "
                            f"{run.config().get('kind')} run")
    result = module.evaluate(run, episodes=episodes, split=split, seed=seed, quiet=as_json,
                             **({"overrides": set_} if set_ else {}))
    atomic_write_json(run.path / "eval.json", result)
    emit({"run": str(run.path), **result}, as_json, title=f"evaluation of {run.name}")


@app.command()
def report(
    target: Annotated[str, typer.Argument(help="RUN, or `safety` followed by RUN for the safety card")],
    run_dir: Annotated[str | None, typer.Argument(metavar="[RUN]", help="The run, after `safety`")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a run's report.html (plots embedded); `keel report safety RUN` writes its safety card."""
    from keel.runs import Run

    if target == "safety":
        if run_dir is None:
            raise KeelError("usage: keel report safety RUN")
        from keel.report.safety import write_safety_card

        emit(write_safety_card(run_dir), as_json, title="safety card")
        return
    if run_dir is not None:
        raise KeelError(f"unexpected argument {run_dir!r}: use `keel report RUN` or `keel report safety RUN`")
    from keel.jobs import job_module

    run = Run.resolve(target)
    module = job_module(str(run.config().get("kind")))
    emit({"run": str(run.path), "report": str(_write_run_report(run, module))}, as_json)


@app.command()
def serve(
    runs: Annotated[str, typer.Option(help="The runs folder to show (read-only)")] = "runs",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless you mean to share it")] = "127.0.0.1",
    memory: Annotated[str | None, typer.Option(help="A memory file or postgresql:// URL to browse")] = None,
    memory_embedder: Annotated[str, typer.Option(help="Embedder the memory was made with: minilm or hash-DIM")]
    = "minilm",
) -> None:
    """A local dashboard: runs table, live curves, config diffs, reports, campaigns, memory browser."""
    from keel.serve.app import serve as run_server

    if not 0 < port < 65536:
        raise KeelError(f"--port {port}: use a port from 1 to 65535")
    console.print(f"keel serve: http://{host}:{port}/  (runs: {runs}; Ctrl-C stops)")
    run_server(runs, host=host, port=port, memory=memory, memory_embedder=memory_embedder)


def _write_run_report(run, module):
    """report.html with the job's own sections (plots, automata...) when it offers them."""
    from keel.report.html import write_report

    sections = module.report_sections(run) if hasattr(module, "report_sections") else None
    return write_report(run, sections)


def _register_subcommands() -> None:
    for group, module_name in SUBCOMMANDS.items():
        if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is None:
            continue
        if importlib.util.find_spec(module_name) is None:
            continue
        app.add_typer(importlib.import_module(module_name).app, name=group)


_register_subcommands()


def main() -> None:
    """Entry point: user errors become one clear message (and a JSON error object with --json)."""
    import click

    try:
        code = app(standalone_mode=False)
    except KeelError as e:
        if "--json" in sys.argv:
            print(to_json({"error": str(e)}))
        # escaped: user text such as '[/x]' or "['a']" is printed as written, not read as rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(2)
    except click.ClickException as e:  # usage errors: bad option, missing argument, bad value
        if "--json" in sys.argv:
            print(to_json({"error": e.format_message()}))
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted.", highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
