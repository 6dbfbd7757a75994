"""SPECTRL parsing, quantitative predicates, and the DiRL abstract graph."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keel.spec import SpecError, compile_spectrl
from keel.spec.spectrl import (
    TRUE,
    Achieve,
    Choice,
    Ensuring,
    Not,
    Region,
    Seq,
    conj,
    disj,
    parse_spectrl,
    task_value,
)

a, b, c, h = Region("a"), Region("b"), Region("c"), Region("h")


class Line:
    """A 1-D world: regions are intervals, predicate value = half-width - distance to the centre."""

    regions = {"a": (2.0, 1.0), "b": (6.0, 1.0), "c": (9.0, 0.5), "h": (4.0, 0.5)}

    def predicate_names(self):
        return sorted(self.regions)

    def predicate_value(self, name, state):
        centre, radius = self.regions[name]
        return radius - abs(float(np.asarray(state)[0]) - centre)


def test_parse_precedence():
    assert parse_spectrl("achieve a; achieve b ensuring !h") == Seq(Achieve(a), Ensuring(Achieve(b), Not(h)))
    assert parse_spectrl("(achieve a; achieve b) ensuring !h") == Ensuring(Seq(Achieve(a), Achieve(b)), Not(h))
    assert parse_spectrl("achieve a; achieve b or achieve c") == Choice(Seq(Achieve(a), Achieve(b)), Achieve(c))
    assert parse_spectrl("achieve a | b & c") == Achieve(disj(a, conj(b, c)))
    assert parse_spectrl("achieve (a | b) & !c") == Achieve(conj(disj(a, b), Not(c)))


@pytest.mark.parametrize(
    "text, column, expected",
    [
        ("achieve", 8, "expected a predicate name"),
        ("achieve a;", 11, "expected 'achieve' or '('"),
        ("achieve a b", 11, "expected ';', 'or', 'ensuring'"),
        ("(achieve a", 11, "')' to close the '(' at column 1"),
        ("achieve a ensuring or", 20, "expected a predicate name"),
        ("reach a", 1, "expected 'achieve' or '('"),
        ("achieve a $", 11, "unexpected character '$'"),
    ],
)
def test_parse_errors(text, column, expected):
    with pytest.raises(SpecError) as e:
        parse_spectrl(text)
    assert f"column {column}" in str(e.value) and expected in str(e.value)
    assert str(e.value).splitlines()[-1].index("^") == 2 + column - 1


def test_unknown_predicate_lists_defined_ones():
    with pytest.raises(SpecError, match="unknown predicate lava .* defines: a, b, c, h"):
        compile_spectrl("achieve a ensuring !lava", Line().predicate_names())


def test_quantitative_semantics():
    env = Line()
    s = np.array([2.5])
    assert a.value(env, s) == pytest.approx(0.5)
    assert Not(a).value(env, s) == pytest.approx(-0.5)
    assert conj(a, b).value(env, s) == pytest.approx(min(0.5, 1 - 3.5))
    assert disj(a, b).value(env, s) == pytest.approx(0.5)
    assert conj(a, Not(h)).holds(env, s) and not conj(a, h).holds(env, s)
    g = compile_spectrl("achieve true")
    assert g.edges[0].reach.value(env, s) == math.inf


def test_graph_of_sequence_with_safety():
    g = compile_spectrl("achieve a; achieve b ensuring !h", Line().predicate_names())
    assert g.vertices == [0, 1, 2] and g.initial == 0 and g.final == {2}
    e0, e1 = g.edges
    assert (e0.source, e0.target, e1.source, e1.target) == (0, 1, 1, 2)
    assert e0.reach == conj(a, Not(h)) and e0.safe == TRUE  # b's segment needs !h from its first state
    assert e1.reach == conj(b, Not(h)) and e1.safe == Not(h)
    assert g.out_edges(1) == [e1] and g.in_edges(2) == [e1]


def test_graph_of_choice_then_sequence_has_two_paths():
    g = compile_spectrl("(achieve a or achieve c); achieve b")
    assert len(g.vertices) == 5 and len(g.edges) == 4 and len(g.final) == 2
    paths = g.paths()
    assert len(paths) == 2
    assert {str(p[0].reach) for p in paths} == {"a", "c"}
    assert all(str(p[1].reach) == "b" and p[0].target == p[1].source for p in paths)
    assert g.predicate_names() == {"a", "b", "c"}


def test_ensuring_over_a_sequence_guards_every_edge():
    g = compile_spectrl("(achieve a; achieve b; achieve c) ensuring !h")
    assert len(g.edges) == 3
    assert all(e.safe == Not(h) for e in g.edges)
    assert all("!h" in str(g.regions[u]) for u in g.vertices)


def test_edge_trajectory_semantics():
    env = Line()
    g = compile_spectrl("achieve b ensuring !h")
    edge = g.edges[0]
    through_hazard = [np.array([x]) for x in (2.0, 3.0, 4.0, 5.0, 6.0)]
    around = [np.array([x]) for x in (2.0, 3.0, 3.4, 5.0, 6.0)]  # "jumps" past the hazard
    assert not edge.succeeded(env, through_hazard)
    assert edge.succeeded(env, around)
    assert edge.value(env, around) == pytest.approx(0.1)  # the closest approach to the hazard limits it
    assert edge.value(env, [np.array([0.0])]) < 0  # never reached b


def test_graph_serialises():
    g = compile_spectrl("achieve a or achieve b")
    d = g.to_dict()
    assert d["initial"] == 0 and len(d["edges"]) == 2 and sorted(d["final"]) == [1, 2]
    assert g.to_dot().startswith("digraph DiRL")


def traj(*xs):
    return [np.array([x]) for x in xs]


def test_task_value_by_hand():
    env = Line()
    assert task_value("achieve a", env, traj(0, 1, 2)) == pytest.approx(1.0)
    assert task_value("achieve a; achieve b", env, traj(2, 6)) == pytest.approx(1.0)
    assert task_value("achieve a; achieve b", env, traj(2)) == -math.inf  # no split point in one state
    assert task_value("achieve b; achieve a", env, traj(2, 6)) < 0  # wrong order
    assert task_value("achieve b ensuring !h", env, traj(2, 3, 4, 5, 6)) < 0
    assert task_value("achieve b ensuring !h", env, traj(2, 3, 3.4, 5, 6)) == pytest.approx(0.1)
    assert task_value("achieve c or achieve b", env, traj(2, 6)) == pytest.approx(1.0)


def naive_value(t, env, states):
    """The SPECTRL definitions read literally, by recursion over split points."""
    if isinstance(t, Achieve):
        return max(float(t.pred.value(env, s)) for s in states)
    if isinstance(t, Ensuring):
        return min(naive_value(t.task, env, states), min(float(t.pred.value(env, s)) for s in states))
    if isinstance(t, Choice):
        return max(naive_value(t.left, env, states), naive_value(t.right, env, states))
    if isinstance(t, Seq):
        splits = [min(naive_value(t.first, env, states[: i + 1]), naive_value(t.second, env, states[i + 1:]))
                  for i in range(len(states) - 1)]
        return max(splits, default=-math.inf)
    raise TypeError(t)


@pytest.mark.parametrize("task", [
    "achieve a; achieve b", "(achieve a; achieve b) ensuring !h", "achieve a; achieve b; achieve c",
    "(achieve a or achieve c); achieve b ensuring !h", "achieve b ensuring !h; achieve a or achieve c",
])
def test_task_value_matches_the_literal_definition(task):
    env = Line()
    rng = np.random.default_rng(0)
    for _ in range(15):
        states = traj(*rng.uniform(0, 10, size=int(rng.integers(1, 9))))
        assert task_value(task, env, states) == pytest.approx(naive_value(parse_spectrl(task), env, states))


def test_a_path_of_successful_edges_satisfies_the_task():
    """DiRL's graph is sound: run each edge of a path on its own segment and the whole task holds."""
    env = Line()
    g = compile_spectrl("(achieve a; achieve b) ensuring !h")
    path = g.paths()[0]
    segments = [traj(1.5, 2.0, 2.5), traj(3.0, 3.4, 5.0, 6.0)]  # the second starts after the first ends
    assert path[0].succeeded(env, segments[0]) and path[1].succeeded(env, [segments[0][-1], *segments[1]])
    assert task_value(g.task, env, segments[0] + segments[1]) > 0
