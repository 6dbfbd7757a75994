"""The `spec_rl` job: train a policy in the rooms grid under an LTLf formula, shielded, with a report.

    keel train quickstart            # keel/presets/quickstart.yaml: QRM + pre-emptive shield + shaping

Learners (all act in the product of the batched grid world and the formula's automaton, `keel.rl.product`):
    qrm   tabular Q-learning for reward machines with counterfactual updates (`keel.rl.qrm`)
    ppo   Keel's PPO on the product (observation = cell one-hot ++ automaton one-hot; `keel.rl.ppo`)
    dirl  compositional RL over a SPECTRL spec's abstract graph (`keel.rl.dirl`)

Training logs per-interval metrics, saves checkpoints every `checkpoint_every` env steps and resumes
exactly from the last one (`keel train ... --resume`): the checkpoint holds the learner, every env copy,
the automaton states and all random generators, so a resumed seeded run ends with the same numbers as
an uninterrupted one. `KEEL_STOP_AFTER_ITERATIONS=N` interrupts a run after N iterations (as Ctrl-C
would), for testing that.
"""

from __future__ import annotations

import html
import os
import time
from typing import Literal

import numpy as np
from pydantic import Field

from keel.config import JobConfig, KeelModel
from keel.errors import KeelError


class EnvSection(KeelModel):
    rooms: Literal[9, 16] = 16
    room_size: int = Field(5, ge=3, le=15, description="cells per room side")
    slip: float = Field(0.0, ge=0.0, lt=1.0, description="probability that a random action replaces the chosen one")
    max_episode_steps: int = Field(400, ge=1)
    random_start: bool = Field(True, description="start anywhere in the start room (else at its centre)")
    goals: dict[str, list[int]] | None = Field(None, description="goal name -> [row, col] of its room")
    hazards: list | None = Field(None, description="[[row, col], [y_frac, x_frac]] per hazard")


class QRMSection(KeelModel):
    alpha: float = Field(0.5, gt=0.0, le=1.0)
    epsilon: float = Field(0.2, ge=0.0, le=1.0, description="exploration at the start")
    epsilon_end: float = Field(0.01, ge=0.0, le=1.0, description="exploration at the end (linear decay)")
    optimism: float = Field(1.0, ge=0.0, description="initial Q above the return's upper bound")


class PPOSection(KeelModel):
    lr: float = Field(2.5e-3, gt=0.0)
    rollout_steps: int = Field(128, ge=1, description="steps per env per update")
    epochs: int = Field(4, ge=1)
    minibatches: int = Field(4, ge=1)
    clip: float = Field(0.2, gt=0.0)
    ent_coef: float = Field(0.01, ge=0.0)
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0)
    hidden: int = Field(64, ge=1)


class DiRLSection(KeelModel):
    spectrl: str | None = Field(None, description="SPECTRL task (default: derived from the formula's goals)")
    rollouts: int = Field(200, ge=1, description="rollouts to estimate each edge's success probability")
    stop_at: float = Field(0.98, gt=0.0, le=1.0, description="an edge stops early once its estimate reaches this")


class Config(JobConfig):
    kind: Literal["spec_rl"] = "spec_rl"
    env: EnvSection = EnvSection()
    formula: str = "F(goal_a & F goal_b) & G !hazard"
    learner: Literal["qrm", "ppo", "dirl"] = "qrm"
    shield: Literal["none", "preemptive", "postposed"] = "preemptive"
    shaping: bool = True
    gamma: float = Field(0.99, gt=0.0, le=1.0)
    total_steps: int = Field(400_000, ge=1, description="environment steps of training")
    num_envs: int = Field(32, ge=1)
    log_every: int = Field(20_000, ge=1, description="env steps between metric lines")
    checkpoint_every: int = Field(100_000, ge=1, description="env steps between checkpoints")
    eval_episodes: int = Field(200, ge=1)
    qrm: QRMSection = QRMSection()
    ppo: PPOSection = PPOSection()
    dirl: DiRLSection = DiRLSection()


# ---------------------------------------------------------------------------------------------- building


def make_world(cfg: Config):
    from keel.rl.product import build_world

    e = cfg.env
    return build_world(e.rooms, e.room_size, cfg.formula, e.slip, e.max_episode_steps, e.random_start,
                       cfg.gamma, cfg.shaping, goals=e.goals, hazards=e.hazards)


