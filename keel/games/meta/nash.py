"""Nash meta-solver for two-player zero-sum meta-games by linear programming (PSRO-Nash is the double
oracle of McMahan, Gordon & Blum 2003): player 0 solves max_x min_j (x^T A)_j, player 1 likewise."""

import numpy as np


def maximin(A):
    """max v s.t. x^T A >= v for every column, sum x = 1, x >= 0; variables (x, v)."""
    from scipy.optimize import linprog

    from keel.errors import KeelError

    m, k = A.shape
    c = np.zeros(m + 1)
    c[-1] = -1.0
    res = linprog(
        c,
        A_ub=np.hstack([-A.T, np.ones((k, 1))]),
        b_ub=np.zeros(k),
        A_eq=np.hstack([np.ones((1, m)), np.zeros((1, 1))]),
        b_eq=[1.0],
        bounds=[(0, None)] * m + [(None, None)],
        method="highs",
    )
    if not res.success:
        raise KeelError(f"the Nash LP failed: {res.message}")
    x = np.maximum(res.x[:m], 0)
    return x / x.sum()


def meta_solver(M, iteration):
    from keel.errors import KeelError

    if M.shape[-1] != 2 or not np.allclose(M[..., 0], -M[..., 1], atol=1e-9):
        raise KeelError("the nash meta-solver needs a two-player zero-sum game; use rm, prd, shor or uniform")
    A = M[..., 0]
    return [maximin(A), maximin(-A.T)]
