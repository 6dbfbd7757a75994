"""The CFR engine: whole-tree numpy passes, with the algorithm supplied as three parts.

One iteration with alternating updates (what OpenSpiel's CFR, CFR+, LCFR and DCFR solvers do), for
each player p in turn:
  1. forward:  reach probabilities of every history under the current policy (level by level);
  2. backward: p's expected value of every history (level by level);
  3. instantaneous counterfactual regret of each of p's actions,
       r(I, a) = sum_{h in I} pi_-p(h) * (v(h a) - v(h)),  via one np.bincount over p's edges;
     and p's reach-weighted current policy c(I, a) = sum_{h in I} pi_p(h) * sigma(I, a);
  4. the three parts: R <- accumulate_regret(R, r), sigma <- normalise(regret_to_policy(R, r)),
     S <- accumulate_policy(S, c).
The average policy is S normalised per information set (Zinkevich et al. 2007; the parts follow
arXiv 2602.16928's decomposition: regret accumulator, policy-from-regret, policy accumulator).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from keel.errors import KeelError
from keel.games.exploitability import nash_conv
from keel.games.tree import GameTree


class Segments:
    """Per-information-set reductions over one player's slots, broadcast back to the slots."""

    def __init__(self, start: np.ndarray, seg_id: np.ndarray):
        self.start, self.id = start, seg_id
        self.size = np.diff(np.append(start, len(seg_id)))[seg_id].astype(np.float64)

    def sum(self, x):
        return np.add.reduceat(np.asarray(x, dtype=np.float64), self.start)[self.id]

    def max(self, x):
        return np.maximum.reduceat(np.asarray(x, dtype=np.float64), self.start)[self.id]

    def min(self, x):
        return np.minimum.reduceat(np.asarray(x, dtype=np.float64), self.start)[self.id]

    def mean(self, x):
        return self.sum(x) / self.size

    def normalize(self, w):
        w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
        s = self.sum(w)
        ok = s > 0
        return np.where(ok, w / np.where(ok, s, 1.0), 1.0 / self.size)


def parts_from_module(module) -> SimpleNamespace:
    return SimpleNamespace(
        accumulate_regret=module.accumulate_regret,
        regret_to_policy=module.regret_to_policy,
        accumulate_policy=module.accumulate_policy,
        defaults=dict(getattr(module, "DEFAULTS", {})),
    )


