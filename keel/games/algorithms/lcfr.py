"""Linear CFR (Brown & Sandholm 2019, "Solving Imperfect-Information Games via Discounted Regret
Minimization", arXiv 1809.04040): iteration t's regrets and policy weighted by t.

Written as OpenSpiel's `LCFRSolver` computes it: after adding iteration t's regrets, multiply the
accumulated regrets by t / (t + 1) (DCFR with alpha = beta = gamma = 1).
"""

import numpy as np

DEFAULTS = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}


def accumulate_regret(R, r, t, mem, seg):
    R = R + r
    pos = t ** mem["alpha"] / (t ** mem["alpha"] + 1.0)
    neg = t ** mem["beta"] / (t ** mem["beta"] + 1.0)
    return R * np.where(R >= 0, pos, neg)


def regret_to_policy(R, r, t, mem, seg):
    return np.maximum(R, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    return S + t ** mem["gamma"] * c
