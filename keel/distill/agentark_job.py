"""The `distill_agentark` job: AgentArk (arXiv 2602.03955) end to end on a verifiable text task.

    keel train distill-agentark      # SmolLM2: debate of 3 copies, then R-SFT, DA or PAD (config `strategy`)
    keel eval RUN --split test       # the base model vs the distilled student, held out

Stages, each checkpointed so a stopped run resumes at the next one: (1) the debate on training problems
(transcripts in the run's debate.json), (2) SFT of the student (R-SFT or DA examples; PAD starts from the
DA student), (3) for PAD: the PRM on the debate's steps, then GRPO with its step reward.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from keel.config import JobConfig
from keel.distill.debate import DebateConfig
from keel.distill.pad import PADConfig
from keel.distill.prm import PRMConfig
from keel.distill.rsft import SFTConfig
from keel.errors import KeelError


class Config(JobConfig):
    kind: Literal["distill_agentark"] = "distill_agentark"
    model: str = "smollm2"  # smollm2, tiny, or a local Hugging Face model directory
    task: str = "arithmetic"
    task_options: dict[str, Any] = Field(default_factory=dict)
    strategy: Literal["rsft", "da", "pad"] = "pad"
    train_pool: int = 64  # training problems the debate answers
    eval_n: int = 48
    eval_max_new_tokens: int = 8
    threads: int = 0  # torch threads; 0 keeps torch's default
    debate: DebateConfig = Field(default_factory=DebateConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    prm: PRMConfig = Field(default_factory=PRMConfig)
    pad: PADConfig = Field(default_factory=PADConfig)


def _setup(cfg: Config):
    import torch

    from keel.envs.text import make_task
    from keel.llm import load_model

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model, tok = load_model(cfg.model, seed=cfg.seed)
    return model, tok, make_task(cfg.task, **cfg.task_options)


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    import copy
    import json

    from keel.distill.augment import da_examples
    from keel.distill.debate import Agent, debate, from_dicts, summary, to_dicts
    from keel.distill.evaluate import single_model
    from keel.distill.pad import train_pad
    from keel.distill.prm import PRM, step_labels
    from keel.distill.rsft import rsft_examples, sft
    from keel.io import atomic_write_json

    if cfg.train_pool < 1 or cfg.eval_n < 1:
        raise KeelError("train_pool and eval_n must be >= 1")
    t0 = time.time()
    base, tok, task = _setup(cfg)
    base.requires_grad_(False)
    pool = task.problems("train", cfg.train_pool, cfg.seed)
    test = task.problems("test", cfg.eval_n, 12345)
    student, stage, state = None, 0, {}
    if resume and (ckpt := run.load_checkpoint()) is not None:
        state, stage = ckpt
        student = copy.deepcopy(base).requires_grad_(True)
        student.load_state_dict(state["model"])
        run.truncate_metrics(stage)
    if stage == 0:
        state["base"] = single_model(base, tok, task, test, cfg.eval_max_new_tokens)
        agents = [Agent(base, tok) for _ in range(cfg.debate.agents)]  # one model, its own seed per agent
        transcripts = debate(agents, task, pool, cfg.debate, seed=cfg.seed)
        atomic_write_json(run.path / "debate.json", to_dicts(transcripts))
        state["debate_train"] = summary(transcripts)
        examples = rsft_examples(transcripts) if cfg.strategy == "rsft" else da_examples(transcripts)
        student = copy.deepcopy(base).requires_grad_(True)
        logs = sft(student, tok, examples, cfg.sft, seed=cfg.seed)
        ev = single_model(student, tok, task, test, cfg.eval_max_new_tokens)
        run.log(1, sft_examples=len(examples), sft_loss=logs[-1]["loss"], test_accuracy=ev["accuracy"],
                base_test_accuracy=state["base"]["accuracy"], debate_train_accuracy=state["debate_train"]["accuracy"])
        state.update(model=student.state_dict(), sft=ev)
        run.save_checkpoint(state, 1)
        stage = 1
    transcripts = from_dicts(json.loads((run.path / "debate.json").read_text()))
    if cfg.strategy == "pad" and stage == 1:
        prm = PRM(base, tok, cfg.prm)
        fit = prm.fit(step_labels(transcripts))
        logs = train_pad(student, tok, task, prm, pool, cfg.pad, seed=cfg.seed)
        for row in logs:
            run.log(1 + row["step"], **{k: v for k, v in row.items() if k != "step"})
        ev = single_model(student, tok, task, test, cfg.eval_max_new_tokens)
        run.log(2 + cfg.pad.steps, test_accuracy=ev["accuracy"], prm_train_auc=fit["train_auc"])
        state.update(model=student.state_dict(), pad=ev, prm_fit=fit)
        run.save_checkpoint(state, 2)
    final = state.get("pad") or state["sft"]
    return {"strategy": cfg.strategy, "base_test_accuracy": state["base"]["accuracy"],
            "debate_train_accuracy": state["debate_train"]["accuracy"], "test_accuracy": final["accuracy"],
            "tokens_per_problem": final["tokens_per_problem"],
            "base_tokens_per_problem": state["base"]["tokens_per_problem"],
            "train_seconds": round(time.time() - t0, 1)}


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False) -> dict:
    import copy

    from keel.config import validate
    from keel.distill.evaluate import single_model

    cfg = validate(Config, run.config(), str(run.path / "config.yaml"))
    ckpt = run.load_checkpoint()
    if ckpt is None:
        raise KeelError(f"{run.path} has no checkpoint yet; train it first (keel train ... --resume)")
    base, tok, task = _setup(cfg)
    problems = task.problems(split, episodes or cfg.eval_n, seed)
    b = single_model(base, tok, task, problems, cfg.eval_max_new_tokens)
    student = copy.deepcopy(base)
    student.load_state_dict(ckpt[0]["model"])
    s = single_model(student, tok, task, problems, cfg.eval_max_new_tokens)
    return {"split": split, "n": len(problems), "stage": ckpt[1], "base_accuracy": b["accuracy"],
            "student_accuracy": s["accuracy"], "improvement": s["accuracy"] - b["accuracy"],
            "tokens_per_problem": s["tokens_per_problem"], "base_tokens_per_problem": b["tokens_per_problem"]}
