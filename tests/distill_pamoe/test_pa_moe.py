"""PA-MoE (keel.distill.pa_moe): segment routing, parameter budget, load balance, gradient isolation."""

from __future__ import annotations

import pytest
import torch

from keel.distill.pa_moe import PhaseMoEConfig, PhaseMoEPolicy, PlanRow, balance_loss, segments
from keel.errors import KeelError


@pytest.fixture(scope="module")
def tiny():
    from keel.llm import load_model

    return load_model("tiny")


def _policy(tiny, experts=3, rank=2, seed=0, active=True):
    from keel.llm.model import tiny_model

    model = tiny_model(len(tiny[1]), seed=0)
    model.config.pad_token_id = tiny[1].pad_token_id
    pol = PhaseMoEPolicy(model, PhaseMoEConfig(experts=experts, rank=rank), seed=seed)
    if active:  # experts that change the output, a router that tells observations apart
        with torch.no_grad():
            for n, p in pol.named_parameters():
                if "lora_B" in n:
                    p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
            if pol.router is not None:
                pol.router.proj.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(2))
    return pol


def test_segments_follow_turns():
    # prompt of 3, then turn 0 (2 model tokens), env (2), turn 1 (3), env (1), turn 2 (1)
    mask = [1, 1, 0, 0, 1, 1, 1, 0, 1]
    s = segments(3, mask, feature_tokens=8)
    assert s.of_token == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    assert s.openers == [[0, 1, 2], [5, 6], [10]]
    assert segments(3, mask, feature_tokens=1).openers == [[2], [6], [10]]


def test_parameter_count_equals_single_lora(tiny):
    from keel.llm.lora import add_lora
    from keel.llm.model import tiny_model

    moe, single = _policy(tiny, 3, 4, active=False), _policy(tiny, 1, 12, active=False)
    peft_model = add_lora(tiny_model(len(tiny[1]), seed=0), r=12)
    peft_count = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert moe.lora_parameters() == single.lora_parameters() == peft_count
    assert single.router_parameters() == 0 and single.router is None
    trainable = sum(p.numel() for p in moe.parameters() if p.requires_grad)
    assert trainable == moe.lora_parameters() + moe.router_parameters()
    assert moe.router_parameters() == 3 * (32 + 1)  # one linear map of the hidden size to 3 experts


def test_balance_loss_is_minimal_at_uniform_usage():
    E = 4
    uniform = torch.full((8, E), 1.0 / E)
    assert float(balance_loss(uniform, torch.arange(8) % E)) == pytest.approx(1.0)
    collapsed = torch.tensor([[0.7, 0.1, 0.1, 0.1]] * 8)
    assert float(balance_loss(collapsed, collapsed.argmax(-1))) == pytest.approx(E * 0.7)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):  # a router whose probabilities match its usage u costs E * sum u^2 >= 1 (= 1 iff uniform)
        counts = torch.randint(0, 6, (E,), generator=g)
        if counts.sum() == 0:
            continue
        choice = torch.repeat_interleave(torch.arange(E), counts)
        u = counts.float() / counts.sum()
        value = float(balance_loss(u.expand(len(choice), E), choice))
        assert value == pytest.approx(E * float((u * u).sum()), abs=1e-5)
        assert value >= 1.0 - 1e-6 and (value > 1.0 + 1e-6 or bool((counts == counts[0]).all()))
    # and its gradient moves probability away from the crowded expert
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0]] * 8, requires_grad=True)
    p = torch.softmax(logits, -1)
    balance_loss(p, p.argmax(-1)).backward()
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def _record_experts(pol):
    """Wrap Routing.set to keep the per-token expert tensor of each forward pass."""
    seen = []
    orig = pol.routing.set

    def keep(experts, gate):
        seen.append(experts.detach().cpu().clone())
        orig(experts, gate)

    pol.routing.set = keep
    return seen


