"""Observation standardisation with statistics from uniform-random steps, then frozen (Moalla et al. 2024 App. B)."""

from __future__ import annotations

from torchrl.envs import ObservationNorm, TransformedEnv


def add_frozen_obs_norm(env: TransformedEnv, steps: int) -> ObservationNorm:
    """Roll out uniform-random actions for ``steps`` agent steps in total (across the batched envs), append an
    ``ObservationNorm`` with the resulting per-dimension mean/std (std floored at 1e-6), and reset the env.

    The stats live in the transform's buffers, so checkpoints carry them and a resume does not re-estimate them.
    """
    n_envs = max(1, env.batch_size.numel())
    rollout = env.rollout(max(1, steps // n_envs), break_when_any_done=False)
    obs = rollout["observation"].reshape(-1, rollout["observation"].shape[-1]).float()
    norm = ObservationNorm(
        loc=obs.mean(0), scale=obs.std(0).clamp_min(1e-6), in_keys=["observation"], standard_normal=True
    )
    env.append_transform(norm)
    env.reset()
    return norm
