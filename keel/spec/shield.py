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

Guarantee: as long as some action is safe in each visited state, no violation ever happens. The shield
looks one step ahead only (that is all an exact one-step model supports), so for formulas whose
violation can be forced several steps after an innocent-looking move (`G(a -> X b)` where `b` may be
unreachable), it cannot promise that a safe action always exists; it then picks the action with the
fewest violating outcomes and flags `info["shield_no_safe_action"]`. State invariants (`G !hazard`),
orderings (`!open W unlocked`) and reach-avoid tasks are covered exactly.

The automaton steps on the labels of each state reached by an action (`info["labels"]` after `step`);
the labels returned by `reset` are not a step, as in reward machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
        self.violations = 0  # steps that entered a dead automaton state
        self.no_safe_action = 0  # steps where every action risked a violation
        self._rng = np.random.default_rng(seed)

    def _model(self):
        env = self.env.unwrapped if hasattr(self.env.unwrapped, "possible_labels_after") else self.env
        return env.possible_labels_after

    def action_mask(self) -> np.ndarray:
        return self.shield.safe_mask(self.q, self._model(), int(self.action_space.n))

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
        self.q = self.shield.advance(self.q, labels)
        if self.shield.dfa.is_dead(self.q):
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
