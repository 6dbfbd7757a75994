"""Past-time operators for ltlf2dfa: our syntax tree -> ltlf2dfa formula objects, with MONA encodings
for Y (yesterday), O (once), H (historically) and S (since).

ltlf2dfa encodes an LTLf formula in WS1S (monadic second-order logic over finite words): the trace is
the set `$` of positions 0..max($), each proposition P the set of positions where it holds, and a
subformula is evaluated at a first-order position variable. Future operators quantify over positions
after the current one; past operators, the same way, over positions before it (Zhu, Pu, Vardi,
"First-order vs. second-order encodings for LTLf-to-automata translation", TAMC 2019, use the same
first-order encoding). The past and future may be mixed freely: MONA builds one minimal DFA either way.
"""

from __future__ import annotations

from ltlf2dfa.helpers import new_var
from ltlf2dfa.ltlf import (
    LTLfAlways,
    LTLfAnd,
    LTLfAtomic,
    LTLfBinaryOperator,
    LTLfEquivalence,
    LTLfEventually,
    LTLfFalse,
    LTLfImplies,
    LTLfNext,
    LTLfNot,
    LTLfOr,
    LTLfRelease,
    LTLfTrue,
    LTLfUnaryOperator,
    LTLfUntil,
    LTLfWeakNext,
)

from keel.spec.ltlf import Binary, Const, Formula, Prop, Unary


class _NotPast(LTLfNot):
    """The negation of a past formula, kept as it is by ltlf2dfa's negation normal form."""

    def to_nnf(self):
        return self

    def negate(self):
        return self.f


class _Past:
    def negate(self):
        return _NotPast(self)

    def to_nnf(self):
        return self


class Yesterday(_Past, LTLfUnaryOperator):
    operator_symbol = "Y"

    def to_mona(self, v="0") -> str:
        w = new_var(v)
        return f"(ex1 {w}: {w} in $ & {w}+1={v} & {self.f.to_mona(w)})"


class Once(_Past, LTLfUnaryOperator):
    operator_symbol = "O"

    def to_mona(self, v="0") -> str:
        w = new_var(v)
        return f"(ex1 {w}: {w} in $ & 0<={w}&{w}<={v} & {self.f.to_mona(w)})"


class Historically(_Past, LTLfUnaryOperator):
    operator_symbol = "H"

    def to_mona(self, v="0") -> str:
        w = new_var(v)
        return f"(all1 {w}: {w} in $ & 0<={w}&{w}<={v} => {self.f.to_mona(w)})"


class Since(_Past, LTLfBinaryOperator):
    operator_symbol = "S"

    def to_mona(self, v="0") -> str:
        w = new_var(v)
        u = new_var(w)
        a, b = self.formulas
        return (
            f"(ex1 {w}: {w} in $ & 0<={w}&{w}<={v} & {b.to_mona(w)} & "
            f"(all1 {u}: {u} in $ & {w}<{u}&{u}<={v} => {a.to_mona(u)}))"
        )


_UNARY = {"!": LTLfNot, "X": LTLfNext, "WX": LTLfWeakNext, "G": LTLfAlways, "F": LTLfEventually,
          "Y": Yesterday, "O": Once, "H": Historically}
_BINARY = {"&": LTLfAnd, "|": LTLfOr, "->": LTLfImplies, "<->": LTLfEquivalence, "U": LTLfUntil,
           "R": LTLfRelease, "S": Since}


def to_ltlf2dfa(f: Formula):
    """Our syntax tree as ltlf2dfa formula objects (weak until spelled out as (a U b) | G a)."""
    if isinstance(f, Const):
        return LTLfTrue() if f.value else LTLfFalse()
    if isinstance(f, Prop):
        return LTLfAtomic(f.name)
    if isinstance(f, Unary):
        return _UNARY[f.op](to_ltlf2dfa(f.arg))
    if isinstance(f, Binary):
        a, b = to_ltlf2dfa(f.left), to_ltlf2dfa(f.right)
        if f.op == "W":
            return LTLfOr([LTLfUntil([a, b]), LTLfAlways(a)])
        return _BINARY[f.op]([a, b])
    raise TypeError(f"not a formula: {f!r}")
