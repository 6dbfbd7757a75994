"""Helpers shared by meta-solvers (and offered to discovered ones inside the sandbox)."""

from __future__ import annotations

import numpy as np


def pure_payoffs(M: np.ndarray, mixes: list, p: int) -> np.ndarray:
    """Player p's expected return of each of its members against the others' mixtures."""
    if M.ndim == 3:  # two players: plain matrix-vector products
        return M[:, :, 0] @ mixes[1] if p == 0 else mixes[0] @ M[:, :, 1]
    u = M[..., p]
    for j in reversed(range(len(mixes))):
        if j != p:
            u = np.tensordot(u, mixes[j], axes=([j], [0]))
    return u


def regret_match(r: np.ndarray) -> np.ndarray:
    """Positive part of r, normalised; uniform if nothing is positive."""
    pos = np.maximum(r, 0.0)
    s = pos.sum()
    return pos / s if s > 0 else np.full(len(r), 1.0 / len(r))


def project_simplex(y: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Euclidean projection onto {x : sum x = 1, x >= floor} (sort-based simplex projection)."""
    k = len(y)
    z = y - floor
    total = 1.0 - floor * k
    s = np.sort(z)[::-1]
    css = np.cumsum(s) - total
    rho = np.nonzero(s - css / np.arange(1, k + 1) > 0)[0][-1]
    theta = css[rho] / (rho + 1)
    return np.maximum(z - theta, 0.0) + floor
