"""The agent_sft and agent_rl jobs on the tiny model: BC learns, policies save and load, exact resume, eval."""

import pytest
import torch

from keel.config import validate
from keel.errors import KeelError
from keel.llm import completion_logprobs
from keel.llm.lora import is_lora
from keel.rl import agent_rl, agent_sft
from keel.rl.agent_job import PolicyConfig, build_policy, load_policy
from keel.runs import Run

TOY = "tests.agent_train.toyenv:make"
TURNS = {"max_turns": 3, "max_turn_tokens": 6, "context_budget": 400}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # exact float reductions, and kind to a shared machine
    yield
    torch.set_num_threads(threads)


def _sft(tmp_path, **kw):
    return validate(agent_sft.Config, {
        "kind": "agent_sft", "policy": {"model": "tiny"}, "env": {"name": TOY}, "turns": TURNS, "demos": 8,
        "steps": 12, "checkpoint_every": 4, "runs_dir": str(tmp_path), "eval_base": False,
        "eval": {"episodes": 2, "splits": ["test"], "batch": 2}, "sft": {"lr": 1e-2, "batch_size": 4}, **kw}, "t")


def _rl(tmp_path, steps, **kw):
    return validate(agent_rl.Config, {
        "kind": "agent_rl", "policy": {"model": "tiny"}, "env": {"name": TOY, "options": {"shaping": True}},
        "turns": TURNS, "steps": steps, "checkpoint_every": 2, "runs_dir": str(tmp_path), "eval_base": False,
        "eval": {"episodes": 2, "splits": ["test-templates"], "batch": 2},
        "grpo": {"group_size": 3, "prompts_per_step": 2, "lr": 1e-2, "stapo": True}, **kw}, "t")


def test_sft_loss_decreases_and_the_saved_policy_is_the_trained_one(tmp_path):
    run = Run.create(tmp_path, "sft", {}, "x")
    out = agent_sft.train(_sft(tmp_path), run, quiet=True)
    losses = [r["loss"] for r in run.metrics() if "loss" in r]
    assert len(losses) == 12 and losses[-1] < 0.8 * losses[0]
    assert out["kind"] == "agent_sft" and out["base_model"] == "tiny" and out["init"] is None
    assert set(out["final"]["test"]) >= {"success", "calls_per_task", "malformed_rate", "denials_per_task",
                                         "tokens_per_episode"}
    model, tok = load_policy(run.path)
    assert not is_lora(model)
    assert [p.name for p in run.checkpoints.glob("step_*.pt")] == ["step_0000000012.pt"]  # the last one only
    ck = run.load_checkpoint()[0]["trainer"]["model"]
    for k, v in model.state_dict().items():
        if k in ck:
            assert torch.equal(v, ck[k]), k


def test_lora_sft_then_rl_from_that_run(tmp_path):
    sft = Run.create(tmp_path, "sft", {}, "x")
    agent_sft.train(_sft(tmp_path, policy={"model": "tiny", "lora_r": 4}, steps=2), sft, quiet=True)
    model, _ = load_policy(sft.path)
    assert is_lora(model)
    rl = Run.create(tmp_path, "rl", {}, "x")
    out = agent_rl.train(_rl(tmp_path, 2, policy={"model": str(sft.path), "lora_r": 4}), rl, quiet=True)
    assert out["base_model"] == "tiny" and out["init"] == str(sft.path) and out["kind"] == "agent_rl"
    again, tok = load_policy(rl.path)
    assert is_lora(again)
    # the reloaded policy computes what the trained one does
    trained = load_policy(rl.path)[0]
    ids = [[1, 5, 9, 20]]
    with torch.no_grad():
        a = completion_logprobs(again, ids, [[7, 8]], tok.pad_token_id, False)[0]
        b = completion_logprobs(trained, ids, [[7, 8]], tok.pad_token_id, False)[0]
    assert torch.equal(a, b)
    assert any(r.get("updated_rows", 0) > 0 for r in rl.metrics())


