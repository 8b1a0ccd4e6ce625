"""Reference PPO-Clip in one file of plain PyTorch + gymnasium / ale-py (no torchrl, no tensordict).

What it is for: the throughput benchmark compares repdyn's PPO (torchrl ``Collector``, ``TensorDict`` batches, the
metric-ready actor/critic of :mod:`repdyn.agents.ppo`) against the single-file script a researcher would otherwise
copy, in the style of CleanRL. It is deliberately a straightforward implementation: preallocated rollout tensors, one
Python loop over env steps, a GAE loop, minibatches from a random permutation. It is neither slowed down nor tuned
with tricks (no ``torch.compile``, no fused kernels, no custom env loop).

Algorithm: PPO-Clip (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347) with GAE
(Schulman et al. 2015, "High-Dimensional Continuous Control Using Generalized Advantage Estimation",
arXiv:1506.02438). Settings mirror repdyn's ``conf/agent/ppo.yaml`` (MuJoCo) and ``conf/agent/ppo_atari.yaml`` (ALE,
``cnn=True``) and the env presets ``conf/env/mujoco/*.yaml`` / ``conf/env/atari/*.yaml``:

- separate actor and critic networks, each with its own Adam (lr, betas, eps from the config) and its own grad-norm
  clip (0.5); loss = −clip objective + 0.5 · value loss − entropy_coef · entropy, one backward for both;
- MLP 2×64 tanh with orthogonal init (gain 5/3 hidden, head gain 0.01 actor / 1.0 critic), as ``repdyn.models.MLP``;
  for ALE two separate Nature CNNs (Mnih et al. 2015, "Human-level control through deep reinforcement learning";
  32/64/64 convs, linear 512, ReLU, orthogonal gain √2, same head gains), as ``repdyn.models.NatureCNN``;
- continuous actions: TanhNormal policy — loc and softplus(raw) + min_scale from the actor head, tanh-squashed and
  mapped affinely onto the Box bounds (torchrl's ``TanhNormal`` with ``tanh_loc=False``); its entropy has no closed
  form and is a one-sample estimate −log π(ã), ã a reparameterised sample (as repdyn). Discrete: Categorical;
- GAE(γ 0.99, λ 0.95): δ uses ``terminated`` (no bootstrap past a true terminal state), the recursion stops at
  ``terminated or truncated``, and a truncated step bootstraps from V(final observation) — gymnasium's ``SAME_STEP``
  autoreset hands the final observation in ``info["final_obs"]``; value target = advantage + V(s);
- per-minibatch advantage normalisation, clip ε, unclipped squared-error value loss, ``epochs`` passes over the
  batch with minibatches from a fresh random permutation each epoch (incomplete last minibatch dropped);
- MuJoCo: observations standardised with mean/std from ``obs_norm_steps`` (4000) uniform-random env steps, then
  frozen (std floored at 1e-6), as ``repdyn.envs.obs_norm``; envs: gymnasium ``SyncVectorEnv`` with ``SAME_STEP``
  autoreset and ``max_episode_steps`` 1000, as ``repdyn.envs.gym_vector.sync_vector_env``;
- ALE: ale-py's ``AtariVectorEnv`` with the arguments of ``repdyn.envs.atari.ale_vector_env_kwargs`` (v5 settings:
  sticky actions 0.25, frameskip 3 without max-pooling, 108,000 emulator frames per episode, no noop reset, no FIRE
  reset, grayscale 84×84, stack 4, ``SameStep`` autoreset), reward = sign of the raw game score.

Timing (the ``steady_sps`` of :func:`run`): env steps per second over full iterations (collect + update) of every
batch after the first; the obs-norm warm-up, env construction and the first batch (collection and update) are
excluded, matching the benchmark's "steady-state env steps/s" of repdyn. On ALE, set ``OMP_WAIT_POLICY=PASSIVE``
before torch is imported (for both sides of a comparison): torch's spinning OpenMP threads otherwise starve ale-py's
emulator threads (see ``repdyn.envs.atari``).

``python -m repdyn.bench.reference_ppo --help`` for the command line.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------------------------
# settings


@dataclass
class PPOSettings:
    """Hyper-parameters; defaults are ``conf/agent/ppo.yaml`` + ``conf/model/mlp.yaml`` (MuJoCo)."""

    epochs: int = 10
    minibatch_size: int = 64
    lr: float = 3.0e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1.0e-5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    normalize_advantage: bool = True
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    min_scale: float = 1.0e-4
    # env (MLP envs): None → as repdyn's presets: 4000 random steps and 1000-step episodes for MuJoCo, else off/default
    obs_norm_steps: int | None = None
    max_episode_steps: int | None = None
    # env (ALE, cnn=True): the keys of repdyn's ``env.atari`` presets
    frameskip: int = 3
    repeat_action_probability: float = 0.25
    max_num_frames_per_episode: int = 108_000
    noop_max: int = 0
    grayscale: bool = True
    size: int = 84
    stack: int = 4
    reward_sign: bool = True
    ale_threads: int = 0  # ale-py emulator threads; 0 = min(num_envs, hardware threads)


# ``conf/agent/ppo_atari.yaml`` + ``conf/model/cnn.yaml``: what differs from the MuJoCo defaults.
ATARI_OVERRIDES: dict[str, Any] = {
    "epochs": 4,
    "minibatch_size": 256,
    "lr": 2.5e-4,
    "clip_eps": 0.1,
    "entropy_coef": 0.01,
    "activation": "relu",
}


def make_settings(cnn: bool = False, **hparams: Any) -> PPOSettings:
    """The settings repdyn uses (ALE ones when ``cnn``), with ``hparams`` overriding; unknown names raise."""
    known = {f.name for f in fields(PPOSettings)}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise TypeError(f"unknown PPO hyper-parameter(s) {unknown}; known: {sorted(known)}")
    base = dict(ATARI_OVERRIDES) if cnn else {}
    base.update(hparams)
    s = PPOSettings(**base)
    s.betas = tuple(s.betas)  # type: ignore[assignment]
    s.hidden = tuple(s.hidden)
    return s


# ----------------------------------------------------------------------------------------------------------------------
# networks


def _activation(name: str) -> nn.Module:
    return {"tanh": nn.Tanh, "relu": nn.ReLU}[name]()


class MLP(nn.Module):
    """``in → hidden… → out`` with orthogonal init: gain of the activation on hidden layers, ``head_gain`` on the
    head, zero biases."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str, head_gain: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        gain = nn.init.calculate_gain(activation)
        for d_in, d_out in zip([in_dim, *hidden[:-1]], hidden, strict=True):
            lin = nn.Linear(d_in, d_out)
            nn.init.orthogonal_(lin.weight, gain)
            nn.init.zeros_(lin.bias)
            layers += [lin, _activation(activation)]
        head = nn.Linear(hidden[-1], out_dim)
        nn.init.orthogonal_(head.weight, head_gain)
        nn.init.zeros_(head.bias)
        self.net = nn.Sequential(*layers, head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NatureCNN(nn.Module):
    """Conv 32×8×8/4 → 64×4×4/2 → 64×3×3/1 → linear 512 → head, ReLU, orthogonal init; uint8 frames scaled by 1/255."""

    def __init__(self, in_channels: int, out_dim: int, head_gain: float, hidden: int = 512) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, hidden),
            nn.ReLU(),
        )
        gain = nn.init.calculate_gain("relu")
        for m in self.trunk:
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.orthogonal_(m.weight, gain)
                nn.init.zeros_(m.bias)
        self.head = nn.Linear(hidden, out_dim)
        nn.init.orthogonal_(self.head.weight, head_gain)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x.float() / 255.0))


