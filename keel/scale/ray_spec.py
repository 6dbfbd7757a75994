"""Spec-guided RL (the `spec_rl` job's PPO and QRM learners) on Ray: rollout workers step the env copies,
one learner actor learns, weights go through the object store.

`RayLearner` is itself a `keel.rl.learner.Learner`, so the job's own loop (`keel.rl.spec_loop.train_loop`),
evaluation and summary (`keel.rl.spec_job.train`) run unchanged around it; only where `collect` and
`learn` happen moves (`keel.rl.learner.SplitLearner`).

- sync: each turn every worker collects with the newest weights, the learner learns on the batches
  merged side by side. The learner actor drives the turn (`SpecLearnerActor.sync_step`), so batches and
  weights go worker <-> learner directly; the driver only starts the turn and reads its infos. With one rollout worker this is the in-process run step for step: same env
  copies, seeds, random streams and updates, so the same numbers (tested).
- async: while the learner learns on batch k, the workers already collect batch k+1 with the weights
  they have (one version older): one batch in flight per worker, so every batch is exactly one policy
  version stale (the first is fresh). PPO's ratio is taken against the behaviour log-probs the worker
  recorded, so its clip bounds the stale update (the one-step-off-policy PPO of async actor-learner
  systems); QRM is off-policy already. Checkpoints keep the in-flight batch, so `--resume` loses nothing.

A rollout worker holds env state that cannot be re-collected elsewhere, so a worker that dies ends the
run with a clear error; `--resume` continues from the last checkpoint. The checkpoint is the learner's
own state (so `keel eval` and the report load it like an in-process one) plus the workers' under "ray".
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from keel.errors import KeelError
from keel.rl.learner import Batch, Counters, SplitLearner
from keel.rl.spec_job import Config, make_learner
from keel.scale.cluster import connect, on_bundle, reserve
from keel.scale.config import ScaleConfig
from keel.scale.spec_actors import SpecLearnerActor, SpecWorker
from keel.scale.wire import weights_in

_INTERVAL_MEANS = ("satisfaction_train", "episode_return", "episode_length")  # keel.rl.product_env.EpisodeStats


class RayLearner:
    """The job's learner with its rollouts on Ray workers and its updates on a learner actor."""

    def __init__(self, cfg: Config, scale: ScaleConfig, learner, workers: list, local: SplitLearner):
        import ray

        self.ray, self.cfg, self.scale, self.learner, self.workers = ray, cfg, scale, learner, workers
        self.local = local  # a driver-side copy, given the newest weights for policy() (the final evaluation)
        self.weights_ref = learner.weights.remote()
        self.version = 0
        self.sent = [-1] * len(workers)  # the policy version each worker holds
        self.inflight: tuple[list, list, int] | None = None  # (batch refs, info refs, version) being collected
        self._env_steps, self._finished = 0, False
        self.prev_episodes = [0] * len(workers)
        self.learn_s = self.collect_s = 0.0
        self.t_first: float | None = None
        self.t_last = 0.0
        self.trained_steps = 0
        self.staleness: Counter = Counter()

    # --- the Learner protocol -----------------------------------------------------------------------
    @property
    def env_steps(self) -> int:
        return self._env_steps

    @property
    def finished(self) -> bool:
        return self._finished

    def collect(self) -> Batch:
        raise KeelError("a RayLearner collects on its workers; drive it with train_step()")

    def learn(self, batch: Batch) -> dict[str, float]:
        raise KeelError("a RayLearner learns on its learner actor; drive it with train_step()")

    def train_step(self) -> dict[str, float]:
        if self.t_first is None:
            self.t_first = time.perf_counter()
        if self.scale.mode == "sync":
            return self._sync_step()
        if self.inflight is None:
            self.inflight = self._collect()
        batch_refs, info_refs, version = self.inflight
        # the update is queued before the driver waits: Ray starts it the moment the batches are in
        info_ref, w_ref = self.learner.learn.options(num_returns=2).remote(*batch_refs)
        self._note(self._get(info_refs), version)
        self.inflight = None
        if self.scale.mode == "async" and not self._finished and self._env_steps < self.cfg.total_steps:
            self.inflight = self._collect()  # with the weights before this update: one version stale
        info = self.ray.get(info_ref)
        self.learn_s += info.pop("learn_s")
        self.weights_ref, self.version = w_ref, self.version + 1
        self.t_last = time.perf_counter()
        return info

    def _sync_step(self) -> dict[str, float]:
        info, infos = self._get([self.learner.sync_step.remote(self.version)])[0]
        self._note(infos, self.version)
        self.learn_s += info.pop("learn_s")
        self.weights_ref, self.version = None, self.version + 1  # fetched from the learner when asked for
        self.sent = [self.version] * len(self.workers)
        self.t_last = time.perf_counter()
        return info

    def _note(self, infos: list[dict], version: int) -> None:
        """Book the workers' collect infos of a batch collected with policy `version`."""
        self._env_steps = sum(i["env_steps"] for i in infos)
        self._finished = any(i["finished"] for i in infos)
        self.collect_s += sum(i["collect_s"] for i in infos)
        self.staleness[self.version - version] += 1
        self.trained_steps += steps_per_batch(self.cfg)

    def policy(self) -> Any:
        if self.weights_ref is None:
            self.weights_ref = self.learner.weights.remote()
        self.local.set_weights(weights_in(self.ray.get(self.weights_ref)))
        return self.local.policy()

    def counters(self) -> Counters:
        cs = self._get([w.counters.remote() for w in self.workers])
        return Counters(env_steps=self._env_steps, episodes=sum(c.episodes for c in cs),
                        violations=sum(c.violations for c in cs), overrides=sum(c.overrides for c in cs),
                        updates=self.ray.get(self.learner.updates.remote()))

    def metrics(self) -> dict[str, float]:
        ms = self._get([w.metrics.remote() for w in self.workers])
        if len(ms) == 1:
            return ms[0]
        # per-interval means weighted by the episodes each worker finished in the interval; totals summed
        n = [m["episodes"] - p for m, p in zip(ms, self.prev_episodes, strict=True)]
        self.prev_episodes = [m["episodes"] for m in ms]
        out = {"episodes": sum(m["episodes"] for m in ms), "violations_train": sum(m["violations_train"] for m in ms)}
        for k in _INTERVAL_MEANS:
            have = [(m[k], w) for m, w in zip(ms, n, strict=True) if k in m and w > 0]
            if have:
                out[k] = sum(v * w for v, w in have) / sum(w for _, w in have)
        return out

    def state_dict(self) -> dict[str, Any]:
        pending = None
        if self.inflight is not None:  # async: the batch being collected is part of the state
            batch_refs, info_refs, version = self.inflight
            pending = {"batches": self._get(batch_refs), "infos": self._get(info_refs),
                       "lag": self.version - version}
        own = self.ray.get(self.learner.state_dict.remote())
        workers = self._get([w.state_dict.remote() for w in self.workers])
        return {**own, "ray": {"workers": workers, "pending": pending, "prev_episodes": self.prev_episodes}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ray = self.ray
        part = state.get("ray")
        own = {k: v for k, v in state.items() if k != "ray"}
        if part is None:  # an in-process checkpoint: its env half is the one worker's
            if len(self.workers) != 1:
                raise KeelError("this checkpoint was written in-process; resume it with --rollout-workers 1")
            part = {"workers": [own], "pending": None, "prev_episodes": [0]}
        if len(part["workers"]) != len(self.workers):
            raise KeelError(f"the checkpoint has {len(part['workers'])} rollout workers' state; resume with "
                            f"--rollout-workers {len(part['workers'])}")
        ray.get(self.learner.load_state_dict.remote(own))
        self._get([w.load_state_dict.remote(s) for w, s in zip(self.workers, part["workers"], strict=True)])
        self.weights_ref, self.version, self.sent = self.learner.weights.remote(), 0, [-1] * len(self.workers)
        self.prev_episodes = list(part["prev_episodes"])
        if part["pending"] is not None:
            p = part["pending"]
            self.inflight = ([ray.put(b) for b in p["batches"]], [ray.put(i) for i in p["infos"]], -p["lag"])
            self._env_steps = sum(i["env_steps"] for i in p["infos"]) - steps_per_batch(self.cfg)  # not yet learned
        else:
            self.inflight = None
            self._env_steps = sum(c.env_steps for c in self._get([w.counters.remote() for w in self.workers]))

    # --- Ray plumbing -------------------------------------------------------------------------------
    def _collect(self) -> tuple[list, list, int]:
        batches, infos = [], []
        for i, w in enumerate(self.workers):
            send = self.weights_ref if self.sent[i] != self.version else None  # the store holds one copy
            b, info = w.collect.options(num_returns=2).remote(send, self.version)
            self.sent[i] = self.version
            batches.append(b)
            infos.append(info)
        return batches, infos, self.version

    def _get(self, refs: list) -> list:
        ex = self.ray.exceptions
        try:
            return self.ray.get(refs)
        except (ex.RayActorError, ex.ActorUnavailableError) as e:
            raise KeelError(f"a rollout worker died ({type(e).__name__}); its env copies cannot be re-collected "
                            "elsewhere: rerun with --resume to continue from the last checkpoint") from None

    def stats(self) -> dict[str, Any]:
        wall = max(self.t_last - (self.t_first or self.t_last), 1e-9)
        n = len(self.workers)
        return {
            "backend": "ray", "mode": self.scale.mode, "rollout_workers": n,
            "ray_loop_seconds": round(wall, 3),
            "samples_per_s": self.trained_steps / wall,
            "learner_busy_s": self.learn_s, "rollout_busy_s": self.collect_s,
            "learner_idle_ratio": max(0.0, 1.0 - self.learn_s / wall),
            "rollout_idle_ratio": max(0.0, 1.0 - self.collect_s / (wall * n)),
            "staleness_histogram": {str(k): v for k, v in sorted(self.staleness.items())},
        }


def steps_per_batch(cfg: Config) -> int:
    """Env steps in one turn over all workers: PPO's n_steps of every copy, QRM's one step of every copy."""
    return cfg.num_envs * (cfg.ppo.n_steps if cfg.learner == "ppo" else 1)


def check(cfg: Config, scale: ScaleConfig) -> None:
    if cfg.learner not in ("ppo", "qrm"):
        raise KeelError(f"learner {cfg.learner!r} does not run on Ray (ppo and qrm do); train it in-process")
    if cfg.learner == "ppo" and cfg.ppo.anneal_lr:
        raise KeelError("ppo.anneal_lr does not run on Ray yet (the learner actor never steps the envs); "
                        "set it to false or train in-process")
    if scale.rollout_workers > cfg.num_envs:
        raise KeelError(f"--rollout-workers ({scale.rollout_workers}) exceeds num_envs ({cfg.num_envs}): "
                        "each worker steps at least one env copy")
    if scale.mode == "async" and scale.max_staleness < 1:
        raise KeelError("async mode trains on batches one policy version old; use --max-staleness >= 1 or --mode sync")


def train(cfg: Config, run, resume: bool, quiet: bool, scale: ScaleConfig) -> dict:
    import ray

    from keel.rl import spec_job

    check(cfg, scale)
    N = scale.rollout_workers
    session = connect(scale.address, scale.learner_cpus + N * scale.worker_cpus)
    try:
        pg = reserve(session, [{"CPU": scale.learner_cpus}] + [{"CPU": scale.worker_cpus}] * N)
        cfg_dict = cfg.model_dump(mode="json")
        learner = ray.remote(SpecLearnerActor).options(num_cpus=scale.learner_cpus,
                                                       scheduling_strategy=on_bundle(pg, 0)).remote(cfg_dict)
        workers = [ray.remote(SpecWorker).options(num_cpus=scale.worker_cpus, max_restarts=0,
                                                  scheduling_strategy=on_bundle(pg, i + 1)).remote(cfg_dict, i, N)
                   for i in range(N)]
        session.actors = [learner, *workers]
        # every actor built (imports, world, shield) before the loop starts: its clock and errors are the loop's
        ray.get([learner.attach.remote(workers), *(w.pid.remote() for w in workers)])
        built: list[RayLearner] = []

        def on_ray(world) -> RayLearner:
            built.append(RayLearner(cfg, scale, learner, workers, make_learner(cfg, world)))
            return built[0]

        summary = spec_job.train(cfg, run, resume, quiet, learner_on=on_ray)
        return {**summary, **built[0].stats()}
    finally:
        session.close()