def test_agent_rl_resume_is_exact(tmp_path):
    straight = Run.create(tmp_path, "straight", {}, "x")
    agent_rl.train(_rl(tmp_path, 3), straight, quiet=True)
    split = Run.create(tmp_path, "split", {}, "x")
    agent_rl.train(_rl(tmp_path, 2), split, quiet=True)
    split.close()
    split = Run(split.path)
    agent_rl.train(_rl(tmp_path, 3), split, resume=True, quiet=True)
    a, b = straight.load_checkpoint(), split.load_checkpoint()
    assert a[1] == b[1] == 3
    assert any(r.get("grad_norm", 0) > 0 for r in straight.metrics())
    wa, wb = a[0]["trainer"]["model"], b[0]["trainer"]["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    key = [(r["step"], r.get("reward"), r.get("loss")) for r in straight.metrics()]
    assert key == [(r["step"], r.get("reward"), r.get("loss")) for r in Run(split.path).metrics()]


def test_eval_on_held_out_templates_and_single_turn_text_env(tmp_path):
    cfg = _rl(tmp_path, 1, env={"name": "text", "task": "arithmetic", "options": {"digits": 1}, "pool": 8},
              eval={"episodes": 3, "splits": ["test"], "batch": 3})
    run = Run.create(tmp_path, "text-run", cfg.model_dump(mode="json"), "x")
    out = agent_rl.train(cfg, run, quiet=True)
    assert out["final"]["test"]["episodes"] == 3
    assert out["final"]["test"]["model_tokens_per_episode"] <= 6  # one turn of at most 6 tokens
    ev = agent_rl.evaluate(run, episodes=2, split="test")
    assert ev["split"] == "test" and ev["episodes"] == 2 and 0 <= ev["success"] <= 1
    with pytest.raises(KeelError, match="test-templates"):
        agent_rl.evaluate(run, episodes=2, split="test-templates")  # a text task has no held-out templates
    # evaluated under another reply cap: recorded, and it binds (at most 2 tokens a turn)
    ev2 = agent_rl.evaluate(run, episodes=2, split="test", overrides=["turns.max_turn_tokens=2"])
    assert ev2["overrides"] == ["turns.max_turn_tokens=2"] and ev2["model_tokens_per_episode"] <= 2
    with pytest.raises(KeelError, match="only turns"):
        agent_rl.evaluate(run, episodes=2, split="test", overrides=["policy.model=tiny"])


def test_cuda_is_refused_clearly_when_absent():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(KeelError, match="no CUDA"):
        build_policy(PolicyConfig(model="tiny", device="cuda"))


def test_rl_from_an_unfinished_run_is_a_clear_error(tmp_path):
    with pytest.raises(KeelError, match="agent-sft"):
        build_policy(PolicyConfig(model="runs/missing-sft"))


def test_cosine_schedule_warms_up_then_decays_to_a_tenth():
    cfg = agent_sft.SFTConfig(lr=1e-3, schedule="cosine", warmup=2)
    lrs = [agent_sft.lr_at(cfg, s, 10) for s in range(1, 11)]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False)) and lrs[-1] == pytest.approx(1e-4)
    assert agent_sft.lr_at(agent_sft.SFTConfig(lr=1e-3), 7, 10) == 1e-3


def test_bf16_cosine_sft_learns_and_logs_the_schedule(tmp_path):
    run = Run.create(tmp_path, "sft-bf16", {}, "x")
    agent_sft.train(_sft(tmp_path, sft={"lr": 1e-2, "batch_size": 4, "schedule": "cosine", "warmup": 2,
                                        "bf16": True}), run, quiet=True)
    rows = [r for r in run.metrics() if "loss" in r]
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    assert rows[0]["lr"] == pytest.approx(5e-3) and rows[-1]["lr"] == pytest.approx(1e-3)


def test_common_prefix_pass_gives_the_full_pass_values_and_gradients():
    import random

    from keel.llm import load_model

    model, tok = load_model("tiny", seed=0)
    rng = random.Random(0)
    system = [rng.randrange(5, 200) for _ in range(12)]
    P = [system + [rng.randrange(5, 200) for _ in range(n)] for n in (3, 7, 1, 5)]
    C = [[rng.randrange(5, 200) for _ in range(n)] for n in (4, 2, 6, 1)]
    grads = []
    for fn in (completion_logprobs, agent_sft.common_prefix_logprobs):
        model.zero_grad()
        logp = fn(model, P, C, tok.pad_token_id, with_entropy=False)[0]
        (logp * torch.arange(1, logp.shape[1] + 1)).sum().backward()  # position-dependent: a shifted index fails
        grads.append((logp.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, ga), (b, gb) = grads
    assert torch.allclose(a, b, atol=1e-5)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(ga, gb, strict=True))


def test_shared_prefix_sft_draws_batches_of_one_system_prompt(tmp_path):
    run = Run.create(tmp_path, "sft-shared", {}, "x")
    out = agent_sft.train(_sft(tmp_path, sft={"lr": 1e-2, "batch_size": 4, "share_prefix": True}), run, quiet=True)
    losses = [r["loss"] for r in run.metrics() if "loss" in r]
    assert losses[-1] < 0.8 * losses[0] and out["final"]["test"]["episodes"] == 2


def test_a_reply_cap_below_the_experts_replies_is_reported(tmp_path):
    cfg = _sft(tmp_path, steps=1, turns={**TURNS, "max_turn_tokens": 1})
    run = Run.create(tmp_path, "capped", {}, "x")
    with pytest.warns(UserWarning, match="raise turns.max_turn_tokens"):
        out = agent_sft.train(cfg, run, quiet=True)
    assert out["demos_cut_by_max_turn_tokens"] == out["demos"] > 0
    roomy = _sft(tmp_path, steps=1, turns={**TURNS, "max_turn_tokens": 32})
    assert agent_sft.train(roomy, Run.create(tmp_path, "roomy", {}, "x"),
                           quiet=True)["demos_cut_by_max_turn_tokens"] == 0
