"""SHOR, smoothed hybrid optimistic regret (Li, Schultz, Hennes & Lanctot 2026, arXiv 2602.16928).

sigma = (1 - lambda) * ORM + lambda * softmax(u / tau): optimistic regret matching (RM+ whose policy
also counts the last instantaneous regret) averaged over an inner loop, blended with a softmax over the
members' payoffs against it. lambda 0.3 -> 0.05, tau 0.5 -> 0.01 and a diversity bonus 0.05 -> 0.001
are annealed linearly over the first 75 PSRO iterations (constants as summarised from the paper; the
bonus form, a push toward under-played members, is ours: the paper's code was not available here).
"""

import numpy as np

from keel.games.meta.common import pure_payoffs, regret_match


def meta_solver(M, iteration):
    n = M.shape[-1]
    prog = min(1.0, iteration / 75.0)
    lam, tau, bonus = 0.30 - 0.25 * prog, 0.50 - 0.49 * prog, 0.05 - 0.049 * prog
    x = [np.full(k, 1.0 / k) for k in M.shape[:-1]]
    regret = [np.zeros(k) for k in M.shape[:-1]]
    last = [np.zeros(k) for k in M.shape[:-1]]
    avg = [np.zeros(k) for k in M.shape[:-1]]
    scale = max(float(np.ptp(M)), 1e-12)
    for _ in range(1000):
        u = [pure_payoffs(M, x, p) / scale for p in range(n)]
        for p in range(n):
            inst = u[p] - u[p] @ x[p] + bonus * (1.0 / len(x[p]) - x[p])
            regret[p] = np.maximum(regret[p] + inst, 0.0)
            last[p] = inst
            avg[p] += x[p]
        x = [regret_match(regret[p] + last[p]) for p in range(n)]
    orm = [a / a.sum() for a in avg]
    out = []
    for p in range(n):
        u = pure_payoffs(M, orm, p) / scale
        z = np.exp((u - u.max()) / tau)
        out.append((1 - lam) * orm[p] + lam * z / z.sum())
    return out
