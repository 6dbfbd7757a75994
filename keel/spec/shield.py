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

Guarantee: as long as some action is safe in each visited state, no violation ever happens. The
wrappers look one step ahead only (that is all an exact one-step model supports), so where a violation
can be forced several steps after an innocent-looking move (a slippery cell next to a hazard, or
`G(a -> X b)` where `b` may be unreachable) no safe action may be left; the shield then picks the action
with the fewest violating outcomes and flags `info["shield_no_safe_action"]`. With a full finite model
(every cell's possible successors), `Shield.solve` plays the safety game of Alshiekh et al. instead: it
computes the largest set of (automaton state, cell) pairs from which violations can be avoided for ever
(a greatest fixpoint) and allows exactly the actions that stay inside it, so zero violations are
guaranteed from every winning start.

The automaton steps on the labels of each state reached by an action (`info["labels"]` after `step`);
the labels returned by `reset` are not a step, as in reward machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from keel.spec.ltlf import SpecError

LabelModel = Callable[[int], Iterable[frozenset[str]]] | Sequence[Iterable[frozenset[str]]]


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

    def solve(self, cell_labels: Sequence[Iterable[str]], outcomes: np.ndarray) -> ShieldTable:
        """The safety game on a finite model: `outcomes[s, a]` lists the cells action a may lead to from
        cell s (shape (S, A, K); repeat a cell to pad), `cell_labels[s]` the labels of cell s."""
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
        win = np.repeat(~dead[:, None], len(labels), axis=1)  # start from "not violated yet", shrink
        while True:
            # ok[q, s, a]: every outcome of a lands in a winning (automaton state, cell) pair.
            ok = win[next_q[:, outcomes], outcomes[None]].all(axis=-1)
            new = win & ok.any(axis=-1)
            if (new == win).all():
                break
            win = new
        return ShieldTable(safe=ok & win[:, :, None], winning=win, next_q=next_q, initial=self.initial)


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
        self.q = self.shield.initial
        self.overrides = 0  # unsafe actions replaced
        self.violations = 0  # times the run entered a dead automaton state (the safety part was violated)
        self.no_safe_action = 0  # steps where every action risked a violation
        self._rng = np.random.default_rng(seed)

    def _model(self):
        env = self.env.unwrapped if hasattr(self.env.unwrapped, "possible_labels_after") else self.env
        return env.possible_labels_after

    def action_mask(self) -> np.ndarray:
        return self.shield.safe_mask(self.q, self._model(), int(self.action_space.n))

    def action_masks(self) -> np.ndarray:
        """The same, under the name sb3-contrib's MaskablePPO looks for."""
        return self.action_mask()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self.q = self.shield.initial
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
        risk = self.shield.risk(self.q, self._model(), n)
        mask = risk <= risk.min()
        no_safe = bool(risk.min() > 0)
        self.no_safe_action += no_safe
        if mask[action]:
            return action, False, no_safe
        self.overrides += 1
        return int(self._rng.choice(np.flatnonzero(mask))), True, no_safe

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
