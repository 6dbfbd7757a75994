"""The `llm_rl` job: train a language-model policy with GRPO-family RL on a verifiable text task.

`keel train llm-arith` runs it on SmolLM2-135M-Instruct; `keel eval RUN --split test` compares the base
model and the trained one on held-out problems with greedy decoding.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from pydantic import Field

from keel.config import JobConfig
from keel.errors import KeelError
from keel.rl.grpo import GRPOConfig


class Config(JobConfig):
    kind: Literal["llm_rl"] = "llm_rl"
    model: str = "smollm2"  # smollm2, tiny, or a local Hugging Face model directory
    lora_r: int = 0  # > 0 trains LoRA adapters of this rank instead of all weights
    task: str = "arithmetic"
    task_options: dict[str, Any] = Field(default_factory=dict)
    system: str | None = None  # optional system prompt
    reward: Literal["exact", "format", "partial"] = "exact"
    steps: int = 40
    train_pool: int = 400  # training problems drawn once; each step samples prompts_per_step of them
    eval_n: int = 64  # held-out problems for evaluation
    eval_every: int = 0  # 0: evaluate only before and after training
    eval_base: bool = True  # evaluate the untrained model first (benchmarks that share one base skip it)
    eval_max_new_tokens: int = 16
    checkpoint_every: int = 10
    threads: int = 0  # torch threads; 0 keeps torch's default
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)


def _setup(cfg: Config):
    import torch

    from keel.envs.text import make_task
    from keel.llm import load_model
    from keel.llm.lora import add_lora

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model, tok = load_model(cfg.model, seed=cfg.seed)
    if cfg.lora_r > 0:
        model = add_lora(model, cfg.lora_r)
    task = make_task(cfg.task, **cfg.task_options)
    return model, tok, task


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.grpo import GRPO, accuracy

    gcfg = cfg.grpo
    if cfg.steps < 1 or cfg.eval_n < 1:
        raise KeelError("steps and eval_n must be >= 1")
    model, tok, task = _setup(cfg)
    trainer = GRPO(model, tok, gcfg)
    pool = task.problems("train", cfg.train_pool, cfg.seed)
    test = task.problems("test", cfg.eval_n, 12345)
    if gcfg.prompts_per_step > len(pool):
        raise KeelError(f"prompts_per_step ({gcfg.prompts_per_step}) exceeds train_pool ({len(pool)})")

    start, base = 0, None
    if resume and (ckpt := run.load_checkpoint()) is not None:
        state, start = ckpt
        trainer.load_state_dict(state["trainer"])
        base = state.get("base")
        run.truncate_metrics(start)
    if base is None and not cfg.eval_base:
        base = {"accuracy": float("nan"), "reward": float("nan")}
    if base is None:
        base = accuracy(model, tok, task, test, cfg.eval_max_new_tokens, system=cfg.system, reward=cfg.reward)
        run.log(0, test_accuracy=base["accuracy"], test_reward=base["reward"])

    t0, skipped, last = time.time(), 0, {}
    with progress_bar(quiet) as bar:
        job = bar.add_task("GRPO", total=cfg.steps, completed=start, info="")
        for step in range(start + 1, cfg.steps + 1):
            # problems and sampling seed depend only on (seed, step), so a resumed run repeats exactly
            rng = random.Random(f"{cfg.seed}|{step}")
            problems = rng.sample(pool, gcfg.prompts_per_step)

            def more(i: int, step: int = step) -> list:  # DAPO dynamic sampling's extra draws
                return random.Random(f"{cfg.seed}|{step}|{i}").sample(pool, gcfg.prompts_per_step)

            last = trainer.step(problems, task, cfg.reward, seed=cfg.seed * 1_000_003 + step, system=cfg.system,
                                more=more)
            skipped += last["skipped"]
            if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.steps:
                ev = accuracy(model, tok, task, test, cfg.eval_max_new_tokens, system=cfg.system, reward=cfg.reward)
                last.update(test_accuracy=ev["accuracy"], test_reward=ev["reward"])
            if step == cfg.steps:
                ev = accuracy(model, tok, task, test, cfg.eval_max_new_tokens, system=cfg.system, reward=cfg.reward)
                last.update(test_accuracy=ev["accuracy"], test_reward=ev["reward"])
            run.log(step, **last)
            if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                run.save_checkpoint({"trainer": trainer.state_dict(), "base": base}, step)
            bar.update(job, advance=1, info=f"reward {last['reward']:.2f} acc {last['accuracy']:.2f}")
    return {
        "steps": cfg.steps,
        "base_test_accuracy": base["accuracy"],
        "test_accuracy": last.get("test_accuracy", float("nan")),
        "last_reward": last.get("reward", float("nan")),
        "skipped_steps": skipped,
        "train_seconds": round(time.time() - t0, 1),
    }


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False) -> dict:
    from keel.config import validate
    from keel.rl.grpo import GRPO, accuracy

    cfg = validate(Config, run.config(), str(run.path / "config.yaml"))
    ckpt = run.load_checkpoint()
    if ckpt is None:
        raise KeelError(f"{run.path} has no checkpoint yet; train it first (keel train ... --resume)")
    model, tok, task = _setup(cfg)
    problems = task.problems(split, episodes or cfg.eval_n, seed)
    kw = dict(max_new_tokens=cfg.eval_max_new_tokens, system=cfg.system, reward=cfg.reward)
    base = accuracy(model, tok, task, problems, **kw)
    GRPO(model, tok, cfg.grpo).load_state_dict(ckpt[0]["trainer"])
    trained = accuracy(model, tok, task, problems, **kw)
    return {
        "split": split,
        "n": len(problems),
        "step": ckpt[1],
        "base_accuracy": base["accuracy"],
        "trained_accuracy": trained["accuracy"],
        "improvement": trained["accuracy"] - base["accuracy"],
        "base_reward": base["reward"],
        "trained_reward": trained["reward"],
    }


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import table

    rows = [r for r in run.metrics() if "test_accuracy" in r]
    return [("Held-out accuracy", table({f"step {r['step']}": r["test_accuracy"] for r in rows}))]
