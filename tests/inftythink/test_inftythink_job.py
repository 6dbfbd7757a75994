"""The inftythink job on the tiny model: cold-start data, trajectory rewards, rounds as GRPO rows, the job."""

import json

import pytest
import torch
from typer.testing import CliRunner

from keel.cli import app
from keel.config import validate
from keel.errors import KeelError
from keel.llm import completion_logprobs, load_model
from keel.llm.rounds import Round, RoundsConfig, RoundTrajectory, run_rounds
from keel.rl import inftythink as it
from keel.rl.agent_sft import BehaviourCloning, SFTConfig
from keel.rl.grpo import GRPO, GRPOConfig
from keel.runs import Run


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", seed=0)


def _cfg(**kw):
    base = {"kind": "inftythink", "policy": {"model": "tiny"}, "train_options": {"min_steps": 3, "max_steps": 4},
            "heldout_options": {"min_steps": 6, "max_steps": 7}, "rounds": {"round_tokens": 40, "max_rounds": 5},
            "train_pool": 8, "eval_n": 2, "eval_batch": 2}
    return validate(it.Config, {**base, **kw}, "t")


def test_check_refuses_heldout_not_longer_and_unsupported_grpo():
    it.check(_cfg())
    with pytest.raises(KeelError, match="longer"):
        it.check(_cfg(heldout_options={"min_steps": 4, "max_steps": 9}))
    with pytest.raises(KeelError, match="beta"):
        it.check(_cfg(grpo={"beta": 0.1}))
    with pytest.raises(KeelError, match="split"):
        it.check(_cfg(eval_splits=["validation"]))
    with pytest.raises(KeelError):
        it.check(_cfg(rounds={"round_tokens": 2}))


def test_chain_mode_is_one_round_of_the_whole_budget(tiny):
    _, tok = tiny
    r = it.effective_rounds(_cfg(mode="chain"))
    assert (r.round_tokens, r.max_rounds) == (40 * 5, 1)
    cfg = _cfg()
    task, _ = it.tasks(cfg)
    probs = task.problems("train", 4, 0)
    cut = it.cold_start_examples(task, probs, it.effective_rounds(cfg), tok)
    whole = it.cold_start_examples(task, probs, r, tok)
    for rows, (one,) in zip(cut, whole, strict=True):
        assert len(rows) >= 2  # the traces do not fit one round of 40 tokens
        assert all(sum(t.mask) <= 40 for t in rows)
        assert rows[-1].ids[-1] == tok.eos_token_id and one.ids[-1] == tok.eos_token_id
        assert all(t.ids[-1] != tok.eos_token_id for t in rows[:-1])  # summary rounds end at the closing tag
        assert len(set(t.prompt_ids[:5].__repr__() for t in rows)) == 1  # every round starts from the question
        # the same trace: the chain's output holds every step line the rounds hold
        chain_text = tok.decode(one.ids, skip_special_tokens=True)
        for t in rows:
            for line in tok.decode(t.ids, skip_special_tokens=True).split("\n"):
                if line.startswith("("):
                    assert line in chain_text


def _traj(n_rounds: int, tokens: int) -> RoundTrajectory:
    t = RoundTrajectory("q", ended="answer")
    t.rounds = [Round([1, 2], [5] * tokens, [-0.1] * tokens, "Answer: 3", "answer") for _ in range(n_rounds)]
    return t


def test_trajectory_reward_is_task_times_efficiency():
    cfg = _cfg()
    task, _ = it.tasks(cfg)
    p = task.problems("train", 1, 0)[0]
    rc = RoundsConfig(round_tokens=10, max_rounds=4)
    good = _traj(3, 10)
    good.rounds[-1].text = f"Answer: {p.answer}"
    assert it.trajectory_reward(task, p, good, rc, "rounds") == (pytest.approx(1 - (2 / 4) ** 2), True)
    assert it.trajectory_reward(task, p, good, rc, "tokens") == (pytest.approx(1 - (30 / 40) ** 2), True)
    assert it.trajectory_reward(task, p, good, rc, "none") == (1.0, True)
    one = _traj(1, 4)
    one.rounds[-1].text = f"Answer: {p.answer}"
    assert it.trajectory_reward(task, p, one, rc, "rounds") == (1.0, True)  # one round: no penalty
    bad = _traj(1, 4)
    bad.rounds[-1].text = f"Answer: {int(p.answer) + 1}"
    assert it.trajectory_reward(task, p, bad, rc, "rounds") == (0.0, False)
    good.ended = "rounds"  # never concluded: not correct even if a round mentions the answer
    assert it.trajectory_reward(task, p, good, rc, "rounds")[1] is False


