"""PSRO meta-strategy solvers, one per file; each defines `meta_solver(M, iteration) -> [mixture per player]`.

`M` has shape (|Pi_0|, ..., |Pi_{n-1}|, n): M[i_0, ..., i_{n-1}, p] is player p's expected return when
each player j plays population member i_j. `iteration` is the PSRO iteration (from 1). The helpers in
`common` (pure_payoffs, project_simplex, regret_match) are also what discovered meta-solvers may call.
"""

from __future__ import annotations

import importlib

NAMES = ["uniform", "nash", "rm", "prd", "shor"]


def get(name: str):
    from keel.errors import KeelError

    key = name.lower()
    if key not in NAMES:
        raise KeelError(f"unknown meta-solver {name!r}; valid: {', '.join(NAMES)}")
    return importlib.import_module(f"keel.games.meta.{key}").meta_solver
