"""PPO with a value head (keel.rl.agent_ppo, keel.rl.value_head) on the tiny model: GAE against a hand
computation, env tokens skipped, the critic learns a fixed batch, checkpoints carry the head, the job runs."""

import pytest
import torch

from keel.config import validate
from keel.errors import KeelError
from keel.llm import load_model
from keel.llm.logprobs import completion_logprobs
from keel.rl import agent_rl
from keel.rl.agent_ppo import AgentPPO, PPOConfig, gae, make_trainer, masked_whiten
from keel.rl.grpo import GRPO, GRPOConfig, Rollout
from keel.rl.value_head import logprobs_and_values
from keel.runs import Run


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hand_gae(rewards, values, gamma, lam):
    """The textbook recursion over one row's model tokens (reward on the last)."""
    n = len(values)
    adv, run = [0.0] * n, 0.0
    for k in range(n - 1, -1, -1):
        r = rewards if k == n - 1 else 0.0
        nv = values[k + 1] if k + 1 < n else 0.0
        run = r + gamma * nv - values[k] + gamma * lam * run
        adv[k] = run
    return adv


def test_gae_matches_the_hand_computation_and_skips_env_tokens():
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0], [1, 0, 1, 0, 0, 0, 0]], dtype=torch.float32)
    values = torch.tensor([[0.1, 0.4, 9.0, -9.0, 0.3, 0.7, 5.0], [0.5, 3.0, -0.2, 0.0, 0.0, 0.0, 0.0]])
    rewards = torch.tensor([1.0, -0.5])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    want0 = hand_gae(1.0, [0.1, 0.4, 0.3, 0.7], 0.9, 0.8)
    want1 = hand_gae(-0.5, [0.5, -0.2], 0.9, 0.8)
    assert torch.allclose(adv[0, [0, 1, 4, 5]], torch.tensor(want0), atol=1e-6)
    assert torch.allclose(adv[1, [0, 2]], torch.tensor(want1), atol=1e-6)
    assert float(adv[mask == 0].abs().sum()) == 0.0  # env tokens: no advantage, and their values never used
    assert torch.allclose(ret, (adv + values) * mask)
    # gamma = lam = 1 (Search-R1's setting): A_k = R - V(s_k)
    adv1, _ = gae(rewards, values, mask, 1.0, 1.0)
    assert torch.allclose(adv1[0, [0, 1, 4, 5]], 1.0 - torch.tensor([0.1, 0.4, 0.3, 0.7]))
    w = masked_whiten(adv, mask)
    assert abs(float(w[mask > 0].mean())) < 1e-5 and abs(float(w[mask > 0].std(unbiased=False)) - 1) < 1e-3


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", seed=0)


def fixed_rollout(tok, B=4, T=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    V = tok.vocab_size
    prompts = [torch.randint(5, V, (6 + i,), generator=g).tolist() for i in range(B)]
    comps = [torch.randint(5, V, (T - i,), generator=g).tolist() for i in range(B)]
    mask = torch.zeros(B, T)
    for i, c in enumerate(comps):
        mask[i, : len(c)] = 1.0
        mask[i, 3:5] = 0.0  # an env message in the middle of every row
    return Rollout(prompt_ids=prompts, completion_ids=comps, old_logp=torch.zeros(B, T), mask=mask,
                   rewards=torch.tensor([1.0, 0.0, 0.5, -1.0]), correct=torch.zeros(B, dtype=torch.bool),
                   advantages=torch.zeros(B))


def test_value_head_pass_gives_the_same_logprobs_as_the_policy_pass(tiny):
    model, tok = tiny
    roll = fixed_rollout(tok)
    trainer = AgentPPO(model, tok, GRPOConfig(group_size=2, prompts_per_step=2), PPOConfig())
    with torch.no_grad():
        logp, v, _ = logprobs_and_values(model, trainer.head, roll.prompt_ids, roll.completion_ids, tok.pad_token_id)
        ref, _, _ = completion_logprobs(model, roll.prompt_ids, roll.completion_ids, tok.pad_token_id, False)
    assert torch.allclose(logp, ref, atol=1e-5)
    assert float(v.abs().sum()) == 0.0  # zero-initialised head


def test_value_loss_falls_on_a_fixed_batch_and_the_critic_predicts_the_return(tiny):
    model, tok = load_model("tiny", seed=0)
    roll = fixed_rollout(tok)
    with torch.no_grad():  # on-policy behaviour log-probs, so the policy term starts at ratio 1
        roll.old_logp = completion_logprobs(model, roll.prompt_ids, roll.completion_ids, tok.pad_token_id,
                                            False)[0] * roll.mask
    cfg = GRPOConfig(group_size=2, prompts_per_step=2, lr=1e-3, epochs=1)
    trainer = AgentPPO(model, tok, cfg, PPOConfig(value_lr=3e-2, vf_coef=1.0, value_clip=10.0))
    losses = [trainer.update(roll, seed=i)["value_loss"] for i in range(25)]
    assert losses[-1] < 0.2 * losses[0], losses
    v_old, adv, ret = trainer.advantages(roll)
    m = roll.mask > 0
    # gamma = lam = 1: every model token's target is its row's reward; the critic has moved towards it
    assert torch.allclose(ret[m], roll.rewards[:, None].expand_as(roll.mask)[m])
    err = (v_old - ret)[m].abs().mean()
    assert float(err) < 0.5 * float(roll.rewards.abs().mean() + 0.5)


def test_ppo_refuses_group_only_switches_and_checkpoints_the_head(tiny):
    model, tok = tiny
    with pytest.raises(KeelError, match="ppo"):
        AgentPPO(model, tok, GRPOConfig(stapo=True), PPOConfig())
    assert type(make_trainer(model, tok, GRPOConfig(), None)) is GRPO
    a = make_trainer(model, tok, GRPOConfig(), PPOConfig())
    with torch.no_grad():
        a.head.proj.bias.fill_(0.75)
    state = a.state_dict()
    b = AgentPPO(model, tok, GRPOConfig(), PPOConfig())
    b.load_state_dict(state)
    assert float(b.head.proj.bias.detach()) == 0.75


def test_agent_rl_job_with_ppo_on_the_research_env(tmp_path):
    cfg = validate(agent_rl.Config, {
        "kind": "agent_rl", "policy": {"model": "tiny"},
        "env": {"name": "keel.envs.research.agentic_env:ResearchAgentEnv",
                "options": {"entities": 200, "retriever": "bm25", "max_turns": 2, "top_k": 1}},
        "turns": {"max_turns": 2, "max_turn_tokens": 6, "context_budget": 600}, "steps": 2,
        "checkpoint_every": 1, "runs_dir": str(tmp_path), "eval_base": False,
        "eval": {"episodes": 2, "splits": ["test"], "batch": 2},
        "grpo": {"group_size": 1, "prompts_per_step": 3, "lr": 1e-3}, "ppo": {"gamma": 1.0, "lam": 0.95}}, "t")
    run = Run.create(tmp_path, "ppo", {}, "x")
    summary = agent_rl.train(cfg, run, quiet=True)
    rows = [r for r in run.metrics() if "value_loss" in r]
    assert len(rows) == 2 and all(r["updated_rows"] == 3 for r in rows)
    assert "value_head" in run.load_checkpoint()[0]["trainer"]
    assert summary["final"]["test"]["episodes"] == 2
