"""Information-flow sources: which parts of a tool's output are third-party text, and dates in any wording.

A guard tracks provenance at the granularity the policy's `sources` gives (Progent and FIDES-style
data-flow policies, Shi et al. 2025; Costa et al. 2025): a whole output is untrusted by default; a tool in
`trusted_tools` returns the user's own records; with `untrusted_fields`, a structured output (records of
named fields, e.g. e-mails) is untrusted only under those keys, so its ids, senders and IBANs count as
trusted metadata while its bodies and descriptions count as text an attacker may have written.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any, Protocol

from pydantic import BaseModel

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")


class SourcesLike(Protocol):
    trusted_tools: list[str]
    untrusted_fields: list[str] | None


def _plain(x: Any) -> Any:
    """Pydantic records to dicts and lists (tool outputs in AgentDojo are pydantic models)."""
    if isinstance(x, BaseModel):
        return x.model_dump(mode="json")
    if isinstance(x, (dict, list, tuple, str, int, float, bool)) or x is None:
        return x
    return str(x)


def _leaves(x: Any, key: str | None, untrusted_keys: frozenset[str], under: bool, out: tuple[list, list]) -> None:
    x = _plain(x)
    if isinstance(x, dict):
        for k, v in x.items():
            _leaves(v, str(k), untrusted_keys, under or str(k) in untrusted_keys, out)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _leaves(v, key, untrusted_keys, under, out)
    elif x is not None:
        (out[1] if under or key is None else out[0]).append(str(x))  # a bare string is free text


def split_output(tool: str, output: Any, sources: SourcesLike) -> tuple[list[str], list[str]]:
    """(trusted texts, untrusted texts) of one tool output under the policy's sources."""
    if tool in sources.trusted_tools:
        out: tuple[list, list] = ([], [])
        _leaves(output, None, frozenset(), False, out)
        return out[0] + out[1], []
    x = _plain(output)
    if sources.untrusted_fields is None or not isinstance(x, (dict, list, tuple)):
        out = ([], [])
        _leaves(x, None, frozenset(), True, out)
        return [], out[1]
    out = ([], [])
    _leaves(x, None, frozenset(sources.untrusted_fields), False, out)
    return out


@functools.lru_cache(maxsize=4096)
def date_regex(value: str) -> re.Pattern | None:
    """For an ISO date (optionally with a time), a regex finding that day written in the usual English ways:
    2025-01-11, January 11th, 11th of January, Jan 11, 11 Jan. The year is not required (requests often omit
    it); None for a value that is not a date."""
    m = _ISO.fullmatch(value.strip())
    if not m:
        return None
    try:
        d = dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    mon = MONTHS[d.month - 1]
    mon_rx = f"(?:{mon}|{mon[:3]}\\.?)"
    day = rf"0?{d.day}(?:st|nd|rd|th)?"
    return re.compile(rf"{d.isoformat()}|\b{mon_rx}\s+{day}\b|\b{day}\s+(?:of\s+)?{mon_rx}\b", re.IGNORECASE)
