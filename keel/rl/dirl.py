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

Every environment step counts against the one budget `total_steps`, training and estimation rollouts
alike; the learner stops when Dijkstra's search is done or the budget is spent. When an edge starts it
gets an equal share of what is left (over the edges not learned yet). It trains for at most 3/4 of
that share, less when its training episodes already succeed at rate `stop_at` (checked every tenth of
the share over the episodes finished since the last check), then its greedy policy is estimated by
`rollouts` rollouts from D(source). As in the paper, a rollout stops when it reaches the edge's target
region (success: that state is handed on to D(target)) or fails its safety predicate; a rollout the
budget cuts short counts as a failure. Violations of the job's formula are counted on every step
taken, estimation included.

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
from pydantic import Field

from keel.config import KeelModel
from keel.errors import KeelError
from keel.rl.learner import Batch, Counters
from keel.rl.product import SpecWorld
from keel.rl.product_env import EpisodeStats
from keel.rl.tabular import epsilon_greedy
from keel.spec.shield import mask_scores


class DiRLConfig(KeelModel):
    """DiRL's settings (the spec_rl job embeds this class as its `dirl` section)."""

    spectrl: str | None = Field(None, description="SPECTRL task, e.g. '(achieve goal_a; achieve goal_b) ensuring !hazard'")
    rollouts: int = Field(200, ge=1, description="rollouts that estimate each edge's success probability")
    stop_at: float = Field(0.98, gt=0.0, le=1.0,
                           description="an edge stops training early once its training episodes succeed this often")
    gamma: float = Field(0.99, gt=0.0, le=1.0)
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="Q-learning step size of the edge policies")
    epsilon: float = Field(0.2, ge=0.0, le=1.0, description="exploration at the start of each edge")
    epsilon_end: float = Field(0.02, ge=0.0, le=1.0, description="exploration at the end of each edge's training")


