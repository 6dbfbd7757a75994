"""The `Learner` protocol: what one training loop (`keel.rl.spec_loop`), a checkpoint and a remote
worker (Ray, in `keel.scale`) need from a learning algorithm, and nothing more.

    learner.train_step()            # collect one batch of experience with the current policy, learn from it
    batch = learner.collect()       # ... or the two halves apart (a rollout worker collects,
    learner.learn(batch)            #     the learner process learns)
    learner.policy()                # the current policy, to act with or evaluate
    learner.counters()              # env steps, episodes, violations, shield overrides, updates
    learner.metrics()               # per-interval metrics since the last call (for the metrics log)
    learner.state_dict() / load_state_dict(state)   # everything needed to continue exactly

Implemented by `keel.rl.qrm.QRMLearner` (a batch = one step of every env copy), `keel.rl.ppo.PPO`
(a batch = `n_steps` of every copy; its `learn` is GAE + the clipped-surrogate epochs) and
`keel.rl.dirl.DiRLLearner` (a batch = one step of every copy on the edge being learned). A batch is
a dict of numpy arrays whose keys each learner documents on its `collect`; only the learner that
made a batch interprets it, so the protocol does not fix them.

A learner whose own schedule ends before the step budget (DiRL, when Dijkstra's search is done)
says so with `finished`; the loop then stops.

A `SplitLearner` can run its two halves in different processes (`keel.scale.ray_spec`): rollout
workers hold copies that only `collect`, the learner process only `learn`s, and between them travel
the batches (`merge` joins several workers' batches into one, env copies side by side) and the
learned parameters (`weights` / `set_weights`: what `collect` acts with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Batch = dict[str, np.ndarray]


@dataclass
class Counters:
    """Running totals a learner reports (the spec-RL ones are zero where they do not apply)."""

    env_steps: int = 0  # every environment step taken, training and estimation rollouts alike
    episodes: int = 0  # training episodes finished
    violations: int = 0  # steps on which the spec's safety part was violated (automaton entered a dead state)
    overrides: int = 0  # unsafe choices a post-posed shield replaced
    updates: int = 0  # calls of learn()

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@runtime_checkable
class ScorePolicy(Protocol):
    """A policy over product states (automaton state u, cell), as scores per action: the greedy action
    is the argmax (after the shield). `reset(mask)` starts new episodes in the rows of `mask`."""

    def reset(self, mask: np.ndarray) -> None: ...

    def scores(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Learner(Protocol):
    """A learning algorithm with its own environments, driven one batch at a time."""

    @property
    def env_steps(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def collect(self) -> Batch: ...

    def learn(self, batch: Batch) -> dict[str, float]: ...

    def train_step(self) -> dict[str, float]: ...

    def policy(self) -> Any: ...

    def counters(self) -> Counters: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class SplitLearner(Learner, Protocol):
    """A `Learner` whose `collect` and `learn` may run in different processes."""

    def weights(self) -> Any: ...

    def set_weights(self, weights: Any) -> None: ...

    def merge(self, batches: list[Batch]) -> Batch: ...
