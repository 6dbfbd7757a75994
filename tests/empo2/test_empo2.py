"""EMPO² (keel.rl.empo2): low-probability masking and importance weights on hand-built batches, the tips
memory (written, retrieved, best score first, per task), the novelty bonus decaying on revisits, the step
modes, and a short agent_empo2 run on the tiny model in the toy env."""

import json

import pytest
import torch

from keel.config import validate
from keel.errors import KeelError
from keel.llm import load_model
from keel.llm.conversation import ChatPieces, Trajectory, prompt_messages
from keel.rl import dapo
from keel.rl.empo2 import (
    EMPO2Config,
    draw_mode,
    low_prob_keep,
    novelty_bonus,
    off_policy,
    plain_logprobs,
    turn_ids,
)
from keel.rl.empo2_tips import TIPS_HEADER, TipMemory, TipsConfig, TipsEnv, remember, states_and_actions
from keel.rl.grpo import GRPO, GRPOConfig, Rollout
from keel.runs import Run
from tests.agent_train.toyenv import ToyAgentEnv

TOY = "tests.agent_train.toyenv:make"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- masking and importance weights ------------------------------------------------------------------
MASK = torch.tensor([[1, 1, 0, 0, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)
LOGP = torch.tensor([[-0.1, -0.2, 0.0, 0.0, -0.3, -7.0, -0.1, 0.0], [-0.5, -0.5, -0.5, 0, 0, 0, 0, 0]])


def test_turns_are_runs_of_model_tokens():
    assert turn_ids(MASK).tolist() == [[0, 1 - 1, -1, -1, 1, 1, 1, -1], [0, 0, 0, -1, -1, -1, -1, -1]]


def test_low_prob_mask_drops_the_turn_or_only_the_token():
    turn = low_prob_keep(LOGP, MASK, -5.0, "turn")
    assert turn.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]  # second turn of row 0 gone
    tok = low_prob_keep(LOGP, MASK, -5.0, "token")
    assert tok.tolist() == [[1, 1, 0, 0, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0]]
    assert low_prob_keep(LOGP, MASK, -8.0, "turn").tolist() == MASK.tolist()  # nothing below -8


def _roll(prompts, completions, old, mask, rewards):
    return Rollout(prompts, completions, old, mask, torch.tensor(rewards), torch.tensor([r > 0 for r in rewards]),
                   torch.tensor(rewards) - 0.5)


def test_off_policy_swaps_prompts_keeps_behaviour_logp_and_masks():
    old = torch.full_like(LOGP, -1.0) * MASK
    roll = _roll([[1, 2, 3], [1, 2, 3]], [[5] * 8, [6] * 3], old, MASK, [1.0, 0.0])
    out, stats = off_policy(roll, [[1], [1]], LOGP, EMPO2Config())
    assert out.prompt_ids == [[1], [1]] and out.completion_ids is roll.completion_ids
    assert torch.equal(out.old_logp, old)  # the with-tips behaviour log-probs stay: ratio = pi(a|s) / pi_old(a|s,u)
    assert out.mask.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]
    assert stats["off_masked_frac"] == pytest.approx(3 / 8)
    want = float((torch.exp(LOGP - old) * MASK).sum() / MASK.sum())
    assert stats["off_mean_ratio"] == pytest.approx(want)


