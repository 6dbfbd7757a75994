"""The Flower apps: one ServerApp and one ClientApp, the same in simulation and in deployment.

Server: Flower's FedAvg or FedProx strategy (legacy strategy API, which Flower's SecAgg+ workflow and
DP wrappers work with), optionally wrapped in client-side or server-side fixed-clipping DP, driven by
Flower's DefaultWorkflow, with the SecAgg+ workflow for the fit stage when asked. Every round the
server evaluates the global policy on each client's world (held-out start rooms) and appends a line to
OUT/rounds.jsonl (a file, because in deployment the ServerApp runs in its own process).
Client: local training on its private world (`keel.scale.fed_world`: PPO in a rooms world, or GRPO on a
text task), with Flower's `secaggplus_mod` or
`fixedclipping_mod` when SecAgg+ or client-side DP is on. A client told to drop out raises mid-round;
`accept_failures` and `min_fit_clients` let the round complete with the rest, and the failure is counted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from keel.scale import fed_world as world
from keel.scale.fed_config import FedConfig

CONFIG_KEY = "keel-fed-config"  # run_config entries when the apps run under a SuperLink
OUT_KEY = "keel-fed-out"


def read_context(context) -> tuple[FedConfig, str]:
    """The config and output folder a deployed run carries in its run config (`keel.scale.fed_deploy`)."""
    return FedConfig.model_validate_json(str(context.run_config[CONFIG_KEY])), str(context.run_config[OUT_KEY])


def _from_context(context, cfg: FedConfig | None, out: str | None) -> tuple[FedConfig, str]:
    return (cfg, str(out)) if cfg is not None else read_context(context)


def client_mods(cfg: FedConfig) -> list:
    """Flower's client mods this config asks for: SecAgg+ masking, client-side DP clipping."""
    from flwr.client.mod import fixedclipping_mod, secaggplus_mod

    mods = []
    if cfg.secagg.enabled:
        mods.append(secaggplus_mod)
    if cfg.dp.side == "client":
        mods.append(fixedclipping_mod)
    return mods


# --- client ---------------------------------------------------------------------------------------
def client_app(cfg: FedConfig | None = None, mods: list | None = None):
    """The ClientApp; with `cfg` (simulation) its mods are that config's, else `mods` (deployment)."""
    from flwr.client import ClientApp, NumPyClient

    class WorldClient(NumPyClient):
        """One client: local training on its private world (`keel.scale.fed_world`)."""

        def __init__(self, cfg: FedConfig, cid: int):
            self.cfg, self.cid = cfg, cid

        def get_parameters(self, config):
            return world.init_params(self.cfg)

        def fit(self, parameters, config):
            rnd = int(config.get("round", 0))
            d = self.cfg.dropout
            if d.round and rnd == d.round and self.cid == d.client:
                raise RuntimeError(f"client {self.cid} dropped out in round {rnd} (fault injection)")
            params, samples, local = world.fit(self.cfg, self.cid, parameters, rnd,
                                               float(config.get("proximal_mu", 0.0)))
            pref = self.cfg.heterogeneity.preference
            weight = pref[self.cid % len(pref)]
            return params, max(1, int(samples * weight)), {"client": self.cid, "local_return": local}

    def client_fn(context):
        c, _ = _from_context(context, cfg, "")
        return WorldClient(c, int(context.node_config["partition-id"])).to_client()

    return ClientApp(client_fn=client_fn, mods=client_mods(cfg) if cfg is not None else list(mods or []))


# --- server ---------------------------------------------------------------------------------------
def _strategy(cfg: FedConfig, out: Path):
    from flwr.common import ndarrays_to_parameters
    from flwr.server.strategy import (
        DifferentialPrivacyClientSideFixedClipping,
        DifferentialPrivacyServerSideFixedClipping,
        FedAvg,
        FedProx,
    )

    base = FedProx if cfg.strategy == "fedprox" else FedAvg

    class Recorded(base):
        """The chosen strategy, recording how many results and failures each round aggregated."""

        failures: dict[int, int] = {}
        results: dict[int, int] = {}

        def aggregate_fit(self, server_round, results, failures):
            Recorded.results[server_round], Recorded.failures[server_round] = len(results), len(failures)
            return super().aggregate_fit(server_round, results, failures)

    t0 = time.perf_counter()

    def evaluate(server_round, arrays, config):
        per_client = [world.score(cfg, arrays, c) for c in range(cfg.clients)]
        row = {"round": server_round, "success": float(np.mean(per_client)), "per_client": per_client,
               "results": Recorded.results.get(server_round, 0), "failures": Recorded.failures.get(server_round, 0),
               "seconds": time.perf_counter() - t0}
        with open(out / "rounds.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        return 0.0, {"success": row["success"]}

    kw = dict(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=cfg.min_fit_clients,
              min_evaluate_clients=0, min_available_clients=cfg.clients, evaluate_fn=evaluate,
              on_fit_config_fn=lambda r: {"round": r}, accept_failures=True,
              initial_parameters=ndarrays_to_parameters(world.init_params(cfg)))
    strategy = Recorded(proximal_mu=cfg.mu, **kw) if cfg.strategy == "fedprox" else Recorded(**kw)
    if cfg.dp.side == "client":
        strategy = DifferentialPrivacyClientSideFixedClipping(strategy, cfg.dp.noise_multiplier, cfg.dp.clip,
                                                              cfg.clients)
    elif cfg.dp.side == "server":
        strategy = DifferentialPrivacyServerSideFixedClipping(strategy, cfg.dp.noise_multiplier, cfg.dp.clip,
                                                              cfg.clients)
    return strategy


def server_app(cfg: FedConfig | None = None, out: str | None = None):
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        c, o = _from_context(context, cfg, out)
        Path(o).mkdir(parents=True, exist_ok=True)
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=c.rounds), strategy=_strategy(c, Path(o)))
        fit = None
        if c.secagg.enabled:
            fit = SecAggPlusWorkflow(num_shares=c.secagg.num_shares,
                                     reconstruction_threshold=c.secagg.reconstruction_threshold)
        DefaultWorkflow(fit_workflow=fit)(grid, ctx)

    return app
