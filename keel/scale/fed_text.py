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


class TextModel:
    """A client's language model and tokenizer (the world's `model`)."""

    def __init__(self, model, tokenizer):
        self.model, self.tok = model, tokenizer


def new_model(cfg: FedConfig) -> TextModel:
    from keel.llm import load_model
    from keel.llm.lora import add_lora

    torch.set_num_threads(max(1, cfg.text.threads))  # a client owns its CPUs (Flower sizes them)
    model, tok = load_model(cfg.text.model, seed=cfg.seed)
    if cfg.text.lora_r > 0:
        model = add_lora(model, cfg.text.lora_r)
    return TextModel(model, tok)


def _trainable(m: TextModel) -> list[torch.nn.Parameter]:
    return [p for p in m.model.parameters() if p.requires_grad]


def get_weights(m: TextModel) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in _trainable(m)]


def set_weights(m: TextModel, arrays: list[np.ndarray]) -> None:
    with torch.no_grad():
        for p, a in zip(_trainable(m), arrays, strict=True):
            p.copy_(torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(p.shape))


# --- the federation's world protocol (keel.scale.fed_world.FedWorld) ---------------------------------
def train(cfg: FedConfig, client: int, m: TextModel, rnd: int, mu: float = 0.0) -> tuple[int, float]:
    """`local_steps` GRPO steps on the client's pool, in place (fresh optimiser) -> (samples, mean reward)."""
    from keel.rl.grpo import GRPO

    t, g = cfg.text, cfg.text.grpo
    trainer = GRPO(m.model, m.tok, g)
    task, pool = task_of(cfg, client), pool_of(cfg, client)
    anchor = [p.detach().clone() for p in _trainable(m)] if mu > 0 else None
    rewards = []
    for s in range(t.local_steps):
        seed = cfg.seed * 1_000_003 + client * 10_007 + rnd * 101 + s  # problems and samples: (seed, client, round, step)
        problems = random.Random(seed).sample(pool, min(g.prompts_per_step, len(pool)))
        rewards.append(trainer.step(problems, task, t.reward, seed=seed, system=t.system)["reward"])
        if anchor is not None:  # prox of (mu/2)||w - w_g||^2 with step lr: w <- (w + lr mu w_g) / (1 + lr mu)
            with torch.no_grad():
                for p, a in zip(_trainable(m), anchor, strict=True):
                    p.add_(a, alpha=g.lr * mu).div_(1.0 + g.lr * mu)
    return t.local_steps * g.prompts_per_step * g.group_size, float(np.mean(rewards))


def score(cfg: FedConfig, m: TextModel, client: int) -> float:
    """Greedy accuracy (or mean reward, `text.score`) on the client task's held-out test problems."""
    from keel.rl.grpo import accuracy

    t = cfg.text
    task = task_of(cfg, client)
    test = task.problems("test", t.eval_n, 12345)
    return float(accuracy(m.model, m.tok, task, test, t.eval_max_new_tokens, system=t.system, reward=t.reward)[t.score])
