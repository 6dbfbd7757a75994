"""Predictive CFR+ (Farina, Kroer & Sandholm 2021, "Faster Game Solving via Predictive Blackwell
Approachability: Connecting Regret Matching and Mirror Descent", arXiv 2007.14358).

Accumulate like CFR+ (floor at zero), but play regret matching on R + m, where the prediction m of
the next instantaneous regret is the last one observed; quadratic averaging (weight t^2).
"""

import numpy as np

DEFAULTS = {"gamma": 2.0}


def accumulate_regret(R, r, t, mem, seg):
    return np.maximum(R + r, 0.0)


def regret_to_policy(R, r, t, mem, seg):
    return np.maximum(R + r, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    return S + t ** mem["gamma"] * c
