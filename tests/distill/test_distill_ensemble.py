"""Ensembles on hand-built numbers: majority vote, logit averaging, best-of-N; and the decoder on tiny."""

import pytest
import torch

from keel.distill.answers import answer_key
from keel.distill.ensemble import Member, average_logits, best_of_n, logit_average_generate, majority_vote
from keel.envs.text import make_task
from keel.errors import KeelError
from keel.llm import load_model, sample
from keel.llm.sampler import encode_prompts


def test_majority_vote_counts_ignores_none_and_breaks_ties_by_first_seen():
    assert majority_vote(["3", "5", "5", None, None, None]) == "5"
    assert majority_vote(["7", "9", "9", "7"]) == "7"  # tie: the key seen first
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_answer_keys_make_equivalent_replies_agree():
    arith = make_task("arithmetic", digits=1)
    assert answer_key(arith, "7 * 8 = 56") == answer_key(arith, " 56.") == "56"
    assert answer_key(arith, "no idea") is None
    assert answer_key(make_task("countdown"), "3 + 4 * 2 = 11") == "3+4*2"


def test_average_logits_can_pick_a_token_no_member_prefers():
    a = torch.tensor([[3.0, 2.5, 0.0]])
    b = torch.tensor([[0.0, 2.5, 3.0]])
    avg = average_logits(torch.stack([a, b]))
    assert torch.allclose(avg, torch.tensor([[1.5, 2.5, 1.5]]))
    assert int(avg.argmax(-1)) == 1 and int(a.argmax(-1)) == 0 and int(b.argmax(-1)) == 2
    # the mean of log-probabilities gives the same distribution (they differ by a constant per row)
    lp = torch.stack([torch.log_softmax(a, -1), torch.log_softmax(b, -1)]).mean(0)
    assert torch.allclose(torch.softmax(lp, -1), torch.softmax(avg, -1), atol=1e-6)
    with pytest.raises(KeelError):
        average_logits(a)


def test_best_of_n_takes_the_highest_score_first_on_ties():
    assert best_of_n([0.1, 0.9, 0.3]) == 1
    assert best_of_n([0.5, 0.5]) == 0
    with pytest.raises(KeelError):
        best_of_n([])


def test_logit_average_of_one_or_two_copies_is_greedy_decoding():
    model, tok = load_model("tiny", seed=3)
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "Hi there, how?"}]]
    greedy = sample(model, tok, prompts, n=1, max_new_tokens=5, temperature=0.0, seed=0)
    one, cost1 = logit_average_generate([Member(model)], tok, prompts, max_new_tokens=5)
    two, cost2 = logit_average_generate([Member(model), Member(model)], tok, prompts, max_new_tokens=5)
    assert one == greedy.texts == two
    assert cost2 == [2 * c for c in cost1]
    assert cost1[0] == len(greedy.prompt_ids[0]) + len(greedy.completion_ids[0])


def test_two_different_members_average_to_their_mean_logits():
    m1, tok = load_model("tiny", seed=1)
    m2, _ = load_model("tiny", seed=2)
    prompts = [[{"role": "user", "content": "Count: 1 2 3"}]]
    text, _ = logit_average_generate([Member(m1), Member(m2)], tok, prompts, max_new_tokens=1)
    ids = torch.tensor(encode_prompts(tok, prompts))
    with torch.no_grad():
        mean = (m1(input_ids=ids).logits[0, -1] + m2(input_ids=ids).logits[0, -1]) / 2
    assert text[0] == tok.decode([int(mean.argmax())], skip_special_tokens=True)


def test_lora_members_are_distinct_adapters_on_one_base():
    from keel.distill.members import lora_members
    from keel.distill.rsft import Example, SFTConfig

    model, tok = load_model("tiny", seed=0)
    p = [{"role": "user", "content": "What is 1 + 1?"}]
    ex = [Example.of(p, "2"), Example.of([{"role": "user", "content": "What is 2 + 2?"}], "4")]
    peft_model, members, logs = lora_members(model, tok, ex, 3, SFTConfig(lr=1e-2, epochs=2, batch_size=2), r=2)
    assert [m.adapter for m in members] == ["m0", "m1", "m2"] and len(logs) == 3
    ids = torch.tensor(encode_prompts(tok, [p]))
    with torch.no_grad():
        outs = [m.activate()(input_ids=ids).logits[0, -1] for m in members]
        with peft_model.disable_adapter():
            base = peft_model(input_ids=ids).logits[0, -1]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    assert not torch.allclose(outs[0], base)
    with pytest.raises(KeelError):
        Member(load_model("tiny")[0], "m0").activate()
