"""LTLf parser (precedence, errors with position) and compiled DFAs against the textbook semantics."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.spec import SpecError, compile_ltlf
from keel.spec.automaton import STATS, ltlf2dfa_string
from keel.spec.ltlf import Binary, Const, Prop, Unary, holds, parse, to_string

a, b, c = Prop("a"), Prop("b"), Prop("c")


@pytest.mark.parametrize(
    "text, tree",
    [
        ("a & b U c", Binary("&", a, Binary("U", b, c))),
        ("a | b & c", Binary("|", a, Binary("&", b, c))),
        ("a -> b -> c", Binary("->", a, Binary("->", b, c))),
        ("a U b U c", Binary("U", a, Binary("U", b, c))),
        ("!a U b", Binary("U", Unary("!", a), b)),
        ("G a & b", Binary("&", Unary("G", a), b)),
        ("G(a & b)", Unary("G", Binary("&", a, b))),
        ("GFa", Unary("G", Unary("F", a))),
        ("X !a", Unary("X", Unary("!", a))),
        ("WX a", Unary("WX", a)),
        ("a <-> b | c", Binary("<->", a, Binary("|", b, c))),
        ("a -> b & c | a", Binary("->", a, Binary("|", Binary("&", b, c), a))),
        ("~a && b || c", Binary("|", Binary("&", Unary("!", a), b), c)),
        ("a => b", Binary("->", a, b)),
        ("!transfer W confirm", Binary("W", Unary("!", Prop("transfer")), Prop("confirm"))),
        ("a R b", Binary("R", a, b)),
        ("G(a -> O b)", Unary("G", Binary("->", a, Unary("O", b)))),
        ("a S b & Y c", Binary("&", Binary("S", a, b), Unary("Y", c))),
        ("H!a", Unary("H", Unary("!", a))),
        ("true & !false", Binary("&", Const(True), Unary("!", Const(False)))),
        ("  F ( room_3_2 )  ", Unary("F", Prop("room_3_2"))),
    ],
)
def test_precedence(text, tree):
    assert parse(text) == tree
    assert parse(to_string(tree)) == tree  # the printed form reads back to the same tree


@pytest.mark.parametrize(
    "text, column, expected",
    [
        ("G(a ->)", 7, "expected a proposition"),
        ("a b", 3, "expected a binary operator"),
        ("(a & b", 7, "expected ')' to close the '(' at column 1"),
        ("a $ b", 3, "unexpected character '$'"),
        ("Qa", 1, "unknown operator 'Q'"),
        ("F aB", 3, "bad proposition name"),
        ("a &", 4, "found the end of the formula"),
        ("G", 2, "expected a proposition"),
    ],
)
def test_parse_errors_name_position_and_expectation(text, column, expected):
    with pytest.raises(SpecError) as e:
        parse(text)
    message = str(e.value)
    assert f"column {column}" in message
    assert expected in message
    caret_line = message.splitlines()[-1]
    assert caret_line.index("^") == 2 + column - 1  # the caret sits under the column


def test_empty_formula_and_unknown_propositions():
    with pytest.raises(SpecError, match="empty formula"):
        parse("   ")
    with pytest.raises(SpecError) as e:
        compile_ltlf("F goal & G !lava", ["goal", "hazard", "door"])
    assert "unknown proposition lava (column 13)" in str(e.value)
    assert "door, goal, hazard" in str(e.value)


def traces(props, max_len):
    letters = [frozenset(s) for r in range(len(props) + 1) for s in itertools.combinations(props, r)]
    for n in range(1, max_len + 1):
        yield from itertools.product(letters, repeat=n)


@pytest.mark.parametrize(
    "text",
    ["G(a -> X b) & F c", "a U b", "a R b", "!a W b", "X a", "WX a", "G a", "F a & G !b", "a <-> X b",
     "true", "false", "G false", "F(a & X(b & X c))", "G(a -> O b)", "G(a -> Y O b)", "F(a & Y b)",
     "H a", "a S b", "G(c -> (a S b))", "X(Y a)", "F(Y(Y a) & c)", "G(a -> X F b) S c"],
)
def test_dfa_agrees_with_semantics_on_all_short_traces(text):
    spec = compile_ltlf(text)
    for trace in traces(["a", "b", "c"], 3):
        assert spec.dfa.accepts(trace) == holds(spec.formula, trace), (text, trace)


def test_dfa_is_minimal_and_complete():
    dfa = compile_ltlf("F(goal_a & F goal_b) & G !hazard").dfa
    # states: start, saw goal_a, done, dead  (MONA's dummy state and empty-trace start are gone)
    assert dfa.num_states == 4
    assert all(len(row) == len(dfa.letters) for row in dfa.table)
    # Moore check: no two states share acceptance and successor rows up to relabelling -> distinct rows.
    rows = {(q in dfa.accepting, tuple(dfa.table[q])) for q in range(dfa.num_states)}
    assert len(rows) == dfa.num_states
    assert dfa.is_dead(3) and dfa.distance(0) == 1 and dfa.distance(1) == 1 and dfa.distance(2) == 0


def test_step_ignores_unmentioned_propositions_and_accepts_any_iterable():
    dfa = compile_ltlf("F a").dfa
    q = dfa.step(dfa.initial, {"zzz", "room_1_1"})
    assert not dfa.is_accepting(q)
    assert dfa.is_accepting(dfa.step(q, ["a", "zzz"]))
    assert dfa.step(q, frozenset()) == dfa.step(q, [])


def test_strings_where_sets_belong_are_refused():
    with pytest.raises(SpecError, match="set of proposition names"):
        compile_ltlf("F a").dfa.step(0, "a")
    with pytest.raises(SpecError, match="collection of names"):
        compile_ltlf("F a", "a,b")


def test_empty_trace_is_not_a_model():
    # MONA accepts the empty word for G a in its start state; LTLf traces are non-empty.
    spec = compile_ltlf("G a")
    assert not spec.dfa.is_accepting(spec.dfa.initial)
    assert spec.dfa.accepts([{"a"}]) and not spec.dfa.accepts([set()])
    assert compile_ltlf("G false").satisfiable is False
    assert compile_ltlf("true").dfa.is_valid() and not compile_ltlf("G a").dfa.is_valid()


def test_shortest_accepting_trace_is_shortest_with_minimal_labels():
    dfa = compile_ltlf("F(a & X(b & X c)) & G !d").dfa
    assert dfa.shortest_accepting_trace() == [frozenset({"a"}), frozenset({"b"}), frozenset({"c"})]
    assert compile_ltlf("G !a").dfa.shortest_accepting_trace() == [frozenset()]


def test_cache_hit_on_disk_and_shared_across_proposition_names(tmp_path, monkeypatch):
    from keel.spec import automaton

    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(automaton, "_MEMORY", {})
    runs = STATS["mona_runs"]
    compile_ltlf("G(x -> X y) & F zz")
    assert STATS["mona_runs"] == runs + 1 and len(list((tmp_path / "spec").glob("*.json"))) == 1
    monkeypatch.setattr(automaton, "_MEMORY", {})  # a new process: only the disk is left
    disk = STATS["disk_hits"]
    spec = compile_ltlf("G(p -> X q) & F r")  # same shape, renamed: the same cache entry
    assert STATS["mona_runs"] == runs + 1 and STATS["disk_hits"] == disk + 1
    assert spec.dfa.accepts([{"p"}, {"q", "r"}]) and not spec.dfa.accepts([{"p"}, {"r"}])
    (next((tmp_path / "spec").glob("*.json"))).write_text("{not json")  # a corrupt entry is recompiled
    monkeypatch.setattr(automaton, "_MEMORY", {})
    compile_ltlf("G(x -> X y) & F zz")
    assert STATS["mona_runs"] == runs + 2


def test_propositions_named_like_keywords_of_the_backends():
    # ltlf2dfa reserves `last`/`end`, MONA reserves `in`, `all1`...: names are renamed before compiling.
    spec = compile_ltlf("F last & G !end & F(in & X all1)")
    assert spec.dfa.accepts([{"last"}, {"in"}, {"all1"}])
    assert not spec.dfa.accepts([{"last"}, {"in"}, {"all1", "end"}])


def test_ltlf2dfa_string_spells_out_weak_until():
    assert ltlf2dfa_string(parse("a W b")) == "((a U b) | G(a))"


# ---------------------------------------------------------------------------------------------- hypothesis

PROPS = ["a", "b", "c"]


def formulas():
    leaves = st.one_of(st.sampled_from([Prop(p) for p in PROPS]), st.sampled_from([Const(True), Const(False)]))

    def extend(children):
        return st.one_of(
            st.builds(Unary, st.sampled_from(["!", "X", "WX", "G", "F", "Y", "O", "H"]), children),
            st.builds(Binary, st.sampled_from(["&", "|", "->", "<->", "U", "R", "W", "S"]), children, children),
        )

    return st.recursive(leaves, extend, max_leaves=6)


letter = st.frozensets(st.sampled_from(PROPS))


@settings(
    max_examples=150, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(f=formulas(), trace_list=st.lists(st.lists(letter, min_size=1, max_size=7), min_size=1, max_size=8))
def test_dfa_matches_direct_evaluator_on_random_formulas(f, trace_list):
    spec = compile_ltlf(to_string(f))
    assert spec.formula == f
    monitor = spec.monitor()
    for trace in trace_list:
        assert spec.dfa.accepts(trace) == holds(f, trace), (to_string(f), trace)
        # Monitor verdicts: SATISFIED iff the prefix is a model; VIOLATED only if no extension is.
        monitor.reset()
        for i, labels in enumerate(trace):
            verdict = monitor.step(labels)
            assert (verdict.value == "satisfied") == holds(f, trace[: i + 1])
            if verdict.value == "violated":
                assert not any(holds(f, list(trace[: i + 1]) + list(ext)) for ext in traces(PROPS, 2))
