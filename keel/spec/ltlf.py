"""LTLf formulas: the syntax tree, a hand-written parser with positioned errors, and a direct evaluator.

LTLf is LTL read over *finite* traces (De Giacomo & Vardi, "Linear Temporal Logic and Linear Dynamic
Logic on Finite Traces", IJCAI 2013). A trace is a non-empty list of label sets; position 0 is the first
step. `X f` (strong next) needs a next step to exist; `WX f` (weak next) is true at the last step.

Grammar, loosest binding first (binary temporal operators bind tighter than `&`/`|`, as in Spot):

    formula  := equiv
    equiv    := implies ('<->' implies)*
    implies  := or ('->' implies)?                      right-associative
    or       := and ('|' and)*
    and      := binary ('&' binary)*
    binary   := unary (('U' | 'R' | 'W' | 'S') binary)?  right-associative
    unary    := ('!' | 'G' | 'F' | 'X' | 'WX' | 'Y' | 'O' | 'H') unary | atom
    atom     := proposition | 'true' | 'false' | '(' formula ')'

Propositions are lowercase identifiers `[a-z][a-z0-9_]*`. Alternative spellings: `~` for `!`, `&&`,
`||`, `=>`, `<=>`. Operators may touch their operand: `GFa` reads as `G(F(a))`.

Past operators may be mixed in (Lichtenstein, Pnueli, Zuck, "The glory of the past", 1985): `Y f`
(f held at the previous step; false at the first), `O f` (once: at some step so far, this one
included), `H f` (historically: at every step so far), `f S g` (since: g held at some step so far and f
at every step after it). "No transfer unless a confirm happened before" is `G(transfer -> O confirm)`;
in pure future LTLf the same rule is `!transfer W confirm` (a confirm at the same step counts; for
"strictly before" write `G(transfer -> Y O confirm)` or `!transfer W (confirm & !transfer)`).

`holds(f, trace)` evaluates a formula directly by its definition. It is the reference the compiled
automata are tested against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from keel.errors import KeelError


class SpecError(KeelError):
    """A formula or task spec that cannot be read, or that names a proposition the environment lacks."""


# ---------------------------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Formula:
    def __str__(self) -> str:  # fully parenthesised, re-parseable
        return to_string(self)


@dataclass(frozen=True)
class Const(Formula):
    value: bool


@dataclass(frozen=True)
class Prop(Formula):
    name: str


@dataclass(frozen=True)
class Unary(Formula):
    op: str  # "!", "X", "WX", "G", "F", and past "Y", "O", "H"
    arg: Formula


@dataclass(frozen=True)
class Binary(Formula):
    op: str  # "&", "|", "->", "<->", "U", "R", "W", and past "S"
    left: Formula
    right: Formula


UNARY_OPS = ("!", "X", "WX", "G", "F", "Y", "O", "H")
BINARY_OPS = ("&", "|", "->", "<->", "U", "R", "W", "S")
PAST_OPS = frozenset({"Y", "O", "H", "S"})


def to_string(f: Formula) -> str:
    if isinstance(f, Const):
        return "true" if f.value else "false"
    if isinstance(f, Prop):
        return f.name
    if isinstance(f, Unary):
        return f"{f.op}({to_string(f.arg)})"
    if isinstance(f, Binary):
        return f"({to_string(f.left)} {f.op} {to_string(f.right)})"
    raise TypeError(f"not a formula: {f!r}")


def propositions(f: Formula) -> frozenset[str]:
    if isinstance(f, Prop):
        return frozenset([f.name])
    if isinstance(f, Unary):
        return propositions(f.arg)
    if isinstance(f, Binary):
        return propositions(f.left) | propositions(f.right)
    return frozenset()


def has_past(f: Formula) -> bool:
    if isinstance(f, Unary):
        return f.op in PAST_OPS or has_past(f.arg)
    if isinstance(f, Binary):
        return f.op in PAST_OPS or has_past(f.left) or has_past(f.right)
    return False


def rename(f: Formula, mapping: dict[str, str]) -> Formula:
    if isinstance(f, Prop):
        return Prop(mapping[f.name])
    if isinstance(f, Unary):
        return Unary(f.op, rename(f.arg, mapping))
    if isinstance(f, Binary):
        return Binary(f.op, rename(f.left, mapping), rename(f.right, mapping))
    return f


# ---------------------------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"\s*(?:(?P<op><->|<=>|->|=>|&&|\|\||[!~&|()])|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_OP_LETTERS = re.compile(r"(WX|[GFXURWYOHS])")
_CANON = {"~": "!", "&&": "&", "||": "|", "=>": "->", "<=>": "<->"}


@dataclass(frozen=True)
class Token:
    kind: str  # "op", "name", "const", "end"
    text: str
    pos: int  # 0-based offset into the source


def _error(text: str, pos: int, message: str) -> SpecError:
    line = text.replace("\n", " ")
    return SpecError(f"{message} at column {pos + 1}:\n  {line}\n  {' ' * pos}^")


def _split_word(text: str, word: str, pos: int) -> list[Token]:
    """A word is a proposition, `true`/`false`, or operator letters possibly glued to a name (`GFa`)."""
    if word in ("true", "false"):
        return [Token("const", word, pos)]
    if _NAME.fullmatch(word):
        return [Token("name", word, pos)]
    tokens: list[Token] = []
    i = 0
    while i < len(word) and word[i].isupper():
        m = _OP_LETTERS.match(word, i)
        if m is None:
            raise _error(
                text, pos + i,
                f"unknown operator {word[i]!r} (operators: G F X WX U R W Y O H S; propositions are lowercase)",
            )
        tokens.append(Token("op", m.group(1), pos + i))
        i = m.end()
    rest = word[i:]
    if rest:
        if not _NAME.fullmatch(rest):
            raise _error(text, pos + i, f"bad proposition name {rest!r} (use lowercase [a-z][a-z0-9_]*)")
        tokens.append(Token("const" if rest in ("true", "false") else "name", rest, pos + i))
    return tokens


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        if m.group("op"):
            tokens.append(Token("op", _CANON.get(m.group("op"), m.group("op")), m.start("op")))
        elif m.group("word"):
            tokens.extend(_split_word(text, m.group("word"), m.start("word")))
        else:
            raise _error(text, m.start("bad"), f"unexpected character {m.group('bad')!r}")
        pos = m.end()
    tokens.append(Token("end", "", len(text.rstrip()) if text.strip() else 0))
    return tokens


# ---------------------------------------------------------------------------------------------- parser

_ATOM_EXPECTED = "expected a proposition, true, false, '(' or a unary operator (! G F X WX Y O H)"


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def fail(self, message: str) -> SpecError:
        tok = self.peek()
        found = "the end of the formula" if tok.kind == "end" else repr(tok.text)
        return _error(self.text, tok.pos, f"{message}, found {found}")

    def parse(self) -> Formula:
        if self.peek().kind == "end":
            raise SpecError("empty formula: write e.g. `F goal & G !hazard`")
        f = self.equiv()
        if self.peek().kind != "end":
            raise self.fail("expected a binary operator (& | -> <-> U R W S) or the end of the formula")
        return f

    def equiv(self) -> Formula:
        f = self.implies()
        while self.at_op("<->"):
            self.take()
            f = Binary("<->", f, self.implies())
        return f

    def implies(self) -> Formula:
        f = self.disj()
        if self.at_op("->"):
            self.take()
            return Binary("->", f, self.implies())
        return f

    def disj(self) -> Formula:
        f = self.conj()
        while self.at_op("|"):
            self.take()
            f = Binary("|", f, self.conj())
        return f

    def conj(self) -> Formula:
        f = self.binary()
        while self.at_op("&"):
            self.take()
            f = Binary("&", f, self.binary())
        return f

    def binary(self) -> Formula:
        f = self.unary()
        if self.at_op("U", "R", "W", "S"):
            op = self.take().text
            return Binary(op, f, self.binary())
        return f

    def unary(self) -> Formula:
        if self.at_op(*UNARY_OPS):
            op = self.take().text
            return Unary(op, self.unary())
        return self.atom()

    def atom(self) -> Formula:
        tok = self.peek()
        if tok.kind == "name":
            self.take()
            return Prop(tok.text)
        if tok.kind == "const":
            self.take()
            return Const(tok.text == "true")
        if self.at_op("("):
            self.take()
            f = self.equiv()
            if not self.at_op(")"):
                raise self.fail("expected ')' to close the '(' at column " f"{tok.pos + 1}")
            self.take()
            return f
        raise self.fail(_ATOM_EXPECTED)


MAX_DEPTH = 100  # operators nested in one formula; deeper ones overflow Python's stack downstream
MAX_CHARS = 20_000


def check_depth(f: Formula, what: str = "formula") -> None:
    """Refuse a syntax tree nested deeper than MAX_DEPTH (counted without recursion): every later pass
    (printing, renaming, compiling to an automaton) recurses once per level."""
    stack = [(f, 1)]
    while stack:
        g, d = stack.pop()
        if d > MAX_DEPTH:
            raise SpecError(f"{what} is nested more than {MAX_DEPTH} operators deep; split it into smaller "
                            "rules or name its parts")
        if isinstance(g, Unary):
            stack.append((g.arg, d + 1))
        elif isinstance(g, Binary):
            stack += [(g.left, d + 1), (g.right, d + 1)]


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> Formula:
    if len(text) > MAX_CHARS:
        raise SpecError(f"formula has {len(text):,} characters, over the limit of {MAX_CHARS:,}")
    try:
        f = _Parser(text).parse()
    except RecursionError:  # the recursive-descent parser itself: ~8 frames per '(' level
        raise SpecError(f"formula is nested more than {MAX_DEPTH} operators deep; split it into smaller "
                        "rules or name its parts") from None
    check_depth(f)
    return f


def parse(text: str, propositions_defined: Iterable[str] | None = None) -> Formula:
    """Parse an LTLf formula; with `propositions_defined`, refuse any proposition not in it."""
    if not isinstance(text, str):
        raise SpecError(f"a formula must be a string, got {type(text).__name__}")
    f = _parse_cached(text)
    if propositions_defined is not None:
        check_propositions(text, f, propositions_defined)
    return f


def check_propositions(text: str, f: Formula, defined: Iterable[str]) -> None:
    if isinstance(defined, str):
        raise SpecError(f"propositions must be a collection of names, got the string {defined!r}")
    defined = frozenset(defined)
    unknown = sorted(propositions(f) - defined)
    if unknown:
        m = re.search(rf"(?<![A-Za-z0-9_]){re.escape(unknown[0])}(?![A-Za-z0-9_])", text)
        where = f" (column {m.start() + 1})" if m else ""
        listed = ", ".join(sorted(defined)) or "(none)"
        raise SpecError(
            f"unknown proposition{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{where} in "
            f"{text!r}; the environment defines: {listed}"
        )


# ---------------------------------------------------------------------------------------------- semantics


def holds(f: Formula, trace: Sequence[frozenset[str]] | Sequence[set[str]], i: int = 0) -> bool:
    """Does the finite, non-empty `trace` satisfy `f` at position `i`? (the textbook LTLf definition)"""
    n = len(trace)
    if isinstance(f, Const):
        return f.value
    if isinstance(f, Prop):
        return f.name in trace[i]
    if isinstance(f, Unary):
        if f.op == "!":
            return not holds(f.arg, trace, i)
        if f.op == "X":
            return i + 1 < n and holds(f.arg, trace, i + 1)
        if f.op == "WX":
            return i + 1 >= n or holds(f.arg, trace, i + 1)
        if f.op == "G":
            return all(holds(f.arg, trace, j) for j in range(i, n))
        if f.op == "F":
            return any(holds(f.arg, trace, j) for j in range(i, n))
        if f.op == "Y":
            return i > 0 and holds(f.arg, trace, i - 1)
        if f.op == "O":
            return any(holds(f.arg, trace, j) for j in range(i + 1))
        if f.op == "H":
            return all(holds(f.arg, trace, j) for j in range(i + 1))
    if isinstance(f, Binary):
        a, b = f.left, f.right
        if f.op == "&":
            return holds(a, trace, i) and holds(b, trace, i)
        if f.op == "|":
            return holds(a, trace, i) or holds(b, trace, i)
        if f.op == "->":
            return not holds(a, trace, i) or holds(b, trace, i)
        if f.op == "<->":
            return holds(a, trace, i) == holds(b, trace, i)
        if f.op in ("U", "W"):
            for j in range(i, n):
                if holds(b, trace, j):
                    return True
                if not holds(a, trace, j):
                    return False
            return f.op == "W"  # b never came: U fails, W holds since a held throughout
        if f.op == "S":  # b at some step j <= i, a at every step after j up to i
            for j in range(i, -1, -1):
                if holds(b, trace, j):
                    return True
                if not holds(a, trace, j):
                    return False
            return False
        if f.op == "R":  # b holds up to and including the first a, or for ever
            for j in range(i, n):
                if not holds(b, trace, j):
                    return False
                if holds(a, trace, j):
                    return True
            return True
    raise TypeError(f"not a formula: {f!r}")
