"""The federation as a Flower App for Flower's Deployment Engine: real `flower-superlink` and
`flower-supernode` processes, driven with `flwr run APP SUPERLINK`.

    keel fed app CONFIG DIR                       # writes DIR/pyproject.toml: this app + the config
    flower-superlink --insecure                   # on the server machine
    flower-supernode --insecure --superlink HOST:9092 --node-config "partition-id=0"   # one per client
    flwr run DIR keel-federation --stream         # FLWR_HOME/config.toml names the SuperLink (README)

`server` and `client` are the same ServerApp and ClientApp the Simulation Engine runs (`keel.scale.fed_app`),
reading the federated config from the run config. Flower fixes a ClientApp's mods when it is built, before a
run config exists, so `client` carries one mod that applies, per message, the mods the run's config asks
for (SecAgg+, client-side DP clipping), in the order the simulation's ClientApp lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

from keel.scale.fed_app import CONFIG_KEY, OUT_KEY, client_app, client_mods, read_context, server_app
from keel.scale.fed_config import FedConfig


def _configured_mods(msg, context, call_next):
    cfg, _ = read_context(context)
    chain = call_next
    for mod in reversed(client_mods(cfg)):
        chain = (lambda m, nxt: lambda mm, cc: m(mm, cc, nxt))(mod, chain)
    return chain(msg, context)


server = server_app()
client = client_app(mods=[_configured_mods])


def write_app(cfg: FedConfig, app_dir: Path, out: Path) -> Path:
    """A Flower App directory for `flwr run`: its pyproject.toml points at `server` / `client` (Keel must be
    installed where the SuperLink and SuperNodes run) and carries the config and the output folder."""
    app_dir.mkdir(parents=True, exist_ok=True)
    conf = json.dumps(cfg.model_dump_json())  # a TOML basic string is a JSON string
    text = f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "keel-federation"
version = "1.0.0"
description = "Keel federated RL ({cfg.world} clients, {cfg.strategy})"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "keel"

[tool.flwr.app.components]
serverapp = "keel.scale.fed_deploy:server"
clientapp = "keel.scale.fed_deploy:client"

[tool.flwr.app.config]
{CONFIG_KEY} = {conf}
{OUT_KEY} = {json.dumps(str(out.resolve()))}
"""
    path = app_dir / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    return path
