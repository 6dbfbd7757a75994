"""The `agent_rl` job: GRPO-family RL of a language-model agent on multi-turn episodes.

Each step draws `prompts_per_step` training tasks and plays `group_size` episodes of each with the
multi-turn KV-cache sampler (`keel.llm.multiturn`; the group shares its prompt's cache); the env's
rewards (per-turn shaping + the judge's verdict, minus its guard-denial penalty when the env config
switches it on) become group advantages, and `keel.rl.grpo` updates the model's tokens only (env tokens
are masked). GRPO / RLOO / REINFORCE, DAPO clip or CISPO, STAPO and DAPO dynamic sampling all apply.
Training tasks are drawn uniformly, balanced over templates (`env.draw: balanced`), or by the
Self-Evolving Curriculum bandit over templates (`curriculum:`, `keel.rl.curriculum`).
Starts from the base model or from an `agent_sft` run (`policy.model: runs/NAME`).
"""

from __future__ import annotations

import random
import time
from typing import Literal

from pydantic import Field

from keel.config import JobConfig
from keel.errors import KeelError
from keel.llm.multiturn import TurnConfig
from keel.rl.agent_envs import EnvConfig
from keel.rl.agent_job import EvalConfig, PolicyConfig
from keel.rl.agent_ppo import PPOConfig
from keel.rl.curriculum import CurriculumConfig, SelfEvolvingCurriculum
from keel.rl.grpo import GRPOConfig


class Config(JobConfig):
    kind: Literal["agent_rl"] = "agent_rl"
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    env: EnvConfig = Field(default_factory=lambda: EnvConfig(name="toolworld"))
    turns: TurnConfig = Field(default_factory=TurnConfig)
    steps: int = 20
    checkpoint_every: int = 5
    eval: EvalConfig = Field(default_factory=EvalConfig)
    eval_base: bool = True
    grpo: GRPOConfig = Field(default_factory=lambda: GRPOConfig(group_size=4, prompts_per_step=2, lr=1e-5))
    ppo: PPOConfig | None = None  # set: PPO with a value head (keel.rl.agent_ppo) instead of the GRPO family
    curriculum: CurriculumConfig | None = None  # set: draw templates by the SEC bandit (envs with task splits)


def check(cfg: Config) -> None:
    if cfg.steps < 1:
        raise KeelError("steps must be >= 1")
    for s in cfg.eval.splits:
        if s not in ("train", "test", "test-templates"):
            raise KeelError(f"eval split {s!r}: use train, test or test-templates")


class AgentGroups:
    """Plays G episodes of each of several training tasks at once; envs are made once and reused."""

    def __init__(self, cfg: Config, model, tok):
        from keel.rl.agent_envs import make_env

        self.cfg, self.model, self.tok = cfg, model, tok
        n = cfg.grpo.prompts_per_step * cfg.grpo.group_size
        self.envs = [make_env(cfg.env, "train") for _ in range(n)]
        self.last_trajs: list = []
        self.curriculum = None
        if cfg.curriculum is not None:
            from keel.envs.agentic import AgentTasks
            from keel.rl.agent_envs import groups_of

            if not isinstance(self.envs[0], AgentTasks):
                raise KeelError(f"curriculum: env {cfg.env.name!r} has no named task splits to draw templates "
                                "from; remove `curriculum` or use toolworld, webworld or shopping")
            self.curriculum = SelfEvolvingCurriculum(groups_of(self.envs[0], self.envs[0].task_ids("train")),
                                                     cfg.curriculum)

    def starts(self, key: int):
        from keel.llm.multiturn import Start
        from keel.rl.agent_envs import task_starts

        n = self.cfg.grpo.prompts_per_step
        if self.curriculum is None:
            return task_starts(self.envs[0], "train", n, key, self.cfg.env.draw)
        rng = random.Random(f"{key}|curriculum")
        return [Start(rng.randrange(2**31), {"task": t}) for t in self.curriculum.draw(n, rng)]

    def draw(self, step: int, attempt: int):
        from keel.llm.multiturn import run_episodes
        from keel.rl.agent_envs import task_group
        from keel.rl.agent_rollout import to_rollout

        g = self.cfg.grpo
        key = self.cfg.seed * 1_000_003 + step * 101 + attempt  # tasks and sampling depend on (seed, step, try)
        tasks = self.starts(key)
        starts = [t for t in tasks for _ in range(g.group_size)]
        trajs, _ = run_episodes(self.model, self.tok, self.envs, starts, self.cfg.turns, g.temperature, g.top_p,
                                seed=key)
        self.last_trajs = trajs
        if self.curriculum is not None:
            arms: dict[str, list[float]] = {}
            for i, t in enumerate(tasks):
                arm = task_group(self.envs[0], t.options["task"])
                arms.setdefault(arm, []).extend(tr.reward for tr in trajs[i * g.group_size:(i + 1) * g.group_size])
            self.curriculum.update(arms)
        return to_rollout(trajs)

    def state(self) -> dict:
        return {} if self.curriculum is None else {"curriculum": self.curriculum.state_dict()}

    def restore(self, state: dict) -> None:
        if self.curriculum is not None and "curriculum" in state:
            self.curriculum.load_state_dict(state["curriculum"])


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.agent_job import build_policy, end_step, finish_run, resume_or_start, rollout_stats
    from keel.rl.agent_ppo import make_trainer

    check(cfg)
    model, tok, prov = build_policy(cfg.policy)
    trainer = make_trainer(model, tok, cfg.grpo, cfg.ppo)
    groups = AgentGroups(cfg, model, tok)
    start, base = resume_or_start(run, trainer, model, tok, cfg, resume, groups.restore)
    t0, last, final = time.time(), {}, {}
    with progress_bar(quiet) as bar:
        job = bar.add_task("agent GRPO", total=cfg.steps, completed=start, info="")
        for step in range(start + 1, cfg.steps + 1):
            last = trainer.train_on(lambda i, step=step: trainer.finish(groups.draw(step, i)),
                                    seed=cfg.seed * 1_000_003 + step)
            last.update(rollout_stats(groups.last_trajs))
            if groups.curriculum is not None:
                last.update(groups.curriculum.stats())
            final = end_step(run, step, dict(last), cfg, model, tok, trainer, base, groups.state())
            bar.update(job, advance=1, info=f"reward {last['reward']:.2f} success {last['accuracy']:.2f}")
    return finish_run(run, model, tok, final, {
        "kind": "agent_rl", **prov, "steps": cfg.steps, "last_reward": last.get("reward"), "base": base,
        "train_seconds": round(time.time() - t0, 1), **groups.state()})


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False,
             overrides: list[str] | None = None) -> dict:
    from keel.rl.agent_job import evaluate_run

    return evaluate_run(run, Config, episodes, split, seed, overrides)


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import table

    rows = [r for r in run.metrics() if "reward" in r]
    return [("Training reward", table({f"step {r['step']}": r["reward"] for r in rows[-20:]}))]
