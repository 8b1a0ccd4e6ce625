"""Reference DQN for classic control in one file of plain PyTorch + gymnasium (no torchrl, no tensordict).

What it is for: the throughput benchmark compares repdyn's DQN (:mod:`repdyn.agents.dqn`: lean or torchrl
collector, ``EGreedyModule``, replay on torchrl's ``LazyTensorStorage``, written-out TD(0) step with fused Adam)
against the single-file script a researcher would otherwise copy, in the style of CleanRL. It is deliberately a
straightforward implementation: one Python loop over env steps, a replay of preallocated tensors with uniform
sampling, one hand-written TD(0) step per env step. It is neither slowed down nor tuned with tricks.

Algorithm: DQN (Mnih et al. 2015, "Human-level control through deep reinforcement learning") with the settings of
repdyn's ``conf/agent/dqn.yaml`` (rl-baselines3-zoo's tuned ``Acrobot-v1`` DQN) and ``model=mlp
model.activation=relu``:

- Q-network 2×64 ReLU with orthogonal init (gain √2 hidden, 1.0 head, zero biases), as ``repdyn.models.MLP``;
- Adam (lr 6.3e-4, betas (0.9, 0.999), eps 1e-8), Huber loss (smooth L1, β = 1, mean over the minibatch), gradient
  norm clipped at 10;
- TD(0) target r + γ (1 − terminated) max_a Q_target(s', a), γ 0.99; a truncated episode still bootstraps, from its
  final observation (gymnasium ``SAME_STEP`` autoreset hands it in ``info["final_obs"]``);
- target network: hard copy of the online network every 250 gradient steps;
- ε-greedy, ε linear from 1 to 0.1 over ``eps_frames`` (12,000) env steps, drawn independently per env;
- uniform replay of ``buffer_size`` (50,000) transitions (FIFO), gradient steps start once it holds
  max(``learning_starts``, ``minibatch_size``) transitions; then ``replay_ratio`` (1) gradient steps per env step;
- envs: gymnasium ``SyncVectorEnv`` with ``SAME_STEP`` autoreset (``repdyn.envs.gym_vector.sync_vector_env``).

The minibatch size is a parameter (repdyn's config says 128; the benchmark uses 64).

Timing: ``steady_sps`` (= ``sps_after_learning_starts``) is env steps per second over the env steps after
``learning_starts`` has been reached, i.e. from the first gradient step on: before that the loop only collects
(that rate is returned too, as ``sps_before_learning_starts``). Env construction is excluded from both.

``python -m repdyn.bench.reference_dqn --help`` for the command line.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DQNSettings:
    """Hyper-parameters; defaults are ``conf/agent/dqn.yaml`` with a 2×64 ReLU network."""

    lr: float = 6.3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1.0e-8
    max_grad_norm: float = 10.0
    gamma: float = 0.99
    minibatch_size: int = 128
    buffer_size: int = 50_000
    learning_starts: int = 1000
    replay_ratio: float = 1.0
    target_update_interval: int = 250
    eps_init: float = 1.0
    eps_end: float = 0.1
    eps_frames: int = 12_000
    hidden: tuple[int, ...] = (64, 64)
    max_episode_steps: int | None = None  # None: gymnasium's registered limit (500 for Acrobot-v1)


def make_settings(**hparams: Any) -> DQNSettings:
    """repdyn's settings with ``hparams`` overriding; unknown names raise."""
    known = {f.name for f in fields(DQNSettings)}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise TypeError(f"unknown DQN hyper-parameter(s) {unknown}; known: {sorted(known)}")
    s = DQNSettings(**hparams)
    s.betas = tuple(s.betas)  # type: ignore[assignment]
    s.hidden = tuple(s.hidden)
    return s


