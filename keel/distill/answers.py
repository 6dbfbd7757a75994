"""The answer a reply commits to, as a key that votes can count: one owner for every vote in keel.distill.

Two replies agree when their keys are equal ("7 * 8 = 56" and "56" both key to "56" on arithmetic). A task
without an entry here keys on its whitespace-normalised text, which is exact but strict.
"""

from __future__ import annotations

from collections.abc import Callable

from keel.envs.text import TextTask
from keel.envs.text.arithmetic import last_int
from keel.envs.text.countdown import EXPR


def _arithmetic(text: str) -> str | None:
    n = last_int(text)
    return None if n is None else str(n)


def _countdown(text: str) -> str | None:
    found = [m.strip() for m in EXPR.findall(text.split("=")[0]) if m.strip()]
    return "".join(max(found, key=len).split()) if found else None


def _text(text: str) -> str | None:
    return " ".join(text.split()) or None


KEYS: dict[str, Callable[[str], str | None]] = {"arithmetic": _arithmetic, "countdown": _countdown}


def answer_key(task: TextTask, text: str) -> str | None:
    """The answer `text` gives to a problem of `task` (None: it gives none)."""
    return KEYS.get(task.name, _text)(text)
