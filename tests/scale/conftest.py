"""A two-node Ray cluster on loopback for the scale tests (head + one worker node, 1 + 2 CPUs)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    # Ray's single-machine mode: every node, the GCS and the driver bind to 127.0.0.1 (loopback only)
    monkey = pytest.MonkeyPatch()
    monkey.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    monkey.undo()