class CFRSolver:
    """Runs a CFR-family algorithm given as three parts on a `GameTree`."""

    def __init__(
        self,
        tree: GameTree,
        parts,
        params: dict | None = None,
        alternating: bool = True,
        sequential_regrets: bool = False,
    ):
        if not hasattr(parts, "accumulate_regret"):
            raise KeelError("a CFR algorithm needs accumulate_regret, regret_to_policy and accumulate_policy")
        self.tree, self.parts, self.alternating = tree, parts, alternating
        # Regret matching thresholds at zero, and with RM+ many regrets sit exactly at zero, so the
        # order in which floating-point contributions are summed (per information set first, or onto R
        # history by history as OpenSpiel does) can flip an action in or out of the policy; trajectories
        # then drift apart by a few percent in exploitability after some hundred Leduc iterations. The
        # benchmark runs both orders to show the size of this effect.
        self.sequential_regrets = sequential_regrets
        defaults = dict(getattr(parts, "defaults", {}))
        for k in params or {}:
            if k not in defaults:
                raise KeelError(f"unknown parameter {k!r}; valid: {', '.join(sorted(defaults)) or '(none)'}")
        defaults.update(params or {})
        self.R = np.zeros(tree.num_slots)
        self.S = np.zeros(tree.num_slots)
        self.sigma = tree.uniform_policy()
        self.t = 0
        self.mem = [dict(defaults) for _ in range(tree.num_players)]
        self.segs = [Segments(v.seg_start, v.seg_id) for v in tree.views]

    def _regrets(self, p: int, ep: np.ndarray, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tree, view = self.tree, self.tree.views[p]
        v = tree.values(ep, tree.utility[:, p])
        n_local = view.hi - view.lo
        opp = reach[view.parents][:, view.others].prod(axis=1)
        contrib = opp * (v[view.kids] - v[view.parents])
        if self.sequential_regrets:
            # Accumulate history by history onto R (OpenSpiel's order of additions) and hand the
            # difference on as r. Only the last bits change; see `sequential_regrets` in __init__.
            R_seq = self.R[view.lo : view.hi].copy()
            np.add.at(R_seq, view.kid_slot, contrib)
            r = R_seq - self.R[view.lo : view.hi]
        else:
            r = np.bincount(view.kid_slot, weights=contrib, minlength=n_local)
        own = np.bincount(view.kid_slot, weights=reach[view.parents, p], minlength=n_local)
        return r, own * self.sigma[view.lo : view.hi]

    def _update(self, p: int, r: np.ndarray, c: np.ndarray) -> None:
        view, seg, mem, t = self.tree.views[p], self.segs[p], self.mem[p], self.t
        lo, hi = view.lo, view.hi
        R = np.asarray(self.parts.accumulate_regret(self.R[lo:hi].copy(), r, t, mem, seg), dtype=np.float64)
        w = np.asarray(self.parts.regret_to_policy(R.copy(), r, t, mem, seg), dtype=np.float64)
        S = np.asarray(self.parts.accumulate_policy(self.S[lo:hi].copy(), c, t, mem, seg), dtype=np.float64)
        if R.shape != r.shape or w.shape != r.shape or S.shape != r.shape:
            raise ValueError("a CFR part returned an array of the wrong shape")
        self.R[lo:hi], self.S[lo:hi] = R, S
        self.sigma[lo:hi] = seg.normalize(w)

    def iteration(self) -> None:
        self.t += 1
        tree = self.tree
        if self.alternating:
            for p in range(tree.num_players):
                if tree.views[p].hi == tree.views[p].lo:
                    continue
                ep = tree.edge_probs(self.sigma)
                r, c = self._regrets(p, ep, tree.reach(ep))
                self._update(p, r, c)
        else:
            ep = tree.edge_probs(self.sigma)
            reach = tree.reach(ep)
            out = [self._regrets(p, ep, reach) for p in range(tree.num_players)]
            for p, (r, c) in enumerate(out):
                if tree.views[p].hi > tree.views[p].lo:
                    self._update(p, r, c)

    def average_policy(self) -> np.ndarray:
        return self.tree.normalize(self.S)

    def current_policy(self) -> np.ndarray:
        return self.sigma.copy()

    def state_dict(self) -> dict:
        return {"R": self.R, "S": self.S, "sigma": self.sigma, "t": self.t, "mem": self.mem}

    def load_state_dict(self, state: dict) -> None:
        self.R, self.S, self.sigma = (np.asarray(state[k], dtype=np.float64) for k in ("R", "S", "sigma"))
        self.t, self.mem = int(state["t"]), state["mem"]


def make_solver(tree: GameTree, algo: str, params: dict | None = None, **kw) -> CFRSolver:
    from keel.games import algorithms

    return CFRSolver(tree, parts_from_module(algorithms.get(algo)), params, **kw)


def solve(
    game: str | GameTree,
    algo: str,
    iters: int,
    params: dict | None = None,
    checkpoints: list[int] | None = None,
    progress=None,
    **kw,
) -> dict:
    """Run `iters` iterations; exploitability of the average policy at each checkpoint."""
    if iters < 1:
        raise KeelError(f"--iters must be at least 1, got {iters}")
    tree = game if isinstance(game, GameTree) else GameTree.build(game)
    solver = make_solver(tree, algo, params, **kw)
    marks = sorted(set(checkpoints or _log_marks(iters)) | {iters})
    curve, elapsed = [], 0.0
    for t in range(1, iters + 1):
        t0 = time.perf_counter()
        solver.iteration()
        elapsed += time.perf_counter() - t0
        if progress is not None:
            progress(t)
        if t in marks:
            nc = nash_conv(tree, solver.average_policy())
            curve.append(
                {"iteration": t, "exploitability": nc["exploitability"], "nash_conv": nc["nash_conv"]}
            )
    return {
        "game": tree.spec,
        "algo": algo,
        "iterations": iters,
        "curve": curve,
        "exploitability": curve[-1]["exploitability"],
        "nash_conv": curve[-1]["nash_conv"],
        "iters_per_s": iters / max(elapsed, 1e-9),
        "solver": solver,
        "tree": tree,
    }


def _log_marks(iters: int) -> list[int]:
    marks = {1, iters}
    k = 1
    while k <= iters:
        for m in (1, 2, 5):
            if m * k <= iters:
                marks.add(m * k)
        k *= 10
    return sorted(marks)
