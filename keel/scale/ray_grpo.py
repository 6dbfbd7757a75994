"""GRPO-family training on Ray: rollout workers as actors, one learner actor, weights through the object store.

Synchronous mode is the in-process loop with the sampling moved to workers: step k's problems and
sampling seed are the in-process job's, so with one rollout worker the numbers are the same as
`keel train` in-process (tested); with N workers each takes a contiguous share of the step's groups and
samples it with its own seed (deterministic, not bit-equal to one batch). The next step's rollouts are
queued on the weights ref the update will return, so they start when the learner finishes, not when the
driver has logged.

Asynchronous mode follows AReaL (Fu et al. 2025, arXiv 2505.24298) and Forge: workers never wait for the
learner. Each job is one group, sampled with the newest weights the worker has. A job may start only if
it will be at most `max_staleness` versions old when trained (AReaL's admission rule); finished jobs are
taken through a windowed FIFO (`keel.scale.window`); a job that still ends up too stale is dropped and
its problems re-collected. A busy worker also gets its next job queued behind its current one, on the
weights of the update in flight, so it never waits for the driver between jobs. Stale samples are
corrected off-policy: with `grpo.loss: cispo` by CISPO's clipped importance weight (against the behaviour
log-probs the worker recorded), with `grpo.loss: dapo` by AReaL's decoupled objective
(`keel.scale.decoupled`).

Faults: a worker that dies mid-job is restarted by Ray (up to `max_restarts`), or the run goes on with
fewer; its jobs are re-collected with the same problems and seeds, and counted (`lost_jobs`; a restart is
counted once, also one that happened between two jobs, seen from the worker's new process id). The learner
checkpoints like the in-process job (same checkpoint format, so `keel eval` and `--resume` work).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from typing import Any, NamedTuple, Protocol

from keel.errors import KeelError
from keel.rl.llm_job import Config
from keel.scale.cluster import connect, on_bundle, reserve
from keel.scale.config import ScaleConfig
from keel.scale.grpo_actors import JobKey, Learner, Sampler
from keel.scale.window import Job, WindowedFIFO


class Hooks(Protocol):
    """Called by the driver after each learner step (tests and benchmarks kill workers here)."""

    def after_step(self, step: int, workers: Workers) -> None: ...


class InFlight(NamedTuple):
    """A rollout call the driver is waiting for."""

    worker: int
    job: Job
    version: int  # of the weights it was sent
    roll: Any  # the ref of the Rollout; the driver waits on the header's
    newer: bool = False  # it may have upgraded to version + 1 at its start (`Sampler.rollout`)


class Workers:
    """The rollout actors, which policy version each holds, their in-flight calls, and their failures."""

    def __init__(self, handles: list):
        import ray

        self.ray = ray
        self.handles = handles
        self.alive = [True] * len(handles)
        self.version = [-1] * len(handles)
        self.pids: list[int | None] = [None] * len(handles)  # the process each worker last answered from
        self.pending: dict[Any, InFlight] = {}  # header ref -> the call it answers
        self.lost = self.restarts = 0
        self.busy_s = 0.0

    def busy(self) -> list[int]:
        return sorted({f.worker for f in self.pending.values()})

    def idle(self) -> list[int]:
        busy = set(self.busy())
        return [i for i, a in enumerate(self.alive) if a and i not in busy]

    def one_job_at_most(self, version: int) -> list[int]:
        """Live workers running exactly one job, sent weights no newer than `version` (none queued ahead)."""
        jobs: dict[int, list[int]] = {}
        for f in self.pending.values():
            jobs.setdefault(f.worker, []).append(f.version)
        return [i for i, vs in sorted(jobs.items()) if self.alive[i] and len(vs) == 1 and vs[0] <= version]

    def n_alive(self) -> int:
        return sum(self.alive)

    def submit(self, i: int, job: Job, weights_ref, version: int, newer=None) -> None:
        """Job to worker i on the weights of `version`; `newer`: the ref of version + 1's, taken if ready when
        the job starts."""
        send = weights_ref if self.version[i] != version else None  # the object store holds one copy
        extra = () if newer is None else ([newer],)  # nested: Ray does not wait for it
        ref, roll = self.handles[i].rollout.options(num_returns=2).remote(send, version, job.key, *extra)
        self.version[i] = version
        self.pending[ref] = InFlight(i, job, version, roll, newer is not None)

    def collect(self, ref) -> tuple[Job, dict | None]:
        """(job, header) for a finished call, the header's "roll" the rollout's ref; header None when the work
        was lost (counted, to re-collect)."""
        i, job, version, roll, newer = self.pending.pop(ref)
        try:
            res = self.ray.get(ref)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError):
            self._failed(i)
            return job, None
        if res["version"] == version + 1 and newer:  # it took the newer weights at its start
            self.version[i] = max(self.version[i], version + 1)
        elif res["version"] != version:  # restarted between calls: it sampled with its initial weights
            self._failed(i)
            return job, None
        # a new process: restarted after its last job finished and before this one, and sent the weights again
        # with this call; nothing was lost, but the restart is counted
        self._answered_from(i, res["pid"])
        self.busy_s += res["gen_s"]
        return job, {**res, "roll": roll}

    def _failed(self, i: int) -> None:
        self.lost += 1
        self.version[i] = -1  # a restarted actor has its initial weights: send them again
        pid = self._wait_restart(self.handles[i])
        self.alive[i] = pid is not None
        if pid is not None:  # one restart can lose two jobs (the running one, the one queued behind): counted once
            self._answered_from(i, pid, died=True)
        if not any(self.alive):
            raise KeelError("every rollout worker died; rerun with --resume (the last checkpoint is kept)")

    def _answered_from(self, i: int, pid: int, died: bool = False) -> None:
        """Worker i runs in process `pid`: a restart is counted the first time a new process is seen (after a
        call died, even when the worker had never answered before)."""
        if pid != self.pids[i] and (died or self.pids[i] is not None):
            self.restarts += 1
        self.pids[i] = pid

    def _wait_restart(self, handle, timeout_s: float = 300.0) -> int | None:
        """The restarted actor's pid once Ray has restarted it; None when it is out of restarts (the run goes on)."""
        ex = self.ray.exceptions
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return self.ray.get(handle.pid.remote(), timeout=timeout_s)
            except ex.ActorUnavailableError:  # restarting: ask again
                time.sleep(0.5)
            except (ex.RayActorError, ex.GetTimeoutError):
                return None
        return None


