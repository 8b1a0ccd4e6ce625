"""The teacher: a trained repdyn run (its ``config.yaml`` and ``checkpoints/last.pt``) as plain functions of
observations — its outputs (Q-values for DQN, logits for PPO) and its ε-perturbed data / evaluation policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from repdyn import checkpoint as ckpt
from repdyn.errors import ConfigError
from repdyn.paths import CHECKPOINT_DIR


@dataclass
class Teacher:
    """``net`` maps observations to ``(outputs [N, A], features, preacts)``; ``kind`` is ``q`` (DQN) or ``policy``."""

    cfg: DictConfig  # the teacher run's config
    net: nn.Module
    kind: str
    n_actions: int
    obs_shape: tuple[int, ...]

    @torch.no_grad()
    def outputs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)[0]


def check_teacher_env(cfg: DictConfig) -> None:
    """Distillation handles discrete actions and un-normalised observations (the probes perturb raw states)."""
    if cfg.env.get("obs_norm", False):
        raise ConfigError(
            f"teacher: {cfg.env.id} was trained with env.obs_norm=true, which distillation does not support"
        )
    if cfg.env.family == "mujoco":
        raise ConfigError(f"teacher: {cfg.env.id} has continuous actions; distillation needs discrete actions")


def teacher_network(cfg: DictConfig, obs_shape: tuple[int, ...], n_actions: int) -> tuple[nn.Module, str]:
    """The teacher's acting network as its agent builds it (agents/dqn.py: the Q-network; agents/ppo.py: the actor),
    without the rest of the agent (replay, optimizers, compiled steps): (network, its checkpoint name)."""
    from repdyn.agents.networks import ActorNet, CriticNet, build_body

    if cfg.agent.name == "dqn":
        return CriticNet(build_body(cfg.model, obs_shape, n_actions, 1.0)), "qnet"
    body = build_body(cfg.model, obs_shape, n_actions, 0.01)
    return ActorNet(body, continuous=False, min_scale=float(cfg.model.get("min_scale", 1e-4))), "actor"


def load_teacher(run_dir: str | Path, cfg: DictConfig) -> Teacher:
    """Rebuild the teacher's network from its run config and load it from the run's last checkpoint."""
    from repdyn.envs.make import make_env

    check_teacher_env(cfg)
    state = ckpt.load(Path(run_dir) / CHECKPOINT_DIR)
    if state is None:
        raise ConfigError(f"teacher: {run_dir} holds no readable checkpoint")
    env = make_env(cfg.env, int(cfg.seed), num_envs=1)
    try:
        obs_shape = tuple(env.observation_spec["observation"].shape[1:])
        n_actions = int(env.action_spec.space.n)
    finally:
        env.close()
    net, name = teacher_network(cfg, obs_shape, n_actions)
    net.load_state_dict(state["agent"][name])
    net.requires_grad_(False).eval()
    return Teacher(cfg, net, "q" if name == "qnet" else "policy", n_actions, obs_shape)


def act_fn(net: nn.Module, kind: str, eps: float, generator: torch.Generator | None = None) -> Any:
    """A plain-tensor policy for :class:`repdyn.lean_collector.LeanCollector`: Q-networks act ε-greedily, policies
    sample from softmax(logits) and then take a uniform action with probability ε. The draws come from ``generator``
    (evaluations: their own, so evaluating never shifts the training's random stream) or torch's global RNG (data
    collection: captured by checkpoints, so a resume continues the same draws)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = net(obs)[0]
        if kind == "q":
            action = out.argmax(-1)
        else:
            action = torch.multinomial(out.softmax(-1), 1, generator=generator).squeeze(-1)
        explore = torch.rand(action.shape, generator=generator) < eps
        uniform = torch.randint(0, out.shape[-1], action.shape, generator=generator)
        return {"action": torch.where(explore, uniform, action)}

    return act
