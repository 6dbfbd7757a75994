"""Discounted predictive CFR+ (PDCFR+; Xu et al. 2024, "Minimizing Weighted Counterfactual Regret
with Optimistic Online Mirror Descent", IJCAI, arXiv 2404.13891).

Before adding iteration t's regrets, the (non-negative) accumulated regrets are discounted by
(t-1)^alpha / ((t-1)^alpha + 1); the policy is regret matching on the next discounted regrets plus
the prediction (last instantaneous regret); the average weights iteration t by t^gamma.
Constants alpha = 2.3, gamma = 5 as in that paper.
"""

import numpy as np

DEFAULTS = {"alpha": 2.3, "gamma": 5.0}


def accumulate_regret(R, r, t, mem, seg):
    d = (t - 1) ** mem["alpha"] / ((t - 1) ** mem["alpha"] + 1.0)
    return np.maximum(R * d + r, 0.0)


def regret_to_policy(R, r, t, mem, seg):
    d = t ** mem["alpha"] / (t ** mem["alpha"] + 1.0)
    return np.maximum(R * d + r, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    return S + t ** mem["gamma"] * c
