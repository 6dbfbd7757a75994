"""The `spec_rl` job: train a policy in the rooms grid under an LTLf formula, shielded, with a report.

    keel train quickstart            # keel/presets/quickstart.yaml: QRM + pre-emptive shield + shaping

Learners (all act in the product of the batched grid world and the formula's automaton, `keel.rl.product`,
and all are `keel.rl.learner.Learner`s driven by the one loop `keel.rl.spec_loop.train_loop`):
    qrm   tabular Q-learning for reward machines with counterfactual updates (`keel.rl.qrm`)
    ppo   Keel's PPO on the product (observation = cell one-hot ++ automaton one-hot; `keel.rl.ppo`)
    dirl  compositional RL over a SPECTRL spec's abstract graph (`keel.rl.dirl`)
Each learner's section (`qrm`, `ppo`, `dirl`) is that algorithm's own config class; the job's `seed`
seeds every learner (PPO's own `seed` field is overridden by it) and checkpoints follow the job's
`checkpoint_every` (PPO's iteration-based `checkpoint_every` is for `train_ppo` only). The reward
machine's shaping uses the chosen learner's `gamma`.

The shield (`shield: preemptive | postposed | none`) is the maximal winning region of the safety game
of (grid model x automaton) by default (`shield_solver: game`), in training and in evaluation; a start
cell outside it is refused before training. `shield_solver: one_step` is the one-step lookahead (no
guarantee under slip), kept for comparison.

Training saves checkpoints every `checkpoint_every` env steps and resumes exactly from the last one
(`keel train ... --resume`): the checkpoint holds the learner, every env copy, the automaton states and
all random generators, so a resumed seeded run ends with the same numbers as an uninterrupted one.
`KEEL_STOP_AFTER_ITERATIONS=N` interrupts a run after N iterations (as Ctrl-C would), for testing that.
"""

from __future__ import annotations

import html
import os
from typing import Literal

from pydantic import Field

from keel.config import JobConfig, KeelModel
from keel.errors import KeelError
from keel.rl.dirl import DiRLConfig
from keel.rl.ppo import PPOConfig
from keel.rl.qrm import QRMConfig


class EnvSection(KeelModel):
    rooms: Literal[9, 16] = 16
    room_size: int = Field(5, ge=3, le=15, description="cells per room side")
    slip: float = Field(0.0, ge=0.0, lt=1.0, description="probability that the chosen action is replaced")
    slip_mode: Literal["uniform", "sideways"] = Field(
        "uniform", description="what a slip does: any of the five actions, or a perpendicular move (keel.envs.rooms_grid)")
    max_episode_steps: int = Field(400, ge=1)
    random_start: bool = Field(True, description="start anywhere in the start room (else at its centre)")
    goals: dict[str, list[int]] | None = Field(None, description="goal name -> [row, col] of its room")
    hazards: list | None = Field(None, description="[[row, col], [y_frac, x_frac]] per hazard")


def _ppo_default() -> PPOConfig:
    # the product grid's tuned settings: 128 steps x 32 envs, 4 minibatches, a larger step size
    return PPOConfig(n_steps=128, batch_size=1024, n_epochs=4, lr=2.5e-3, ent_coef=0.01)


class Config(JobConfig):
    kind: Literal["spec_rl"] = "spec_rl"
    env: EnvSection = EnvSection()
    formula: str = "F(goal_a & F goal_b) & G !hazard"
    learner: Literal["qrm", "ppo", "dirl"] = "qrm"
    shield: Literal["none", "preemptive", "postposed"] = "preemptive"
    shield_solver: Literal["game", "one_step"] = Field(
        "game", description="game: the safety game's winning region (Alshiekh et al.); one_step: one-step lookahead")
    shaping: bool = True
    total_steps: int = Field(400_000, ge=1, description="environment steps of training (every step counts)")
    num_envs: int = Field(32, ge=1)
    log_every: int = Field(20_000, ge=1, description="env steps between metric lines")
    checkpoint_every: int = Field(100_000, ge=1, description="env steps between checkpoints")
    eval_episodes: int = Field(200, ge=1)
    qrm: QRMConfig = QRMConfig()
    ppo: PPOConfig = Field(default_factory=_ppo_default)
    dirl: DiRLConfig = DiRLConfig()

    def algo(self):
        """The chosen learner's own config."""
        return {"qrm": self.qrm, "ppo": self.ppo, "dirl": self.dirl}[self.learner]


# ---------------------------------------------------------------------------------------------- building


