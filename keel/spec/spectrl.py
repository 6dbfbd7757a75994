"""SPECTRL task specs and their DiRL abstract graphs.

SPECTRL: Jothimurugan, Alur, Bastani, "A composable specification language for reinforcement learning
tasks", NeurIPS 2019. DiRL: Jothimurugan, Bansal, Bastani, Alur, "Compositional reinforcement learning
from logical specifications", NeurIPS 2021 (Section 3, "abstract graphs").

Task language, loosest binding first:

    task    := seq ('or' seq)*                choice: either sub-task
    seq     := guarded (';' guarded)*         sequence: one sub-task after the other
    guarded := unit ('ensuring' pred)*        the predicate holds at every step of the sub-task
    unit    := 'achieve' pred | '(' task ')'
    pred    := conj ('|' conj)*
    conj    := neg ('&' neg)*
    neg     := '!' neg | NAME | 'true' | 'false' | '(' pred ')'

Predicates are the environment's region names with quantitative semantics: `env.predicate_value(name,
state)` is > 0 exactly inside the region and larger deeper inside. `p & q` is min, `p | q` is max, `!p`
flips the sign (so a state on a region's border satisfies neither p nor !p).

The abstract graph has one vertex per subgoal region (the initial vertex stands for the initial states)
and one edge per reach-while-safe sub-task: an edge policy starts in its source region and must reach
`edge.reach` (the target's region) while `edge.safe` holds throughout. A path from `initial` to a vertex
in `final` is one way to do the whole task; DiRL learns one policy per edge and picks the path with
Dijkstra over -log(estimated edge success).

    achieve b            u0 --(reach b, safe true)--> u1,   final {u1}
    T ensuring q         T's graph; every region and every safety predicate conjoined with q
    T1; T2               a copy of T2's graph hangs off each final vertex of T1 (its initial vertex
                         merged into that final vertex, regions conjoined)
    T1 or T2             T1's and T2's graphs with their initial vertices merged
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.spec.ltlf import SpecError

# ---------------------------------------------------------------------------------------------- predicates


@dataclass(frozen=True)
class Predicate:
    """A quantitative predicate over env states: value(env, state) > 0 iff it holds."""

    def value(self, env: Any, state: Any) -> float:
        raise NotImplementedError

    def holds(self, env: Any, state: Any) -> bool:
        return bool(self.value(env, state) > 0)

    def names(self) -> frozenset[str]:
        return frozenset()

    def __and__(self, other: Predicate) -> Predicate:
        return conj(self, other)

    def __or__(self, other: Predicate) -> Predicate:
        return disj(self, other)

    def __invert__(self) -> Predicate:
        return Not(self)


@dataclass(frozen=True)
class Const(Predicate):
    truth: bool

    def value(self, env: Any, state: Any) -> float:
        return math.inf if self.truth else -math.inf

    def __str__(self) -> str:
        return "true" if self.truth else "false"


@dataclass(frozen=True)
class Region(Predicate):
    name: str

    def value(self, env: Any, state: Any) -> float:
        return env.predicate_value(self.name, state)

    def names(self) -> frozenset[str]:
        return frozenset([self.name])

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Not(Predicate):
    arg: Predicate

    def value(self, env: Any, state: Any) -> float:
        return -self.arg.value(env, state)

    def names(self) -> frozenset[str]:
        return self.arg.names()

    def __str__(self) -> str:
        inner = str(self.arg)
        return f"!{inner}" if isinstance(self.arg, (Region, Const, Not)) else f"!({inner})"


@dataclass(frozen=True)
class And(Predicate):
    args: tuple[Predicate, ...]

    def value(self, env: Any, state: Any) -> float:
        out = self.args[0].value(env, state)
        for p in self.args[1:]:
            out = np.minimum(out, p.value(env, state))
        return out

    def names(self) -> frozenset[str]:
        return frozenset().union(*(p.names() for p in self.args))

    def __str__(self) -> str:
        return " & ".join(f"({p})" if isinstance(p, Or) else str(p) for p in self.args)


@dataclass(frozen=True)
class Or(Predicate):
    args: tuple[Predicate, ...]

    def value(self, env: Any, state: Any) -> float:
        out = self.args[0].value(env, state)
        for p in self.args[1:]:
            out = np.maximum(out, p.value(env, state))
        return out

    def names(self) -> frozenset[str]:
        return frozenset().union(*(p.names() for p in self.args))

    def __str__(self) -> str:
        return " | ".join(str(p) for p in self.args)


TRUE, FALSE = Const(True), Const(False)


def conj(*preds: Predicate) -> Predicate:
    """Conjunction, flattened, without `true` and repeats."""
    items: list[Predicate] = []
    for p in preds:
        for q in p.args if isinstance(p, And) else (p,):
            if q == FALSE:
                return FALSE
            if q != TRUE and q not in items:
                items.append(q)
    return TRUE if not items else items[0] if len(items) == 1 else And(tuple(items))


def disj(*preds: Predicate) -> Predicate:
    items: list[Predicate] = []
    for p in preds:
        for q in p.args if isinstance(p, Or) else (p,):
            if q == TRUE:
                return TRUE
            if q != FALSE and q not in items:
                items.append(q)
    return FALSE if not items else items[0] if len(items) == 1 else Or(tuple(items))


# ---------------------------------------------------------------------------------------------- task syntax


@dataclass(frozen=True)
class Achieve:
    pred: Predicate


@dataclass(frozen=True)
class Ensuring:
    task: Any
    pred: Predicate


@dataclass(frozen=True)
class Seq:
    first: Any
    second: Any


@dataclass(frozen=True)
class Choice:
    left: Any
    right: Any


Task = Achieve | Ensuring | Seq | Choice

_TOKEN = re.compile(r"\s*(?:(?P<op>[;()|&!~])|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))")
_KEYWORDS = {"achieve", "ensuring", "or"}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                break
            if m.group("bad"):
                raise self._error(m.start("bad"), f"unexpected character {m.group('bad')!r}")
            kind = "op" if m.group("op") else "word"
            tok = m.group(kind)
            self.tokens.append((kind, "!" if tok == "~" else tok, m.start(kind)))
            pos = m.end()
        self.tokens.append(("end", "", len(text.rstrip())))
        self.i = 0

    def _error(self, pos: int, message: str) -> SpecError:
        return SpecError(f"{message} at column {pos + 1}:\n  {self.text}\n  {' ' * pos}^")

    def fail(self, expected: str) -> SpecError:
        kind, tok, pos = self.tokens[self.i]
        found = "the end of the task" if kind == "end" else repr(tok)
        return self._error(pos, f"expected {expected}, found {found}")

    def at(self, text: str) -> bool:
        kind, tok, _ = self.tokens[self.i]
        return kind != "end" and tok == text

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Task:
        if self.tokens[0][0] == "end":
            raise SpecError("empty task spec: write e.g. `achieve goal_a; achieve goal_b ensuring !hazard`")
        task = self.task()
        if self.tokens[self.i][0] != "end":
            raise self.fail("';', 'or', 'ensuring' or the end of the task")
        return task

    def task(self) -> Task:
        t = self.seq()
        while self.at("or"):
            self.take()
            t = Choice(t, self.seq())
        return t

    def seq(self) -> Task:
        t = self.guarded()
        while self.at(";"):
            self.take()
            t = Seq(t, self.guarded())
        return t

    def guarded(self) -> Task:
        t = self.unit()
        while self.at("ensuring"):
            self.take()
            t = Ensuring(t, self.pred())
        return t

    def unit(self) -> Task:
        if self.at("achieve"):
            self.take()
            return Achieve(self.pred())
        if self.at("("):
            _, _, pos = self.take()
            t = self.task()
            if not self.at(")"):
                raise self.fail(f"')' to close the '(' at column {pos + 1}")
            self.take()
            return t
        raise self.fail("'achieve' or '('")

    def pred(self) -> Predicate:
        p = self.pconj()
        while self.at("|"):
            self.take()
            p = disj(p, self.pconj())
        return p

    def pconj(self) -> Predicate:
        p = self.pneg()
        while self.at("&"):
            self.take()
            p = conj(p, self.pneg())
        return p

    def pneg(self) -> Predicate:
        if self.at("!"):
            self.take()
            return Not(self.pneg())
        if self.at("("):
            _, _, pos = self.take()
            p = self.pred()
            if not self.at(")"):
                raise self.fail(f"')' to close the '(' at column {pos + 1}")
            self.take()
            return p
        kind, tok, pos = self.tokens[self.i]
        if kind == "word" and tok in ("true", "false"):
            self.take()
            return TRUE if tok == "true" else FALSE
        if kind == "word" and tok not in _KEYWORDS:
            self.take()
            return Region(tok)
        raise self.fail("a predicate name, true, false, '!' or '('")


MAX_DEPTH = 100  # nested steps/operators in one task; later passes recurse once per level


def parse_spectrl(text: str) -> Task:
    if not isinstance(text, str):
        raise SpecError(f"a task spec must be a string, got {type(text).__name__}")
    too_deep = SpecError(f"task spec is nested more than {MAX_DEPTH} levels deep (steps, 'or', 'ensuring', "
                         "parentheses or predicate operators); split it into smaller tasks")
    if len(text) > 20_000:
        raise SpecError(f"task spec has {len(text):,} characters, over the limit of 20,000")
    try:
        task = _Parser(text).parse()
    except RecursionError:
        raise too_deep from None
    stack = [(task, 1)]  # depth of the task tree, counted without recursion
    while stack:
        node, d = stack.pop()
        if d > MAX_DEPTH:
            raise too_deep
        stack += [(x, d + 1) for x in _children(node)]
    return task


def _children(node: Any) -> list[Any]:
    """The sub-tasks and sub-predicates of one node of a parsed task."""
    if isinstance(node, Seq):
        return [node.first, node.second]
    if isinstance(node, Choice):
        return [node.left, node.right]
    if isinstance(node, Ensuring):
        return [node.task, node.pred]
    if isinstance(node, Achieve):
        return [node.pred]
    if isinstance(node, Not):
        return [node.arg]
    if isinstance(node, (And, Or)):
        return list(node.args)
    return []


def task_value(task: Task | str, env: Any, states: Sequence[Any]) -> float:
    """SPECTRL's quantitative semantics of a whole task on a finite trajectory s_0..s_T (> 0 iff satisfied).

    As in Jothimurugan et al. 2019, Section 3:
        achieve b       max_i b(s_i)
        T ensuring b    min(T(trajectory), min_i b(s_i))
        T1; T2          max over split points i < T of min(T1(s_0..s_i), T2(s_i+1..s_T))
        T1 or T2        max(T1, T2)
    Computed for every segment at once: V[j, k] is the value on s_j..s_k (a dynamic programme, O(T^3)
    numpy work for each `;`, fine for episodes of a few hundred steps).
    """
    task = parse_spectrl(task) if isinstance(task, str) else task
    n = len(states)
    if n == 0:
        raise SpecError("a trajectory needs at least one state")
    cache: dict[Predicate, np.ndarray] = {}

    def pred_values(p: Predicate) -> np.ndarray:
        if p not in cache:
            cache[p] = np.array([float(p.value(env, s)) for s in states])
        return cache[p]

    upper = np.triu(np.ones((n, n), dtype=bool))  # segments j <= k

    def range_fold(values: np.ndarray, fold) -> np.ndarray:
        """M[j, k] = fold(values[j..k]) for j <= k (e.g. running max), -inf below the diagonal."""
        out = np.full((n, n), -np.inf)
        for j in range(n):
            out[j, j:] = fold.accumulate(values[j:])
        return out

    def value(t: Task) -> np.ndarray:
        if isinstance(t, Achieve):
            return range_fold(pred_values(t.pred), np.maximum)
        if isinstance(t, Ensuring):
            return np.where(upper, np.minimum(value(t.task), range_fold(pred_values(t.pred), np.minimum)), -np.inf)
        if isinstance(t, Choice):
            return np.maximum(value(t.left), value(t.right))
        if isinstance(t, Seq):
            v1, v2 = value(t.first), value(t.second)
            out = np.full((n, n), -np.inf)
            for j in range(n - 1):
                # split after i (j <= i < k): min(v1[j, i], v2[i + 1, k]), maximised over i
                both = np.minimum(v1[j, j:n - 1, None], v2[j + 1:n, :])  # [i, k]
                out[j] = both.max(axis=0)
            return np.where(upper, out, -np.inf)
        raise TypeError(f"not a task: {t!r}")

    return float(value(task)[0, n - 1])


def _task_names(t: Task) -> frozenset[str]:
    if isinstance(t, Achieve):
        return t.pred.names()
    if isinstance(t, Ensuring):
        return _task_names(t.task) | t.pred.names()
    a, b = (t.first, t.second) if isinstance(t, Seq) else (t.left, t.right)
    return _task_names(a) | _task_names(b)


# ---------------------------------------------------------------------------------------------- abstract graph


@dataclass(frozen=True)
class Edge:
    """Reach `reach` from the source region while `safe` holds at every step."""

    index: int
    source: int
    target: int
    reach: Predicate
    safe: Predicate

    def value(self, env: Any, states: Sequence[Any]) -> float:
        """Quantitative semantics of `achieve reach ensuring safe` on a trajectory of states:
        max over t of min(reach(s_t), min over j <= t of safe(s_j)); > 0 iff the edge succeeded."""
        best, safe_so_far = -math.inf, math.inf
        for s in states:
            safe_so_far = min(safe_so_far, float(self.safe.value(env, s)))
            best = max(best, min(float(self.reach.value(env, s)), safe_so_far))
        return best

    def succeeded(self, env: Any, states: Sequence[Any]) -> bool:
        return self.value(env, states) > 0


@dataclass
class AbstractGraph:
    vertices: list[int]
    edges: list[Edge]
    initial: int
    final: set[int]
    regions: dict[int, Predicate]  # the subgoal region of each vertex (initial: where runs start)
    task: str = ""
    _out: dict[int, list[Edge]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._out = {u: [] for u in self.vertices}
        for e in self.edges:
            self._out[e.source].append(e)

    def out_edges(self, u: int) -> list[Edge]:
        return self._out[u]

    def in_edges(self, u: int) -> list[Edge]:
        return [e for e in self.edges if e.target == u]

    def predicate_names(self) -> frozenset[str]:
        return frozenset().union(*(e.reach.names() | e.safe.names() for e in self.edges))

    def paths(self) -> list[list[Edge]]:
        """Every path of edges from the initial vertex to a final one (the graph is a DAG)."""
        out: list[list[Edge]] = []

        def walk(u: int, path: list[Edge]) -> None:
            if u in self.final:
                out.append(list(path))
            for e in self._out[u]:
                walk(e.target, [*path, e])

        walk(self.initial, [])
        return out

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "vertices": [{"id": u, "region": str(self.regions[u])} for u in self.vertices],
            "edges": [
                {"index": e.index, "source": e.source, "target": e.target, "reach": str(e.reach), "safe": str(e.safe)}
                for e in self.edges
            ],
            "initial": self.initial,
            "final": sorted(self.final),
        }

    def to_dot(self) -> str:
        lines = ["digraph DiRL {", "  rankdir=LR;"]
        for u in self.vertices:
            shape = "doublecircle" if u in self.final else "circle"
            lines.append(f'  {u} [shape={shape}, label="{u}\\n{self.regions[u]}"];')
        for e in self.edges:
            lines.append(f'  {e.source} -> {e.target} [label="reach {e.reach}\\nsafe {e.safe}"];')
        return "\n".join([*lines, "}"]) + "\n"


@dataclass
class _Fragment:
    """A graph under construction: vertex regions, edges as (source, target, safe), initial, finals."""

    regions: list[Predicate]
    edges: list[tuple[int, int, Predicate]]
    initial: int
    final: list[int]


def _build(t: Task) -> _Fragment:
    if isinstance(t, Achieve):
        return _Fragment([TRUE, t.pred], [(0, 1, TRUE)], 0, [1])
    if isinstance(t, Ensuring):
        g = _build(t.task)
        return _Fragment(
            [conj(r, t.pred) for r in g.regions], [(s, d, conj(z, t.pred)) for s, d, z in g.edges], g.initial, g.final
        )
    if isinstance(t, Seq):
        g1, g2 = _build(t.first), _build(t.second)
        regions, edges, final = list(g1.regions), list(g1.edges), []
        for f in g1.final:  # hang a copy of g2 off each final vertex of g1
            ids = {}
            for v, r in enumerate(g2.regions):
                if v == g2.initial:
                    ids[v] = f
                    regions[f] = conj(regions[f], r)
                else:
                    ids[v] = len(regions)
                    regions.append(r)
            edges += [(ids[s], ids[d], z) for s, d, z in g2.edges]
            final += [ids[v] for v in g2.final]
        return _Fragment(regions, edges, g1.initial, final)
    if isinstance(t, Choice):
        g1, g2 = _build(t.left), _build(t.right)
        regions, edges = list(g1.regions), list(g1.edges)
        ids = {}
        for v, r in enumerate(g2.regions):
            if v == g2.initial:
                ids[v] = g1.initial
                regions[g1.initial] = disj(regions[g1.initial], r)  # runs start in either's start region
            else:
                ids[v] = len(regions)
                regions.append(r)
        edges += [(ids[s], ids[d], z) for s, d, z in g2.edges]
        return _Fragment(regions, edges, g1.initial, g1.final + [ids[v] for v in g2.final])
    raise TypeError(f"not a task: {t!r}")


def compile_spectrl(text: str, predicate_names: Iterable[str] | None = None) -> AbstractGraph:
    """Parse a SPECTRL task and build its DiRL abstract graph; with `predicate_names`, check every name."""
    task = parse_spectrl(text)
    if predicate_names is not None:
        defined = frozenset(predicate_names)
        unknown = sorted(_task_names(task) - defined)
        if unknown:
            raise SpecError(
                f"unknown predicate{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {text!r}; "
                f"the environment defines: {', '.join(sorted(defined)) or '(none)'}"
            )
    g = _build(task)
    # Number vertices in BFS order from the initial vertex (0), edges in the same order.
    order, seen = [g.initial], {g.initial}
    for u in order:
        for s, d, _ in g.edges:
            if s == u and d not in seen:
                seen.add(d)
                order.append(d)
    num = {v: i for i, v in enumerate(order)}
    raw = sorted(g.edges, key=lambda e: (num[e[0]], num[e[1]]))
    regions = {num[v]: g.regions[v] for v in order}
    edges = [Edge(i, num[s], num[d], regions[num[d]], z) for i, (s, d, z) in enumerate(raw)]
    return AbstractGraph(
        vertices=list(range(len(order))),
        edges=edges,
        initial=0,
        final={num[v] for v in g.final},
        regions=regions,
        task=text,
    )
