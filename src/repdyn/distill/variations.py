"""Held-out environment variations for the generalization tests of Lyle et al. 2022b §6.2 ("Learning Dynamics and
Generalization in Reinforcement Learning", ICML, arXiv:2206.02126), which used unseen ProcGen levels; here the same
task with changed physics or another game flavour.

``env.variations`` maps a name to one variation of the teacher's env:

- classic control: the simulator attributes it sets on every sub-env's unwrapped env, e.g.
  ``{long_pole: {length: 1.0}, heavy_links: {LINK_MASS_1: 1.5, LINK_MASS_2: 1.5}}``. CartPole caches two derived
  quantities (``total_mass``, ``polemass_length``) at construction; they are recomputed so that a changed ``length``,
  ``masspole`` or ``masscart`` really changes the dynamics.
- ALE: a game mode and/or difficulty (the game flavours of Machado et al. 2018, the held-out games of Farebrother
  et al. 2018), e.g. ``{other_mode: {mode: 24}, hard: {difficulty: 1}}`` for NameThisGame; the values must be among the
  ROM's available ones. The varied env is :class:`repdyn.envs.ale_flavours.FlavouredAtariVectorEnv`, which gives the
  observations of the teacher's training env (bit for bit in the default flavour), so the networks see what they were
  trained on.

Every variation is checked before any compute (:func:`check_variations`, ConfigError naming
``env.variations.<name>.<key>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from repdyn.errors import ConfigError

if TYPE_CHECKING:
    from torchrl.envs import EnvBase

FLAVOUR_KEYS = ("mode", "difficulty")
_ENV_ONLY_KEYS = ("reward_sign", "terminal_on_life_loss")  # make_atari_env keys that are not AtariVectorEnv settings


def check_variations(env_cfg: Any, variations: Mapping[str, Any]) -> None:
    """Every variation fits the teacher's env (``env_cfg``, its run config's ``env`` section): attributes it has, with
    numeric values (classic control), or available modes/difficulties (ALE). ConfigError naming the key."""
    if not variations:
        return
    if env_cfg.family == "atari":
        _check_flavours(env_cfg, variations)
        return
    if env_cfg.family != "classic":
        raise ConfigError(
            f"env.variations: only classic-control and ALE envs can be varied here, the teacher's env is "
            f"{env_cfg.family} ({env_cfg.id})"
        )
    raw = gym.make(env_cfg.id).unwrapped
    for name, attrs in variations.items():
        if not isinstance(attrs, Mapping) or not attrs:
            raise ConfigError(f"env.variations.{name}: must map attribute names to numbers, got {attrs!r}")
        for attr, value in attrs.items():
            if not hasattr(raw, attr):
                raise ConfigError(f"env.variations.{name}.{attr}: {env_cfg.id} has no attribute {attr!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"env.variations.{name}.{attr}: must be a number, got {value!r}")


def _check_flavours(env_cfg: Any, variations: Mapping[str, Any]) -> None:
    """ALE variations: ``{mode: int, difficulty: int}`` (either optional) among the ROM's available values, on a
    teacher env whose settings :class:`~repdyn.envs.ale_flavours.FlavouredAtariVectorEnv` reproduces."""
    from repdyn.envs.ale_flavours import PLURAL, available_flavours, unsupported_setting
    from repdyn.envs.atari import ale_vector_env_kwargs

    atari = {k: v for k, v in dict(env_cfg.atari).items() if k not in _ENV_ONLY_KEYS}
    kwargs = ale_vector_env_kwargs(env_cfg.id, 1, **atari)  # a finished teacher run: its settings are valid
    problem = unsupported_setting(kwargs)
    if problem is not None:
        raise ConfigError(f"env.variations: the teacher's env.atari.{problem}")
    title = str(env_cfg.id).split("/", 1)[1].rsplit("-", 1)[0]  # ALE/NameThisGame-v5 -> NameThisGame
    modes, difficulties, _, _ = available_flavours(kwargs["game"])
    allowed = {"mode": modes, "difficulty": difficulties}
    for name, flavour in variations.items():
        if not isinstance(flavour, Mapping) or not flavour:
            raise ConfigError(
                f"env.variations.{name}: an ALE variation sets mode and/or difficulty (integers), got {flavour!r}"
            )
        for key, value in flavour.items():
            if key not in FLAVOUR_KEYS:
                raise ConfigError(f"env.variations.{name}.{key}: an ALE variation sets only mode and difficulty")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"env.variations.{name}.{key}: must be an integer, got {value!r}")
            if value not in allowed[key]:
                raise ConfigError(
                    f"env.variations.{name}.{key}: {title} has {PLURAL[key]} {list(allowed[key])}, got {value}"
                )


def apply_variation(raw: gym.Env, attrs: Mapping[str, float]) -> None:
    """Set ``attrs`` on one unwrapped simulator, keeping CartPole's cached derived masses consistent."""
    for attr, value in attrs.items():
        setattr(raw, attr, float(value))
    if {"masspole", "masscart", "length"} & set(attrs) and hasattr(raw, "polemass_length"):
        raw.total_mass = raw.masspole + raw.masscart
        raw.polemass_length = raw.masspole * raw.length


def vary_env(env: Any, attrs: Mapping[str, float]) -> None:
    """Apply a variation to every sub-env of a repdyn classic-control env (``repdyn.envs.make.make_env``)."""
    from repdyn.envs.state import _vector_env

    vec = _vector_env(env)
    if vec is None:
        raise ValueError("env variations need an in-process gymnasium vector env (classic control)")
    for sub in vec.envs:
        apply_variation(sub.unwrapped, attrs)


def make_varied_env(env_cfg: Any, seed: int, num_envs: int, variation: Mapping[str, Any] | None = None) -> EnvBase:
    """The teacher's env (``repdyn.envs.make.make_env``) with ``variation`` applied: an ALE env built in that game
    flavour, or a classic-control env whose simulators are then changed. No variation: the training env."""
    from repdyn.envs.make import make_env

    if env_cfg.family == "atari":
        return make_env(env_cfg, seed, num_envs=num_envs, flavour=dict(variation) if variation else None)
    env = make_env(env_cfg, seed, num_envs=num_envs)
    if variation:
        try:
            vary_env(env, variation)
        except BaseException:
            env.close()
            raise
    return env
