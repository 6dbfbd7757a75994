"""Multi-turn rollouts: a batch of episodes in agentic text environments, sampled with one KV cache.

Every row of the batch is one episode (`keel.envs.agentic` contract). Rows that start from the same prompt
(the G trajectories of a GRPO group) share one prompt pass whose KV cache is repeated to them. Then turn by
turn: all live rows sample their reply token by token in one batch (a row whose reply has ended feeds a
masked pad while the others finish, a hole in its cache row); each reply goes to its env; the env's answer
is appended as template tokens (`keel.llm.conversation`), fed for all rows in one pass (left-padded inside
the chunk, holes again), and finished rows leave the cache. Nothing is ever re-encoded.

A trajectory that would outgrow `context_budget` tokens is cut and flagged (`truncated="context"`), and
one that uses up `max_turns` is flagged `"turns"`: never silently cut. A malformed reply is the env's
business: it answers with an error observation and the episode goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from keel.config import KeelModel
from keel.errors import KeelError
from keel.llm.conversation import ChatPieces, Trajectory, prompt_messages
from keel.llm.sampler import _cache_kw, _eos_ids, _find_stop, left_pad, model_step, sample_next_logp


class TurnConfig(KeelModel):
    max_turns: int = 6
    max_turn_tokens: int = 48  # per model turn
    context_budget: int = 1024  # prompt + every turn, in tokens
    stop: list[str] = []  # stop strings that end a turn (besides EOS)


@dataclass
class Start:
    """How to reset one env: its seed and reset options (e.g. {"task": id})."""

    seed: int
    options: dict | None = None


@dataclass
class RolloutStats:
    model_tokens: int
    seconds: float


def episode_success(info: dict, reward: float) -> bool:
    """The env's verdict: `info["episode"]["success"]`, else a text task's `correct`, else reward > 0."""
    ep = info.get("episode") or {}
    if "success" in ep:
        return bool(ep["success"])
    if "correct" in info:
        return bool(info["correct"])
    return reward > 0


@torch.no_grad()
def run_episodes(model, tokenizer, envs: list, starts: list[Start], cfg: TurnConfig, temperature: float = 1.0,
                 top_p: float = 1.0, seed: int = 0) -> tuple[list[Trajectory], RolloutStats]:
    """One episode per env (reset with its `Start`), sampled together; returns the trajectories.

    The stored log-probs are those of softmax(logits / temperature), the distribution sampled from
    (temperature 0: greedy, untempered log-probs)."""
    if len(envs) != len(starts):
        raise KeelError(f"{len(envs)} envs but {len(starts)} starts")
    if cfg.max_turns < 1 or cfg.max_turn_tokens < 1:
        raise KeelError("max_turns and max_turn_tokens must be >= 1")
    t0 = time.perf_counter()
    pieces = ChatPieces(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = _eos_ids(model, tokenizer)
    kw = _cache_kw(model)
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()

    trajs: list[Trajectory] = []
    for env, st in zip(envs, starts, strict=True):
        first, info = env.reset(seed=st.seed, options=st.options)
        msgs = prompt_messages(first, info.get("system"))
        trajs.append(Trajectory(prompt_ids=pieces.prompt_ids(msgs), messages=msgs))
    rows = []  # rows[j]: the trajectory in cache row j
    for i, tr in enumerate(trajs):
        if tr.length + 1 > cfg.context_budget:
            tr.truncated = "context"  # not even one reply token fits
        else:
            rows.append(i)
    if not rows:
        return trajs, RolloutStats(0, time.perf_counter() - t0)

    # the prompt pass: each distinct prompt once, its cache repeated to the rows that start from it
    uniq: dict[tuple[int, ...], int] = {}
    src = torch.tensor([uniq.setdefault(tuple(trajs[i].prompt_ids), len(uniq)) for i in rows])
    ids, amask = left_pad([list(k) for k in uniq], pad_id)
    logits, cache = model_step(model, ids, amask, (amask.cumsum(-1) - 1).clamp(min=0), None, kw)
    cache.reorder_cache(src)
    logits, amask = logits[src], amask[src]
    next_pos = amask.sum(-1)
    generated = 0

    for turn in range(cfg.max_turns):
        n = len(rows)
        live = [True] * n  # still sampling this turn
        turn_ids: list[list[int]] = [[] for _ in range(n)]
        ended_eos = [False] * n
        cut: list[str | None] = [None] * n
        for t in range(cfg.max_turn_tokens):
            tok, lp = sample_next_logp(logits, temperature, top_p, gen)
            tok_list, lp_list = tok.tolist(), lp.tolist()
            feed = torch.full((n,), pad_id, dtype=torch.long)
            fmask = torch.zeros(n, dtype=torch.long)
            for j, r in enumerate(rows):
                if not live[j]:
                    continue
                tr, token = trajs[r], tok_list[j]
                tr.add_model(token, lp_list[j])
                turn_ids[j].append(token)
                generated += 1
                end = token in eos
                ended_eos[j] = end
                if not end and cfg.stop:
                    text = tokenizer.decode(turn_ids[j], skip_special_tokens=True)
                    at = _find_stop(text, cfg.stop)
                    if at >= 0:
                        cut[j], end = text[:at], True
                if not end and tr.length >= cfg.context_budget:
                    tr.truncated, end = "context", True
                if end:
                    live[j] = False
                else:  # fed on the next step, unless the turn hits its token limit
                    feed[j], fmask[j] = token, 1
            if not any(live) or t == cfg.max_turn_tokens - 1:
                break
            amask = torch.cat([amask, fmask[:, None]], dim=1)
            logits, cache = model_step(model, feed[:, None], amask, next_pos[:, None], cache, kw)
            next_pos = next_pos + fmask

        # the replies go to their envs; each row's last sampled token is not in the cache yet
        keep, chunks = [], []
        for j, r in enumerate(rows):
            tr = trajs[r]
            if tr.truncated:
                continue
            reply = cut[j] if cut[j] is not None else tokenizer.decode(turn_ids[j], skip_special_tokens=True)
            tr.messages.append({"role": "assistant", "content": reply})
            tr.turns += 1
            message, reward, terminated, truncated, info = envs[r].step(reply)
            tr.reward += float(reward)
            tr.malformed += int(bool(info.get("malformed", False)))
            tr.denied += int(bool(info.get("denied", False)))
            if terminated or truncated:
                tr.terminated = bool(terminated)
                tr.truncated = "" if terminated else "env"
                tr.episode = dict(info.get("episode") or {})
                tr.success = episode_success(info, float(reward))
                continue
            if turn == cfg.max_turns - 1:
                tr.truncated = "turns"
                continue
            role = str(info.get("role", "user"))
            piece = pieces.after_turn_ids(str(message), role, turn_ids[j][-1] if ended_eos[j] else None)
            if tr.length + len(piece) + 1 > cfg.context_budget:
                tr.truncated = "context"
                continue
            tr.add_env(piece)
            tr.messages.append({"role": role, "content": str(message)})
            keep.append(j)
            chunks.append([turn_ids[j][-1], *piece])
        if not keep:
            break
        sel = torch.tensor(keep, dtype=torch.long)
        if len(keep) < n:
            cache.reorder_cache(sel)
            amask, next_pos = amask[sel], next_pos[sel]
        rows = [rows[j] for j in keep]
        width = max(len(c) for c in chunks)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        cmask = torch.zeros((len(rows), width), dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        for j, c in enumerate(chunks):
            ids[j, width - len(c):] = torch.tensor(c, dtype=torch.long)
            cmask[j, width - len(c):] = 1
            pos[j, width - len(c):] = next_pos[j] + torch.arange(len(c))
        amask = torch.cat([amask, cmask], dim=1)
        logits, cache = model_step(model, ids, amask, pos, cache, kw)
        next_pos = next_pos + cmask.sum(-1)

    if was_training:
        model.train()
    return trajs, RolloutStats(generated, time.perf_counter() - t0)