def make_learner(cfg: Config, world):
    if cfg.learner == "qrm":
        from keel.rl.qrm import QRMConfig, QRMLearner

        q = cfg.qrm
        return QRMLearner(world, QRMConfig(gamma=cfg.gamma, alpha=q.alpha, epsilon=q.epsilon, q_init=q.optimism),
                          cfg.num_envs, cfg.seed, cfg.shield, epsilon_end=q.epsilon_end,
                          decay_steps=cfg.total_steps)
    if cfg.learner == "ppo":
        raise AssertionError("PPO is driven by keel.rl.ppo.train_ppo (see _train_ppo)")
    from keel.rl.dirl import DiRLLearner

    return DiRLLearner(world, cfg.dirl.spectrl, cfg.total_steps, cfg.num_envs, cfg.seed, cfg.shield,
                       gamma=cfg.gamma, rollouts=cfg.dirl.rollouts, stop_at=cfg.dirl.stop_at)


# ---------------------------------------------------------------------------------------------- train


def train(cfg: Config, run, resume: bool = False, quiet: bool = False) -> dict:
    from keel.progress import progress_bar
    from keel.rl.product import evaluate_policy

    world = make_world(cfg)
    if cfg.learner == "ppo":
        return _train_ppo(cfg, run, world, resume, quiet)
    learner = make_learner(cfg, world)
    wall_before = 0.0
    if resume:
        found = run.load_checkpoint()
        if found is not None:
            state, step = found
            learner.load_state_dict(state["learner"])
            wall_before = float(state["wall_seconds"])
            run.truncate_metrics(step)
    stop_after = int(os.environ.get("KEEL_STOP_AFTER_ITERATIONS", "0") or 0)
    t0 = time.perf_counter()
    last_t, last_steps = t0, learner.env_steps
    iterations = 0

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def checkpoint() -> None:
        run.save_checkpoint({"learner": learner.state_dict(), "wall_seconds": wall()}, learner.env_steps)

    with progress_bar(quiet) as bar:
        task = bar.add_task(f"{cfg.learner} on {cfg.formula}", total=cfg.total_steps,
                            completed=learner.env_steps, info="")
        # DiRL splits the budget over its edges and stops when its Dijkstra search is done (its count
        # includes the rollouts that estimate edge success, so it may end a little past total_steps).
        def more() -> bool:
            if hasattr(learner, "finished"):
                return not learner.finished
            return learner.env_steps < cfg.total_steps

        while more():
            before = learner.env_steps
            learner.train_iteration()
            iterations += 1
            now_steps = learner.env_steps
            last = now_steps >= cfg.total_steps or getattr(learner, "finished", False)
            if now_steps // cfg.log_every > before // cfg.log_every or last:
                now = time.perf_counter()
                m = learner.stats.flush()
                m["env_steps"] = now_steps
                m["steps_per_s"] = (now_steps - last_steps) / max(now - last_t, 1e-9)
                last_t, last_steps = now, now_steps
                run.log(now_steps, **m)
                sat = m.get("satisfaction_train")
                bar.update(task, completed=now_steps,
                           info=f"sat {sat:.2f} viol {m['violations_train']}" if sat is not None else "")
            if now_steps // cfg.checkpoint_every > before // cfg.checkpoint_every:
                checkpoint()
            if stop_after and iterations >= stop_after:
                raise KeyboardInterrupt
        bar.update(task, completed=cfg.total_steps)
    checkpoint()
    train_wall = wall()
    ev = evaluate_policy(world, learner.policy(), cfg.eval_episodes, cfg.seed + 10_000, cfg.shield)
    return _summary(cfg, ev, learner.stats, learner.env_steps, train_wall)


def _summary(cfg: Config, ev: dict, stats, env_steps: int, wall: float) -> dict:
    return {
        "learner": cfg.learner,
        "formula": cfg.formula,
        "shield": cfg.shield,
        "satisfaction": ev["satisfaction"],
        "violations_train": int(stats.violations),
        "violations_eval": ev["violations_eval"],
        "mean_episode_length_eval": ev["mean_episode_length"],
        "eval_episodes": ev["episodes"],
        "env_steps": int(env_steps),
        "episodes_train": int(stats.episodes),
        "shield_overrides_train": int(stats.overrides),
        "wall_seconds": round(wall, 3),
    }


