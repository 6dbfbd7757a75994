"""The one training loop of spec-guided RL: any `keel.rl.learner.Learner`, a step budget, a run.

    wall = train_loop(learner, total_steps, run, log_every=..., checkpoint_every=..., resume=...)

Each turn is one `learner.train_step()`. Every `log_every` environment steps the learner's interval
metrics go to the run's metrics log; every `checkpoint_every` steps (and at the end) its `state_dict`
goes to a checkpoint. `resume=True` continues exactly from the last checkpoint (and truncates the
metrics log there, so it always agrees with the checkpoint). `stop_after` interrupts after that many
turns (as Ctrl-C would), for testing resume.
"""

from __future__ import annotations

import time

from keel.rl.learner import Learner


def train_loop(learner: Learner, total_steps: int, run, log_every: int, checkpoint_every: int,
               resume: bool = False, quiet: bool = False, label: str = "training", stop_after: int = 0) -> float:
    """Train until the budget is spent or the learner is finished; returns the training wall time
    (seconds, including the time before a resume)."""
    from keel.progress import progress_bar

    wall_before = 0.0
    if resume:
        found = run.load_checkpoint()
        if found is not None:
            state, step = found
            learner.load_state_dict(state["learner"])
            wall_before = float(state["wall_seconds"])
            run.truncate_metrics(step)
    t0 = time.perf_counter()
    last_t, last_steps = t0, learner.env_steps
    turns = 0

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def checkpoint() -> None:
        run.save_checkpoint({"learner": learner.state_dict(), "wall_seconds": wall()}, learner.env_steps)

    with progress_bar(quiet) as bar:
        task = bar.add_task(label, total=total_steps, completed=learner.env_steps, info="")
        while not learner.finished and learner.env_steps < total_steps:
            before = learner.env_steps
            learner.train_step()
            turns += 1
            now_steps = learner.env_steps
            last = now_steps >= total_steps or learner.finished
            if now_steps // log_every > before // log_every or last:
                now = time.perf_counter()
                m = learner.metrics()
                m["env_steps"] = now_steps
                m["steps_per_s"] = (now_steps - last_steps) / max(now - last_t, 1e-9)
                last_t, last_steps = now, now_steps
                run.log(now_steps, **m)
                sat = m.get("satisfaction_train")
                bar.update(task, completed=now_steps,
                           info=f"sat {sat:.2f} viol {m.get('violations_train', 0)}" if sat is not None else "")
            if now_steps // checkpoint_every > before // checkpoint_every:
                checkpoint()
            if stop_after and turns >= stop_after:
                raise KeyboardInterrupt
        bar.update(task, completed=total_steps)
    checkpoint()
    return wall()
