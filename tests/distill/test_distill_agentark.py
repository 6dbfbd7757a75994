"""AgentArk pieces: debate round structure, R-SFT / DA extraction and PRM labels from hand-built
transcripts, the PRM's contrastive loss, SFT that learns, and PAD's combined reward (tiny model)."""

import math

import pytest
import torch

from keel.distill.augment import da_examples
from keel.distill.debate import Agent, DebateConfig, Step, Transcript, debate, debate_messages, summary
from keel.distill.pad import PAD
from keel.distill.prm import PRM, PRMConfig, auc, pairwise_loss, step_labels, steps_of
from keel.distill.rsft import Example, SFTConfig, rsft_examples, sft, tokenize
from keel.envs.text import Problem, make_task
from keel.errors import KeelError
from keel.llm import load_model
from keel.rl.grpo import GRPOConfig

TASK = make_task("arithmetic", digits=1)
P = Problem("What is 3 + 4? Reply with only the number.", "7")
Q = Problem("What is 2 + 2? Reply with only the number.", "4")


def hand_transcripts():
    # problem P: agents 0, 1 say 7 and 8 in round 0; in round 1 both say 7 (majority right)
    t1 = Transcript(P, [Step(0, 0, "7", "7", True, P.messages(), [], 10, 1),
                        Step(0, 1, "8", "8", False, P.messages(), [], 10, 1),
                        Step(1, 0, "7", "7", True, debate_messages(P, "7", ["8"], None), [0, 1], 30, 1),
                        Step(1, 1, "The answer is 7", "7", True, debate_messages(P, "8", ["7"], None), [1, 0], 30, 4)],
                    answer="7", correct=True)
    # problem Q: the majority is wrong (5, 5), one agent was right in round 0 only
    t2 = Transcript(Q, [Step(0, 0, "4", "4", True, Q.messages(), [], 10, 1),
                        Step(0, 1, "5", "5", False, Q.messages(), [], 10, 1),
                        Step(1, 0, "5", "5", False, debate_messages(Q, "4", ["5"], None), [0, 1], 30, 1),
                        Step(1, 1, "5", "5", False, debate_messages(Q, "5", ["4"], None), [1, 0], 30, 1)],
                    answer="5", correct=False)
    return [t1, t2]


def test_debate_round_structure_and_attribution_on_tiny():
    model, tok = load_model("tiny", seed=0)
    problems = TASK.problems("train", 3, 0)
    cfg = DebateConfig(agents=3, rounds=3, max_new_tokens=3)
    agents = [Agent(model, tok), Agent(model, tok, system="Be careful."), Agent(model, tok)]
    ts = debate(agents, TASK, problems, cfg, seed=1)
    assert len(ts) == 3
    for t in ts:
        assert len(t.steps) == 9
        assert [(s.round, s.agent) for s in t.steps] == [(r, a) for r in range(3) for a in range(3)]
        for i, s in enumerate(t.steps):
            if s.round == 0:
                assert s.saw == [] and s.messages == t.problem.messages(agents[s.agent].system)
                continue
            # it saw its own last answer first, then the two others, all from the round before
            assert len(s.saw) == 3 and all(t.steps[j].round == s.round - 1 for j in s.saw)
            assert t.steps[s.saw[0]].agent == s.agent
            assert sorted(t.steps[j].agent for j in s.saw[1:]) == sorted({0, 1, 2} - {s.agent})
            user = s.messages[-1]["content"]
            assert user.endswith(t.problem.prompt) and "Other agents answered" in user
            assert s.prompt_tokens > 0 and s.completion_tokens >= 1
            assert i > s.saw[-1]
        assert t.tokens == sum(s.prompt_tokens + s.completion_tokens for s in t.steps)
    # different agents of the same model sample with different seeds: not all round-0 replies identical
    assert len({s.text for t in ts for s in t.round(0)}) > 1
    assert summary(ts)["n"] == 3
    with pytest.raises(KeelError):
        debate(agents[:2], TASK, problems, cfg)


def test_debate_majority_and_correctness_of_the_final_round():
    t = hand_transcripts()
    assert t[0].answer == "7" and t[0].correct
    s = summary(t)
    assert s["accuracy"] == 0.5 and s["round0_agent_accuracy"] == 0.5
    assert s["tokens_per_problem"] == (11 + 11 + 31 + 34 + 11 + 11 + 31 + 31) / 2


def test_rsft_keeps_one_verified_trajectory_per_solved_problem():
    ex = rsft_examples(hand_transcripts())
    assert ex == [Example.of(P.messages(), "7")]


