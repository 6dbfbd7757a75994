"""DiRL: compositional RL from a SPECTRL task's abstract graph.

Jothimurugan, Bansal, Bastani, Alur, "Compositional Reinforcement Learning from Logical Specifications",
NeurIPS 2021.

The task (e.g. `(achieve goal_a; achieve goal_b) ensuring !hazard`) compiles to an abstract graph
(`keel.spec.compile_spectrl`): vertices are subgoal regions, each edge is a reach-while-safe sub-task.
DiRL interleaves learning with Dijkstra's algorithm:

    pop the unexpanded vertex u with the smallest cost d(u) (d(initial) = 0);
    for each edge e = (u -> v):
        learn a policy pi_e from the states D(u) that the best path to u ends in,
        estimate its success probability p_e by rollouts,
        if d(u) - log p_e < d(v): d(v), D(v), parent(v) = that, the states pi_e reached v in, e;
    the final policy follows the cheapest path to a final vertex, switching edge policy when the current
    edge's target region is reached.

Each edge gets an equal share of the step budget; it is estimated every tenth of its share and stops
early once its success estimate reaches `stop_at` (the estimation rollouts count as env steps).

Edge policies here are tabular Q-learning over grid cells (the grid is small; the paper uses neural
policies on the continuous world). The edge reward is the edge's semantics: 1 on reaching the target
region (the episode ends), -1 when the safety predicate fails (it ends too). The quantitative reach
predicate guides learning: in the grid its value outside a region is minus a lower bound d(s) on the
steps still needed (Manhattan distance ignores walls), so gamma^(d(s) - 1) bounds the return from s.
Q starts there: optimistic (every action is tried before it is given up) yet informed (states nearer the
region are tried first). That is potential-based shaping with Phi = that bound (Wiewiora, "Potential-
based shaping and Q-value initialization are equivalent", JAIR 2003), so optimal edge policies are
unchanged (Ng et al. 1999). Exploration adds epsilon-greedy. The job's LTLf formula is monitored
alongside (its automaton state is carried with every env state), for the shield and to count
violations.
"""

from __future__ import annotations

import math

import numpy as np

from keel.errors import KeelError
from keel.rl.product import EpisodeStats, SpecWorld, apply_shield


class _Cells:
    """The grid's quantitative predicates for arrays of cells (what keel.spec predicates evaluate).

    The grid gives 1 - distance outside a region, so a cell next to it scores exactly 0: then neither
    `p` nor `!p` (= -value) holds there, and `ensuring !hazard` would fail beside every hazard. Shifting
    by one half keeps the order (deeper = larger) and puts every cell strictly inside or outside.
    """

    def __init__(self, model):
        self.model = model

    def predicate_value(self, name: str, cells):
        return self.model.pred_values[cells, self.model.prop_index[name]].astype(np.float64) - 0.5


