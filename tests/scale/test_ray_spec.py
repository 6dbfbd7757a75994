"""Spec-guided RL (PPO, QRM) on a local two-node Ray cluster: sync mode equals in-process, async mode is
one version stale and resumes exactly (the in-flight batch is in the checkpoint), bad settings are refused."""

from __future__ import annotations

import pytest

from keel.config import validate
from keel.errors import KeelError
from keel.rl import spec_job
from keel.runs import Run
from keel.scale.config import ScaleConfig
from keel.scale.ray_job import train as train_on_ray

TINY = {
    "kind": "spec_rl", "seed": 3, "env": {"rooms": 9, "room_size": 3, "max_episode_steps": 100},
    "formula": "F(goal_a & F goal_b) & G !hazard", "shield": "preemptive", "num_envs": 8, "eval_episodes": 20,
}
PPO = {**TINY, "learner": "ppo", "total_steps": 1024, "log_every": 256, "checkpoint_every": 512,
       "ppo": {"n_steps": 32, "batch_size": 128, "n_epochs": 2}}
QRM = {**TINY, "learner": "qrm", "total_steps": 800, "log_every": 200, "checkpoint_every": 400}
DROP = {"steps_per_s", "time"}  # the wall-clock numbers in the metrics log


def _cfg(tmp_path, data, **over):
    return validate(spec_job.Config, {**data, "runs_dir": str(tmp_path), **over}, "test")


def _run(tmp_path, cfg, name):
    return Run.create(tmp_path, name, cfg.model_dump(mode="json"), "test")


def _log(run):
    return [{k: v for k, v in r.items() if k not in DROP} for r in run.metrics()]


def _same(a: dict, b: dict) -> dict:
    keys = ("satisfaction", "violations_train", "violations_eval", "env_steps", "episodes_train",
            "mean_episode_length_eval")
    return {k: (a[k], b[k]) for k in keys if a[k] != b[k]}


@pytest.mark.parametrize("data", [PPO, QRM], ids=["ppo", "qrm"])
def test_sync_matches_in_process(ray_cluster, tmp_path, data):
    cfg = _cfg(tmp_path, data)
    ref = _run(tmp_path, cfg, "inproc")
    a = spec_job.train(cfg, ref, quiet=True)
    got = _run(tmp_path, cfg, "ray")
    b = train_on_ray(cfg, got, False, True, ScaleConfig(rollout_workers=1))
    assert _log(ref) == _log(got)  # every logged number, every interval
    assert not _same(a, b)
    assert b["backend"] == "ray" and b["staleness_histogram"] == {"0": b["env_steps"] // (
        cfg.num_envs * (cfg.ppo.n_steps if cfg.learner == "ppo" else 1))}


@pytest.mark.slow
def test_async_two_workers_stale_by_one_and_resumes_exactly(ray_cluster, tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, PPO)
    scale = ScaleConfig(rollout_workers=2, mode="async", worker_cpus=0.5)
    straight = train_on_ray(cfg, _run(tmp_path, cfg, "straight"), False, True, scale)
    assert straight["env_steps"] == 1024 and straight["staleness_histogram"] == {"0": 1, "1": 3}
    assert straight["violations_train"] == 0  # the shield holds on every worker
    run = _run(tmp_path, cfg, "cut")
    monkeypatch.setenv("KEEL_STOP_AFTER_ITERATIONS", "3")  # after turn 3; checkpoint at 512 steps holds batch 3
    with pytest.raises(KeyboardInterrupt):
        train_on_ray(cfg, run, False, True, scale)
    monkeypatch.delenv("KEEL_STOP_AFTER_ITERATIONS")
    run.close()
    run = Run.open(run.path)
    resumed = train_on_ray(cfg, run, True, True, scale)
    assert not _same(straight, resumed)
    assert [r["env_steps"] for r in run.metrics()] == [256, 512, 768, 1024]


def test_refused_settings(tmp_path):
    from keel.scale.ray_job import settings

    with pytest.raises(KeelError, match="dirl"):
        settings(_cfg(tmp_path, TINY, learner="dirl"), "ray", None, 1, "sync", 1)
    with pytest.raises(KeelError, match="anneal_lr"):
        settings(_cfg(tmp_path, PPO, ppo={"anneal_lr": True}), "ray", None, 1, "sync", 1)
    with pytest.raises(KeelError, match="num_envs"):
        settings(_cfg(tmp_path, QRM), "ray", None, 9, "sync", 1)
    with pytest.raises(KeelError, match="max-staleness"):
        settings(_cfg(tmp_path, QRM), "ray", None, 1, "async", 0)


def test_merge_puts_env_copies_side_by_side():
    import numpy as np

    from keel.rl.ppo import PPO as PPOLearner

    a = {"x": np.zeros((4, 2, 3)), "next_value": np.zeros(2)}
    b = {"x": np.ones((4, 3, 3)), "next_value": np.ones(3)}
    m = PPOLearner.merge([a, b])
    assert m["x"].shape == (4, 5, 3) and m["next_value"].tolist() == [0, 0, 1, 1, 1]


def test_a_ray_spec_run_is_not_resumed_in_process(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from keel.cli import app

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump({**QRM, "runs_dir": str(tmp_path / "runs")}))
    run = Run.create(tmp_path / "runs", "r", _cfg(tmp_path, QRM, runs_dir=str(tmp_path / "runs")).model_dump(
        mode="json"), str(path))
    (run.path / "scale.json").write_text("{}")
    run.close()
    res = CliRunner().invoke(app, ["train", str(path), "--name", "r", "--resume"])
    assert isinstance(res.exception, KeelError) and "--backend ray" in str(res.exception)


def test_keel_train_quickstart_on_ray_then_eval(ray_cluster, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from keel.cli import app

    monkeypatch.chdir(tmp_path)
    over = ["--set", "total_steps=64", "--set", "num_envs=4", "--set", "eval_episodes=5", "--set", "log_every=32",
            "--set", f"runs_dir={tmp_path}"]
    res = CliRunner().invoke(app, ["train", "quickstart", "--backend", "ray", "--name", "q", "--json", *over])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["backend"] == "ray" and out["env_steps"] == 64 and out["violations_train"] == 0
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "q"), "--episodes", "3", "--json"])  # in-process format
    assert res.exit_code == 0 and json.loads(res.output.strip().splitlines()[-1])["episodes"] == 3