def train(cfg: Config, run, resume: bool, quiet: bool, scale: ScaleConfig, hooks: Hooks | None = None) -> dict:
    import ray

    from keel.envs.text import make_task
    from keel.progress import progress_bar

    g = cfg.grpo
    if cfg.steps < 1 or cfg.eval_n < 1:
        raise KeelError("steps and eval_n must be >= 1")
    if scale.rollout_workers < 1:
        raise KeelError("--rollout-workers must be >= 1")
    pool = make_task(cfg.task, **cfg.task_options).problems("train", cfg.train_pool, cfg.seed)
    if g.prompts_per_step > len(pool):
        raise KeelError(f"prompts_per_step ({g.prompts_per_step}) exceeds train_pool ({len(pool)})")
    decoupled = scale.mode == "async" and (
        scale.correction == "decoupled"
        or (scale.correction == "auto" and g.loss == "dapo" and not g.stapo and g.beta == 0))
    N = scale.rollout_workers
    session = connect(scale.address, scale.learner_cpus + N * scale.worker_cpus)
    try:
        pg = reserve(session, [{"CPU": scale.learner_cpus}] + [{"CPU": scale.worker_cpus}] * N)
        cfg_dict = cfg.model_dump(mode="json")
        learner = ray.remote(Learner).options(num_cpus=scale.learner_cpus, scheduling_strategy=on_bundle(pg, 0),
                                              ).remote(cfg_dict, decoupled)
        handles = [ray.remote(Sampler).options(num_cpus=scale.worker_cpus, max_restarts=scale.max_restarts,
                                               scheduling_strategy=on_bundle(pg, i + 1)).remote(cfg_dict, i)
                   for i in range(N)]
        session.actors = [learner, *handles]
        workers = Workers(handles)

        start, base, state = 0, None, {}
        if resume and (ckpt := run.load_checkpoint()) is not None:
            state, start = ckpt
            ray.get(learner.load_state_dict.remote(state["trainer"]))
            base = state.get("base")
            run.truncate_metrics(start)
        if base is None and not cfg.eval_base:
            base = {"accuracy": float("nan"), "reward": float("nan")}
        if base is None:
            base = ray.get(learner.evaluate.remote())
            run.log(0, test_accuracy=base["accuracy"], test_reward=base["reward"])
        ray.get([h.pid.remote() for h in handles])  # the workers have loaded their model: the clock starts after
        loop = _Loop(cfg, scale, run, learner, workers, pool, base, start, state.get("scale", {}), hooks)
        with progress_bar(quiet) as bar:
            loop.bar, loop.task = bar, bar.add_task(f"GRPO on Ray ({scale.mode})", total=cfg.steps,
                                                    completed=start, info="")
            loop.run_sync() if scale.mode == "sync" else loop.run_async()
        return loop.summary(decoupled)
    finally:
        session.close()


