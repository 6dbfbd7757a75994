"""GRPO on a local two-node Ray cluster: sync mode equals in-process, async mode respects its staleness
cap, a killed rollout worker's job is re-collected, and a run resumes from its checkpoint."""

from __future__ import annotations

import math

import pytest

from keel.config import validate
from keel.rl import llm_job
from keel.runs import Run
from keel.scale.config import ScaleConfig
from keel.scale.ray_job import train as train_on_ray

BASE = {
    "kind": "llm_rl", "model": "tiny", "task": "arithmetic", "task_options": {"digits": 2},
    "steps": 3, "train_pool": 16, "eval_n": 4, "eval_max_new_tokens": 4, "checkpoint_every": 1, "threads": 1,
    "grpo": {"group_size": 4, "prompts_per_step": 2, "max_new_tokens": 4, "lr": 1e-3, "temperature": 1.0},
}


def _cfg(tmp_path, **over):
    data = {**BASE, "runs_dir": str(tmp_path), **over}
    return validate(llm_job.Config, data, "test")


def _run(tmp_path, cfg, name):
    return Run.create(tmp_path, name, cfg.model_dump(mode="json"), "test")


KEYS = ("reward", "accuracy", "loss", "grad_norm", "completion_len")


def test_sync_matches_in_process(ray_cluster, tmp_path):
    cfg = _cfg(tmp_path)
    ref_run = _run(tmp_path, cfg, "inproc")
    llm_job.train(cfg, ref_run, quiet=True)
    ray_run = _run(tmp_path, cfg, "ray")
    summary = train_on_ray(cfg, ray_run, False, True, ScaleConfig(rollout_workers=1))
    a, b = ref_run.metrics(), ray_run.metrics()
    assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 1, 2, 3]
    for ra, rb in zip(a[1:], b[1:], strict=True):
        for k in KEYS:
            assert math.isclose(ra[k], rb[k], rel_tol=1e-4, abs_tol=1e-6), (ra["step"], k, ra[k], rb[k])
    assert math.isclose(a[-1]["test_accuracy"], b[-1]["test_accuracy"])
    assert summary["lost_jobs"] == 0 and summary["trained_samples"] == 3 * 2 * 4


class KillFirstWorker:
    """Kills rollout worker 0 once, after the first learner step (mid-job or between jobs)."""

    def __init__(self):
        self.killed = 0

    def after_step(self, step, workers):
        import ray

        if not self.killed:
            ray.kill(workers.handles[0], no_restart=False)  # Ray restarts it (max_restarts=1)
            self.killed += 1


@pytest.mark.slow
def test_async_staleness_cap_and_fault(ray_cluster, tmp_path):
    cfg = _cfg(tmp_path, steps=4, grpo={**BASE["grpo"], "loss": "cispo"})
    hook = KillFirstWorker()
    summary = train_on_ray(cfg, _run(tmp_path, cfg, "async"), False, True,
                           ScaleConfig(rollout_workers=2, mode="async", max_staleness=1), hooks=hook)
    assert hook.killed == 1
    hist = {int(k): v for k, v in summary["staleness_histogram"].items()}
    assert sum(hist.values()) == 4 * 2 and max(hist) <= 1  # every trained group within the cap
    assert summary["trained_samples"] == 4 * 2 * 4
    # a job is lost only with its worker: at most the one running and the one queued behind it, and the restart
    # is counted once (a kill that lands after the worker's last job of the run is never met again: 0 and 0)
    assert summary["worker_restarts"] <= 1 and summary["lost_jobs"] <= 2 * summary["worker_restarts"], summary
    assert summary["workers_alive"] == 2  # the worker came back
    assert summary["correction"] == "cispo"


