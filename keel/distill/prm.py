"""A process reward model (PRM) over debate steps, for AgentArk's process-aware distillation
(arXiv 2602.03955; step-level verifiers after Lightman et al. 2023, arXiv 2305.20050).

Labels: a debate step is positive when the answer it commits to is the one the task's verifier accepts,
i.e. it leads to the verified answer, and negative otherwise. A step is scored in its context: the
problem, then the reply up to and including that step.

Model: a frozen language model reads (problem, reply prefix); a linear head on its last hidden state at the
prefix's last token gives the step's logit. Training is contrastive, as in AgentArk's PRM: a pairwise
(Bradley-Terry) loss that ranks each positive step above each negative step of the same problem, plus
binary cross-entropy so the score is also a calibrated probability usable as a reward. The frozen model
is read once per step; only the head (hidden size + 1 numbers) is trained.

A reply of several lines is several steps (one per non-empty line); its process reward is the mean of
its steps' probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from keel.config import KeelModel
from keel.distill.debate import Transcript
from keel.errors import KeelError
from keel.llm.sampler import encode_prompts, left_pad, model_device


class PRMConfig(KeelModel):
    iters: int = 300  # full-batch optimiser steps on the head
    lr: float = 0.05
    weight_decay: float = 1e-3
    pair_weight: float = 1.0  # weight of the contrastive (pairwise) term next to the BCE term
    batch: int = 32  # sequences per forward pass of the frozen model


@dataclass(frozen=True)
class LabelledStep:
    messages: tuple[tuple[str, str], ...]  # the problem, as the student sees it
    prefix: str  # the reply up to and including this step
    label: bool  # the step leads to the verified answer
    group: int  # the problem it belongs to (pairs are formed within a group)


def steps_of(reply: str) -> list[str]:
    """The reply's prefixes ending at each step (non-empty line); a one-line reply is one step."""
    lines = reply.strip().split("\n")
    prefixes = ["\n".join(lines[: i + 1]) for i, line in enumerate(lines) if line.strip()]
    return prefixes or [""]


def step_labels(transcripts: list[Transcript], system: str | None = None) -> list[LabelledStep]:
    """Every debate step, in its problem's plain context, labelled by the task's verifier."""
    out = []
    for g, t in enumerate(transcripts):
        msgs = tuple((m["role"], m["content"]) for m in t.problem.messages(system))
        for s in t.steps:
            out.append(LabelledStep(msgs, s.text.strip(), s.correct, g))
    return out


def pairwise_loss(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(s_pos - s_neg) over the (positive, negative) pairs of the same group (0 if none)."""
    pos = labels.bool()
    same = groups[:, None] == groups[None, :]
    pairs = same & pos[:, None] & ~pos[None, :]
    if not pairs.any():
        return logits.sum() * 0.0
    diff = logits[:, None] - logits[None, :]
    return torch.nn.functional.softplus(-diff[pairs]).mean()


class PRM:
    """Frozen feature model + trained linear head; `score` gives the process reward of replies."""

    def __init__(self, model, tokenizer, cfg: PRMConfig | None = None):
        self.model, self.tok, self.cfg = model, tokenizer, cfg or PRMConfig()
        hidden = model.config.hidden_size
        self.head = torch.nn.Linear(hidden, 1)
        self.mu = torch.zeros(hidden)
        self.sigma = torch.ones(hidden)

    @torch.no_grad()
    def features(self, messages: list[list[dict]], prefixes: list[str]) -> torch.Tensor:
        """[B, H]: the frozen model's last hidden state at the last token of (prompt, reply prefix)."""
        out = []
        decoder = self.model.get_decoder()  # the transformer without the vocabulary head
        dev = model_device(self.model)
        for lo in range(0, len(prefixes), self.cfg.batch):
            prompts = encode_prompts(self.tok, messages[lo : lo + self.cfg.batch])
            seqs = [p + self.tok(x, add_special_tokens=False)["input_ids"]
                    for p, x in zip(prompts, prefixes[lo : lo + self.cfg.batch], strict=True)]
            ids, mask = left_pad(seqs, self.tok.pad_token_id)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            h = decoder(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                           use_cache=False).last_hidden_state
            out.append(h[:, -1, :].float().cpu())
        return torch.cat(out)

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head((feats - self.mu) / self.sigma).squeeze(-1)

    def fit(self, steps: list[LabelledStep]) -> dict:
        """Train the head on labelled steps; returns the final losses and the training AUC."""
        if not steps:
            raise KeelError("the PRM needs labelled steps; run a debate first")
        feats = self.features([[{"role": r, "content": c} for r, c in s.messages] for s in steps],
                              [s.prefix for s in steps])
        y = torch.tensor([float(s.label) for s in steps])
        g = torch.tensor([s.group for s in steps])
        self.mu, self.sigma = feats.mean(0), feats.std(0).clamp(min=1e-4)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.constant_(self.head.bias, float(torch.logit(y.mean().clamp(0.05, 0.95))))
        opt = torch.optim.Adam(self.head.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        for _ in range(self.cfg.iters):
            z = self.logits(feats)
            bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
            pair = pairwise_loss(z, y, g)
            loss = bce + self.cfg.pair_weight * pair
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            z = self.logits(feats)
        return {"bce": float(bce.detach()), "pair": float(pair.detach()), "train_auc": auc(z, y.bool()),
                "steps": len(steps), "positive_frac": float(y.mean())}

    @torch.no_grad()
    def step_probs(self, messages: list[list[dict]], prefixes: list[str]) -> torch.Tensor:
        return torch.sigmoid(self.logits(self.features(messages, prefixes)))

    @torch.no_grad()
    def score(self, messages: list[list[dict]], replies: list[str]) -> torch.Tensor:
        """[B] process reward of each reply: the mean probability of its steps."""
        owner, row, uniq = [], [], {}  # each distinct (prompt, prefix) is read once: replies repeat a lot
        for i, (m, r) in enumerate(zip(messages, replies, strict=True)):
            key_m = tuple((x["role"], x["content"]) for x in m)
            for p in steps_of(r):
                owner.append(i)
                row.append(uniq.setdefault((key_m, p), len(uniq)))
        distinct = list(uniq)
        probs = self.step_probs([[{"role": a, "content": b} for a, b in k] for k, _ in distinct],
                                [p for _, p in distinct])[torch.tensor(row, dtype=torch.long)]
        own = torch.tensor(owner)
        total = torch.zeros(len(replies)).index_add_(0, own, probs)
        count = torch.zeros(len(replies)).index_add_(0, own, torch.ones_like(probs))
        return total / count

    def evaluate(self, steps: list[LabelledStep]) -> dict:
        """AUC and accuracy (at 0.5) of the PRM on labelled steps it was not trained on."""
        p = self.step_probs([[{"role": r, "content": c} for r, c in s.messages] for s in steps],
                            [s.prefix for s in steps])
        y = torch.tensor([s.label for s in steps])
        return {"auc": auc(p, y), "accuracy": float(((p > 0.5) == y).float().mean()), "steps": len(steps)}


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Area under the ROC curve (the chance a positive outranks a negative; ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return None
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())
