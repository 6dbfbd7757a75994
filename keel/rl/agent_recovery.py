"""Recovery demonstrations for agent behaviour cloning: an expert episode with one mistake played into it.

Behaviour cloning on clean expert episodes never shows the agent an error observation, so a cloned agent
that makes one mistake is off the expert's distribution for the rest of the episode (DAgger, Ross et al.
2011; DART, Laskey et al. 2017, inject noise into demonstrations for the same reason). Here one expert turn
is preceded by a plausible mistaken reply of the kinds the cloned agent makes (a call missing an argument,
a reply cut off mid-way, or the next step's call made too early, its looked-up arguments filled with words
of the request: seen in round 2, where the cloned toolworld agent sent a schedule_payment to the bill's file
path instead of reading the bill first); the env answers it with its error observation and the expert goes on from the
state it is then in. The mistake's tokens are masked out of the loss (the agent must not learn to make
it); the expert's recovery is trained on. Only mistakes the env answers with an error are kept (a mistake
that changed the state or ended the episode makes a failed demonstration, which behaviour cloning drops).
"""

from __future__ import annotations

import json
import random
import re


def drop_argument(reply: str, rng: random.Random) -> str | None:
    """A JSON tool call with one of its arguments left out; None if the reply is not such a call."""
    try:
        call = json.loads(reply)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("args"), dict) or not call["args"]:
        return None
    args = dict(call["args"])
    del args[rng.choice(sorted(args))]
    return json.dumps({**call, "args": args})


def cut_short(reply: str, rng: random.Random) -> str | None:
    """The reply cut off part-way (what a too-small reply cap or a stray end-of-turn does); None if too short."""
    if len(reply) < 8:
        return None
    return reply[: rng.randint(len(reply) // 3, (2 * len(reply)) // 3)]


# words of a request an agent may copy into a call: quoted text, paths, names (capitalised, not sentence-initial)
_QUOTED = re.compile(r"'([^']+)'")
_PATH = re.compile(r"(/[\w.-]+(?:/[\w.-]+)*\w)")
_NAME = re.compile(r"(?<=[a-z,] )([A-Z][\w-]*(?: [A-Z][\w-]*)*)")


FREE_TEXT = ("subject", "body", "content", "message", "text")  # worded freely: never "looked up"


def request_words(request: str) -> list[str]:
    """What of the user's request a premature call could be filled with, in a fixed order, no repeats."""
    found = [*_QUOTED.findall(request), *_PATH.findall(request), *_NAME.findall(request)]
    return list(dict.fromkeys(w for w in found if len(w) > 1))


def premature(ahead: str, request: str, rng: random.Random) -> str | None:
    """The expert's NEXT call (`ahead`) made now, before the look-up it depends on: each argument whose value
    the request does not contain is filled with words of the request (a number is left out instead); free
    text stays as the expert wrote it. None if `ahead` is not a call or needs nothing looked up (then
    making it early is no mistake)."""
    try:
        call = json.loads(ahead)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("args"), dict):
        return None
    words = request_words(request)
    args, changed = {}, False
    for k, v in call["args"].items():
        if k in FREE_TEXT or str(v) in request or not words:
            args[k] = v
        elif isinstance(v, str):
            args[k], changed = rng.choice(words), True
        else:
            changed = True  # a looked-up number the agent does not have yet: left out
    return json.dumps({**call, "args": args}) if changed else None


MISTAKES = (drop_argument, cut_short)


def mistake(reply: str, rng: random.Random, ahead: str | None = None, request: str = "") -> str | None:
    """One mistaken version of the expert's `reply`: a dropped argument, the reply cut short, or (given the
    expert's next reply `ahead` and the user's `request`) that next call made prematurely, tried first; the
    other kinds in a random order; the first that applies is played; None when none does."""
    kinds = list(MISTAKES)
    rng.shuffle(kinds)
    if ahead is not None:  # tried first where it applies: the mistake seen most in held-out templates
        kinds.insert(0, lambda r, g: premature(ahead, request, g))
    for kind in kinds:
        bad = kind(reply, rng)
        if bad is not None and bad != reply:
            return bad
    return None
