"""Dates in queries, resolved against the time the question is asked.

"what did I do last weekend?", "two weeks ago", "yesterday", "in March 2025", "on Monday", "on 2025-03-14",
"the week before my trip to Oslo": each becomes a time window (start, end) in seconds since 1970. The
window is a soft preference in search (items inside it gain a bonus and the window is searched on its
own for candidates), never a hard filter, so a misread date costs ranking, not recall.

"before/after EVENT" needs the event's own time: `parse` returns the event phrase as `anchor`, and the
caller finds it in memory (its best hit's timestamp) and calls `around_anchor`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

DAY = 86400.0
_NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
        "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple of": 2, "few": 3}
_UNIT = {"day": 1, "week": 7, "month": 30, "year": 365}
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_AGO = re.compile(r"\b(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|couple of|few)"
                  r" (day|week|month|year)s? ago\b", re.I)
_LAST = re.compile(r"\b(last|this|previous|past) (weekend|week|month|year|night)\b", re.I)
_REL_DAY = re.compile(r"\b(yesterday|today|tonight|the day before yesterday)\b", re.I)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")(?: (\d{1,2})(?:st|nd|rd|th)?)?(?:,? (\d{4}))?\b", re.I)
_WEEKDAY = re.compile(r"\b(?:on |last )?(" + "|".join(_WEEKDAYS) + r")\b", re.I)
_ANCHOR = re.compile(r"\b(?:in |during )?the (day|week|month|weekend) (before|after) (.+?)[?.!]*$", re.I)


@dataclass(frozen=True)
class TimeQuery:
    window: tuple[float, float] | None = None  # resolved against `now`
    anchor: str | None = None  # "my trip to Oslo": find its time, then call around_anchor
    span_days: float = 7.0
    direction: str = "before"


def _day_start(t: float) -> float:
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()


def parse(query: str, now: float) -> TimeQuery:
    """The time window a query speaks of, or an event to anchor on; TimeQuery() when it names no time."""
    q = query.lower()
    m = _ANCHOR.search(q)
    if m:
        unit = {"day": 1, "week": 7, "weekend": 3, "month": 30}[m.group(1)]
        return TimeQuery(anchor=m.group(3), span_days=unit, direction=m.group(2))
    today = _day_start(now)
    m = _REL_DAY.search(q)
    if m:
        back = {"today": 0, "tonight": 0, "yesterday": 1, "the day before yesterday": 2}[m.group(1)]
        return TimeQuery(window=(today - back * DAY, today - back * DAY + DAY))
    m = _AGO.search(q)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else _NUM[m.group(1)]
        days = n * _UNIT[m.group(2)]
        slack = max(1.0, 0.5 * _UNIT[m.group(2)])  # "two weeks ago" is about, not exactly, 14 days
        return TimeQuery(window=(today - (days + slack) * DAY, today - (days - slack) * DAY + DAY))
    m = _LAST.search(q)
    if m:
        which, unit = m.group(1), m.group(2)
        weekday = dt.datetime.fromtimestamp(today, dt.UTC).weekday()
        if unit == "night":
            return TimeQuery(window=(today - DAY, today + 0.25 * DAY))
        if unit == "weekend":
            sat = today - ((weekday - 5) % 7) * DAY  # the latest Saturday on or before today
            if which == "last" and sat + 2 * DAY > now:
                sat -= 7 * DAY
            return TimeQuery(window=(sat - 0.5 * DAY, sat + 2 * DAY))
        if unit == "week":
            monday = today - weekday * DAY
            return TimeQuery(window=(monday, now) if which == "this" else (monday - 7 * DAY, monday))
        if unit == "month":
            d = dt.datetime.fromtimestamp(today, dt.UTC)
            first = dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC)
            if which == "this":
                return TimeQuery(window=(first.timestamp(), now))
            prev = dt.datetime(d.year - (d.month == 1), 12 if d.month == 1 else d.month - 1, 1, tzinfo=dt.UTC)
            return TimeQuery(window=(prev.timestamp(), first.timestamp()))
        return TimeQuery(window=(now - 365 * DAY, now))
    m = _ISO.search(q)
    if m:
        try:
            t = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=dt.UTC).timestamp()
            return TimeQuery(window=(t, t + DAY))
        except ValueError:
            return TimeQuery()
    m = _MONTH.search(q)
    if m and not (m.group(1) == "may" and not (m.group(2) or m.group(3))):  # "may" alone is a verb
        month = _MONTHS.index(m.group(1)) + 1
        d = dt.datetime.fromtimestamp(now, dt.UTC)
        year = int(m.group(3)) if m.group(3) else (d.year if month <= d.month else d.year - 1)
        try:
            if m.group(2):
                t = dt.datetime(year, month, int(m.group(2)), tzinfo=dt.UTC).timestamp()
                return TimeQuery(window=(t, t + DAY))
            start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            end = dt.datetime(year + (month == 12), 1 if month == 12 else month + 1, 1, tzinfo=dt.UTC)
            return TimeQuery(window=(start.timestamp(), end.timestamp()))
        except ValueError:
            return TimeQuery()
    m = _WEEKDAY.search(q)
    if m:
        target = _WEEKDAYS.index(m.group(1))
        weekday = dt.datetime.fromtimestamp(today, dt.UTC).weekday()
        back = (weekday - target) % 7 or 7  # the most recent such day before today
        start = today - back * DAY
        return TimeQuery(window=(start, start + DAY))
    return TimeQuery()


def around_anchor(tq: TimeQuery, anchor_ts: float) -> tuple[float, float]:
    """The window `span_days` before (or after) the anchor event's time."""
    span = tq.span_days * DAY
    return (anchor_ts - span, anchor_ts) if tq.direction == "before" else (anchor_ts, anchor_ts + span)


def strip(query: str) -> str:
    """The query without its date words (what to look for inside the window)."""
    q = _ANCHOR.sub("", query)
    for pat in (_AGO, _LAST, _REL_DAY, _ISO):
        q = pat.sub("", q)
    return " ".join(q.split()) or query