def test_router_assigns_whole_segment_to_one_expert(tiny):
    from keel.llm.logprobs import completion_logprobs

    pol = _policy(tiny)
    prompt = list(range(10, 40))
    mask = [1] * 5 + [0] * 6 + [1] * 4 + [0] * 7 + [1] * 3
    ids = [(7 * i + 3) % 500 + 20 for i in range(len(mask))]
    seen = _record_experts(pol)
    with torch.no_grad(), pol.planned([PlanRow(prompt, ids, mask)]):
        completion_logprobs(pol, [prompt], [ids], tiny[1].pad_token_id, False)
    experts = [e for e in seen if e.numel()][-1][0]  # one row, no padding
    seg = segments(len(prompt), mask, pol.cfg.feature_tokens)
    per_seg = {}
    for pos, s in enumerate(seg.of_token):
        per_seg.setdefault(s, set()).add(int(experts[pos]))
    assert len(per_seg) == 3 and all(len(v) == 1 for v in per_seg.values())
    assert [next(iter(per_seg[s])) for s in range(3)] == pol.trajectory_experts(prompt, ids, mask)


def test_sampling_and_training_route_alike(tiny):
    """Multi-turn rollouts (the KV cache carries each row's expert) and the training pass (the segment plan,
    full or shared-prefix layout) give the same log-probs, with more than one expert in play."""
    from keel.llm.logprobs import completion_logprobs, shared_prefix_logprobs
    from keel.llm.multiturn import TurnConfig, run_episodes
    from keel.rl.agent_envs import EnvConfig, make_env, task_starts

    pol = _policy(tiny)
    tok = tiny[1]
    cfg = EnvConfig(name="toolworld", options={"max_turns": 3, "templates": ["banking.pay_bill", "banking.send"]})
    envs = [make_env(cfg, "train") for _ in range(4)]
    starts = [s for s in task_starts(envs[0], "train", 2, 0) for _ in range(2)]
    trajs, _ = run_episodes(pol, tok, envs, starts, TurnConfig(max_turns=3, max_turn_tokens=5, context_budget=512),
                            temperature=1.0, seed=3)
    assert all(t.turns == 3 for t in trajs)
    used = {e for t in trajs for e in pol.trajectory_experts(t.prompt_ids, t.ids, t.mask)}
    assert len(used) >= 2
    rows = [PlanRow(t.prompt_ids, t.ids, t.mask) for t in trajs]
    P, C = [t.prompt_ids for t in trajs], [t.ids for t in trajs]
    for fn in (completion_logprobs, shared_prefix_logprobs):
        with torch.no_grad(), pol.planned(rows):
            lp, _, _ = fn(pol, P, C, tok.pad_token_id, False, 1.0)
        for i, t in enumerate(trajs):
            m = torch.tensor(t.mask, dtype=torch.float32)
            assert float(((lp[i, : len(t.ids)] - torch.tensor(t.logprobs)).abs() * m).max()) < 1e-4


def test_gradients_reach_only_the_chosen_expert(tiny):
    from keel.llm.logprobs import completion_logprobs

    pol = _policy(tiny)
    logits = torch.nn.Parameter(torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))  # segment 0 -> 0, 1 -> 2
    pol.route = lambda openers: torch.softmax(logits[: len(openers)], -1)
    prompt, ids, mask = list(range(10, 30)), list(range(40, 52)), [1] * 4 + [0] * 4 + [1] * 4
    pol.zero_grad()
    with pol.planned([PlanRow(prompt, ids, mask)]):
        lp, _, _ = completion_logprobs(pol, [prompt], [ids], tiny[1].pad_token_id, False)
    (lp * torch.tensor(mask)).sum().backward()
    for name, p in pol.named_parameters():
        if "lora_" not in name:
            continue
        assert p.grad is not None, name
        assert float(p.grad[1].abs().max()) == 0.0, name  # expert 1 served no segment
    grads = [sum(float(p.grad[e].abs().sum()) for n, p in pol.named_parameters() if "lora_A" in n) for e in (0, 2)]
    assert all(g > 0 for g in grads)
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0  # the router learns from the loss


def test_single_expert_is_a_plain_lora(tiny):
    from keel.llm.logprobs import completion_logprobs

    pol = _policy(tiny, experts=1, rank=4)
    prompt, ids, mask = list(range(10, 30)), list(range(40, 52)), [1] * 4 + [0] * 4 + [1] * 4
    with torch.no_grad():
        with pol.planned([PlanRow(prompt, ids, mask)]):
            moe, _, _ = completion_logprobs(pol, [prompt], [ids], tiny[1].pad_token_id, False)
        # the same low-rank update written out by hand
        for m in pol.modules():
            if hasattr(m, "lora_A"):
                m.base.weight += m.scale * m.lora_B[0] @ m.lora_A[0]
                m.lora_B.zero_()
        with pol.planned([PlanRow(prompt, ids, mask)]):
            merged, _, _ = completion_logprobs(pol, [prompt], [ids], tiny[1].pad_token_id, False)
    assert torch.allclose(moe, merged, atol=1e-4)


