"""What a federation needs from its clients' private world, and the two there are.

    params = world.init_params(cfg)                           # the global model's first weights
    params, samples, local = world.fit(cfg, client, params, round, mu)   # local training from the global weights
    success = world.score(cfg, params, client)                # held-out score on the client's world

`keel.scale.fed_rooms` (PPO in rooms worlds) and `keel.scale.fed_text` (GRPO on text tasks) implement
it as module functions; the Flower apps (`fed_app`) and the baselines (`fed_run`) call only these.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from keel.scale.fed_config import FedConfig


class FedWorld(Protocol):
    def init_params(self, cfg: FedConfig) -> list[np.ndarray]: ...

    def fit(self, cfg: FedConfig, client: int, params: list[np.ndarray], rnd: int, mu: float = 0.0
            ) -> tuple[list[np.ndarray], int, float]: ...

    def score(self, cfg: FedConfig, params: list[np.ndarray], client: int) -> float: ...


def world_of(cfg: FedConfig) -> FedWorld:
    if cfg.world == "text":
        from keel.scale import fed_text

        return fed_text
    from keel.scale import fed_rooms

    return fed_rooms
