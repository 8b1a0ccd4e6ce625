"""Intrinsic Curiosity Module (Pathak et al. 2017, arXiv:1705.05363; Jansson 2025 §2.7.3, §4.1; docs/interventions.md).

An encoder φ, an inverse model g(φ(s), φ(s')) → â and a forward model f(φ(s), a) → φ̂(s'). For every collected
transition (s, a, s')

    r_int = ½ ‖f(φ(s), a) − φ(s')‖²,      reward = r_ext + β · r_int / σ_int

where σ_int is the running standard deviation of all r_int seen so far (parallel Welford update with the current batch
first, as RLLTE-eXplore's "rms" reward normalisation used by Jansson). The sum is written to ``("next", "reward")`` in
``on_batch_collected``, i.e. BEFORE the agent's ``process_batch``: PPO's GAE and DQN's replay insertion (hence its TD
targets) see it. β = 0 leaves the rewards bit-identical (the addition is skipped, not multiplied by zero).

Training: its own Adam on (1 − w) L_inv + w L_fwd (Pathak's weighting, w = 0.2), ``epochs`` passes over each batch in
minibatches, AFTER the batch's r_int was computed (the reward is the prediction error on transitions the module has not
trained on). Choices written down: the encoder is trained by the inverse loss only — the forward model sees φ(s) and
φ(s') detached, as in the paper's text ("features ... learned by the inverse model"), which keeps the forward loss from
collapsing φ; discrete actions: cross-entropy inverse loss and one-hot actions into the forward model; continuous:
MSE inverse loss and raw actions. φ: two 256-unit ELU layers to ``feature_dim`` for vectors; for images Pathak's four
3×3 stride-2 ELU convolutions (32 channels) on uint8 frames scaled by 1/255.

Determinism: networks are initialised inside ``torch.random.fork_rng`` from a seed derived from the run seed and
minibatches are shuffled with the module's own generator, so the global RNG stream (actions, exploration) is the same
as without the intervention: with β = 0 a run reproduces the no-ICM run exactly.

Logged (``icm/*``, separate from the extrinsic ``env/return``): ``intrinsic_reward`` (mean raw r_int of the batch),
``intrinsic_reward_norm`` (mean r_int / σ_int), ``extrinsic_reward`` (mean r_ext), ``intrinsic_return`` (mean over
the last 10 finished episodes of Σ_t β r_int/σ_int, the intrinsic part of the training return), ``loss_inverse``,
``loss_forward``, ``sigma``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import Intervention, RunFacts, register

_SEED_OFFSET = 0x1C3  # decorrelates ICM init / shuffling from the run's other seeded streams
_EPISODE_WINDOW = 10


class RunningMoments:
    """Running mean / variance of a stream of scalars (Chan et al. parallel update, population variance)."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().reshape(-1)
        n = x.numel()
        if n == 0:
            return
        b_mean = float(x.mean())
        b_m2 = float(((x - b_mean) ** 2).sum())
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.m2 += b_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return (self.m2 / self.count) ** 0.5 if self.count > 0 else 1.0


def _encoder(obs_shape: tuple[int, ...], feature_dim: int) -> nn.Module:
    if len(obs_shape) == 3:  # [C, H, W] frames: Pathak et al.'s 4 × (conv 3×3 s2 + ELU)
        layers: list[nn.Module] = []
        c = obs_shape[0]
        for _ in range(4):
            layers += [nn.Conv2d(c, 32, 3, stride=2, padding=1), nn.ELU()]
            c = 32
        convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n = convs(torch.zeros(1, *obs_shape)).shape[-1]
        return nn.Sequential(convs, nn.Linear(n, feature_dim))
    if len(obs_shape) != 1:
        raise ValueError(f"ICM needs vector [D] or image [C, H, W] observations, got per-sample shape {obs_shape}")
    return nn.Sequential(
        nn.Linear(obs_shape[0], 256), nn.ELU(), nn.Linear(256, 256), nn.ELU(), nn.Linear(256, feature_dim)
    )


