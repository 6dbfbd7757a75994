"""Private text tasks for federated GRPO: each client's task and problems, local GRPO training, evaluation.

A client's task is `FedText.task` with its options updated by the client's variant (`FedText.variants`,
cycled: e.g. one client adds, another multiplies — FedAgentGym's environment variants for text). With
`heterogeneity.coverage: split` each client trains on its own slice of the training pool, with `full` on
all of it. Local training is Keel's own GRPO (`keel.rl.grpo.GRPO.step`, the `llm_rl` job's update),
`local_steps` steps per round from the global weights, with a fresh optimiser each round (as FedAvg's
clients do); FedProx's proximal term is applied as its proximal operator after every step, as for the
rooms clients (`keel.scale.fed_rooms`). The exchanged weights are the trainable ones: LoRA adapters
when `lora_r > 0`, else the whole model. Evaluation is held out: greedy accuracy on the client task's
test split, which no client trains on.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from keel.scale.fed_config import FedConfig


def task_of(cfg: FedConfig, client: int):
    from keel.envs.text import make_task

    t = cfg.text
    return make_task(t.task, **{**t.task_options, **t.variants[client % len(t.variants)]})


def pool_of(cfg: FedConfig, client: int) -> list:
    pool = task_of(cfg, client).problems("train", cfg.text.train_pool, cfg.seed)
    return pool[client :: cfg.clients] if cfg.heterogeneity.coverage == "split" else pool


def _model(cfg: FedConfig):
    from keel.llm import load_model
    from keel.llm.lora import add_lora

    torch.set_num_threads(max(1, cfg.text.threads))  # a client owns its CPUs (Flower sizes them)
    model, tok = load_model(cfg.text.model, seed=cfg.seed)
    if cfg.text.lora_r > 0:
        model = add_lora(model, cfg.text.lora_r)
    return model, tok


def _trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def get_weights(model) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in _trainable(model)]


def set_weights(model, arrays: list[np.ndarray]) -> None:
    with torch.no_grad():
        for p, a in zip(_trainable(model), arrays, strict=True):
            p.copy_(torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(p.shape))


# --- the federation's world protocol (keel.scale.fed_world.FedWorld) ---------------------------------
def init_params(cfg: FedConfig) -> list[np.ndarray]:
    return get_weights(_model(cfg)[0])


def fit(cfg: FedConfig, client: int, params: list[np.ndarray], rnd: int, mu: float = 0.0
        ) -> tuple[list[np.ndarray], int, float]:
    """`local_steps` GRPO steps on the client's pool from `params` -> (new params, samples, mean reward)."""
    from keel.rl.grpo import GRPO

    t, g = cfg.text, cfg.text.grpo
    model, tok = _model(cfg)
    set_weights(model, params)
    trainer = GRPO(model, tok, g)
    task, pool = task_of(cfg, client), pool_of(cfg, client)
    anchor = [p.detach().clone() for p in _trainable(model)] if mu > 0 else None
    rewards = []
    for s in range(t.local_steps):
        seed = cfg.seed * 1_000_003 + client * 10_007 + rnd * 101 + s  # problems and samples: (seed, client, round, step)
        problems = random.Random(seed).sample(pool, min(g.prompts_per_step, len(pool)))
        rewards.append(trainer.step(problems, task, t.reward, seed=seed, system=t.system)["reward"])
        if anchor is not None:  # prox of (mu/2)||w - w_g||^2 with step lr: w <- (w + lr mu w_g) / (1 + lr mu)
            with torch.no_grad():
                for p, a in zip(_trainable(model), anchor, strict=True):
                    p.add_(a, alpha=g.lr * mu).div_(1.0 + g.lr * mu)
    samples = t.local_steps * g.prompts_per_step * g.group_size
    return get_weights(model), samples, float(np.mean(rewards))


def score(cfg: FedConfig, params: list[np.ndarray], client: int) -> float:
    """Greedy accuracy of `params` on the client task's held-out test problems."""
    from keel.rl.grpo import accuracy

    t = cfg.text
    model, tok = _model(cfg)
    set_weights(model, params)
    task = task_of(cfg, client)
    test = task.problems("test", t.eval_n, 12345)
    return float(accuracy(model, tok, task, test, t.eval_max_new_tokens, system=t.system, reward=t.reward)["accuracy"])
