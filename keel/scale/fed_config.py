"""The config of a federated run (`keel fed run CONFIG`): clients, strategy, privacy, heterogeneity, faults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from keel.config import KeelModel
from keel.rl.grpo import GRPOConfig
from keel.rl.ppo import PPOConfig


class Heterogeneity(KeelModel):
    """FedAgentGym's knobs, for rooms worlds.

    coverage: `split` gives each client its own start room (it sees only part of the state space);
    `full` lets every client start in every room (one env copy per start room). Text clients: `split`
    gives each client its own slice of the training problems, `full` all of them.
    layouts: `same` (one goal room for all) or `per_client` (each client's goal in another room: the
    environment-variant heterogeneity under which plain FedAvg collapses).
    hardness: per-client slip probabilities (cycled), harder worlds for some clients (rooms; text clients'
    variants are `text.variants`, e.g. more digits).
    preference: per-client weights of its episodes in the average (cycled; 1 = by sample count only).
    """

    coverage: Literal["split", "full"] = "split"
    layouts: Literal["same", "per_client"] = "same"
    hardness: list[float] = Field(default_factory=lambda: [0.0])
    preference: list[float] = Field(default_factory=lambda: [1.0])


class DP(KeelModel):
    """Client-level DP with Flower's fixed clipping (clip updates, Gaussian noise on the aggregate)."""

    side: Literal["off", "client", "server"] = "off"
    clip: float = 1.0
    noise_multiplier: float = 1.0
    delta: float = 1e-3


class SecAgg(KeelModel):
    enabled: bool = False
    num_shares: int = 3
    reconstruction_threshold: int = 2


class Dropout(KeelModel):
    """Fault injection: client `client` fails in round `round` (0 = never)."""

    client: int = 0
    round: int = 0


def _grpo_default() -> GRPOConfig:
    return GRPOConfig(group_size=4, prompts_per_step=4, max_new_tokens=4, lr=3e-3, loss="cispo")


class FedText(KeelModel):
    """GRPO clients on text tasks (`world: text`, `keel.scale.fed_text`); the names are the llm_rl job's."""

    model: str = "tiny"  # tiny, smollm2, or a local Hugging Face model directory
    lora_r: int = 0  # > 0: clients train and exchange LoRA adapters only
    task: str = "instruct"
    task_options: dict[str, Any] = Field(default_factory=dict)
    variants: list[dict[str, Any]] = Field(default_factory=lambda: [{}])  # per-client task options (cycled)
    system: str | None = None
    reward: Literal["exact", "format", "partial"] = "partial"
    train_pool: int = 96  # training problems, split among clients under coverage: split
    eval_n: int = 32  # held-out test problems per client task
    eval_max_new_tokens: int = 4
    # held-out score: greedy accuracy, or the mean reward under `reward` (graded: partial credit tells
    # apart models that exact accuracy puts on the same few values)
    score: Literal["accuracy", "reward"] = "accuracy"
    local_steps: int = 2  # GRPO steps per client per round
    threads: int = 1
    grpo: GRPOConfig = Field(default_factory=_grpo_default)


class FedConfig(KeelModel):
    kind: Literal["fed"] = "fed"
    seed: int = 0
    world: Literal["rooms", "text"] = "rooms"  # PPO clients in rooms worlds, or GRPO clients on text tasks
    runs_dir: str = "runs"
    clients: int = 3
    rounds: int = 6
    strategy: Literal["fedavg", "fedprox"] = "fedavg"
    mu: float = 0.0  # FedProx proximal weight
    min_fit_clients: int = 2  # a round completes with this many results (the rest may drop out)
    local_steps: int = 4096  # environment steps per client per round
    num_envs: int = 8
    n_rooms: int = 9
    room_size: int = 3
    max_episode_steps: int = 100
    goal_room: list[int] = Field(default_factory=lambda: [2, 2])
    heterogeneity: Heterogeneity = Field(default_factory=Heterogeneity)
    dp: DP = Field(default_factory=DP)
    secagg: SecAgg = Field(default_factory=SecAgg)
    dropout: Dropout = Field(default_factory=Dropout)
    ppo: PPOConfig = Field(default_factory=lambda: PPOConfig(n_steps=64, batch_size=128, n_epochs=4, lr=3e-3,
                                                                                 ent_coef=0.01))
    text: FedText = Field(default_factory=FedText)