def test_the_off_policy_loss_is_the_importance_weighted_clipped_loss_without_the_tips():
    model, tok = load_model("tiny", seed=0)
    pieces = ChatPieces(tok)
    tipped = pieces.prompt_ids(prompt_messages(TIPS_HEADER + "\n- call get first\n\nWhat is k1?", "sys"))
    plain = pieces.prompt_ids(prompt_messages("What is k1?", "sys"))
    comp = [[100, 101, 102, 7, 8, 103], [104, 105, 9, 106, 107, 108]]
    mask = torch.tensor([[1, 1, 1, 0, 0, 1], [1, 1, 0, 1, 1, 1]], dtype=torch.float32)
    roll = _roll([tipped, tipped], comp, torch.zeros(2, 6), mask, [1.0, 0.0])
    old = plain_logprobs(model, roll, [tipped, tipped], tok.pad_token_id, 1.0) * mask  # behaviour: with tips
    roll.old_logp = old
    trainer = GRPO(model, tok, GRPOConfig(group_size=2, share_prefix=False))
    roll = trainer.finish(roll)
    lp = plain_logprobs(model, roll, [plain, plain], tok.pad_token_id, 1.0)
    cfg = EMPO2Config(low_prob=-100.0)  # keep every token: this test checks the weights
    off, _ = off_policy(roll, [plain, plain], lp, cfg)
    loss, _ = trainer.loss(off, torch.arange(2))
    want_tok, _ = dapo.token_loss(lp, old, off.advantages[:, None], 0.2, 0.28)
    want = (want_tok * mask).sum() / mask.sum()
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert not torch.allclose(lp * mask, old, atol=1e-6)  # the weights are not 1: the prompts were swapped
    # with the tips left in, every ratio is 1 and the loss is minus the mean advantage over the tokens
    on_loss, _ = trainer.loss(roll, torch.arange(2))
    adv = (roll.advantages[:, None] * mask).sum() / mask.sum()
    assert float(on_loss.detach()) == pytest.approx(-float(adv), abs=1e-6)


# --- tips memory and novelty -----------------------------------------------------------------------
def _traj(task_msg: str, replies: list[str], reward: float) -> Trajectory:
    tr = Trajectory(prompt_ids=[1], messages=[{"role": "system", "content": "sys"},
                                              {"role": "user", "content": task_msg}])
    for r in replies:
        tr.messages += [{"role": "assistant", "content": r}, {"role": "tool", "content": "42"}]
    tr.reward, tr.success = reward, reward > 0
    return tr


def test_tips_are_written_and_retrieved_best_score_first(tmp_path):
    mem = TipMemory(tmp_path / "tips.db", TipsConfig(embedder="hash", top_k=3))
    first = "What is the value of k1? Call get(KEY), then reply ANSWER VALUE."
    bad, good = _traj(first, ["get(k2)"], 0.0), _traj(first, ["get(k1)", "ANSWER 2"], 1.0)
    n = remember(mem, [bad, good], ["Guessing wastes turns.", "Look the key up first."], ["k1", "k1"],
                 [first, first])
    assert n == 3 and mem.size == 3
    tips = mem.retrieve(f"user: {first}", "k1")
    assert len(tips) == 3 and all(t.startswith("Look the key up first.") and "succeeded" in t for t in tips[:2])
    assert "replied get(k1)" in tips[0] and tips[2].startswith("Guessing") and "failed" in tips[2]
    assert mem.retrieve("user: something about weather in paris", "k1") == []  # nothing similar
    mem.close()
    again = TipMemory(tmp_path / "tips.db", TipsConfig(embedder="hash", top_k=2))  # it persists
    assert again.size == 3 and again.retrieve(f"user: {first}", "k1")[0].startswith("Look")
    scoped = TipMemory(tmp_path / "tips.db", TipsConfig(embedder="hash", scope="task"))
    assert scoped.retrieve(f"user: {first}", "k9") == [] and scoped.retrieve(f"user: {first}", "k1")


def test_keep_success_stores_only_the_episodes_that_succeeded(tmp_path):
    mem = TipMemory(tmp_path / "s.db", TipsConfig(embedder="hash", top_k=3, keep="success"))
    first = "What is the value of k1? Call get(KEY), then reply ANSWER VALUE."
    bad, good = _traj(first, ["get(k2)"], 0.0), _traj(first, ["get(k1)", "ANSWER 2"], 1.0)
    assert remember(mem, [bad, good], ["Guessing wastes turns.", ""], ["k1", "k1"], [first, first]) == 2
    tips = mem.retrieve(f"user: {first}", "k1")
    assert tips and all("succeeded" in t and "Guessing" not in t for t in tips)
    assert remember(mem, [bad], ["x"], ["k1"], [first]) == 0 and mem.size == 2
    mem.close()


