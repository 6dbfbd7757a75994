"""Multi-turn rollouts on the tiny model: token-exact conversations, masks, prefix sharing, truncation."""

import pytest
import torch

from keel.llm import completion_logprobs, load_model, shared_prefix_logprobs
from keel.llm.conversation import ChatPieces
from keel.llm.multiturn import Start, TurnConfig, run_episodes
from keel.rl.agent_rollout import expert_trajectory, to_rollout
from keel.rl.grpo import GRPO, GRPOConfig
from tests.agent_train.toyenv import ToyAgentEnv


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", seed=0)


def _episodes(tiny, n_groups=2, G=3, **kw):
    model, tok = tiny
    cfg = TurnConfig(**{"max_turns": 3, "max_turn_tokens": 6, "context_budget": 400, **kw})
    starts = [Start(g, {"task": f"k{g}"}) for g in range(n_groups) for _ in range(G)]
    return run_episodes(model, tok, [ToyAgentEnv() for _ in starts], starts, cfg, seed=5)[0]


def _runs(mask):
    """Maximal runs of equal mask values: [(value, start, end)]."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((mask[start], start, i))
            start = i
    return out


def test_expert_trajectory_is_the_chat_template_rendering(tiny):
    _, tok = tiny
    pieces = ChatPieces(tok)
    tr = expert_trajectory(ToyAgentEnv(), Start(0, {"task": "k3"}), tok, pieces)
    assert tr.success and tr.turns == 2
    rendered = tok.apply_chat_template(tr.messages, tokenize=False)
    decoded = tok.decode(tr.prompt_ids + tr.ids)
    assert rendered == decoded + "\n"  # the template closes the last turn with "<|im_end|>\n"; we stop at EOS
    # model tokens are exactly the expert's replies (+ EOS), env tokens exactly the template pieces
    model_runs = [tr.ids[a:b] for v, a, b in _runs(tr.mask) if v == 1]
    assert [tok.decode(r, skip_special_tokens=True) for r in model_runs] == [
        m["content"] for m in tr.messages if m["role"] == "assistant"]
    assert all(r[-1] == tok.eos_token_id for r in model_runs)
    env_runs = [tr.ids[a:b] for v, a, b in _runs(tr.mask) if v == 0]
    assert env_runs == [pieces.after_turn_ids(tr.messages[3]["content"], "tool", tok.eos_token_id)]


def test_sampled_tokens_kept_exactly_and_env_tokens_masked(tiny):
    model, tok = tiny
    pieces = ChatPieces(tok)
    trajs = _episodes(tiny)
    assert all(t.turns >= 2 for t in trajs)
    with torch.no_grad():
        logp, _, _ = completion_logprobs(model, [t.prompt_ids for t in trajs], [t.ids for t in trajs],
                                         tok.pad_token_id)
    for i, tr in enumerate(trajs):
        m = torch.tensor(tr.mask, dtype=torch.bool)
        # the stored behaviour log-probs are those of these very tokens in this very context
        assert logp[i, : len(tr.ids)][m].tolist() == pytest.approx(torch.tensor(tr.logprobs)[m].tolist(), abs=1e-4)
        assert all(lp == 0.0 for lp, k in zip(tr.logprobs, tr.mask, strict=True) if not k)
        runs = _runs(tr.mask)
        assert [v for v, _, _ in runs][:1] == [1] and sum(v for v, _, _ in runs) == tr.turns
        env_msgs = [m for m in tr.messages[2:] if m["role"] != "assistant"]
        for (_v, a, b), msg in zip([r for r in runs if r[0] == 0], env_msgs, strict=True):
            last = tr.ids[a - 1]
            expect = pieces.after_turn_ids(msg["content"], msg["role"], last if last == tok.eos_token_id else None)
            assert tr.ids[a:b] == expect


def test_malformed_reply_costs_a_step_not_the_episode(tiny):
    trajs = _episodes(tiny, n_groups=1, G=2)
    # the random tiny model never writes a valid call: every turn is malformed, the episode goes on
    for tr in trajs:
        assert tr.malformed == tr.turns == 3 and tr.truncated == "turns" and not tr.success
        assert tr.messages[3]["content"].startswith("ERROR: malformed")


def test_context_budget_truncates_and_flags(tiny):
    trajs = _episodes(tiny, n_groups=1, G=2, context_budget=90, max_turn_tokens=20)
    for tr in trajs:
        assert tr.truncated == "context" and tr.length <= 90
    assert to_rollout(trajs).truncated.all()


def test_group_prefix_sharing_same_logprobs_and_gradient(tiny):
    model, tok = tiny
    roll = to_rollout(_episodes(tiny))
    grads, logps = [], []
    for fn in (completion_logprobs, shared_prefix_logprobs):
        model.zero_grad()
        lp, _, _ = fn(model, roll.prompt_ids, roll.completion_ids, tok.pad_token_id, temperature=0.8)
        T = lp.shape[1]
        (lp * roll.mask[:, :T]).sum().backward()
        logps.append(lp.detach() * roll.mask[:, :T])
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad()
    assert torch.allclose(logps[0], logps[1], atol=1e-4)
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-4, rtol=1e-3), n


def test_grpo_loss_counts_model_tokens_only(tiny):
    model, tok = tiny
    roll = to_rollout(_episodes(tiny))
    roll.rewards = torch.tensor([1.0, 0, 0, 0, 1, 1])
    trainer = GRPO(model, tok, GRPOConfig(group_size=3, prompts_per_step=2, lr=0.0))
    roll = trainer.finish(roll)
    rows = torch.arange(6)
    loss, _ = trainer.loss(roll, rows)
    # at ratio 1 the DAPO token loss is -A_i on every model token: mean over model tokens only
    n_model = roll.mask.sum(1)
    assert float(loss) == pytest.approx(float(-(roll.advantages * n_model).sum() / n_model.sum()), abs=1e-4)
    # corrupting the behaviour log-probs of env tokens changes nothing
    env = (roll.mask == 0)
    roll.old_logp = roll.old_logp.masked_fill(env, -50.0)
    assert float(trainer.loss(roll, rows)[0]) == pytest.approx(float(loss), abs=1e-6)
