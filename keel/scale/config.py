"""How a job runs on Ray: the backend settings, kept apart from the algorithm's config.

They are stored in the run directory (`scale.json`) and a `--resume` must use the same ones, so the
job config stays what the algorithm computes and the same config runs in-process or on a cluster.
"""

from __future__ import annotations

from typing import Literal

from keel.config import KeelModel


class ScaleConfig(KeelModel):
    address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a running cluster
    rollout_workers: int = 1
    mode: Literal["sync", "async"] = "sync"
    max_staleness: int = 1  # async: a sample may be at most this many policy versions old
    window: int = 0  # async: windowed FIFO width in jobs; 0 = two learner steps of jobs
    learner_cpus: float = 1.0
    worker_cpus: float = 1.0
    max_restarts: int = 1  # a killed rollout worker is restarted this many times, then the run goes on without it
    correction: Literal["auto", "decoupled", "none"] = "auto"  # async off-policy correction; auto: see ray_grpo
