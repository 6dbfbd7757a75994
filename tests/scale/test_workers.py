"""The driver's bookkeeping of rollout workers (`keel.scale.ray_grpo.Workers`) against a scripted Ray:
which jobs count as lost, and how often a restart is counted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from keel.scale.grpo_actors import JobKey
from keel.scale.ray_grpo import Workers
from keel.scale.window import Job


class ActorDied(Exception):
    pass


class Unavailable(Exception):
    pass


class GetTimeout(Exception):
    pass


class Ref:
    """An object ref: what `get` returns, or None when the actor died before answering."""

    def __init__(self, value):
        self.value = value


class FakeRay:
    exceptions = SimpleNamespace(RayActorError=ActorDied, ActorUnavailableError=Unavailable,
                                 GetTimeoutError=GetTimeout)

    def get(self, ref, timeout=None):
        if ref.value is None:
            raise ActorDied()
        return ref.value


class Handle:
    """A rollout actor whose next results are scripted; `pid` is the process it runs in now."""

    def __init__(self, pid: int):
        self.pid_now = pid
        self.script: list = []
        self.pid = SimpleNamespace(remote=lambda: Ref(self.pid_now))
        self.rollout = SimpleNamespace(options=lambda num_returns: SimpleNamespace(remote=self._call))

    def _call(self, weights, version, key):
        return Ref(self.script.pop(0)(version)), Ref("roll")


def _workers(*pids: int) -> Workers:
    pytest.importorskip("ray")
    w = Workers([Handle(p) for p in pids])
    w.ray = FakeRay()
    return w


def _job(n: int) -> Job:
    return Job(id=n, key=JobKey(n, (), n))


def ok(handle: Handle):
    return lambda version: {"version": version, "pid": handle.pid_now, "gen_s": 0.1, "samples": 4}


def died(handle: Handle, new_pid: int):
    def call(version):
        handle.pid_now = new_pid  # Ray restarts it in a new process
        return None
    return call


def test_one_restart_that_loses_the_running_and_the_queued_job_is_counted_once():
    w = _workers(100)
    h = w.handles[0]
    h.script = [ok(h), died(h, 200), died(h, 200), ok(h)]
    w.submit(0, _job(0), "weights", 0)
    assert w.collect(next(iter(w.pending)))[1] is not None  # the worker answered from pid 100
    w.submit(0, _job(1), "weights", 1)  # running when it is killed
    w.submit(0, _job(2), "weights2", 2)  # queued behind it
    first, second = list(w.pending)
    assert w.collect(first)[1] is None and w.collect(second)[1] is None
    assert (w.lost, w.restarts, w.alive) == (2, 1, [True])
    assert w.version == [-1]  # the new process is sent the weights again
    w.submit(0, _job(3), "weights3", 3)
    job, res = w.collect(next(iter(w.pending)))
    assert res is not None and res["pid"] == 200 and w.restarts == 1  # not counted again from the new pid


def test_restart_between_jobs_is_counted_without_losing_work():
    w = _workers(100)
    h = w.handles[0]
    h.script = [ok(h), ok(h)]
    w.submit(0, _job(0), "weights", 0)
    w.collect(next(iter(w.pending)))
    h.pid_now = 300  # killed and restarted while idle; the next call sends new weights, so its result is valid
    w.submit(0, _job(1), "weights1", 1)
    job, res = w.collect(next(iter(w.pending)))
    assert res is not None and (w.lost, w.restarts) == (0, 1)


def test_queue_ahead_candidates_are_workers_with_one_current_job():
    w = _workers(100, 101, 102)
    for h in w.handles:
        h.script = [ok(h), ok(h)]
    w.submit(0, _job(0), "w", 5)  # one job at the current version: may get one queued behind it
    w.submit(1, _job(1), "w", 5)
    w.submit(1, _job(2), "w6", 6)  # already has one queued ahead
    assert w.one_job_at_most(5) == [0]  # worker 2 is idle: it gets a job the normal way
