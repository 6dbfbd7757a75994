"""Who answers the guard's `ask`: nobody (deny every ask, the default) or a simulated human who knows only
the user's request and approves a call only when every concrete value in it (address, IBAN, URL, number,
date) is one the user wrote. Every result records which approver answered."""

from __future__ import annotations

import re
from typing import Any, Protocol

from keel.errors import KeelError
from keel.guard import Decision
from keel.guard.provenance import date_regex

# Values a person checks before saying yes: addresses, URLs, IBANs, dates, numbers.
ENTITY = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|(?:https?://|www\.)\S+|\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b"
                    r"|\b\d{4}-\d{2}-\d{2}\b|\b\d+(?:\.\d+)?\b")


class Approver(Protocol):
    name: str

    def approve(self, decision: Decision, request: str) -> bool: ...


class DenyAll:
    name = "deny-all"

    def approve(self, decision: Decision, request: str) -> bool:
        return False


class RequestOnlyHuman:
    """A person who reads the call and compares its concrete values with what they asked for."""

    name = "simulated-human(request-only)"

    def approve(self, decision: Decision, request: str) -> bool:
        return all(_in_request(v, request) for v in _entities(decision.args))


def _entities(args: dict[str, Any]) -> list[str]:
    return [m.group(0).rstrip(".,;)'\"]") for v in args.values() for m in ENTITY.finditer(str(v))]


def _in_request(value: str, request: str) -> bool:
    if value in request:
        return True
    rx = date_regex(value)
    return rx is not None and rx.search(request) is not None


APPROVERS = {"deny": DenyAll, "human": RequestOnlyHuman}


def make_approver(name: str) -> Approver:
    if name not in APPROVERS:
        raise KeelError(f"unknown approver {name!r}; approvers: deny (default: every ask refused), human "
                        "(a simulated human who knows only the user's request)")
    return APPROVERS[name]()
