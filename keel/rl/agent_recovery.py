"""Recovery demonstrations for agent behaviour cloning: an expert episode with one mistake played into it.

Behaviour cloning on clean expert episodes never shows the agent an error observation, so a cloned agent
that makes one mistake is off the expert's distribution for the rest of the episode (DAgger, Ross et al.
2011; DART, Laskey et al. 2017, inject noise into demonstrations for the same reason). Here one expert turn
is preceded by a plausible mistaken reply of the kinds the cloned agent makes (a call missing an argument,
a reply cut off mid-way); the env answers it with its error observation and the expert goes on from the
state it is then in. The mistake's tokens are masked out of the loss (the agent must not learn to make
it); the expert's recovery is trained on. Only mistakes the env answers with an error are kept (a mistake
that changed the state or ended the episode makes a failed demonstration, which behaviour cloning drops).
"""

from __future__ import annotations

import json
import random


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


MISTAKES = (drop_argument, cut_short)


def mistake(reply: str, rng: random.Random) -> str | None:
    """One mistaken version of the expert's `reply`: a dropped argument where the reply is a call with
    arguments (half the time), else the reply cut short; None when neither applies."""
    kinds = list(MISTAKES)
    rng.shuffle(kinds)
    for kind in kinds:
        bad = kind(reply, rng)
        if bad is not None and bad != reply:
            return bad
    return None
