"""Shields for the safety part of an LTLf formula, in both forms of Alshiekh et al.

Alshiekh, Bloem, Ehlers, Könighofer, Niekum, Topcu, "Safe reinforcement learning via shielding", AAAI 2018.
A shield sits between agent and environment and keeps the run inside the formula's safety closure:
the automaton must never enter a dead state (one from which no accepting state can be reached; see
`Spec.safety_part`). With an exact one-step model of the environment (`possible_labels_after(action)`,
every label set the next state may carry) an action is safe in automaton state q when none of those
label sets moves q to a dead state.

- Pre-emptive shield: before the agent acts it is given the set of safe actions (`info["action_mask"]`);
  an unsafe action taken anyway is refused and replaced by a safe one (counted).
- Post-posed shield: the agent acts freely; an unsafe action is replaced by a safe one and
  `info["shield_override"]` says so.

Two ways to decide "safe":
- One-step lookahead (`safe_mask`, for envs that only give `possible_labels_after`): an action is safe
  when none of its possible next label sets violates. Where a violation can be forced several steps
  after an innocent-looking move (a slippery cell next to a hazard, or `G(a -> X b)` where `b` may be
  unreachable) no safe action may be left; the shield then picks the action with the fewest violating
  outcomes and flags `info["shield_no_safe_action"]`. It promises nothing under noise.
- The safety game of Alshiekh et al. (`Shield.solve`, given the full finite model: every state's
  possible successors): the largest set of (automaton state, env state) pairs from which violations can
  be avoided for ever against every resolution of the noise (a greatest fixpoint), and exactly the
  actions that stay inside it. From every winning start, zero violations are guaranteed.

The wrappers use the safety game whenever the env offers its finite model (`FiniteModel`: the grid
rooms do) and fall back to one-step lookahead otherwise; the solved table is cached per (spec, model),
and a start state outside the winning region is refused with a clear error at `reset`.

`filter_actions` is the one place where a shield's mask meets an agent's choice (pre-emptive: choose
among safe actions; post-posed: replace an unsafe choice); the wrappers here and Keel's learners
(`keel.rl.product`) all call it.

The automaton steps on the labels of each state reached by an action (`info["labels"]` after `step`);
the labels returned by `reset` are not a step, as in reward machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from keel.spec.ltlf import SpecError

LabelModel = Callable[[int], Iterable[frozenset[str]]] | Sequence[Iterable[frozenset[str]]]
ShieldMode = Literal["none", "preemptive", "postposed"]
SHIELD_MODES: tuple[str, ...] = ("none", "preemptive", "postposed")


@runtime_checkable
class FiniteModel(Protocol):
    """An env whose whole transition structure is a finite table, so a shield can solve the safety game."""

    def shield_model(self) -> tuple[Sequence[frozenset[str]], np.ndarray]:
        """(labels of each model state, outcomes[s, a, k]: every state action a may lead to from s)."""
        ...

    def model_state(self) -> int:
        """The index of the env's current state in `shield_model()`."""
        ...


