"""Agent trajectories as GRPO experience, and the scripted expert's trajectories for behaviour cloning.

Both produce `keel.llm.conversation.Trajectory` records in the same token layout (prompt, then model and
env tokens with a 0/1 mask), so one `Rollout` format serves every environment and every loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from keel.envs.agentic import AgentTasks
from keel.errors import KeelError
from keel.llm.conversation import ChatPieces, Trajectory, prompt_messages
from keel.llm.multiturn import Start, episode_success
from keel.rl.grpo import Rollout


def _pad(rows: list[list[float]], width: int) -> torch.Tensor:
    out = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
    return out


def to_rollout(trajs: list[Trajectory]) -> Rollout:
    """A `Rollout` whose completions are the trajectories after their prompt (advantages still 0)."""
    T = max(1, max(len(t.ids) for t in trajs))
    return Rollout(
        prompt_ids=[t.prompt_ids for t in trajs],
        completion_ids=[t.ids for t in trajs],
        old_logp=_pad([t.logprobs for t in trajs], T),
        mask=_pad([[float(m) for m in t.mask] for t in trajs], T),
        rewards=torch.tensor([t.reward for t in trajs], dtype=torch.float32),
        correct=torch.tensor([t.success for t in trajs]),
        advantages=torch.zeros(len(trajs)),
        texts=[t.messages[-1]["content"] if t.messages else "" for t in trajs],
        truncated=torch.tensor([bool(t.truncated) for t in trajs]),
    )


def expert_trajectory(env, start: Start, tokenizer, pieces: ChatPieces, max_turns: int = 16,
                      detour: tuple[int, Callable[[str], str | None]] | None = None) -> Trajectory:
    """One episode played by the env's scripted expert, tokenised as the model would have produced it:
    each expert reply is encoded and closed by the template's end-of-turn token (which the model must
    learn to emit), env messages are template pieces with mask 0.

    `detour=(turn, mistake)`: before the expert's reply of that turn, `mistake(reply)` is played instead
    (its tokens masked, 0: not to be learnt) and the expert continues from the state it leaves
    (`keel.rl.agent_recovery`). `tr.episode["detour"]` records whether the env answered it with an error."""
    if not isinstance(env, AgentTasks):
        raise KeelError("behaviour cloning needs an env with a scripted expert (keel.envs.agentic.AgentTasks)")
    first, info = env.reset(seed=start.seed, options=start.options)
    msgs = prompt_messages(first, info.get("system"))
    tr = Trajectory(prompt_ids=pieces.prompt_ids(msgs), messages=msgs)
    eos = tokenizer.eos_token_id
    closes_with_eos = eos is not None and pieces.end_of_turn.startswith(str(tokenizer.eos_token))
    detoured = None
    for turn in range(max_turns):
        reply = env.expert_reply()
        if reply is None:
            raise KeelError(f"the expert has no reply in task {start.options}; fix the env's expert")
        bad = detour[1](reply) if detour is not None and turn == detour[0] else None
        if bad is not None:
            reply = bad
        toks = pieces.encode(reply) + ([eos] if closes_with_eos else [])
        if bad is not None:
            tr.add_env(toks)  # the mistake is in the context, not in the loss
        else:
            for t in toks:
                tr.add_model(t, 0.0)
        tr.messages.append({"role": "assistant", "content": reply})
        tr.turns += 1
        message, reward, terminated, truncated, info = env.step(reply)
        if bad is not None:
            detoured = bool(info.get("malformed") or "ERROR" in str(message))  # the envs' error observations
        tr.reward += float(reward)
        if terminated or truncated:
            tr.terminated, tr.truncated = bool(terminated), "" if terminated else "env"
            tr.episode = dict(info.get("episode") or {})
            if detoured is not None:
                tr.episode["detour"] = detoured
            tr.success = episode_success(info, float(reward))
            return tr
        role = str(info.get("role", "user"))
        tr.add_env(pieces.after_turn_ids(str(message), role, eos if closes_with_eos else None))
        tr.messages.append({"role": role, "content": str(message)})
    tr.truncated = "turns"
    if detoured is not None:
        tr.episode["detour"] = detoured
    return tr
