"""`keel fed run CONFIG`: a federated run on Flower's Simulation Engine, and the baselines it is judged by.

Clients are PPO learners in rooms worlds or GRPO learners on text tasks (`world`, `keel.scale.fed_world`).

- `simulate`: the ServerApp and ClientApp of `keel.scale.fed_app` with one virtual SuperNode per client
  (Flower's Simulation Engine, on a loopback-only local Ray sized for the machine).
- `local_only`: each client trains alone for the same number of steps; scored on its own world's held-out
  starts, averaged.
- `centralized`: one learner that sees every client's world in turn, same total steps (pooled data).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from keel.errors import KeelError
from keel.scale.fed_config import FedConfig
from keel.scale.fed_world import world_of


def check(cfg: FedConfig) -> None:
    if cfg.clients < 1 or cfg.rounds < 1:
        raise KeelError("clients and rounds must be >= 1")
    if not 1 <= cfg.min_fit_clients <= cfg.clients:
        raise KeelError(f"min_fit_clients must be in 1..clients ({cfg.clients}), got {cfg.min_fit_clients}")
    if cfg.secagg.enabled and not 2 <= cfg.secagg.reconstruction_threshold <= cfg.secagg.num_shares <= cfg.clients:
        raise KeelError("secagg needs 2 <= reconstruction_threshold <= num_shares <= clients")
    if cfg.dropout.round and not 0 <= cfg.dropout.client < cfg.clients:
        raise KeelError(f"dropout.client must be a client id in 0..{cfg.clients - 1}")
    if cfg.world == "text":
        t = cfg.text
        if not t.variants or t.local_steps < 1 or t.eval_n < 1:
            raise KeelError("text: variants must list at least one task-options dict ({} for none); "
                            "local_steps and eval_n must be >= 1")
        if t.train_pool < cfg.clients * (1 if cfg.heterogeneity.coverage == "full" else t.grpo.prompts_per_step):
            raise KeelError(f"text.train_pool ({t.train_pool}) leaves a client fewer than prompts_per_step "
                            f"({t.grpo.prompts_per_step}) problems; raise it")
        from keel.scale.fed_text import task_of

        for c in range(min(cfg.clients, len(t.variants))):
            task_of(cfg, c)  # an unknown task or a bad option: refused before any client starts


def simulate(cfg: FedConfig, out: Path, num_cpus: int = 2) -> dict:
    """Run the federation; returns per-round rows (success, results, failures, epsilon)."""
    check(cfg)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the engine's Ray on loopback only
    # address "local": always a Ray of our own, never another job's cluster found in /tmp/ray
    from flwr.simulation import run_simulation

    from keel.scale.fed_app import client_app, server_app
    from keel.scale.fed_dp import epsilon_per_round

    out.mkdir(parents=True, exist_ok=True)
    (out / "rounds.jsonl").unlink(missing_ok=True)
    t0 = time.perf_counter()
    run_simulation(server_app(cfg, str(out)), client_app(cfg), num_supernodes=cfg.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"address": "local", "num_cpus": num_cpus, "include_dashboard": False,
                                                 "log_to_driver": False}})
    wall = time.perf_counter() - t0
    f = out / "rounds.jsonl"
    rows = [json.loads(x) for x in f.read_text().splitlines()] if f.is_file() else []
    rows = [r for r in rows if r["round"] > 0]
    if len(rows) != cfg.rounds:
        raise KeelError(f"the federation finished {len(rows)} of {cfg.rounds} rounds; see Flower's log above")
    if cfg.dp.side != "off":
        eps = epsilon_per_round(cfg.dp.noise_multiplier, 1.0, cfg.rounds, cfg.dp.delta)
        for r, e in zip(rows, eps, strict=True):
            r["epsilon"] = e
    return {"rounds": rows, "final_success": rows[-1]["success"], "wall_s": wall,
            "failures": sum(r["failures"] for r in rows), "results": sum(r["results"] for r in rows)}


def local_only(cfg: FedConfig) -> dict:
    """Each client's own model, trained round after round on its world alone."""
    world, per_client = world_of(cfg), []
    for c in range(cfg.clients):
        model = world.new_model(cfg)
        for rnd in range(1, cfg.rounds + 1):
            world.train(cfg, c, model, rnd)
        per_client.append(world.score(cfg, model, c))
    return {"success": float(np.mean(per_client)), "per_client": per_client}


def centralized(cfg: FedConfig) -> dict:
    """One model that visits every client's world in turn, round after round (pooled data)."""
    world = world_of(cfg)
    model = world.new_model(cfg)
    for rnd in range(1, cfg.rounds + 1):
        for c in range(cfg.clients):
            world.train(cfg, c, model, rnd)
    per_client = [world.score(cfg, model, c) for c in range(cfg.clients)]
    return {"success": float(np.mean(per_client)), "per_client": per_client}
