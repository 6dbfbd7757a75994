"""The `agent_empo2` job: EMPO² (arXiv 2602.23008, `keel.rl.empo2`) on multi-turn agent episodes.

Same policy, envs, rollouts, GRPO loss and evaluation as `agent_rl` (`keel train agent-empo2`); what it adds
is the step of `keel.rl.empo2`: a mode per step (plain / with tips / tips distilled off-policy), the novelty
bonus, and the tips memory in `runs/NAME/tips.db` written after every training episode. Evaluation is
without memory: the no-memory policy is what EMPO² trains. (Resuming keeps the memory as it was at the
interruption, which may hold episodes of steps after the last checkpoint.)
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from keel.config import JobConfig
from keel.errors import KeelError
from keel.llm.multiturn import TurnConfig
from keel.rl.agent_envs import EnvConfig
from keel.rl.agent_job import EvalConfig, PolicyConfig
from keel.rl.empo2 import EMPO2Config
from keel.rl.grpo import GRPOConfig


class Config(JobConfig):
    kind: Literal["agent_empo2"] = "agent_empo2"
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    env: EnvConfig = Field(default_factory=lambda: EnvConfig(name="toolworld"))
    turns: TurnConfig = Field(default_factory=TurnConfig)
    steps: int = 20
    checkpoint_every: int = 5
    eval: EvalConfig = Field(default_factory=EvalConfig)
    eval_base: bool = True
    grpo: GRPOConfig = Field(default_factory=lambda: GRPOConfig(group_size=4, prompts_per_step=2, lr=1e-5))
    empo2: EMPO2Config = Field(default_factory=EMPO2Config)


def check(cfg: Config) -> None:
    from keel.rl.agent_rl import check as check_rl

    check_rl(cfg)  # same steps and splits rules
    if cfg.grpo.top_p != 1.0:
        raise KeelError("EMPO²'s off-policy ratio needs the exact behaviour log-probs: keep grpo.top_p at 1")


class EMPO2Groups:
    """G episodes of each of several training tasks, with or without tips; writes them into memory."""

    def __init__(self, cfg: Config, model, tok, memory):
        from keel.llm.conversation import ChatPieces
        from keel.rl.agent_envs import make_env
        from keel.rl.empo2_tips import TipsEnv

        self.cfg, self.model, self.tok, self.memory = cfg, model, tok, memory
        n = cfg.grpo.prompts_per_step * cfg.grpo.group_size
        self.envs = [TipsEnv(make_env(cfg.env, "train"), memory) for _ in range(n)]
        self.pieces = ChatPieces(tok)
        self.trajs: list = []
        self.stats: dict = {}

    def draw(self, step: int, attempt: int, mode: str):
        import torch

        from keel.llm.multiturn import run_episodes
        from keel.rl.agent_envs import task_starts
        from keel.rl.agent_rollout import to_rollout
        from keel.rl.empo2 import novelty_bonus, off_policy, plain_logprobs
        from keel.rl.empo2_tips import remember, states_and_actions, write_tips

        c, g, e = self.cfg, self.cfg.grpo, self.cfg.empo2
        key = c.seed * 1_000_003 + step * 101 + attempt  # the same draws as agent_rl for the same (seed, step)
        tasks = task_starts(self.envs[0].unwrapped, "train", g.prompts_per_step, key, c.env.draw)
        starts = [t for t in tasks for _ in range(g.group_size)]
        for env in self.envs:
            env.enabled = mode != "on"
        trajs, _ = run_episodes(self.model, self.tok, self.envs, starts, c.turns, g.temperature, g.top_p, seed=key)
        firsts = [env.plain_first for env in self.envs]
        task_ids = [env.task for env in self.envs]
        with_tips = sum(bool(env.tips) for env in self.envs)
        roll = to_rollout(trajs)
        extrinsic = roll.rewards.clone()
        # novelty before this step's episodes enter memory: a state is novel to what was seen before
        bonus = []
        for tr, first, task in zip(trajs, firsts, task_ids, strict=True):
            states, _ = states_and_actions(tr, first)
            bonus.append(sum(novelty_bonus(self.memory.count_similar(s, task)) for s in states)
                         / max(len(states), 1))
        roll.rewards = extrinsic + e.novelty_coef * torch.tensor(bonus)
        stats = {"mode_off": float(mode == "off"), "mode_on_tips": float(mode == "on_tips"),
                 "tipped_frac": with_tips / len(trajs), "extrinsic_reward": float(extrinsic.mean()),
                 "novelty": sum(bonus) / len(bonus)}
        if mode == "off":
            plain = [self.pieces.prompt_ids(self._plain_messages(tr, f)) for tr, f in zip(trajs, firsts, strict=True)]
            logp_plain = plain_logprobs(self.model, roll, plain, self.tok.pad_token_id, g.temperature)
            roll, off = off_policy(roll, plain, logp_plain, e)
            stats.update(off)
        tips = write_tips(self.model, self.tok, trajs, e.tips, seed=key, first_users=firsts)
        stats["memory_states_added"] = remember(self.memory, trajs, tips, task_ids, firsts, step)
        self.trajs, self.stats = trajs, stats
        return roll

    @staticmethod
    def _plain_messages(tr, first: str) -> list[dict]:
        from keel.llm.conversation import prompt_messages

        system = tr.messages[0]["content"] if tr.messages and tr.messages[0]["role"] == "system" else None
        return prompt_messages(first, system)


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.agent_job import build_policy, end_step, finish_run, resume_or_start, rollout_stats
    from keel.rl.empo2 import draw_mode
    from keel.rl.empo2_tips import TipMemory
    from keel.rl.grpo import GRPO

    check(cfg)
    model, tok, prov = build_policy(cfg.policy)
    trainer = GRPO(model, tok, cfg.grpo)
    memory = TipMemory(run.path / "tips.db", cfg.empo2.tips)
    groups = EMPO2Groups(cfg, model, tok, memory)
    start, base = resume_or_start(run, trainer, model, tok, cfg, resume)
    t0, last, final, modes = time.time(), {}, {}, {"on": 0, "on_tips": 0, "off": 0}
    try:
        with progress_bar(quiet) as bar:
            job = bar.add_task("agent EMPO²", total=cfg.steps, completed=start, info="")
            for step in range(start + 1, cfg.steps + 1):
                mode = draw_mode(cfg.empo2, cfg.seed * 1_000_003 + step)
                modes[mode] += 1
                stats: dict = {}

                def draw(i: int, step=step, mode=mode, stats=stats):
                    roll = trainer.finish(groups.draw(step, i, mode))
                    stats.update(groups.stats)
                    return roll

                last = trainer.train_on(draw, seed=cfg.seed * 1_000_003 + step)
                last.update(stats, memory_size=memory.size, **rollout_stats(groups.trajs))
                final = end_step(run, step, dict(last), cfg, model, tok, trainer, base)
                bar.update(job, advance=1, info=f"{mode} reward {last['extrinsic_reward']:.2f} "
                                                f"success {last['accuracy']:.2f}")
    finally:
        memory.close()
    return finish_run(run, model, tok, final, {
        "kind": "agent_empo2", **prov, "steps": cfg.steps, "last_reward": last.get("extrinsic_reward"),
        "modes": modes, "base": base, "train_seconds": round(time.time() - t0, 1),
        "memory": str(run.path / "tips.db")})


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False,
             overrides: list[str] | None = None) -> dict:
    from keel.rl.agent_job import evaluate_run

    return evaluate_run(run, Config, episodes, split, seed, overrides)


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import table

    rows = [r for r in run.metrics() if "extrinsic_reward" in r]
    return [("Training reward (env only)", table({f"step {r['step']}": r["extrinsic_reward"] for r in rows[-20:]}))]
