"""Vanilla CFR (Zinkevich et al. 2007, "Regret Minimization in Games with Incomplete Information").

As OpenSpiel's `CFRSolver`: alternating updates, plain regret matching, uniform averaging.
"""

import numpy as np

DEFAULTS: dict = {}


def accumulate_regret(R, r, t, mem, seg):
    return R + r


def regret_to_policy(R, r, t, mem, seg):
    return np.maximum(R, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    return S + c
