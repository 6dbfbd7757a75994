"""Gymnasium text spaces for agentic environments: any printable character of the Basic Multilingual Plane.

Tool outputs carry names, addresses and (under attack) ten languages, so ASCII-only spaces would either fail
`check_env` or erase what the agent must read. Characters outside the plane become "?" (`clean`).
"""

from __future__ import annotations

from functools import cache

from gymnasium import spaces


@cache
def charset() -> str:
    return "\n\t" + "".join(c for c in map(chr, range(32, 0xFFFF)) if c.isprintable())


def clean(text: str, max_length: int) -> str:
    """`text` cut to `max_length` with characters outside the space replaced by '?'."""
    chars = _charset_set()
    return "".join(c if c in chars else "?" for c in text[:max_length])


@cache
def _charset_set() -> frozenset[str]:
    return frozenset(charset())


def text_space(max_length: int) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=0, charset=charset())