# ----------------------------------------------------------------------------------------------------------------------
# policy distributions

_LOG2 = math.log(2.0)


class TanhNormalPolicy:
    """tanh-squashed diagonal Gaussian mapped onto ``[low, high]``: a = c + h · tanh(u), u ~ N(loc, scale), with
    c = (high + low)/2, h = (high − low)/2. Log-probabilities are summed over action dimensions."""

    def __init__(self, low: np.ndarray, high: np.ndarray, min_scale: float) -> None:
        low_t, high_t = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
        self.center, self.half = (high_t + low_t) / 2, (high_t - low_t) / 2
        self.log_half_sum = torch.log(self.half).sum()
        self.min_scale = min_scale

    def params(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = out.chunk(2, -1)
        return loc, F.softplus(raw) + self.min_scale

    def _log_prob_pre(self, loc: torch.Tensor, scale: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        normal = -((u - loc) ** 2) / (2 * scale**2) - scale.log() - 0.5 * math.log(2 * math.pi)
        log_det = 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))  # log(1 − tanh(u)²), stable
        return (normal - log_det).sum(-1) - self.log_half_sum

    def log_prob(self, out: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        loc, scale = self.params(out)
        y = ((action - self.center) / self.half).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        return self._log_prob_pre(loc, scale, torch.atanh(y))

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        loc, scale = self.params(out)
        return self.center + self.half * torch.tanh(loc + scale * torch.randn_like(loc))

    def entropy(self, out: torch.Tensor) -> torch.Tensor:
        """One-sample estimate −log π(ã) with a reparameterised ã (no closed form)."""
        loc, scale = self.params(out)
        u = loc + scale * torch.randn_like(loc)
        return -self._log_prob_pre(loc, scale, u)


class CategoricalPolicy:
    def log_prob(self, out: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=out).log_prob(action)

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=out).sample()

    def entropy(self, out: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=out).entropy()


