"""Epsilon-greedy action choice over a batch of Q-rows, the one copy every tabular learner calls.

Sutton & Barto, "Reinforcement Learning: An Introduction" (2nd ed.), section 2.2. Entries at -inf are
actions the agent may not take (a pre-emptive shield masked them, `keel.spec.shield.mask_scores`):
neither the greedy nor the random pick ever chooses them.
"""

from __future__ import annotations

import numpy as np


def epsilon_greedy(q: np.ndarray, rng: np.random.Generator, epsilon: float) -> np.ndarray:
    """Actions [N] for Q-rows q [N, A]: with probability epsilon a uniform allowed action, else a greedy
    one, greedy ties broken at random (not always the first action). Draws three arrays from `rng`."""
    noise = rng.random(q.shape)
    greedy = np.argmax(np.where(q == q.max(axis=1, keepdims=True), noise, -1.0), axis=1)
    rand_pick = np.argmax(np.where(np.isfinite(q), rng.random(q.shape), -1.0), axis=1)
    explore = rng.random(len(q)) < epsilon
    return np.where(explore, rand_pick, greedy)