def test_every_round_is_a_row_with_its_trajectorys_advantage():
    trajs = [_traj(3, 4), _traj(1, 6), _traj(2, 2)]
    roll = it.to_rollout(trajs, torch.tensor([1.0, 0.0, 0.5]), torch.tensor([True, False, True]),
                         torch.tensor([0.9, -1.1, 0.2]))
    assert len(roll.completion_ids) == 6
    assert roll.advantages.tolist() == pytest.approx([0.9, 0.9, 0.9, -1.1, 0.2, 0.2])
    assert roll.mask.sum(1).tolist() == [4, 4, 4, 6, 2, 2]
    assert roll.rewards.tolist() == [1.0, 1.0, 1.0, 0.0, 0.5, 0.5]


def test_sft_on_rounds_lowers_the_loss(tiny):
    model, tok = load_model("tiny", seed=0)
    cfg = _cfg()
    task, _ = it.tasks(cfg)
    ex = it.cold_start_examples(task, task.problems("train", 4, 0), cfg.rounds, tok)
    batch = [t for rows in ex for t in rows]
    bc = BehaviourCloning(model, tok, SFTConfig(lr=1e-2, batch_size=4))
    first = bc.step(batch)["loss"]
    for _ in range(8):
        last = bc.step(batch)["loss"]
    assert last < first - 0.5


def test_freeze_below_trains_only_the_top_layers():
    model, _ = load_model("tiny", seed=0)
    it.freeze_below(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm")) for n in trainable)
    with pytest.raises(KeelError):
        it.freeze_below(model, 5)


def test_grpo_over_rounds_raises_the_rewarded_trajectorys_rounds(tiny):
    model, tok = load_model("tiny", seed=0)
    rc = RoundsConfig(round_tokens=6, max_rounds=2)
    trajs, _ = run_rounds(model, tok, ["Start at 5. <summary>"] * 2, rc, temperature=1.0, seed=1)
    trajs[0].ended = trajs[1].ended = "answer"
    roll = it.to_rollout(trajs, torch.tensor([1.0, 0.0]), torch.tensor([True, False]), torch.tensor([1.0, -1.0]))
    owner0 = len(trajs[0].rounds)

    def logp_rows():
        with torch.no_grad():
            lp, _, m = completion_logprobs(model, roll.prompt_ids, roll.completion_ids, tok.pad_token_id, False)
        return (lp * m).sum(1)

    before = logp_rows()
    trainer = GRPO(model, tok, GRPOConfig(group_size=2, prompts_per_step=1, lr=1e-2))
    for s in range(3):
        trainer.update(roll, seed=s)
    after = logp_rows()
    assert (after[:owner0] > before[:owner0]).all()  # every round of the rewarded trajectory went up
    assert (after[owner0:] < before[owner0:]).all()


def _json(output: str) -> dict:
    """The JSON line of a command's output (progress bars of weight saving may print after it)."""
    line = next(ln for ln in reversed(output.splitlines()) if '{"' in ln)
    return json.loads(line[line.index('{"'):])


def test_job_end_to_end_eval_and_resume(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "inftythink-tiny", "--name", "r1", "--json", "--set", f"runs_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    out = _json(res.output)
    assert set(out["final"]) == {"test", "heldout"}
    assert out["final"]["heldout"]["steps_mean"] > out["final"]["test"]["steps_mean"]
    run = Run(tmp_path / "r1")
    rows = run.metrics()
    assert [r["step"] for r in rows] == [1, 2, 3] and [r["phase"] for r in rows] == ["sft", "sft", "rl"]
    assert {"traj_reward", "rounds", "peak_context", "loss"} <= set(rows[2])
    res = runner.invoke(app, ["eval", str(run.path), "--split", "test", "--json"])
    assert res.exit_code == 0, res.output
    ev = _json(res.output)
    assert ev["heldout"]["n"] == 2 and ev["test"]["n"] == 2
    for m in ("test", "heldout"):
        assert ev[m]["peak_context_max"] <= 40 + 200  # a round never exceeds N on top of its prompt
    res = runner.invoke(app, ["eval", str(run.path), "--split", "test-templates", "--json"])
    assert res.exit_code != 0 and isinstance(res.exception, KeelError)  # `keel` prints it as one line, exit 2
    # resume after the last step: nothing to redo, the run keeps its log and evaluates again
    res = runner.invoke(app, ["train", "inftythink-tiny", "--name", "r1", "--resume", "--json", "--set",
                              f"runs_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    assert [r["step"] for r in Run(tmp_path / "r1").metrics()] == [1, 2, 3]
