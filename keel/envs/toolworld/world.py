"""Toolworld's state: simulated mail, calendar, files, bank, hotels and web pages, and the tools over them.

Modelled on AgentDojo (Debenedetti et al., NeurIPS 2024 Datasets & Benchmarks): tools are plain functions
over a stateful world, described to agents by JSON schemas, and a task is judged by the state it leaves
behind, not by what the agent says. Every tool declares which fields of its output are free text written
by third parties (`untrusted`): that is where injected instructions live, and what the guard's
information-flow rules track.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

USER = "emma@bluesparrow.example"
USER_IBAN = "DE89370400440532013000"


@dataclass
class Email:
    id: str
    sender: str
    to: list[str]
    subject: str
    body: str
    date: str
    read: bool = False


@dataclass
class Event:
    id: str
    title: str
    date: str
    start: str
    end: str
    participants: list[str]
    description: str = ""


@dataclass
class Tx:
    id: int
    sender: str
    recipient: str
    amount: float
    subject: str
    date: str


@dataclass
class Hotel:
    name: str
    city: str
    price: float
    rating: float
    reviews: list[str]


@dataclass
class World:
    """Everything the tools can read or change. `copy()` gives an independent snapshot for checking."""

    inbox: list[Email] = field(default_factory=list)
    sent: list[Email] = field(default_factory=list)
    calendar: list[Event] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    shares: dict[str, list[str]] = field(default_factory=dict)
    balance: float = 0.0
    transactions: list[Tx] = field(default_factory=list)
    scheduled: list[Tx] = field(default_factory=list)
    hotels: dict[str, Hotel] = field(default_factory=dict)
    reservations: list[dict[str, str]] = field(default_factory=list)
    web: dict[str, str] = field(default_factory=dict)
    today: str = "2026-05-14"

    def copy(self) -> World:
        return copy.deepcopy(self)

    def next_id(self, prefix: str, existing: list[str]) -> str:
        return f"{prefix}{len(existing) + 1}"


class ToolError(Exception):
    """A tool refused its input (unknown id, not enough money...): the agent sees the message."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: dict[str, dict[str, Any]]  # JSON-schema property per argument
    required: tuple[str, ...]
    fn: Callable[..., Any]
    untrusted: frozenset[str] = frozenset()  # output fields holding third-party free text

    def schema(self) -> dict[str, Any]:
        """The tool as an OpenAI-style function schema."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {"type": "object", "properties": self.params, "required": list(self.required)},
        }


S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741

TOOLS: dict[str, Tool] = {}


def tool(description: str, params: dict[str, dict], required: tuple[str, ...] | None = None,
         untrusted: tuple[str, ...] = ()):
    def register(fn):
        TOOLS[fn.__name__] = Tool(fn.__name__, description, params,
                                  tuple(params) if required is None else required, fn, frozenset(untrusted))
        return fn

    return register


def _remove_first(items: list, match: Callable[[Any], bool], missing: str) -> None:
    """Delete the first item `match` accepts; a ToolError saying `missing` when none does."""
    for i, x in enumerate(items):
        if match(x):
            del items[i]
            return
    raise ToolError(missing)


def _email_view(e: Email, full: bool) -> dict[str, Any]:
    d = {"id": e.id, "from": e.sender, "subject": e.subject, "date": e.date}
    if full:
        d["body"] = e.body
    return d


# --- mail -------------------------------------------------------------------------------------------
@tool("List the emails in the inbox, newest first.", {}, untrusted=("subject",))
def list_emails(w: World) -> list[dict]:
    return [_email_view(e, False) for e in reversed(w.inbox)]


@tool("Read one email by its id.", {"email_id": S}, untrusted=("subject", "body"))
def read_email(w: World, email_id: str) -> dict:
    for e in w.inbox:
        if e.id == email_id:
            e.read = True
            return _email_view(e, True)
    raise ToolError(f"no email with id {email_id!r}; call list_emails to see the ids")


@tool("Search emails whose subject, body or sender contains the query.", {"query": S}, untrusted=("subject", "body"))
def search_emails(w: World, query: str) -> list[dict]:
    q = query.lower()
    return [_email_view(e, True) for e in w.inbox if q in (e.subject + " " + e.body + " " + e.sender).lower()]


@tool("Send an email.", {"to": S, "subject": S, "body": S})
def send_email(w: World, to: str, subject: str, body: str) -> dict:
    if "@" not in to:
        raise ToolError(f"{to!r} is not an email address")
    e = Email(f"s{len(w.sent) + 1}", USER, [to], subject, body, w.today)
    w.sent.append(e)
    return {"sent": e.id, "to": to}


@tool("Forward an email from the inbox to an address.", {"email_id": S, "to": S})
def forward_email(w: World, email_id: str, to: str) -> dict:
    for e in w.inbox:
        if e.id == email_id:
            return send_email(w, to, "Fwd: " + e.subject, e.body)
    raise ToolError(f"no email with id {email_id!r}")


@tool("Delete an email from the inbox.", {"email_id": S})
def delete_email(w: World, email_id: str) -> dict:
    _remove_first(w.inbox, lambda e: e.id == email_id, f"no email with id {email_id!r}")
    return {"deleted": email_id}


# --- calendar ---------------------------------------------------------------------------------------
@tool("List calendar events on a date (YYYY-MM-DD).", {"date": S}, untrusted=("description",))
def list_events(w: World, date: str) -> list[dict]:
    return [vars(ev).copy() for ev in w.calendar if ev.date == date]


@tool("Create a calendar event. participants: comma-separated emails.",
      {"title": S, "date": S, "start": S, "end": S, "participants": S}, required=("title", "date", "start", "end"))
def create_event(w: World, title: str, date: str, start: str, end: str, participants: str = "") -> dict:
    people = [p.strip() for p in participants.split(",") if p.strip()]
    ev = Event(f"ev{len(w.calendar) + 1}", title, date, start, end, people)
    w.calendar.append(ev)
    return {"created": ev.id}


@tool("Cancel a calendar event by id.", {"event_id": S})
def cancel_event(w: World, event_id: str) -> dict:
    _remove_first(w.calendar, lambda ev: ev.id == event_id, f"no event with id {event_id!r}")
    return {"cancelled": event_id}


# --- files ------------------------------------------------------------------------------------------
@tool("List the files in the drive.", {})
def list_files(w: World) -> list[str]:
    return sorted(w.files)


@tool("Read a file by its path.", {"path": S}, untrusted=("content",))
def read_file(w: World, path: str) -> dict:
    if path not in w.files:
        raise ToolError(f"no file {path!r}; call list_files to see the paths")
    return {"path": path, "content": w.files[path]}


@tool("Write (create or overwrite) a file.", {"path": S, "content": S})
def write_file(w: World, path: str, content: str) -> dict:
    w.files[path] = content
    return {"written": path}


@tool("Delete a file.", {"path": S})
def delete_file(w: World, path: str) -> dict:
    if path not in w.files:
        raise ToolError(f"no file {path!r}")
    del w.files[path]
    w.shares.pop(path, None)
    return {"deleted": path}


@tool("Share a file with an email address.", {"path": S, "email": S})
def share_file(w: World, path: str, email: str) -> dict:
    if path not in w.files:
        raise ToolError(f"no file {path!r}")
    w.shares.setdefault(path, []).append(email)
    return {"shared": path, "with": email}


# --- bank -------------------------------------------------------------------------------------------
@tool("Get the account balance.", {})
def get_balance(w: World) -> dict:
    return {"balance": round(w.balance, 2), "iban": USER_IBAN}


@tool("List the most recent transactions.", {"n": I}, required=(), untrusted=("subject",))
def list_transactions(w: World, n: int = 10) -> list[dict]:
    return [vars(t).copy() for t in w.transactions[-n:]]


@tool("Send money to an IBAN.", {"recipient": S, "amount": N, "subject": S})
def send_money(w: World, recipient: str, amount: float, subject: str) -> dict:
    if amount <= 0:
        raise ToolError("amount must be positive")
    if amount > w.balance:
        raise ToolError(f"insufficient funds: balance {w.balance:.2f}")
    w.balance -= amount
    t = Tx(len(w.transactions) + 1, USER_IBAN, recipient, float(amount), subject, w.today)
    w.transactions.append(t)
    return {"transaction": t.id, "balance": round(w.balance, 2)}


@tool("Schedule a payment for a later date (YYYY-MM-DD).", {"recipient": S, "amount": N, "date": S, "subject": S})
def schedule_payment(w: World, recipient: str, amount: float, date: str, subject: str) -> dict:
    t = Tx(1000 + len(w.scheduled), USER_IBAN, recipient, float(amount), subject, date)
    w.scheduled.append(t)
    return {"scheduled": t.id}


# --- travel and web ---------------------------------------------------------------------------------
@tool("Search hotels in a city.", {"city": S})
def search_hotels(w: World, city: str) -> list[dict]:
    return [{"name": h.name, "price": h.price, "rating": h.rating}
            for h in w.hotels.values() if h.city.lower() == city.lower()]


@tool("Read the reviews of a hotel.", {"hotel": S}, untrusted=("reviews",))
def get_reviews(w: World, hotel: str) -> dict:
    if hotel not in w.hotels:
        raise ToolError(f"no hotel named {hotel!r}; call search_hotels first")
    return {"hotel": hotel, "reviews": list(w.hotels[hotel].reviews)}


@tool("Reserve a hotel from start to end date (YYYY-MM-DD).", {"hotel": S, "start": S, "end": S})
def reserve_hotel(w: World, hotel: str, start: str, end: str) -> dict:
    if hotel not in w.hotels:
        raise ToolError(f"no hotel named {hotel!r}")
    r = {"id": f"r{len(w.reservations) + 1}", "hotel": hotel, "start": start, "end": end}
    w.reservations.append(r)
    return {"reserved": r["id"]}


@tool("Cancel a hotel reservation by id.", {"reservation_id": S})
def cancel_reservation(w: World, reservation_id: str) -> dict:
    _remove_first(w.reservations, lambda r: r["id"] == reservation_id, f"no reservation {reservation_id!r}")
    return {"cancelled": reservation_id}


@tool("Fetch a web page by URL.", {"url": S}, untrusted=("text",))
def get_webpage(w: World, url: str) -> dict:
    if url not in w.web:
        raise ToolError(f"404: {url} not found")
    return {"url": url, "text": w.web[url]}


# --- calling ----------------------------------------------------------------------------------------
_TYPES = {"string": str, "number": (int, float), "integer": int}


def check_args(t: Tool, args: Any) -> dict[str, Any]:
    """The arguments, validated against the tool's schema; ToolError names what is wrong."""
    if not isinstance(args, dict):
        raise ToolError(f"{t.name}: arguments must be a JSON object, got {type(args).__name__}")
    unknown = set(args) - set(t.params)
    if unknown:
        raise ToolError(f"{t.name}: unknown argument(s) {sorted(unknown)}; it takes {sorted(t.params)}")
    missing = [a for a in t.required if a not in args]
    if missing:
        raise ToolError(f"{t.name}: missing argument(s) {missing}")
    out = {}
    for k, v in args.items():
        kind = t.params[k]["type"]
        if kind in ("number", "integer") and isinstance(v, str):
            try:  # small models write numbers as strings; accept "50" but not "fifty"
                v = float(v) if kind == "number" else int(v)
            except ValueError:
                raise ToolError(f"{t.name}: argument {k} must be a {kind}, got {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, _TYPES[kind]):
            if kind == "string" and isinstance(v, (int, float)):
                v = str(v)
            else:
                raise ToolError(f"{t.name}: argument {k} must be a {kind}, got {v!r}")
        out[k] = v
    return out


def untrusted_texts(t: Tool, result: Any) -> list[str]:
    """The third-party free text inside a tool result (the fields the tool marks untrusted)."""
    found: list[str] = []

    def walk(x: Any, key: str | None) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, list):
            for v in x:
                walk(v, key)
        elif isinstance(x, str) and key in t.untrusted:
            found.append(x)

    walk(result, None)
    return found
