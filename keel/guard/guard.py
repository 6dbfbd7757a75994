"""The guard: checks every tool call against a policy before it runs, and says allow, deny, ask or rewrite.

Rules that cannot be talked around: the decision is computed from the call's name and arguments, the
provenance of the data in them and the history of calls, never from the model's text. The checks, in
order (the first that fires decides):

1. tool allow/deny lists and the tool's own `decision: deny`;
2. argument schemas (type, enum, pattern, range, length) and deny globs -> deny;
3. rate limits (per episode, or per sliding time window) -> deny;
4. temporal rules: LTLf formulas compiled to DFAs by `keel.spec`; a call whose labels would move a DFA into a
   dead state (no continuation can satisfy the rule) is refused, a one-step shield (Alshiekh et al. 2018).
   If the same call *with human approval* would keep the rule alive, the decision is `ask` instead;
5. information flow: an argument listed in `untrusted_args` whose value (or an entity inside it: address,
   IBAN, URL, path, number) appears in untrusted tool output and not in the user's own request is
   tainted -> `on_untrusted` (ask by default); an argument in `trusted_args` must instead be *found* in trusted
   text (the request, outputs the policy's `sources` call trusted; dates also in words), one in `request_args`
   in the user's request itself, else `on_untrusted`; in `untrusted_entities` free text, only addresses,
   URLs and IBANs taken from untrusted text count; a tool with `request_mentions` runs only when the user's
   request uses one of those words (Progent-style least privilege: the request grants the capability);
   what is trusted and what is third-party text is the policy's `sources` (`keel.guard.provenance`);
6. allow globs not matched -> ask; `rewrite` clamps -> rewrite; otherwise the tool's decision.

A call only changes the guard's state (rate counters, DFA states) once it is actually executed: at once for
allow/rewrite, through `resolve(decision, approved)` after an ask.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from keel.guard.audit import AuditLog
from keel.guard.decode import decoded_views
from keel.guard.policy import ArgSchema, Policy, PolicyError, ToolRule, compile_pattern, glob_regex
from keel.guard.provenance import date_regex, split_output

ALLOW, DENY, ASK, REWRITE = "allow", "deny", "ask", "rewrite"

# Tokens an attacker needs to smuggle into an argument to redirect it: addresses, URLs, IBANs, paths,
# numbers, i.e. whitespace-free tokens holding '@', '/' or a digit (found by one C-level regex call).
_TOKENS = re.compile(r"[^\s@/0-9]*[@/0-9]\S*")
_STRIP = ".,;:!?()[]{}<>\"'"
ENTITIES = {"email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
            "url": re.compile(r"(?:https?://|www\.)[^\s'\"<>]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|ly|co)/[^\s'\"<>]*"),
            "iban": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")}


_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=4096)
def _whole_word(s: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(s)}(?!\w)")


def _candidates(s: str) -> list[str]:
    out = [s] if len(s) <= 64 else []
    if len(s) > 64 or " " in s:
        out += [t.strip(_STRIP) for t in _TOKENS.findall(s)]
    return out


@dataclass(frozen=True)
class Decision:
    action: str  # allow | deny | ask | rewrite
    reason: str
    rule: str  # which part of the policy decided
    tool: str
    args: dict[str, Any]  # the arguments to run with (rewritten ones for `rewrite`)
    labels: frozenset[str] = frozenset()
    flagged: str | None = None  # the untrusted value that triggered an information-flow decision

    @property
    def runs(self) -> bool:
        return self.action in (ALLOW, REWRITE)


@dataclass
class _Compiled:
    rule: ToolRule
    deny: dict[str, re.Pattern]
    allow: dict[str, re.Pattern]
    schemas: dict[str, tuple[ArgSchema, Any]]  # RE2 patterns
    mentions: re.Pattern | None = None  # words the request must use for this tool to run


@dataclass
class _PropMatcher:
    tools: frozenset[str] | None
    conds: list[tuple[str, Any]]  # (arg, compiled glob / negated glob / comparison)


@dataclass
class GuardContext:
    """What the guard knows about where data came from in this episode."""

    trusted: str = ""  # the user's own request
    untrusted: list[str] = field(default_factory=list)
    _blob: str = ""
    _trusted_blob: str = ""  # the request and the trusted tool outputs (the user's own records, metadata)
    _words: set[str] = field(default_factory=set)  # the untrusted text's words, for short-id lookups

    def add_trusted(self, texts: list[str]) -> None:
        if texts:
            self._trusted_blob = "\x00".join([self._trusted_blob or self.trusted, *texts])

    def tainted_entities(self, value: Any, kinds: list[str]) -> str | None:
        """In free text (a message body), only the entities that redirect or exfiltrate count: the first
        address / URL / IBAN of the given kinds that came from untrusted text and not from the user."""
        if not self._blob or value is None:
            return None
        for kind in kinds:
            for m in ENTITIES[kind].finditer(str(value)):
                e = m.group(0).rstrip(_STRIP)
                if e not in self.trusted and e in self._blob:
                    return e
        return None

    def from_trusted(self, value: Any, request_only: bool = False) -> str | None:
        """The part of `value` that is NOT found in trusted text (None when all of it is); with
        `request_only`, in the user's request alone. Dates may be written in words there ("January 11th",
        "the 14th of November")."""
        blob = self.trusted if request_only else self._trusted_blob or self.trusted
        for v in value if isinstance(value, list) else [value]:
            s = f"{v:g}" if isinstance(v, float) else str(v)
            if s in blob:
                continue
            rx = date_regex(s)  # a date: in words in the request, or as ISO anywhere trusted
            if rx is None or not (s[:10] in blob or rx.search(self.trusted)):
                return s
        return None

    def add_untrusted(self, texts: list[str]) -> None:
        """Keep every reading a model could recover (homoglyphs folded, base64 and ROT13 decoded), so an
        encoded payload is tainted too. The work is done here, once per text, not per check."""
        if texts:
            for t in texts:
                views = decoded_views(t)
                self.untrusted.extend(views)
                for v in views:
                    self._words.update(_WORD.findall(v))
            self._blob = "\x00".join(self.untrusted)

    def tainted(self, value: Any) -> str | None:
        """The part of `value` that came from untrusted text and not from the user, if any."""
        if not self._blob or value is None:
            return None
        if isinstance(value, float):
            cands = {f"{value:.2f}", f"{value:g}"} if value >= 100 or value != int(value) else {f"{value:g}"}
        else:
            cands = _candidates(str(value))
        for c in cands:
            if len(c) < 2 or c in self.trusted:
                continue
            if len(c) >= 5:
                if c in self._blob:
                    return c
            elif c in self._words if _WORD.fullmatch(c) else _whole_word(c).search(self._blob):
                return c  # short ids (m3, r1) as whole words
        return None


class Guard:
    def __init__(self, policy: Policy, audit: AuditLog | None = None, clock=time.monotonic):
        self.policy = policy
        self.audit = audit
        self.audit_context: dict = {}  # extra fields for this guard's audit records (e.g. the episode)
        self.clock = clock
        self.deny_tools = frozenset(policy.deny_tools)
        self.allow_tools = frozenset(policy.allow_tools)
        self.rules = {name: self._compile(r) for name, r in policy.tools.items()}
        self.props = {name: self._compile_prop(p) for name, p in policy.propositions.items()}
        self.temporal = []
        if policy.temporal:
            from keel.spec import SpecError, compile_ltlf

            for r in policy.temporal:
                try:
                    spec = compile_ltlf(r.formula, [*policy.propositions, "approved"])
                except SpecError as e:
                    raise PolicyError(f"{policy.rule_origin(len(self.temporal))}: temporal rule {r.name!r}: {e}") \
                        from None
                self.temporal.append((r, spec.dfa))
        self.reset()

    # --- compile the policy into matchers once, so each check is a few dict lookups and regex calls --
    @staticmethod
    def _compile(r: ToolRule) -> _Compiled:
        schemas = {a: (s, compile_pattern(s.pattern) if s.pattern else None) for a, s in r.args.items()}
        mentions = re.compile(r"\b(?:" + "|".join(map(re.escape, r.request_mentions)) + ")", re.IGNORECASE) \
            if r.request_mentions else None
        return _Compiled(r, {a: glob_regex(p) for a, p in r.deny_values.items()},
                         {a: glob_regex(p) for a, p in r.allow_values.items()}, schemas, mentions)

    @staticmethod
    def _compile_prop(p) -> _PropMatcher:
        conds = []
        for arg, c in p.args.items():
            if isinstance(c, str):
                neg = c.startswith("!")
                conds.append((arg, (neg, glob_regex([c[1:] if neg else c]))))
            else:
                conds.append((arg, c))
        return _PropMatcher(frozenset(p.tool) if p.tool else None, conds)

    def reset(self, user_request: str = "") -> None:
        """Start a new episode: fresh provenance, rate counters and automaton states."""
        self.context = GuardContext(trusted=user_request)
        self.calls: dict[str, deque] = {}
        self.q = [dfa.initial for _, dfa in self.temporal]

    def observe(self, untrusted_texts: list[str]) -> None:
        """Record third-party text the agent has just read (tool output fields marked untrusted)."""
        self.context.add_untrusted(untrusted_texts)

    def observe_output(self, tool: str, output: Any) -> None:
        """Record a tool's output, split by the policy's `sources` into trusted and untrusted text."""
        trusted, untrusted = split_output(tool, output, self.policy.sources)
        self.context.add_trusted(trusted)
        self.context.add_untrusted(untrusted)

    # --- the check ------------------------------------------------------------------------------
    def labels(self, tool: str, args: dict[str, Any]) -> frozenset[str]:
        out = []
        for name, m in self.props.items():
            if m.tools is not None and tool not in m.tools:
                continue
            if all(_cond(args.get(a), c) for a, c in m.conds):
                out.append(name)
        return frozenset(out)

    def check(self, tool: str, args: dict[str, Any]) -> Decision:
        d = self._decide(tool, args)
        if d.runs:
            self._commit(d, approved=False)
        if self.audit is not None:
            self.audit.append(d, **self.audit_context)
        return d

    def resolve(self, d: Decision, approved: bool) -> Decision:
        """The human's answer to an `ask`: approved calls run (and count as `approved` in temporal rules)."""
        out = Decision(ALLOW if approved else DENY, f"human {'approved' if approved else 'declined'}: {d.reason}",
                       d.rule, d.tool, d.args, d.labels | {"approved"} if approved else d.labels, d.flagged)
        if approved:
            self._commit(out, approved=True)
        if self.audit is not None:
            self.audit.append(out, **self.audit_context)
        return out

    def _decide(self, tool: str, args: dict[str, Any]) -> Decision:
        if tool in self.deny_tools or (self.allow_tools and tool not in self.allow_tools):
            return Decision(DENY, f"tool {tool} is not allowed by the policy", "tools", tool, args)
        c = self.rules.get(tool)
        labels = self.labels(tool, args) if self.props else frozenset()
        if c is None:
            if self.policy.default != ALLOW:
                return Decision(self.policy.default, f"no rule for tool {tool}; policy default", "default", tool, args,
                                labels)
        else:
            r = c.rule
            if r.decision == DENY:
                return Decision(DENY, f"tool {tool} is denied by its rule", f"tools.{tool}", tool, args, labels)
            for a in r.required:
                if a not in args:
                    return Decision(DENY, f"missing argument {a}", f"tools.{tool}.required", tool, args, labels)
            for a, (s, rx) in c.schemas.items():
                if a in args:
                    why = _schema_violation(args[a], s, rx)
                    if why:
                        return Decision(DENY, f"argument {a}: {why}", f"tools.{tool}.args.{a}", tool, args, labels)
            for a, rx in c.deny.items():
                if a in args and rx.match(str(args[a])):
                    return Decision(DENY, f"argument {a}={args[a]!r} is on the deny list",
                                    f"tools.{tool}.deny_values", tool, args, labels)
            if r.rate_limit is not None:
                hist = self.calls.get(tool)
                if hist:
                    rl = r.rate_limit
                    n = len(hist) if rl.window_s is None else sum(1 for t in hist if t > self.clock() - rl.window_s)
                    if n >= rl.max_calls:
                        per = "this episode" if rl.window_s is None else f"{rl.window_s:g} s"
                        return Decision(DENY, f"rate limit: {tool} ran {n} times in {per} (max {rl.max_calls})",
                                        f"tools.{tool}.rate_limit", tool, args, labels)
        for i, (rule, dfa) in enumerate(self.temporal):
            if dfa.is_dead(dfa.step(self.q[i], labels)):
                if rule.decision == ASK and not dfa.is_dead(dfa.step(self.q[i], labels | {"approved"})):
                    return Decision(ASK, f"temporal rule {rule.name} needs human approval for this call",
                                    f"temporal.{rule.name}", tool, args, labels)
                return Decision(DENY, f"temporal rule {rule.name} would be violated ({rule.formula})",
                                f"temporal.{rule.name}", tool, args, labels)
        if c is None:
            return Decision(ALLOW, "no rule for this tool; policy default", "default", tool, args, labels)
        r = c.rule
        if c.mentions is not None and not c.mentions.search(self.context.trusted):
            return Decision(r.on_untrusted, f"tool {tool}: the user's request does not ask for it (none of "
                            f"{r.request_mentions})", f"tools.{tool}.request_mentions", tool, args, labels)
        for a in r.untrusted_args:
            if a in args:
                bad = self.context.tainted(args[a])
                if bad is not None:
                    return Decision(r.on_untrusted, f"argument {a} carries {bad!r} from untrusted tool output",
                                    f"tools.{tool}.untrusted_args", tool, args, labels, flagged=bad)
        for a, kinds in r.untrusted_entities.items():
            if a in args:
                bad = self.context.tainted_entities(args[a], kinds)
                if bad is not None:
                    return Decision(r.on_untrusted, f"argument {a} carries {bad!r} from untrusted tool output",
                                    f"tools.{tool}.untrusted_entities", tool, args, labels, flagged=bad)
        for a in r.request_args:
            if a in args and args[a] is not None:
                bad = self.context.from_trusted(args[a], request_only=True)
                if bad is not None:
                    return Decision(r.on_untrusted, f"argument {a}: {bad!r} is not in the user's request",
                                    f"tools.{tool}.request_args", tool, args, labels, flagged=bad)
        for a in r.trusted_args:
            if a in args and args[a] is not None:
                bad = self.context.from_trusted(args[a])
                if bad is not None:
                    return Decision(r.on_untrusted, f"argument {a}: {bad!r} is not in the user's request or a "
                                    "trusted output", f"tools.{tool}.trusted_args", tool, args, labels, flagged=bad)
        for a, rx in c.allow.items():
            if a in args and not rx.match(str(args[a])):
                return Decision(ASK, f"argument {a}={args[a]!r} is not on the allow list",
                                f"tools.{tool}.allow_values", tool, args, labels)
        if r.rewrite:
            new = dict(args)
            for a, clamp in r.rewrite.items():
                v = new.get(a)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    if clamp.max is not None and v > clamp.max:
                        new[a] = clamp.max
                    if clamp.min is not None and v < clamp.min:
                        new[a] = clamp.min
            if new != args:
                return Decision(REWRITE, f"clamped {[a for a in new if new[a] != args.get(a)]} to the policy's range",
                                f"tools.{tool}.rewrite", tool, new, labels)
        return Decision(r.decision, f"tool {tool}: rule decision", f"tools.{tool}", tool, args, labels)

    def _commit(self, d: Decision, approved: bool) -> None:
        r = self.policy.tools.get(d.tool)
        if r is not None and r.rate_limit is not None:
            self.calls.setdefault(d.tool, deque()).append(self.clock())
        labels = d.labels | {"approved"} if approved else d.labels
        for i, (_, dfa) in enumerate(self.temporal):
            self.q[i] = dfa.step(self.q[i], labels)


