"""Meta-strategy solvers for PSRO: from the empirical payoff tensor to one mixture per player.

`M` has shape (|Pi_0|, ..., |Pi_{n-1}|, n): M[i_0, ..., i_{n-1}, p] is player p's expected return
when each player j plays population member i_j. Every solver returns a list of n probability vectors.
- uniform: fictitious play over the population (Heinrich et al. 2015 / PSRO-uniform).
- nash: exact Nash of the two-player zero-sum meta-game by linear programming (double oracle,
  McMahan et al. 2003).
- rm: regret matching self-play on the meta-game, average strategy (Hart & Mas-Colell 2000).
- prd: projected replicator dynamics (Lanctot et al. 2017), strategies kept >= gamma / |Pi|.
- shor: SHOR (arXiv 2602.16928): (1 - lambda) * optimistic regret matching + lambda * softmax over
  pure strategies' payoffs, with lambda, the temperature and a diversity bonus annealed over PSRO
  iterations (lambda 0.3 -> 0.05, tau 0.5 -> 0.01, bonus 0.05 -> 0.001 over 75 iterations, as
  summarised from the paper; the bonus form here, a push toward under-played members, is ours).
"""

from __future__ import annotations

import numpy as np

from keel.errors import KeelError

NAMES = ["uniform", "nash", "rm", "prd", "shor"]


def pure_payoffs(M: np.ndarray, mixes: list[np.ndarray], p: int) -> np.ndarray:
    """Player p's expected return of each of its members against the others' mixtures."""
    if M.ndim == 3:  # two players: plain matrix-vector products
        return M[:, :, 0] @ mixes[1] if p == 0 else mixes[0] @ M[:, :, 1]
    u = M[..., p]
    for j in reversed(range(len(mixes))):
        if j != p:
            u = np.tensordot(u, mixes[j], axes=([j], [0]))
    return u


def uniform(M: np.ndarray, iteration: int = 0) -> list[np.ndarray]:
    return [np.full(k, 1.0 / k) for k in M.shape[:-1]]


def nash(M: np.ndarray, iteration: int = 0) -> list[np.ndarray]:
    from scipy.optimize import linprog

    if M.shape[-1] != 2 or not np.allclose(M[..., 0], -M[..., 1], atol=1e-9):
        raise KeelError("the nash meta-solver needs a two-player zero-sum game; use rm, prd, shor or uniform")
    A = M[..., 0]

    def maximin(A):
        # max v  s.t.  x^T A >= v (every column), sum x = 1, x >= 0; variables (x, v).
        m, k = A.shape
        c = np.zeros(m + 1)
        c[-1] = -1.0
        res = linprog(c, A_ub=np.hstack([-A.T, np.ones((k, 1))]), b_ub=np.zeros(k),
                      A_eq=np.hstack([np.ones((1, m)), np.zeros((1, 1))]), b_eq=[1.0],
                      bounds=[(0, None)] * m + [(None, None)], method="highs")
        if not res.success:
            raise KeelError(f"the Nash LP failed: {res.message}")
        x = np.maximum(res.x[:m], 0)
        return x / x.sum()

    return [maximin(A), maximin(-A.T)]


def rm(M: np.ndarray, iteration: int = 0, iters: int = 2000) -> list[np.ndarray]:
    n = M.shape[-1]
    x = uniform(M)
    regret = [np.zeros_like(v) for v in x]
    avg = [np.zeros_like(v) for v in x]
    for _ in range(iters):
        u = [pure_payoffs(M, x, p) for p in range(n)]
        for p in range(n):
            regret[p] += u[p] - u[p] @ x[p]
            avg[p] += x[p]
        x = [_rm(r) for r in regret]
    return [a / a.sum() for a in avg]


def _rm(r: np.ndarray) -> np.ndarray:
    pos = np.maximum(r, 0.0)
    s = pos.sum()
    return pos / s if s > 0 else np.full(len(r), 1.0 / len(r))


def prd(M: np.ndarray, iteration: int = 0, iters: int = 2000, dt: float = 0.05, gamma: float = 1e-6) -> list[np.ndarray]:
    n = M.shape[-1]
    x = uniform(M)
    avg = [np.zeros_like(v) for v in x]
    scale = max(float(np.ptp(M)), 1e-12)
    for t in range(iters):
        u = [pure_payoffs(M, x, p) / scale for p in range(n)]
        x = [_project(x[p] + dt * x[p] * (u[p] - u[p] @ x[p]), gamma / len(x[p])) for p in range(n)]
        if t >= iters // 2:
            for p in range(n):
                avg[p] += x[p]
    return [a / a.sum() for a in avg]


def _project(y: np.ndarray, floor: float) -> np.ndarray:
    """Euclidean projection onto {x : sum x = 1, x >= floor} (sort-based simplex projection)."""
    k = len(y)
    z = y - floor
    total = 1.0 - floor * k
    s = np.sort(z)[::-1]
    css = np.cumsum(s) - total
    rho = np.nonzero(s - css / np.arange(1, k + 1) > 0)[0][-1]
    theta = css[rho] / (rho + 1)
    return np.maximum(z - theta, 0.0) + floor


def shor(M: np.ndarray, iteration: int = 0, iters: int = 1000, anneal: int = 75) -> list[np.ndarray]:
    n = M.shape[-1]
    prog = min(1.0, iteration / anneal)
    lam, tau, bonus = 0.30 - 0.25 * prog, 0.50 - 0.49 * prog, 0.05 - 0.049 * prog
    x = uniform(M)
    regret = [np.zeros_like(v) for v in x]
    last = [np.zeros_like(v) for v in x]
    avg = [np.zeros_like(v) for v in x]
    scale = max(float(np.ptp(M)), 1e-12)
    for _ in range(iters):
        u = [pure_payoffs(M, x, p) / scale for p in range(n)]
        for p in range(n):
            inst = u[p] - u[p] @ x[p] + bonus * (1.0 / len(x[p]) - x[p])  # diversity: lift under-played members
            regret[p] = np.maximum(regret[p] + inst, 0.0)  # RM+
            last[p] = inst
            avg[p] += x[p]
        x = [_rm(regret[p] + last[p]) for p in range(n)]  # optimistic: predict the next regret by the last
    orm = [a / a.sum() for a in avg]
    out = []
    for p in range(n):
        u = pure_payoffs(M, orm, p) / scale
        z = np.exp((u - u.max()) / tau)
        out.append((1 - lam) * orm[p] + lam * z / z.sum())
    return out


SOLVERS = {"uniform": uniform, "nash": nash, "rm": rm, "prd": prd, "shor": shor}


def get(name: str):
    key = name.lower()
    if key not in SOLVERS:
        raise KeelError(f"unknown meta-solver {name!r}; valid: {', '.join(NAMES)}")
    return SOLVERS[key]
