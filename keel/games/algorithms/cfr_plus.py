"""CFR+ (Tammelin 2014, "Solving Large Imperfect Information Games Using CFR+").

As OpenSpiel's `CFRPlusSolver`: alternating updates, regret matching+ (accumulated regrets floored
at zero after each update) and linear averaging (iteration t weighted by t).
"""

import numpy as np

DEFAULTS: dict = {}


def accumulate_regret(R, r, t, mem, seg):
    return np.maximum(R + r, 0.0)


def regret_to_policy(R, r, t, mem, seg):
    return np.maximum(R, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    return S + t * c
