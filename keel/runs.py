"""Run directories: `runs/NAME/` with config.yaml, metrics.jsonl, summary.json, checkpoints/, report.html.

Every write that matters is atomic (`keel.io`), so a run killed at any moment resumes from its last
checkpoint with a metrics log that agrees with it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch

from keel.errors import KeelError
from keel.io import atomic_write_bytes, atomic_write_json, atomic_write_yaml, to_json

KEEP_CHECKPOINTS = 3
_RUN_NAME = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,127}")


def check_run_name(name: str) -> str:
    """The one rule for run names: a single plain folder name, so `runs_dir/NAME` can never point outside
    runs_dir: no `/` or `\\` (so not absolute), not starting with `.` (no `.`, `..` or hidden names), no
    control characters, at most 128 characters."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise KeelError(f"run name {name!r} is not allowed: a run name is one folder name of 1-128 characters, "
                        "with no slashes or control characters, not starting with '.'; e.g. --name my-run-2")
    return name


def _read_json(f: Path) -> Any:
    """A JSON file Keel wrote, or a KeelError saying that it is damaged (never a traceback)."""
    try:
        return json.loads(f.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeelError(f"{f} is damaged ({type(e).__name__}: {e}); restore it, or delete it and re-run "
                        "the step that writes it") from None


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self._metrics_file = None
        self._trackers: list | None = None  # keel.trackers: TensorBoard always, W&B / Trackio on request
        self._external: list[str] = []
        self._purge_step: int | None = None

    # --- opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | Path, name: str, config: dict[str, Any], source: str = "") -> Run:
        run = cls(Path(runs_dir) / check_run_name(name))
        if run.path.exists():
            raise KeelError(f"run directory {run.path} already exists; pass --resume to continue it or --name NEW")
        run.checkpoints.mkdir(parents=True)
        atomic_write_yaml(run.path / "config.yaml", config)
        atomic_write_json(run.path / "run.json", {"status": "running", "source": source, "created": time.time(),
                                                  "pid": os.getpid(), "host": socket.gethostname()})
        return run

    @classmethod
    def create_or_resume(cls, runs_dir: str | Path, name: str, config: dict[str, Any], source: str,
                         resume: bool) -> Run:
        """A new run, or with `resume` the existing one, which must have been made with the same config
        (a campaign resumed under other settings would mix two experiments in one store)."""
        path = Path(runs_dir) / check_run_name(name)
        if not resume:
            return cls.create(runs_dir, name, config, source)
        if not path.exists():
            raise KeelError(f"nothing to resume at {path}; drop --resume")
        run = cls.open(path)
        if run.config() != config:
            raise KeelError(f"{path}/config.yaml differs from these settings; resume with the same ones")
        return run

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            hint = ""
            if not path.exists() and (Path("runs") / path).is_dir():
                hint = f" (did you mean runs/{path}?)"
            raise KeelError(f"{path} is not a Keel run directory (no config.yaml){hint}")
        return cls(path)

    @classmethod
    def resolve(cls, name_or_path: str) -> Run:
        """A run given as a path, or as a name under ./runs."""
        p = Path(name_or_path)
        if not (p / "config.yaml").is_file() and (Path("runs") / p / "config.yaml").is_file():
            p = Path("runs") / p
        return cls.open(p)

    @staticmethod
    def latest_unfinished(runs_dir: str | Path, source: str) -> Run | None:
        candidates = []
        for d in Path(runs_dir).glob("*/run.json"):
            try:
                info = _read_json(d)
            except (KeelError, OSError):
                continue  # a damaged run.json: that run cannot be resumed, the others still can
            if not isinstance(info, dict) or not isinstance(info.get("created", 0), (int, float)):
                continue
            if info.get("source") == source and info.get("status") != "finished":
                candidates.append((info.get("created", 0), d.parent))
        return Run(max(candidates)[1]) if candidates else None

    # --- contents ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    def config(self) -> dict[str, Any]:
        from keel.config import read_text_file, read_yaml

        f = self.path / "config.yaml"
        return read_yaml(read_text_file(f, "run config"), str(f))

    def info(self) -> dict[str, Any]:
        f = self.path / "run.json"
        info = _read_json(f) if f.is_file() else {}
        if not isinstance(info, dict):
            raise KeelError(f"{f} is damaged (not a JSON object); restore it or delete the run")
        return info

    def abandon(self) -> None:
        """Remove a run directory this process just created, when the job stopped before it saved
        anything (no metrics, checkpoint or summary): a config error found at start-up must not leave a
        "running" directory that blocks the name and trips a later --resume."""
        self.close()
        if self.metrics() or self.latest_checkpoint() is not None or (self.path / "summary.json").exists():
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def set_status(self, status: str) -> None:
        atomic_write_json(self.path / "run.json", {**self.info(), "status": status})

    # --- metrics -------------------------------------------------------------------------------
    def log(self, step: int, **metrics: Any) -> None:
        """Append one line to metrics.jsonl; flushed at once, fsynced at each checkpoint."""
        if self._metrics_file is None:
            self._metrics_file = open(self.path / "metrics.jsonl", "a", encoding="utf-8")
        now = time.time()
        self._metrics_file.write(to_json({"step": int(step), "time": now, **metrics}) + "\n")
        self._metrics_file.flush()
        from keel.trackers import scalars

        for t in self._open_trackers():
            t.log(int(step), now, scalars(metrics))

    def log_to(self, external: list[str]) -> None:
        """Also send metrics to these trackers (`wandb`, `trackio`); refused at once if not installed."""
        from keel.trackers import check_external

        self._external = check_external(external)

    def _open_trackers(self) -> list:
        if self._trackers is None:
            from keel.trackers import open_trackers

            config = self.config() if (self.path / "config.yaml").is_file() else {}
            self._trackers = open_trackers(self.path, config or {}, self._external, self._purge_step)
        return self._trackers

    def metrics(self) -> list[dict[str, Any]]:
        f = self.path / "metrics.jsonl"
        if not f.is_file():
            return []
        rows = []
        for line in f.read_bytes().splitlines():
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                break  # a torn last line from a crash; everything before it is intact
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)  # rows without a step (edited by hand, damaged) are skipped
        return rows

    def truncate_metrics(self, after_step: int) -> None:
        """Drop log lines newer than the checkpoint we resume from, so the log never repeats a step."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= after_step]
        atomic_write_bytes(self.path / "metrics.jsonl", "".join(to_json(r) + "\n" for r in kept).encode())
        self._purge_step = after_step + 1  # TensorBoard drops its events past the checkpoint too

    # --- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], step: int) -> Path:
        if self._metrics_file is not None:
            os.fsync(self._metrics_file.fileno())
        buf = io.BytesIO()
        torch.save({"step": int(step), "state": state}, buf)
        path = self.checkpoints / f"step_{int(step):010d}.pt"
        atomic_write_bytes(path, buf.getvalue())
        self.prune_checkpoints(KEEP_CHECKPOINTS)
        return path

    def prune_checkpoints(self, keep: int) -> None:
        """Delete all but the newest `keep` checkpoints."""
        for old in sorted(self.checkpoints.glob("step_*.pt"))[:-keep]:
            old.unlink()

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("step_*.pt"))
        return found[-1] if found else None

    def load_checkpoint(self, path: Path | None = None) -> tuple[dict[str, Any], int] | None:
        path = path or self.latest_checkpoint()
        if path is None:
            return None
        try:
            blob = _load_weights_only(path)
            return blob["state"], int(blob["step"])
        except pickle.UnpicklingError as e:
            if "Unsupported global" not in str(e):
                raise KeelError(f"checkpoint {path} is damaged or truncated; delete it to fall back to the "
                                "previous checkpoint") from None
            raise KeelError(f"checkpoint {path} holds pickled objects other than tensors and NumPy state, "
                            "which could run code on load; refused. Use checkpoints written by Keel") from None
        except Exception as e:  # truncated, empty or foreign file: torch raises many types here
            raise KeelError(f"checkpoint {path} is damaged or truncated ({type(e).__name__}); delete it to "
                            "fall back to the previous checkpoint") from None

    # --- results -------------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", summary)
        from keel.trackers import scalars

        for t in self._open_trackers():
            t.summary(scalars(summary))

    def summary(self) -> dict[str, Any]:
        f = self.path / "summary.json"
        summary = _read_json(f) if f.is_file() else {}
        if not isinstance(summary, dict):
            raise KeelError(f"{f} is damaged (not a JSON object); delete it and re-run training or eval")
        return summary

    def close(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        for t in self._trackers or []:
            t.close()
        self._trackers = None


def _load_weights_only(path: Path) -> dict[str, Any]:
    """Load a checkpoint without executing pickled code: a run directory can come from someone else
    (`agent: runs/NAME`, a shared results folder), and a full unpickle of it would run whatever it holds.
    NumPy RNG states and arrays are the only non-tensor objects Keel's trainers store, so they alone are
    allowed."""
    import numpy as np
    from numpy._core import multiarray

    allowed = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
               *(getattr(np.dtypes, name) for name in np.dtypes.__all__)]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)