def test_tips_go_before_or_after_the_task():
    from keel.rl.empo2_tips import with_tips

    assert with_tips("Do X.", ["a"]).startswith(TIPS_HEADER) and with_tips("Do X.", ["a"]).endswith("Do X.")
    after = with_tips("Do X.", ["a"], "after")
    assert after.startswith("Do X.\n\n" + TIPS_HEADER) and after.endswith("- a")


def test_states_are_the_conversation_before_each_reply_without_the_tips():
    tr = _traj(TIPS_HEADER + "\n- x\n\nWhat is k1?", ["get(k1)", "ANSWER 2"], 1.0)
    states, actions = states_and_actions(tr, "What is k1?")
    assert actions == ["get(k1)", "ANSWER 2"]
    assert states == ["user: What is k1?", "user: What is k1?\nassistant: get(k1)\ntool: 42"]


def test_novelty_bonus_decays_as_a_state_is_revisited(tmp_path):
    mem = TipMemory(tmp_path / "n.db", TipsConfig(embedder="hash", count_cap=10))
    state = "user: What is the value of k3?"
    seen = []
    for i in range(4):
        seen.append(novelty_bonus(mem.count_similar(state)))
        mem.write([state], [f"tip {i}"], "k3", 0.0)
    assert seen == [1.0, 0.5, pytest.approx(1 / 3), 0.25]
    assert novelty_bonus(mem.count_similar("user: an unrelated question about trains")) == 1.0


def test_tips_env_puts_tips_in_front_and_keeps_the_plain_message(tmp_path):
    mem = TipMemory(tmp_path / "t.db", TipsConfig(embedder="hash"))
    env = TipsEnv(ToyAgentEnv(), mem)
    env.enabled = True
    msg, _ = env.reset(seed=0, options={"task": "k1"})
    assert env.tips == [] and msg == env.plain_first  # empty memory: nothing to add
    remember(mem, [_traj(msg, ["get(k1)"], 1.0)], ["Call get(k1)."], ["k1"], [msg])
    tipped, info = env.reset(seed=0, options={"task": "k1"})
    assert tipped.startswith(TIPS_HEADER) and tipped.endswith(env.plain_first) and "Call get(k1)." in tipped
    assert info["task"] == "k1" and env.task == "k1"
    env.enabled = False
    assert env.reset(seed=0, options={"task": "k1"})[0] == env.plain_first


# --- modes and the job -------------------------------------------------------------------------------
def test_modes_follow_the_shares_and_are_reproducible():
    cfg = EMPO2Config(p_off=0.3, p_on_tips=0.2)
    modes = [draw_mode(cfg, k) for k in range(2000)]
    assert modes == [draw_mode(cfg, k) for k in range(2000)]
    assert abs(modes.count("off") / 2000 - 0.3) < 0.04 and abs(modes.count("on_tips") / 2000 - 0.2) < 0.04
    assert set(draw_mode(EMPO2Config(p_off=0, p_on_tips=0), k) for k in range(50)) == {"on"}
    with pytest.raises(ValueError):
        EMPO2Config(p_off=0.7, p_on_tips=0.5)


def test_agent_empo2_job_trains_writes_memory_and_uses_it(tmp_path):
    from keel.rl import empo2_job

    cfg = validate(empo2_job.Config, {
        "kind": "agent_empo2", "policy": {"model": "tiny"}, "env": {"name": TOY, "options": {"shaping": True}},
        "turns": {"max_turns": 2, "max_turn_tokens": 6, "context_budget": 600}, "steps": 3,
        "checkpoint_every": 3, "runs_dir": str(tmp_path), "eval_base": False,
        "eval": {"episodes": 2, "splits": ["test"], "batch": 2},
        "grpo": {"group_size": 2, "prompts_per_step": 2, "lr": 1e-2},
        "empo2": {"p_off": 1.0, "p_on_tips": 0.0, "low_prob": -100.0,
                  "tips": {"embedder": "hash", "tip_tokens": 3, "similarity": 0.3}}}, "t")
    run = Run.create(tmp_path, "empo2", cfg.model_dump(mode="json"), "x")
    out = empo2_job.train(cfg, run, quiet=True)
    rows = [r for r in run.metrics() if "mode_off" in r]
    assert out["kind"] == "agent_empo2" and out["modes"] == {"on": 0, "on_tips": 0, "off": 3}
    assert [r["mode_off"] for r in rows] == [1.0, 1.0, 1.0]
    assert rows[0]["tipped_frac"] == 0.0 and rows[-1]["tipped_frac"] > 0  # memory fills, then is read
    assert rows[-1]["memory_size"] > rows[0]["memory_size"] > 0
    assert rows[0]["novelty"] == 1.0 and rows[-1]["novelty"] < 1.0
    assert all(r["updated_rows"] >= 0 and r["off_masked_frac"] == 0.0 for r in rows)
    assert (run.path / "tips.db").is_file() and (run.path / "policy").is_dir()
    assert json.loads((run.path / "summary.json").read_text())["final"]["test"]["episodes"] == 2


