"""Facts from messages without a language model: (subject, attribute) slots, a value and a polarity.

A deliberately small, predictable extractor (patterns, not a parser). It finds first-person and
possessive statements — "my favourite colour is green", "I live in Lisbon", "I work at Acme",
"I prefer window seats", "I don't like olives", "Alice's phone number is 555" — and gives each a slot
such as `user|favourite colour` with a value. Two facts in the same slot with different values
contradict each other; that is what supersession and MMA consensus build on. Callers that know better
can pass `metadata={"slot": ..., "value": ...}` and skip extraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENT = re.compile(r"(?<=[.!?;])\s+|\n+")
_CLEAN = re.compile(r"^(?:and|but|so|also|well|now|actually|oh|yes|no|ok|okay)[, ]+", re.I)
_VAL_END = re.compile(r"\s*(?:,|\bbecause\b|\bsince\b|\bbut\b|\bthough\b|\blast\b|\bfor good\b"
                      r"|\bthese days\b|\bnow\b\s*[.!]?$"
                      r"|\b(?:in|on|since) (?:\d{4}|january|february|march|april|may|june|july|august|september"
                      r"|october|november|december)\b).*$", re.I)
_NEG = r"(?:don't|do not|no longer|never|stopped|can't stand|cannot stand|dislike|hate)"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "my favourite colour is (now) green", "our dog's name is Rex"
    (re.compile(r"\b(my|our) ([a-z][a-z' ]{1,40}?) (?:is|are|was|has become|became) (?:now |still )?(.+)", re.I),
     "poss"),
    # "Alice's phone number is 555"
    (re.compile(r"\b([A-Z][a-z]+)'s ([a-z][a-z ]{1,40}?) (?:is|are|was) (?:now )?(.+)"), "named"),
    # "I live in Lisbon", "we finally moved to Porto", "I work at Acme", "I started working as a nurse"
    (re.compile(r"\b(?:I|we) (?:now |currently |still |finally |just |recently )?"
                r"(?:started |began )?(live|moved|relocated|work|working|study|studied)"
                r" (?:in|to|at|as|for) (?:a |an |the )?(.+)", re.I), "verb"),
    # "Alice moved to Lisbon", "Tom now lives in Oslo" (a named third person)
    (re.compile(r"\b([A-Z][a-z]+) (?:now |currently |still |finally |just |recently )?"
                r"(lives|moved|relocated|works) (?:in|to|at|as|for) (?:a |an |the )?(.+)"), "named_verb"),
    # "sushi is my favourite food now" (the possessive after the verb)
    (re.compile(r"^(?:honestly,? |really,? |well,? )?([a-z][\w' -]{0,40}?) is (?:my|our) ([a-z][a-z ]{1,40}?)"
                r"(?: now| these days)?[.!]*$", re.I), "rposs"),
    # "I've really gotten into chess as a hobby"
    (re.compile(r"\bI(?:'ve| have)? (?:really |recently )?(?:gotten|got|been getting) into (.+?) as a (hobby)", re.I),
     "into"),
    # "I don't like olives", "I no longer eat meat"
    (re.compile(rf"\bI {_NEG} (?:like |eat |drink |want |use |enjoy )?(.+)", re.I), "neg"),
    # "I like/love/prefer/enjoy X", "I'm allergic to X", "I drive a X"
    (re.compile(r"\bI (?:really |now |also )?(like|love|prefer|enjoy|drink|eat|drive|own|play|use) (.+)", re.I),
     "pref"),
    (re.compile(r"\bI(?:'m| am) (?:now )?(allergic to|vegetarian|vegan|married to|a|an) ?(.*)", re.I), "am"),
]

_VERB_ATTR = {"live": "lives in", "moved": "lives in", "relocated": "lives in", "work": "occupation",
              "working": "occupation", "study": "studies", "studied": "studies"}
_PREF_ATTR = {"like": "likes", "love": "likes", "enjoy": "likes", "prefer": "prefers", "drink": "drinks",
              "eat": "eats", "drive": "drives", "own": "owns", "play": "plays", "use": "uses"}


@dataclass(frozen=True)
class Fact:
    slot: str
    value: str
    polarity: int  # +1 asserted, -1 negated
    text: str  # the sentence the fact came from


def _attr(raw: str) -> str:
    """Attribute names without qualifiers that do not change the slot ("main hobby" = "hobby"); "job" and
    "occupation" are one slot."""
    words = [w for w in raw.lower().split() if w not in ("main", "new", "current", "latest", "present")]
    attr = " ".join(words)
    return "occupation" if attr in ("job", "work", "profession") else attr


def clean_value(raw: str) -> str:
    v = _VAL_END.sub("", raw.strip())
    v = re.sub(r"[.!?\"']+$", "", v).strip()
    v = re.sub(r"^(?:a|an|the) ", "", v, flags=re.I)
    return " ".join(v.lower().split()[:6])


def extract(text: str, subject: str = "user") -> list[Fact]:
    """Facts stated in `text`, at most one per sentence (the first pattern that matches wins)."""
    out: list[Fact] = []
    for raw in _SENT.split(text):
        sent = _CLEAN.sub("", raw.strip())
        if len(sent) < 6 or sent.endswith("?"):
            continue  # questions state nothing
        for pat, how in _PATTERNS:
            m = pat.search(sent)
            if not m:
                continue
            if how == "poss":
                attr, value, pol = m.group(2), m.group(3), 1
                if re.search(r"\b(not|no longer)\b", value, re.I):
                    pol = -1
                    value = re.sub(r"\b(not|no longer)\b", "", value, flags=re.I)
                slot = f"{subject}|{_attr(attr)}"
            elif how == "rposs":
                slot, value, pol = f"{subject}|{_attr(m.group(2))}", m.group(1), 1
            elif how == "into":
                slot, value, pol = f"{subject}|hobby", m.group(1), 1
            elif how == "named":
                slot, value, pol = f"{m.group(1).lower()}|{m.group(2).lower().strip()}", m.group(3), 1
            elif how == "named_verb":
                verb = {"lives": "live", "works": "work"}.get(m.group(2), m.group(2))
                slot, value, pol = f"{m.group(1).lower()}|{_VERB_ATTR[verb]}", m.group(3), 1
            elif how == "verb":
                slot, value, pol = f"{subject}|{_VERB_ATTR[m.group(1).lower()]}", m.group(2), 1
            elif how == "neg":
                value, pol = m.group(1), -1
                slot = f"{subject}|likes:{clean_value(value)}"
            elif how == "pref":
                verb = _PREF_ATTR[m.group(1).lower()]
                value, pol = m.group(2), 1
                # "likes X" is many-valued: the slot is per object, the negation of it contradicts it
                slot = f"{subject}|likes:{clean_value(value)}" if verb == "likes" else f"{subject}|{verb}"
            else:
                what = m.group(1).lower()
                value = (what + " " + m.group(2)).strip() if what in ("vegetarian", "vegan") else m.group(2)
                kind = "diet" if what in ("vegetarian", "vegan") else "occupation" if what in ("a", "an") else what
                slot = f"{subject}|{kind}"
                pol = 1
            v = clean_value(value)
            if v:
                out.append(Fact(slot=slot, value="" if "|likes:" in slot else v, polarity=pol, text=sent))
            break
    return out
