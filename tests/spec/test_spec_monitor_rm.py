"""Monitor verdicts and reward-machine rewards (sparse + potential-based shaping)."""

from __future__ import annotations

import pytest

from keel.spec import SpecError, Verdict, compile_ltlf

REACH_AVOID = "F(goal_a & F goal_b) & G !hazard"


def test_monitor_verdicts_along_a_trace():
    m = compile_ltlf(REACH_AVOID).monitor()
    assert m.verdict is Verdict.OPEN  # before any step
    assert m.step(set()) is Verdict.OPEN
    assert m.step({"goal_b"}) is Verdict.OPEN  # b before a does not count
    assert m.step({"goal_a"}) is Verdict.OPEN
    assert m.step({"goal_b"}) is Verdict.SATISFIED
    assert m.step(set()) is Verdict.SATISFIED
    assert m.step({"hazard"}) is Verdict.VIOLATED
    assert m.step({"goal_a", "goal_b"}) is Verdict.VIOLATED  # for ever
    m.reset()
    assert m.state == m.dfa.initial and m.verdict is Verdict.OPEN


def test_monitor_satisfied_is_not_final_for_safety():
    m = compile_ltlf("G !a").monitor()
    assert m.run([set(), {"b"}]) is Verdict.SATISFIED
    assert m.step({"a"}) is Verdict.VIOLATED


def test_monitor_past_style_rule_for_guardrails():
    m = compile_ltlf("G !transfer | (!transfer W confirm)").monitor()
    assert m.run([{"read"}, {"confirm"}, {"transfer"}]) is Verdict.SATISFIED
    assert m.run([{"read"}, {"transfer"}]) is Verdict.VIOLATED
    assert m.run([{"confirm", "transfer"}]) is Verdict.SATISFIED  # the same step counts


def test_reward_machine_sparse():
    rm = compile_ltlf(REACH_AVOID).reward_machine(shaping=False)
    q = rm.initial
    q, r, done = rm.step(q, {"goal_a"})
    assert (r, done) == (0.0, False)
    q, r, done = rm.step(q, {"goal_b"})
    assert (r, done) == (1.0, True)
    q, r, done = rm.step(rm.initial, {"hazard"})
    assert (r, done) == (0.0, True) and rm.dfa.is_dead(q)


def test_reward_machine_shaping_values():
    gamma = 0.9
    rm = compile_ltlf("F(a & X(b & X c)) & G !d").reward_machine(gamma=gamma, shaping=True)
    dfa = rm.dfa
    assert rm.potential(rm.initial) == -3.0
    finite = max(dfa.distance(q) for q in rm.states if not dfa.is_dead(q))
    dead = next(q for q in rm.states if dfa.is_dead(q))
    assert rm.potential(dead) == -(finite + 1)
    # One step of progress: gamma * (-2) - (-3)
    q1, r, done = rm.step(rm.initial, {"a"})
    assert r == pytest.approx(gamma * -2.0 + 3.0) and not done
    # Standing still: gamma * Phi - Phi < 0, a small cost of delay.
    q_same, r, _ = rm.step(rm.initial, set())
    assert q_same == rm.initial and r == pytest.approx((gamma - 1) * -3.0)
    # Completing the task: sparse 1 plus the last shaping term (Phi(accepting) = 0).
    q2, _, _ = rm.step(q1, {"b"})
    q3, r, done = rm.step(q2, {"c"})
    assert done and dfa.is_accepting(q3) and r == pytest.approx(1.0 + 0.0 - (-1.0))
    # Violating: the dead state's potential is the lowest, so it is the worst move.
    _, r_dead, done = rm.step(rm.initial, {"d"})
    assert done and r_dead == pytest.approx(gamma * rm.potential(dead) + 3.0) and r_dead < 0


def test_shaping_telescopes_along_any_episode():
    """Potential-based shaping adds gamma^T Phi(q_T) - Phi(q_0) to the discounted return (Ng et al.)."""
    spec = compile_ltlf(REACH_AVOID)
    gamma = 0.95
    sparse, shaped = spec.reward_machine(gamma, shaping=False), spec.reward_machine(gamma, shaping=True)
    trace = [set(), {"goal_b"}, {"goal_a"}, set(), set(), {"goal_b"}]
    q = shaped.initial
    ret_sparse = ret_shaped = 0.0
    for t, labels in enumerate(trace):
        q_next, r_shaped, _ = shaped.step(q, labels)
        _, r_sparse, _ = sparse.step(q, labels)
        ret_sparse += gamma**t * r_sparse
        ret_shaped += gamma**t * r_shaped
        q = q_next
    expected = ret_sparse + gamma ** len(trace) * shaped.potential(q) - shaped.potential(shaped.initial)
    assert ret_shaped == pytest.approx(expected)


def test_reward_machine_refuses_bad_gamma():
    with pytest.raises(SpecError, match="gamma"):
        compile_ltlf("F a").reward_machine(gamma=0.0)


def test_safety_part_accepts_exactly_the_non_dead_states():
    spec = compile_ltlf(REACH_AVOID)
    safe = spec.safety_part()
    assert safe.accepts([set(), {"goal_b"}])  # unfinished but not violated
    assert not safe.accepts([set(), {"hazard"}, {"goal_a"}])
    assert safe.accepting == frozenset(range(spec.dfa.num_states)) - spec.dfa.dead_states
