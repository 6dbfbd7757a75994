"""Proximal Policy Optimization over vectorised environments, in one file.

Schulman, Wolski, Dhariwal, Radford, Klimov. "Proximal Policy Optimization Algorithms", 2017
(arXiv 1707.06347), with generalized advantage estimation (Schulman et al. 2016, arXiv 1506.02438)
and the implementation details catalogued by Huang et al., "The 37 Implementation Details of PPO"
(ICLR blog track 2022): orthogonal init, Adam eps 1e-5, per-minibatch advantage normalisation,
optional value clipping, global gradient clipping. Written top to bottom like CleanRL's ppo.py.

    policy, stats = train_ppo(PPOConfig(), envs, total_steps=100_000, run=run)
    actions = policy.act(obs, mask=None, deterministic=True)

`envs` is any Gymnasium VectorEnv with a Discrete or Box single action space: Keel's `BatchedRooms`,
Gymnasium's `SyncVectorEnv`, or `CartPoleVectorEnv`. Both autoreset modes are handled:
- next-step (Gymnasium's default): the step after an episode ends only resets that copy; it is not a
  real transition, so it is left out of the loss;
- same-step (BatchedRooms): the returned observation already starts the next episode and
  `infos["final_obs"]` holds the last one.
A truncated episode is bootstrapped with the value of its final observation (it did not end, we just
stopped watching). A pre-emptive shield's `infos["action_mask"]` (N, A) pushes masked logits to -1e9,
so unsafe actions are never sampled and get no probability in the loss.

Speed on a CPU, where tiny networks make per-call overhead the cost: the rollout runs the networks in
numpy on views of the torch parameters (no autograd, no tensor conversions), the actor's and critic's
hidden layers run as one batched matmul, Adam is fused and gradient clipping is three foreach ops.
`benchmarks/throughput.py` measures the result against Stable-Baselines3.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from torch import nn

from keel.config import KeelModel
from keel.errors import KeelError
from keel.rl.learner import Counters


class PPOConfig(KeelModel):
    """PPO's hyper-parameters (CleanRL's names where they exist); the defaults suit small tasks."""

    n_steps: int = 128  # rollout length per env copy; a batch is n_steps * num_envs transitions
    batch_size: int = 256  # minibatch size
    n_epochs: int = 4
    lr: float = 2.5e-4
    anneal_lr: bool = False  # linearly to 0 over total_steps
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = False
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    target_kl: float | None = None  # stop the epochs early when the approximate KL exceeds this
    hidden: list[int] = [64, 64]
    activation: Literal["tanh", "relu"] = "tanh"
    adam_eps: float = 1e-5
    init_log_std: float = 0.0  # Box actions: initial log standard deviation
    num_threads: int = 1  # small MLPs run fastest on one thread; more only adds sync overhead
    seed: int = 0
    checkpoint_every: int = 10  # iterations between checkpoints (when a run is given)


class TwinMLP(nn.Module):
    """The actor's and the critic's hidden layers: two separate MLPs of the same shape, stored stacked
    as (2, in, out) so one batched matmul runs both (half the ops, which is what costs on a CPU at
    these sizes). Slice 0 is the actor's, slice 1 the critic's; they share no weights."""

    def __init__(self, n_in: int, hidden: list[int], activation: str):
        super().__init__()
        self.activation = activation
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for h in hidden:
            w = torch.empty(2, n_in, h)
            for k in range(2):
                nn.init.orthogonal_(w[k], np.sqrt(2))
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(2, 1, h)))
            n_in = h
        self.n_out = n_in

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.expand(2, *x.shape)
        for w, b in zip(self.weights, self.biases, strict=True):
            h = torch.baddbmm(b, h, w)
            h = torch.tanh(h) if self.activation == "tanh" else torch.relu(h)
        return h[0], h[1]


def _head(n_in: int, n_out: int, gain: float) -> nn.Linear:
    head = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(head.weight, gain)
    nn.init.zeros_(head.bias)
    return head


class Policy(nn.Module):
    """Separate actor and critic MLPs (orthogonal init; a small policy head so the first policy is near
    uniform). Discrete actions: a categorical over (masked) logits; Box: a diagonal Gaussian with a
    state-independent log std, clipped to the bounds only when sent to the env."""

    def __init__(self, obs_space: spaces.Space, action_space: spaces.Space, cfg: PPOConfig):
        super().__init__()
        self.obs_space, self.action_space = obs_space, action_space
        if isinstance(obs_space, spaces.Discrete):
            n_in = int(obs_space.n)
        elif isinstance(obs_space, spaces.Box):
            n_in = int(np.prod(obs_space.shape))
        else:
            raise KeelError(f"PPO needs a Box or Discrete observation space, got {obs_space}")
        if isinstance(action_space, spaces.Discrete):
            self.discrete, n_out = True, int(action_space.n)
        elif isinstance(action_space, spaces.Box):
            self.discrete, n_out = False, int(np.prod(action_space.shape))
            self.log_std = nn.Parameter(torch.full((n_out,), float(cfg.init_log_std)))
        else:
            raise KeelError(f"PPO needs a Discrete or Box action space, got {action_space}")
        self.n_in, self.activation = n_in, cfg.activation
        self.body = TwinMLP(n_in, cfg.hidden, cfg.activation)
        self.actor_head = _head(self.body.n_out, n_out, 0.01)
        self.critic_head = _head(self.body.n_out, 1, 1.0)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # minibatch shuffling
        self.rng = np.random.default_rng(cfg.seed)  # action sampling
        # numpy views of the parameters for the rollout path; they follow every optimizer step and
        # load_state_dict, which both write into the parameters in place
        view = lambda p: p.detach().numpy()  # noqa: E731
        self._np_body = [(view(w), view(b)) for w, b in zip(self.body.weights, self.body.biases, strict=True)]
        self._np_heads = [(view(h.weight).T, view(h.bias)) for h in (self.actor_head, self.critic_head)]
        self._log_std_np = None if self.discrete else view(self.log_std)

    def features(self, obs) -> np.ndarray:
        """Batched observations to a float32 matrix; Discrete observations one-hot."""
        if isinstance(self.obs_space, spaces.Discrete):
            idx = np.asarray(obs, dtype=np.int64).reshape(-1) - int(self.obs_space.start)
            x = np.zeros((len(idx), self.n_in), dtype=np.float32)
            x[np.arange(len(idx)), idx] = 1.0
            return x
        return np.asarray(obs, dtype=np.float32).reshape(-1, self.n_in)

    # --- the rollout path: numpy, no autograd --------------------------------------------------------
    # A rollout step runs the networks on a handful of rows, where numpy's per-call overhead is a
    # fraction of torch's.
    def np_forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(actor outputs: logits or means, values) for a float32 batch."""
        h = x
        for w, b in self._np_body:
            h = h @ w + b  # (N, in) @ (2, in, out) broadcasts to (2, N, out)
            h = np.tanh(h) if self.activation == "tanh" else np.maximum(h, 0.0)
        (wa, ba), (wc, bc) = self._np_heads
        return h[0] @ wa + ba, (h[1] @ wc + bc)[:, 0]

    def np_value(self, x: np.ndarray) -> np.ndarray:
        return self.np_forward(x)[1]

    def np_sample(self, x: np.ndarray, mask: np.ndarray | None, deterministic: bool = False):
        """Actions (N,) or (N, d), their log-probabilities (N,) and values (N,), drawn with the
        policy's own numpy RNG (its state goes into checkpoints)."""
        out, value = self.np_forward(x)
        if self.discrete:
            if mask is not None:
                out = np.where(mask, out, np.float32(-1e9))  # finite, so an all-False row cannot make NaNs
            if deterministic:
                action = out.argmax(1)
            else:  # Gumbel-max: argmax(logits + Gumbel noise) is a categorical sample
                action = (out - np.log(-np.log(self.rng.random(out.shape, dtype=np.float32) + 1e-20))).argmax(1)
            z = out - out.max(1, keepdims=True)
            logp = z[np.arange(len(z)), action] - np.log(np.exp(z).sum(1))
            return action, logp, value
        if deterministic:
            return out, np.zeros(len(out), dtype=np.float32), value
        std = np.exp(self._log_std_np)
        eps = self.rng.standard_normal(out.shape, dtype=np.float32)
        logp = (-0.5 * eps**2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(1)
        return out + std * eps, logp, value

    # --- the update path: torch, with gradients --------------------------------------------------------
    def actor(self, x: torch.Tensor) -> torch.Tensor:
        """The actor's raw outputs (logits, or Gaussian means) for a float batch."""
        return self.actor_head(self.body(x)[0])

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """State values (N,) for a float batch."""
        return self.critic_head(self.body(x)[1]).squeeze(-1)

    def evaluate(self, x: torch.Tensor, action: torch.Tensor, mask: torch.Tensor | None, with_entropy=True):
        """Log-probabilities of taken actions, entropies (None unless asked) and values, for the loss."""
        h_actor, h_critic = self.body(x)
        out, value = self.actor_head(h_actor), self.critic_head(h_critic).squeeze(-1)
        if self.discrete:
            if mask is not None:
                out = out.masked_fill(~mask, -1e9)
            logp_all = torch.log_softmax(out, -1)
            logp = logp_all.gather(-1, action[:, None]).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
        else:
            dist = torch.distributions.Normal(out, self.log_std.exp())
            logp = dist.log_prob(action).sum(-1)
            entropy = dist.entropy().sum(-1) if with_entropy else None
        return logp, entropy, value

    def to_env(self, action: np.ndarray) -> np.ndarray:
        if self.discrete:
            return action
        a = np.clip(action, self.action_space.low.reshape(-1), self.action_space.high.reshape(-1))
        return a.reshape((-1, *self.action_space.shape))

    def act(self, obs, mask=None, deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of observations (or one observation -> one action)."""
        single = np.asarray(obs).shape == tuple(self.obs_space.shape or ())
        x = self.features(obs)
        m = None if mask is None else np.asarray(mask, dtype=bool).reshape(x.shape[0], -1)
        out = self.to_env(self.np_sample(x, m, deterministic)[0])
        return out[0] if single else out


def _final_observations(infos: dict, done_idx: np.ndarray, next_obs, same_step: bool):
    """The last observation of each finished episode in `done_idx`."""
    if not same_step:
        return next_obs[done_idx]  # next-step autoreset: the returned obs IS the final one
    final = infos["final_obs"]
    return np.stack([np.asarray(final[i]) for i in done_idx])


def _clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """Scale all gradients together so their global L2 norm is at most max_norm. The same rule as
    `nn.utils.clip_grad_norm_`, in three foreach ops: at these sizes its bookkeeping costs as much as
    the backward pass."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))


def _mask_of(infos: dict, n: int, use: bool) -> np.ndarray | None:
    return np.asarray(infos["action_mask"], dtype=bool).reshape(n, -1) if use else None


class PPO:
    """PPO's whole training state between updates, driven one rollout at a time; a
    `keel.rl.learner.Learner`: `collect()` runs `n_steps` of every env copy with the current policy,
    `learn(batch)` does GAE and the clipped-surrogate epochs, `train_step()` both.

    The envs are reset (seeded with `cfg.seed`) on construction; `state_dict()` holds the policy, the
    optimiser, every random generator, the envs (when they have `state_dict`, as BatchedRooms and
    keel.rl.product_env.ProductVecEnv do) and the episode bookkeeping, so `load_state_dict` continues
    exactly.
    """

    def __init__(self, cfg: PPOConfig, envs, total_steps: int, policy: Policy | None = None):
        if total_steps < 1:
            raise KeelError(f"total_steps must be >= 1, got {total_steps}")
        if cfg.batch_size > cfg.n_steps * int(envs.num_envs):
            raise KeelError(f"batch_size {cfg.batch_size} is larger than a rollout (n_steps * num_envs = "
                            f"{cfg.n_steps * int(envs.num_envs)}); lower batch_size or raise n_steps")
        self.cfg, self.envs, self.total_steps = cfg, envs, int(total_steps)
        self.n = n = int(envs.num_envs)
        torch.manual_seed(cfg.seed)
        self.policy = policy or Policy(envs.single_observation_space, envs.single_action_space, cfg)
        self.params = list(self.policy.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.adam_eps, fused=True)  # fused: fewer ops
        self.same_step = getattr(envs, "metadata", {}).get("autoreset_mode") == AutoresetMode.SAME_STEP
        self.act_shape = () if self.policy.discrete else (int(np.prod(envs.single_action_space.shape)),)
        # --- state that a checkpoint must carry ----------------------------------------------------
        self.obs, infos = envs.reset(seed=cfg.seed)
        self.use_mask = self.policy.discrete and "action_mask" in infos
        self.mask = _mask_of(infos, n, self.use_mask)
        self.prev_done = np.zeros(n, dtype=bool)  # next-step mode: this copy's coming step is only a reset
        self.ep_ret, self.ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
        self.returns_log: list[float] = []
        self.lengths_log: list[int] = []
        self.global_step, self.iteration = 0, 0

    # --- the Learner protocol ----------------------------------------------------------------------
    @property
    def env_steps(self) -> int:
        return self.global_step

    @property
    def finished(self) -> bool:
        # whole rollouts only, and never past the budget (CleanRL: total // batch iterations); at least one
        return self.global_step > 0 and self.global_step + self.cfg.n_steps * self.n > self.total_steps

    def collect(self) -> dict[str, np.ndarray]:
        """`n_steps` of every copy: features `x`, actions `act`, their log-probs `logp`, values, rewards
        (truncations bootstrapped), dones, `valid` (real transitions), masks, and `next_value`."""
        cfg, policy, envs, n, T = self.cfg, self.policy, self.envs, self.n, self.cfg.n_steps
        b_x = np.zeros((T, n, policy.n_in), dtype=np.float32)
        b_act = np.zeros((T, n, *self.act_shape), dtype=np.int64 if policy.discrete else np.float32)
        b_logp, values = np.zeros((T, n), dtype=np.float32), np.zeros((T, n), dtype=np.float32)
        b_mask = np.ones((T, n, int(envs.single_action_space.n)), dtype=bool) if self.use_mask else None
        rewards, dones = np.zeros((T, n), dtype=np.float32), np.zeros((T, n), dtype=bool)
        valid = np.ones((T, n), dtype=bool)
        obs, mask, prev_done, ep_ret, ep_len = self.obs, self.mask, self.prev_done, self.ep_ret, self.ep_len
        for t in range(T):
            x = policy.features(obs)
            action, logp, value = policy.np_sample(x, mask)
            b_x[t], b_act[t], b_logp[t], values[t] = x, action, logp, value
            if self.use_mask:
                b_mask[t] = mask
            valid[t] = real = ~prev_done
            obs, r, term, trunc, infos = envs.step(policy.to_env(action))
            done = np.logical_or(term, trunc)
            rewards[t], dones[t] = r, done
            ep_ret += r * real
            ep_len += real
            if done.any():
                # Truncated, not terminated: bootstrap with the value of the final observation.
                cut = np.flatnonzero(np.asarray(trunc) & ~np.asarray(term))
                if len(cut):
                    final = _final_observations(infos, cut, obs, self.same_step)
                    rewards[t, cut] += cfg.gamma * policy.np_value(policy.features(final))
                for i in np.flatnonzero(done):
                    self.returns_log.append(float(ep_ret[i]))
                    self.lengths_log.append(int(ep_len[i]))
                del self.returns_log[:-10_000], self.lengths_log[:-10_000]
                ep_ret[done], ep_len[done] = 0.0, 0
            prev_done = done & (not self.same_step)
            mask = _mask_of(infos, n, self.use_mask)
        self.obs, self.mask, self.prev_done = obs, mask, prev_done
        self.global_step += T * n
        batch = {"x": b_x, "act": b_act, "logp": b_logp, "values": values, "rewards": rewards, "dones": dones,
                 "valid": valid, "next_value": policy.np_value(policy.features(obs))}
        if self.use_mask:
            batch["mask"] = b_mask
        return batch

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """GAE over the batch, then `n_epochs` of the clipped surrogate over shuffled minibatches."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.num_threads)
        try:
            return self._learn(batch)
        finally:  # the process's thread count is the caller's, also after Ctrl-C
            torch.set_num_threads(threads)

    def _learn(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        cfg, policy, optimizer, params = self.cfg, self.policy, self.optimizer, self.params
        values, rewards, dones = batch["values"], batch["rewards"], batch["dones"]
        T, n = values.shape
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.lr * max(0.0, 1.0 - (self.global_step - T * n) / self.total_steps)

        # Generalized advantage estimation, backwards over the rollout; a done cuts the chain.
        alive = 1.0 - dones.astype(np.float32)
        next_values = np.concatenate([values[1:], batch["next_value"][None]])
        delta = rewards + cfg.gamma * next_values * alive - values  # TD errors, all at once
        decay = cfg.gamma * cfg.gae_lambda * alive
        adv = np.zeros((T, n), dtype=np.float32)
        last = np.zeros(n, dtype=np.float32)
        for t in reversed(range(T)):
            last = adv[t] = delta[t] + decay[t] * last
        ret = adv + values

        # Optimise the clipped surrogate for n_epochs over shuffled minibatches of real transitions.
        use_mask = "mask" in batch
        idx = torch.as_tensor(np.flatnonzero(batch["valid"].reshape(-1)))
        f_x = torch.from_numpy(batch["x"].reshape(T * n, -1))
        f_act = torch.from_numpy(batch["act"].reshape(T * n, *self.act_shape))
        f_logp, f_val = torch.from_numpy(batch["logp"].reshape(-1)), torch.from_numpy(values.reshape(-1))
        f_adv, f_ret = torch.from_numpy(adv.reshape(-1)), torch.from_numpy(ret.reshape(-1))
        f_mask = torch.from_numpy(batch["mask"].reshape(T * n, -1)) if use_mask else None
        clipfracs, approx_kl = [], 0.0
        pg_loss = v_loss = entropy = torch.zeros(())
        for _ in range(cfg.n_epochs):
            perm = idx[torch.randperm(len(idx), generator=policy.generator)]
            # shuffle once per epoch; minibatches are then cheap slices
            e_x, e_act, e_logp, e_val, e_adv, e_ret = (v[perm] for v in (f_x, f_act, f_logp, f_val, f_adv, f_ret))
            e_mask = f_mask[perm] if use_mask else None
            for s in range(0, len(perm), cfg.batch_size):
                mb = slice(s, s + cfg.batch_size)
                if len(perm) - s < 2:
                    continue
                final_mb = s + cfg.batch_size >= len(perm)
                newlogp, ent, newv = policy.evaluate(e_x[mb], e_act[mb], None if e_mask is None else e_mask[mb],
                                                     with_entropy=cfg.ent_coef > 0 or final_mb)
                logratio = newlogp - e_logp[mb]
                ratio = logratio.exp()
                if final_mb:  # diagnostics (and the target_kl test) from each epoch's last minibatch
                    with torch.no_grad():
                        approx_kl = float(((ratio - 1) - logratio).mean())  # Schulman's k3 estimator
                        clipfracs.append(float(((ratio - 1.0).abs() > cfg.clip_coef).float().mean()))
                        entropy = ent.mean()
                adv_mb = e_adv[mb]
                if cfg.norm_adv:
                    adv_mb = (adv_mb - adv_mb.mean()) / (adv_mb.std() + 1e-8)
                # the clipped surrogate L^CLIP, negated for gradient descent
                pg_loss = -torch.min(adv_mb * ratio, adv_mb * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                if cfg.clip_vloss:
                    v_clipped = e_val[mb] + (newv - e_val[mb]).clamp(-cfg.clip_coef, cfg.clip_coef)
                    v_loss = torch.max((newv - e_ret[mb]) ** 2, (v_clipped - e_ret[mb]) ** 2).mean()
                else:
                    v_loss = ((newv - e_ret[mb]) ** 2).mean()
                loss = pg_loss + cfg.vf_coef * v_loss
                if cfg.ent_coef > 0:
                    loss = loss - cfg.ent_coef * ent.mean()
                for p in params:
                    p.grad = None
                loss.backward()
                _clip_grad_norm(params, cfg.max_grad_norm)
                optimizer.step()
            if cfg.target_kl is not None and approx_kl > cfg.target_kl:
                break
        self.iteration += 1
        recent = self.returns_log[-100:]
        return {
            "iteration": self.iteration, "episodes": len(self.returns_log),
            "mean_return": float(np.mean(recent)) if recent else float("nan"),
            "mean_length": float(np.mean(self.lengths_log[-100:])) if recent else float("nan"),
            "pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "entropy": entropy.item(),
            "approx_kl": approx_kl, "clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0,
        }

    def train_step(self) -> dict[str, float]:
        return self.learn(self.collect())

    # --- SplitLearner: collect and learn in different processes (keel.scale) ------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.policy.state_dict().items()}

    def set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.policy.load_state_dict(weights)  # in place: the numpy views of the rollout path stay valid

    @staticmethod
    def merge(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Several workers' rollouts as one: env copies side by side (axis 1 of (T, n, ...); `next_value`
        is per copy). GAE runs per copy, so the merged batch learns as one rollout of all copies."""
        return {k: np.concatenate([b[k] for b in batches], axis=0 if k == "next_value" else 1) for k in batches[0]}

    def counters(self) -> Counters:
        return Counters(env_steps=self.global_step, episodes=len(self.returns_log), updates=self.iteration)

    def metrics(self) -> dict[str, float]:
        recent = self.returns_log[-100:]
        return {"mean_return": float(np.mean(recent)) if recent else float("nan"), "iteration": self.iteration}

    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.policy.generator.get_state(), "rng": self.policy.rng.bit_generator.state,
            "iteration": self.iteration, "global_step": self.global_step,
            "returns": list(self.returns_log), "lengths": list(self.lengths_log),
        }
        if hasattr(self.envs, "state_dict"):  # a gymnasium VectorEnv has no state to save; ours do
            state |= {"env": self.envs.state_dict(), "obs": self.obs, "mask": self.mask,
                      "prev_done": self.prev_done, "ep_ret": self.ep_ret.copy(), "ep_len": self.ep_len.copy()}
        return state

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.policy.load_state_dict(st["policy"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.policy.generator.set_state(st["generator"])
        self.policy.rng.bit_generator.state = st["rng"]
        self.iteration = st["iteration"]
        self.global_step = st.get("global_step", self.global_step)
        self.returns_log, self.lengths_log = list(st["returns"]), list(st["lengths"])
        if "env" in st and hasattr(self.envs, "load_state_dict"):
            self.envs.load_state_dict(st["env"])
            self.obs, self.mask, self.prev_done = st["obs"], st["mask"], st["prev_done"]
            self.ep_ret, self.ep_len = np.array(st["ep_ret"]), np.array(st["ep_len"])
        else:  # the env cannot be restored exactly: continue from fresh episodes, seeded apart
            self.obs, infos = self.envs.reset(seed=self.cfg.seed + 1_000_003 * self.iteration)
            self.mask = _mask_of(infos, self.n, self.use_mask)


def train_ppo(
    cfg: PPOConfig,
    envs,
    total_steps: int,
    run=None,
    log_every: int = 1,
    callback=None,
    resume: bool = False,
    policy: Policy | None = None,
) -> tuple[Policy, dict[str, Any]]:
    """Train PPO for `total_steps` environment steps (over all copies); returns (policy, stats).

    `run` (a `keel.runs.Run`): metrics every `log_every` iterations, checkpoints every
    `cfg.checkpoint_every`; `resume=True` continues from the last checkpoint, exactly when the env
    has `state_dict`/`load_state_dict` (BatchedRooms does), otherwise from freshly reset envs.
    `callback(policy, info) -> bool | None` runs after each iteration; returning True stops training.
    """
    ppo = PPO(cfg, envs, total_steps, policy)
    resumed_from = None
    if run is not None and resume:
        loaded = run.load_checkpoint()
        if loaded is not None:
            st, step = loaded
            ppo.load_state_dict({**st, "global_step": step})
            run.truncate_metrics(step)
            resumed_from = step
    start_time, start_step = time.perf_counter(), ppo.global_step
    info_out: dict[str, Any] = {}
    while not ppo.finished:
        info_out = ppo.train_step()
        elapsed = time.perf_counter() - start_time
        info_out["sps"] = (ppo.global_step - start_step) / max(elapsed, 1e-9)
        if run is not None:
            if ppo.iteration % max(1, log_every) == 0:
                run.log(ppo.global_step, **info_out)
            if ppo.iteration % max(1, cfg.checkpoint_every) == 0:
                run.save_checkpoint(ppo.state_dict(), ppo.global_step)
        if callback is not None and callback(ppo.policy, {"step": ppo.global_step, **info_out}):
            break
    if run is not None:
        run.save_checkpoint(ppo.state_dict(), ppo.global_step)
    stats = {"steps": ppo.global_step, "resumed_from": resumed_from, **info_out,
             "seconds": time.perf_counter() - start_time}
    return ppo.policy, stats
