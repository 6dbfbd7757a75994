"""LTLf formula -> minimal, complete DFA over label sets, via ltlf2dfa + MONA, cached on disk.

The translation is the one of ltlf2dfa (Fuggitti, "LTLf2DFA", 2019; Zhu, Tabajara, Li, Pu, Vardi,
"Symbolic LTLf synthesis", IJCAI 2017): the formula becomes a WS1S formula that MONA turns into a
minimal DFA. We feed ltlf2dfa a formula string regenerated from our own syntax tree, with propositions
renamed p0, p1, ... (so that no name can clash with a MONA keyword and so that `F a` and `F b` share
one cache entry), run MONA ourselves on a private temporary file (ltlf2dfa writes one shared file inside
its package, which races between processes) and read MONA's transition listing:

    State 3: 0X1 -> state 2        guard over the free variables, in their listed order

Two details of MONA's output are repaired here:
- MONA's state 0 only reads a dummy first letter; the automaton proper starts at its successor.
- MONA accepts the empty trace in that start state when the formula holds vacuously (`G a`). LTLf
  traces are non-empty, so the start state is split off as a non-accepting copy when needed.
Then the automaton is minimised again (Moore's partition refinement) over "letters": the classes of
label sets that no transition guard tells apart. A DFA is complete by construction: every state has a
successor for every letter (checked).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import types
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from keel.io import atomic_write_json
from keel.spec.ltlf import (
    Binary,
    Const,
    Formula,
    Prop,
    SpecError,
    Unary,
    has_past,
    propositions,
    rename,
    to_string,
)

CACHE_VERSION = 1
DEAD_DISTANCE = 10**9  # distance() of a state from which no accepting state can be reached
MONA_TIMEOUT_S = 60.0

Cube = str  # one character per proposition: "1" true, "0" false, "X" either


# Inside the algorithms a cube is a pair of ints (mask, value): bit i of mask says position i is fixed,
# bit i of value says to what. A valuation v lies in the cube iff v & mask == value.
IntCube = tuple[int, int]


def _to_int(cube: Cube) -> IntCube:
    mask = value = 0
    for i, c in enumerate(cube):
        if c != "X":
            mask |= 1 << i
            value |= (c == "1") << i
    return mask, value


def _to_str(cube: IntCube, k: int) -> Cube:
    mask, value = cube
    return "".join("X" if not mask >> i & 1 else "1" if value >> i & 1 else "0" for i in range(k))


def _cube_and(a: IntCube, b: IntCube) -> IntCube | None:
    if (a[1] ^ b[1]) & a[0] & b[0]:
        return None
    return a[0] | b[0], a[1] | b[1]


def _cube_minus(a: IntCube, b: IntCube, k: int) -> list[IntCube]:
    """Disjoint cubes covering a minus b, assuming a and b intersect."""
    out = []
    mask, value = a
    for i in range(k):
        bit = 1 << i
        if b[0] & bit and not mask & bit:  # fixed in b, free in a: split on it
            out.append((mask | bit, value | (~b[1] & bit)))
            mask, value = mask | bit, value | (b[1] & bit)
    return out


@dataclass
class DFA:
    """A complete minimal DFA over label sets. States are 0..num_states-1; letters are label-set classes."""

    propositions: frozenset[str]
    order: tuple[str, ...]  # proposition of each cube position
    letters: list[list[Cube]]  # letter -> the disjoint cubes it covers
    table: list[list[int]]  # table[q][letter] -> next state
    initial: int
    accepting: frozenset[int]
    _memo: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.num_states = len(self.table)
        self._int_letters = [[_to_int(c) for c in cubes] for cubes in self.letters]
        self._letter_memo: dict[frozenset[str], int] = {}
        self._dist = _distances(self.table, self.accepting)

    # -- stepping
    def letter_of(self, labels: frozenset[str]) -> int:
        """The letter (label-set class) of `labels`; propositions the formula does not mention are ignored."""
        letter = self._letter_memo.get(labels)
        if letter is None:
            bits = sum(1 << i for i, p in enumerate(self.order) if p in labels)
            letter = next(i for i, cubes in enumerate(self._int_letters) if any(bits & m == v for m, v in cubes))
            self._letter_memo[labels] = letter
        return letter

    def step(self, q: int, labels: Iterable[str]) -> int:
        if not isinstance(labels, frozenset):
            if isinstance(labels, str):
                raise SpecError(f"labels must be a set of proposition names, got the string {labels!r}")
            labels = frozenset(labels)
        key = (q, labels)
        nxt = self._memo.get(key)
        if nxt is None:
            nxt = self.table[q][self.letter_of(labels)]
            self._memo[key] = nxt
        return nxt

    def run(self, trace: Iterable[Iterable[str]], q: int | None = None) -> int:
        q = self.initial if q is None else q
        for labels in trace:
            q = self.step(q, labels)
        return q

    def accepts(self, trace: Iterable[Iterable[str]]) -> bool:
        return self.is_accepting(self.run(trace))

    # -- queries
    def is_accepting(self, q: int) -> bool:
        return q in self.accepting

    def is_dead(self, q: int) -> bool:
        return self._dist[q] >= DEAD_DISTANCE

    def distance(self, q: int) -> int:
        return self._dist[q]

    @property
    def dead_states(self) -> frozenset[int]:
        return frozenset(q for q in range(self.num_states) if self.is_dead(q))

    def min_labels(self, letter: int) -> frozenset[str]:
        """The smallest label set of a letter (don't-cares read as false)."""
        best = min(self.letters[letter], key=lambda c: c.count("1"))
        return frozenset(p for p, c in zip(self.order, best, strict=True) if c == "1")

    def edges(self, q: int) -> dict[int, list[int]]:
        """Successor -> the letters leading there."""
        out: dict[int, list[int]] = {}
        for letter, nxt in enumerate(self.table[q]):
            out.setdefault(nxt, []).append(letter)
        return out

    def shortest_accepting_trace(self) -> list[frozenset[str]] | None:
        """A shortest non-empty trace the DFA accepts, with minimal label sets; None if there is none."""
        by_size = sorted(range(len(self.letters)), key=lambda a: (len(self.min_labels(a)), a))
        parent: dict[int, tuple[int, int]] = {}  # state -> (previous state, letter), BFS tree
        frontier = deque([self.initial])
        seen = {self.initial}
        while frontier:
            q = frontier.popleft()
            for letter in by_size:
                nxt = self.table[q][letter]
                if nxt in self.accepting:
                    trace = [self.min_labels(letter)]
                    while q != self.initial:
                        q, a = parent[q]
                        trace.append(self.min_labels(a))
                    return trace[::-1]
                if nxt not in seen:
                    seen.add(nxt)
                    parent[nxt] = (q, letter)
                    frontier.append(nxt)
        return None

    def is_valid(self) -> bool:
        """True when every non-empty trace is accepted."""
        reach = _reachable(self.table, [self.table[self.initial][a] for a in range(len(self.letters))])
        return reach <= self.accepting

    def with_accepting(self, accepting: Iterable[int]) -> DFA:
        return DFA(self.propositions, self.order, self.letters, self.table, self.initial, frozenset(accepting))

    # -- (de)serialisation and drawing
    def to_dict(self) -> dict:
        return {
            "order": list(self.order),
            "letters": self.letters,
            "table": self.table,
            "initial": self.initial,
            "accepting": sorted(self.accepting),
        }

    def guard_text(self, cubes: list[Cube]) -> str:
        """A readable sum of products for a set of disjoint cubes (merged where they differ in one place)."""
        terms = []
        for cube in _merge_cubes(cubes):
            lits = [p if c == "1" else f"!{p}" for p, c in zip(self.order, cube, strict=True) if c != "X"]
            terms.append(" & ".join(lits) or "true")
        return " | ".join(terms)

    def to_dot(self, title: str = "") -> str:
        lines = ["digraph DFA {", "  rankdir=LR;", f'  label="{_dot_escape(title)}";', '  init [shape=point];']
        for q in range(self.num_states):
            shape = "doublecircle" if q in self.accepting else "circle"
            style = ", style=dashed" if self.is_dead(q) else ""
            lines.append(f"  {q} [shape={shape}{style}];")
        lines.append(f"  init -> {self.initial};")
        for q in range(self.num_states):
            for nxt, letters in self.edges(q).items():
                cubes = [c for a in letters for c in self.letters[a]]
                label = "true" if len(letters) == len(self.letters) else self.guard_text(cubes)
                lines.append(f'  {q} -> {nxt} [label="{_dot_escape(label)}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"


def _merge_cubes(cubes: list[Cube]) -> list[Cube]:
    """Merge cubes that differ in exactly one fixed position (x&a | x&!a = x) until none do."""
    cubes = sorted(set(cubes))
    merged = True
    while merged:
        merged = False
        for i, x in enumerate(cubes):
            for y in cubes[i + 1:]:
                diff = [j for j, (u, v) in enumerate(zip(x, y, strict=True)) if u != v]
                if len(diff) == 1 and "X" not in (x[diff[0]], y[diff[0]]):
                    j = diff[0]
                    cubes = sorted((set(cubes) - {x, y}) | {x[:j] + "X" + x[j + 1:]})
                    merged = True
                    break
            if merged:
                break
    return cubes


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _reachable(table: list[list[int]], start: Iterable[int]) -> set[int]:
    seen = set(start)
    stack = list(seen)
    while stack:
        for nxt in table[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _distances(table: list[list[int]], accepting: frozenset[int]) -> list[int]:
    """Fewest letters from each state to an accepting one (backward BFS); DEAD_DISTANCE if unreachable."""
    preds: list[set[int]] = [set() for _ in table]
    for q, row in enumerate(table):
        for nxt in row:
            preds[nxt].add(q)
    dist = [DEAD_DISTANCE] * len(table)
    frontier = deque(sorted(accepting))
    for q in accepting:
        dist[q] = 0
    while frontier:
        q = frontier.popleft()
        for p in preds[q]:
            if dist[p] == DEAD_DISTANCE:
                dist[p] = dist[q] + 1
                frontier.append(p)
    return dist


# ---------------------------------------------------------------------------------------------- MONA


def _parse_mona(output: str, k: int) -> tuple[list[list[tuple[Cube, int]]], int, set[int]]:
    """MONA's listing -> (guards per state, start state after the dummy letter, accepting states)."""
    free: list[str] = []
    accepting: set[int] = set()
    guards: dict[int, list[tuple[Cube, int]]] = {}
    for line in output.splitlines():
        if line.startswith("DFA for formula with free variables:"):
            free = line.split(":", 1)[1].split()
        elif line.startswith("Accepting states:"):
            accepting = {int(x) for x in line.split(":", 1)[1].split()}
        elif line.startswith("State "):
            head, target = line.split("->")
            state_txt, guard = head[len("State "):].split(":")
            guards.setdefault(int(state_txt), []).append((guard.strip(), int(target.split()[-1])))
    if not guards:
        raise SpecError(f"could not read MONA's output (is the `mona` binary installed?):\n{output[:500]}")
    # Map MONA's variable order (P0, P3, ...) onto positions 0..k-1 of our cubes.
    positions = [int(v[1:]) for v in free]
    table: list[list[tuple[Cube, int]]] = []
    for q in range(max(guards) + 1):
        row = []
        for guard, nxt in guards.get(q, []):
            cube = ["X"] * k
            for pos, c in zip(positions, guard, strict=True):
                cube[pos] = c
            row.append(("".join(cube), nxt))
        table.append(row)
    starts = {nxt for _, nxt in table[0]}
    if len(starts) != 1:
        raise SpecError("unexpected MONA output: its state 0 should only read the dummy first letter")
    return table, starts.pop(), accepting


def ltlf2dfa_string(f: Formula) -> str:
    """The formula in ltlf2dfa's syntax, fully parenthesised; weak until is spelled out."""
    if isinstance(f, Const):
        return "true" if f.value else "false"
    if isinstance(f, Prop):
        return f.name
    if isinstance(f, Unary):
        return f"{f.op}({ltlf2dfa_string(f.arg)})"
    if isinstance(f, Binary):
        a, b = ltlf2dfa_string(f.left), ltlf2dfa_string(f.right)
        if f.op == "W":  # a W b  ==  (a U b) | G a
            return f"(({a} U {b}) | G({a}))"
        return f"({a} {f.op} {b})"
    raise TypeError(f"not a formula: {f!r}")


def _import_ltlf2dfa() -> None:
    """Import ltlf2dfa's formula classes without sympy.

    `ltlf2dfa.ltlf` imports `to_dfa` from `ltlf2dfa.ltlf2dfa`, which imports sympy (seconds of start-up)
    only to simplify DOT labels. We never call `to_dfa` (we run MONA ourselves), so while the classes load
    that module is a stand-in whose `to_dfa` would import the real one on first use; afterwards the
    stand-in is removed, so any later `import ltlf2dfa.ltlf2dfa` gets the real module.
    """
    if "ltlf2dfa.ltlf" in sys.modules:
        return
    name = "ltlf2dfa.ltlf2dfa"
    if name in sys.modules:  # somebody already paid for sympy
        importlib.import_module("ltlf2dfa.ltlf")
        return
    stand_in = types.ModuleType(name)

    def to_dfa(f, mona_dfa_out=False):
        sys.modules.pop(name, None)
        return importlib.import_module(name).to_dfa(f, mona_dfa_out)

    stand_in.to_dfa = to_dfa
    sys.modules[name] = stand_in
    try:
        importlib.import_module("ltlf2dfa.ltlf")
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


def _run_mona(formula: Formula, k: int) -> str:
    _import_ltlf2dfa()
    from ltlf2dfa.base import MonaProgram

    if has_past(formula):  # ltlf2dfa's LTLf parser has no past operators: build its objects directly
        from keel.spec.past import to_ltlf2dfa

        tree = to_ltlf2dfa(formula)
    else:
        tree = _ltlf2dfa_parser()(ltlf2dfa_string(formula))
    program = MonaProgram(tree).mona_program()
    with tempfile.TemporaryDirectory(prefix="keel-mona-") as tmp:
        path = Path(tmp) / "formula.mona"
        path.write_text(program)
        try:
            proc = subprocess.run(
                ["mona", "-q", "-u", "-w", str(path)], capture_output=True, text=True, timeout=MONA_TIMEOUT_S
            )
        except FileNotFoundError:
            raise SpecError("the MONA binary is missing: install it with `apt-get install -y mona`") from None
        except subprocess.TimeoutExpired:
            raise SpecError(
                f"MONA did not finish within {MONA_TIMEOUT_S:.0f} s: the formula is too large; split it"
            ) from None
    if proc.returncode != 0 and "Transitions:" not in proc.stdout:
        raise SpecError(f"MONA failed on {to_string(formula)!r}: {(proc.stderr or proc.stdout)[:500]}")
    return proc.stdout


_PARSER = None


def _ltlf2dfa_parser():
    global _PARSER
    if _PARSER is None:
        _import_ltlf2dfa()
        from ltlf2dfa.parser.ltlf import LTLfParser

        _PARSER = LTLfParser()
    return _PARSER


def _build(guards: list[list[tuple[Cube, int]]], start: int, mona_accepting: set[int], k: int) -> dict:
    """MONA's guarded transitions -> letters, a start state that rejects the empty trace, then minimise."""
    states = sorted(_reachable_guarded(guards, start))
    # Letters: the common refinement of every guard cube, so that each state is constant on each letter.
    int_guards = {q: [(_to_int(c), nxt) for c, nxt in guards[q]] for q in states}
    regions: list[IntCube] = [(0, 0)]
    for cube in sorted({c for q in states for c, _ in int_guards[q]}):
        refined = []
        for r in regions:
            both = _cube_and(r, cube)
            if both is None or both == r:
                refined.append(r)
            else:
                refined.append(both)
                refined.extend(_cube_minus(r, cube, k))
        regions = refined
    index = {q: i for i, q in enumerate(states)}
    table: list[list[int]] = []
    for q in states:
        row = []
        for _, rep in regions:  # the region's valuation with every free position false
            hits = [nxt for (m, v), nxt in int_guards[q] if rep & m == v]
            if len(hits) != 1:
                raise SpecError(f"MONA's automaton is not deterministic and complete at state {q} (internal)")
            row.append(index[hits[0]])
        table.append(row)
    accepting = {index[q] for q in states if q in mona_accepting}
    initial = index[start]
    if initial in accepting:  # MONA accepted the empty trace here; LTLf does not
        table.append(list(table[initial]))
        initial = len(table) - 1
    return _minimise(table, initial, accepting, [_to_str(r, k) for r in regions])


def _reachable_guarded(guards: list[list[tuple[Cube, int]]], start: int) -> set[int]:
    seen, stack = {start}, [start]
    while stack:
        for _, nxt in guards[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _minimise(table: list[list[int]], initial: int, accepting: set[int], regions: list[Cube]) -> dict:
    """Moore's partition refinement, then merge letters that every state treats alike; BFS numbering."""
    live = sorted(_reachable(table, [initial]))
    block = {q: int(q in accepting) for q in live}
    while True:
        sig = {q: (block[q], tuple(block[n] for n in table[q])) for q in live}
        ids: dict[tuple, int] = {}
        new = {q: ids.setdefault(sig[q], len(ids)) for q in live}
        if len(ids) == len(set(block.values())):
            break
        block = new
    block = new
    # Number blocks in BFS order from the initial state, letters in order of first appearance.
    order, seen = [block[initial]], {block[initial]}
    rep = {}
    for q in live:
        rep.setdefault(block[q], q)
    i = 0
    while i < len(order):
        for nxt in table[rep[order[i]]]:
            if block[nxt] not in seen:
                seen.add(block[nxt])
                order.append(block[nxt])
        i += 1
    renum = {b: i for i, b in enumerate(order)}
    columns: dict[tuple, list[Cube]] = {}
    for a, r in enumerate(regions):
        col = tuple(renum[block[table[rep[b]][a]]] for b in order)
        columns.setdefault(col, []).append(r)
    letters = list(columns.values())
    new_table = [[col[i] for col in columns] for i in range(len(order))]
    return {
        "letters": letters,
        "table": new_table,
        "initial": 0,
        "accepting": sorted(renum[block[q]] for q in live if q in accepting),
    }


# ---------------------------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    root = os.environ.get("KEEL_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "keel"
    return base / "spec"


_MEMORY: dict[str, dict] = {}
STATS = {"mona_runs": 0, "disk_hits": 0, "memory_hits": 0}


def compile_dfa(formula: Formula) -> DFA:
    """The minimal complete DFA of an LTLf formula (cached in memory and on disk)."""
    names = sorted(propositions(formula))
    mapping = {name: f"p{i}" for i, name in enumerate(names)}
    normal = to_string(rename(formula, mapping))
    key = hashlib.sha256(f"v{CACHE_VERSION}:{normal}".encode()).hexdigest()[:32]
    data = _MEMORY.get(key)
    if data is not None:
        STATS["memory_hits"] += 1
    else:
        path = cache_dir() / f"{key}.json"
        try:
            data = json.loads(path.read_text())
            if data.get("formula") != normal:
                data = None
            else:
                STATS["disk_hits"] += 1
        except (OSError, ValueError):
            data = None
        if data is None:
            STATS["mona_runs"] += 1
            guards, start, acc = _parse_mona(_run_mona(rename(formula, mapping), len(names)), len(names))
            data = {"formula": normal, **_build(guards, start, acc, len(names))}
            try:
                atomic_write_json(path, data)
            except OSError:
                pass  # an unwritable cache only costs time
        _MEMORY[key] = data
    return DFA(
        propositions=frozenset(names),
        order=tuple(names),
        letters=[list(c) for c in data["letters"]],
        table=[list(r) for r in data["table"]],
        initial=int(data["initial"]),
        accepting=frozenset(data["accepting"]),
    )