def test_bad_config_is_a_clear_error(tmp_path):
    from keel.rl import empo2_job

    with pytest.raises(KeelError, match="p_off"):
        validate(empo2_job.Config, {"kind": "agent_empo2", "empo2": {"p_off": 0.9, "p_on_tips": 0.2}}, "t")
    cfg = validate(empo2_job.Config, {"kind": "agent_empo2", "grpo": {"top_p": 0.9}}, "t")
    with pytest.raises(KeelError, match="top_p"):
        empo2_job.check(cfg)


def test_adaptation_with_memory_alone_reads_tips_from_trial_two(tmp_path):
    from keel.llm.multiturn import TurnConfig
    from keel.rl.agent_envs import EnvConfig
    from keel.rl.empo2_adapt import adapt

    model, tok = load_model("tiny", seed=0)
    out = adapt(model, tok, EnvConfig(name=TOY), TurnConfig(max_turns=2, max_turn_tokens=4, context_budget=600),
                "test", tasks=3, trials=2, tips=TipsConfig(embedder="hash", tip_tokens=3, similarity=0.3),
                memory_dir=tmp_path, temperature=1.0, batch=2,
                more_arms={"memory-outcome": TipsConfig(embedder="hash", write="outcome", keep="success")})
    assert out["tasks"] == 3 and len(out["memory"]["success"]) == len(out["none"]["success"]) == 2
    assert out["memory-outcome"]["success"][0] == out["none"]["success"][0]  # its memory is empty at trial 1
    assert [sum(t) / 3 for t in out["none"]["per_task"]] == out["none"]["success"]
    assert out["tips"]["memory-outcome"]["keep"] == "success" and out["tips"]["memory"]["keep"] == "all"
    assert out["memory"]["tipped_frac"][0] == 0.0 and out["memory"]["tipped_frac"][1] > 0
    assert out["none"]["tipped_frac"] == [0.0, 0.0]
    assert out["memory"]["success"][0] == out["none"]["success"][0]  # same seeds, empty memory: same trial 1
    assert all(a <= b for a, b in zip(out["memory"]["solved"], out["memory"]["solved"][1:], strict=False))
    # measured again in the same place: the old memory (its dense index is a directory) is replaced, not a crash
    (tmp_path / "adapt-memory.db.vec").mkdir(exist_ok=True)
    again = adapt(model, tok, EnvConfig(name=TOY), TurnConfig(max_turns=2, max_turn_tokens=4, context_budget=600),
                  "test", tasks=3, trials=2, tips=TipsConfig(embedder="hash", tip_tokens=3, similarity=0.3),
                  memory_dir=tmp_path, temperature=1.0, batch=2)
    assert again["memory"]["success"] == out["memory"]["success"]


def test_a_salvaged_call_with_a_leading_zero_number_is_read_not_a_crash():
    # SmolLM2 wrote such a call during the first EMPO² benchmark run; json.loads("01") raised inside the env
    from keel.agents.parsing import parse_action

    call = parse_action('{"tool": "send_money", "args": {"amount": 01, "recipient": "x"', {"send_money"})
    assert call.tool == "send_money" and call.args == {"amount": "01", "recipient": "x"}
