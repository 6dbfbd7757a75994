"""`keel train CONFIG --backend ray`: run a training job's rollouts and learner on a Ray cluster.

The job config is unchanged (the same file runs in-process); the backend settings (`ScaleConfig`) are
written to RUN/scale.json, and `--resume` refuses different ones, as it refuses a different config.
"""

from __future__ import annotations

from keel.errors import KeelError
from keel.io import atomic_write_json
from keel.scale.config import ScaleConfig

ON_RAY = ("llm_rl", "spec_rl")


def train(cfg, run, resume: bool, quiet: bool, scale: ScaleConfig, hooks=None) -> dict:
    if cfg.kind not in ON_RAY:
        raise KeelError(f"`{cfg.kind}` jobs do not run on Ray yet (kinds on Ray: {', '.join(ON_RAY)}); "
                        "drop --backend ray to train in-process")
    saved = run.path / "scale.json"
    record = scale.model_dump(mode="json", exclude={"address"})  # the same run may move to another cluster
    if resume and saved.is_file():
        import json

        if json.loads(saved.read_text()) != record:
            raise KeelError(f"{saved} differs from these backend settings; resume with the same "
                            "--rollout-workers / --mode / --max-staleness")
    atomic_write_json(saved, record)
    if cfg.kind == "spec_rl":
        from keel.scale import ray_spec

        return ray_spec.train(cfg, run, resume, quiet, scale)
    from keel.scale import ray_grpo

    return ray_grpo.train(cfg, run, resume, quiet, scale, hooks)


def settings(cfg, backend: str, address: str | None, rollout_workers: int, mode: str,
             max_staleness: int) -> ScaleConfig:
    """The backend settings from the command line, checked before a run directory is made."""
    from keel.config import validate

    if backend != "ray":
        raise KeelError(f"unknown --backend {backend!r}; use in-process (the default) or ray")
    if cfg.kind not in ON_RAY:
        raise KeelError(f"`{cfg.kind}` jobs do not run on Ray yet (kinds on Ray: {', '.join(ON_RAY)}); "
                        "drop --backend ray to train in-process")
    if cfg.kind == "llm_rl" and cfg.grpo.dynamic_sampling:
        raise KeelError("grpo.dynamic_sampling does not run on Ray yet; set it to false or train in-process")
    if rollout_workers < 1 or max_staleness < 0:
        raise KeelError("--rollout-workers must be >= 1 and --max-staleness >= 0")
    scale = validate(ScaleConfig, {"address": address, "rollout_workers": rollout_workers, "mode": mode,
                                   "max_staleness": max_staleness}, "backend settings")
    if cfg.kind == "spec_rl":
        from keel.scale.ray_spec import check

        check(cfg, scale)
    return scale


def check_in_process_resume(cfg, run) -> None:
    """A spec-RL run trained on Ray keeps its env copies in the workers' part of the checkpoint, which an
    in-process learner cannot take; a GRPO run's checkpoint is the in-process format and may move."""
    if cfg.kind == "spec_rl":
        raise KeelError(f"{run.path} was trained with --backend ray (its env state is split across rollout "
                        "workers); resume it with --backend ray and the same --rollout-workers")
