"""VAD-CFR, volatility-adaptive discounted CFR (Li, Schultz, Hennes & Lanctot 2026, "Discovering
Multiagent Learning Algorithms with Large Language Models", arXiv 2602.16928).

The paper's evolved code was not available here; this follows its description and public summaries
of its appendix (mechanisms and constants), and the gaps are filled as noted:
- Volatility: per information set, an exponentially weighted moving average (0.1 new / 0.9 old) of
  the largest instantaneous regret magnitude, normalised v = min(1, ewma / 2).
- Volatility-adaptive discounting: alpha = max(0.1, 1.5 - 0.5 v), beta = min(alpha, -0.1 - 0.5 v);
  positive accumulated regrets are discounted by (t+1)^alpha / ((t+1)^alpha + 1), negative ones by
  the same with beta (so negative regret fades fast when learning is volatile); floored at -20.
- Asymmetric instantaneous boosting: positive instantaneous regrets are multiplied by 1.1.
- Consistency-enforced optimism: the policy is regret matching on R plus the last instantaneous
  regret (the prediction), as in predictive CFR+.
- Hard warm start: before iteration 500 the average policy is not accumulated. So that a run shorter
  than 500 iterations still has an output, until then the accumulator holds the latest (weighted)
  policy, which is discarded at the start; after it, iteration t is weighted by
  (t+1)^gamma * sqrt(1 + v / 2) with gamma = min(4, 2 + 1.5 v).
"""

import numpy as np

DEFAULTS = {"ewma": 0.1, "scale": 2.0, "boost": 1.1, "floor": -20.0, "warm_start": 500}


def volatility(r, mem, seg):
    m = seg.max(np.abs(r))
    prev = mem.get("ewma_value")
    ewma = m if prev is None else mem["ewma"] * m + (1.0 - mem["ewma"]) * prev
    mem["ewma_value"] = ewma
    return np.minimum(1.0, ewma / mem["scale"])


def accumulate_regret(R, r, t, mem, seg):
    v = volatility(r, mem, seg)
    mem["v"] = v
    alpha = np.maximum(0.1, 1.5 - 0.5 * v)
    beta = np.minimum(alpha, -0.1 - 0.5 * v)
    pos = (t + 1.0) ** alpha / ((t + 1.0) ** alpha + 1.0)
    neg = (t + 1.0) ** beta / ((t + 1.0) ** beta + 1.0)
    boosted = np.where(r > 0, mem["boost"] * r, r)
    R = R * np.where(R >= 0, pos, neg) + boosted
    return np.maximum(R, mem["floor"])


def regret_to_policy(R, r, t, mem, seg):
    return np.maximum(R + r, 0.0)


def accumulate_policy(S, c, t, mem, seg):
    v = mem.get("v", 0.0)
    gamma = np.minimum(4.0, 2.0 + 1.5 * v)
    w = (t + 1.0) ** gamma * np.sqrt(1.0 + v / 2.0)
    if t <= mem["warm_start"]:
        return w * c
    return S + w * c
