"""Joining or starting a Ray cluster, and reserving resources per role with a placement group.

`connect` reuses a Ray already initialised in this process (a test's `ray.cluster_utils.Cluster`),
joins a running cluster (`auto` or HOST:PORT, see README: `ray start --head` / `ray start --address`),
or starts a local one sized for the job. Whoever started Ray shuts it down (`Session.close`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from keel.errors import KeelError


@dataclass
class Session:
    started: bool
    pg: Any = None
    actors: list = field(default_factory=list)

    def close(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for a in self.actors:
            ray.kill(a, no_restart=True)
        if self.pg is not None:
            remove_placement_group(self.pg)
        if self.started:
            ray.shutdown()


INLINE_BYTES = 1 << 20


def connect(address: str | None, num_cpus: float) -> Session:
    if not address:
        # Ray's single-machine mode binds the GCS, the nodes and the driver to 127.0.0.1; read by Ray at
        # import, so set before the first `import ray` (a user's own value wins)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return Session(started=False)
    from keel.malloc import ENV

    # workers inherit the driver's environment; keep their torch/BLAS pools at one thread per CPU, and their
    # malloc reusing large buffers (without: measured 56k page faults per rollout in a rollout actor and
    # generation 2-3x slower than in-process; see keel.malloc)
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **ENV}}
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False, include_dashboard=False)
        else:
            # "local": a new Ray of our own, never another job's cluster found through /tmp/ray
            # objects up to 1 MiB (a spec-RL rollout batch, its policy's weights) travel inside the task
            # messages instead of through the shared-memory store: on one machine that halves the latency of
            # a worker -> learner hand-over (measured 5.5 -> 2.8 ms for 0.3 MB; Ray's default limit is 100 KiB).
            # Ray starts its workers at nice 15, which suits background tasks beside a foreground driver; here
            # the rollout actors are the job, and at nice 15 they lose the CPU to the learner and to Ray's own
            # daemons (measured: generation in the actor 12-23% slower than in-process on an idle machine)
            ray.init(address="local", num_cpus=max(1, int(-(-num_cpus // 1))), runtime_env=env, log_to_driver=False,
                     include_dashboard=False, object_store_memory=min(2 << 30, _mem_quarter()),
                     _system_config={"max_direct_call_object_size": INLINE_BYTES, "worker_niceness": 0})
    except ConnectionError as e:
        raise KeelError(f"cannot reach a Ray cluster at {address!r} ({e}); start one with `ray start --head` "
                        "or drop --address to run on a local Ray") from None
    return Session(started=True)


def _mem_quarter() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError):
        return 2 << 30


def reserve(session: Session, bundles: list[dict[str, float]], timeout_s: float = 120.0):
    """A placement group with one bundle per role instance (PACK: co-locate when they fit)."""
    import ray
    from ray.util.placement_group import placement_group

    pg = placement_group(bundles, strategy="PACK")
    session.pg = pg
    try:
        ray.get(pg.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        total = ray.cluster_resources().get("CPU", 0)
        need = sum(b.get("CPU", 0) for b in bundles)
        raise KeelError(f"the cluster cannot place {need:g} CPUs for the learner and rollout workers "
                        f"(it has {total:g}); lower --rollout-workers or add nodes") from None
    return pg


def on_bundle(pg, index: int):
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=index)