def make_world(cfg: Config, check_start: bool | None = None):
    from keel.rl.product import build_world

    e = cfg.env
    return build_world(e.rooms, e.room_size, cfg.formula, e.slip, e.max_episode_steps, e.random_start,
                       cfg.algo().gamma, cfg.shaping, goals=e.goals, hazards=e.hazards, slip_mode=e.slip_mode,
                       shield_solver=cfg.shield_solver,
                       check_start=(cfg.shield != "none") if check_start is None else check_start)


def check(cfg: Config) -> None:
    """What can be wrong without training (the formula, its propositions, the world and its shield), found
    before `keel train` creates runs/NAME (see keel.jobs.check_job_config); building the world is ~0.1 s."""
    make_world(cfg)


def make_learner(cfg: Config, world):
    from keel.rl.spec_learners import make_learner as make

    return make(cfg.learner, world, cfg.algo(), cfg.num_envs, cfg.seed, cfg.shield, cfg.total_steps)


# ---------------------------------------------------------------------------------------------- train


def train(cfg: Config, run, resume: bool = False, quiet: bool = False, learner_on=None) -> dict:
    """`learner_on(world)`, when given, builds the learner instead (keel.scale: one whose rollouts run
    on a Ray cluster); the loop, the evaluation and the summary stay these."""
    from keel.rl.product_env import evaluate_policy
    from keel.rl.spec_loop import train_loop

    world = make_world(cfg)
    learner = make_learner(cfg, world) if learner_on is None else learner_on(world)
    stop_after = int(os.environ.get("KEEL_STOP_AFTER_ITERATIONS", "0") or 0)
    wall = train_loop(learner, cfg.total_steps, run, cfg.log_every, cfg.checkpoint_every, resume=resume, quiet=quiet,
                      label=f"{cfg.learner} on {cfg.formula}", stop_after=stop_after)
    ev = evaluate_policy(world, learner.policy(), cfg.eval_episodes, cfg.seed + 10_000, cfg.shield)
    c = learner.counters()
    return {
        "learner": cfg.learner,
        "formula": cfg.formula,
        "shield": cfg.shield,
        "shield_solver": cfg.shield_solver,
        "slip": cfg.env.slip,
        "satisfaction": ev["satisfaction"],
        "violations_train": int(c.violations),
        "violations_eval": ev["violations_eval"],
        "mean_episode_length_eval": ev["mean_episode_length"],
        "eval_episodes": ev["episodes"],
        "env_steps": int(c.env_steps),
        "episodes_train": int(c.episodes),
        "shield_overrides_train": int(c.overrides),
        "wall_seconds": round(wall, 3),
    }


# ---------------------------------------------------------------------------------------------- evaluate


def _load(run):
    from keel.config import validate

    cfg = validate(Config, run.config(), f"{run.path}/config.yaml")
    found = run.load_checkpoint()
    if found is None:
        raise KeelError(f"{run.path} has no checkpoint yet; train it first (keel train ... --resume)")
    world = make_world(cfg)
    learner = make_learner(cfg, world)
    learner.load_state_dict(found[0]["learner"])
    return cfg, world, learner


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False) -> dict:
    from keel.rl.product_env import evaluate_policy

    if episodes is not None and episodes < 1:
        raise KeelError(f"--episodes must be >= 1, got {episodes}")
    cfg, world, learner = _load(run)
    ev = evaluate_policy(world, learner.policy(), episodes or cfg.eval_episodes, seed, cfg.shield)
    return {"formula": cfg.formula, "shield": cfg.shield, "shield_solver": cfg.shield_solver, **ev}


# ---------------------------------------------------------------------------------------------- report


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import table
    from keel.report.spec_plots import dirl_graph_table, satisfaction_figure, trajectory_figure
    from keel.rl.dirl import DiRLLearner

    sections = []
    rows = [r for r in run.metrics() if "satisfaction_train" in r]
    if rows:
        sections.append(("Spec satisfaction vs environment steps", satisfaction_figure(rows)))
    try:
        cfg, world, learner = _load(run)
    except KeelError:
        return sections
    sections.append(("Greedy trajectory", trajectory_figure(world, learner.policy(), cfg.shield)))
    if isinstance(learner, DiRLLearner):  # the abstract graph, edge success estimates, the chosen path
        d = learner.describe()
        sections.append((f"DiRL abstract graph of {d['task']}", dirl_graph_table(d)))
    d = world.spec.describe()
    sections.append(("Automaton of the formula", table({
        "formula": d["formula"], "states": d["states"], "initial": d["initial"], "accepting": d["accepting"],
        "dead": d["dead"], "shortest accepting trace": d["shortest_accepting_trace"]})
        + table({f"{t['from']} -> {t['to']}": t["guard"] for t in d["transitions"]})
        + f"<pre>{html.escape(world.spec.dfa.to_dot(cfg.formula))}</pre>"))
    return sections