@pytest.mark.slow
def test_resume_on_cluster(ray_cluster, tmp_path):
    cfg = _cfg(tmp_path, steps=2)
    run = _run(tmp_path, cfg, "resume")
    train_on_ray(cfg, run, False, True, ScaleConfig())
    full = _cfg(tmp_path, steps=3)
    ref = _run(tmp_path, full, "straight")
    train_on_ray(full, ref, False, True, ScaleConfig())
    # continue the 2-step run to 3 steps from its checkpoint (config steps changed, state carried)
    run.close()
    run = Run.open(run.path)
    train_on_ray(full, run, True, True, ScaleConfig())
    a, b = ref.metrics(), run.metrics()
    assert [r["step"] for r in b] == [0, 1, 2, 3]
    assert math.isclose(a[-1]["reward"], b[-1]["reward"], rel_tol=1e-4)
    assert math.isclose(a[-1]["loss"], b[-1]["loss"], rel_tol=1e-3, abs_tol=1e-6)


def test_bad_backend_settings(tmp_path):
    from keel.errors import KeelError
    from keel.scale.ray_job import settings

    with pytest.raises(KeelError, match="--backend"):
        settings(_cfg(tmp_path), "dask", None, 1, "sync", 1)
    with pytest.raises(KeelError, match="mode"):
        settings(_cfg(tmp_path), "ray", None, 1, "sometimes", 1)


@pytest.mark.slow
def test_job_lost_mid_sampling_is_counted_and_worker_restarts(ray_cluster, tmp_path):
    import ray

    from keel.scale.grpo_actors import JobKey, Sampler
    from keel.scale.ray_grpo import Workers
    from keel.scale.window import Job

    cfg = _cfg(tmp_path, grpo={**BASE["grpo"], "max_new_tokens": 256, "group_size": 16})
    pool = __import__("keel.envs.text", fromlist=["make_task"]).make_task("arithmetic", digits=2).problems(
        "train", 8, 0)
    handle = ray.remote(Sampler).options(num_cpus=1, max_restarts=1).remote(cfg.model_dump(mode="json"), 0)
    workers = Workers([handle])
    ray.get(handle.pid.remote())
    workers.submit(0, Job(0, JobKey(0, tuple(pool[:8]), 1)), None, -1)
    ref = next(iter(workers.pending))
    ray.kill(handle, no_restart=False)  # long before 8 x 16 completions of 256 tokens are sampled
    job, res = workers.collect(ref)
    assert res is None and workers.lost == 1 and workers.restarts == 1 and workers.alive == [True]
    assert workers.version == [-1]  # the restarted actor will be sent the weights again
    ray.kill(handle, no_restart=True)


def test_cli_refuses_a_job_kind_not_on_ray(tmp_path):
    from typer.testing import CliRunner

    from keel.cli import app
    from keel.errors import KeelError

    res = CliRunner().invoke(app, ["train", "spec_dirl", "--backend", "ray", "--set", f"runs_dir={tmp_path}"])
    assert isinstance(res.exception, KeelError) and "does not run on Ray" in str(res.exception)
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_decoupled_objective_equals_dapo_on_fresh_samples():
    """With pi_behav = pi_prox (no staleness) the weight is 1 and AReaL's objective is GRPO's DAPO loss."""
    import random

    import torch

    from keel.envs.text import make_task
    from keel.llm import load_model
    from keel.rl.grpo import GRPO, GRPOConfig
    from keel.scale.decoupled import DecoupledGRPO

    task = make_task("arithmetic", digits=2)
    problems = random.Random(0).sample(task.problems("train", 16, 0), 2)
    gcfg = GRPOConfig(group_size=4, max_new_tokens=4, lr=1e-3, temperature=1.0)
    logs, weights = [], []
    for cls in (GRPO, DecoupledGRPO):
        model, tok = load_model("tiny", seed=0)
        tr = cls(model, tok, gcfg)
        roll = tr.rollout(problems, task, "partial", seed=3)
        logs.append(tr.update(roll, seed=1))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert abs(logs[0]["loss"] - logs[1]["loss"]) < 1e-5
    assert abs(logs[1]["behav_weight_mean"] - 1.0) < 1e-4
    assert torch.allclose(weights[0], weights[1], atol=1e-6)
