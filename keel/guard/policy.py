"""Guard policies as code: a YAML file, validated against a schema, refused at load with the line of the error.

A policy says, per tool, which argument values are acceptable (a JSON-schema subset and allow/deny
globs), which arguments must not carry data from untrusted tool outputs (information flow), how often the
tool may run, and how to rewrite its arguments; plus temporal rules, LTLf formulas over propositions that
name kinds of calls, compiled by `keel.spec`. The design follows symbolic guardrails over tool calls
(arXiv 2604.15579), Progent (Shi et al. 2025, privilege policies for agents) and AgentSpec (Wang et al. 2025,
rules over triggers, predicates and enforcement).

    version: 1
    default: allow                  # tools without a rule: allow | deny | ask
    deny_tools: [wipe_disk]
    tools:
      send_money:
        args: {amount: {type: number, minimum: 0, maximum: 5000}}
        deny_values: {recipient: ["XK*"]}
        untrusted_args: [recipient, amount]   # tainted values -> on_untrusted (ask by default)
        untrusted_entities: {subject: [url, email]}  # in free text, only links/addresses from untrusted text
        rate_limit: {max_calls: 3}            # per episode; add window_s for a time window
        rewrite: {amount: {max: 2000}}        # clamp instead of refusing
      reserve_hotel:
        trusted_args: [start_day]             # must come from the user or a trusted output, else on_untrusted
    sources:                                  # which tool output is third-party text (default: all of it)
      trusted_tools: [get_iban]               # the user's own records
      untrusted_fields: [body, description]   # in structured output only these keys are third-party text
    propositions:
      large_transfer: {tool: send_money, args: {amount: {gt: 1000}}}
    temporal:
      - {name: confirm_large, formula: "G(large_transfer -> approved)", decision: ask}
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

import re2
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from keel.errors import KeelError


class PolicyError(KeelError):
    """A policy file that cannot be used; the message names the file, the line and the fix."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArgSchema(_M):
    type: Literal["string", "number", "integer", "boolean"] | None = None
    enum: list[Any] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = Field(None, alias="maxLength")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            compile_pattern(v)
        return v


_RE2 = re2.Options()
_RE2.log_errors = False


def compile_pattern(pattern: str):
    """Argument patterns run on RE2 (linear time, no backtracking), so a pattern such as `(a+)+$` cannot make
    a guard check hang on a hostile argument; RE2 has no backreferences or lookaround, which is the price."""
    try:
        return re2.compile(pattern, options=_RE2)
    except re2.error as e:
        msg = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(f"not a valid regular expression for RE2 (linear-time; no backreferences or "
                         f"lookaround): {msg}") from None


class RateLimit(_M):
    max_calls: int = Field(gt=0)
    window_s: float | None = Field(None, gt=0)  # None: per episode


class Clamp(_M):
    min: float | None = None
    max: float | None = None


class ToolRule(_M):
    decision: Literal["allow", "deny", "ask"] = "allow"
    args: dict[str, ArgSchema] = {}
    required: list[str] = []
    allow_values: dict[str, list[str]] = {}  # globs; a value matching none -> ask
    deny_values: dict[str, list[str]] = {}  # globs; a value matching one -> deny
    untrusted_args: list[str] = []
    trusted_args: list[str] = []  # values must appear in trusted text (the request, trusted outputs)
    request_args: list[str] = []  # values must appear in the user's request itself
    request_mentions: list[str] = []  # the tool runs only if the request uses one of these words (prefixes)
    untrusted_entities: dict[str, list[Literal["email", "url", "iban"]]] = {}  # free text: only these count
    on_untrusted: Literal["deny", "ask"] = "ask"
    rate_limit: RateLimit | None = None
    rewrite: dict[str, Clamp] = {}


class Comparison(_M):
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None


class Proposition(_M):
    """True on a call to one of `tool` whose arguments all match (`"!glob"` negates a glob)."""

    tool: list[str] | str | None = None
    args: dict[str, str | Comparison] = {}

    @field_validator("tool")
    @classmethod
    def _listify(cls, v):
        return [v] if isinstance(v, str) else v


class TemporalRule(_M):
    name: str
    formula: str
    decision: Literal["deny", "ask"] = "deny"
    description: str = ""


class Sources(_M):
    """Where third-party text enters: information-flow sources. By default every tool output is untrusted.
    `trusted_tools` return the user's own records; with `untrusted_fields`, a structured output (records of
    fields) is untrusted only under those keys, its other fields (ids, senders, IBANs) being trusted metadata."""

    trusted_tools: list[str] = []
    untrusted_fields: list[str] | None = None


PROP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
BUILTIN_PROPS = {"approved"}  # true on a call a human approved after an `ask`


