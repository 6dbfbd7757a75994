"""SPECTRL parsing, quantitative predicates, and the DiRL abstract graph."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keel.spec import SpecError, compile_spectrl
from keel.spec.spectrl import TRUE, Achieve, Choice, Ensuring, Not, Region, Seq, conj, disj, parse_spectrl

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