class QNetwork(nn.Module):
    """``in → hidden… → n_actions``, ReLU, orthogonal init (gain √2 hidden, 1.0 head), zero biases."""

    def __init__(self, in_dim: int, hidden: Sequence[int], n_actions: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        gain = nn.init.calculate_gain("relu")
        for d_in, d_out in zip([in_dim, *hidden[:-1]], hidden, strict=True):
            lin = nn.Linear(d_in, d_out)
            nn.init.orthogonal_(lin.weight, gain)
            nn.init.zeros_(lin.bias)
            layers += [lin, nn.ReLU()]
        head = nn.Linear(hidden[-1], n_actions)
        nn.init.orthogonal_(head.weight, 1.0)
        nn.init.zeros_(head.bias)
        self.net = nn.Sequential(*layers, head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def epsilon_at(env_steps: int, eps_init: float, eps_end: float, eps_frames: int) -> float:
    """Linear ε: ``eps_init`` at step 0 to ``eps_end`` at ``eps_frames`` env steps, constant afterwards."""
    if eps_frames <= 0:
        return eps_end
    return eps_init + min(1.0, env_steps / eps_frames) * (eps_end - eps_init)


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + γ (1 − terminated) max_a Q_target(s', a); ``next_q`` is ``[B, n_actions]`` from the target network."""
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_q.max(-1).values


class Replay:
    """FIFO ring buffer of preallocated tensors; uniform sampling with replacement."""

    def __init__(self, capacity: int, obs_dim: int) -> None:
        self.obs = torch.zeros((capacity, obs_dim))
        self.next_obs = torch.zeros((capacity, obs_dim))
        self.action = torch.zeros(capacity, dtype=torch.long)
        self.reward = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity, dtype=torch.bool)
        self.capacity, self.pos, self.size = capacity, 0, 0

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray
    ) -> None:
        for i in range(len(obs)):  # one row per env: N is small for classic control
            p = self.pos
            self.obs[p] = torch.from_numpy(obs[i])
            self.next_obs[p] = torch.from_numpy(next_obs[i])
            self.action[p] = int(action[i])
            self.reward[p] = float(reward[i])
            self.terminated[p] = bool(terminated[i])
            self.pos = (p + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, self.size, (batch_size,))
        return self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.terminated[idx]


def make_envs(env_id: str, num_envs: int, max_episode_steps: int | None) -> gym.vector.SyncVectorEnv:
    """``num_envs`` in-process copies with ``SAME_STEP`` autoreset (final observation in ``info``)."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


@dataclass
class Agent:
    """Online Q-network, its target copy and Adam."""

    qnet: QNetwork
    target: QNetwork
    opt: torch.optim.Optimizer


def make_agent(obs_dim: int, n_actions: int, s: DQNSettings) -> Agent:
    qnet = QNetwork(obs_dim, s.hidden, n_actions)
    target = copy.deepcopy(qnet)
    return Agent(qnet, target, torch.optim.Adam(qnet.parameters(), lr=s.lr, betas=s.betas, eps=s.adam_eps))


def gradient_step(agent: Agent, replay: Replay, s: DQNSettings) -> None:
    """One Huber-loss TD(0) step on a uniform minibatch, gradient norm clipped."""
    b_obs, b_act, b_rew, b_next, b_term = replay.sample(s.minibatch_size)
    with torch.no_grad():
        y = td_target(b_rew, b_term, agent.target(b_next), s.gamma)
    q = agent.qnet(b_obs).gather(1, b_act[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(q, y)
    agent.opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.qnet.parameters(), s.max_grad_norm)
    agent.opt.step()


def with_final_obs(next_obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The true next observations: where an episode ended, the final one instead of the autoreset's first."""
    real_next = next_obs.copy()
    for i in np.flatnonzero(done):
        real_next[i] = info["final_obs"][i]
    return real_next


@dataclass
class TrainStats:
    """Counters of :func:`train`; ``t_learn`` / ``frames_at_learn`` mark the first iteration that trained."""

    t_loop: float
    frames: int = 0
    grad_steps: int = 0
    returns: list[float] = field(default_factory=list)
    t_learn: float | None = None
    frames_at_learn: int = 0


def train(
    envs: gym.vector.SyncVectorEnv,
    agent: Agent,
    replay: Replay,
    s: DQNSettings,
    n_vec_steps: int,
    seed: int,
    rng: np.random.Generator,
) -> TrainStats:
    """The main loop: ε-greedy env step, store, then ``replay_ratio`` gradient steps per env step once the replay
    holds max(``learning_starts``, ``minibatch_size``) transitions."""
    num_envs, n_actions = envs.num_envs, int(envs.single_action_space.n)
    start_size = max(s.learning_starts, s.minibatch_size)
    obs, _ = envs.reset(seed=seed)
    obs = np.asarray(obs, dtype=np.float32)
    ep_ret = np.zeros(num_envs)
    grad_credit = 0.0
    stats = TrainStats(t_loop=time.perf_counter())
    for _ in range(n_vec_steps):
        t_step, frames_before = time.perf_counter(), stats.frames
        eps = epsilon_at(stats.frames, s.eps_init, s.eps_end, s.eps_frames)
        with torch.no_grad():
            action = agent.qnet(torch.from_numpy(obs)).argmax(-1).numpy()
        explore = rng.random(num_envs) < eps
        if explore.any():
            action = np.where(explore, rng.integers(0, n_actions, size=num_envs), action)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        next_obs = np.asarray(next_obs, dtype=np.float32)
        stats.frames += num_envs
        ep_ret += reward
        done = terminated | truncated
        real_next = next_obs
        if done.any():
            stats.returns.extend(ep_ret[done].tolist())
            ep_ret[done] = 0.0
            real_next = with_final_obs(next_obs, done, info)
        replay.add(obs, action, reward, real_next, terminated)
        obs = next_obs

        if replay.size >= start_size:
            if stats.t_learn is None:  # the steady window starts with the first iteration that trains
                stats.t_learn, stats.frames_at_learn = t_step, frames_before
            grad_credit += num_envs * s.replay_ratio
        while grad_credit >= 1.0:
            grad_credit -= 1.0
            gradient_step(agent, replay, s)
            stats.grad_steps += 1
            if stats.grad_steps % s.target_update_interval == 0:
                agent.target.load_state_dict(agent.qnet.state_dict())
    return stats


def _results(stats: TrainStats, s: DQNSettings, t_call: float, end: float) -> dict[str, Any]:
    frames = stats.frames
    if stats.t_learn is None:
        steady, before, steady_wall, after_frames = float("nan"), frames / (end - stats.t_loop), 0.0, 0
    else:
        steady_wall, after_frames = end - stats.t_learn, frames - stats.frames_at_learn
        steady = after_frames / steady_wall
        before = stats.frames_at_learn / (stats.t_learn - stats.t_loop) if stats.frames_at_learn > 0 else float("nan")
    return {
        "steady_sps": steady,
        "sps_after_learning_starts": steady,
        "sps_before_learning_starts": before,
        "frames": frames,
        "frames_after_learning_starts": after_frames,
        "wall": end - t_call,
        "steady_wall": steady_wall,
        "grad_steps": stats.grad_steps,
        "target_updates": stats.grad_steps // s.target_update_interval,
        "episodes": len(stats.returns),
        "mean_return": float(np.mean(stats.returns)) if stats.returns else float("nan"),
        "settings": asdict(s),
    }


def run(
    env_id: str,
    *,
    total_frames: int,
    num_envs: int = 1,
    seed: int = 0,
    threads: int = 1,
    **hparams: Any,
) -> dict[str, Any]:
    """Train DQN for ``total_frames`` env steps (rounded up to whole vector steps of ``num_envs``).

    ``hparams`` override fields of :class:`DQNSettings` (e.g. ``minibatch_size=64, learning_starts=1000``).
    ``threads`` sets torch's intra-op threads for the run (restored afterwards).

    Returns ``steady_sps`` and ``sps_after_learning_starts`` (the same number: env steps/s from the first gradient
    step on, i.e. after ``learning_starts``; NaN if training never started), ``sps_before_learning_starts``
    (collection only), ``frames``, ``frames_after_learning_starts``, ``wall`` (whole call, env construction
    included), ``steady_wall``, ``grad_steps``, ``target_updates``, ``episodes``, ``mean_return`` (mean undiscounted
    return of the finished episodes; NaN if none), ``settings``.
    """
    t_call = time.perf_counter()
    s = make_settings(**hparams)
    n_vec_steps = max(1, math.ceil(total_frames / num_envs))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    envs = make_envs(env_id, num_envs, s.max_episode_steps)
    try:
        if not isinstance(envs.single_action_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs discrete actions; {env_id} has {envs.single_action_space}")
        obs_dim = int(np.prod(envs.single_observation_space.shape))
        agent = make_agent(obs_dim, int(envs.single_action_space.n), s)
        replay = Replay(s.buffer_size, obs_dim)
        stats = train(envs, agent, replay, s, n_vec_steps, seed, rng)
        end = time.perf_counter()
    finally:
        torch.set_num_threads(prev_threads)
        envs.close()
    return _results(stats, s, t_call, end)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m repdyn.bench.reference_dqn",
        description="Plain-PyTorch DQN reference with repdyn's classic-control settings; prints env steps/s",
    )
    parser.add_argument("--env", default="Acrobot-v1", help="gymnasium id with discrete actions")
    parser.add_argument("--total-frames", type=int, default=5000, help="env steps")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--minibatch-size", type=int, default=64)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(None if argv is None else list(argv))
    res = run(
        args.env,
        total_frames=args.total_frames,
        num_envs=args.num_envs,
        seed=args.seed,
        threads=args.threads,
        minibatch_size=args.minibatch_size,
        learning_starts=args.learning_starts,
    )
    for k, v in res.items():
        if k != "settings":
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    return res


if __name__ == "__main__":
    main()
