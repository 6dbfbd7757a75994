"""Reasoning-enhanced supervised fine-tuning (R-SFT), the first AgentArk strategy (arXiv 2602.03955).

Correctness-driven extraction: keep only problems whose debate reached an answer the task's verifier
accepts, and for each keep one trajectory that carries it (the first last-round step that voted for the
answer). The student learns it as the reply to the plain problem, with no debate in its prompt: at test
time it answers alone, at one model's cost. The loss is the token-level mean negative log-likelihood of
the reply's tokens and its end-of-turn token, never of the prompt's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from keel.config import KeelModel
from keel.distill.debate import Transcript
from keel.errors import KeelError
from keel.llm.logprobs import completion_logprobs
from keel.llm.sampler import encode_prompts


class SFTConfig(KeelModel):
    lr: float = 1e-5
    epochs: int = 2
    batch_size: int = 8
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Example:
    messages: tuple[tuple[str, str], ...]  # the prompt as (role, content) pairs, hashable for deduplication
    reply: str

    @classmethod
    def of(cls, messages: list[dict], reply: str) -> Example:
        return cls(tuple((m["role"], m["content"]) for m in messages), reply.strip())

    def chat(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]


def rsft_examples(transcripts: list[Transcript], system: str | None = None) -> list[Example]:
    """One verified trajectory per problem the debate got right, as the reply to the plain problem."""
    out = []
    for t in transcripts:
        if not t.correct:
            continue
        last = max(s.round for s in t.steps)
        step = next(s for s in t.steps if s.round == last and s.key == t.answer and s.correct)
        out.append(Example.of(t.problem.messages(system), step.text))
    return out


def tokenize(tokenizer, examples: list[Example]) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, reply ids + end of turn) per example, as the sampler would see and produce them."""
    prompts = encode_prompts(tokenizer, [e.chat() for e in examples])
    replies = [tokenizer(e.reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
               for e in examples]
    return prompts, replies


def sft(model, tokenizer, examples: list[Example], cfg: SFTConfig, seed: int = 0) -> list[dict]:
    """Fine-tune `model` in place on `examples` (shuffled per epoch with `seed`); the loss of every step."""
    if not examples:
        raise KeelError("no training examples: the debate got no problem right (use more problems or agents)")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    prompts, replies = tokenize(tokenizer, examples)
    rng = random.Random(seed)
    logs = []
    model.train()
    for epoch in range(cfg.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for lo in range(0, len(order), cfg.batch_size):
            rows = order[lo : lo + cfg.batch_size]
            logp, _, mask = completion_logprobs(model, [prompts[i] for i in rows], [replies[i] for i in rows],
                                                tokenizer.pad_token_id, with_entropy=False)
            loss = -(logp * mask).sum() / mask.sum().clamp(min=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            if torch.isfinite(loss) and norm == norm:  # a non-finite step would poison the weights
                opt.step()
            logs.append({"epoch": epoch, "loss": float(loss.detach()), "grad_norm": norm})
    opt.zero_grad(set_to_none=True)
    model.eval()
    return logs
