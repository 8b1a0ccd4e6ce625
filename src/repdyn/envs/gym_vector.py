"""Classic-control and MuJoCo envs: gymnasium ``SyncVectorEnv`` (same-step autoreset) wrapped by torchrl.

In-process vector envs, not subprocesses: on 2 cores the MLP agents are env-bound and a subprocess per env only adds
IPC; in-process envs also let :mod:`repdyn.envs.state` capture the exact simulator state for requeue-safe resume.
"""

from __future__ import annotations

import functools

import gymnasium as gym
from torchrl.envs import Compose, DoubleToFloat, EnvBase, GymWrapper, RewardSum, StepCounter, TransformedEnv


def _make_one(env_id: str, max_episode_steps: int | None) -> gym.Env:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gym.make(env_id, **kwargs)


def check_env_id(env_id: str) -> None:
    """Fail fast, before any compute, when gymnasium does not know ``env_id`` (suggesting close names)."""
    import difflib

    registry = gym.envs.registry
    if env_id not in registry:
        close = difflib.get_close_matches(env_id, list(registry), n=5)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"env.id: unknown gymnasium environment {env_id!r}{hint}")


def make_gym_vector_env(env_id: str, num_envs: int, seed: int, *, max_episode_steps: int | None = None) -> EnvBase:
    """``num_envs`` copies of ``env_id`` in one torchrl env, seeded with ``seed`` (sub-env i gets seed + i)."""
    check_env_id(env_id)
    vec = gym.vector.SyncVectorEnv(
        [functools.partial(_make_one, env_id, max_episode_steps)] * num_envs,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    base = GymWrapper(vec, categorical_action_encoding=True)
    env = TransformedEnv(base, Compose(DoubleToFloat(), StepCounter(), RewardSum()))
    env.set_seed(seed)
    return env
