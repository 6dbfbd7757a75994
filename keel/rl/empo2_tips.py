"""EMPO²'s tips memory: what the agent writes after an episode, and what it reads before the next one.

Liu, Kim, Luo, Li, Yang 2026, "Exploratory Memory-Augmented LLM Agent via Hybrid On- and Off-Policy
Optimization" (EMPO², arXiv 2602.23008). After every training episode the policy itself writes a short tip
about its attempt; each state the episode passed through is stored in `keel.memory` with that tip, the
action taken there and the episode's score (the key is the state, the payload the tip). A tip-guided
rollout retrieves the tips of stored states similar to its own (cosine >= `similarity`), best-scoring
first, and reads them in its prompt. The same lookup counts how familiar a state is, which gives the
intrinsic novelty bonus 1 / (1 + n_similar) (`keel.rl.empo2.novelty_bonus`).

Keel's deviation, for the KV-cache multi-turn sampler (an append-only conversation): tips are retrieved once
per episode for its first state and put in front of the task in the first user message, not re-retrieved
every turn; so a tip-free copy of a tip-guided trajectory differs only in its prompt (`plain_prompt`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import gymnasium as gym
from pydantic import Field

from keel.config import KeelModel
from keel.llm.conversation import Trajectory

TIPS_HEADER = "Notes from your earlier attempts at similar tasks (they may help):"
TIP_SYSTEM = ("You review an attempt you just made at a task. Write ONE short tip (one sentence) that would "
              "help you do better next time. Reply with the tip only.")


class TipsConfig(KeelModel):
    embedder: Literal["minilm", "hash"] = "minilm"  # all-MiniLM-L6-v2 (the paper's key encoder) or hashing
    similarity: float = Field(0.5, ge=-1, le=1)  # a stored state is "similar" at cosine >= this
    top_k: int = Field(3, ge=1, le=50)  # tips put in a prompt, best episode score first
    count_cap: int = Field(10, ge=1, le=1000)  # similar states counted for the novelty bonus, at most
    scope: Literal["all", "task"] = "all"  # retrieve from every task's states, or only the same task's
    write: Literal["model", "outcome"] = "model"  # the policy writes the tip, or only the outcome line is kept
    # what is stored: every episode (the paper), or only episodes that succeeded. A small policy's notes on
    # its failures mislead its next attempts (measured: benchmarks/results/empo2.json, adapt)
    keep: Literal["all", "success"] = "all"
    # where the tips go in the first message: in front of the task (the paper's prompt), or after it, which
    # leaves the start of the message the agent was fine-tuned on as it was
    placement: Literal["before", "after"] = "before"
    tip_tokens: int = Field(32, ge=1)  # length of a written tip
    tip_chars: int = Field(240, ge=20)  # a stored tip is cut to this many characters


def _embedder(name: str):
    from keel.memory import CachedEmbedder, HashEmbedder, MiniLMEmbedder

    return CachedEmbedder(MiniLMEmbedder()) if name == "minilm" else HashEmbedder()


class TipMemory:
    """States -> tips in a `keel.memory.Memory` (dense search over state texts; tip, task, score in metadata)."""

    def __init__(self, location: str | Path, cfg: TipsConfig):
        from keel.memory import Memory

        self.cfg = cfg
        self.mem = Memory(location, namespace="empo2-tips", embedder=_embedder(cfg.embedder), organise=False)
        self._cache: dict[tuple[str, str | None], list[dict]] = {}
        self.size = int(self.mem.stats().get("items", 0) or 0)

    def close(self) -> None:
        self.mem.close()

    def _similar(self, state: str, task: str | None, k: int) -> list[dict]:
        """Stored states with cosine >= `similarity` to `state` (of the same task when scope is "task")."""
        key = (state, task if self.cfg.scope == "task" else None)
        if key not in self._cache:
            if self.size == 0:
                self._cache[key] = []
            else:
                filters = {"metadata.task": task} if self.cfg.scope == "task" and task is not None else None
                hits = self.mem.search(state, k=max(k, self.cfg.count_cap, self.cfg.top_k), mode="dense",
                                       filters=filters, track_use=False)
                self._cache[key] = [h for h in hits if h["similarity"] >= self.cfg.similarity]
        return self._cache[key][:k]

    def retrieve(self, state: str, task: str | None = None) -> list[str]:
        """Up to `top_k` distinct tips of similar stored states, those of the best-scoring episodes first."""
        hits = sorted(self._similar(state, task, self.cfg.count_cap),
                      key=lambda h: (-float(h["metadata"].get("score", 0.0)), -h["similarity"]))
        out: list[str] = []
        for h in hits:
            tip = str(h["metadata"].get("tip", ""))
            if tip and tip not in out:
                out.append(tip)
            if len(out) == self.cfg.top_k:
                break
        return out

    def count_similar(self, state: str, task: str | None = None) -> int:
        return len(self._similar(state, task, self.cfg.count_cap))

    def write(self, states: list[str], tips: list[str], task: str | None, score: float, step: int = 0) -> None:
        """Store one episode: each state with its tip (one transaction)."""
        if not states:
            return
        meta = [{"tip": t[: self.cfg.tip_chars], "task": task or "", "score": float(score), "step": step}
                for t in tips]
        with self.mem.store.batch():
            for s, m in zip(states, meta, strict=True):
                self.mem.add(s[-4000:] or ".", source="agent", metadata=m)
        self.size += len(states)
        self._cache.clear()


# --- states and tips of a trajectory -------------------------------------------------------------------
def dialogue(messages: list[dict], first_user: str | None = None, limit: int = 300) -> list[tuple[str, str]]:
    """(role, text) after the system prompt; the first user message replaced by `first_user` (the task
    without its tips) when given; every message cut to `limit` characters."""
    out, first = [], True
    for m in messages:
        if m["role"] == "system":
            continue
        text = str(m["content"])
        if first and m["role"] == "user":
            text, first = (first_user if first_user is not None else text), False
        out.append((m["role"], text[:limit]))
    return out


def states_and_actions(traj: Trajectory, first_user: str | None = None) -> tuple[list[str], list[str]]:
    """The state before each model turn (the conversation so far as text) and the reply given there."""
    states, actions, seen = [], [], []
    for role, text in dialogue(traj.messages, first_user):
        if role == "assistant":
            states.append("\n".join(seen))
            actions.append(text)
        seen.append(f"{role}: {text}")
    return states, actions


def outcome_line(action: str, score: float, success: bool) -> str:
    verdict = "it succeeded" if success else "it failed"
    return f"There you replied {action.strip()[:160]}; the episode scored {score:.2f} ({verdict})."


def tip_prompt(traj: Trajectory, first_user: str | None = None) -> list[dict]:
    """The chat prompt that asks the policy for a tip about its own finished attempt."""
    lines = [f"{r}: {t}" for r, t in dialogue(traj.messages, first_user, limit=200)]
    verdict = "succeeded" if traj.success else "failed"
    return [{"role": "system", "content": TIP_SYSTEM},
            {"role": "user", "content": "Attempt:\n" + "\n".join(lines) + f"\nResult: the attempt {verdict}. "
             "Write one short tip."}]


def write_tips(model, tok, trajs: list[Trajectory], cfg: TipsConfig, seed: int = 0,
               first_users: list[str | None] | None = None) -> list[str]:
    """One tip per trajectory, written by the policy (greedy), or "" when `cfg.write` is "outcome"."""
    if cfg.write == "outcome" or not trajs:
        return [""] * len(trajs)
    from keel.llm.sampler import sample

    firsts = first_users or [None] * len(trajs)
    s = sample(model, tok, [tip_prompt(t, f) for t, f in zip(trajs, firsts, strict=True)], n=1,
               max_new_tokens=cfg.tip_tokens, temperature=0.0, seed=seed)
    return [" ".join(t.split())[: cfg.tip_chars] for t in s.texts]


def remember(memory: TipMemory, trajs: list[Trajectory], tips: list[str], tasks: list[str | None],
             first_users: list[str | None], step: int = 0) -> int:
    """Write every trajectory's states (only the successful ones' under `keep: success`) into memory with its
    tip + the action taken there + the outcome."""
    n = 0
    for tr, tip, task, first in zip(trajs, tips, tasks, first_users, strict=True):
        if memory.cfg.keep == "success" and not tr.success:
            continue
        states, actions = states_and_actions(tr, first)
        payload = [f"{tip} {outcome_line(a, tr.reward, tr.success)}".strip() for a in actions]
        memory.write(states, payload, task, tr.reward, step)
        n += len(states)
    return n


def tips_block(tips: list[str]) -> str:
    return TIPS_HEADER + "\n" + "\n".join(f"- {t}" for t in tips) + "\n\n"


def with_tips(message: str, tips: list[str], placement: str = "before") -> str:
    """The first user message with the tips block in front of it or after it."""
    return tips_block(tips) + message if placement == "before" else message + "\n\n" + tips_block(tips).rstrip()


class TipsEnv(gym.Wrapper):
    """Puts retrieved tips in front of the first message when `enabled`; remembers the plain message and the
    tips of its last reset, so the trainer can rebuild the tip-free prompt of the same episode."""

    def __init__(self, env: gym.Env, memory: TipMemory):
        super().__init__(env)
        self.memory = memory
        self.enabled = False
        self.plain_first: str = ""
        self.task: str | None = None
        self.tips: list[str] = []

    def reset(self, *, seed=None, options=None):
        message, info = self.env.reset(seed=seed, options=options)
        self.plain_first = str(message)
        self.task = None if info.get("task") is None else str(info["task"])
        self.tips = self.memory.retrieve(f"user: {self.plain_first[:300]}", self.task) if self.enabled else []
        if self.tips:
            message = with_tips(self.plain_first, self.tips, self.memory.cfg.placement)
        return message, info
