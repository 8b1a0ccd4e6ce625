"""Environment builders: ``make_env(env_cfg, seed)`` → a batched torchrl env with the episode bookkeeping transforms.

Every env returned here has batch size ``[num_envs]``, keys ``observation``, ``reward`` ([.., 1]), ``done``,
``terminated``, ``truncated``, and the transforms ``StepCounter`` (``step_count``) and ``RewardSum``
(``episode_reward``; plus ``episode_reward_raw`` where the env also reports ``reward_raw``, e.g. sign-clipped ALE).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torchrl.data import Composite
from torchrl.envs import Compose, EnvBase, RewardSum, StepCounter, TransformedEnv

from repdyn.envs.gym_vector import make_gym_vector_env


class _ObservedRewardSum(RewardSum):
    """``RewardSum`` of a per-step value the env reports as an observation key (ALE's unsigned ``reward_raw``):
    torchrl's version only accepts keys of the reward spec."""

    def _generate_episode_reward_spec(self) -> Composite:
        spec = Composite()
        for in_key, out_key in zip(self.in_keys, self.out_keys, strict=True):
            spec[out_key] = self.parent.full_observation_spec[in_key].clone()
        return spec

    def _reset(self, tensordict: Any, tensordict_reset: Any) -> Any:
        if tensordict is None or any(k not in tensordict.keys(True) for k in self.out_keys):  # first reset
            for in_key, out_key in zip(self.in_keys, self.out_keys, strict=True):
                tensordict_reset.set(out_key, self.parent.full_observation_spec[in_key].zero())
            return tensordict_reset
        return super()._reset(tensordict, tensordict_reset)


def make_env(
    env_cfg: Any, seed: int, num_envs: int | None = None, *, flavour: Mapping[str, int] | None = None
) -> EnvBase:
    """Build the env family named by ``env_cfg.family`` (classic, mujoco, atari) with ``num_envs`` copies;
    ``flavour`` (atari only): a game mode/difficulty, ``{mode: int, difficulty: int}``
    (:mod:`repdyn.envs.ale_flavours`)."""
    n = env_cfg.num_envs if num_envs is None else num_envs
    if flavour and env_cfg.family != "atari":
        raise ValueError(f"flavour (game mode/difficulty) needs an atari env, got family {env_cfg.family!r}")
    if env_cfg.family in ("classic", "mujoco"):
        return make_gym_vector_env(env_cfg.id, n, seed, max_episode_steps=env_cfg.max_episode_steps)
    if env_cfg.family == "atari":
        from repdyn.envs.atari import make_atari_env

        base = make_atari_env(env_cfg.id, n, seed, flavour=flavour, **dict(env_cfg.atari))
        # The episode bookkeeping of every family (this module's contract; the loop logs env/return(_raw), length).
        return TransformedEnv(
            base,
            Compose(
                StepCounter(),
                RewardSum(),
                _ObservedRewardSum(in_keys=["reward_raw"], out_keys=["episode_reward_raw"]),
            ),
        )
    raise ValueError(f"unknown env family {env_cfg.family!r}; choose classic, mujoco or atari")