def test_job_config_errors():
    from keel.config import validate
    from keel.distill import pa_moe_job

    cfg = validate(pa_moe_job.Config, {"kind": "pa_moe", "policy": {"model": "tiny", "lora_r": 8}}, "t")
    with pytest.raises(KeelError, match="lora_r"):
        pa_moe_job.check(cfg)
    cfg = validate(pa_moe_job.Config, {"kind": "pa_moe", "grpo": {"beta": 0.1}}, "t")
    with pytest.raises(KeelError, match="beta"):
        pa_moe_job.check(cfg)
    with pytest.raises(KeelError):
        validate(pa_moe_job.Config, {"kind": "pa_moe", "moe": {"experts": 0}}, "t")


def test_preset_validates():
    from importlib import resources

    import yaml

    from keel.config import validate
    from keel.distill import pa_moe_job

    data = yaml.safe_load((resources.files("keel") / "presets" / "agent-pamoe.yaml").read_text())
    cfg = validate(pa_moe_job.Config, data, "agent-pamoe")
    assert cfg.moe.experts * cfg.moe.rank == 12


def test_job_trains_and_evaluates(tmp_path):
    from keel.config import validate
    from keel.distill import pa_moe_job
    from keel.runs import Run

    data = {"kind": "pa_moe", "runs_dir": str(tmp_path), "policy": {"model": "tiny", "threads": 1},
            "env": {"name": "toolworld", "options": {"max_turns": 2, "templates": ["banking.pay_bill"]}},
            "turns": {"max_turns": 2, "max_turn_tokens": 4, "context_budget": 512},
            "moe": {"experts": 2, "rank": 2, "router_init": "kmeans", "router_init_demos": 4},
            "steps": 1, "checkpoint_every": 1, "eval": {"episodes": 2, "splits": ["test"], "batch": 2},
            "eval_base": False, "grpo": {"group_size": 2, "prompts_per_step": 1, "lr": 1e-2}}
    cfg = validate(pa_moe_job.Config, data, "t")
    run = Run.create(tmp_path, "pm", cfg.model_dump())
    s = pa_moe_job.train(cfg, run, quiet=True)
    assert s["final"]["test"]["episodes"] == 2
    assert sum(sum(v) for v in s["final"]["test"]["usage"].values()) == s["final"]["test"]["turns"]
    assert s["lora_parameters"] > 0 and s["router_parameters"] == 2 * 33
    again = pa_moe_job.evaluate(run, episodes=2)
    assert again["success"] == s["final"]["test"]["success"]
    assert again["usage"] == s["final"]["test"]["usage"]


def test_router_has_its_own_learning_rate(tiny):
    from keel.distill.pa_moe_job import PhaseGRPO
    from keel.rl.grpo import GRPOConfig

    pol = _policy(tiny, active=False)
    pol.cfg.router_lr = 0.05
    opt = PhaseGRPO(pol, tiny[1], GRPOConfig(lr=1e-4)).opt
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == [1e-4, 0.05]
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in pol.parameters() if p.requires_grad)


def test_kmeans_router_start_routes_to_nearest_centroid(tiny):
    pol = _policy(tiny, active=False)
    tok = tiny[1]
    # three kinds of segment, each opened by its own repeated tokens
    seqs = []
    for k in range(6):
        prompt = [100 + k % 2] * 20
        ids = [5, 6] + [300] * 5 + [7, 8] + [600] * 5 + [9]
        seqs.append((prompt, ids, [1, 1] + [0] * 5 + [1, 1] + [0] * 5 + [1]))
    info = pol.init_router_kmeans(seqs, seed=0)
    assert info["segments"] == 18 and sorted(info["cluster_sizes"]) == [6, 6, 6]
    experts = [pol.trajectory_experts(*s) for s in seqs]
    assert all(e == experts[0] for e in experts)  # the same kind of opener, the same expert
    assert len(set(experts[0])) == 3  # three kinds, three experts
    assert tok is not None
