"""Projected replicator dynamics (Lanctot et al. 2017, "A Unified Game-Theoretic Approach to Multiagent
Reinforcement Learning"): replicator steps projected back onto the simplex with every member kept at
probability >= gamma / |Pi|; payoffs scaled to unit range; average of the second half of the run."""

import numpy as np

from keel.games.meta.common import project_simplex, pure_payoffs


def meta_solver(M, iteration):
    n = M.shape[-1]
    steps, dt, gamma = 2000, 0.05, 1e-6
    x = [np.full(k, 1.0 / k) for k in M.shape[:-1]]
    avg = [np.zeros(k) for k in M.shape[:-1]]
    scale = max(float(np.ptp(M)), 1e-12)
    for t in range(steps):
        u = [pure_payoffs(M, x, p) / scale for p in range(n)]
        x = [project_simplex(x[p] + dt * x[p] * (u[p] - u[p] @ x[p]), gamma / len(x[p])) for p in range(n)]
        if t >= steps // 2:
            for p in range(n):
                avg[p] += x[p]
    return [a / a.sum() for a in avg]
