"""Long chain tasks, their solver traces, cutting traces into bounded rounds, and the round-by-round rollout."""

import pytest

from keel.envs.text.chains import ArithChain, CountdownChain, make_chain_task
from keel.errors import KeelError
from keel.llm import rounds as R
from keel.llm.model import load_tokenizer, tokenizer_dir
from keel.llm.sampler import Samples


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(tokenizer_dir())


def ntok(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def test_arith_chain_trace_solves_and_score_is_exact():
    task = ArithChain(min_steps=5, max_steps=9)
    for p in task.problems("train", 20, seed=1):
        tr = task.trace(p)
        assert 5 <= len(tr.steps) <= 9 and len(tr.steps) == task.steps_of(p)
        assert task.score(p, tr.text()).correct
        wrong = tr.text().replace(f"Answer: {p.answer}", f"Answer: {int(p.answer) + 1}")
        assert not task.score(p, wrong).correct
        assert not task.score(p, "\n".join(tr.steps)).correct  # no answer line: not correct
        # every value on the way stays in 0..99 (two-digit op one-digit steps)
        assert all(0 <= int(s.split("=")[1]) <= 99 for s in tr.steps)


def test_arith_chain_lines_and_summaries_name_the_step_as_the_question_does():
    """A line starts with the question's own "(i) op"; a summary names the next step and the value reached."""
    task = ArithChain(min_steps=5, max_steps=9)
    for p in task.problems("train", 20, seed=4):
        tr, ops = task.trace(p), p.meta["ops"]
        for i, (line, s) in enumerate(zip(tr.steps, tr.summaries, strict=True), 1):
            assert f"({i}) {ops[i - 1]}" in p.prompt and line.startswith(f"({i}) {ops[i - 1]}: ")
            value = line.split("=")[1]
            assert s == (f"({i + 1}) {ops[i]} from {value}" if i < len(ops) else f"all steps done: {value}")


def test_countdown_chain_search_finds_a_valid_solution_within_the_length_knob():
    task = CountdownChain(numbers=4, min_steps=8, max_steps=30)
    for p in task.problems("train", 10, seed=2):
        tr = task.trace(p)
        assert 8 <= len(tr.steps) <= 30
        assert task.score(p, tr.text()).correct
        # a round may end only right after a move, never after a backtrack
        for line, s in zip(tr.steps, tr.summaries, strict=True):
            assert (s is None) == line.startswith("back to")
    p = task.problems("train", 1, seed=3)[0]
    assert not task.score(p, "Answer: 1+1").correct  # not every number used


def test_heldout_problems_are_longer_than_any_in_training(tok):
    train, held = ArithChain(min_steps=6, max_steps=12), ArithChain(min_steps=16, max_steps=24)
    tr_p, he_p = train.problems("train", 64, 0), held.problems("test", 32, 0)
    assert max(train.steps_of(p) for p in tr_p) < min(held.steps_of(p) for p in he_p)
    count = ntok(tok)
    assert max(count(train.trace(p).text()) for p in tr_p) < min(count(held.trace(p).text()) for p in he_p)
    assert not {p.prompt for p in tr_p} & {p.prompt for p in he_p}
    with pytest.raises(KeelError):
        make_chain_task("arith_chain", min_steps=5, max_steps=3)
    with pytest.raises(KeelError):
        make_chain_task("nope")


@pytest.mark.parametrize("task", [ArithChain(min_steps=10, max_steps=14), CountdownChain(min_steps=12, max_steps=30)])
def test_cut_trace_rounds_fit_and_rebuild_the_trace(tok, task):
    cfg = R.RoundsConfig(round_tokens=48, max_rounds=20)
    count = ntok(tok)
    for p in task.problems("train", 8, 0):
        tr = task.trace(p)
        rounds = R.cut_trace(p.prompt, tr, cfg, count)
        assert len(rounds) >= 2  # the full trace does not fit one round
        assert count(tr.text()) > cfg.round_tokens
        steps, summaries = [], []
        for k, rt in enumerate(rounds):
            assert count(rt.completion) + rt.final <= cfg.round_tokens  # + EOS after the answer
            assert rt.prompt == R.round_prompt(p.prompt, summaries, 1)  # question + latest summary only
            kind, content = R.parse_round(rt.completion)
            assert rt.final == (k == len(rounds) - 1) and kind == ("answer" if rt.final else "summary")
            body = rt.completion.split("\n")[:-1]
            steps += body
            if not rt.final:
                assert content == tr.summaries[len(steps) - 1]  # the summary of the step the round ends at
                summaries.append(content)
        assert steps == list(tr.steps)
    with pytest.raises(KeelError):
        R.cut_trace(p.prompt, tr, R.RoundsConfig(round_tokens=6, max_rounds=20), count)
    with pytest.raises(KeelError):
        R.cut_trace(p.prompt, tr, R.RoundsConfig(round_tokens=48, max_rounds=1), count)


def test_round_prompt_keeps_only_question_and_latest_summaries():
    assert R.round_prompt("Q?", []) == "Q?\n"
    assert R.round_prompt("Q?", ["a", "b", "c"], history=1) == "Q?\n<summary>c</summary>\n"
    assert R.round_prompt("Q?", ["a", "b", "c"], history=2) == "Q?\n<summary>b</summary>\n<summary>c</summary>\n"
    assert R.round_prompt("Q?", ["a", "b"], history=0).count("<summary>") == 2


class Scripted:
    """Stands in for the sampler: replies from a script per question, records every prompt it was given."""

    def __init__(self, tok, script: dict[str, list[str]], cap_tokens: int):
        self.tok, self.script, self.cap, self.prompts = tok, script, cap_tokens, []
        self.turn: dict[str, int] = {}

    def __call__(self, model, tok, prompts, n=1, max_new_tokens=64, temperature=0.7, top_p=1.0, stop=None,
                 seed=None):
        ids, comps, texts = [], [], []
        for p in prompts:
            self.prompts.append(p)
            q = p.split("\n")[0]
            k = self.turn.get(q, 0)
            self.turn[q] = k + 1
            c = tok(self.script[q][k], add_special_tokens=False)["input_ids"][:max_new_tokens]
            ids.append(tok(p, add_special_tokens=False)["input_ids"])
            comps.append(c)
            texts.append(tok.decode(c))
        return Samples(ids, comps, [[-0.5] * len(c) for c in comps], texts, list(range(len(prompts))))


def test_run_rounds_next_round_sees_only_question_and_summaries(tok, monkeypatch):
    script = {
        "A": ["(1) 5+1=6\n(2) 6+1=7 SECRET<summary>after step 2: 7</summary>",
              "(3) 7+1=8 HIDDEN<summary>after step 3: 8</summary>", "(4) 8+1=9\nAnswer: 9"],
        "B": ["just rambling on and on " * 20],  # never summarises: malformed, cut at the round's tokens
        "C": ["x<summary>s1</summary>", "y<summary>s2</summary>", "z<summary>s3</summary>"],
    }
    fake = Scripted(tok, script, 40)
    monkeypatch.setattr(R, "sample", fake)
    cfg = R.RoundsConfig(round_tokens=40, max_rounds=3)
    trajs, _ = R.run_rounds(None, tok, ["A", "B", "C"], cfg)
    a, b, c = trajs
    assert a.ended == "answer" and len(a.rounds) == 3 and a.summaries == ["after step 2: 7", "after step 3: 8"]
    assert [r.kind for r in a.rounds] == ["summary", "summary", "answer"]
    assert b.ended == "malformed" and len(b.rounds) == 1
    assert c.ended == "rounds" and len(c.rounds) == 3  # phi rounds used up without an answer
    prompts_a = [p for p in fake.prompts if p.startswith("A")]
    assert prompts_a == ["A\n", "A\n<summary>after step 2: 7</summary>\n", "A\n<summary>after step 3: 8</summary>\n"]
    assert not any("SECRET" in p or "HIDDEN" in p or "(1)" in p for p in prompts_a)  # no reasoning carried
    for t in trajs:
        for r in t.rounds:
            assert len(r.completion_ids) <= cfg.round_tokens
            assert t.peak_context >= len(r.prompt_ids) + len(r.completion_ids)


def test_run_rounds_on_a_real_model_never_exceeds_round_tokens(tok):
    from keel.llm import load_model

    model, tok = load_model("tiny", seed=0)
    cfg = R.RoundsConfig(round_tokens=7, max_rounds=2)
    trajs, _ = R.run_rounds(model, tok, ["What is 2+2?", "Start at 5."] * 2, cfg, temperature=1.0, seed=3)
    for t in trajs:
        assert 1 <= len(t.rounds) <= cfg.max_rounds
        for r in t.rounds:
            assert 1 <= len(r.completion_ids) <= cfg.round_tokens and len(r.logprobs) == len(r.completion_ids)
    with pytest.raises(KeelError):
        R.run_rounds(model, tok, ["q"], R.RoundsConfig(round_tokens=2))


def test_random_cuts_begin_rounds_at_every_step_and_still_rebuild_the_trace(tok):
    import random

    task, cfg, count = ArithChain(min_steps=4, max_steps=8, max_operand=1), R.RoundsConfig(round_tokens=48), ntok(tok)
    rng = random.Random(0)
    starts = {"greedy": set(), "random": set()}
    for p in task.problems("train", 64, 0):
        tr = task.trace(p)
        for name, r in (("greedy", None), ("random", rng)):
            done = 0
            for rt in R.cut_trace(p.prompt, tr, cfg, count, r):
                assert count(rt.completion) + rt.final <= cfg.round_tokens
                starts[name].add(done + 1)
                lines = rt.completion.split("\n")[:-1]
                assert lines == list(tr.steps[done:done + len(lines)])
                done += len(lines)
            assert done == len(tr.steps)
    assert starts["greedy"] < starts["random"] and starts["random"] == set(range(1, 9))
