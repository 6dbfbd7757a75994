"""The same federated app on Flower's Deployment Engine: real `flower-superlink` and `flower-supernode`
processes on loopback, the app submitted with `flwr run`, run to completion; every process is stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.scale.fed_config import FedConfig
from keel.scale.fed_deploy import write_app

BIN = Path(sys.executable).parent


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stop(procs: list[subprocess.Popen]) -> None:
    """Each process was started in its own session; its group holds the apps it spawned (flwr-serverapp,
    flwr-clientapp), so the group is signalled, not just the process."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the SuperLink exited at start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the SuperLink did not listen on {port} within {timeout_s:.0f} s")


@pytest.mark.slow
def test_superlink_and_supernodes_run_the_app_to_completion(tmp_path):
    cfg = FedConfig.model_validate({"clients": 2, "rounds": 2, "local_steps": 256, "num_envs": 4, "min_fit_clients": 2,
                                    "ppo": {"n_steps": 32, "batch_size": 64}})
    out = tmp_path / "out"
    app = tmp_path / "app"
    write_app(cfg, app, out)
    link, health, *node_http = _ports(2 + cfg.clients)  # Flower 1.42: Fleet and Control APIs share one HTTP port
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "keel"\n\n[superlink.keel]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, *args: str) -> subprocess.Popen:
        f = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, cwd=tmp_path, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)

    procs = []
    try:
        procs.append(start("superlink", "flower-superlink", "--insecure", "--host", "127.0.0.1",
                           "--port", str(link), "--health-server-address", f"127.0.0.1:{health}"))
        _wait_listening(link, procs[0])
        for c in range(cfg.clients):
            procs.append(start(f"supernode{c}", "flower-supernode", "--insecure", "--superlink",
                               f"127.0.0.1:{link}", "--host", "127.0.0.1", "--port", str(node_http[c]),
                               "--node-config", f"partition-id={c}"))
        res = subprocess.run([str(BIN / "flwr"), "run", str(app), "keel", "--stream"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        logtext = "\n".join(f.read_text()[-2000:] for f in sorted(logs.iterdir()))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:] + logtext
        rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
        rows = [r for r in rows if r["round"] > 0]
        assert [r["round"] for r in rows] == [1, 2], res.stdout[-3000:] + logtext
        assert all(r["results"] == 2 and r["failures"] == 0 for r in rows)  # both SuperNodes trained each round
        assert all(0.0 <= r["success"] <= 1.0 for r in rows)
    finally:
        _stop(procs)
    assert all(p.poll() is not None for p in procs)
