"""Issue 12, language-model losses as in the papers: each test fails on the code before the fix."""

import pytest
import torch

from keel.llm import completion_logprobs, load_model, sample
from keel.rl import dynamic
from keel.rl.grpo import GRPO, GRPOConfig, Rollout, cat_rollouts


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", seed=0)


def _rollout(lengths, rewards, group_size):
    B = len(lengths)
    T = max(lengths)
    mask = torch.zeros(B, T)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return Rollout(
        prompt_ids=[[5, 6, 7]] * B,
        completion_ids=[list(range(10, 10 + n)) for n in lengths],
        old_logp=torch.zeros(B, T),
        mask=mask,
        rewards=torch.tensor(rewards, dtype=torch.float32),
        correct=torch.tensor([r > 0 for r in rewards]),
        advantages=torch.zeros(B),
    )


def test_token_level_mean_is_over_all_tokens_of_the_batch(tiny):
    """DAPO: loss = sum over every model token of the batch / their count, zero-advantage rows included."""
    model, tok = tiny
    trainer = GRPO(model, tok, GRPOConfig(group_size=2, prompts_per_step=2, lr=0.0))
    # group 0 informative (short replies), group 1 all-equal rewards (long replies, advantage 0)
    roll = trainer.finish(_rollout([2, 3, 9, 8], [1.0, 0.0, 1.0, 1.0], 2))
    # the stored old log-probs must be the current policy's for the ratio to be 1
    with torch.no_grad():
        lp, _, _ = completion_logprobs(model, roll.prompt_ids, roll.completion_ids, tok.pad_token_id)
    roll.old_logp = lp * roll.mask
    out = trainer.update(roll)
    expected = float(-(roll.advantages * roll.mask.sum(1)).sum() / roll.mask.sum())  # ratio 1: token loss -A
    assert out["loss"] == pytest.approx(expected, abs=1e-5)
    # the old denominator (all tokens x the fraction of rows with gradient) gave twice that here
    assert abs(out["loss"] - expected * 2) > 1e-3


def test_dynamic_sampling_keeps_informative_groups_until_full():
    G = 2
    draws = [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]]
    calls = []

    def draw(i):
        calls.append(i)
        return _rollout([2, 2, 2, 2], draws[i], G)

    batch, stats = dynamic.fill(draw, cat_rollouts, want=2, group_size=G, max_tries=4)
    assert calls == [0, 1, 2]  # stopped as soon as two informative groups were found
    assert batch.rewards.tolist() == [0.0, 1.0, 1.0, 0.0]  # group 1 of draw 0 and group 0 of draw 2
    assert stats == {"dyn_tries": 3, "dyn_groups_drawn": 6, "dyn_groups_kept": 2, "dyn_fill": 1.0}
    # bounded: all-equal draws give up after max_tries and report an unfilled batch
    batch, stats = dynamic.fill(lambda i: _rollout([2] * 4, [1.0] * 4, G), cat_rollouts, 2, G, max_tries=3)
    assert len(batch.completion_ids) == 0 and stats["dyn_tries"] == 3 and stats["dyn_fill"] == 0.0


def test_dynamic_sampling_in_a_grpo_step(tiny):
    from keel.envs.text import make_task

    model, tok = tiny
    task = make_task("arithmetic", digits=1)
    pool = task.problems("train", 16, 0)
    cfg = GRPOConfig(group_size=2, prompts_per_step=2, max_new_tokens=2, dynamic_sampling=True,
                     dynamic_max_tries=3, lr=0.0)
    out = GRPO(model, tok, cfg).step(pool[:2], task, "partial", seed=1, more=lambda i: pool[2 * i: 2 * i + 2])
    assert 1 <= out["dyn_tries"] <= 3 and out["dyn_groups_drawn"] == 2 * out["dyn_tries"]


def test_stored_logprobs_are_of_the_tempered_distribution_sampled(tiny):
    model, tok = tiny
    s = sample(model, tok, ["Once upon a time"], n=3, max_new_tokens=5, temperature=0.5, seed=2)
    with torch.no_grad():
        tempered, _, _ = completion_logprobs(model, s.prompt_ids, s.completion_ids, tok.pad_token_id,
                                             with_entropy=False, temperature=0.5)
        plain, _, _ = completion_logprobs(model, s.prompt_ids, s.completion_ids, tok.pad_token_id,
                                          with_entropy=False)
    for i, lp in enumerate(s.logprobs):
        assert tempered[i, : len(lp)].tolist() == pytest.approx(lp, abs=1e-4)
        assert plain[i, : len(lp)].tolist() != pytest.approx(lp, abs=1e-3)


def test_grpo_trains_at_the_sampling_temperature(tiny):
    """At temperature T the importance ratio of a fresh rollout is exactly 1 (nothing clipped)."""
    from keel.envs.text import make_task

    model, tok = tiny
    task = make_task("arithmetic", digits=1)
    trainer = GRPO(model, tok, GRPOConfig(group_size=4, prompts_per_step=1, max_new_tokens=4, temperature=0.5,
                                          eps_low=1e-4, eps_high=1e-4, lr=0.0))
    roll = trainer.rollout(task.problems("train", 1, 0), task, "partial", seed=3)
    roll.advantages = torch.ones(4)
    _, info = trainer.loss(roll, torch.arange(4))
    assert info["clip_frac"] == 0.0


def test_stapo_threshold_over_positive_advantage_responses(tiny):
    """STAPO's tau_h pools positive-advantage responses (paper), not the verifier's `correct` ones."""
    model, tok = tiny
    roll = _rollout([4, 4, 4, 4], [0.5, 0.0, 0.5, 0.0], 2)  # partial credit: none is `correct`
    roll.correct = torch.zeros(4, dtype=torch.bool)
    on = GRPO(model, tok, GRPOConfig(group_size=2, prompts_per_step=2, stapo=True, lr=0.0))
    roll = on.finish(roll)
    _, info = on.loss(roll, torch.arange(4))
    assert info["tau_h"] > float("-inf")  # the tiny model's tokens are all below tau_p: a real threshold
    old = GRPO(model, tok, GRPOConfig(group_size=2, prompts_per_step=2, stapo=True, stapo_pool="correct"))
    _, info_old = old.loss(roll, torch.arange(4))
    assert info_old["tau_h"] == float("-inf") and info_old["masked_frac"] == 0.0
