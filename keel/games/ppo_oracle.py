"""Approximate best responses trained by PPO, for PSRO on PettingZoo environments.

PSRO's oracle need not be exact (Lanctot et al. 2017 train deep RL best responses): here one agent of
a PettingZoo AEC env learns with Keel's PPO (`keel.rl.ppo`, Schulman et al. 2017) while the other
agents play fixed policies. `BestResponseEnv` turns "one agent vs fixed opponents" into a Gymnasium
env (the action mask travels in `info["action_mask"]`, which Keel's PPO honours). For OpenSpiel games
the trained network is then read out at every information set of the learner (`tabularise`), so PSRO
keeps evaluating its meta-game and exploitability exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from keel.games.tree import GameTree


class BestResponseEnv(gym.Env):
    """Agent `learner` of a PettingZoo AEC env; `opponent(env, agent, obs) -> action` plays the rest."""

    metadata = {"render_modes": []}

    def __init__(self, make_aec: Callable, learner: str, opponent: Callable):
        self.aec = make_aec()
        self.learner, self.opponent = learner, opponent
        self.observation_space = self.aec.observation_space(learner)["observation"]
        self.action_space = self.aec.action_space(learner)

    def _advance(self):
        """Let chance and the opponents move until the learner must act or the game is over."""
        while True:
            agent = self.aec.agent_selection
            obs, reward, term, trunc, _ = self.aec.last()
            if agent == self.learner:
                return obs, float(reward), term or trunc
            self.aec.step(None if (term or trunc) else self.opponent(self.aec, agent, obs))

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.aec.reset(seed=seed)
        obs, _, done = self._advance()
        while done:  # the game ended before the learner had to act: not a decision, deal again
            self.aec.reset()
            obs, _, done = self._advance()
        return obs["observation"], {"action_mask": obs["action_mask"].astype(bool)}

    def step(self, action):
        self.aec.step(int(action))
        obs, reward, done = self._advance()
        return obs["observation"], reward, done, False, {"action_mask": obs["action_mask"].astype(bool)}


def tabular_opponent(tree: GameTree, sigma: np.ndarray, seed: int = 0) -> Callable:
    """Play the slot policy `sigma` in an `OpenSpielAEC` env (looks up each information set)."""
    index = {
        (int(p), key): i for i, (p, key) in enumerate(zip(tree.iset_player, tree.iset_keys, strict=True))
    }
    rng = np.random.default_rng(seed)

    def act(aec, agent, obs) -> int:
        p = int(agent.split("_")[1])
        i = index[(p, aec.state.information_state_string(p))]
        s, e = tree.iset_slot_start[i], tree.iset_slot_start[i + 1]
        return int(tree.slot_action[s + rng.choice(e - s, p=sigma[s:e] / sigma[s:e].sum())])

    return act


def infoset_tensors(tree: GameTree, player: int) -> np.ndarray:
    """The information-state tensor of each of `player`'s information sets (one walk of the game)."""
    view = tree.views[player]
    first = int(np.searchsorted(tree.iset_slot_start, view.lo))
    count = len(view.seg_start)
    keys = {k: j for j, k in enumerate(tree.iset_keys[first : first + count])}
    out = np.zeros((count, tree.game.information_state_tensor_size()), dtype=np.float32)
    seen: set[int] = set()
    stack = [tree.game.new_initial_state()]
    while stack and len(seen) < count:
        s = stack.pop()
        if s.is_terminal():
            continue
        if s.is_chance_node():
            stack.extend(s.child(a) for a, p in s.chance_outcomes() if p > 0)
            continue
        if s.current_player() == player:
            j = keys[s.information_state_string(player)]
            if j not in seen:
                seen.add(j)
                out[j] = s.information_state_tensor(player)
        stack.extend(s.child(a) for a in s.legal_actions())
    return out


def tabularise(tree: GameTree, player: int, policy) -> np.ndarray:
    """The trained policy's greedy action at each information set, as a pure local slot policy."""
    view = tree.views[player]
    obs = infoset_tensors(tree, player)
    first = int(np.searchsorted(tree.iset_slot_start, view.lo))
    mask = np.zeros((len(obs), tree.game.num_distinct_actions()), dtype=bool)
    for j in range(len(obs)):
        mask[j, tree.iset_actions[first + j]] = True
    actions = np.asarray(policy.act(obs, mask=mask, deterministic=True)).reshape(-1)
    pure = np.zeros(view.hi - view.lo)
    for j, a in enumerate(actions):
        pure[view.seg_start[j] + tree.iset_actions[first + j].index(int(a))] = 1.0
    return pure


def ppo_best_response(
    tree: GameTree, player: int, sigma: np.ndarray, steps: int = 20_000, seed: int = 0, num_envs: int = 4
) -> np.ndarray:
    """Train PPO as `player` against the others playing `sigma`; return it as a pure slot policy."""
    from gymnasium.vector import SyncVectorEnv

    from keel.games.pettingzoo_env import OpenSpielAEC
    from keel.rl.ppo import PPOConfig, train_ppo

    def make(i):
        return lambda: BestResponseEnv(
            lambda: OpenSpielAEC(tree.spec),
            f"player_{player}",
            tabular_opponent(tree, sigma, seed=seed * 1000 + i),
        )

    envs = SyncVectorEnv([make(i) for i in range(num_envs)])
    cfg = PPOConfig(
        n_steps=128,
        batch_size=128,
        n_epochs=4,
        lr=3e-3,
        ent_coef=0.01,
        gamma=1.0,
        gae_lambda=0.95,
        hidden=[64],
        seed=seed,
    )
    policy, _ = train_ppo(cfg, envs, total_steps=steps)
    envs.close()
    return tabularise(tree, player, policy)