def ppo_config(cfg: Config):
    from keel.rl.ppo import PPOConfig

    p = cfg.ppo
    batch = max(2, p.rollout_steps * cfg.num_envs // p.minibatches)
    every = max(1, cfg.checkpoint_every // (p.rollout_steps * cfg.num_envs))
    return PPOConfig(n_steps=p.rollout_steps, batch_size=batch, n_epochs=p.epochs, lr=p.lr, gamma=cfg.gamma,
                     gae_lambda=p.gae_lambda, clip_coef=p.clip, ent_coef=p.ent_coef, hidden=[p.hidden, p.hidden],
                     seed=cfg.seed, checkpoint_every=every)


def _train_ppo(cfg: Config, run, world, resume: bool, quiet: bool) -> dict:
    """PPO on the product env; keel.rl.ppo checkpoints the policy, optimiser and env (with our counters)."""
    from keel.progress import progress_bar
    from keel.rl.ppo import train_ppo
    from keel.rl.product import PolicyScores, ProductVecEnv, evaluate_policy

    env = ProductVecEnv(world, cfg.num_envs, cfg.seed, cfg.shield)
    stop_after = int(os.environ.get("KEEL_STOP_AFTER_ITERATIONS", "0") or 0)
    t0 = time.perf_counter()
    state = {"last_t": t0, "last_steps": None, "iterations": 0}
    with progress_bar(quiet) as bar:
        task = bar.add_task(f"ppo on {cfg.formula}", total=cfg.total_steps, info="")

        def callback(policy, info) -> None:
            step = info["step"]
            state["iterations"] += 1
            prev = step - cfg.ppo.rollout_steps * cfg.num_envs
            if step // cfg.log_every > prev // cfg.log_every or step >= cfg.total_steps:
                now = time.perf_counter()
                m = env.stats.flush()
                last = prev if state["last_steps"] is None else state["last_steps"]
                m["env_steps"] = step
                m["steps_per_s"] = (step - last) / max(now - state["last_t"], 1e-9)
                state["last_t"], state["last_steps"] = now, step
                run.log(step, **m)
            bar.update(task, completed=step, info=f"viol {env.stats.violations}")
            if stop_after and state["iterations"] >= stop_after:
                raise KeyboardInterrupt

        policy, stats = train_ppo(ppo_config(cfg), env, cfg.total_steps, run=run, log_every=10**9,
                                  callback=callback, resume=resume)
    ev = evaluate_policy(world, PolicyScores(policy, world), cfg.eval_episodes, cfg.seed + 10_000, cfg.shield)
    return _summary(cfg, ev, env.stats, stats["steps"], time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- evaluate


def _load(run):
    from keel.config import validate

    cfg = validate(Config, run.config(), f"{run.path}/config.yaml")
    found = run.load_checkpoint()
    if found is None:
        raise KeelError(f"{run.path} has no checkpoint yet; train it first (keel train ... --resume)")
    world = make_world(cfg)
    if cfg.learner == "ppo":
        return cfg, world, _PPOFromCheckpoint(cfg, world, found[0])
    learner = make_learner(cfg, world)
    learner.load_state_dict(found[0]["learner"])
    return cfg, world, learner


class _PPOFromCheckpoint:
    """The trained PPO policy of a run, with the interface evaluate/report use (`policy()`)."""

    def __init__(self, cfg: Config, world, state: dict):
        import gymnasium

        from keel.rl.ppo import Policy

        obs_space = gymnasium.spaces.Box(0.0, 1.0, (world.n_cells + world.num_states,), np.float32)
        self.net = Policy(obs_space, gymnasium.spaces.Discrete(world.n_actions), ppo_config(cfg))
        self.net.load_state_dict(state["policy"])
        self.world = world

        class _Env:
            shield = cfg.shield

        self.env = _Env()

    def policy(self):
        from keel.rl.product import PolicyScores

        return PolicyScores(self.net, self.world)


def evaluate(run, episodes: int | None = None, split: str = "test", seed: int = 12345, quiet: bool = False) -> dict:
    from keel.rl.product import evaluate_policy

    if episodes is not None and episodes < 1:
        raise KeelError(f"--episodes must be >= 1, got {episodes}")
    cfg, world, learner = _load(run)
    ev = evaluate_policy(world, learner.policy(), episodes or cfg.eval_episodes, seed, cfg.shield)
    return {"formula": cfg.formula, "shield": cfg.shield, **ev}


# ---------------------------------------------------------------------------------------------- report


def report_sections(run) -> list[tuple[str, str]]:
    from keel.report.html import figure_png, table

    sections = []
    rows = [r for r in run.metrics() if "satisfaction_train" in r]
    if rows:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["env_steps"] for r in rows], [r["satisfaction_train"] for r in rows], lw=1.6,
                label="satisfaction (training episodes)")
        ax.plot([r["env_steps"] for r in rows], [min(1.0, r["violations_train"]) for r in rows], lw=1.2,
                ls="--", label="any violation so far")
        ax.set_xlabel("environment steps")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        sections.append(("Spec satisfaction vs environment steps",
                         f'<img alt="satisfaction" src="data:image/png;base64,{figure_png(fig)}">'))
    try:
        cfg, world, learner = _load(run)
    except KeelError:
        return sections
    sections.append(("Greedy trajectory", _trajectory_figure(world, learner)))
    if hasattr(learner, "describe"):  # DiRL: the abstract graph, edge success estimates, the chosen path
        d = learner.describe()
        rows = []
        for x in d["edges"]:
            p = "-" if x["success"] is None else f"{x['success']:.3f}"
            cells = (x["edge"], x["reach"], x["safe"], p, "yes" if x["on_path"] else "")
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("edge", "reach", "safe", "estimated success", "on chosen path"))
        sections.append((f"DiRL abstract graph of {d['task']}", f"<table><tr>{head}</tr>{''.join(rows)}</table>"))
    d = world.spec.describe()
    sections.append(("Automaton of the formula", table({
        "formula": d["formula"], "states": d["states"], "initial": d["initial"], "accepting": d["accepting"],
        "dead": d["dead"], "shortest accepting trace": d["shortest_accepting_trace"]})
        + table({f"{t['from']} -> {t['to']}": t["guard"] for t in d["transitions"]})
        + f"<pre>{html.escape(world.spec.dfa.to_dot(cfg.formula))}</pre>"))
    return sections


