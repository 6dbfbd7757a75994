"""What every storage backend shares: the item record, the query filter, and validation of both.

A memory item is one row: text, where it came from (source, modality, timestamp, provenance), what it
is in the hierarchy (kind: message, episode, fact, theme), its state (active, superseded, pruned,
deleted), the parts of its reliability that do not depend on the clock (source credibility, consensus),
a usage count, and its embedding. Every change to a row also writes a history row, so `history(id)`
shows every version, including those of superseded, pruned and deleted items.
"""

from __future__ import annotations

import re
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import numpy as np

from keel.errors import KeelError

KINDS = ("message", "episode", "fact", "theme")
STATUSES = ("active", "superseded", "pruned", "deleted")
# Statuses whose items stay in the text and vector indexes (superseded items are still findable by a
# plain search; reliability-aware search leaves them out).
INDEXED = ("active", "superseded")
FILTER_FIELDS = ("source", "modality", "kind", "status")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
_TOKEN = re.compile(r"\w+", re.UNICODE)

# Columns of the items table, in order; `vec` is stored as float32 bytes (SQLite) or vector (PostgreSQL).
COLUMNS = (
    "id", "namespace", "kind", "text", "source", "modality", "ts", "created", "metadata", "provenance",
    "status", "version", "credibility", "consensus", "uses", "last_used", "parent", "slot", "value",
    "polarity",
)


class Item(TypedDict, total=False):
    """The one item type every store reads and writes (a row of COLUMNS, plus `vec` when asked for)."""

    id: str
    namespace: str
    kind: str
    text: str
    source: str
    modality: str
    ts: float
    created: float
    metadata: dict[str, Any]
    provenance: dict[str, Any]
    status: str
    version: int
    credibility: float
    consensus: float
    uses: int
    last_used: float | None
    parent: str | None
    slot: str | None
    value: str | None
    polarity: int
    vec: np.ndarray


def new_item(namespace: str, text: str, vec: np.ndarray, credibility: float, *, kind: str = "message",
             source: str = "user", ts: float | None = None, modality: str = "text",
             metadata: dict | None = None, provenance: dict | None = None, status: str = "active",
             slot: str | None = None, value: str | None = None, polarity: int = 1,
             parent: str | None = None) -> Item:
    """A fresh item (version 1, neutral consensus, never used)."""
    now = time.time()
    return Item(
        id=uuid.uuid4().hex, namespace=namespace, kind=kind, text=text, source=source, modality=modality,
        ts=now if ts is None else ts, created=now, metadata=metadata or {}, provenance=provenance or {},
        status=status, version=1, credibility=credibility, consensus=0.5, uses=0, last_used=None,
        parent=parent, slot=slot, value=value, polarity=polarity, vec=vec,
    )


class Store(Protocol):
    """What `Memory` needs from a backend; `SQLiteStore` and `PostgresStore` implement it.

    Searches return (id, score) pairs, best first; reads return `Item`s of one namespace."""

    backend: str

    def batch(self) -> AbstractContextManager[Any]: ...
    def close(self) -> None: ...
    def insert(self, items: list[Item]) -> list[str]: ...
    def update(self, namespace: str, item_id: str, fields: dict[str, Any], op: str,
               record_history: bool = True) -> Item: ...
    def touch(self, namespace: str, ids: list[str], at: float) -> None: ...
    def get(self, namespace: str, ids: list[str], with_vec: bool = False) -> list[Item]: ...
    def select(self, where: Where, with_vec: bool = False, limit: int | None = None,
               order: str = "ts") -> list[Item]: ...
    def slot_items(self, namespace: str, slot: str) -> list[Item]: ...
    def neighbours(self, where: Where, anchors: list[tuple[str, float]], gap: float) -> list[Item | None]: ...
    def fts(self, where: Where, query: str, n: int) -> list[tuple[str, float]]: ...
    def dense(self, where: Where, qvec: np.ndarray, n: int) -> list[tuple[str, float]]: ...
    def history(self, namespace: str, item_id: str) -> list[dict[str, Any]]: ...
    def taken(self, namespace: str, ids: list[str]) -> set[str]: ...
    def namespaces(self) -> list[str]: ...
    def counts(self, namespace: str) -> dict[str, int]: ...
    def history_ids(self, namespace: str) -> list[str]: ...
    def integrity(self) -> str: ...