# ----------------------------------------------------------------------------------------------------------------------
# pure pieces


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates over a ``[T, N]`` rollout (time first).

    δ_t = r_t + γ (1 − terminated_t) V(s'_t) − V(s_t), A_t = δ_t + γ λ (1 − done_t) A_{t+1}, A_T = 0, where ``s'_t``
    is the true next state of step t (the final observation when the episode ended there) and ``done`` =
    terminated or truncated. Returns ``(advantages, value_targets = advantages + values)``.
    """
    not_term = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - done.to(values.dtype)
    deltas = rewards + gamma * not_term * next_values - values
    adv = torch.zeros_like(values)
    last = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        last = deltas[t] + gamma * lam * not_done[t] * last
        adv[t] = last
    return adv, adv + values


def clip_objective(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor, clip_eps: float
) -> torch.Tensor:
    """Per-sample min(r·A, clip(r, 1 − ε, 1 + ε)·A), r = π_θ/π_old."""
    ratio = torch.exp(log_prob - old_log_prob)
    return torch.minimum(ratio * advantage, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantage)


# ----------------------------------------------------------------------------------------------------------------------
# envs


def make_mlp_envs(env_id: str, num_envs: int, max_episode_steps: int | None) -> gym.vector.SyncVectorEnv:
    """``num_envs`` in-process copies with ``SAME_STEP`` autoreset (final observation in ``info``)."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def make_atari_envs(env_id: str, num_envs: int, s: PPOSettings) -> Any:
    """ale-py's C++ vector env for ``ALE/<Game>-v5`` with the v5 settings of the module docstring."""
    from ale_py.vector_env import AtariVectorEnv

    match = re.fullmatch(r"ALE/([A-Za-z0-9]+)-v5", env_id)
    if match is None:
        raise ValueError(f"cnn=True needs an id like 'ALE/Phoenix-v5', got {env_id!r}")
    game = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", match.group(1)).lower()
    return AtariVectorEnv(
        game=game,
        num_envs=num_envs,
        num_threads=s.ale_threads,
        max_num_frames_per_episode=s.max_num_frames_per_episode,
        repeat_action_probability=s.repeat_action_probability,
        full_action_space=False,
        autoreset_mode="SameStep",
        img_height=s.size,
        img_width=s.size,
        grayscale=s.grayscale,
        stack_num=s.stack,
        frameskip=s.frameskip,
        maxpool=False,
        noop_max=s.noop_max,
        episodic_life=False,
        life_loss_info=False,
        reward_clipping=False,
        use_fire_reset=False,
    )


def _is_mujoco(env_id: str) -> bool:
    return "mujoco" in str(gym.spec(env_id).entry_point)


def make_envs(env_id: str, num_envs: int, s: PPOSettings, cnn: bool) -> Any:
    """The vector env of the setting: ale-py's for ALE, else ``SyncVectorEnv`` with MuJoCo's 1000-step episodes."""
    if cnn:
        return make_atari_envs(env_id, num_envs, s)
    default_limit = 1000 if _is_mujoco(env_id) else None
    return make_mlp_envs(env_id, num_envs, s.max_episode_steps if s.max_episode_steps is not None else default_limit)


def obs_norm_steps(env_id: str, s: PPOSettings, cnn: bool) -> int:
    """Random warm-up steps for the frozen observation normalisation: 4000 on MuJoCo, none on ALE or elsewhere."""
    if cnn:
        return 0
    return s.obs_norm_steps if s.obs_norm_steps is not None else (4000 if _is_mujoco(env_id) else 0)


def obs_norm_stats(envs: Any, obs: np.ndarray, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (floored at 1e-6) of the observations seen in ``steps`` uniform-random env steps in total from
    the current observations ``obs``, as ``repdyn.envs.obs_norm.add_frozen_obs_norm`` (the caller then resets)."""
    space = envs.single_action_space
    n = envs.num_envs
    seen = []
    for _ in range(max(1, steps // n)):
        seen.append(np.asarray(obs, dtype=np.float32))
        if isinstance(space, gym.spaces.Box):
            action = rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)
        else:
            action = rng.integers(0, space.n, size=n)
        obs, *_ = envs.step(action)
    flat = torch.from_numpy(np.concatenate(seen))
    return flat.mean(0).numpy(), flat.std(0).clamp_min(1e-6).numpy()


ObsNorm = tuple[torch.Tensor, torch.Tensor] | None
ObsPrep = Callable[[np.ndarray], torch.Tensor]


def reset_envs(envs: Any, norm_steps: int, seed: int, rng: np.random.Generator) -> tuple[np.ndarray, ObsNorm]:
    """First observations after seeding, and the frozen ``(mean, std)`` from ``norm_steps`` random steps (if any)."""
    obs, _ = envs.reset(seed=seed)
    if norm_steps <= 0:
        return obs, None
    mean, std = obs_norm_stats(envs, obs, norm_steps, rng)
    obs, _ = envs.reset()  # continues the sub-envs' RNGs
    return obs, (torch.from_numpy(mean), torch.from_numpy(std))


def make_obs_prep(cnn: bool, obs_norm: ObsNorm) -> ObsPrep:
    """numpy observations → network input: uint8 frames as they are (the CNN scales them), else standardised floats."""

    def prep(o: np.ndarray) -> torch.Tensor:
        if cnn:
            return torch.from_numpy(np.asarray(o))
        x = torch.as_tensor(o, dtype=torch.float32)
        return (x - obs_norm[0]) / obs_norm[1] if obs_norm is not None else x

    return prep


# ----------------------------------------------------------------------------------------------------------------------
# agent and rollout storage


@dataclass
class Agent:
    """Separate actor and critic, each with its own Adam; the parameter lists are for the per-network grad clip."""

    actor: nn.Module
    critic: nn.Module
    policy: Any
    opt_actor: torch.optim.Optimizer
    opt_critic: torch.optim.Optimizer
    actor_params: list[nn.Parameter]
    critic_params: list[nn.Parameter]


def make_agent(obs_shape: tuple[int, ...], act_space: gym.Space, s: PPOSettings, cnn: bool) -> Agent:
    """Policy distribution for the action space, actor then critic (Nature CNNs or MLPs), and their optimisers."""
    if isinstance(act_space, gym.spaces.Box):
        policy: Any = TanhNormalPolicy(act_space.low, act_space.high, s.min_scale)
        actor_out = 2 * int(np.prod(act_space.shape))
    else:
        policy = CategoricalPolicy()
        actor_out = int(act_space.n)
    if cnn:
        actor: nn.Module = NatureCNN(obs_shape[0], actor_out, 0.01)
        critic: nn.Module = NatureCNN(obs_shape[0], 1, 1.0)
    else:
        actor = MLP(obs_shape[0], s.hidden, actor_out, s.activation, 0.01)
        critic = MLP(obs_shape[0], s.hidden, 1, s.activation, 1.0)
    opt_actor = torch.optim.Adam(actor.parameters(), lr=s.lr, betas=s.betas, eps=s.adam_eps)
    opt_critic = torch.optim.Adam(critic.parameters(), lr=s.lr, betas=s.betas, eps=s.adam_eps)
    return Agent(actor, critic, policy, opt_actor, opt_critic, list(actor.parameters()), list(critic.parameters()))


@dataclass
class Rollout:
    """Preallocated ``[T, N]`` tensors of one batch (time first)."""

    obs: torch.Tensor
    act: torch.Tensor
    logp: torch.Tensor
    val: torch.Tensor
    rew: torch.Tensor
    term: torch.Tensor
    done: torch.Tensor
    trunc_val: torch.Tensor  # V(final observation) where an episode was truncated


def make_rollout(T: int, N: int, obs_shape: tuple[int, ...], act_space: gym.Space, cnn: bool) -> Rollout:
    if isinstance(act_space, gym.spaces.Box):
        act = torch.zeros((T, N, int(np.prod(act_space.shape))), dtype=torch.float32)
    else:
        act = torch.zeros((T, N), dtype=torch.long)
    return Rollout(
        obs=torch.zeros((T, N, *obs_shape), dtype=torch.uint8 if cnn else torch.float32),
        act=act,
        logp=torch.zeros((T, N)),
        val=torch.zeros((T, N)),
        rew=torch.zeros((T, N)),
        term=torch.zeros((T, N), dtype=torch.bool),
        done=torch.zeros((T, N), dtype=torch.bool),
        trunc_val=torch.zeros((T, N)),
    )


# ----------------------------------------------------------------------------------------------------------------------
# training


def collect(
    envs: Any,
    agent: Agent,
    prep: ObsPrep,
    buf: Rollout,
    next_obs: torch.Tensor,
    ep_ret: np.ndarray,
    returns: list[float],
    sign_rewards: bool,
) -> torch.Tensor:
    """Fill ``buf`` with one batch from ``next_obs`` on; finished episodes' returns go to ``returns``. Returns the
    observation to continue from."""
    for t in range(buf.val.shape[0]):
        with torch.no_grad():
            out = agent.actor(next_obs)
            action = agent.policy.sample(out)
            buf.logp[t] = agent.policy.log_prob(out, action)
            buf.val[t] = agent.critic(next_obs).squeeze(-1)
        buf.obs[t] = next_obs
        buf.act[t] = action
        raw_obs, reward, terminated, truncated, info = envs.step(action.numpy())
        truncated = truncated & ~terminated
        done = terminated | truncated
        ep_ret += reward
        buf.rew[t] = torch.from_numpy(np.sign(reward) if sign_rewards else reward)
        buf.term[t] = torch.from_numpy(terminated)
        buf.done[t] = torch.from_numpy(done)
        if done.any():
            returns.extend(ep_ret[done].tolist())
            ep_ret[done] = 0.0
            if truncated.any():
                idx = np.flatnonzero(truncated)
                final = np.stack([info["final_obs"][i] for i in idx])
                with torch.no_grad():
                    buf.trunc_val[t, idx] = agent.critic(prep(final)).squeeze(-1)
        next_obs = prep(raw_obs)
    return next_obs


def advantages(critic: nn.Module, buf: Rollout, next_obs: torch.Tensor, s: PPOSettings) -> tuple[torch.Tensor, ...]:
    """GAE over the batch; V(s'_t) is the next step's stored value, V(next_obs) after the last step."""
    T, N = buf.val.shape
    with torch.no_grad():
        next_vals = torch.empty((T, N))
        next_vals[:-1] = buf.val[1:]
        next_vals[-1] = critic(next_obs).squeeze(-1)
    # the stored next value after a done is V(reset observation): replace it where the episode was truncated
    # (terminated steps do not bootstrap)
    next_vals = torch.where(buf.done & ~buf.term, buf.trunc_val, next_vals)
    return gae(buf.rew, buf.val, next_vals, buf.term, buf.done, s.gamma, s.gae_lambda)


def update_minibatch(
    agent: Agent,
    obs: torch.Tensor,
    act: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    target: torch.Tensor,
    s: PPOSettings,
) -> None:
    """One gradient step: −clip objective + value_coef · value loss − entropy_coef · entropy, one backward."""
    out = agent.actor(obs)
    log_prob = agent.policy.log_prob(out, act)
    if s.normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = -clip_objective(log_prob, old_logp, adv, s.clip_eps).mean()
    entropy = agent.policy.entropy(out).mean()
    value_loss = (agent.critic(obs).squeeze(-1) - target).pow(2).mean()
    loss = policy_loss + s.value_coef * value_loss - s.entropy_coef * entropy
    agent.opt_actor.zero_grad(set_to_none=True)
    agent.opt_critic.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.actor_params, s.max_grad_norm)
    nn.utils.clip_grad_norm_(agent.critic_params, s.max_grad_norm)
    agent.opt_actor.step()
    agent.opt_critic.step()


def update(agent: Agent, buf: Rollout, adv: torch.Tensor, targets: torch.Tensor, s: PPOSettings) -> int:
    """``epochs`` passes over the flattened batch in minibatches of a fresh random permutation (incomplete last one
    dropped); returns the number of gradient steps."""
    n = buf.val.numel()
    b_obs = buf.obs.reshape(n, *buf.obs.shape[2:])
    b_act = buf.act.reshape(n, *buf.act.shape[2:])
    b_logp, b_adv, b_tgt = buf.logp.reshape(-1), adv.reshape(-1), targets.reshape(-1)
    mb_per_epoch = n // s.minibatch_size
    for _ in range(s.epochs):
        perm = torch.randperm(n)
        for k in range(mb_per_epoch):
            mb = perm[k * s.minibatch_size : (k + 1) * s.minibatch_size]
            update_minibatch(agent, b_obs[mb], b_act[mb], b_logp[mb], b_adv[mb], b_tgt[mb], s)
    return s.epochs * mb_per_epoch


@dataclass
class TrainStats:
    """Counters of :func:`train`; walls in seconds (``warmup_wall`` from the start of :func:`run`)."""

    returns: list[float] = field(default_factory=list)
    grad_steps: int = 0
    warmup_wall: float = float("nan")
    steady_start: float = float("nan")
    collect_wall: float = 0.0
    update_wall: float = 0.0


def train(
    envs: Any,
    agent: Agent,
    prep: ObsPrep,
    obs: np.ndarray,
    buf: Rollout,
    s: PPOSettings,
    n_batches: int,
    sign_rewards: bool,
    t_call: float,
) -> TrainStats:
    """The main loop: ``n_batches`` × (collect, GAE, update), timing every batch after the first."""
    stats = TrainStats()
    ep_ret = np.zeros(buf.val.shape[1])
    next_obs = prep(obs)
    for b in range(n_batches):
        t_batch = time.perf_counter()
        next_obs = collect(envs, agent, prep, buf, next_obs, ep_ret, stats.returns, sign_rewards)
        adv, targets = advantages(agent.critic, buf, next_obs, s)
        t_collected = time.perf_counter()
        stats.grad_steps += update(agent, buf, adv, targets, s)
        t_end = time.perf_counter()
        if b == 0:
            stats.warmup_wall, stats.steady_start = t_end - t_call, t_end
        else:
            stats.collect_wall += t_collected - t_batch
            stats.update_wall += t_end - t_collected
    return stats


def _checked_settings(
    env_id: str, cnn: bool, num_envs: int, frames_per_env: int, hparams: dict[str, Any]
) -> PPOSettings:
    if cnn != env_id.startswith("ALE/"):
        raise ValueError(f"cnn=True goes with ALE ids and only with them; got env_id={env_id!r}, cnn={cnn}")
    s = make_settings(cnn, **hparams)
    if num_envs * frames_per_env < s.minibatch_size:
        raise ValueError(f"batch {num_envs}×{frames_per_env} is smaller than minibatch_size {s.minibatch_size}")
    return s


def _results(stats: TrainStats, s: PPOSettings, n_batches: int, batch: int, t_call: float, end: float) -> dict:
    steady_frames = (n_batches - 1) * batch
    steady_wall = end - stats.steady_start
    return {
        "steady_sps": steady_frames / steady_wall if steady_frames > 0 else float("nan"),
        "frames": n_batches * batch,
        "batches": n_batches,
        "steady_frames": steady_frames,
        "wall": end - t_call,
        "warmup_wall": stats.warmup_wall,
        "steady_wall": steady_wall,
        "collect_wall": stats.collect_wall,
        "update_wall": stats.update_wall,
        "grad_steps": stats.grad_steps,
        "episodes": len(stats.returns),
        "mean_return": float(np.mean(stats.returns)) if stats.returns else float("nan"),
        "settings": asdict(s),
    }


def run(
    env_id: str,
    *,
    total_frames: int,
    num_envs: int,
    frames_per_env: int,
    seed: int = 0,
    cnn: bool = False,
    threads: int = 1,
    **hparams: Any,
) -> dict[str, Any]:
    """Train PPO for ``total_frames`` env steps (rounded up to whole batches of ``num_envs × frames_per_env``).

    ``cnn=True`` selects the ALE setting (ale-py vector env, Nature CNNs, ``conf/agent/ppo_atari.yaml``); otherwise a
    gymnasium ``SyncVectorEnv`` with 2×64 tanh MLPs (``conf/agent/ppo.yaml``). ``hparams`` override fields of
    :class:`PPOSettings`. ``threads`` sets torch's intra-op threads for the run (restored afterwards).

    Returns ``steady_sps`` (env steps/s over complete collect + update iterations of batches 2…B; NaN with one
    batch), ``frames`` (env steps trained on, warm-up random steps excluded), ``batches``, ``wall`` (seconds from
    the start of the call, env construction and obs-norm warm-up included), ``warmup_wall`` (construction + obs norm
    + first batch), ``steady_wall``, ``collect_wall`` / ``update_wall`` (split of the steady window),
    ``grad_steps``, ``episodes`` and ``mean_return`` (mean undiscounted return of the episodes finished during
    training, raw game score on ALE; NaN if none), ``settings``.
    """
    t_call = time.perf_counter()
    batch = num_envs * frames_per_env
    s = _checked_settings(env_id, cnn, num_envs, frames_per_env, hparams)
    n_batches = max(1, math.ceil(total_frames / batch))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    envs: Any = None
    try:
        envs = make_envs(env_id, num_envs, s, cnn)
        obs, obs_norm = reset_envs(envs, obs_norm_steps(env_id, s, cnn), seed, rng)
        obs_shape, act_space = tuple(envs.single_observation_space.shape), envs.single_action_space
        agent = make_agent(obs_shape, act_space, s, cnn)
        buf = make_rollout(frames_per_env, num_envs, obs_shape, act_space, cnn)
        prep = make_obs_prep(cnn, obs_norm)
        sign_rewards = cnn and s.reward_sign  # ALE: the reward is the sign of the raw game score
        stats = train(envs, agent, prep, obs, buf, s, n_batches, sign_rewards, t_call)
        end = time.perf_counter()
    finally:
        torch.set_num_threads(prev_threads)
        if envs is not None:
            envs.close()

    return _results(stats, s, n_batches, batch, t_call, end)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m repdyn.bench.reference_ppo",
        description="Plain-PyTorch PPO-Clip reference with repdyn's settings; prints steady-state env steps/s",
    )
    parser.add_argument("--env", default="Hopper-v5", help="gymnasium id, or ALE/<Game>-v5 (selects the CNN setting)")
    parser.add_argument("--total-frames", type=int, default=None, help="env steps (default: 4 batches)")
    parser.add_argument("--num-envs", type=int, default=None, help="default 2 (MLP) or 8 (ALE)")
    parser.add_argument("--frames-per-env", type=int, default=None, help="default 1024 (MLP) or 128 (ALE)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--minibatch-size", type=int, default=None)
    args = parser.parse_args(None if argv is None else list(argv))
    cnn = args.env.startswith("ALE/")
    num_envs = args.num_envs or (8 if cnn else 2)
    frames_per_env = args.frames_per_env or (128 if cnn else 1024)
    total = args.total_frames or 4 * num_envs * frames_per_env
    hparams = {k: v for k, v in (("epochs", args.epochs), ("minibatch_size", args.minibatch_size)) if v is not None}
    res = run(
        args.env,
        total_frames=total,
        num_envs=num_envs,
        frames_per_env=frames_per_env,
        seed=args.seed,
        cnn=cnn,
        threads=args.threads,
        **hparams,
    )
    for k, v in res.items():
        if k != "settings":
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    return res


if __name__ == "__main__":
    main()
