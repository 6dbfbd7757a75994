"""Which environment an agent job trains in, and the tasks it draws (the `keel.envs.agentic` contract).

`env.name` is `text` (a single-turn text task through `TextTaskEnv`), a registered agentic world, or
`module:callable` for any factory returning a contract env (tests use a toy env that way). Envs that
implement `AgentTasks` give named task splits; the others are told their task by the reset seed, so the
G trajectories of a group share a seed and see the same problem.
"""

from __future__ import annotations

import importlib
import random
from typing import Any, Literal

from pydantic import Field

from keel.config import KeelModel
from keel.envs.agentic import AgentTasks
from keel.errors import KeelError
from keel.llm.multiturn import Start

# name -> "module:class" of the worlds' agentic envs; the class takes the env options (its own config)
WORLDS: dict[str, str] = {
    "toolworld": "keel.envs.toolworld.agentic_env:ToolworldAgentEnv",
    "webworld": "keel.envs.webworld.agentic_env:WebworldAgentEnv",
    "shopping": "keel.envs.shopping_agentic:ShoppingAgentEnv",
}


class EnvConfig(KeelModel):
    name: str = "text"
    task: str = "arithmetic"  # for name=text: which text task
    options: dict[str, Any] = Field(default_factory=dict)  # passed to the env (or the text task)
    pool: int = 256  # for name=text: problems per split
    # how training tasks are drawn: uniform over task ids, or "balanced": a task group (a template) first,
    # uniformly, then a task of it, so rare templates are trained on as often as common ones
    draw: Literal["uniform", "balanced"] = "uniform"


def _factory(path: str):
    mod, _, fn = path.partition(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise KeelError(f"env factory {path!r} cannot be loaded ({e}); give module:callable") from None


def make_env(cfg: EnvConfig, split: str = "train"):
    """A fresh env for `split` ("train", "test" or "test-templates")."""
    if cfg.name == "text":
        from keel.envs.text import TextTaskEnv, make_task

        if split not in ("train", "test"):
            raise KeelError(f"text tasks have splits train and test, not {split!r}")
        return TextTaskEnv(make_task(cfg.task, **cfg.options), split=split, pool=cfg.pool)
    if cfg.name in WORLDS:
        return _factory(WORLDS[cfg.name])(**cfg.options)
    if ":" in cfg.name:
        return _factory(cfg.name)(**cfg.options)
    known = ", ".join(["text", *sorted(WORLDS), "module:callable"])
    raise KeelError(f"unknown agent env {cfg.name!r}; use one of {known}")


def task_group(env, task_id: str) -> str:
    """The group (template) a task belongs to: the env's own `task_group` where it has one, else the id
    without its last dotted part (`gen.banking.send.17` -> `gen.banking.send`)."""
    own = getattr(env, "task_group", None)
    return own(task_id) if callable(own) else task_id.rsplit(".", 1)[0]


def groups_of(env, ids) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in ids:
        out.setdefault(task_group(env, t), []).append(t)
    return out


def balanced_picks(groups: dict[str, list[str]], n: int, rng: random.Random) -> list[str]:
    """`n` distinct tasks taken round by round, one from each group per round (groups in a fresh random order
    each round), so every group gets within one task of the others until it runs out."""
    pools = {g: rng.sample(ids, len(ids)) for g, ids in sorted(groups.items())}
    picks: list[str] = []
    while len(picks) < n and any(pools.values()):
        for g in rng.sample(sorted(pools), len(pools)):
            if pools[g] and len(picks) < n:
                picks.append(pools[g].pop())
    return picks


def task_starts(env, split: str, n: int, seed: int, draw: str = "uniform") -> list[Start]:
    """`n` tasks of `split`, as reset arguments: named tasks where the env has them (drawn uniformly, or
    balanced over task groups), else seeds."""
    rng = random.Random(f"{seed}|{split}")
    if isinstance(env, AgentTasks):
        ids = env.task_ids(split)
        if not ids:
            raise KeelError(f"the env has no {split!r} tasks")
        if n > len(ids):
            picks = [rng.choice(ids) for _ in range(n)]
        elif draw == "balanced":
            picks = balanced_picks(groups_of(env, ids), n, rng)
        else:
            picks = rng.sample(ids, n)
        return [Start(rng.randrange(2**31), {"task": t}) for t in picks]
    return [Start(rng.randrange(2**31)) for _ in range(n)]


def split_starts(env, split: str, limit: int | None, seed: int) -> list[Start]:
    """Every task of `split` (up to `limit`) for evaluation; seeded draws for envs without named tasks."""
    if isinstance(env, AgentTasks):
        ids = env.task_ids(split)
        if limit:
            ids = ids[:limit]
        return [Start(seed + i, {"task": t}) for i, t in enumerate(ids)]
    return task_starts(env, split, limit or 64, seed)
