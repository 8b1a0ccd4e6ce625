"""Environment builders: ``make_env(env_cfg, seed)`` → a batched torchrl env with the episode bookkeeping transforms.

Every env returned here has batch size ``[num_envs]``, keys ``observation``, ``reward`` ([.., 1]), ``done``,
``terminated``, ``truncated``, and the transforms ``StepCounter`` (``step_count``) and ``RewardSum``
(``episode_reward``; plus ``episode_reward_raw`` where the env also reports ``reward_raw``, e.g. sign-clipped ALE).
"""

from __future__ import annotations

from typing import Any

from torchrl.envs import EnvBase

from repdyn.envs.gym_vector import make_gym_vector_env


def make_env(env_cfg: Any, seed: int, num_envs: int | None = None) -> EnvBase:
    """Build the env family named by ``env_cfg.family`` (classic, mujoco, atari) with ``num_envs`` copies."""
    n = env_cfg.num_envs if num_envs is None else num_envs
    if env_cfg.family in ("classic", "mujoco"):
        return make_gym_vector_env(env_cfg.id, n, seed, max_episode_steps=env_cfg.max_episode_steps)
    if env_cfg.family == "atari":
        from repdyn.envs.atari import make_atari_env

        return make_atari_env(env_cfg.id, n, seed, **dict(env_cfg.atari))
    raise ValueError(f"unknown env family {env_cfg.family!r}; choose classic, mujoco or atari")