def test_da_keeps_every_distinct_verified_trajectory_with_and_without_context():
    ex = da_examples(hand_transcripts())
    replies = sorted((e.chat()[-1]["content"][-45:], e.reply) for e in ex)
    # P: "7" plain, "7" in context, "The answer is 7" plain and in context; Q: the minority's "4" (round 0)
    assert len(ex) == 5
    assert Example.of(Q.messages(), "4") in ex
    assert Example.of(P.messages(), "The answer is 7") in ex
    assert Example.of(debate_messages(P, "8", ["7"], None), "The answer is 7") in ex
    assert all("8" != r for _, r in replies)
    assert len(da_examples(hand_transcripts(), with_context=False)) == 3


def test_prm_labels_from_a_hand_built_transcript():
    labels = step_labels(hand_transcripts())
    assert [s.label for s in labels] == [True, False, True, True, True, False, False, False]
    assert [s.group for s in labels] == [0, 0, 0, 0, 1, 1, 1, 1]
    # steps are scored in the plain problem's context, whatever debate prompt the agent saw
    assert all(dict(s.messages)["user"] in (P.prompt, Q.prompt) for s in labels)


def test_pairwise_loss_pairs_only_within_a_problem():
    z = torch.tensor([2.0, 0.0, 5.0, -5.0])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    g = torch.tensor([0, 0, 1, 1])
    # pairs: (0 over 1) in group 0 and (3 over 2) in group 1
    want = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(10.0))) / 2
    assert pairwise_loss(z, y, g).item() == pytest.approx(want, rel=1e-5)
    assert pairwise_loss(z, torch.ones(4), g).item() == 0.0
    assert auc(torch.tensor([0.9, 0.1, 0.5]), torch.tensor([True, False, False])) == 1.0
    assert auc(torch.tensor([0.1, 0.9]), torch.tensor([True, False])) == 0.0


def test_steps_of_splits_lines_into_prefixes():
    assert steps_of("a\n\nb\nc") == ["a", "a\n\nb", "a\n\nb\nc"]
    assert steps_of("42") == ["42"]


def test_prm_learns_to_rank_right_steps_above_wrong_on_tiny():
    model, tok = load_model("tiny", seed=0)
    prm = PRM(model, tok, PRMConfig(iters=200))
    info = prm.fit(step_labels(hand_transcripts()))
    assert info["train_auc"] == 1.0 and info["steps"] == 8
    s = prm.score([P.messages(), P.messages()], ["7", "8"])
    assert s[0] > s[1]
    # a two-line reply scores the mean of its two steps
    two = prm.score([P.messages()], ["8\n7"])
    both = prm.step_probs([P.messages(), P.messages()], ["8", "8\n7"])
    assert two.item() == pytest.approx(both.mean().item(), rel=1e-5)


def test_sft_lowers_the_loss_of_its_examples_on_tiny():
    model, tok = load_model("tiny", seed=0)
    ex = [Example.of(P.messages(), "7"), Example.of(Q.messages(), "4")]
    prompts, replies = tokenize(tok, ex)
    assert replies[0][-1] == tok.eos_token_id
    logs = sft(model, tok, ex, SFTConfig(lr=1e-2, epochs=25, batch_size=2), seed=0)
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]
    with pytest.raises(KeelError):
        sft(model, tok, [], SFTConfig())


def test_pad_reward_is_verifiable_plus_weighted_prm_step_reward():
    model, tok = load_model("tiny", seed=0)
    prm = PRM(model, tok, PRMConfig(iters=50))
    prm.fit(step_labels(hand_transcripts()))
    cfg = GRPOConfig(group_size=4, prompts_per_step=2, max_new_tokens=3, temperature=1.0)
    pad = PAD(model, tok, cfg, prm, prm_weight=0.5)
    roll = pad.rollout([P, Q], TASK, "exact", seed=3)
    verify = torch.tensor([float(TASK.score(P if i < 4 else Q, t).correct) for i, t in enumerate(roll.texts)])
    step = prm.score([P.messages()] * 4 + [Q.messages()] * 4, roll.texts)
    assert torch.allclose(roll.rewards, verify + 0.5 * step, atol=1e-5)
    # advantages are recomputed from the combined reward: zero mean per group
    assert torch.allclose(roll.advantages.view(2, 4).mean(1), torch.zeros(2), atol=1e-5)
    assert roll.advantages.abs().sum() > 0