def _cond(value: Any, c: Any) -> bool:
    if isinstance(c, tuple):  # (negated, glob regex)
        neg, rx = c
        hit = value is not None and rx.match(str(value)) is not None
        return hit != neg
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
    return ((c.gt is None or value > c.gt) and (c.ge is None or value >= c.ge)
            and (c.lt is None or value < c.lt) and (c.le is None or value <= c.le))


def _schema_violation(v: Any, s: ArgSchema, rx: Any) -> str | None:
    if s.type == "string" and not isinstance(v, str):
        return f"must be a string, got {type(v).__name__}"
    if s.type in ("number", "integer"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            return f"must be a {s.type}, got {v!r}"
        if s.type == "integer" and not float(v).is_integer():
            return f"must be an integer, got {v!r}"
    if s.type == "boolean" and not isinstance(v, bool):
        return f"must be true or false, got {v!r}"
    if s.enum is not None and v not in s.enum:
        return f"{v!r} is not one of {s.enum}"
    if rx is not None and not rx.fullmatch(str(v)):
        return f"{v!r} does not match {s.pattern}"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if s.minimum is not None and v < s.minimum:
            return f"{v} is below the minimum {s.minimum:g}"
        if s.maximum is not None and v > s.maximum:
            return f"{v} is above the maximum {s.maximum:g}"
    if s.max_length is not None and isinstance(v, str) and len(v) > s.max_length:
        return f"longer than {s.max_length} characters"
    return None
