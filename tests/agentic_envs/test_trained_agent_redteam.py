"""A trained run as the red-teamed agent: loading (full and LoRA), the training env's conversation format,
campaign config validation, and the safety card naming the training run and base model."""

import json

import pytest
import yaml

from keel.agents import make_agent
from keel.agents.trained import TrainedAgent, is_run_spec, load_trained, resolve_run
from keel.envs.toolworld.agentic_env import ToolworldAgentEnv
from keel.envs.toolworld.generator import get_task
from keel.errors import KeelError
from keel.redteam.attacks import select
from keel.redteam.campaign import check_campaign, load_config, plan, run_campaign


def save_run(root, name="agent-tiny", lora=False):
    """A run directory as the agent trainer leaves it: policy/ (HF folder) + summary.json."""
    from keel.llm import load_model

    run = root / "runs" / name
    model, tok = load_model("tiny")
    if lora:
        from keel.llm.lora import add_lora

        model = add_lora(model, r=4)
    model.save_pretrained(run / "policy")
    tok.save_pretrained(run / "policy")
    # as keel.rl.agent_job writes it: the weights' base, the chain's root model, the run it started from
    (run / "summary.json").write_text(json.dumps({"base_model": "tiny", "root_model": "tiny", "kind": "agent_rl",
                                                  "init": "runs/agent-sft"}))
    return run


def test_run_specs_are_recognised_and_validated(tmp_path):
    assert is_run_spec("runs/x") and not is_run_spec("smollm2") and not is_run_spec("llm:/tmp/m")
    with pytest.raises(KeelError, match="no run directory"):
        resolve_run(str(tmp_path / "runs" / "missing"))
    (tmp_path / "runs" / "half").mkdir(parents=True)
    with pytest.raises(KeelError, match="no policy/ folder"):
        resolve_run(str(tmp_path / "runs" / "half"))
    (tmp_path / "runs" / "half" / "policy").mkdir()
    with pytest.raises(KeelError, match="no summary.json"):
        resolve_run(str(tmp_path / "runs" / "half"))
    (tmp_path / "runs" / "half" / "summary.json").write_text(json.dumps({"kind": "llm"}))
    with pytest.raises(KeelError, match="base_model"):
        resolve_run(str(tmp_path / "runs" / "half"))


def test_campaign_config_with_a_missing_run_is_a_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"kind": "redteam", "agent": str(tmp_path / "runs" / "nope")}))
    c = load_config(str(cfg))
    assert c.agents == [str(tmp_path / "runs" / "nope")]
    with pytest.raises(KeelError, match="no run directory"):
        plan(c)
    cfg.write_text(yaml.safe_dump({"kind": "redteam", "agent": "runs/a", "agents": ["follower"]}))
    with pytest.raises(KeelError, match="either agent"):
        load_config(str(cfg))


@pytest.mark.parametrize("lora", [False, True])
def test_trained_policy_loads_full_or_lora(tmp_path, lora):
    path = save_run(tmp_path, lora=lora)
    (path / "config.yaml").write_text(yaml.safe_dump({"env": {"name": "toolworld", "options": {"max_result_chars": 123}}}))
    run = resolve_run(str(path))
    model, tok = load_trained(run)
    assert tok.chat_template and model.config.vocab_size == len(tok)
    assert run.record()["adapter"] == ("lora" if lora else "full")
    assert TrainedAgent(str(path), model=(model, tok)).max_result_chars == 123  # tool output cut as in training


def test_trained_agent_sees_the_training_env_conversation(tmp_path):
    """The agent's messages are the env's messages: system prompt, task, replies, tool results."""
    run = save_run(tmp_path)
    tid = "gen.banking.pay_bill.3"
    env = ToolworldAgentEnv(guard=False)
    first, info = env.reset(seed=0, options={"task": tid})
    env_msgs = [{"role": "system", "content": info["system"]}, {"role": "user", "content": first}]
    replies = []
    while True:
        reply = env.expert_reply()
        replies.append(reply)
        env_msgs.append({"role": "assistant", "content": reply})
        msg, _, term, trunc, step_info = env.step(reply)
        if term or trunc:
            break
        env_msgs.append({"role": step_info["role"], "content": msg})

    agent = TrainedAgent(str(run))
    seen = []

    def scripted(messages):
        seen.append([dict(m) for m in messages])
        return replies[len(seen) - 1]

    agent.complete = scripted
    from keel.redteam.episode import run_episode

    g = get_task(tid)
    r = run_episode(agent, g.suite, g.task)
    assert r.utility
    assert seen[-1] == env_msgs[:-1]  # everything up to the last reply, message for message


def test_redteam_campaign_runs_a_trained_agent_and_the_card_names_it(tmp_path):
    run = save_run(tmp_path)
    cfg_path = tmp_path / "campaign.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "kind": "redteam", "name": "rt", "runs_dir": str(tmp_path / "runs"), "agent": str(run),
        "tasks": "test", "suites": ["banking"], "max_user_tasks_per_suite": 1, "only_tasks_with_vectors": True,
        "max_injection_tasks_per_suite": 1, "attacks": ["important_instructions"], "defences": ["none", "guard"],
        "max_steps": 2, "max_new_tokens": 8, "batch_size": 2}))
    cfg = load_config(str(cfg_path))
    check_campaign(cfg)  # what `keel redteam run` checks before it creates the run directory
    assert all(c.user_task.startswith("gen.banking.") for c in plan(cfg))
    from keel.runs import Run

    r = Run.create(cfg.runs_dir, cfg.name, cfg.model_dump(mode="json"), str(cfg_path))
    out = run_campaign(cfg, r.path, quiet=True)
    assert out["complete"] and {e["agent"] for e in out["table"]} == {"run:agent-tiny"}
    r.write_summary(out)
    from keel.report.safety import write_safety_card

    card = write_safety_card(str(r.path))
    text = open(card["markdown"]).read()
    assert "Trained agent" in text and str(run) in text and "base tiny" in text and "agent_rl" in text
    assert "runs/agent-sft" in text  # the run it was initialised from
    assert isinstance(make_agent(str(run)), TrainedAgent)


def test_redteam_trained_preset_names_the_training_run(tmp_path, monkeypatch):
    cfg = load_config("redteam-trained")
    assert cfg.agents == ["runs/agent-toolworld"] and "guard" in cfg.defences
    families = {a.family for a in select(cfg.attacks)}
    assert "tool_injection" in families and len(families - {"tool_injection"}) >= 3
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeelError, match="keel train agent-toolworld"):
        plan(cfg)
