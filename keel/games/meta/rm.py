"""Regret-matching meta-solver: simultaneous regret matching self-play on the meta-game, average
strategy (Hart & Mas-Colell 2000, "A Simple Adaptive Procedure Leading to Correlated Equilibrium")."""

import numpy as np

from keel.games.meta.common import pure_payoffs, regret_match


def meta_solver(M, iteration):
    n = M.shape[-1]
    x = [np.full(k, 1.0 / k) for k in M.shape[:-1]]
    regret = [np.zeros(k) for k in M.shape[:-1]]
    avg = [np.zeros(k) for k in M.shape[:-1]]
    for _ in range(2000):
        u = [pure_payoffs(M, x, p) for p in range(n)]
        for p in range(n):
            regret[p] += u[p] - u[p] @ x[p]
            avg[p] += x[p]
        x = [regret_match(r) for r in regret]
    return [a / a.sum() for a in avg]
