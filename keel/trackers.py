"""Where a run's metrics go besides `metrics.jsonl` (which stays the source of truth).

Always: TensorBoard event files in the run directory, so `tensorboard --logdir runs` shows every run of
every job kind with no further step: each metric line as scalars, the run's config as hyper-parameters
(HParams dashboard), and the final summary's numbers under `summary/`. On demand (`keel train --log
wandb|trackio`): Weights & Biases or Trackio, through their own libraries when they are installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any, Protocol

from keel.errors import KeelError

EXTERNAL = ("wandb", "trackio")


class Tracker(Protocol):
    """One destination for a run's metrics."""

    def log(self, step: int, wall_time: float, values: dict[str, float]) -> None: ...

    def summary(self, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers in a metrics line or summary, flattened: nested dicts join keys with '/', and a list
    of records is keyed by each record's text fields (a red-team table row `agent/defence`)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool) or v is None or k in ("step", "time"):
            continue
        if isinstance(v, (int, float)):
            if math.isfinite(v):
                out[key] = float(v)
        elif isinstance(v, dict):
            out.update(scalars(v, key + "/"))
        elif isinstance(v, list):
            for i, e in enumerate(v):
                if isinstance(e, dict):
                    label = "/".join(str(x) for x in e.values() if isinstance(x, str)) or str(i)
                    out.update(scalars(e, f"{key}/{label}/"))
    return out


def hparams_of(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat TensorBoard hyper-parameters (bool, number or text values)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(hparams_of(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = json.dumps(v)
    return out


class TensorBoardTracker:
    """Event files written by PyTorch's SummaryWriter (TensorBoard's own format and plugins)."""

    def __init__(self, run_dir: Path, config: dict[str, Any], purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        # purge_step: after a resume, TensorBoard drops the events the truncated metrics log dropped
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step, flush_secs=5)
        self.last_step = 0
        # Only the session-start record: TensorBoard then lists every scalar tag as a metric column.
        _, session_start, _ = hparams(hparams_of(config), {})
        self.writer.file_writer.add_summary(session_start)

    def log(self, step: int, wall_time: float, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step, walltime=wall_time)
        self.last_step = step
        self.writer.flush()  # metric lines are per interval, not per step: cheap, and live in TensorBoard

    def summary(self, values: dict[str, float]) -> None:
        now = time.time()
        for k, v in values.items():
            self.writer.add_scalar(f"summary/{k}", v, self.last_step, walltime=now)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project="keel", name=run_dir.name, id=run_dir.name, resume="allow",
                              dir=str(run_dir), config=config)

    def log(self, step: int, wall_time: float, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def summary(self, values: dict[str, float]) -> None:
        self.run.summary.update(values)

    def close(self) -> None:
        self.run.finish()


class TrackioTracker:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import trackio

        self.trackio = trackio
        trackio.init(project="keel", name=run_dir.name, config=config, resume="allow")

    def log(self, step: int, wall_time: float, values: dict[str, float]) -> None:
        self.trackio.log(values, step=step)

    def summary(self, values: dict[str, float]) -> None:
        self.trackio.log({f"summary/{k}": v for k, v in values.items()})

    def close(self) -> None:
        self.trackio.finish()


def check_external(names: list[str]) -> list[str]:
    """Validate `--log` choices: known, and their library importable; else one clear error."""
    for n in names:
        if n not in EXTERNAL:
            raise KeelError(f"--log {n!r} is not supported; choose from {', '.join(EXTERNAL)} "
                            "(TensorBoard event files are always written)")
        if importlib.util.find_spec(n) is None:
            raise KeelError(f"--log {n} needs the `{n}` package, which is not installed: "
                            f"`pip install {n}`, or drop --log {n} (TensorBoard files are written anyway)")
    return list(dict.fromkeys(names))


def open_trackers(run_dir: Path, config: dict[str, Any], external: list[str],
                  purge_step: int | None = None) -> list[Tracker]:
    made: list[Tracker] = [TensorBoardTracker(run_dir, config, purge_step)]
    for n in external:
        made.append(WandbTracker(run_dir, config) if n == "wandb" else TrackioTracker(run_dir, config))
    return made