class ICMNets(nn.Module):
    """Encoder φ, inverse model and forward model (module docstring)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, discrete: bool, feature_dim: int, hidden: int):
        super().__init__()
        self.discrete, self.n_actions = discrete, n_actions
        self.encoder = _encoder(obs_shape, feature_dim)
        self.inverse = nn.Sequential(nn.Linear(2 * feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))
        self.forward_model = nn.Sequential(
            nn.Linear(feature_dim + n_actions, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim)
        )

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs.float() / 255.0 if obs.dtype == torch.uint8 else obs)

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return nn.functional.one_hot(action.long().reshape(-1), self.n_actions).float()
        return action.float().reshape(action.shape[0], -1)

    def losses(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-sample r_int = ½‖f̂ − φ(s')‖², inverse loss, forward loss) on a flat batch of transitions."""
        phi, phi_next = self.encode(obs), self.encode(next_obs)
        logits = self.inverse(torch.cat([phi, phi_next], -1))
        if self.discrete:
            inv = nn.functional.cross_entropy(logits, action.long().reshape(-1))
        else:
            inv = (logits - action.float().reshape(logits.shape)).square().sum(-1).mean()
        pred = self.forward_model(torch.cat([phi.detach(), self.action_input(action)], -1))
        r_int = 0.5 * (pred - phi_next.detach()).square().sum(-1)
        return r_int, inv, r_int.mean()


def _action_space(agent: Any) -> tuple[bool, int]:
    """(discrete, n_actions or action dim) of the agent's action spec (``agent.action_spec``)."""
    spec = agent.action_spec
    if spec.domain == "discrete":
        return True, int(spec.space.n)
    return False, int(spec.shape[-1])