def check_namespace(ns: str) -> str:
    if not isinstance(ns, str) or not _NAMESPACE.match(ns):
        raise KeelError(
            f"invalid namespace {ns!r}: use 1-128 letters, digits or . _ - @ : (one namespace per user)"
        )
    return ns


def query_terms(text: str) -> list[str]:
    """Lower-cased word tokens, for full-text queries (quoted, so user text is never query syntax)."""
    return list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text)))[:64]


@dataclass
class Where:
    """A conjunction of conditions on items of one namespace."""

    namespace: str
    kinds: tuple[str, ...] = ("message",)
    statuses: tuple[str, ...] = INDEXED
    equals: dict[str, list[Any]] = field(default_factory=dict)  # column -> allowed values
    meta: dict[str, list[Any]] = field(default_factory=dict)  # metadata key -> allowed values
    time_range: tuple[float | None, float | None] = (None, None)

    def is_plain(self) -> bool:
        """True when the index for (namespace, kind) already holds exactly the matching items."""
        return (
            not self.equals and not self.meta and self.time_range == (None, None)
            and set(self.statuses) == set(INDEXED)
        )

    def is_time_only(self) -> bool:
        """True when the only condition beyond the index's own is a time range."""
        return (
            not self.equals and not self.meta and self.time_range != (None, None)
            and set(self.statuses) == set(INDEXED)
        )


def parse_filters(
    namespace: str,
    filters: dict[str, Any] | None,
    time_range: tuple[Any, Any] | None,
    kinds: tuple[str, ...] = ("message",),
    statuses: tuple[str, ...] = INDEXED,
) -> Where:
    """User filters -> Where. Keys: source, modality, kind, status, or metadata.KEY; a value or a list of
    values. Unknown keys are errors (a typo must not silently match everything)."""
    where = Where(check_namespace(namespace), kinds=kinds, statuses=statuses)
    for key, value in (filters or {}).items():
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            raise KeelError(f"filter {key!r} has an empty list of values; give at least one")
        for v in values:
            if not isinstance(v, (str, int, float, bool)) or v is None:
                raise KeelError(f"filter {key!r}: values must be strings, numbers or booleans, got {v!r}")
        if key == "kind":
            bad = [v for v in values if v not in KINDS]
            if bad:
                raise KeelError(f"filter kind: unknown kind {bad[0]!r}; kinds are {', '.join(KINDS)}")
            where.kinds = tuple(values)
        elif key == "status":
            bad = [v for v in values if v not in STATUSES]
            if bad:
                raise KeelError(f"filter status: unknown status {bad[0]!r}; statuses are {', '.join(STATUSES)}")
            where.statuses = tuple(values)
        elif key in FILTER_FIELDS:
            where.equals[key] = values
        elif key.startswith("metadata.") and re.fullmatch(r"metadata\.[A-Za-z0-9_]{1,64}", key):
            where.meta[key.split(".", 1)[1]] = values
        else:
            raise KeelError(
                f"unknown filter {key!r}; filter on {', '.join(FILTER_FIELDS)} or metadata.KEY "
                "(e.g. {'metadata.topic': 'travel'})"
            )
    if time_range is not None:
        if not isinstance(time_range, (list, tuple)) or len(time_range) != 2:
            raise KeelError("time_range must be a pair (start, end) of timestamps; use None for an open end")
        lo, hi = (None if x is None else float(x) for x in time_range)
        if lo is not None and hi is not None and lo > hi:
            raise KeelError(f"time_range start {lo} is after its end {hi}")
        where.time_range = (lo, hi)
    return where


def matches(item: dict[str, Any], where: Where) -> bool:
    """The Python twin of a backend's WHERE clause, for items fetched by id."""
    if item.get("namespace", where.namespace) != where.namespace:
        return False
    if item["kind"] not in where.kinds or item["status"] not in where.statuses:
        return False
    if any(item[col] not in values for col, values in where.equals.items()):
        return False
    if any(item["metadata"].get(key) not in values for key, values in where.meta.items()):
        return False
    lo, hi = where.time_range
    return (lo is None or item["ts"] >= lo) and (hi is None or item["ts"] <= hi)
