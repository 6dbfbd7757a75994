"""A generated long-conversation memory benchmark that is harder than the extractor: chatty sessions
where facts come up in passing, paraphrase templates split in two halves, evidence labels per question.

Each user talks with the assistant over many sessions (days apart). Facts are said in passing inside
small talk ("ugh, the commute from Leeds is killing me since we moved"), some in reply to the
assistant's question (the evidence is the reply, the words of the question are in the turn before).
Every fact kind has six paraphrase templates and every question kind several phrasings; half "dev"
(templates 0, 2, 4, ...) may inform the extractor and tune retrieval, half "eval" (1, 3, 5, ...) is
used only to measure. A user's whole conversation is written from one half.

Question types, each with the ids of its evidence turns:
  single      one fact, said once ("Where does my sister work?")
  multi       two facts from different sessions ("Which city does the friend who adopted a greyhound
              live in?": the adoption in one session, the move in another)
  temporal    an activity found only by its date: "N days ago", "on March 14", "last weekend", or
              "the week before my trip to Oslo" (resolved against the question's timestamp / the event)
  preference  a preference that changed; the evidence is the latest statement only
  unanswerable  never said; a memory should abstain
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

DAY = 86400.0
T0 = dt.datetime(2025, 1, 6, 18, tzinfo=dt.UTC).timestamp()  # a Monday evening

CITIES = ["Leeds", "Lyon", "Tallinn", "Porto", "Graz", "Bergen", "Utrecht", "Cork", "Kraków", "Valencia"]
JOBS = ["physiotherapist", "sound engineer", "librarian", "bike mechanic", "actuary", "florist", "midwife"]
FOODS = ["pho", "shakshuka", "pierogi", "bibimbap", "paella", "dal makhani", "ramen", "empanadas"]
DRINKS = ["oat flat whites", "green tea", "cold brew", "chai", "sparkling water", "kombucha"]
PETS = ["a greyhound", "a rescue cat", "two rabbits", "a parrot", "a border collie", "a tortoise"]
NAMES = ["Priya", "Tomasz", "Ines", "Kwame", "Hana", "Mateo", "Saoirse", "Yusuf", "Greta", "Ravi"]
RELATIONS = ["sister", "brother", "cousin", "best friend", "flatmate", "old colleague"]
ACTIVITIES = ["went kayaking on the river", "did a pottery class", "ran a 10k in the rain",
              "built a bookshelf from scratch", "went to a jazz gig", "baked sourdough for the first time",
              "volunteered at the food bank", "hiked up to the old fort", "tried bouldering",
              "visited the glass museum", "repainted the hallway", "went to a salsa class",
              "went wild swimming at the lake", "played in a chess tournament", "took a life drawing class",
              "went foraging for mushrooms"]
TRIP_CITIES = ["Oslo", "Seville", "Ghent", "Trieste", "Riga", "Bordeaux"]

# Fact templates: 6 each; even indices are the dev half, odd the eval half.
T = {
    "home": ["ugh the commute is brutal since we moved to {v}, anyway how are you",
             "lol yeah we've been living in {v} for a few weeks now, still unpacking",
             "sorry, slow reply, the wifi in the new place in {v} is awful",
             "so {v} is home now, the flat is tiny but I love it",
             "honestly relocating to {v} was the best call, the bakeries alone",
             "anyway, I'm settled in {v} these days, the neighbours are nice"],
    "job": ["work's been hectic, turns out being a {v} means weekend shifts",
            "my new gig as a {v} starts monday, nervous haha",
            "yeah so I took the {v} job in the end, pays better",
            "long day, that's {v} life for you I guess",
            "I finally went full time as a {v}, no more freelancing",
            "tbh being a {v} is more paperwork than I expected"],
    "food": ["we had {v} again tonight, honestly my favourite thing to eat",
             "nothing beats {v}, I could eat it every day",
             "my comfort food these days is {v}, no contest",
             "if I could only eat one dish forever it'd be {v}",
             "craving {v} again, it's my go-to favourite",
             "ok confession: {v} is my favourite food right now"],
    "drink": ["I've switched to {v} in the mornings, feels healthier",
              "can't start the day without {v} lately",
              "my morning drink is {v} now, coffee was making me jittery",
              "been living on {v} this week lol",
              "I'm all about {v} at the moment",
              "these days it's {v} for me every morning"],
    "rel_job": ["my {r} {n} just started as a {v}, so proud of them",
                "{n}, my {r}, works as a {v} now, crazy hours",
                "oh and my {r} {n} got hired as a {v} last week",
                "{n} (my {r}) is a {v} these days",
                "did I tell you my {r} {n} retrained as a {v}?",
                "my {r} {n} finally landed a {v} role"],
    "friend_pet": ["my friend {n} just adopted {v}, I'm so jealous",
                   "{n} came over with {v} they adopted, total chaos",
                   "{n} finally got {v}, sent me a million photos",
                   "guess who has {v} now? {n}!",
                   "{n} brought home {v} from the shelter this weekend",
                   "my mate {n} adopted {v}, it already runs the house"],
    "friend_city": ["{n} is moving to {v} next month, gonna miss them",
                    "{n} lives out in {v} now so we mostly video call",
                    "{n} just relocated to {v} for work",
                    "I'm visiting {n} in {v} soon, they moved there in the summer",
                    "{n} packed up and went to {v}",
                    "{n} says {v} is great, they've been there since spring"],
    "activity": ["today I {v}, exhausted but happy",
                 "this morning I {v}, might do it again",
                 "so I {v} earlier, my legs are dead",
                 "guess what, I {v} today!",
                 "spent the afternoon like this: {v}. good times",
                 "quick update: I {v} today, loved it"],
    "trip": ["back from my trip to {v}! what a week",
             "just got home from {v}, the trip was amazing",
             "my trip to {v} is over already, sad",
             "landed back from {v} last night, still tired from the trip",
             "the {v} trip was so good, home now",
             "home again after the trip to {v}, unpacking"],
}
ASK = {  # the assistant asks; the user's reply (the evidence) does not repeat the question's words
    "food": "What's your favourite food these days?",
    "home": "Where are you living now?",
    "drink": "What do you drink in the mornings now?",
}
REPLY = {"food": ["{v}, easily", "probably {v}", "{v}, no question", "hmm {v} I'd say", "{v} all the way",
                  "definitely {v}"],
         "home": ["{v} now!", "we ended up in {v}", "{v}, since last month", "out in {v}", "in {v} finally",
                  "{v} these days"],
         "drink": ["{v}", "mostly {v}", "{v} lately", "it's {v} now", "{v}, every day", "just {v}"]}
Q = {
    "home": ["Where do I live now?", "Which city am I living in these days?"],
    "job": ["What do I do for work?", "What's my job?"],
    "food": ["What is my favourite food now?", "Which dish do I like most these days?"],
    "drink": ["What do I drink in the morning now?", "What's my morning drink lately?"],
    "rel_job": ["What does my {r} {n} do for work?", "What job does {n} have?"],
    "multi": ["Which city does the friend who adopted {p} live in?",
              "Where does my friend with {p} live now?"],
    "temporal": ["What did I do {when}?", "What activity did I do {when}?"],
    "anchor": ["What did I do the week before my trip to {c}?", "What did I get up to the week before my trip to {c}?"],
}
UNANSWERABLE = ["What is my blood type?", "What's the name of my dentist?", "Which football team do I support?",
                "What is my passport number?", "What was my first car?", "Where did my grandmother grow up?"]
FILLER = ["haha yeah", "ugh mondays", "ok that's fair", "anyway, enough about me", "it rained all day here",
          "I need to do laundry at some point", "did you see the news? wild", "sleep was bad again lol",
          "the bus was late, classic", "can you remind me to call mum", "thinking about a new phone",
          "I should really drink more water", "what should I watch tonight?", "lol true",
          "work was fine, nothing special", "my plants are dying again"]
ASSISTANT = ["Ha, sounds like a lot!", "That's great to hear.", "Oh no, sorry about that.", "Tell me more!",
             "Happy to help with that.", "Good luck with it!", "That makes sense.", "Nice, enjoy!",
             "How did that go?", "Got it."]


@dataclass
class Conversation:
    turns: list[tuple[str, str, float, int]] = field(default_factory=list)  # (text, role, ts, session)
    questions: list[dict] = field(default_factory=list)  # {"q", "evidence": [turn index], "type", "now"}
    facts: dict[int, tuple[str, str]] = field(default_factory=dict)  # turn index -> (attribute, value): the user's own


def _pick(rng: np.random.Generator, xs: list) -> str:
    return xs[int(rng.integers(len(xs)))]


def _tpl(rng: np.random.Generator, xs: list[str], half: str) -> str:
    own = xs[0::2] if half == "dev" else xs[1::2]
    return _pick(rng, own)


def _when_phrase(now: float, ts: float, rng: np.random.Generator) -> str:
    days = int(round((now - ts) / DAY))
    d = dt.datetime.fromtimestamp(ts, dt.UTC)
    opts = [f"on {d.strftime('%B')} {d.day}"]
    if days == 1:
        opts.append("yesterday")
    elif days % 7 == 0:
        opts.append("a week ago" if days == 7 else f"{['', '', 'two', 'three', 'four', 'five'][days // 7]} weeks ago"
                    if days // 7 <= 5 else f"{days} days ago")
    else:
        opts.append(f"{days} days ago")
    return _pick(rng, opts)


def generate(seed: int, half: str, sessions: int = 14) -> Conversation:
    """One user's conversation, written only from the `half` ("dev" or "eval") of the templates."""
    rng = np.random.default_rng(seed)
    c = Conversation()
    # session days: 2-5 days apart
    days = np.cumsum(rng.integers(2, 6, size=sessions)) - 2
    plan: list[list[tuple[str, str | None]]] = [[] for _ in range(sessions)]  # per session: (user text, tag)
    gold: dict[str, tuple[str, str]] = {}  # tag -> (attribute, value) of the user's own facts
    ask: dict[tuple[int, int], str] = {}

    def say(s: int, text: str, tag: str | None = None) -> None:
        plan[s].append((text, tag))

    # preferences that change 1-2 times (home, food, drink) and a job said once
    for kind, vals in (("home", CITIES), ("food", FOODS), ("drink", DRINKS)):
        when = sorted(rng.choice(np.arange(sessions - 1), size=int(rng.integers(2, 4)), replace=False).tolist())
        seq = rng.choice(vals, size=len(when), replace=False).tolist()
        for i, (s, v) in enumerate(zip(when, seq, strict=True)):
            tag = f"{kind}:{i}:{len(when)}"
            gold[tag] = ({"home": "lives in", "food": "favourite food", "drink": "drinks"}[kind], v.lower())
            if kind in ASK and rng.random() < 0.35:  # said in reply to the assistant's question
                say(s, _tpl(rng, REPLY[kind], half).format(v=v), tag)
                ask[(s, len(plan[s]) - 1)] = ASK[kind]
            else:
                say(s, _tpl(rng, T[kind], half).format(v=v), tag)
    job = _pick(rng, JOBS)
    gold["job"] = ("occupation", job)
    say(int(rng.integers(sessions)), _tpl(rng, T["job"], half).format(v=job), "job")
    # people: two relatives with jobs; two friends with a pet and a city, said in different sessions
    names = rng.choice(NAMES, size=4, replace=False).tolist()
    rels = rng.choice(RELATIONS, size=2, replace=False).tolist()
    jobs = rng.choice(JOBS, size=2, replace=False).tolist()
    for n, r, j in zip(names[:2], rels, jobs, strict=True):
        say(int(rng.integers(sessions)), _tpl(rng, T["rel_job"], half).format(r=r, n=n, v=j), f"rel_job:{n}:{r}")
    pets = rng.choice(PETS, size=2, replace=False).tolist()
    fcities = rng.choice(CITIES, size=2, replace=False).tolist()
    for n, p, city in zip(names[2:], pets, fcities, strict=True):
        a, b = rng.choice(sessions, size=2, replace=False).tolist()
        say(a, _tpl(rng, T["friend_pet"], half).format(n=n, v=p), f"pet:{n}:{p}")
        say(b, _tpl(rng, T["friend_city"], half).format(n=n, v=city), f"fcity:{n}")
    # activities in about half the sessions; one trip right after an activity session
    acts = rng.choice(ACTIVITIES, size=sessions, replace=False).tolist()
    act_sessions = sorted(rng.choice(np.arange(1, sessions - 1), size=sessions // 2, replace=False).tolist())
    trip_s = None
    for s in act_sessions:
        if s + 1 < sessions and s + 1 not in act_sessions and days[s + 1] - days[s] <= 6 and trip_s is None:
            trip_s = s + 1
    for s in act_sessions:
        say(s, _tpl(rng, T["activity"], half).format(v=acts[s]), f"act:{s}")
    trip_city = _pick(rng, TRIP_CITIES)
    if trip_s is not None:
        say(trip_s, _tpl(rng, T["trip"], half).format(v=trip_city), "trip")
    # lay the sessions out: filler + the planned turns, each user turn followed by the assistant
    tagged: dict[str, int] = {}
    for s in range(sessions):
        ts = T0 + float(days[s]) * DAY + float(rng.integers(0, 4 * 3600))
        turns = plan[s] + [(_pick(rng, FILLER), None) for _ in range(int(rng.integers(4, 8)))]
        order = rng.permutation(len(turns)).tolist()
        for pos in order:
            text, tag = turns[pos]
            if pos < len(plan[s]) and (s, pos) in ask:
                c.turns.append((ask[(s, pos)], "assistant", ts, s))
                ts += 45
            c.turns.append((text, "user", ts, s))
            if tag:
                tagged[tag] = len(c.turns) - 1
            ts += 40 + float(rng.integers(0, 80))
            c.turns.append((_pick(rng, ASSISTANT), "assistant", ts, s))
            ts += 40 + float(rng.integers(0, 80))
    now = c.turns[-1][2] + DAY
    c.facts = {tagged[t]: g for t, g in gold.items()}
    qh = (lambda xs: xs[0::2]) if half == "dev" else (lambda xs: xs[1::2])

    def ask_q(q: str, ev: list[int], kind: str) -> None:
        c.questions.append({"q": q, "evidence": ev, "type": kind, "now": now})

    for kind in ("home", "food", "drink"):
        last = max((t for t in tagged if t.startswith(kind + ":")), key=lambda t: int(t.split(":")[1]))
        ask_q(_pick(rng, qh(Q[kind]) or Q[kind]), [tagged[last]], "preference")
    ask_q(_pick(rng, qh(Q["job"])), [tagged["job"]], "single")
    for t in [t for t in tagged if t.startswith("rel_job:")]:
        _, n, r = t.split(":")
        ask_q(_pick(rng, qh(Q["rel_job"])).format(r=r, n=n), [tagged[t]], "single")
    for t in [t for t in tagged if t.startswith("pet:")]:
        _, n, p = t.split(":")
        ask_q(_pick(rng, qh(Q["multi"])).format(p=p), [tagged[t], tagged[f"fcity:{n}"]], "multi")
    for s in rng.choice(act_sessions, size=min(3, len(act_sessions)), replace=False).tolist():
        i = tagged[f"act:{s}"]
        ask_q(_pick(rng, qh(Q["temporal"])).format(when=_when_phrase(now, c.turns[i][2], rng)), [i], "temporal")
    if trip_s is not None:
        ask_q(_pick(rng, qh(Q["anchor"])).format(c=trip_city), [tagged[f"act:{trip_s - 1}"]], "temporal")
    for q in rng.choice(UNANSWERABLE, size=2, replace=False).tolist():
        ask_q(q, [], "unanswerable")
    return c
