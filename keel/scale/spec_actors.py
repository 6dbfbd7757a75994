"""The two roles of a spec-RL run (PPO or QRM in the rooms product world) on Ray, as plain classes
(`ray.remote` wraps them in `keel.scale.ray_spec`).

- `SpecWorker`: a rollout worker. Holds its own share of the env copies inside a learner of the job's
  kind (`keel.rl.learner.SplitLearner`) and only ever calls its `collect`, after loading the newest
  weights it was sent. With one worker it is the in-process learner's env half exactly (same copies,
  seed and budget); with N, worker i gets a contiguous share of `num_envs`, seed + 7919 i, and the same
  share of the step budget (so PPO's whole-rollout budget and QRM's epsilon schedule stay the job's).
- `SpecLearnerActor`: the job's learner built as in-process; it only `learn`s, on the workers' batches
  merged side by side (`merge`), and returns its new weights (they go into the object store once). In sync
  mode it also drives the workers itself (`sync_step`): a batch then travels worker -> learner and the
  weights learner -> worker directly, where a driver-led turn relays both through the driver (each Ray
  hand-over costs ~1-2 ms here against a ~40 ms update: `benchmarks/scale.py`, table ray_call_ms).
"""

from __future__ import annotations

import os
import time
from typing import Any

from keel.config import validate
from keel.rl.learner import Batch, SplitLearner
from keel.rl.spec_job import Config, make_learner, make_world
from keel.scale.wire import pack, unpack, weights_in, weights_out


def share(num_envs: int, n_workers: int, worker: int) -> int:
    """Env copies of `worker`: contiguous, as even as possible (`num_envs >= n_workers` is checked)."""
    cuts = [round(s * num_envs / n_workers) for s in range(n_workers + 1)]
    return cuts[worker + 1] - cuts[worker]


class SpecWorker:
    def __init__(self, cfg_dict: dict, worker: int, n_workers: int):
        from keel.rl.spec_learners import make_learner as make

        cfg = validate(Config, cfg_dict, "config")
        n = share(cfg.num_envs, n_workers, worker)
        seed = cfg.seed if n_workers == 1 else cfg.seed + 7919 * worker
        algo = cfg.algo()
        if cfg.learner == "ppo":  # a worker never learns: its minibatch size only has to fit its rollout
            algo = algo.model_copy(update={"batch_size": min(algo.batch_size, algo.n_steps * n)})
        budget = cfg.total_steps * n // cfg.num_envs  # floor keeps PPO's "one more rollout fits" test exact
        self.learner: SplitLearner = make(cfg.learner, make_world(cfg), algo, n, seed, cfg.shield, budget)
        self.version = -1

    def pid(self) -> int:
        return os.getpid()

    def collect(self, weights: Any, version: int) -> tuple[Batch, dict]:
        """One batch with the policy of `version` (weights None: the worker already holds it)."""
        t0 = time.perf_counter()
        if weights is not None:
            self.learner.set_weights(weights_in(weights))
            self.version = version
        batch = pack(self.learner.collect())  # bit-packed one-hot observations: see keel.scale.wire
        return batch, {"env_steps": self.learner.env_steps, "finished": self.learner.finished,
                       "version": self.version, "collect_s": time.perf_counter() - t0}

    def metrics(self) -> dict[str, float]:
        return self.learner.metrics()

    def counters(self):
        return self.learner.counters()

    def state_dict(self) -> dict:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)
        self.version = -1  # resent with the first collect


class SpecLearnerActor:
    def __init__(self, cfg_dict: dict):
        cfg = validate(Config, cfg_dict, "config")
        self.learner: SplitLearner = make_learner(cfg, make_world(cfg))

    def weights(self) -> Any:
        return weights_out(self.learner.weights())

    def learn(self, *batches: Batch) -> tuple[dict, Any]:
        return self._learn(batches), weights_out(self.learner.weights())

    def _learn(self, batches) -> dict:
        t0 = time.perf_counter()
        info = self.learner.learn(self.learner.merge([unpack(b) for b in batches]))
        return {**info, "learn_s": time.perf_counter() - t0}

    def attach(self, workers: list) -> None:
        """The rollout workers' handles, for `sync_step`."""
        self.workers = workers

    def sync_step(self, version: int) -> tuple[dict, list[dict]]:
        """One synchronous turn: every worker collects with the current weights, then one update on the
        batches merged. Returns the update's info and the workers' collect infos, in worker order."""
        import ray

        w = weights_out(self.learner.weights())
        if len(self.workers) > 1:
            w = ray.put(w)  # one copy in the object store, read by every worker
        outs = ray.get([wk.collect.remote(w, version) for wk in self.workers])
        return self._learn([b for b, _ in outs]), [i for _, i in outs]

    def updates(self) -> int:
        return self.learner.counters().updates

    def state_dict(self) -> dict:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)
