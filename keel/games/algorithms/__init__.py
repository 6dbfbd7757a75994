"""The CFR family, each written as the three parts that arXiv 2602.16928 evolves.

Every module defines
- `accumulate_regret(R, r, t, mem, seg) -> R'`: fold this iteration's instantaneous counterfactual
  regrets `r` into the accumulated regrets `R` (both over one player's action slots);
- `regret_to_policy(R, r, t, mem, seg) -> w`: non-negative weights; the engine normalises them per
  information set (uniform where they sum to zero);
- `accumulate_policy(S, c, t, mem, seg) -> S'`: fold `c = reach * current policy` into the average
  policy accumulator `S`;
and `DEFAULTS` (constants, copied into `mem`). `t` starts at 1. `seg.sum(x)` / `seg.max(x)` reduce
over each information set and broadcast back to its slots; `mem` is a per-player dict that persists
across iterations. The same interface is what `keel.discovery` mutates.
"""

from __future__ import annotations

import importlib

NAMES = ["cfr", "cfr_plus", "lcfr", "dcfr", "pcfr_plus", "dpcfr_plus", "vad_cfr"]


def get(name: str):
    from keel.errors import KeelError

    key = name.lower().replace("-", "_").replace("+", "_plus")
    key = {"cfrplus": "cfr_plus", "cfr_plus_plus": "cfr_plus", "pcfrplus": "pcfr_plus",
           "dpcfrplus": "dpcfr_plus", "pdcfr_plus": "dpcfr_plus", "vadcfr": "vad_cfr"}.get(key, key)
    if key not in NAMES:
        raise KeelError(f"unknown algorithm {name!r}; valid: {', '.join(NAMES)}")
    return importlib.import_module(f"keel.games.algorithms.{key}")
