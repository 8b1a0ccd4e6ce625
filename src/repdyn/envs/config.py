"""Schema of the ``env`` config group (``conf/env/<family>/*.yaml``), registered in Hydra's ConfigStore by
:func:`repdyn.config.register_configs`; value checks are in :func:`repdyn.config.validate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class EnvConfig:
    family: str = MISSING  # classic | mujoco | atari
    id: str = MISSING  # gymnasium id, e.g. Hopper-v5, CartPole-v1, ALE/Phoenix-v5
    num_envs: int = 2
    frames_per_env: int = 1024  # rollout length per env; a batch is num_envs × frames_per_env env steps
    max_episode_steps: int | None = None
    obs_norm: bool = False  # standardise observations with stats from random steps, then frozen (docs/experiments.md)
    obs_norm_steps: int = 4000
    atari: dict[str, Any] = field(default_factory=dict)  # keyword args of repdyn.envs.atari.make_atari_env
    # capacity-loss probe (docs/metrics.md#capacity-loss): agent steps rolled out by the target policy, its envs, epochs
    capacity_samples: int = 4000
    capacity_num_envs: int = 4
    capacity_epochs: int = 4
