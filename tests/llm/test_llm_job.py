"""The llm_rl job end to end on the tiny model: train, eval, exact resume, non-finite steps skipped."""

import json
import random
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from keel.cli import app
from keel.config import validate
from keel.envs import text as text_tasks
from keel.envs.text import Problem, Score, TextTask
from keel.rl import llm_job
from keel.rl.grpo import GRPO, GRPOConfig, Rollout
from keel.runs import Run


@dataclass
class EvenLength(TextTask):
    """A task the random tiny model gets right half the time: is the reply's character count even?"""

    name: ClassVar[str] = "even_length"

    def draw(self, rng: random.Random) -> Problem:
        return Problem(f"Say something, number {rng.randint(0, 10_000)}.")

    def score(self, problem: Problem, completion: str) -> Score:
        even = len(completion) % 2 == 0
        return Score(even, 1.0, float(even))


def test_train_and_eval_tiny_end_to_end(tmp_path):
    threads = torch.get_num_threads()  # the preset sets 1; give the rest of the suite its own back
    try:
        _train_and_eval(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _train_and_eval(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "llm-tiny", "--name", "t1", "--json", "--set", f"runs_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    run = Run(tmp_path / "t1")
    rows = run.metrics()
    assert [r["step"] for r in rows] == [0, 1, 2]
    # (entropy is logged on steps that update; the random tiny model never earns a reward here)
    for key in ("reward", "accuracy", "grad_norm", "clip_frac", "masked_frac", "tokens_per_s", "updated_rows"):
        assert key in rows[1]
    assert (run.path / "report.html").is_file() and run.latest_checkpoint() is not None
    assert 0.0 <= out["test_accuracy"] <= 1.0
    res = runner.invoke(app, ["eval", str(run.path), "--split", "test", "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output.strip().splitlines()[-1])
    assert ev["split"] == "test" and {"base_accuracy", "trained_accuracy"} <= set(ev)


def _cfg(tmp_path, steps):
    return validate(llm_job.Config, {
        "kind": "llm_rl", "model": "tiny", "task": "even_length", "steps": steps, "train_pool": 8,
        "eval_n": 2, "eval_max_new_tokens": 2, "checkpoint_every": 2, "runs_dir": str(tmp_path), "threads": 1,
        "grpo": {"group_size": 4, "prompts_per_step": 2, "max_new_tokens": 4, "lr": 1e-2, "stapo": True},
    }, "test")


def test_resume_is_exact(tmp_path, monkeypatch):
    # one thread: multi-threaded float reductions may be scheduled differently under load
    threads = torch.get_num_threads()
    monkeypatch.setitem(text_tasks.TASKS, "even_length", EvenLength)
    try:
        straight = Run.create(tmp_path, "straight", {}, "x")
        llm_job.train(_cfg(tmp_path, 3), straight, quiet=True)
        split = Run.create(tmp_path, "split", {}, "x")
        llm_job.train(_cfg(tmp_path, 2), split, quiet=True)
        split.close()
        split = Run(split.path)
        llm_job.train(_cfg(tmp_path, 3), split, resume=True, quiet=True)
    finally:
        torch.set_num_threads(threads)
    a, b = straight.load_checkpoint(), split.load_checkpoint()
    assert a[1] == b[1] == 3
    wa, wb = a[0]["trainer"]["model"], b[0]["trainer"]["model"]
    assert any(r.get("grad_norm", 0) > 0 for r in straight.metrics())  # it did learn something
    assert any("entropy" in r for r in straight.metrics())
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ra = [(r["step"], r.get("reward")) for r in straight.metrics()]
    rb = [(r["step"], r.get("reward")) for r in Run(split.path).metrics()]
    assert ra == rb


def test_non_finite_step_is_skipped():
    from keel.llm import load_model

    model, tok = load_model("tiny", seed=1)
    trainer = GRPO(model, tok, GRPOConfig(group_size=2, prompts_per_step=1, lr=1e-2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    roll = Rollout(prompt_ids=[[5, 6], [5, 6]], completion_ids=[[7, 8], [9]],
                   old_logp=torch.zeros(2, 2), mask=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
                   rewards=torch.tensor([1.0, 0.0]), correct=torch.tensor([True, False]),
                   advantages=torch.tensor([float("nan"), 1.0]))
    info = trainer.update(roll)
    assert info["skipped"] == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    roll.advantages = torch.tensor([1.0, -1.0])
    assert trainer.update(roll)["skipped"] == 0
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("opts", [
    {"loss": "cispo", "advantage": "rloo"},
    {"loss": "dapo", "advantage": "reinforce", "beta": 0.1, "stapo": True},
])
def test_other_losses_and_advantages_train(opts):
    from keel.llm import load_model

    model, tok = load_model("tiny", seed=2)
    trainer = GRPO(model, tok, GRPOConfig(group_size=4, prompts_per_step=2, max_new_tokens=4, lr=1e-2,
                                          minibatches=2, **opts))
    task = EvenLength()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    info = trainer.step(task.problems("train", 2), task, seed=0)
    assert info["skipped"] == 0 and info["grad_norm"] > 0
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    if opts.get("beta"):
        assert trainer.ref is not None  # a frozen copy, only when the KL weight is on


def test_lora_uses_the_base_as_reference():
    from keel.llm import load_model
    from keel.llm.lora import add_lora

    model, tok = load_model("tiny", seed=3)
    model = add_lora(model, r=4)
    trainer = GRPO(model, tok, GRPOConfig(group_size=4, prompts_per_step=1, max_new_tokens=4, lr=1e-2, beta=0.1))
    assert trainer.ref is None  # adapters off = the reference, no copy
    task = EvenLength()
    lora_before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    info = trainer.step(task.problems("train", 1), task, seed=1)
    assert info["skipped"] == 0
    assert all("lora" in k for k in lora_before)
    assert any(not torch.equal(p, lora_before[k]) for k, p in model.named_parameters() if k in lora_before)
    assert set(trainer.state_dict()["model"]) == set(lora_before)  # checkpoints hold the adapters only
