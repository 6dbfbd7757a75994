"""Private tasks for federated PPO in rooms worlds: each client's world, local training, evaluation.

A client's world is the grid rooms world with its own start room (coverage), goal room (layout variant)
and slip (hardness), from `FedConfig.heterogeneity`. Local training is Keel's own PPO (`train_ppo`),
continued from the global weights; FedProx's proximal term mu/2 ||w - w_global||^2 is applied as its
proximal operator after every PPO iteration (an inexact local solver, which FedProx allows: Li et al.
2020, arXiv 1812.06127), because PPO's loss is not ours to edit. Evaluation is held out: the greedy
policy is run from every room but the goal room, including rooms no client ever starts in.
"""

from __future__ import annotations

import numpy as np
import torch

from keel.envs.rooms_batched import BatchedRooms
from keel.envs.rooms_layout import get_layout
from keel.rl.ppo import Policy, train_ppo
from keel.scale.fed_config import FedConfig

CORNER_GOALS = ((2, 2), (0, 2), (2, 0), (0, 0))


def goal_of(cfg: FedConfig, client: int) -> tuple[int, int]:
    if cfg.heterogeneity.layouts == "per_client":
        return CORNER_GOALS[client % len(CORNER_GOALS)]
    return (int(cfg.goal_room[0]), int(cfg.goal_room[1]))


def starts(cfg: FedConfig, goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Every room but the goal room (the held-out evaluation starts)."""
    return [r for r in get_layout(cfg.n_rooms).rooms if r != goal]


def start_of(cfg: FedConfig, client: int, rnd: int) -> tuple[int, int]:
    h = cfg.heterogeneity
    if h.layouts == "per_client":  # variants differ by goal; all start in the centre-most free room
        return min(starts(cfg, goal_of(cfg, client)), key=lambda r: abs(r[0] - 1) + abs(r[1] - 1))
    cands = starts(cfg, goal_of(cfg, client))
    i = round(client * len(cands) / max(cfg.clients, 1))
    return cands[(i + (rnd if h.coverage == "full" else 0)) % len(cands)]


def world(cfg: FedConfig, client: int, start, num_envs: int | None = None) -> BatchedRooms:
    g = goal_of(cfg, client)
    slip = cfg.heterogeneity.hardness[client % len(cfg.heterogeneity.hardness)]
    return BatchedRooms(num_envs=num_envs or cfg.num_envs, n_rooms=cfg.n_rooms, room_size=cfg.room_size,
                        slip=slip, max_episode_steps=cfg.max_episode_steps, task="goal_a",
                        goals={"a": list(g)}, start=list(start))


def new_policy(cfg: FedConfig) -> Policy:
    env = world(cfg, 0, start_of(cfg, 0, 0))
    torch.manual_seed(cfg.seed)
    return Policy(env.single_observation_space, env.single_action_space, cfg.ppo.model_copy(update={"seed": cfg.seed}))


def get_weights(policy: Policy) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in policy.parameters()]


def set_weights(policy: Policy, arrays: list[np.ndarray]) -> None:
    with torch.no_grad():  # in place: the policy's numpy views of its parameters stay valid
        for p, a in zip(policy.parameters(), arrays, strict=True):
            p.copy_(torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(p.shape))


def local_train(cfg: FedConfig, client: int, policy: Policy, rnd: int, mu: float = 0.0) -> dict:
    """`cfg.local_steps` PPO steps on the client's world from the current weights; returns stats."""
    env = world(cfg, client, start_of(cfg, client, rnd))
    pcfg = cfg.ppo.model_copy(update={"seed": cfg.seed * 100_003 + client * 1_009 + rnd, "checkpoint_every": 10**9})
    callback = None
    if mu > 0:
        anchor = [p.detach().clone() for p in policy.parameters()]
        per_iter = pcfg.n_epochs * -(-pcfg.n_steps * cfg.num_envs // pcfg.batch_size)
        eta_mu = pcfg.lr * per_iter * mu

        def callback(pol, info):  # prox of (mu/2)||w - w_g||^2 with step eta: w <- (w + eta mu w_g) / (1 + eta mu)
            with torch.no_grad():
                for p, a in zip(pol.parameters(), anchor, strict=True):
                    p.add_(a, alpha=eta_mu).div_(1.0 + eta_mu)
            return None

    _, stats = train_ppo(pcfg, env, cfg.local_steps, callback=callback, policy=policy)
    return {"steps": int(stats["steps"]), "mean_return": float(np.nan_to_num(stats.get("mean_return", 0.0)))}


def success(cfg: FedConfig, policy: Policy, client: int) -> float:
    """Share of held-out start rooms from which the greedy policy reaches the client's goal in time."""
    wins = []
    for s in starts(cfg, goal_of(cfg, client)):
        env = world(cfg, client, s, num_envs=4)
        obs, _ = env.reset(seed=cfg.seed + 7)
        reached = np.zeros(env.num_envs, dtype=bool)
        for _ in range(cfg.max_episode_steps):
            obs, _, term, trunc, _ = env.step(policy.act(obs, deterministic=True))
            reached |= term & ~reached
            if (term | trunc).all():
                break
        wins.append(float(reached.mean()))
    return float(np.mean(wins))



# --- the federation's world protocol (keel.scale.fed_world.FedWorld) ---------------------------------
new_model = new_policy
score = success


def train(cfg: FedConfig, client: int, policy: Policy, rnd: int, mu: float = 0.0) -> tuple[int, float]:
    stats = local_train(cfg, client, policy, rnd, mu)
    return stats["steps"], stats["mean_return"]
