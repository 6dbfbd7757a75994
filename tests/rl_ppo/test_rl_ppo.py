"""PPO: learns, on both autoreset conventions; masks are obeyed; resume is exact; Box actions work."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from keel.envs.rooms import BatchedRooms, RoomsContinuous, RoomsGrid
from keel.errors import KeelError
from keel.rl.ppo import PPOConfig, train_ppo
from keel.runs import Run

GRID = dict(n_rooms=9, room_size=3, obs_mode="onehot", max_episode_steps=40, task="goal_a", goals={"a": [1, 1]})
CFG = PPOConfig(n_steps=32, batch_size=128, n_epochs=4, lr=3e-3, ent_coef=0.01, gamma=0.95, hidden=[32, 32])


def greedy_reaches_goal(policy) -> bool:
    env = RoomsGrid(**GRID)
    obs, _ = env.reset(seed=0)
    for _ in range(40):
        obs, _, term, _, _ = env.step(policy.act(obs, deterministic=True))
        if term:
            return True
    return False


@pytest.mark.parametrize("vector", ["batched", "sync"])
def test_ppo_learns_a_small_rooms_task(vector):
    if vector == "batched":
        envs = BatchedRooms(num_envs=8, **GRID)  # same-step autoreset
    else:
        envs = gym.vector.SyncVectorEnv([lambda: RoomsGrid(**GRID) for _ in range(8)])  # next-step autoreset
    # stop once the last 100 episodes all reach the goal (6 moves away, in the next room but one) quickly
    policy, stats = train_ppo(CFG, envs, 16_000, callback=lambda p, i: i["mean_return"] == 1 and i["mean_length"] < 10)
    assert stats["steps"] < 16_000 and stats["episodes"] >= 100
    assert greedy_reaches_goal(policy)


def test_ppo_learns_cartpole_a_little():
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    cfg = PPOConfig(n_steps=128, batch_size=256, n_epochs=4, lr=1e-3)
    _, stats = train_ppo(cfg, CartPoleVectorEnv(num_envs=8), 10_240)
    assert stats["mean_return"] > 50  # random play averages about 22


class MaskedRooms:
    """BatchedRooms plus an action mask that forbids STAY and LEFT everywhere; records actions taken."""

    def __init__(self, envs):
        self.envs, self.taken = envs, []

    def __getattr__(self, name):
        return getattr(self.envs, name)

    def _mask(self, infos):
        mask = np.ones((self.envs.num_envs, 5), dtype=bool)
        mask[:, [2, 4]] = False
        return {**infos, "action_mask": mask}

    def reset(self, **kw):
        obs, infos = self.envs.reset(**kw)
        return obs, self._mask(infos)

    def step(self, actions):
        self.taken.append(np.array(actions))
        obs, r, te, tr, infos = self.envs.step(actions)
        return obs, r, te, tr, self._mask(infos)


def test_masked_actions_are_never_taken():
    envs = MaskedRooms(BatchedRooms(num_envs=4, **GRID))
    policy, _ = train_ppo(CFG, envs, 1_024)
    taken = np.concatenate(envs.taken)
    assert len(taken) == 1_024 and not np.isin(taken, [2, 4]).any()
    assert set(np.unique(taken)) == {0, 1, 3}
    obs = np.eye(81, dtype=np.float32)[:9]
    mask = np.zeros((9, 5), dtype=bool)
    mask[:, 1] = True
    assert (policy.act(obs, mask=mask) == 1).all()
    assert (policy.act(obs, mask=mask, deterministic=True) == 1).all()


def test_resume_is_exact(tmp_path):
    cfg = CFG.model_copy(update={"checkpoint_every": 1})
    steps = cfg.n_steps * 4
    run_a = Run.create(tmp_path, "a", {})
    policy_a, _ = train_ppo(cfg, BatchedRooms(num_envs=4, **GRID), 4 * steps, run=run_a)
    run_b = Run.create(tmp_path, "b", {})
    train_ppo(cfg, BatchedRooms(num_envs=4, **GRID), 2 * steps, run=run_b)
    run_b.close()
    run_b = Run.open(tmp_path / "b")
    policy_b, stats_b = train_ppo(cfg, BatchedRooms(num_envs=4, **GRID), 4 * steps, run=run_b, resume=True)
    assert stats_b["resumed_from"] == 2 * steps
    for (name, pa), (_, pb) in zip(policy_a.state_dict().items(), policy_b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    keys = ("mean_return", "pg_loss", "v_loss", "entropy")
    log_a = [{k: r[k] for k in ("step", *keys)} for r in run_a.metrics()]
    log_b = [{k: r[k] for k in ("step", *keys)} for r in run_b.metrics()]
    assert log_a == log_b and [r["step"] for r in log_a] == [steps * i for i in range(1, 5)]


def test_box_actions_on_the_continuous_rooms():
    envs = gym.vector.SyncVectorEnv([lambda: RoomsContinuous(n_rooms=9, task="goal_a") for _ in range(4)])
    cfg = PPOConfig(n_steps=16, batch_size=32, n_epochs=2)
    seen = []
    policy, stats = train_ppo(cfg, envs, 256, callback=lambda p, info: seen.append(info["step"]))
    assert seen == [64, 128, 192, 256] and stats["steps"] == 256
    a = policy.act(np.array([[4.0, 4.0], [20.0, 20.0]], dtype=np.float32))
    assert a.shape == (2, 2) and (np.abs(a) <= 1.0).all()
    assert policy.act(np.array([4.0, 4.0], dtype=np.float32)).shape == (2,)


def test_callback_stops_and_bad_config_is_refused():
    envs = BatchedRooms(num_envs=4, **GRID)
    _, stats = train_ppo(CFG, envs, 10_000, callback=lambda p, info: info["iteration"] >= 2)
    assert stats["steps"] == 2 * CFG.n_steps * 4
    with pytest.raises(KeelError, match="batch_size"):
        train_ppo(CFG.model_copy(update={"batch_size": 1000}), envs, 100)
    with pytest.raises(KeelError, match="Box or Discrete observation space"):
        train_ppo(CFG.model_copy(update={"batch_size": 16}), gym.vector.SyncVectorEnv([lambda: gym.make("Blackjack-v1")]),
                  100)


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)])
def test_numpy_rollout_path_matches_the_torch_update_path(action_space):
    from keel.rl.ppo import Policy

    policy = Policy(gym.spaces.Box(-5.0, 5.0, (4,), dtype=np.float32), action_space, CFG)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    mask = np.ones((16, 3), dtype=bool) if policy.discrete else None
    if mask is not None:
        mask[:8, 0] = False
    action, logp, value = policy.np_sample(x, mask)
    t_mask = None if mask is None else torch.from_numpy(mask)
    with torch.no_grad():
        t_logp, _, t_value = policy.evaluate(torch.from_numpy(x), torch.from_numpy(np.asarray(action)), t_mask)
    np.testing.assert_allclose(logp, t_logp.numpy(), atol=1e-5)
    np.testing.assert_allclose(value, t_value.numpy(), atol=1e-5)


def test_torch_actor_and_critic_agree_with_numpy_forward():
    from keel.rl.ppo import Policy

    policy = Policy(gym.spaces.Box(-5.0, 5.0, (6,), dtype=np.float32), gym.spaces.Discrete(4), CFG)
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    logits, values = policy.np_forward(x)
    with torch.inference_mode():
        np.testing.assert_allclose(policy.actor(torch.from_numpy(x)).numpy(), logits, atol=1e-5)
        np.testing.assert_allclose(policy.critic(torch.from_numpy(x)).numpy(), values, atol=1e-5)


def test_gradient_clipping_matches_torch():
    from keel.rl.ppo import _clip_grad_norm

    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    for params in (a, b):
        (sum((p**3).sum() for p in params)).backward()
    _clip_grad_norm(a, 0.5)
    torch.nn.utils.clip_grad_norm_(b, 0.5)
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa.grad, pb.grad)


def test_box_actions_on_the_batched_continuous_rooms_resume_exactly(tmp_path):
    from keel.envs.rooms import BatchedRoomsContinuous

    cfg = PPOConfig(n_steps=16, batch_size=32, n_epochs=2, checkpoint_every=1)
    make = lambda: BatchedRoomsContinuous(num_envs=4, n_rooms=9, task="goal_a", max_episode_steps=20)  # noqa: E731
    run_a, run_b = Run.create(tmp_path, "a", {}), Run.create(tmp_path, "b", {})
    policy_a, stats = train_ppo(cfg, make(), 4 * 64, run=run_a)
    assert stats["episodes"] >= 8
    train_ppo(cfg, make(), 2 * 64, run=run_b)
    policy_b, _ = train_ppo(cfg, make(), 4 * 64, run=run_b, resume=True)
    for pa, pb in zip(policy_a.parameters(), policy_b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_ppo_is_a_learner_and_collect_then_learn_equals_train_step():
    import copy

    from keel.rl.learner import Learner
    from keel.rl.ppo import PPO

    a = PPO(CFG, BatchedRooms(num_envs=4, **GRID), 4 * 32 * 4)
    b = PPO(CFG, BatchedRooms(num_envs=4, **GRID), 4 * 32 * 4)
    assert isinstance(a, Learner)
    a.train_step()
    batch = b.collect()  # the two halves apart, as a remote rollout worker and a learner would run them
    assert batch["x"].shape == (32, 4, b.policy.n_in) and a.env_steps == b.env_steps == 128
    b.learn(batch)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(pa, pb)
    snap = copy.deepcopy(a.state_dict())
    a.train_step()
    a.train_step()
    c = PPO(CFG, BatchedRooms(num_envs=4, **GRID), 4 * 32 * 4)
    c.load_state_dict(copy.deepcopy(snap))
    c.train_step()
    c.train_step()
    for pa, pc in zip(a.policy.parameters(), c.policy.parameters(), strict=True):
        assert torch.equal(pa, pc)
    assert a.counters().env_steps == c.counters().env_steps == 384 and a.counters().updates == 3
    a.train_step()
    assert a.finished