def _trajectory_figure(world, learner) -> str:
    """The map (walls implied by cells, hazards, goals) with one greedy shielded episode drawn on it."""
    import matplotlib.pyplot as plt

    from keel.report.html import figure_png
    from keel.rl.product import apply_shield

    m = world.model
    img = np.ones((m.height, m.width, 3))
    img[tuple(m.yx[m.hazard_cells].T)] = (0.9, 0.3, 0.3)
    policy = learner.policy()
    policy.reset(np.ones(1, dtype=bool))
    cell, u, path = np.array([world.start_cells[len(world.start_cells) // 2]]), np.array([world.tables.initial]), []
    for _ in range(world.max_episode_steps):
        path.append(int(cell[0]))
        a, _ = apply_shield(learner_shield(learner), world.safe[u, cell], policy.scores(u, cell))
        cell2 = m.next_cell[cell, a]
        if world.tables.done[u, cell2][0]:
            path.append(int(cell2[0]))
            break
        u, cell = world.tables.next_u[u, cell2], cell2
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(img, interpolation="nearest")
    _draw_walls(ax, m)
    for name, room in m.layout.goals.items():
        y, x = m.yx[m.centre_cell(room)]
        ax.text(x, y, name.upper(), ha="center", va="center", fontweight="bold", color="tab:green")
    yx = m.yx[path]
    ax.plot(yx[:, 1], yx[:, 0], "-", color="tab:blue", lw=1.5)
    ax.plot(yx[0, 1], yx[0, 0], "o", color="tab:blue")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"greedy episode: {len(path) - 1} steps")
    return f'<img alt="trajectory" src="data:image/png;base64,{figure_png(fig)}">'


def _draw_walls(ax, m) -> None:
    """Room walls as lines, with a one-cell gap where a door is."""
    k, lay, mid = m.k, m.layout, m.k // 2
    seg = dict(color="0.3", lw=1.8)
    ax.plot([-0.5, m.width - 0.5, m.width - 0.5, -0.5, -0.5], [-0.5, -0.5, m.height - 0.5, m.height - 0.5, -0.5], **seg)
    for r in range(lay.n_rows):
        for c in range(lay.n_cols):
            y0, x0 = r * k - 0.5, c * k - 0.5
            if c + 1 < lay.n_cols:  # wall to the right of room (r, c)
                x = x0 + k
                if lay.has_door((r, c), (r, c + 1)):
                    ax.plot([x, x], [y0, y0 + mid], **seg)
                    ax.plot([x, x], [y0 + mid + 1, y0 + k], **seg)
                else:
                    ax.plot([x, x], [y0, y0 + k], **seg)
            if r + 1 < lay.n_rows:  # wall below room (r, c)
                y = y0 + k
                if lay.has_door((r, c), (r + 1, c)):
                    ax.plot([x0, x0 + mid], [y, y], **seg)
                    ax.plot([x0 + mid + 1, x0 + k], [y, y], **seg)
                else:
                    ax.plot([x0, x0 + k], [y, y], **seg)


def learner_shield(learner) -> str:
    return getattr(getattr(learner, "env", None), "shield", "preemptive")
