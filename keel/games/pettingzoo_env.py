"""OpenSpiel games as PettingZoo AEC environments (turn-based; chance is sampled by the env).

Each agent observes {"observation": its information-state tensor (observation tensor if the game
has none), "action_mask": 1 for legal actions}, the layout of PettingZoo's classic games, so that
RL code written for PettingZoo (and `pettingzoo.test.api_test`) works on any OpenSpiel game.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from keel.games.load import load_game


class OpenSpielAEC(AECEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": "keel_openspiel_v0", "is_parallelizable": False}

    def __init__(self, game: str = "kuhn_poker", render_mode: str | None = None):
        super().__init__()
        self.game = load_game(game)
        self.spec, self.render_mode = game, render_mode
        n, na = self.game.num_players(), self.game.num_distinct_actions()
        self.possible_agents = [f"player_{i}" for i in range(n)]
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        gtype = self.game.get_type()
        self._info_tensor = gtype.provides_information_state_tensor
        if not self._info_tensor and not gtype.provides_observation_tensor:
            from keel.errors import KeelError

            raise KeelError(f"{game!r} provides no observation tensor; it cannot be a PettingZoo env")
        shape = (
            self.game.information_state_tensor_size()
            if self._info_tensor
            else self.game.observation_tensor_size(),
        )
        obs_space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float32),
                "action_mask": spaces.Box(0, 1, shape=(na,), dtype=np.int8),
            }
        )
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(na) for a in self.possible_agents}
        self._rng = np.random.default_rng()
        self.state = None

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def _sample_chance(self) -> None:
        while self.state.is_chance_node():
            actions, probs = zip(*self.state.chance_outcomes(), strict=True)
            self.state.apply_action(int(self._rng.choice(actions, p=np.asarray(probs) / sum(probs))))

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.state = self.game.new_initial_state()
        self._sample_chance()
        self.agents = self.possible_agents[:]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self.agent_selection = self.possible_agents[self.state.current_player()]

    def observe(self, agent):
        p = self._index[agent]
        try:
            obs = (
                self.state.information_state_tensor(p)
                if self._info_tensor
                else self.state.observation_tensor(p)
            )
        except Exception:  # noqa: BLE001 - some games have no tensor at terminal states
            obs = np.zeros(self.observation_spaces[agent]["observation"].shape)
        mask = np.zeros(self.game.num_distinct_actions(), dtype=np.int8)
        if not self.state.is_terminal() and self.state.current_player() == p:
            mask[self.state.legal_actions(p)] = 1
        return {"observation": np.asarray(obs, dtype=np.float32), "action_mask": mask}

    def step(self, action) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        action = int(action)
        if action not in self.state.legal_actions():
            raise ValueError(f"illegal action {action} for {agent}; legal: {self.state.legal_actions()}")
        self._cumulative_rewards[agent] = 0.0
        self.state.apply_action(action)
        self._sample_chance()
        rewards = self.state.rewards()
        self.rewards = {a: float(rewards[i]) for i, a in enumerate(self.possible_agents) if a in self.agents}
        if self.state.is_terminal():
            self.terminations = {a: True for a in self.agents}
            self.agent_selection = self.agents[0]
        else:
            self.agent_selection = self.possible_agents[self.state.current_player()]
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()

    def render(self):
        text = str(self.state)
        if self.render_mode == "human":
            print(text)
        return text

    def close(self) -> None:
        pass


def env(game: str = "kuhn_poker", render_mode: str | None = None) -> OpenSpielAEC:
    return OpenSpielAEC(game, render_mode)