@register
class ICM(Intervention):
    name: ClassVar[str] = "icm"
    agents: ClassVar[tuple[str, ...]] = ("ppo", "dqn")

    @dataclasses.dataclass
    class Config:
        beta: float = 1.0  # intrinsic reward scale; Jansson 2025 sweeps {0, 1, 4}
        feature_dim: int = 128  # φ dimension (RLLTE-eXplore's latent_dim)
        hidden: int = 256  # inverse / forward model hidden width
        lr: float = 1e-3
        forward_weight: float = 0.2  # w in (1 − w) L_inv + w L_fwd (Pathak et al.'s β = 0.2)
        epochs: int = 1  # passes of ICM training over each collected batch
        minibatch_size: int = 256
        eps: float = 1e-8  # added to σ_int

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if cfg.beta < 0:
            return f"beta must be ≥ 0, got {cfg.beta}"
        if not 0 <= cfg.forward_weight <= 1:
            return f"forward_weight must be in [0, 1], got {cfg.forward_weight}"
        for k in ("feature_dim", "hidden", "epochs", "minibatch_size"):
            if getattr(cfg, k) < 1:
                return f"{k} must be ≥ 1, got {getattr(cfg, k)}"
        if not cfg.lr > 0:
            return f"lr must be > 0, got {cfg.lr}"
        return None

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.generator = torch.Generator().manual_seed(int(run.seed) + _SEED_OFFSET)
        self.nets: ICMNets | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.moments = RunningMoments()
        self.episode_int: torch.Tensor | None = None  # running Σ β r_int/σ per env
        self.finished: deque[float] = deque(maxlen=_EPISODE_WINDOW)
        self._pending: dict[str, Any] | None = None
        self._space: tuple[bool, int] | None = None

    def on_agent_built(self, agent: Any) -> None:
        self._space = _action_space(agent)

    def _build(self, obs_shape: tuple[int, ...]) -> None:
        discrete, n = self._space
        with torch.random.fork_rng():
            torch.manual_seed(int(self.run.seed) + _SEED_OFFSET)
            self.nets = ICMNets(obs_shape, n, discrete, self.cfg.feature_dim, self.cfg.hidden)
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=self.cfg.lr)
        if self._pending is not None:
            self._load(self._pending)
            self._pending = None

    def intrinsic_reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Raw r_int = ½‖f(φ(s), a) − φ(s')‖² per transition of a flat batch (no gradient)."""
        with torch.no_grad():
            return self.nets.losses(obs, action, next_obs)[0]

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        shape = batch.shape  # [num_envs, T]
        n_lead = len(shape)
        obs = batch["observation"]
        if self.nets is None:
            self._build(tuple(obs.shape[n_lead:]))
        flat_obs = obs.reshape(-1, *obs.shape[n_lead:])
        flat_next = batch["next", "observation"].reshape(flat_obs.shape)
        action = batch["action"]
        flat_act = action.reshape(-1, *action.shape[n_lead:])
        r_int = self.intrinsic_reward(flat_obs, flat_act, flat_next)
        self.moments.update(r_int)
        sigma = self.moments.std
        r_norm = r_int / (sigma + self.cfg.eps)
        r_ext = batch["next", "reward"]
        bonus = (self.cfg.beta * r_norm).reshape(r_ext.shape).to(r_ext.dtype)
        if self.cfg.beta != 0:
            batch.set(("next", "reward"), r_ext + bonus)
        self._episode_returns(batch, bonus)
        inv, fwd = self._train(flat_obs, flat_act, flat_next)
        out = {
            "icm/intrinsic_reward": float(r_int.mean()),
            "icm/intrinsic_reward_norm": float(r_norm.mean()),
            "icm/extrinsic_reward": float(r_ext.mean()),
            "icm/loss_inverse": inv,
            "icm/loss_forward": fwd,
            "icm/sigma": sigma,
        }
        if self.finished:
            out["icm/intrinsic_return"] = sum(self.finished) / len(self.finished)
        return out

    def _episode_returns(self, batch: Any, bonus: torch.Tensor) -> None:
        """Accumulate β r_int/σ per env along time; store the sums of episodes that end in this batch."""
        bonus = bonus.reshape(batch.shape[0], -1) if len(batch.shape) == 2 else bonus.reshape(1, -1)
        done = batch["next", "done"].reshape(bonus.shape)
        if self.episode_int is None or self.episode_int.shape[0] != bonus.shape[0]:
            self.episode_int = torch.zeros(bonus.shape[0], dtype=torch.float64)
        for t in range(bonus.shape[1]):  # T steps of vector ops (not per sample)
            self.episode_int += bonus[:, t].double()
            ended = done[:, t]
            if ended.any():
                self.finished.extend(self.episode_int[ended].tolist())
                self.episode_int[ended] = 0.0

    def _train(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> tuple[float, float]:
        n, mb = obs.shape[0], min(self.cfg.minibatch_size, obs.shape[0])
        w = self.cfg.forward_weight
        inv_sum, fwd_sum, steps = 0.0, 0.0, 0
        for _ in range(self.cfg.epochs):
            perm = torch.randperm(n, generator=self.generator)
            for start in range(0, n - mb + 1, mb):
                idx = perm[start : start + mb]
                _, inv, fwd = self.nets.losses(obs[idx], action[idx], next_obs[idx])
                loss = (1 - w) * inv + w * fwd
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                inv_sum, fwd_sum, steps = inv_sum + inv.item(), fwd_sum + fwd.item(), steps + 1
        return inv_sum / max(steps, 1), fwd_sum / max(steps, 1)

    def state_dict(self) -> dict[str, Any]:
        if self.nets is None:
            return self._pending or {}
        return {
            "nets": self.nets.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "moments": (self.moments.count, self.moments.mean, self.moments.m2),
            "episode_int": self.episode_int,
            "finished": list(self.finished),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.nets is None:  # networks are built from the first batch's shapes; apply then
            self._pending = state
            self.generator.set_state(state["generator"])
            return
        self._load(state)

    def _load(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.moments.count, self.moments.mean, self.moments.m2 = state["moments"]
        self.episode_int = state["episode_int"]
        self.finished = deque(state["finished"], maxlen=_EPISODE_WINDOW)
        self.generator.set_state(state["generator"])
