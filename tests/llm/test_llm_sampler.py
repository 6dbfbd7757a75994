"""The KV-cache sampler and log-probs on the tiny model of SmolLM2's architecture."""

import pytest
import torch

from keel.errors import KeelError
from keel.llm import completion_logprobs, generate, load_model, sample, shared_prefix_logprobs


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", seed=0)


def test_sample_shapes_groups_and_max_tokens(tiny):
    model, tok = tiny
    s = sample(model, tok, ["Hello there", [{"role": "user", "content": "What is 2+2?"}]], n=3,
               max_new_tokens=5, temperature=1.0, seed=0)
    assert s.prompt_index == [0, 0, 0, 1, 1, 1]
    assert len(s.texts) == len(s.completion_ids) == len(s.logprobs) == 6
    assert all(1 <= len(c) <= 5 for c in s.completion_ids)
    assert all(len(c) == len(lp) for c, lp in zip(s.completion_ids, s.logprobs, strict=True))
    chat = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert s.prompt_ids[3] == tok(chat, add_special_tokens=False)["input_ids"]  # chat template applied
    again = sample(model, tok, ["Hello there", [{"role": "user", "content": "What is 2+2?"}]], n=3,
                   max_new_tokens=5, temperature=1.0, seed=0)
    assert again.completion_ids == s.completion_ids  # seeded


def test_stop_strings_cut_text(tiny):
    model, tok = tiny
    free = generate(model, tok, ["abc"] * 4, max_new_tokens=12, temperature=1.0, seed=3)
    # stop at the first character the model produced: every text must come back cut before it
    stops = [t[:1] for t in free if t]
    assert stops
    s = sample(model, tok, ["abc"] * 4, max_new_tokens=12, temperature=1.0, seed=3, stop=stops)
    for text in s.texts:
        assert not any(x in text for x in stops)
    assert sum(len(c) for c in s.completion_ids) < sum(len(tok(t)["input_ids"]) for t in free) + 48


def test_left_padding_does_not_change_greedy_output(tiny):
    model, tok = tiny
    short, long = "Hi", "This prompt is a good deal longer than the other one"
    alone = sample(model, tok, [short], max_new_tokens=6, temperature=0)
    batched = sample(model, tok, [long, short], max_new_tokens=6, temperature=0)
    assert batched.completion_ids[1] == alone.completion_ids[0]
    assert batched.logprobs[1] == pytest.approx(alone.logprobs[0], abs=1e-4)


def test_sampler_logprobs_match_a_forward_pass(tiny):
    model, tok = tiny
    s = sample(model, tok, ["Once upon", "a time there"], n=2, max_new_tokens=6, temperature=1.0, seed=1)
    with torch.no_grad():
        for fn in (completion_logprobs, shared_prefix_logprobs):
            logp, ent, mask = fn(model, s.prompt_ids, s.completion_ids, tok.pad_token_id)
            for i, lp in enumerate(s.logprobs):
                assert logp[i, : len(lp)].tolist() == pytest.approx(lp, abs=1e-4)
                assert mask[i].sum() == len(lp)
            assert torch.all(ent[mask > 0] > 0)


def test_shared_prefix_gradient_equals_full_pass(tiny):
    model, tok = tiny
    P = [[5, 6, 7, 8], [5, 6, 7, 8], [9, 10], [9, 10]]
    C = [[1, 2, 3], [4], [11, 12, 13, 14], [15]]
    grads = []
    for fn in (completion_logprobs, shared_prefix_logprobs):
        model.zero_grad()
        logp, _, _ = fn(model, P, C, tok.pad_token_id)
        logp.sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.zero_grad()
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-4), n


def test_bad_inputs_are_keel_errors(tiny):
    model, tok = tiny
    with pytest.raises(KeelError):
        sample(model, tok, ["x"], n=0)
    with pytest.raises(KeelError):
        sample(model, tok, [{"content": "no role"}])
    with pytest.raises(KeelError):
        load_model("/no/such/model/dir")


def test_draw_matches_the_distribution_and_never_draws_zero_weight():
    import torch

    from keel.llm.sampler import draw

    p = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.15, 0.05, 0.0])
    gen = torch.Generator().manual_seed(0)
    x = draw(p.repeat(100_000, 1), gen)
    freq = torch.bincount(x, minlength=len(p)).float() / len(x)
    assert freq[p == 0].sum() == 0
    assert torch.allclose(freq, p, atol=0.01), freq
    # unnormalised weights (a top-p truncated row) give the renormalised distribution
    x = draw((p * 3.0).repeat(100_000, 1), gen)
    assert torch.allclose(torch.bincount(x, minlength=len(p)).float() / len(x), p, atol=0.01)


def test_draw_across_blocks_matches_the_distribution():
    import torch

    from keel.llm.sampler import draw_with_total

    # 600 entries: blocks of 256 with a padded tail; zeros at block edges and a whole empty block
    w = torch.zeros(600)
    w[[0, 255, 256, 300, 599]] = torch.tensor([1.0, 2.0, 3.0, 0.5, 1.5])
    gen = torch.Generator().manual_seed(1)
    x, total = draw_with_total(w.repeat(200_000, 1), gen)
    assert torch.allclose(total, torch.full_like(total, 8.0))
    freq = torch.bincount(x, minlength=600).float() / len(x)
    assert freq[w == 0].sum() == 0
    assert torch.allclose(freq, w / w.sum(), atol=0.01), freq[w > 0]


def test_sampled_logprobs_are_those_of_the_tempered_distribution():
    import torch

    from keel.llm.sampler import sample_next_logp

    logits = torch.randn(32, 1000) * 4
    logits[:, 7] = float("-inf")  # a masked entry: never drawn, the rest unaffected
    for temperature in (0.0, 0.7, 1.0, 1.3):
        for top_p in (1.0, 0.9):
            tok, lp = sample_next_logp(logits, temperature, top_p, torch.Generator().manual_seed(0))
            ref = torch.log_softmax(logits / temperature if temperature > 0 else logits, -1)
            assert (tok != 7).all()
            assert torch.allclose(lp, ref.gather(-1, tok[:, None]).squeeze(-1), atol=1e-5)
