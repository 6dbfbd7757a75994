"""Losses, advantages and the STAPO mask on hand-made numbers."""

import math

import pytest
import torch

from keel.errors import KeelError
from keel.rl import advantages, cispo, dapo, stapo


def test_grpo_advantage_is_group_normalised():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    a = advantages.compute(r, 4, "grpo")
    # group 1: mean .25, std sqrt(3)/4 -> (1-.25)/(.433) = 1.732
    assert a[0].item() == pytest.approx(math.sqrt(3), rel=1e-3)
    assert a[1].item() == pytest.approx(-1 / math.sqrt(3), rel=1e-3)
    assert torch.all(a[4:] == 0)  # a group that all agrees teaches nothing
    centred = advantages.compute(r, 4, "grpo", scale=False)
    assert centred[0].item() == pytest.approx(0.75)


def test_rloo_and_reinforce():
    r = torch.tensor([3.0, 1.0, 2.0])
    a = advantages.compute(r, 3, "rloo")
    assert a.tolist() == pytest.approx([3 - 1.5, 1 - 2.5, 2 - 2.0])
    b = advantages.compute(torch.tensor([1.0, 0.0, 0.0, 0.0]), 2, "reinforce")
    assert b.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])
    with pytest.raises(KeelError):
        advantages.compute(r, 2, "grpo")


def test_dapo_decoupled_clip_values():
    old = torch.zeros(1, 4)
    ratio = torch.tensor([[1.5, 0.5, 1.1, 0.7]])
    logp = ratio.log().requires_grad_(True)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, clipped = dapo.token_loss(logp, old, adv, eps_low=0.2, eps_high=0.28)
    # A>0: min(1.5, 1.28) = 1.28 (clipped); min(0.5, 0.8) = 0.5 (not clipped)
    # A<0: min(-1.1, -1.1) = -1.1 (inside); min(-0.7, -0.8) = -0.8 (clipped at 1-eps_low)
    assert loss[0].tolist() == pytest.approx([-1.28, -0.5, 1.1, 0.8], rel=1e-5)
    assert clipped.tolist() == [[1.0, 0.0, 0.0, 1.0]]
    loss.sum().backward()
    # clipped tokens get no gradient; unclipped ones get -A * ratio
    assert logp.grad[0].tolist() == pytest.approx([0.0, -0.5, 1.1, 0.0], rel=1e-5)


def test_cispo_keeps_gradient_of_clipped_tokens():
    old = torch.zeros(1, 3)
    ratio = torch.tensor([[6.0, 1.0, 0.5]])
    logp = ratio.log().requires_grad_(True)
    adv = torch.tensor([[2.0, 2.0, -1.0]])
    loss, clipped = cispo.token_loss(logp, old, adv, eps_low=1.0, eps_high=4.0)
    # weight = sg(clip(r, 0, 5)) -> 5, 1, 0.5 ; loss = -w * A * logp
    expected = [-5 * 2 * math.log(6), -1 * 2 * 0.0, 0.5 * math.log(0.5)]
    assert loss[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert clipped.tolist() == [[1.0, 0.0, 0.0]]
    loss.sum().backward()
    assert logp.grad[0].tolist() == pytest.approx([-10.0, -2.0, 0.5], rel=1e-5)  # -w*A, clipped one included


def test_stapo_mask_exact_rule():
    # rows: 0 correct (A>0), 1 correct (A>0), 2 wrong (A<0)
    prob = torch.tensor([[0.001, 0.001, 0.5, 0.001],
                         [0.0005, 0.3, 0.001, 0.001],
                         [0.001, 0.001, 0.9, 0.9]])
    ent = torch.tensor([[0.1, 2.0, 0.1, 0.5],
                        [0.3, 0.1, 4.0, 9.0],
                        [0.01, 0.01, 0.1, 0.1]])
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]])  # row 1 token 3 is padding
    adv = torch.tensor([1.0, 0.5, -1.0])
    correct = torch.tensor([True, True, False])
    silenced, tau_h = stapo.spurious_mask(prob, ent, adv, mask, correct, tau_p=0.002, q=0.75)
    # low-prob tokens of correct responses (masked-in): entropies 0.1, 2.0, 0.5, 0.3, 4.0
    expected_tau = torch.quantile(torch.tensor([0.1, 2.0, 0.5, 0.3, 4.0]), 0.75).item()
    assert tau_h == pytest.approx(expected_tau)  # = 2.0
    # masked iff A>0, p<0.002, H<tau_h: (0,0) H=.1 yes; (0,1) H=2.0 not < 2.0; (0,3) H=.5 yes;
    # (1,0) H=.3 yes; (1,2) H=4 no; row 2 has A<0 -> never
    assert silenced.tolist() == [[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]
    tok_loss = torch.arange(12.0).view(3, 4)
    kept = mask * (1 - silenced)
    assert stapo.aggregate(tok_loss, mask, silenced).item() == pytest.approx(
        (tok_loss * kept).sum().item() / kept.sum().item())


def test_stapo_no_low_prob_tokens_masks_nothing():
    prob = torch.full((2, 3), 0.5)
    silenced, tau_h = stapo.spurious_mask(prob, torch.zeros(2, 3), torch.ones(2), torch.ones(2, 3),
                                          torch.tensor([True, True]))
    assert tau_h == float("-inf") and silenced.sum() == 0
