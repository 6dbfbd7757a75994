"""Text tasks with verifiable rewards (arithmetic, countdown, instruction format) and a Gymnasium face.

Add a task: subclass `TextTask` with `draw` and `score`, and list it in TASKS.
"""

from __future__ import annotations

from typing import Any

from keel.envs.text.arithmetic import Arithmetic
from keel.envs.text.base import Problem, Score, TextTask
from keel.envs.text.countdown import Countdown
from keel.envs.text.env import TextTaskEnv
from keel.envs.text.instruct import InstructFormat
from keel.errors import KeelError

TASKS: dict[str, type[TextTask]] = {t.name: t for t in (Arithmetic, Countdown, InstructFormat)}


def make_task(name: str, **options: Any) -> TextTask:
    if name not in TASKS:
        raise KeelError(f"unknown text task {name!r}; known: {', '.join(sorted(TASKS))}")
    try:
        return TASKS[name](**options)
    except TypeError as e:
        raise KeelError(f"text task {name}: bad options {options}: {e}") from None


__all__ = ["Problem", "Score", "TextTask", "TASKS", "make_task", "Arithmetic", "Countdown", "InstructFormat",
           "TextTaskEnv"]