def mask_scores(safe: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Scores with the unsafe actions at -inf: what a pre-emptively shielded agent chooses from."""
    return np.where(safe, scores, -np.inf)


def filter_actions(mode: str, safe: np.ndarray, scores: np.ndarray, chosen: np.ndarray | None = None):
    """Actions under a shield, for a batch: `safe` [N, A] the shield's masks, `scores` [N, A] rank the
    actions (Q-values, logits, or random numbers for a random pick), `chosen` [N] the agent's own choice
    where it already made one (exploration). Returns (actions [N], overridden [N] bool).

    preemptive: the agent only ever chooses among safe actions (a choice outside them is refused and
                replaced by the best-scored safe action; not counted as an override of a free choice).
    postposed:  the agent chooses freely; an unsafe choice is replaced by the best-scored safe action.
    none:       the agent's choice stands.
    A row without any safe action keeps the agent's choice (nothing can be promised there).
    """
    if mode not in SHIELD_MODES:
        raise SpecError(f"shield must be one of {', '.join(SHIELD_MODES)}, got {mode!r}")
    n = scores.shape[0]
    best_safe = np.argmax(mask_scores(safe, scores), axis=1)
    if chosen is None:
        chosen = np.argmax(scores, axis=1) if mode != "preemptive" else best_safe
    if mode == "none":
        return chosen, np.zeros(n, dtype=bool)
    override = ~safe[np.arange(n), chosen] & safe.any(axis=1)
    return np.where(override, best_safe, chosen), (override if mode == "postposed" else np.zeros(n, bool))


class Shield:
    """The functional core: safe-action masks over automaton states, for single or batched envs."""

    def __init__(self, spec: Any):
        self.spec = spec
        self.dfa = spec.dfa
        self.initial = self.dfa.initial
        self._unsafe: dict[tuple[int, frozenset[str]], bool] = {}

    def advance(self, q: int, labels: Iterable[str]) -> int:
        return self.dfa.step(q, labels)

    def violates(self, q: int, labels: Iterable[str]) -> bool:
        """Would seeing `labels` in automaton state `q` violate the safety part for ever?"""
        labels = labels if isinstance(labels, frozenset) else frozenset(labels)
        key = (q, labels)
        bad = self._unsafe.get(key)
        if bad is None:
            bad = self._unsafe[key] = self.dfa.is_dead(self.dfa.step(q, labels))
        return bad

    def risk(self, q: int, possible_labels_after: LabelModel, n_actions: int) -> np.ndarray:
        """Fraction of each action's possible outcomes that violate (0 = safe)."""
        risk = np.zeros(n_actions, dtype=np.float64)
        for a in range(n_actions):
            outcomes = list(possible_labels_after(a) if callable(possible_labels_after) else possible_labels_after[a])
            if not outcomes:
                raise SpecError(f"possible_labels_after({a}) returned no label set; the model must list >= 1")
            risk[a] = sum(self.violates(q, lab) for lab in outcomes) / len(outcomes)
        return risk

    def safe_mask(self, q: int, possible_labels_after: LabelModel, n_actions: int) -> np.ndarray:
        """True for the actions none of whose possible outcomes violates; if there is none, the least risky."""
        risk = self.risk(q, possible_labels_after, n_actions)
        return risk <= risk.min()  # == (risk == 0) whenever some action is safe

    def solve(self, cell_labels: Sequence[Iterable[str]], outcomes: np.ndarray,
              ends_on_accept: bool = False) -> ShieldTable:
        """The safety game on a finite model: `outcomes[s, a]` lists the cells action a may lead to from
        cell s (shape (S, A, K); repeat a cell to pad), `cell_labels[s]` the labels of cell s.

        `ends_on_accept`: the run stops when the automaton accepts (an episode that ends on satisfying the
        task), so accepting pairs are winning sinks; otherwise play goes on after acceptance too."""
        outcomes = np.asarray(outcomes, dtype=np.int64)
        if outcomes.ndim == 2:
            outcomes = outcomes[:, :, None]
        if outcomes.ndim != 3 or outcomes.shape[0] != len(cell_labels):
            raise SpecError(f"outcomes must have shape (cells, actions, K) with cells = {len(cell_labels)}, "
                            f"got {outcomes.shape}")
        if outcomes.size and (outcomes.min() < 0 or outcomes.max() >= len(cell_labels)):
            raise SpecError("outcomes lists a cell index outside 0..cells-1")
        labels = [frozenset(x) for x in cell_labels]
        n_q = self.dfa.num_states
        # next_q[q, s]: the automaton state after entering cell s from automaton state q.
        next_q = np.array([[self.dfa.step(q, lab) for lab in labels] for q in range(n_q)], dtype=np.int64)
        dead = np.array([self.dfa.is_dead(q) for q in range(n_q)])
        sink = np.array([ends_on_accept and self.dfa.is_accepting(q) for q in range(n_q)])
        win = np.repeat(~dead[:, None], len(labels), axis=1)  # start from "not violated yet", shrink
        while True:
            # ok[q, s, a]: every outcome of a lands in a winning (automaton state, cell) pair.
            ok = win[next_q[:, outcomes], outcomes[None]].all(axis=-1)
            new = win & (ok.any(axis=-1) | sink[:, None])
            if (new == win).all():
                break
            win = new
        return ShieldTable(safe=ok & win[:, :, None], winning=win, next_q=next_q, initial=self.initial)

    def one_step_table(self, cell_labels: Sequence[Iterable[str]], outcomes: np.ndarray) -> ShieldTable:
        """The one-step-lookahead shield on the same finite model, as a table (for comparison with
        `solve`): safe[q, s] = `safe_mask` there; `winning` marks every non-dead pair (it promises nothing)."""
        outcomes = np.asarray(outcomes, dtype=np.int64)
        if outcomes.ndim == 2:
            outcomes = outcomes[:, :, None]
        labels = [frozenset(x) for x in cell_labels]
        n_q, n_s = self.dfa.num_states, outcomes.shape[0]
        next_q = np.array([[self.dfa.step(q, lab) for lab in labels] for q in range(n_q)], dtype=np.int64)
        dead = np.array([self.dfa.is_dead(q) for q in range(n_q)])
        bad = dead[next_q[:, outcomes]]  # [q, s, a, k]: this outcome violates
        risk = bad.mean(axis=-1)
        safe = risk <= risk.min(axis=-1, keepdims=True)
        return ShieldTable(safe=safe, winning=np.repeat(~dead[:, None], n_s, axis=1), next_q=next_q,
                           initial=self.initial)


@dataclass
class ShieldTable:
    """A solved shield: `safe[q, s, a]` (only actions that keep the run winning), `winning[q, s]`."""

    safe: np.ndarray
    winning: np.ndarray
    next_q: np.ndarray
    initial: int

    def mask(self, q: int, cell: int) -> np.ndarray:
        """Safe actions in (q, cell); if the pair is already lost, every action (nothing can be promised)."""
        row = self.safe[q, cell]
        return row if row.any() else np.ones_like(row)


def _check_env(env: gym.Env) -> None:
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise SpecError(f"a shield needs a Discrete action space, got {env.action_space}")
    for attr in ("possible_labels_after", "propositions"):
        if not hasattr(env.unwrapped, attr) and not hasattr(env, attr):
            raise SpecError(f"a shield needs an env with `{attr}` (the proposition contract of keel.envs)")


class _ShieldWrapper(gym.Wrapper):
    """Tracks the automaton state along the run and counts overrides and (never, we hope) violations."""

    def __init__(self, env: gym.Env, spec: Any, seed: int | None = None):
        super().__init__(env)
        _check_env(env)
        props = getattr(env.unwrapped, "propositions", None)
        if props is not None:
            from keel.spec.ltlf import check_propositions

            check_propositions(spec.text, spec.formula, props)
        self.shield = Shield(spec)
        self.table: ShieldTable | None = None  # the solved safety game, when the env offers its model
        if isinstance(env.unwrapped, FiniteModel):
            self.table = solved_table(spec, env.unwrapped)
        self.q = self.shield.initial
        self.overrides = 0  # unsafe actions replaced
        self.violations = 0  # times the run entered a dead automaton state (the safety part was violated)
        self.no_safe_action = 0  # steps where every action risked a violation
        self._rng = np.random.default_rng(seed)

    def _model(self):
        env = self.env.unwrapped if hasattr(self.env.unwrapped, "possible_labels_after") else self.env
        return env.possible_labels_after

    def action_mask(self) -> np.ndarray:
        if self.table is not None:
            return self.table.mask(self.q, self._state())
        return self.shield.safe_mask(self.q, self._model(), int(self.action_space.n))

    def _state(self) -> int:
        env = self.env.unwrapped
        assert isinstance(env, FiniteModel)
        return env.model_state()

    def action_masks(self) -> np.ndarray:
        """The same, under the name sb3-contrib's MaskablePPO looks for."""
        return self.action_mask()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self.q = self.shield.initial
        if self.table is not None and not self.table.winning[self.q, self._state()]:
            raise SpecError(f"the start state {self._state()} is not in the winning region of the safety game of "
                            f"{self.shield.spec.text!r}: the environment can force a violation whatever the agent "
                            "does, so no shield can promise safety from here (lower the slip, move hazards, or "
                            "start elsewhere)")
        return obs, self._annotate(info, override=False)

    def _annotate(self, info: dict, override: bool) -> dict:
        info = dict(info)
        info["spec_state"] = self.q
        info["shield_override"] = override
        return info

    def _filter(self, action: Any) -> tuple[int, bool, bool]:
        """(the action to take, whether it was overridden, whether no action was safe)."""
        action = int(action)
        n = int(self.action_space.n)
        if not 0 <= action < n:
            raise SpecError(f"action {action} is outside the action space Discrete({n})")
        if self.table is not None:
            mask = self.table.mask(self.q, self._state())
            no_safe = not self.table.safe[self.q, self._state()].any()
        else:
            risk = self.shield.risk(self.q, self._model(), n)
            mask = risk <= risk.min()
            no_safe = bool(risk.min() > 0)
        self.no_safe_action += no_safe
        # a random safe action replaces an unsafe pick: random scores, the shared filter
        taken, over = filter_actions("postposed", mask[None], self._rng.random((1, n)), np.array([action]))
        self.overrides += int(over[0])
        return int(taken[0]), bool(over[0]), no_safe

    def step(self, action: Any):
        action, override, no_safe = self._filter(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        labels = info.get("labels")
        if labels is None:
            labels = self.env.unwrapped.labels()
        was_dead = self.shield.dfa.is_dead(self.q)
        self.q = self.shield.advance(self.q, labels)
        if self.shield.dfa.is_dead(self.q) and not was_dead:
            self.violations += 1
        info = self._annotate(info, override)
        info["shield_action"] = action
        info["shield_no_safe_action"] = no_safe
        return obs, reward, terminated, truncated, info


class PreemptiveShield(_ShieldWrapper):
    """Offers the safe actions before the agent picks (`info["action_mask"]`), refuses unsafe ones."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        info["action_mask"] = self.action_mask()
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        info["action_mask"] = self.action_mask()
        return obs, reward, terminated, truncated, info


class PostPosedShield(_ShieldWrapper):
    """Lets the agent act and replaces an unsafe action by a safe one (`info["shield_override"]`)."""


_SOLVED: dict[tuple, ShieldTable] = {}


def solved_table(spec: Any, env: FiniteModel) -> ShieldTable:
    """`Shield(spec).solve` on the env's finite model, computed once per (formula, model) in this process."""
    labels, outcomes = env.shield_model()
    outcomes = np.ascontiguousarray(outcomes, dtype=np.int64)
    key = (spec.text, tuple(labels), outcomes.shape, outcomes.tobytes())
    if key not in _SOLVED:
        _SOLVED[key] = Shield(spec).solve(labels, outcomes)
    return _SOLVED[key]
