"""Discounted CFR, DCFR(alpha, beta, gamma) (Brown & Sandholm 2019, arXiv 1809.04040).

At iteration t, after adding the new regrets, positive accumulated regrets are multiplied by
t^alpha / (t^alpha + 1) and negative ones by t^beta / (t^beta + 1); iteration t's policy enters the
average with weight t^gamma. Defaults (3/2, 0, 2) as the paper and OpenSpiel's `DCFRSolver`.
"""

import numpy as np

DEFAULTS = {"alpha": 1.5, "beta": 0.0, "gamma": 2.0}


def accumulate_regret(R, r, t, mem, seg):
    R = R + r
    pos = t ** mem["alpha"] / (t ** mem["alpha"] + 1.0)
    neg = t ** mem["beta"] / (t ** mem["beta"] + 1.0)
    return R * np.where(R >= 0, pos, neg)


def regret_to_policy(R, r, t, mem, seg):
    return np.maximum(R, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    return S + t ** mem["gamma"] * c
