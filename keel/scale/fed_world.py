"""What a federation needs from its clients' private world, and the two there are.

    model = world.new_model(cfg)                      # the world's learner (a policy, a language model)
    world.set_weights(model, params); params = world.get_weights(model)   # what clients and server exchange
    samples, local = world.train(cfg, client, model, round, mu)           # local training, in place
    success = world.score(cfg, model, client)         # held-out score on the client's world

`keel.scale.fed_rooms` (PPO in rooms worlds) and `keel.scale.fed_text` (GRPO on text tasks) implement
it as module functions; the Flower apps (`fed_app`) and the baselines (`fed_run`) call only these.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from keel.scale.fed_config import FedConfig


class FedWorld(Protocol):
    def new_model(self, cfg: FedConfig) -> Any: ...

    def get_weights(self, model: Any) -> list[np.ndarray]: ...

    def set_weights(self, model: Any, arrays: list[np.ndarray]) -> None: ...

    def train(self, cfg: FedConfig, client: int, model: Any, rnd: int, mu: float = 0.0) -> tuple[int, float]: ...

    def score(self, cfg: FedConfig, model: Any, client: int) -> float: ...


def world_of(cfg: FedConfig) -> FedWorld:
    if cfg.world == "text":
        from keel.scale import fed_text

        return fed_text
    from keel.scale import fed_rooms

    return fed_rooms


def init_params(cfg: FedConfig) -> list[np.ndarray]:
    world = world_of(cfg)
    return world.get_weights(world.new_model(cfg))


def fit(cfg: FedConfig, client: int, params: list[np.ndarray], rnd: int, mu: float = 0.0
        ) -> tuple[list[np.ndarray], int, float]:
    """A client's round: a fresh model with the global weights, trained locally -> (weights, samples, local)."""
    world = world_of(cfg)
    model = world.new_model(cfg)
    world.set_weights(model, params)
    samples, local = world.train(cfg, client, model, rnd, mu)
    return world.get_weights(model), samples, local


def score(cfg: FedConfig, params: list[np.ndarray], client: int) -> float:
    world = world_of(cfg)
    model = world.new_model(cfg)
    world.set_weights(model, params)
    return world.score(cfg, model, client)