class Policy(_M):
    version: Literal[1] = 1
    name: str = "policy"
    default: Literal["allow", "deny", "ask"] = "allow"
    allow_tools: list[str] = []
    deny_tools: list[str] = []
    tools: dict[str, ToolRule] = {}
    sources: Sources = Sources()
    propositions: dict[str, Proposition] = {}
    temporal: list[TemporalRule] = []
    _where: dict[int, str] = PrivateAttr(default_factory=dict)  # temporal rule -> "file, line N"

    def rule_origin(self, i: int) -> str:
        """Where temporal rule `i` was written ("FILE, line N"), for error messages."""
        return self._where.get(i, self.name)

    @model_validator(mode="after")
    def _names(self) -> Policy:
        for p in self.propositions:
            if not PROP_NAME.match(p) or p in BUILTIN_PROPS:
                raise ValueError(f"proposition name {p!r} must match [a-z][a-z0-9_]* and not be 'approved'")
        return self

    def source_text(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True, by_alias=True), sort_keys=False)


# --- loading with line numbers --------------------------------------------------------------------
def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every key path in the YAML document to its 1-based line, so schema errors can name it."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[(*path, k.value)] = k.start_mark.line + 1
            _line_index(v, (*path, k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_index(v, (*path, i), out)
    return out


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(x for x in loc if not (isinstance(x, str) and x in ("str", "list[str]", "Comparison")))
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


MAX_NODES = 100_000  # a policy is a few hundred YAML nodes; an alias bomb expands to billions
MAX_DEPTH = 64


def _compose(text: str, origin: str) -> yaml.Node | None:
    """Compose the YAML once, refusing what a policy never needs and an attacker would send: aliases that
    expand past MAX_NODES (a "billion laughs" bomb) and nesting deeper than MAX_DEPTH."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except RecursionError:
        raise PolicyError(f"{origin}: nested deeper than the YAML parser allows; a policy is at most "
                          f"{MAX_DEPTH} levels deep") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{origin}{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if node is None:
        return None
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 1, False)]
    while stack:  # iterative post-order: expanded size per distinct node, without recursion
        n, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise PolicyError(f"{origin}, line {n.start_mark.line + 1}: nested more than {MAX_DEPTH} levels "
                              "deep; a policy never needs that")
        kids = [x for kv in n.value for x in kv] if isinstance(n, yaml.MappingNode) else \
            n.value if isinstance(n, yaml.SequenceNode) else []
        if done:
            sizes[id(n)] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[id(n)] > MAX_NODES:
                raise PolicyError(f"{origin}, line {n.start_mark.line + 1}: YAML aliases expand to more than "
                                  f"{MAX_NODES:,} nodes (an alias bomb); write the policy without anchors")
        elif id(n) not in sizes:
            stack.append((n, depth, True))
            stack.extend((k, depth + 1, False) for k in kids if id(k) not in sizes)
    return node


def parse_policy(text: str, origin: str = "policy") -> Policy:
    node = _compose(text, origin)
    try:
        data = yaml.SafeLoader("").construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{origin}{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{origin}: a policy must be a YAML mapping (version:, tools:, ...)")
    lines = _line_index(node) if node is not None else {}
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            line = _line_for(lines, tuple(err["loc"]))
            field = ".".join(str(x) for x in err["loc"]) or "(top level)"
            what = "unknown field (remove it or check its spelling)" if err["type"] == "extra_forbidden" \
                else err["msg"]
            msgs.append(f"{origin}, line {line}: {field}: {what}")
        raise PolicyError("invalid policy\n  " + "\n  ".join(msgs)) from None
    # Cross-references are checked here too, so that a bad policy never reaches a running agent.
    for i, rule in enumerate(policy.temporal):
        line = lines.get(("temporal", i, "formula")) or lines.get(("temporal", i))
        policy._where[i] = f"{origin}, line {line}"
        _check_formula(rule, policy, f"{origin}, line {line}")
    return policy


def _check_formula(rule: TemporalRule, policy: Policy, where: str) -> None:
    words = set(re.findall(r"\b[a-z][a-z0-9_]*\b", rule.formula)) - {"true", "false", "last", "end"}
    unknown = sorted(w for w in words if w not in policy.propositions and w not in BUILTIN_PROPS
                     and w not in {"X", "G", "F", "U", "R", "W", "N"})
    if unknown:
        raise PolicyError(f"{where}: temporal rule {rule.name!r} uses undefined proposition(s) {unknown}; "
                          f"define them under propositions: (defined: {sorted(policy.propositions)})")


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"policy file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(f"{path}: not UTF-8 text (byte {e.start}); a policy is a YAML text file") from None
    return parse_policy(text, str(path))


def builtin_policy(name: str = "toolworld") -> Policy:
    """A policy shipped with Keel, under keel/guard/policies/NAME.yaml."""
    from importlib import resources

    f = resources.files("keel.guard") / "policies" / f"{name}.yaml"
    if not f.is_file():
        raise PolicyError(f"no built-in policy {name!r}")
    return parse_policy(f.read_text(), f"builtin policy {name}")


def glob_regex(patterns: list[str]) -> re.Pattern:
    """One compiled regex for a list of globs (matching is then one C-level call per value)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or r"(?!x)x")
