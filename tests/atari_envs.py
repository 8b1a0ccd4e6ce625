"""Atari env built from an ``env=atari/<game>`` preset file, for the Atari env and collector tests (``repdyn.train``
goes through :func:`repdyn.envs.make_env`, which passes the same ``atari`` keys to ``make_atari_env``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchrl.envs import EnvBase

from repdyn.envs.atari import make_atari_env


def make_atari_env_from_config(env_cfg: Mapping[str, Any], seed: int, device: torch.device | str = "cpu") -> EnvBase:
    """Build from an ``env=atari/<game>`` preset: ``{family: atari, id, num_envs, frames_per_env, atari: {...}}``."""
    if env_cfg.get("family", "atari") != "atari":
        raise ValueError(f"env.family must be 'atari' for make_atari_env_from_config, got {env_cfg.get('family')!r}")
    atari_kwargs = dict(env_cfg.get("atari", {}))
    return make_atari_env(env_cfg["id"], int(env_cfg["num_envs"]), seed, device=device, **atari_kwargs)