class DiRLLearner:
    def __init__(self, world: SpecWorld, spectrl: str | None, total_steps: int, num_envs: int, seed: int,
                 shield: str, gamma: float = 0.99, rollouts: int = 200, alpha: float = 0.5,
                 epsilon: float = 0.2, epsilon_end: float = 0.02, stop_at: float = 0.98):
        from keel.spec import compile_spectrl

        if not spectrl:
            raise KeelError("learner dirl needs a SPECTRL task in dirl.spectrl, e.g. "
                            "'(achieve goal_a; achieve goal_b) ensuring !hazard'")
        m = world.model
        self.world, self.shield, self.gamma, self.alpha = world, shield, gamma, alpha
        self.eps0, self.eps1 = epsilon, epsilon_end
        self.num_envs, self.rollouts = num_envs, rollouts
        self.graph = compile_spectrl(spectrl, m.propositions)
        cells = np.arange(m.n_cells)
        env = _Cells(m)
        full = np.zeros(m.n_cells)
        reach_value = [full + e.reach.value(env, cells) for e in self.graph.edges]
        self.reach = [v > 0 for v in reach_value]
        self.safe_ok = [full + e.safe.value(env, cells) > 0 for e in self.graph.edges]
        self.edge_budget = max(num_envs, total_steps // max(1, len(self.graph.edges)))
        # An edge is estimated every tenth of its budget and done early once its greedy policy succeeds
        # from at least `stop_at` of the source states (the rollouts count as env steps).
        self.check_every, self.stop_at = max(num_envs, self.edge_budget // 10), stop_at
        # Learned state: one Q-table per edge, Dijkstra's bookkeeping, the edge being trained now.
        # Q starts at gamma^(d - 1), d = 0.5 - value: the steps the reach predicate says are still needed.
        bound = [gamma ** np.clip(0.5 - v - 1.0, 0.0, 10 * (m.height + m.width)) for v in reach_value]
        self.Q = [np.repeat(b[:, None], world.n_actions, axis=1) for b in bound]
        self.dist = {self.graph.initial: 0.0}
        s0 = world.start_cells
        self.D = {self.graph.initial: (s0, np.full(len(s0), world.tables.initial, dtype=np.int64))}
        self.parent: dict[int, int] = {}
        self.expanded: set[int] = set()
        self.todo: list[int] = []  # edges of the vertex being expanded, still to learn
        self.success: dict[int, float] = {}
        self.current: int | None = None
        self.edge_steps = 0
        self.finished = False
        self.env_steps = 0
        self.stats = EpisodeStats()
        self.rng = np.random.default_rng(seed + 3)
        self._next_edge()

    # --- Dijkstra over the abstract graph ----------------------------------------------------------
    def _next_edge(self) -> None:
        """Pick the next edge to learn: the next out-edge of the vertex being expanded, or expand the
        cheapest unexpanded reached vertex; when none is left, learning is finished."""
        while not self.todo:
            frontier = [(d, v) for v, d in self.dist.items() if v not in self.expanded and math.isfinite(d)]
            if not frontier:
                self.current, self.finished = None, True
                return
            _, v = min(frontier)
            self.expanded.add(v)
            self.todo = [e.index for e in self.graph.out_edges(v)]
        self.current = self.todo.pop(0)
        self.edge_steps = 0
        self._start_episodes(np.ones(self.num_envs, dtype=bool), fresh=True)

    def _start_episodes(self, rows: np.ndarray, fresh: bool = False) -> None:
        """(Re)start the given rows of the training batch from states drawn from D(source)."""
        cells, us = self.D[self.graph.edges[self.current].source]
        pick = self.rng.integers(len(cells), size=int(rows.sum()))
        if fresh:
            self.cells = np.zeros(self.num_envs, dtype=np.int64)
            self.u = np.zeros(self.num_envs, dtype=np.int64)
            self.t = np.zeros(self.num_envs, dtype=np.int64)
            self.ret = np.zeros(self.num_envs)
        self.cells[rows], self.u[rows], self.t[rows], self.ret[rows] = cells[pick], us[pick], 0, 0.0

    def _step(self, e: int, cells, u, actions):
        """One step of the (deterministic or slippery) grid for the edge's episodes."""
        w = self.world
        n = len(cells)
        slip = self.rng.random(n) < w.slip
        actions = np.where(slip, self.rng.integers(w.n_actions, size=n), actions)
        c2 = w.model.next_cell[cells, actions]
        u2 = w.tables.next_u[u, c2]
        return c2, u2

    def _act(self, e: int, cells, u, epsilon: float):
        q = self.Q[e][cells]
        safe = self.world.safe[u, cells]
        if self.shield == "preemptive":
            q = np.where(safe, q, -np.inf)
        noise = self.rng.random(q.shape)
        greedy = np.argmax(np.where(q == q.max(axis=1, keepdims=True), noise, -1.0), axis=1)
        allowed = np.isfinite(q)
        rand_pick = np.argmax(np.where(allowed, self.rng.random(q.shape), -1.0), axis=1)
        chosen = np.where(self.rng.random(len(cells)) < epsilon, rand_pick, greedy)
        if self.shield != "postposed":
            return chosen, chosen
        a, over = apply_shield("postposed", safe, self.Q[e][cells], chosen)
        self.stats.overrides += int(over.sum())
        return a, chosen

    def train_iteration(self) -> None:
        """One Q-learning step of every row of the batch on the current edge; at the end of the edge's
        budget, estimate its success probability and move Dijkstra on."""
        if self.finished:
            self.env_steps += self.num_envs  # nothing left to learn; keep the caller's clock moving
            return
        e = self.current
        frac = min(1.0, self.edge_steps / self.edge_budget)
        eps = self.eps0 + frac * (self.eps1 - self.eps0)
        a, chosen = self._act(e, self.cells, self.u, eps)
        c2, u2 = self._step(e, self.cells, self.u, a)
        self.t += 1
        reached, unsafe = self.reach[e][c2], ~self.safe_ok[e][c2] | self.world.tables.dead[u2]
        r = reached.astype(np.float64) - unsafe
        end = reached | unsafe
        q_next = self.Q[e][c2]
        if self.shield == "preemptive":  # bootstrap from the actions the agent may take (never from a
            q_next = np.where(self.world.safe[u2, c2], q_next, -np.inf)  # masked one's optimistic value)
        v_next = q_next.max(axis=1)
        target = r + self.gamma * np.where(end | ~np.isfinite(v_next), 0.0, v_next)
        self.Q[e][self.cells, a] += self.alpha * (target - self.Q[e][self.cells, a])
        over = chosen != a  # post-posed shield: the overridden pick gets the same transition
        self.Q[e][self.cells[over], chosen[over]] += self.alpha * (
            target[over] - self.Q[e][self.cells[over], chosen[over]])
        self.stats.violations += int(self.world.tables.dead[u2].sum())
        timeout = self.t >= self.world.max_episode_steps
        finished = end | timeout
        self.ret += r
        self.stats.add(finished, reached, unsafe, self.ret, self.t)
        self.cells, self.u = c2, u2
        if finished.any():
            self._start_episodes(finished)
        self.env_steps += self.num_envs
        self.edge_steps += self.num_envs
        if self.edge_steps >= self.edge_budget:
            self._finish_edge(e, self._estimate(e))
        elif self.edge_steps % self.check_every < self.num_envs:
            found = self._estimate(e)
            if found[0] >= self.stop_at:
                self._finish_edge(e, found)

    def _finish_edge(self, e: int, found: tuple) -> None:
        edge = self.graph.edges[e]
        p, cells, us = found
        self.success[e] = p
        if p > 0:
            cost = self.dist[edge.source] - math.log(p)
            if cost < self.dist.get(edge.target, math.inf):
                self.dist[edge.target], self.D[edge.target], self.parent[edge.target] = cost, (cells, us), e
        self._next_edge()

    def _estimate(self, e: int):
        """Greedy rollouts of pi_e from D(source): success rate and the states it reached the target in."""
        cells0, us0 = self.D[self.graph.edges[e].source]
        pick = self.rng.integers(len(cells0), size=self.rollouts)
        cells, u = cells0[pick].copy(), us0[pick].copy()
        live = np.ones(self.rollouts, dtype=bool)
        ok = np.zeros(self.rollouts, dtype=bool)
        for _ in range(self.world.max_episode_steps):
            a, _ = self._act(e, cells, u, 0.0)
            c2, u2 = self._step(e, cells, u, a)
            self.env_steps += int(live.sum())
            self.stats.violations += int((live & self.world.tables.dead[u2]).sum())
            reached = live & self.reach[e][c2]
            failed = live & (~self.safe_ok[e][c2] | self.world.tables.dead[u2])
            ok |= reached & ~failed
            live &= ~(reached | failed)
            cells, u = np.where(live | ok, c2, cells), np.where(live | ok, u2, u)
            if not live.any():
                break
        return float(ok.mean()), cells[ok], u[ok]

    # --- the final policy -----------------------------------------------------------------------------
    def path(self) -> list[int]:
        """Edges of the cheapest path to a final vertex found so far (empty if none was reached)."""
        reached = [(self.dist[v], v) for v in self.graph.final if v in self.dist]
        if not reached:
            return []
        v = min(reached)[1]
        out = []
        while v != self.graph.initial:
            e = self.parent[v]
            out.append(e)
            v = self.graph.edges[e].source
        return out[::-1]

    def policy(self):
        return _PathPolicy(self, self.path())

    def describe(self) -> dict:
        """The abstract graph with each learned edge's estimated success and the chosen path."""
        path = self.path()
        return {
            "task": self.graph.task,
            "edges": [{"edge": f"{e.source} -> {e.target}", "reach": str(e.reach), "safe": str(e.safe),
                       "success": self.success.get(e.index), "on_path": e.index in path}
                      for e in self.graph.edges],
            "path": path,
            "path_cost": None if not path else sum(-math.log(self.success[e]) for e in path),
        }

    def state_dict(self) -> dict:
        keys = ("Q", "dist", "D", "parent", "expanded", "todo", "success", "current", "edge_steps", "finished",
                "env_steps", "cells", "u", "t", "ret")
        return {**{k: getattr(self, k) for k in keys}, "rng": self.rng.bit_generator.state,
                "stats": self.stats.state()}

    def load_state_dict(self, s: dict) -> None:
        for k, v in s.items():
            if k == "rng":
                self.rng.bit_generator.state = v
            elif k == "stats":
                self.stats.load(v)
            else:
                setattr(self, k, v)


class _PathPolicy:
    """Follows the chosen path: the edge policy of the current edge, moving on when its target is reached."""

    def __init__(self, learner: DiRLLearner, path: list[int]):
        self.learner, self.path = learner, path
        self.k = np.zeros(0, dtype=np.int64)

    def reset(self, mask: np.ndarray) -> None:
        if len(self.k) != len(mask):
            self.k = np.zeros(len(mask), dtype=np.int64)
        self.k[mask] = 0

    def scores(self, u: np.ndarray, cells: np.ndarray) -> np.ndarray:
        L = self.learner
        if not self.path:  # nothing learned reaches a final vertex: no preference
            return np.zeros((len(cells), L.world.n_actions))
        if len(self.k) != len(cells):
            self.k = np.zeros(len(cells), dtype=np.int64)
        for _ in range(len(self.path)):  # advance past every edge whose target is already reached
            edge = np.array(self.path)[np.minimum(self.k, len(self.path) - 1)]
            done = np.array([L.reach[e][c] for e, c in zip(edge, cells, strict=True)])
            self.k = np.where(done & (self.k < len(self.path) - 1), self.k + 1, self.k)
        edge = np.array(self.path)[self.k]
        return np.stack([L.Q[e][c] for e, c in zip(edge, cells, strict=True)])