class _Loop:
    def __init__(self, cfg: Config, scale: ScaleConfig, run, learner, workers: Workers, pool, base, start,
                 saved: dict, hooks: Hooks | None):
        import ray

        self.ray, self.cfg, self.scale, self.run, self.learner, self.workers = ray, cfg, scale, run, learner, workers
        self.pool, self.base, self.start, self.step, self.hooks = pool, base, start, start, hooks
        self.P = cfg.grpo.prompts_per_step
        self.weights = learner.weights.remote()
        self.last: dict = {}
        self.staleness: Counter = Counter()
        self.learner_busy = self.eval_s = 0.0
        self.trained_samples = self.generated_samples = self.dropped_stale = 0
        self.prefix = Counter()
        self.next_index = int(saved.get("next_index", start * self.P))
        self.curve: list[tuple[float, int, float]] = []  # (training seconds, step, test accuracy)
        self.t0 = time.perf_counter()

    # --- shared by both modes ---------------------------------------------------------------------
    def _seed(self, step: int) -> int:
        return self.cfg.seed * 1_000_003 + step  # the in-process job's sampling and update seed

    def _after_update(self, metrics: dict, weights_ref, staleness: list[int]) -> None:
        cfg = self.cfg
        self.step += 1
        self.weights = weights_ref
        self.learner_busy += metrics["train_s"]
        self.trained_samples += self.P * cfg.grpo.group_size
        for k in ("tokens_trained", "tokens_computed_unmerged", "tokens_computed_prompt_merged",
                  "tokens_computed_trie"):
            self.prefix[k] += metrics[k]
        self.staleness.update(staleness)  # per group trained
        if staleness:
            metrics["staleness_mean"] = sum(staleness) / len(staleness)
        step = self.step
        if self._evaluates(step):
            t = time.perf_counter()
            ev = self.ray.get(self.learner.evaluate.remote())
            self.eval_s += time.perf_counter() - t
            metrics.update(test_accuracy=ev["accuracy"], test_reward=ev["reward"])
            self.curve.append((self.train_seconds(), step, ev["accuracy"]))
        self.run.log(step, **metrics)
        if self._checkpoints(step):
            st = self.ray.get(self.learner.state_dict.remote())
            self.run.save_checkpoint({"trainer": st, "base": self.base,
                                      "scale": {"mode": self.scale.mode, "next_index": self.next_index}}, step)
        self.last = metrics
        self.bar.update(self.task, advance=1, info=f"reward {metrics['reward']:.2f}")
        if self.hooks is not None:
            self.hooks.after_step(step, self.workers)

    def _update(self, step: int, results: list[dict]):
        """The learner's update on these rollouts (refs: Ray hands them from the workers to the learner)."""
        gen_s = max(r["gen_s"] for r in results)
        return self.learner.update.options(num_returns=2).remote(self._seed(step), gen_s,
                                                                  *[r["roll"] for r in results])

    def _evaluates(self, step: int) -> bool:
        return step == self.cfg.steps or bool(self.cfg.eval_every and step % self.cfg.eval_every == 0)

    def _checkpoints(self, step: int) -> bool:
        return step == self.cfg.steps or bool(self.cfg.checkpoint_every and step % self.cfg.checkpoint_every == 0)

    def _pauses(self, step: int) -> bool:
        """Whether finishing `step` makes calls to the learner (an evaluation, a checkpoint)."""
        return self._evaluates(step) or self._checkpoints(step)

    def train_seconds(self) -> float:
        """Wall time of the training loop without the evaluations (they are not training work)."""
        return time.perf_counter() - self.t0 - self.eval_s

    # --- synchronous: the in-process loop, sampling on the workers -----------------------------------
    def _sync_jobs(self, step: int) -> tuple[list[JobKey], deque[JobKey]]:
        """Step `step`'s problems and seeds split over the live workers: (their order, the ones to submit)."""
        problems = random.Random(f"{self.cfg.seed}|{step}").sample(self.pool, self.P)
        n = min(self.workers.n_alive(), self.P)
        cuts = [round(s * self.P / n) for s in range(n + 1)]
        keys = [JobKey(step, tuple(problems[cuts[s]:cuts[s + 1]]),
                       self._seed(step) if n == 1 else self._seed(step) + 7919 * s) for s in range(n)]
        return keys, deque(keys)

    def _submit_idle(self, keys: deque[JobKey], weights_ref, version: int) -> None:
        for i in self.workers.idle():
            if keys:
                self.workers.submit(i, Job(id=0, key=keys.popleft()), weights_ref, version)

    def _prequeue(self, step: int, order: list[JobKey], keys: deque[JobKey], version: int):
        """Step `step`'s update queued on its rollouts in flight (`Learner.update_checked`), so that it starts
        the moment they are in, without a round trip through the driver; None when a share is not submitted."""
        if keys:
            return None
        calls = {f.job.key: (ref, f.roll) for ref, f in self.workers.pending.items()}
        if any(k not in calls for k in order):
            return None
        heads, rolls = [calls[k][0] for k in order], [calls[k][1] for k in order]
        return self.learner.update_checked.options(num_returns=2).remote(self._seed(step), version, len(order),
                                                                          *heads, *rolls)

    def run_sync(self) -> None:
        ahead, pre = None, None
        while self.step < self.cfg.steps:
            step = self.step + 1
            order, keys = ahead or self._sync_jobs(step)
            if ahead is None:
                self._submit_idle(keys, self.weights, self.step)
                pre = self._prequeue(step, order, keys, self.step)
            done: dict[JobKey, Any] = {}
            lost = False
            while len(done) < len(order):
                self._submit_idle(keys, self.weights, self.step)
                ready, _ = self.ray.wait(list(self.workers.pending), num_returns=1)
                job, res = self.workers.collect(ready[0])
                if res is None:
                    keys.appendleft(job.key)  # re-collect the lost share, same problems and seed
                    lost = True
                else:
                    done[job.key] = res
                    self.generated_samples += res["samples"]
            # the queued update failed (a worker died: Ray never runs it) or refuses (a rollout sampled with the
            # wrong weights) exactly when a share was lost: then a plain update on what was re-collected
            m_ref, w_ref = pre if pre is not None and not lost else self._update(step, [done[k] for k in order])
            pre = None
            # the next step's rollouts are queued now, on the weights this update will return: Ray starts them
            # the moment the learner finishes, while the driver logs (still synchronous: they sample with the
            # newest policy, so the numbers are the in-process ones); and their update behind them, unless
            # this step evaluates or checkpoints (those learner calls must come first)
            ahead = self._sync_jobs(step + 1) if step < self.cfg.steps else None
            if ahead:
                self._submit_idle(ahead[1], w_ref, step)
                if not self._pauses(step):
                    pre = self._prequeue(step + 1, ahead[0], ahead[1], step)
            self._after_update(self.ray.get(m_ref), w_ref, [0] * self.P)

    # --- asynchronous: AReaL-style admission, windowed FIFO, staleness cap ----------------------------
    def _job_groups(self) -> int:
        """Groups per async job: a step's share per worker, as in sync mode (the sampler is far faster on
        one batch of several groups than on the same groups one by one); 1 when it does not divide."""
        n = self.workers.n_alive() if self.step == self.start else len(self.workers.handles)
        return self.P // n if self.P % n == 0 else 1

    def _key(self, index: int, groups: int) -> JobKey:
        problems = random.Random(f"{self.cfg.seed}|job{index}").sample(self.pool, groups)
        return JobKey(index, tuple(problems), self.cfg.seed * 1_000_003 + 500_009 * (index + 1))

    def run_async(self) -> None:
        G = self._job_groups()
        P, cap = self.P // G, self.scale.max_staleness  # from here on P counts jobs per learner step
        fifo = WindowedFIFO(self.scale.window or 2 * P, cap)
        retry: deque[JobKey] = deque()
        taken = 0  # jobs moved out of the queue for training since the start
        batch: list[Job] = []
        learner_ref = w_next = None

        def submit_job(i: int, weights, version: int, newer=None) -> bool:
            """Submit the next job to worker i, sampled with `version` (or `newer`'s version + 1 if ready when it
            starts); False when admission refuses it."""
            # admission (AReaL): the k-th job trains in batch k // P (P jobs a step); start it only if it will then be
            # at most `cap` versions old
            k = taken + len(fifo.queue)
            if version < self.start + k // P - cap:
                return False
            if retry:
                key = retry.popleft()
            else:
                key, self.next_index = self._key(self.next_index, G), self.next_index + 1
            job = Job(id=self.next_index * 1000 + len(fifo.queue) + taken, key=key)
            fifo.submit(job)
            self.workers.submit(i, job, weights, version, newer)
            return True

        def start_update(version: int):
            """The learner's update making version + 1, on the next P jobs fresh enough for `version`, as
            (metrics ref, weights ref); (None, None) while fewer are ready."""
            nonlocal batch, taken
            while len(batch) < P and (j := fifo.take(version)) is not None:
                batch.append(j)
                taken += 1
            if len(batch) < P:
                return None, None
            self._stale_batch = [version - j.version for j in batch for _ in j.key.problems]  # per group
            refs = self._update(version + 1, [j.result for j in batch])
            batch = []
            return refs

        while self.step < self.cfg.steps:
            version = self.step
            for j in fifo.expired(version):  # too stale to train on: collect the same problems again
                retry.append(j.key)
            for i in self.workers.idle():
                if not submit_job(i, self.weights, version):
                    break
            if learner_ref is None:
                learner_ref, w_next = start_update(version)
            if learner_ref is not None:
                # each busy worker gets its next job queued behind the current one, so that between jobs it never
                # waits for the driver to notice. On the current weights, upgraded at its start to those of the
                # update in flight if it has finished (AReaL: the newest policy, and a worker never waits for the
                # learner) when admission allows the current version; else on the update's weights, which Ray
                # waits for (with max_staleness 1 the two roles then alternate in lock-step)
                for i in self.workers.one_job_at_most(version):
                    if not (submit_job(i, self.weights, version, newer=w_next) or submit_job(i, w_next, version + 1)):
                        break
            waits = list(self.workers.pending) + ([learner_ref] if learner_ref is not None else [])
            ready, _ = self.ray.wait(waits, num_returns=1)
            ref = ready[0]
            if learner_ref is not None and ref == learner_ref:
                metrics, done_w, done_stale = self.ray.get(ref), w_next, self._stale_batch
                learner_ref = w_next = None
                # the learner gets its next batch before the driver logs this step (the log, TensorBoard
                # included, is ~8 ms a step, long enough to idle the learner), unless this step evaluates or
                # checkpoints: those calls go to the learner and must see this step's weights
                if not self._pauses(self.step + 1):
                    learner_ref, w_next = start_update(version + 1)
                self._after_update(metrics, done_w, done_stale)
                continue
            job, res = self.workers.collect(ref)
            if res is None:
                fifo.remove(job.id)
                retry.appendleft(job.key)
            else:
                fifo.finish(job.id, res["version"], res)
                self.generated_samples += res["samples"]
        self.dropped_stale = fifo.dropped_stale
        self.workers.pending.clear()  # work in flight at the end is not trained on

    # --- the summary ------------------------------------------------------------------------------
    def summary(self, decoupled: bool) -> dict:
        wall = self.train_seconds()
        n = max(self.workers.n_alive(), 1)
        p = self.prefix
        return {
            "steps": self.cfg.steps,
            "backend": "ray",
            "mode": self.scale.mode,
            "rollout_workers": len(self.workers.handles),
            "workers_alive": self.workers.n_alive(),
            "correction": ("decoupled" if decoupled else
                           "cispo" if self.cfg.grpo.loss == "cispo" and self.scale.mode == "async" else "none"),
            "base_test_accuracy": self.base["accuracy"],
            "test_accuracy": self.last.get("test_accuracy", float("nan")),
            "last_reward": self.last.get("reward", float("nan")),
            "train_seconds": round(wall, 2),
            "samples_per_s": self.trained_samples / max(wall, 1e-9),
            "generated_samples": self.generated_samples,
            "trained_samples": self.trained_samples,
            "staleness_histogram": {str(k): v for k, v in sorted(self.staleness.items())},
            "dropped_stale": self.dropped_stale,
            "lost_jobs": self.workers.lost,
            "worker_restarts": self.workers.restarts,
            "learner_busy_s": self.learner_busy,
            "rollout_busy_s": self.workers.busy_s,
            "learner_idle_ratio": max(0.0, 1.0 - self.learner_busy / max(wall, 1e-9)),
            "rollout_idle_ratio": max(0.0, 1.0 - self.workers.busy_s / max(wall * n, 1e-9)),
            "tokens_computed_per_trained_prompt_merged": p["tokens_computed_prompt_merged"] / max(p["tokens_trained"], 1),
            "tokens_computed_per_trained_unmerged": p["tokens_computed_unmerged"] / max(p["tokens_trained"], 1),
            "tokens_computed_per_trained_trie": p["tokens_computed_trie"] / max(p["tokens_trained"], 1),
            "accuracy_curve": self.curve,
        }
