"""The two roles of a GRPO-family run on Ray, as plain classes (`ray.remote` wraps them in `ray_grpo`).

- `Sampler`: a rollout worker. Holds a copy of the policy; each call loads the newest weights if it is
  behind, samples one job's groups with GRPO's own `rollout` (same sampler, scorer and advantages as
  in-process) and returns a header (the policy version it was sampled with, timings) and the `Rollout`.
- `Learner`: holds the optimiser; `update` concatenates the groups it is given and calls GRPO's own
  `update`, then returns the metrics and the new trainable weights (which go into the object store once
  and are read by every worker from there).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from keel.config import validate
from keel.rl.grpo import GRPO, Rollout, cat_rollouts
from keel.rl.llm_job import Config
from keel.scale.prefix import token_counts
from keel.scale.wire import load_weights, weights_out


@dataclass(frozen=True)
class JobKey:
    """The work of one rollout call: which problems, which sampling seed. Re-collecting = same key."""

    index: int
    problems: tuple
    seed: int


def build(cfg: Config):
    """(model, tokenizer, task) exactly as the in-process job builds them (same seeds, same threads)."""
    from keel.envs.text import make_task
    from keel.llm import load_model
    from keel.llm.lora import add_lora

    torch.set_num_threads(cfg.threads or 1)  # a Ray actor owns its CPUs; the default would oversubscribe them
    torch.manual_seed(cfg.seed)
    model, tok = load_model(cfg.model, seed=cfg.seed)
    if cfg.lora_r > 0:
        model = add_lora(model, cfg.lora_r)
    return model, tok, make_task(cfg.task, **cfg.task_options)


def _trainable(trainer: GRPO) -> dict:
    """The trainable weights as numpy arrays sharing the parameters' memory, for an actor method to return:
    Ray hands numpy over without pickling the data (measured ~2.5x faster than torch tensors for a 12 MB
    state dict) and copies it into the object store on return (`keel.scale.wire.weights_out`)."""
    return weights_out({k: p for k, p in trainer.model.named_parameters() if p.requires_grad}, copy=False)


class Sampler:
    def __init__(self, cfg_dict: dict, worker: int):
        self.cfg = validate(Config, cfg_dict, "config")
        model, tok, self.task = build(self.cfg)
        self.trainer = GRPO(model, tok, self.cfg.grpo)
        self.worker, self.version = worker, -1

    def pid(self) -> int:
        return os.getpid()

    def rollout(self, weights: dict | None, version: int, key: JobKey,
                newer: list | None = None) -> tuple[dict[str, Any], Rollout]:
        """One job's groups sampled with the policy of `version` (weights None: the worker holds it already).
        `newer`: [the ref of version + 1's weights], nested so that Ray does not wait for it: taken if the
        update that makes them has finished by the time this job starts (the newest policy at the start, as in
        AReaL), else the job runs on `version` without waiting for the learner."""
        t0 = time.perf_counter()
        if newer is not None:
            import ray

            if ray.wait(newer, timeout=0)[0]:
                weights, version = ray.get(newer[0]), version + 1
        if weights is not None and version > self.version:  # never back to an older policy
            load_weights(self.trainer.model, weights)
            self.version = version
        c = self.cfg
        roll = self.trainer.rollout(list(key.problems), self.task, c.reward, seed=key.seed, system=c.system)
        # two objects: the driver reads only the small header; the rollout goes from the object store straight
        # to the learner
        return ({"version": self.version, "key": key, "worker": self.worker, "pid": os.getpid(),
                 "gen_s": time.perf_counter() - t0, "samples": len(roll.completion_ids)}, roll)


class Learner:
    def __init__(self, cfg_dict: dict, decoupled: bool = False):
        from keel.scale.decoupled import DecoupledGRPO

        self.cfg = validate(Config, cfg_dict, "config")
        self.model, self.tok, self.task = build(self.cfg)
        cls = DecoupledGRPO if decoupled else GRPO
        self.trainer = cls(self.model, self.tok, self.cfg.grpo)
        self.test = self.task.problems("test", self.cfg.eval_n, 12345)

    def weights(self) -> dict:
        return _trainable(self.trainer)

    def update(self, seed: int, gen_s: float, *rolls) -> tuple[dict, dict]:
        """GRPO's update on the concatenated groups -> (metrics as GRPO.step logs them, new weights)."""
        t0 = time.perf_counter()
        roll = cat_rollouts(list(rolls))
        info = self.trainer.update(roll, seed=seed)
        tokens = int(roll.mask.sum())
        metrics = {
            "reward": float(roll.rewards.mean()),
            "accuracy": float(roll.correct.float().mean()),
            "completion_len": tokens / len(roll.completion_ids),
            **info,
            "gen_s": gen_s,
            "train_s": time.perf_counter() - t0,
            **token_counts(roll.prompt_ids, roll.completion_ids),
        }
        return metrics, _trainable(self.trainer)

    def update_checked(self, seed: int, version: int, n: int, *parts) -> tuple[dict, dict | None]:
        """`update` queued before its rollouts were sampled (sync mode: Ray starts it the moment they are in,
        with no round trip through the driver): `parts` are n headers then n rollouts. Refused, the weights
        untouched, when a rollout was not sampled with `version` (its worker restarted between calls and
        sampled with its initial weights); the driver then re-collects it and sends a plain `update`."""
        headers, rolls = parts[:n], parts[n:]
        if any(h["version"] != version for h in headers):
            return {"refused": True}, None
        return self.update(seed, max(h["gen_s"] for h in headers), *rolls)

    def evaluate(self) -> dict:
        from keel.rl.grpo import accuracy

        c = self.cfg
        return accuracy(self.model, self.tok, self.task, self.test, c.eval_max_new_tokens, system=c.system,
                        reward=c.reward)

    def state_dict(self) -> dict:
        return self.trainer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state)
