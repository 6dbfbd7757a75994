"""Windowed FIFO collection with a staleness cap, for asynchronous rollouts (Forge; AReaL, arXiv 2505.24298).

Rollout jobs (one group each) enter a generation queue in submission order. The learner may take a
finished job only from the first `window` jobs still waiting: strict FIFO would block on one slow group
(head-of-line blocking), first-finished-first would favour short, easy groups; a sliding window bounds
both. A job's staleness is how many policy versions the learner has moved on since the weights the job
sampled with; a job staler than `max_staleness` is not trained on: it is dropped, counted and its
problems collected again. Pure bookkeeping, no Ray: the driver feeds it and asks it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One rollout request: `key` identifies the work (problems + seed); `version` the weights it used."""

    id: int
    key: Any
    version: int = -1
    result: Any = None
    done: bool = False


@dataclass
class WindowedFIFO:
    window: int
    max_staleness: int
    queue: list[Job] = field(default_factory=list)
    staleness: Counter = field(default_factory=Counter)  # histogram of the staleness of trained jobs
    dropped_stale: int = 0

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def finish(self, job_id: int, version: int, result: Any) -> None:
        for j in self.queue:
            if j.id == job_id:
                j.version, j.result, j.done = version, result, True
                return
        raise KeyError(job_id)

    def in_window(self) -> list[Job]:
        return self.queue[: self.window]

    def take(self, learner_version: int) -> Job | None:
        """The oldest finished job inside the window that is fresh enough, or None (wait for more).

        Finished jobs in the window that are too stale are removed and returned by `expired()` first.
        """
        for j in self.in_window():
            if j.done and learner_version - j.version <= self.max_staleness:
                self.queue.remove(j)
                self.staleness[learner_version - j.version] += 1
                return j
        return None

    def expired(self, learner_version: int) -> list[Job]:
        """Finished jobs whose samples are staler than the cap: removed here, to be collected again."""
        old = [j for j in self.queue if j.done and learner_version - j.version > self.max_staleness]
        for j in old:
            self.queue.remove(j)
        self.dropped_stale += len(old)
        return old

    def remove(self, job_id: int) -> Job:
        """Take a job out of the queue whatever its state (its worker died: it will be resubmitted)."""
        for j in self.queue:
            if j.id == job_id:
                self.queue.remove(j)
                return j
        raise KeyError(job_id)