TRAIN_FRACTION = 0.75  # of an edge's share; the rest is left for estimating it


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
    """DiRL on the product world; a `keel.rl.learner.Learner` (a batch = one step of every row on the
    edge being learned)."""

    def __init__(self, world: SpecWorld, cfg: DiRLConfig, total_steps: int, num_envs: int, seed: int, shield: str):
        from keel.spec import compile_spectrl

        if not cfg.spectrl:
            raise KeelError("learner dirl needs a SPECTRL task in dirl.spectrl, e.g. "
                            "'(achieve goal_a; achieve goal_b) ensuring !hazard'")
        m = world.model
        self.world, self.cfg, self.shield = world, cfg, shield
        self.total_steps, self.num_envs = int(total_steps), num_envs
        self.graph = compile_spectrl(cfg.spectrl, m.propositions)
        cells = np.arange(m.n_cells)
        env = _Cells(m)
        full = np.zeros(m.n_cells)
        reach_value = [full + e.reach.value(env, cells) for e in self.graph.edges]
        self.reach = [v > 0 for v in reach_value]
        self.safe_ok = [full + e.safe.value(env, cells) > 0 for e in self.graph.edges]
        # Learned state: one Q-table per edge, Dijkstra's bookkeeping, the edge being trained now.
        # Q starts at gamma^(d - 1), d = 0.5 - value: the steps the reach predicate says are still needed.
        bound = [cfg.gamma ** np.clip(0.5 - v - 1.0, 0.0, 10 * (m.height + m.width)) for v in reach_value]
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
        self.edge_share = 0
        self.window = [0, 0]  # training episodes of this edge since the last check: [finished, succeeded]
        self.done = False
        self._env_steps = 0
        self.updates = 0
        self.stats = EpisodeStats()
        self.rng = np.random.default_rng(seed + 3)
        self._next_edge()

    @property
    def env_steps(self) -> int:
        return self._env_steps

    @property
    def finished(self) -> bool:
        return self.done or self._env_steps >= self.total_steps

    # --- Dijkstra over the abstract graph ----------------------------------------------------------
    def _next_edge(self) -> None:
        """Pick the next edge to learn: the next out-edge of the vertex being expanded, or expand the
        cheapest unexpanded reached vertex; when none is left, learning is finished."""
        while not self.todo:
            frontier = [(d, v) for v, d in self.dist.items() if v not in self.expanded and math.isfinite(d)]
            if not frontier:
                self.current, self.done = None, True
                return
            _, v = min(frontier)
            self.expanded.add(v)
            self.todo = [e.index for e in self.graph.out_edges(v)]
        self.current = self.todo.pop(0)
        self.edge_steps = 0
        left = len(self.graph.edges) - len(self.success)  # edges not learned yet, this one included
        self.edge_share = max(self.num_envs, (self.total_steps - self._env_steps) // max(1, left))
        self.window = [0, 0]
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

    def _step(self, cells, u, actions):
        """One step of the (deterministic or slippery) grid, with the world's slip model."""
        c2 = self.world.next_cells(self.rng, cells, actions)
        return c2, self.world.tables.next_u[u, c2]

    def _act(self, e: int, cells, u, epsilon: float):
        """(actions taken, the agent's own picks, overridden) under the run's shield."""
        q = self.Q[e][cells]
        mask = self.world.mask(u, cells)
        chosen = epsilon_greedy(mask_scores(mask, q) if self.shield == "preemptive" else q, self.rng, epsilon)
        a, over = self.world.filter(self.shield, u, cells, q, chosen)
        self.stats.overrides += int(over.sum())
        return a, chosen

    def _failed(self, e: int, c2, u2) -> np.ndarray:
        return ~self.safe_ok[e][c2] | self.world.tables.dead[u2]

    # --- the Learner protocol ------------------------------------------------------------------------
    def collect(self) -> Batch:
        """One step of every row on the current edge: cells, actions taken `a` and picked `chosen`,
        cells `c2` and automaton states `u2` reached, edge reward `r` (1 reached, -1 unsafe), `end`."""
        e = self.current
        frac = min(1.0, self.edge_steps / (TRAIN_FRACTION * self.edge_share))
        eps = self.cfg.epsilon + frac * (self.cfg.epsilon_end - self.cfg.epsilon)
        a, chosen = self._act(e, self.cells, self.u, eps)
        c2, u2 = self._step(self.cells, self.u, a)
        reached, unsafe = self.reach[e][c2], self._failed(e, c2, u2)
        self._env_steps += self.num_envs
        self.edge_steps += self.num_envs
        self.stats.violations += int(self.world.tables.dead[u2].sum())
        return {"c": self.cells, "u": self.u, "a": a, "chosen": chosen, "c2": c2, "u2": u2,
                "r": reached.astype(np.float64) - unsafe, "reached": reached, "end": reached | unsafe}

    def learn(self, batch: Batch) -> dict[str, float]:
        """The Q-learning update of the edge policy, episode bookkeeping, and, when the edge's training
        is over, its estimation and Dijkstra's next step."""
        e, cfg = self.current, self.cfg
        c, a, chosen, c2, u2 = batch["c"], batch["a"], batch["chosen"], batch["c2"], batch["u2"]
        r, end = batch["r"], batch["end"]
        q_next = self.Q[e][c2]
        if self.shield == "preemptive":  # bootstrap from the actions the agent may take (never from a
            q_next = mask_scores(self.world.mask(u2, c2), q_next)  # masked one's optimistic value)
        v_next = q_next.max(axis=1)
        target = r + cfg.gamma * np.where(end | ~np.isfinite(v_next), 0.0, v_next)
        self.Q[e][c, a] += cfg.alpha * (target - self.Q[e][c, a])
        over = chosen != a  # post-posed shield: the overridden pick gets the same transition
        self.Q[e][c[over], chosen[over]] += cfg.alpha * (target[over] - self.Q[e][c[over], chosen[over]])
        self.updates += 1
        self.t += 1
        self.ret += r
        finished = end | (self.t >= self.world.max_episode_steps)
        self.stats.add(finished, batch["reached"], ~batch["reached"] & end, self.ret, self.t)
        self.window[0] += int(finished.sum())
        self.window[1] += int((finished & batch["reached"]).sum())
        self.cells, self.u = c2, u2
        if finished.any():
            self._start_episodes(finished)
        check = max(self.num_envs, self.edge_share // 10)
        if self.edge_steps >= TRAIN_FRACTION * self.edge_share or self._env_steps >= self.total_steps:
            self._finish_edge(e)
        elif self.edge_steps % check < self.num_envs:
            n, ok = self.window
            if n >= min(cfg.rollouts, 4 * self.num_envs) and ok >= cfg.stop_at * n:
                self._finish_edge(e)
            self.window = [0, 0]
        return {}

    def train_step(self) -> dict[str, float]:
        return self.learn(self.collect())

    def _finish_edge(self, e: int) -> None:
        edge = self.graph.edges[e]
        p, cells, us = self._estimate(e)
        self.success[e] = p
        if p > 0:
            cost = self.dist[edge.source] - math.log(p)
            if cost < self.dist.get(edge.target, math.inf):
                self.dist[edge.target], self.D[edge.target], self.parent[edge.target] = cost, (cells, us), e
        if self._env_steps >= self.total_steps:
            self.current = None
            return
        self._next_edge()

    def _estimate(self, e: int):
        """Greedy rollouts of pi_e from D(source), each stopped at success or failure: the success rate and
        the states the successful ones reached the target in. Steps count against the budget; a rollout
        the budget cuts short is a failure."""
        cells0, us0 = self.D[self.graph.edges[e].source]
        pick = self.rng.integers(len(cells0), size=self.cfg.rollouts)
        cells, u = cells0[pick].copy(), us0[pick].copy()
        live = np.ones(self.cfg.rollouts, dtype=bool)
        ok = np.zeros(self.cfg.rollouts, dtype=bool)
        for _ in range(self.world.max_episode_steps):
            rows = np.flatnonzero(live)
            rows = rows[: max(0, self.total_steps - self._env_steps)]  # the budget left
            if not len(rows):
                break
            a, _ = self._act(e, cells[rows], u[rows], 0.0)
            c2, u2 = self._step(cells[rows], u[rows], a)
            self._env_steps += len(rows)
            self.stats.violations += int(self.world.tables.dead[u2].sum())
            reached, failed = self.reach[e][c2], self._failed(e, c2, u2)
            ok[rows] = reached & ~failed
            live[rows] = ~(reached | failed)
            cells[rows], u[rows] = c2, u2  # stopped rows keep the state they stopped in
        return float(ok.mean()), cells[ok], u[ok]

    def counters(self) -> Counters:
        s = self.stats
        return Counters(self._env_steps, s.episodes, s.violations, s.overrides, self.updates)

    def metrics(self) -> dict[str, float]:
        return self.stats.flush()

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

    _STATE = ("Q", "dist", "D", "parent", "expanded", "todo", "success", "current", "edge_steps", "edge_share",
              "window", "done", "_env_steps", "updates", "cells", "u", "t", "ret")

    def state_dict(self) -> dict:
        import copy

        return {**{k: copy.deepcopy(getattr(self, k)) for k in self._STATE}, "rng": self.rng.bit_generator.state,
                "stats": self.stats.state()}

    def load_state_dict(self, s: dict) -> None:
        self.rng.bit_generator.state = s["rng"]
        self.stats.load(s["stats"])
        for k in self._STATE:
            setattr(self, k, s[k])


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
