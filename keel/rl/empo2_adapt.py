"""Adaptation to unseen tasks with memory alone (EMPO², arXiv 2602.23008, its out-of-distribution test).

A trained policy meets tasks it never saw and gets a few trials at each, with no weight update. In the
`memory` arm, after every trial the policy writes tips about each episode into a fresh `keel.memory`
(`keel.rl.empo2_tips`), and the next trial reads the retrieved tips in its prompt; in the `none` arm it just
tries again. Further memory arms (other `TipsConfig`s: who writes the tip, which episodes are kept) run
beside them on the same seeds. Both arms sample at the same temperature with the same seeds trial by trial, so trial 1 is the
same episode in both (the memory is empty then) and any later difference is the memory's doing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from keel.llm.multiturn import TurnConfig, run_episodes
from keel.rl.agent_envs import EnvConfig, make_env, split_starts
from keel.rl.empo2_tips import TipMemory, TipsConfig, TipsEnv, remember, write_tips


def adapt(model, tok, env_cfg: EnvConfig, turns: TurnConfig, split: str, tasks: int, trials: int,
          tips: TipsConfig, memory_dir: str | Path, temperature: float = 0.4, batch: int = 16,
          seed: int = 12345, more_arms: dict[str, TipsConfig] | None = None) -> dict:
    """{arm: {"success": [per trial], "solved": [solved at least once by trial t]}} for the arms memory (with
    `tips`), none, and each of `more_arms` (other tips settings, e.g. ablations), all on the same seeds."""
    starts = split_starts(make_env(env_cfg, split), split, tasks, seed)
    out: dict = {"tasks": len(starts), "trials": trials, "split": split, "temperature": temperature,
                 "tips": {"memory": tips.model_dump(), **{k: v.model_dump() for k, v in (more_arms or {}).items()}}}
    arms: dict[str, TipsConfig | None] = {"memory": tips, "none": None, **(more_arms or {})}
    for arm, arm_tips in arms.items():
        path = Path(memory_dir) / f"adapt-{arm}.db"
        for p in Path(memory_dir).glob(f"adapt-{arm}.db*"):  # a fresh memory for each measurement
            shutil.rmtree(p) if p.is_dir() else p.unlink()  # the dense index (.db.vec) is a directory
        memory = TipMemory(path, arm_tips or tips)
        envs = [TipsEnv(make_env(env_cfg, split), memory) for _ in range(min(batch, len(starts)))]
        for env in envs:
            env.enabled = arm_tips is not None
        success, solved, ever = [], [], [False] * len(starts)
        try:
            for t in range(trials):
                trajs, firsts, task_ids, tipped = [], [], [], 0
                for i in range(0, len(starts), batch):
                    chunk = starts[i : i + batch]
                    got, _ = run_episodes(model, tok, envs[: len(chunk)], chunk, turns, temperature,
                                          seed=seed + 7919 * t + i)
                    trajs += got
                    firsts += [e.plain_first for e in envs[: len(chunk)]]
                    task_ids += [e.task for e in envs[: len(chunk)]]
                    tipped += sum(bool(e.tips) for e in envs[: len(chunk)])
                ever = [a or tr.success for a, tr in zip(ever, trajs, strict=True)]
                success.append(sum(tr.success for tr in trajs) / len(trajs))
                out.setdefault(arm, {}).setdefault("per_task", []).append([int(tr.success) for tr in trajs])
                solved.append(sum(ever) / len(ever))
                if arm_tips is not None and t < trials - 1:
                    notes = write_tips(model, tok, trajs, arm_tips, seed=seed + t, first_users=firsts)
                    remember(memory, trajs, notes, task_ids, firsts, step=t)
                out.setdefault(arm, {}).setdefault("tipped_frac", []).append(tipped / len(trajs))
        finally:
            memory.close()
        out[arm].update(success=success, solved=solved)
    return out
